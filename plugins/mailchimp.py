"""Mailchimp (Marketing API v3): one audience, read and written.

Reading lists the audience's members (``GET /lists/{id}/members``, 1,000 a page),
from the cursor on with ``since_last_changed``; each member is a record keyed by its
subscriber hash (md5 of the lower-case address) with its merge fields, and reports
its email consent (``cleaned`` is a bounce; an unsubscribe for abuse a complaint).
Then the campaigns sent to the audience in the last ``activity_days`` are read
(``GET /campaigns``, ``GET /reports/{id}/email-activity``): sends, opens, clicks and
bounces become events on the member's client card.

Writing upserts members in batches of 500 (``POST /lists/{id}`` with
``update_existing``): a contact with consent is ``subscribed``, an opted-out one
``unsubscribed``, each with its merge fields and tags (the ``tags`` option and a mapped
``tags`` column, e.g. ``segments: tags``); the batch adds tags to existing members too.
The batch sets each member's status explicitly, so sending it again
after a lost answer changes nothing; Mailchimp itself refuses to subscribe again a
member who unsubscribed or bounced. Contacts without a known status (already in the
audience) are written one by one with ``PUT`` and ``status_if_new``, leaving their
status alone (``PUT`` takes no tags: theirs go in the tags call below). Deleting
archives the member.

Segments as tags: when the mapping writes ``segments``, a segment tag the contact no
longer has is removed (``POST /lists/{id}/members/{hash}/tags`` with ``inactive``), one
call per member that still carries such a tag (the batch answer lists each member's
tags); tags that are not segment names (set by people, or by the ``tags`` option) are
never removed. ``sync_tags`` of the batch is not used: it would drop people's own tags.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import Field, model_validator

from hub.connector import READ, WRITE, Connector, ConnectorContext
from hub.errors import RetriableError
from hub.hookspecs import hookimpl
from hub.http import BatchOutcome, RejectedRequestError, ServiceOptions
from hub.model import (
    Checkpoint,
    ConsentReport,
    EventReport,
    OutboundItem,
    RawRecord,
    WriteResult,
)

BATCH_LIMIT = 500
PAGE_LIMIT = 1000
#: Mailchimp's statuses in hub's words; ``transactional`` and ``archived`` say nothing of consent.
CONSENT = {"subscribed": "subscribed", "unsubscribed": "unsubscribed", "cleaned": "bounced", "pending": "pending"}
#: Keys of an outbound item that hold the address rather than a merge field.
ADDRESS_KEYS = ("email_address", "email")
#: The key of an outbound item (and of a record read) that holds the member's tags.
TAGS_KEY = "tags"


class MailchimpOptions(ServiceOptions):
    api_key: str = Field(description="API key (Account → Extras → API keys); its suffix names the data center.")
    list_id: str = Field(description="Audience id (Audience → Settings → Audience name and defaults).")
    page_size: int = Field(PAGE_LIMIT, ge=1, le=PAGE_LIMIT)
    batch_size: int = Field(BATCH_LIMIT, ge=1, le=BATCH_LIMIT)
    max_concurrent: int = Field(10, ge=1, le=10, description="Mailchimp allows 10 simultaneous connections.")
    campaign_activity: bool = Field(True, description="Read campaign sends, opens, clicks and bounces as events.")
    activity_days: int = Field(30, ge=1, le=365, description="Campaigns sent this many days back are read for "
                               "new opens and clicks.")
    tags: list[str] = Field(default_factory=list, description="Tags every member hub writes gets (added, "
                            "never removed); a mapped `tags` column adds the contact's own.")

    @model_validator(mode="after")
    def _data_center(self) -> MailchimpOptions:
        if self.endpoint is None and "-" not in self.api_key:
            raise ValueError("api_key has no data center suffix (like -us21); set `endpoint` or check the key")
        return self

    @property
    def base_url(self) -> str:
        return self.endpoint or f"https://{self.api_key.rsplit('-', 1)[-1]}.api.mailchimp.com/3.0"


def _split_cursor(cursor: str | None) -> tuple[str | None, str | None]:
    """The members' and the campaign activity's cursors (a lone timestamp is the members')."""
    if cursor and cursor.startswith("{"):
        data = json.loads(cursor)
        return data.get("members"), data.get("activity")
    return cursor, None


def _join_cursor(members: str | None, activity: str | None) -> str | None:
    if activity is None:
        return members
    return json.dumps({"members": members, "activity": activity}, sort_keys=True)


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def _timestamp(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


class MailchimpConnector(Connector):
    plugin = "mailchimp"
    Options = MailchimpOptions
    capabilities = frozenset({READ, WRITE})
    description = "Mailchimp audience members with merge fields and email consent (source, destination)"
    write_batch_size = BATCH_LIMIT
    consent_channel = "email"

    def __init__(self, options: MailchimpOptions, context: ConnectorContext):
        super().__init__(options, context)
        self.options: MailchimpOptions = options
        self.api = options.client(
            "Mailchimp", options.base_url, auth=("hub", options.api_key), secrets=[options.api_key],
            max_concurrent=options.max_concurrent, pacing_key=("mailchimp", subscriber_hash(options.api_key)),
        )

    # -- reading ---------------------------------------------------------------

    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        members_cursor, activity_cursor = _split_cursor(cursor)
        newest: str | None = members_cursor
        for item in self._members(members_cursor):
            if isinstance(item, Checkpoint):
                newest = item.cursor
                complete = item.complete
            else:
                yield item
        if self.options.campaign_activity:
            for item in self._activity(activity_cursor):
                if isinstance(item, str):
                    activity_cursor = item
                else:
                    yield item
        yield Checkpoint(_join_cursor(newest, activity_cursor), complete=complete)

    def _members(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        params: dict[str, Any] = {"count": self.options.page_size, "sort_field": "last_changed", "sort_dir": "ASC"}
        since = _timestamp(cursor) if cursor else None
        if since is not None:
            # one second back: the bound's resolution is a second; repeats are skipped by hash
            params["since_last_changed"] = (since - dt.timedelta(seconds=1)).isoformat()
        newest = cursor
        newest_at = since
        offset = 0
        while True:
            page = self.api.get_json(f"lists/{self.options.list_id}/members", params={**params, "offset": offset},
                                     doing="listing audience members")
            members = (page or {}).get("members") or []
            for member in members:
                record = self._record(member, incremental=since is not None)
                if record is not None:
                    yield record
                changed = _timestamp(member.get("last_changed"))
                if changed is not None and (newest_at is None or changed > newest_at):
                    newest, newest_at = member["last_changed"], changed
            offset += len(members)
            if not members or offset >= int((page or {}).get("total_items") or 0):
                break
        yield Checkpoint(newest, complete=since is None)

    def _activity(self, cursor: str | None) -> Iterator[RawRecord | str]:
        """Events of recent campaigns, one history-only record per member; then the new cursor.

        A campaign sent since the cursor is read whole (every recipient: ``email_sent``);
        older ones in the window only for activity since the cursor."""
        since = _timestamp(cursor) if cursor else None
        start = (since or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=self.options.activity_days)
        newest = since
        events: dict[str, list[EventReport]] = {}
        offset = 0
        while True:
            page = self.api.get_json("campaigns", params={
                "count": self.options.page_size, "offset": offset, "status": "sent", "list_id": self.options.list_id,
                "since_send_time": start.isoformat(), "sort_field": "send_time", "sort_dir": "ASC",
            }, doing="listing campaigns") or {}
            campaigns = page.get("campaigns") or []
            for campaign in campaigns:
                sent = _timestamp(campaign.get("send_time"))
                if sent is None:
                    continue
                new = since is None or sent > since
                newest = max(newest, sent) if newest else sent
                for row in self._campaign_activity(campaign["id"], None if new else since):
                    key = str(row.get("email_id") or subscriber_hash(str(row.get("email_address") or "")))
                    subject = str((campaign.get("settings") or {}).get("subject_line") or "")
                    found = events.setdefault(key, [])
                    if new:
                        found.append(EventReport("email_sent", f"{campaign['id']}:{key}", sent,
                                                 (("campaign", campaign["id"]), ("subject", subject))))
                    for act in row.get("activity") or []:
                        at = _timestamp(act.get("timestamp"))
                        action = str(act.get("action") or "")
                        if at is None or action not in ("open", "click", "bounce"):
                            continue
                        newest = max(newest, at) if newest else at
                        payload = (("campaign", campaign["id"]), ("subject", subject))
                        if act.get("url"):
                            payload += (("url", str(act["url"])),)
                        found.append(EventReport(f"email_{action}", f"{campaign['id']}:{key}:{action}:{at.isoformat()}",
                                                 at, payload))
            offset += len(campaigns)
            if not campaigns or offset >= int(page.get("total_items") or 0):
                break
        for key in sorted(events):
            if events[key]:
                yield RawRecord(key, {}, events=tuple(events[key]), history_only=True)
        if newest is not None:
            yield newest.isoformat()

    def _campaign_activity(self, campaign_id: str, since: dt.datetime | None) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            params: dict[str, Any] = {"count": self.options.page_size, "offset": offset}
            if since is not None:
                params["since"] = since.isoformat()
            page = self.api.get_json(f"reports/{campaign_id}/email-activity", params=params,
                                     doing="reading a campaign's activity") or {}
            rows = page.get("emails") or []
            yield from rows
            offset += len(rows)
            if not rows or offset >= int(page.get("total_items") or 0):
                return

    def _record(self, member: dict[str, Any], *, incremental: bool) -> RawRecord | None:
        key = str(member.get("id") or subscriber_hash(str(member.get("email_address") or "")))
        status = member.get("status")
        changed = _timestamp(member.get("last_changed"))
        if status == "archived":
            return RawRecord(key, {}, updated_at=changed, deleted=True) if incremental else None
        values = {"email_address": member.get("email_address")}
        values.update({k: v for k, v in (member.get("merge_fields") or {}).items() if v not in (None, "")})
        tags = [str(tag.get("name")) for tag in member.get("tags") or [] if isinstance(tag, dict) and tag.get("name")]
        if tags:
            values[TAGS_KEY] = ", ".join(sorted(tags))
        consent = CONSENT.get(str(status))
        reason = str(member.get("unsubscribe_reason") or "")
        if consent == "unsubscribed" and any(word in reason.lower() for word in ("abuse", "spam")):
            consent = "complained"
        reports: tuple[ConsentReport, ...] = ()
        if consent is not None:
            proof = (("mailchimp_status", str(status)),) + ((("reason", reason),) if reason else ())
            reports = (ConsentReport("email", consent, changed, proof),)
        return RawRecord(key, values, updated_at=changed, consents=reports)

    # -- writing -----------------------------------------------------------------

    def write(self, items: Sequence[OutboundItem]) -> list[WriteResult]:
        outcome = BatchOutcome(item.contact_id for item in items)
        batch: list[tuple[OutboundItem, dict[str, Any]]] = []
        singles: list[tuple[OutboundItem, dict[str, Any]]] = []
        for item in items:
            if item.op == "delete":
                self._delete(item, outcome)
                continue
            member = self._member(item)
            if member is None:
                outcome.rejected(item.contact_id, "no e-mail address to subscribe")
            elif item.consent in ("subscribed", "unsubscribed", "complained"):
                member["status"] = "subscribed" if item.consent == "subscribed" else "unsubscribed"
                batch.append((item, member))
            else:
                singles.append((item, member))
        for start in range(0, len(batch), self.options.batch_size):
            self._batch(batch[start : start + self.options.batch_size], outcome)
        for item, member in singles:
            self._put(item, member, outcome)
        return outcome.as_list()

    @staticmethod
    def _left(item: OutboundItem, member: dict[str, Any]) -> list[str]:
        """Segment tags the contact does not have (to be removed where the member carries them)."""
        return sorted(set(item.segment_names) - set(member.get("tags") or ()))

    def _retag(self, item: OutboundItem, member: dict[str, Any], active: Sequence[str], inactive: Sequence[str],
               outcome: BatchOutcome) -> bool:
        """Set tags of one member: ``POST .../members/{hash}/tags`` (204). False when it failed."""
        tags = [{"name": name, "status": "active"} for name in active]
        tags += [{"name": name, "status": "inactive"} for name in inactive]
        if not tags:
            return True
        key = subscriber_hash(member["email_address"])
        try:
            self.api.request("POST", f"lists/{self.options.list_id}/members/{key}/tags", json_body={"tags": tags},
                             idempotent=True, doing="updating a member's tags")
        except RejectedRequestError as error:
            outcome.rejected(item.contact_id, error.message)
            return False
        except RetriableError as error:
            outcome.retriable(item.contact_id, error.message)
            return False
        return True

    def _member(self, item: OutboundItem) -> dict[str, Any] | None:
        email = next((str(item.values[k]).strip() for k in ADDRESS_KEYS if item.values.get(k)), "")
        if not email:
            return None
        if item.consent_only:  # a further member of the contact: its status alone
            return {"email_address": email}
        merge_fields = {str(k): ("" if v is None else v) for k, v in item.values.items()
                        if k not in ADDRESS_KEYS and k != TAGS_KEY}
        member: dict[str, Any] = {"email_address": email, "merge_fields": merge_fields}
        own = item.values.get(TAGS_KEY)
        tags = [*self.options.tags, *(own if isinstance(own, list) else str(own or "").split(","))]
        tags = sorted({str(tag).strip() for tag in tags if str(tag).strip()})
        if tags:
            member["tags"] = tags
        return member

    def _batch(self, chunk: list[tuple[OutboundItem, dict[str, Any]]], outcome: BatchOutcome) -> None:
        by_email = {member["email_address"].lower(): item.contact_id for item, member in chunk}
        try:
            response = self.api.request(
                "POST", f"lists/{self.options.list_id}",
                json_body={"members": [member for _, member in chunk], "update_existing": True},
                idempotent=True, doing=f"batch subscribe of {len(chunk)} members",
            )
            # an answer that is not JSON (a proxy's page) tells nothing of the members: the
            # batch sets each status explicitly, so sending it again is safe
            body = self.api.json(response) or {}
        except RetriableError as error:
            for item, _ in chunk:
                outcome.retriable(item.contact_id, error.message)
            return
        if not isinstance(body, dict):
            for item, _ in chunk:
                outcome.retriable(item.contact_id, "Mailchimp: the batch answer is not a JSON object")
            return
        sent = {member["email_address"].lower(): (item, member) for item, member in chunk}
        for member in (body.get("new_members") or []) + (body.get("updated_members") or []):
            email = str(member.get("email_address", "")).lower()
            contact_id = by_email.get(email)
            if contact_id is None:
                continue
            item, ours = sent[email]
            left = self._left(item, ours)
            if left and isinstance(member.get("tags"), list):  # only those the member carries
                carried = {str(tag.get("name")) for tag in member["tags"] if isinstance(tag, dict)}
                left = [name for name in left if name in carried]
            if self._retag(item, ours, (), left, outcome):
                outcome.ok(contact_id, str(member.get("id") or subscriber_hash(member["email_address"])))
        for error in body.get("errors") or []:
            contact_id = by_email.get(str(error.get("email_address", "")).lower())
            if contact_id is not None and contact_id not in outcome.results:
                outcome.rejected(contact_id, f"Mailchimp: {error.get('error') or error.get('error_code')}")
        outcome.fail_pending("Mailchimp did not report this member in the batch answer", by_email.values())

    def _put(self, item: OutboundItem, member: dict[str, Any], outcome: BatchOutcome) -> None:
        key = subscriber_hash(member["email_address"])
        # only a contact hub never had here, with no status known and require_consent off,
        # joins as subscribed; a member that vanished is not brought back subscribed
        status_if_new = "subscribed" if item.consent is None and item.external_id is None else "transactional"
        fields = {k: v for k, v in member.items() if k != "tags"}  # PUT does not take tags
        try:
            body = self.api.json(self.api.request(
                "PUT", f"lists/{self.options.list_id}/members/{key}", json_body={**fields,
                                                                                  "status_if_new": status_if_new},
                doing="upserting a member",
            )) or {}
        except RejectedRequestError as error:
            outcome.rejected(item.contact_id, error.message)
            return
        except RetriableError as error:
            outcome.retriable(item.contact_id, error.message)
            return
        carried = {str(tag.get("name")) for tag in body.get("tags") or [] if isinstance(tag, dict)}
        wanted = [name for name in member.get("tags") or () if name not in carried]
        left = [name for name in self._left(item, member) if name in carried or "tags" not in body]
        if self._retag(item, member, wanted, left, outcome):
            outcome.ok(item.contact_id, str(body.get("id") or key))

    def _delete(self, item: OutboundItem, outcome: BatchOutcome) -> None:
        key = item.external_id or ""
        try:
            self.api.request("DELETE", f"lists/{self.options.list_id}/members/{key}", accept=(404,),
                             doing="archiving a member")
        except RetriableError as error:
            outcome.retriable(item.contact_id, error.message)
            return
        except RejectedRequestError as error:
            outcome.rejected(item.contact_id, error.message)
            return
        outcome.ok(item.contact_id, key)

    def close(self) -> None:
        self.api.close()


__all__ = ["MailchimpConnector", "MailchimpOptions", "subscriber_hash"]


@hookimpl
def hub_connectors(register):
    register(MailchimpConnector)
