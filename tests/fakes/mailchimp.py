"""A local Mailchimp Marketing API v3 server.

* HTTP Basic auth ``anystring:<api key>``; a wrong key gets 401 "API Key Invalid";
* ``POST /3.0/lists/{list_id}``: batch subscribe/unsubscribe, at most 500 members,
  ``update_existing``; always 200 with ``new_members``, ``updated_members`` and
  per-member ``errors`` (invalid addresses; "compliance state" when an unsubscribed
  or cleaned member would be subscribed again: only the person may do that);
* ``GET /3.0/lists/{list_id}/members``: ``count`` (max 1000), ``offset``,
  ``since_last_changed`` (inclusive), ``status``; archived members read as ``archived``;
* ``GET|PUT|PATCH|DELETE /3.0/lists/{list_id}/members/{subscriber_hash}`` (PUT is the
  upsert with ``status_if_new``; DELETE archives); ``tags`` in a PUT body only tag a
  member it creates;
* tags: the batch adds the members' ``tags`` to existing members too (``sync_tags``
  with ``update_existing`` replaces them); ``POST .../members/{hash}/tags`` with
  ``{"tags": [{"name", "status": "active"|"inactive"}]}`` adds and removes them (204);
  members are read with ``tags: [{"id", "name"}]``;
* errors as ``application/problem+json``; more than ``max_concurrent`` requests at
  once (10 by default, like Mailchimp) get 429.

``person_unsubscribes`` and ``person_edits`` play a person acting in Mailchimp.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

from tests.fakes.http import ApiError, FakeApi, Request

BATCH_LIMIT = 500
PAGE_LIMIT = 1000
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


class Clock:
    """Seconds-resolution timestamps that always move forward (Mailchimp's ``last_changed``)."""

    def __init__(self) -> None:
        # ten days ago: campaigns sent "now" fall in a 30-day activity window
        self.now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=10)

    def tick(self) -> str:
        self.now += dt.timedelta(seconds=1)
        return self.now.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def problem(status: int, title: str, detail: str) -> ApiError:
    return ApiError(status, {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title,
                             "status": status, "detail": detail, "instance": "00000000-fake"},
                    content_type="application/problem+json")


class FakeMailchimp(FakeApi):
    def __init__(self, api_key: str = "0123456789abcdef0123456789abcdef-us21", list_id: str = "a1b2c3d4e5",
                 *, max_concurrent: int | None = 10, **kwargs: Any):
        self.api_key = api_key
        self.list_id = list_id
        self.members: dict[str, dict[str, Any]] = {}
        #: campaign id -> {"id", "send_time", "subject", "recipients": {email_id: [activity]}}
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.clock = Clock()
        self.tag_ids: dict[str, int] = {}
        super().__init__(max_concurrent=max_concurrent, **kwargs)

    def route_table(self) -> list[Any]:
        member = r"/3\.0/lists/([^/]+)/members/([0-9a-f]{32})"
        return [
            ("POST", r"/3\.0/lists/([^/]+)", "batch", self._batch),
            ("GET", r"/3\.0/lists/([^/]+)/members", "members.list", self._list),
            ("GET", member, "members.get", self._get),
            ("PUT", member, "members.put", self._put),
            ("PATCH", member, "members.patch", self._patch),
            ("DELETE", member, "members.delete", self._delete),
            ("POST", member + r"/tags", "members.tags", self._tags),
            ("GET", r"/3\.0/campaigns", "campaigns.list", self._campaigns),
            ("GET", r"/3\.0/reports/([^/]+)/email-activity", "reports.email_activity", self._email_activity),
        ]

    # -- protocol ------------------------------------------------------------

    def authorize(self, request: Request, endpoint: str) -> None:
        header = request.headers.get("Authorization", "")
        key = ""
        if header.startswith("Basic "):
            key = base64.b64decode(header[6:]).decode().partition(":")[2]
        if key != self.api_key:
            raise problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access "
                          "the wrong datacenter.")

    def error_body(self, status: int, message: str) -> Any:
        return {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": message,
                "status": status, "detail": message, "instance": "00000000-fake"}

    def rate_limit_error(self) -> ApiError:
        return problem(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")

    def _list_of(self, list_id: str) -> None:
        if list_id != self.list_id:
            raise problem(404, "Resource Not Found", "The requested resource could not be found.")

    def _view(self, member: dict[str, Any]) -> dict[str, Any]:
        return {"id": member["id"], "email_address": member["email_address"],
                "unique_email_id": member["id"][:10], "status": member["status"],
                "merge_fields": dict(member["merge_fields"]),
                "tags": [{"id": self._tag_id(t), "name": t} for t in member["tags"]], "tags_count": len(member["tags"]),
                "last_changed": member["last_changed"], "list_id": self.list_id,
                **({"unsubscribe_reason": member["unsubscribe_reason"]} if member.get("unsubscribe_reason") else {})}

    def _tag_id(self, name: str) -> int:
        return self.tag_ids.setdefault(name, len(self.tag_ids) + 1)

    def _upsert(self, body: dict[str, Any], *, status_if_new: str | None, update_existing: bool,
                existing_tags: bool = True, sync_tags: bool = False) -> dict[str, Any]:
        email = str(body.get("email_address") or "").strip()
        if not self.valid_email(email):
            raise _MemberError(email, f"{email} looks fake or invalid, please enter a real email address.",
                               "ERROR_GENERIC")
        key = subscriber_hash(email)
        existing = self.members.get(key)
        status = body.get("status")
        if status is not None and status not in STATUSES:
            raise _MemberError(email, f"Invalid status {status!r}", "ERROR_GENERIC")
        if existing is None or existing["status"] == "archived":
            new_status = status or status_if_new
            if new_status is None:
                raise _MemberError(email, "The resource submitted could not be validated: status", "ERROR_GENERIC")
            member = {"id": key, "email_address": email, "status": new_status, "merge_fields": {}, "tags": [],
                      "created": True}
            self.members[key] = member
        else:
            if not update_existing:
                raise _MemberError(email, f"{email} is already a list member.", "ERROR_CONTACT_EXISTS")
            member = existing
            member["created"] = False
            if status is not None and status != member["status"]:
                if member["status"] in ("unsubscribed", "cleaned") and status in ("subscribed",):
                    raise _MemberError(email, f"{email} is already a list member in compliance state due to "
                                       "unsubscribe, bounce, or compliance review and cannot be subscribed.",
                                       "ERROR_CONTACT_EXISTS")
                member["status"] = status
        member["merge_fields"].update({k: v for k, v in (body.get("merge_fields") or {}).items()})
        if member["created"] or existing_tags:
            if sync_tags and not member["created"]:
                member["tags"] = []
            for tag in body.get("tags") or []:
                if tag not in member["tags"]:
                    member["tags"].append(tag)
        member["last_changed"] = self.clock.tick()
        return member

    def _batch(self, request: Request, list_id: str) -> Any:
        self._list_of(list_id)
        body = request.json() or {}
        members = body.get("members") or []
        if len(members) > BATCH_LIMIT:
            raise problem(400, "Invalid Resource", f"Batch subscribe accepts at most {BATCH_LIMIT} members.")
        new, updated, errors = [], [], []
        for item in members:
            try:
                member = self._upsert(item, status_if_new=None, update_existing=bool(body.get("update_existing")),
                                      sync_tags=bool(body.get("sync_tags")))
            except _MemberError as error:
                errors.append({"email_address": error.email, "error": error.message, "error_code": error.code,
                               "field": "", "field_message": ""})
                continue
            (new if member["created"] else updated).append(self._view(member))
        return {"new_members": new, "updated_members": updated, "errors": errors, "total_created": len(new),
                "total_updated": len(updated), "error_count": len(errors)}

    def _list(self, request: Request, list_id: str) -> Any:
        self._list_of(list_id)
        count = int(request.arg("count", "10"))
        offset = int(request.arg("offset", "0"))
        if count > PAGE_LIMIT:
            raise problem(400, "Invalid Resource", f"count must be at most {PAGE_LIMIT}")
        since = request.arg("since_last_changed")
        status = request.arg("status")
        members = sorted(self.members.values(), key=lambda m: (m["last_changed"], m["id"]))
        if since:
            bound = dt.datetime.fromisoformat(since)
            members = [m for m in members if dt.datetime.fromisoformat(m["last_changed"]) >= bound]
        if status:
            members = [m for m in members if m["status"] == status]
        page = members[offset : offset + count]
        return {"members": [self._view(m) for m in page], "list_id": list_id, "total_items": len(members),
                "_links": []}

    def _member(self, list_id: str, key: str) -> dict[str, Any]:
        self._list_of(list_id)
        member = self.members.get(key)
        if member is None:
            raise problem(404, "Resource Not Found", "The requested resource could not be found.")
        return member

    def _get(self, request: Request, list_id: str, key: str) -> Any:
        return self._view(self._member(list_id, key))

    def _put(self, request: Request, list_id: str, key: str) -> Any:
        self._list_of(list_id)
        body = request.json() or {}
        if subscriber_hash(str(body.get("email_address") or "")) != key:
            raise problem(400, "Invalid Resource", "The email address does not match the subscriber hash.")
        try:
            member = self._upsert(body, status_if_new=body.get("status_if_new"), update_existing=True,
                                  existing_tags=False)
        except _MemberError as error:
            raise problem(400, "Member In Compliance State" if "compliance" in error.message else "Invalid Resource",
                          error.message) from None
        return self._view(member)

    def _patch(self, request: Request, list_id: str, key: str) -> Any:
        member = self._member(list_id, key)
        body = request.json() or {}
        return self._put(request, list_id, key) if body.get("email_address") else self._view(member)

    def _tags(self, request: Request, list_id: str, key: str) -> Any:
        member = self._member(list_id, key)
        body = request.json() or {}
        tags = body.get("tags")
        if not isinstance(tags, list):
            raise problem(400, "Invalid Resource", "The resource submitted could not be validated. For field-specific "
                          "details, see the 'errors' array.")
        for tag in tags:
            if not isinstance(tag, dict) or not tag.get("name") or tag.get("status") not in ("active", "inactive"):
                raise problem(400, "Invalid Resource", "Each tag needs a name and a status of active or inactive.")
        for tag in tags:
            name = str(tag["name"])
            if tag["status"] == "active" and name not in member["tags"]:
                member["tags"].append(name)
            elif tag["status"] == "inactive" and name in member["tags"]:
                member["tags"].remove(name)
        member["last_changed"] = self.clock.tick()
        return 204, None

    def tags_of(self, email: str) -> list[str]:
        member = self.members.get(subscriber_hash(email))
        return sorted(member["tags"]) if member else []

    def _delete(self, request: Request, list_id: str, key: str) -> Any:
        member = self._member(list_id, key)
        if member["status"] == "archived":
            raise problem(404, "Resource Not Found", "The requested resource could not be found.")
        member["status"] = "archived"
        member["last_changed"] = self.clock.tick()
        return 204, None

    def _campaigns(self, request: Request) -> Any:
        count = int(request.arg("count", "10"))
        if count > PAGE_LIMIT:
            raise problem(400, "Invalid Resource", f"count must be at most {PAGE_LIMIT}")
        offset = int(request.arg("offset", "0"))
        rows = sorted(self.campaigns.values(), key=lambda c: (c["send_time"], c["id"]))
        if request.arg("list_id"):
            rows = [c for c in rows if request.arg("list_id") == self.list_id]
        if request.arg("since_send_time"):
            bound = dt.datetime.fromisoformat(request.arg("since_send_time"))
            rows = [c for c in rows if dt.datetime.fromisoformat(c["send_time"]) >= bound]
        page = rows[offset : offset + count]
        return {"campaigns": [{"id": c["id"], "type": "regular", "status": "sent", "send_time": c["send_time"],
                               "recipients": {"list_id": self.list_id},
                               "settings": {"subject_line": c["subject"], "title": c["subject"]}} for c in page],
                "total_items": len(rows)}

    def _email_activity(self, request: Request, campaign_id: str) -> Any:
        campaign = self.campaigns.get(campaign_id)
        if campaign is None:
            raise problem(404, "Resource Not Found", "The requested resource could not be found.")
        count = int(request.arg("count", "10"))
        offset = int(request.arg("offset", "0"))
        since = request.arg("since")
        emails = []
        for email_id, activity in sorted(campaign["recipients"].items()):
            if since:
                bound = dt.datetime.fromisoformat(since)
                activity = [a for a in activity if dt.datetime.fromisoformat(a["timestamp"]) > bound]
                if not activity:
                    continue
            emails.append({"campaign_id": campaign_id, "list_id": self.list_id, "email_id": email_id,
                           "email_address": self.members[email_id]["email_address"], "activity": activity})
        return {"emails": emails[offset : offset + count], "campaign_id": campaign_id, "total_items": len(emails)}

    # -- a person in Mailchimp -------------------------------------------------

    def send_campaign(self, subject: str) -> str:
        """A campaign sent now to every subscribed member."""
        with self.lock:
            campaign_id = f"c{len(self.campaigns) + 1:09d}"
            self.campaigns[campaign_id] = {
                "id": campaign_id, "send_time": self.clock.tick(), "subject": subject,
                "recipients": {key: [] for key, m in self.members.items() if m["status"] == "subscribed"}}
            return campaign_id

    def activity(self, campaign_id: str, email: str, action: str, url: str | None = None) -> None:
        """A person opens (``open``) or clicks (``click``) a campaign, or it bounces (``bounce``)."""
        with self.lock:
            entry: dict[str, Any] = {"action": action, "timestamp": self.clock.tick(), "ip": "192.0.2.1"}
            if url:
                entry["url"] = url
            self.campaigns[campaign_id]["recipients"][subscriber_hash(email)].append(entry)


    def add(self, email: str, status: str = "subscribed", **merge_fields: Any) -> str:
        with self.lock:
            key = subscriber_hash(email)
            self.members[key] = {"id": key, "email_address": email, "status": status,
                                 "merge_fields": dict(merge_fields), "tags": [], "last_changed": self.clock.tick()}
            return key

    def person_unsubscribes(self, email: str, reason: str = "N/A (Unsubscribed by user)",
                            status: str = "unsubscribed") -> None:
        with self.lock:
            member = self.members[subscriber_hash(email)]
            member["status"] = status
            member["unsubscribe_reason"] = reason
            member["last_changed"] = self.clock.tick()

    def person_edits(self, email: str, **merge_fields: Any) -> None:
        with self.lock:
            member = self.members[subscriber_hash(email)]
            member["merge_fields"].update(merge_fields)
            member["last_changed"] = self.clock.tick()

    def status_of(self, email: str) -> str | None:
        member = self.members.get(subscriber_hash(email))
        return member["status"] if member else None


class _MemberError(Exception):
    def __init__(self, email: str, message: str, code: str):
        super().__init__(message)
        self.email = email
        self.message = message
        self.code = code
