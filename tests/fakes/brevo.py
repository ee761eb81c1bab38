"""A local Brevo (Sendinblue) API v3 server for contacts.

* ``api-key`` header; a wrong key gets 401 ``{"code": "unauthorized", "message": "Key not found"}``;
* ``POST /v3/contacts/import``: ``jsonBody`` (at most ``IMPORT_LIMIT`` rows), ``listIds``,
  ``updateExistingContacts``, ``emailBlacklist`` (blacklists every imported contact;
  ``false`` never lifts an existing blacklist); answers 202 ``{"processId"}``, applies
  the rows, skips invalid addresses; ``GET /v3/processes/{id}`` says ``in_process``
  once, then ``completed``;
* ``GET /v3/contacts`` and ``GET /v3/contacts/lists/{id}/contacts``: ``limit`` (1000 /
  500), ``offset``, ``modifiedSince`` (inclusive), ``sort``; ``{"contacts", "count"}``;
* ``GET|PUT|DELETE /v3/contacts/{identifier}`` (id or email);
* ``GET /v3/smtp/statistics/events``: the transactional e-mail activity, unaggregated:
  ``limit`` (at most ``EVENTS_LIMIT``), ``offset``, ``startDate`` and ``endDate``
  (YYYY-MM-DD, both or neither, the account's own dates, at most 90 days apart) or
  ``days``, ``email``, ``event``, ``messageId``, ``tags``, ``sort`` (``desc`` by
  default); ``{"events": [{"email", "date", "subject", "messageId", "event", "tag",
  "from", "reason"?, "ip"?, "link"?, "templateId"?}]}``, in the order the events were
  recorded; no total is given, a short page is the last (none left: ``{}``);
* ``GET /v3/contacts/{identifier}/campaignStats``: a contact's marketing campaign
  activity, ``startDate``/``endDate`` (both or neither, at most 90 days apart, the start
  not after today; the last 90 days by default): ``{"messagesSent", "delivered",
  "hardBounces", "softBounces", "complaints": [{"campaignId", "eventTime"}], "opened":
  [{"campaignId", "count", "eventTime", "ip"}], "clicked": [{"campaignId", "links":
  [{"count", "eventTime", "ip", "url"}]}], "unsubscriptions": {"userUnsubscription":
  [{"campaignId", "eventTime", "ip"}], "adminUnsubscription": [{"eventTime", "ip"}]}}``;
* errors ``{"code", "message"}``; rate limits as 429 with ``x-sib-ratelimit-*`` headers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.fakes.http import ApiError, FakeApi, Request

IMPORT_LIMIT = 5000
EVENTS_LIMIT = 2500
#: The ``event`` values of the events report (and of its ``event`` filter).
EVENT_KINDS = ("requests", "delivered", "opened", "clicks", "hardBounces", "softBounces", "spam", "unsubscribed",
               "blocked", "invalid", "deferred", "error", "loadedByProxy")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(value: dt.datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeBrevo(FakeApi):
    def __init__(self, api_key: str = "xkeysib-0123456789abcdef-AbCdEfGh", **kwargs: Any):
        self.api_key = api_key
        self.contacts: dict[int, dict[str, Any]] = {}
        self._ids_by_email: dict[str, int] = {}
        self.lists: set[int] = {2}
        self.processes: dict[int, dict[str, Any]] = {}
        #: addresses transactional e-mail is blocked for (a hard bounce, a complaint, an unsubscribe)
        self.blocked: set[str] = set()
        self.next_id = 1
        self.imported_rows: list[str] = []
        #: the transactional e-mail activity, in the order Brevo recorded it
        self.email_events: list[dict[str, Any]] = []
        #: the account's time zone: event dates and the report's day bounds are in it
        self.timezone = dt.timezone(dt.timedelta(hours=3))
        #: a key restricted to contacts may not read statistics [the exact code is unverified]
        self.statistics_allowed = True
        #: marketing campaign activity: contact id -> [(kind, campaign id, time, url)]
        self.campaign_activity: dict[int, list[tuple[str, int, dt.datetime, str | None]]] = {}
        super().__init__(**kwargs)

    def route_table(self) -> list[Any]:
        return [
            ("POST", r"/v3/contacts/import", "import", self._import),
            ("GET", r"/v3/processes/(\d+)", "process", self._process),
            ("GET", r"/v3/smtp/statistics/events", "smtp.events", self._events),
            ("GET", r"/v3/contacts/([^/]+)/campaignStats", "contacts.campaign_stats", self._campaign_stats),
            ("GET", r"/v3/contacts", "contacts.list", self._list),
            ("GET", r"/v3/contacts/lists/(\d+)/contacts", "list.contacts", self._list),
            ("GET", r"/v3/contacts/([^/]+)", "contacts.get", self._get),
            ("PUT", r"/v3/contacts/([^/]+)", "contacts.update", self._update),
            ("DELETE", r"/v3/contacts/([^/]+)", "contacts.delete", self._delete),
        ]

    def authorize(self, request: Request, endpoint: str) -> None:
        if request.headers.get("api-key") != self.api_key:
            raise ApiError(401, {"code": "unauthorized", "message": "Key not found"})
        if endpoint.startswith("smtp.") and not self.statistics_allowed:
            raise ApiError(401, {"code": "permission_denied", "message": "Unauthorized: this API key may not "
                                 "read transactional statistics"})

    def error_body(self, status: int, message: str) -> Any:
        code = {400: "invalid_parameter", 404: "document_not_found", 429: "too_many_requests"}.get(status,
                                                                                                  "internal_error")
        return {"code": code, "message": message}

    def rate_limit_error(self) -> ApiError:
        return ApiError(429, {"code": "too_many_requests", "message": "Too many requests"},
                        {"x-sib-ratelimit-limit": "10", "x-sib-ratelimit-remaining": "0",
                         "x-sib-ratelimit-reset": "0"})

    # -- protocol ------------------------------------------------------------

    def _view(self, contact: dict[str, Any]) -> dict[str, Any]:
        return {"id": contact["id"], "email": contact["email"], "emailBlacklisted": contact["emailBlacklisted"],
                "smsBlacklisted": contact["smsBlacklisted"], "createdAt": _iso(contact["createdAt"]),
                "modifiedAt": _iso(contact["modifiedAt"]), "listIds": sorted(contact["listIds"]),
                "attributes": dict(contact["attributes"])}

    def _find(self, identifier: str) -> dict[str, Any]:
        if identifier.isdigit():
            contact = self.contacts.get(int(identifier))
        else:
            contact = self.by_email(identifier)
        if contact is None:
            raise ApiError(404, {"code": "document_not_found", "message": "Contact does not exist"})
        return contact

    def _import(self, request: Request) -> Any:
        body = request.json() or {}
        rows = body.get("jsonBody")
        if not isinstance(rows, list) or not rows:
            raise ApiError(400, {"code": "missing_parameter", "message": "fileBody, jsonBody or fileUrl is required"})
        if len(rows) > IMPORT_LIMIT:
            raise ApiError(400, {"code": "invalid_parameter", "message": f"jsonBody holds at most {IMPORT_LIMIT}"})
        list_ids = set(body.get("listIds") or [])
        unknown = list_ids - self.lists
        if unknown:
            raise ApiError(400, {"code": "invalid_parameter", "message": f"List ID {min(unknown)} does not exist"})
        blacklist = bool(body.get("emailBlacklist"))
        for row in rows:
            email = str(row.get("email") or "").strip().lower()
            if not self.valid_email(email):
                continue  # Brevo skips invalid rows and mentions them only in the report
            self.imported_rows.append(email)
            existing = self.by_email(email)
            if existing is not None and not body.get("updateExistingContacts", True):
                continue
            contact = existing or self._new(email)
            contact["attributes"].update({k: v for k, v in (row.get("attributes") or {}).items()
                                          if v not in (None, "") or body.get("emptyContactsAttributes")})
            contact["listIds"] |= list_ids
            if blacklist:
                contact["emailBlacklisted"] = True
            contact["modifiedAt"] = _now()
        process_id = len(self.processes) + 1
        self.processes[process_id] = {"id": process_id, "status": "in_process", "name": "import", "polls": 0}
        return 202, {"processId": process_id}

    def _new(self, email: str) -> dict[str, Any]:
        contact = {"id": self.next_id, "email": email, "emailBlacklisted": False, "smsBlacklisted": False,
                   "createdAt": _now(), "modifiedAt": _now(), "listIds": set(), "attributes": {}}
        self.contacts[self.next_id] = contact
        self._ids_by_email[email] = self.next_id
        self.next_id += 1
        return contact

    def _process(self, request: Request, process_id: str) -> Any:
        process = self.processes.get(int(process_id))
        if process is None:
            raise ApiError(404, {"code": "document_not_found", "message": "Process does not exist"})
        process["polls"] += 1
        if process["polls"] > 1:
            process["status"] = "completed"
        return {k: v for k, v in process.items() if k != "polls"}

    def _list(self, request: Request, list_id: str | None = None) -> Any:
        limit = int(request.arg("limit", "50"))
        if limit > (500 if list_id else 1000):
            raise ApiError(400, {"code": "out_of_range", "message": "Limit exceeds max value"})
        offset = int(request.arg("offset", "0"))
        contacts = list(self.contacts.values())
        if list_id is not None:
            if int(list_id) not in self.lists:
                raise ApiError(404, {"code": "document_not_found", "message": "List ID does not exist"})
            contacts = [c for c in contacts if int(list_id) in c["listIds"]]
        since = request.arg("modifiedSince")
        if since:
            bound = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
            contacts = [c for c in contacts if c["modifiedAt"] >= bound]
        contacts.sort(key=lambda c: (c["modifiedAt"], c["id"]), reverse=request.arg("sort", "desc") == "desc")
        return {"contacts": [self._view(c) for c in contacts[offset : offset + limit]], "count": len(contacts)}

    def _get(self, request: Request, identifier: str) -> Any:
        return self._view(self._find(identifier))

    def _update(self, request: Request, identifier: str) -> Any:
        contact = self._find(identifier)
        body = request.json() or {}
        contact["attributes"].update(body.get("attributes") or {})
        for key in ("emailBlacklisted", "smsBlacklisted"):
            if key in body:
                contact[key] = bool(body[key])
        contact["listIds"] |= set(body.get("listIds") or [])
        contact["modifiedAt"] = _now()
        return 204, None

    def _delete(self, request: Request, identifier: str) -> Any:
        contact = self._find(identifier)
        del self.contacts[contact["id"]]
        self._ids_by_email.pop(contact["email"], None)
        return 204, None

    def _events(self, request: Request) -> Any:
        limit = int(request.arg("limit", str(EVENTS_LIMIT)))
        if not 0 <= limit <= EVENTS_LIMIT:
            raise ApiError(400, {"code": "out_of_range", "message": f"limit should be between 0 and {EVENTS_LIMIT}"})
        offset = int(request.arg("offset", "0"))
        start, end, days = request.arg("startDate"), request.arg("endDate"), request.arg("days")
        today = _now().astimezone(self.timezone).date()
        if days and (start or end):
            raise ApiError(400, {"code": "invalid_parameter", "message": "days is not compatible with startDate "
                                 "and endDate"})
        if bool(start) != bool(end):
            raise ApiError(400, {"code": "invalid_parameter", "message": "startDate and endDate are both needed"})
        if start and end:
            try:
                first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
            except ValueError:
                raise ApiError(400, {"code": "invalid_parameter", "message": "Invalid date format"}) from None
            if first > last:
                raise ApiError(400, {"code": "invalid_parameter", "message": "startDate should be lower than "
                                     "equal to endDate"})
            if (last - first).days >= 90:
                raise ApiError(400, {"code": "invalid_parameter", "message": "The date range can not exceed 90 "
                                     "days"})
        else:
            if days and not 1 <= int(days) <= 90:
                raise ApiError(400, {"code": "invalid_parameter", "message": "days should be between 1 and 90"})
            last = today
            first = today - dt.timedelta(days=int(days or 30) - 1)
        found = [e for e in self.email_events if first <= e["at"].astimezone(self.timezone).date() <= last]
        for name, key in (("email", "email"), ("event", "event"), ("messageId", "messageId"), ("tags", "tag")):
            wanted = request.arg(name)
            if wanted:
                found = [e for e in found if str(e[key]).lower() == wanted.lower()]
        if request.arg("sort", "desc") == "desc":
            found.reverse()
        page = found[offset : offset + limit]
        return {"events": [self._event_view(e) for e in page]} if page else {}

    def _event_view(self, event: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in event.items() if k != "at" and v is not None}
        view["date"] = event["at"].astimezone(self.timezone).isoformat(timespec="milliseconds")
        return view

    def _campaign_stats(self, request: Request, identifier: str) -> Any:
        contact = self._find(identifier)
        start, end = request.arg("startDate"), request.arg("endDate")
        today = _now().date()
        if bool(start) != bool(end):
            raise ApiError(400, {"code": "invalid_parameter", "message": "startDate and endDate are both needed"})
        if start and end:
            first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
            if first > last or first > today or (last - first).days >= 90:
                raise ApiError(400, {"code": "invalid_parameter", "message": "Invalid date range: at most 90 days, "
                                     "startDate not after today"})
        else:
            first, last = today - dt.timedelta(days=89), today
        stats: dict[str, Any] = {key: [] for key in ("messagesSent", "delivered", "hardBounces", "softBounces",
                                                     "complaints", "opened", "clicked")}
        stats["unsubscriptions"] = {"userUnsubscription": [], "adminUnsubscription": []}
        for kind, campaign_id, at, url in self.campaign_activity.get(contact["id"], []):
            if not first <= at.date() <= last:
                continue
            when = _iso(at)
            if kind == "opened":
                stats["opened"].append({"campaignId": campaign_id, "count": 1, "eventTime": when, "ip": "10.0.0.7"})
            elif kind == "clicked":
                stats["clicked"].append({"campaignId": campaign_id, "links": [
                    {"count": 1, "eventTime": when, "ip": "10.0.0.7", "url": url}]})
            elif kind == "unsubscribed":
                stats["unsubscriptions"]["userUnsubscription"].append(
                    {"campaignId": campaign_id, "eventTime": when, "ip": "10.0.0.7"})
            else:
                stats[kind].append({"campaignId": campaign_id, "eventTime": when})
        return stats

    # -- a person in Brevo -------------------------------------------------------

    def campaign_event(self, email: str, kind: str, campaign_id: int, *, at: dt.datetime | None = None,
                       url: str | None = None) -> None:
        """A marketing campaign's event for a contact: messagesSent, delivered, opened,
        clicked, hardBounces, softBounces, complaints, unsubscribed."""
        with self.lock:
            contact = self._find(email)
            self.campaign_activity.setdefault(contact["id"], []).append((kind, campaign_id, at or _now(), url))
            if kind in ("hardBounces", "complaints", "unsubscribed"):
                contact["emailBlacklisted"] = True
                contact["modifiedAt"] = _now()


    def email_event(self, email: str, event: str, *, message_id: str | None = None, at: dt.datetime | None = None,
                    subject: str = "Ваш заказ", tag: str = "", reason: str | None = None, link: str | None = None,
                    ip: str | None = None) -> str:
        """Brevo records one event of a transactional e-mail; returns its message id."""
        assert event in EVENT_KINDS, event
        with self.lock:
            message_id = message_id or f"<2026{len(self.email_events) + 1:08d}.1@smtp-relay.mailin.fr>"
            self.email_events.append({"email": email.lower(), "at": at or _now(), "subject": subject,
                                      "messageId": message_id, "event": event, "tag": tag, "from": "shop@example.ru",
                                      "reason": reason, "link": link, "ip": ip})
            if event in ("hardBounces", "spam", "unsubscribed"):
                self.blocked.add(email.lower())
            return message_id


    def add(self, email: str, *, blacklisted: bool = False, **attributes: Any) -> int:
        with self.lock:
            contact = self._new(email.lower())
            contact["attributes"].update(attributes)
            contact["listIds"].add(2)
            contact["emailBlacklisted"] = blacklisted
            return contact["id"]

    def person_edits(self, email: str, *, blacklisted: bool | None = None, **attributes: Any) -> int:
        with self.lock:
            contact = self._find(email)
            contact["attributes"].update(attributes)
            if blacklisted is not None:
                contact["emailBlacklisted"] = blacklisted
            contact["modifiedAt"] = _now()
            return contact["id"]

    def by_email(self, email: str) -> dict[str, Any] | None:
        contact_id = self._ids_by_email.get(email.lower())
        return self.contacts.get(contact_id) if contact_id is not None else None
