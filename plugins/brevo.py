"""Brevo (formerly Sendinblue) API v3: the contacts of one list, read and written.

Reading pages through ``GET /contacts/lists/{id}/contacts`` (500 a page; every
contact with ``GET /contacts`` when no list is set), from the cursor on with
``modifiedSince``. A contact is a record keyed by Brevo's contact id, with its
attributes; ``emailBlacklisted`` reports an email opt-out, ``smsBlacklisted`` an SMS one.
A blacklist does not say why, so it is ``unsubscribed`` only where hub knows no opt-out:
a bounce hub imported blacklisted (below) stays ``bounced``, and a reason read later (a
campaign's hard bounce Brevo blacklisted itself) replaces it.

Writing imports contacts in bulk (``POST /contacts/import`` with ``jsonBody``, up to
``batch_size`` rows, ``updateExistingContacts``): opted-out (and hard-bounced) contacts go in an import
of their own with ``emailBlacklist``, so they are unsubscribed everywhere in Brevo; an
import never lifts a blacklist, so hub never subscribes an opted-out person again. The
import is asynchronous: hub waits for its process to complete, then reads the
contacts modified since to learn their ids; an address Brevo did not import is
rejected with that reason. An import repeated after a lost answer updates the same
contacts again, nothing more. Deleting removes the contact.

Message history: the transactional e-mail activity (``GET /smtp/statistics/events``,
2,500 events a page, oldest first, from the day before the cursor's on, asked as a
number of ``days`` back from Brevo's today) becomes events
on the recipient's client card: ``email_sent`` (Brevo's ``requests``, counted in
``messages_30d``), ``email_delivered``, ``email_open``, ``email_click``,
``email_bounce``, ``email_complaint``, ``email_unsubscribe`` and ``email_failed``
(blocked, invalid, error). A hard bounce reports the address ``bounced``, a spam
complaint ``complained``, an unsubscribe ``unsubscribed``. Events are history-only
records keyed by the address: they land on the contact holding it, whether or not it
is in the list. Brevo's API gives marketing campaign activity only as a file export or
one contact per call (``/contacts/{id}/campaignStats``): with ``campaign_stats`` hub asks
the latter for every list contact each sync (history-only records keyed by the
contact's id).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydantic import Field

from hub.connector import READ, WRITE, Connector, ConnectorContext
from hub.errors import FatalError, RetriableError
from hub.hookspecs import hookimpl
from hub.http import BatchOutcome, HeaderAuth, RejectedRequestError, ServiceOptions
from hub.model import (
    Checkpoint,
    ConsentReport,
    EventReport,
    OutboundItem,
    RawRecord,
    WriteResult,
)

IMPORT_LIMIT = 5000
ADDRESS_KEYS = ("email", "EMAIL")
#: Statuses imported with ``emailBlacklist``: a hard-bounced address too. Brevo does not
#: blacklist it itself, so its contact would read as subscribed again once an import
#: changed it, and lift the bounce the e-mail activity reported.
OPTED_OUT = ("unsubscribed", "complained", "bounced")
EVENTS_LIMIT = 2500
#: The report keeps 90 days; a range may not be longer.
EVENTS_DAYS = 90
#: Brevo's event names (the report's, and the webhook's spelling) -> hub's event type.
EVENT_TYPES = {
    "requests": "email_sent", "request": "email_sent", "sent": "email_sent",
    "delivered": "email_delivered",
    "opened": "email_open", "uniqueOpened": "email_open", "loadedByProxy": "email_open", "proxyOpen": "email_open",
    "clicks": "email_click", "clicked": "email_click",
    "hardBounces": "email_bounce", "hardBounce": "email_bounce", "softBounces": "email_bounce",
    "softBounce": "email_bounce",
    "spam": "email_complaint", "complaint": "email_complaint",
    "unsubscribed": "email_unsubscribe",
    "blocked": "email_failed", "invalid": "email_failed", "error": "email_failed",
}
#: Events that say something of the person's consent to e-mail.
EVENT_CONSENT = {"hardBounces": "bounced", "hardBounce": "bounced", "spam": "complained", "complaint": "complained",
                 "unsubscribed": "unsubscribed"}


class BrevoOptions(ServiceOptions):
    api_key: str = Field(description="API key (xkeysib-…): SMTP & API → API keys.")
    list_id: int | None = Field(None, description="The list contacts are read from and imported into.")
    endpoint: str | None = Field(None, description="Base URL of the API; default https://api.brevo.com/v3.")
    batch_size: int = Field(IMPORT_LIMIT, ge=1, le=IMPORT_LIMIT, description="Rows per import.")
    page_size: int = Field(500, ge=1, le=500)
    requests_per_second: float = Field(10.0, gt=0, description="Client-side pace (Brevo's limits depend on the plan).")
    import_polls: int = Field(30, ge=1, description="How many times to ask whether an import is done.")
    import_poll_seconds: float = Field(1.0, ge=0)
    email_events: bool = Field(True, description="Read the transactional e-mail activity (sends, deliveries, "
                               "opens, clicks, bounces, complaints, unsubscribes) as events.")
    events_days: int = Field(30, ge=1, le=EVENTS_DAYS, description="How many days back the first read of the "
                             "e-mail activity goes.")
    events_page_size: int = Field(EVENTS_LIMIT, ge=1, le=EVENTS_LIMIT)
    campaign_stats: bool = Field(False, description="Read each list contact's marketing campaign activity "
                                 "(sends, opens, clicks, bounces, complaints, unsubscribes): one request per "
                                 "contact per sync, for lists of a few thousand.")


def _timestamp(value: Any) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BrevoConnector(Connector):
    plugin = "brevo"
    Options = BrevoOptions
    capabilities = frozenset({READ, WRITE})
    description = ("Brevo contacts of a list with attributes and email/SMS blacklists, e-mail activity as events "
                   "(source, destination)")
    write_batch_size = IMPORT_LIMIT
    consent_channel = "email"

    def __init__(self, options: BrevoOptions, context: ConnectorContext, *,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(options, context)
        self.options: BrevoOptions = options
        self.sleep = sleep
        self.api = options.client(
            "Brevo", "https://api.brevo.com/v3", auth=HeaderAuth("api-key", options.api_key),
            secrets=[options.api_key], requests_per_second=options.requests_per_second,
            pacing_key=("brevo", options.api_key[-12:]), sleep=sleep,
        )

    @property
    def _contacts_path(self) -> str:
        return f"contacts/lists/{self.options.list_id}/contacts" if self.options.list_id else "contacts"

    # -- reading -------------------------------------------------------------

    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        cursors = _split_cursor(cursor)
        contacts_cursor = cursors.get("contacts")
        since = _timestamp(contacts_cursor) if contacts_cursor else None
        newest, newest_at = contacts_cursor, since
        for contact in self._pages(since - dt.timedelta(seconds=1) if since else None):
            changed = _timestamp(contact.get("modifiedAt"))
            yield self._record(contact, changed)
            if changed is not None and (newest_at is None or changed > newest_at):
                newest, newest_at = _iso(changed), changed
        cursors["contacts"] = newest
        for enabled, key, reader in ((self.options.email_events, "events", self._email_events),
                                     (self.options.campaign_stats, "campaigns", self._campaign_stats)):
            if not enabled:
                continue
            for item in reader(cursors.get(key)):
                if isinstance(item, str):
                    cursors[key] = item
                else:
                    yield item
        yield Checkpoint(_join_cursor(cursors), complete=since is None)

    def _email_events(self, cursor: str | None) -> Iterator[RawRecord | str]:
        """History-only records of the e-mail activity since the day before the cursor's
        (Brevo filters by whole days of the account's time zone; events read again are
        stored once); then the new cursor: the day of the newest event. The range is asked
        as ``days`` back from Brevo's own today, so an account's time zone, ahead of UTC or
        behind it, loses nothing and no date is in Brevo's future."""
        today = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)  # the account's today at most
        try:
            start = dt.date.fromisoformat(cursor) - dt.timedelta(days=1) if cursor else None
        except ValueError:
            start = None
        if start is None:
            days = self.options.events_days
        else:
            days = max(1, min(EVENTS_DAYS, (today - start).days + 1))
        newest = cursor
        offset = 0
        while True:
            try:
                page = self.api.get_json("smtp/statistics/events", params={
                    "limit": self.options.events_page_size, "offset": offset, "days": days, "sort": "asc",
                }, doing="reading the e-mail activity") or {}
            except RejectedRequestError:
                raise
            except FatalError as error:  # a key restricted to contacts may not read statistics
                raise FatalError(error.message, hint="give the API key access to transactional statistics, or "
                                 f"set email_events: false for connector {self.context.name!r}") from None
            rows = [row for row in page.get("events") or [] if isinstance(row, dict)]
            found: dict[str, tuple[list[EventReport], list[ConsentReport]]] = {}
            for row in rows:
                address = str(row.get("email") or "").strip().lower()
                at = _timestamp(row.get("date"))
                name = str(row.get("event") or "")
                kind = EVENT_TYPES.get(name)
                if not address or at is None or kind is None:
                    continue
                day = str(row.get("date"))[:10]
                newest = max(newest, day) if newest else day
                events, consents = found.setdefault(address, ([], []))
                events.append(_email_event(kind, address, at, row))
                if name in EVENT_CONSENT:
                    consents.append(ConsentReport("email", EVENT_CONSENT[name], at, (
                        ("brevo_event", name), ("message_id", str(row.get("messageId") or "")))))
            for address, (events, consents) in found.items():
                yield RawRecord(address, {"email": address}, events=tuple(events), consents=tuple(consents),
                                history_only=True)
            offset += len(page.get("events") or [])
            if len(page.get("events") or []) < self.options.events_page_size:
                break
        if newest is not None:
            yield newest

    def _campaign_stats(self, cursor: str | None) -> Iterator[RawRecord | str]:
        """History-only records of each list contact's campaign activity since the day
        before the cursor's (``/contacts/{id}/campaignStats``; the record key is the
        contact's id); then the new cursor: today."""
        today = dt.datetime.now(dt.timezone.utc).date()
        try:
            start = dt.date.fromisoformat(cursor) - dt.timedelta(days=1) if cursor else None
        except ValueError:
            start = None
        if start is None:
            start = today - dt.timedelta(days=self.options.events_days - 1)
        start = max(min(start, today), today - dt.timedelta(days=EVENTS_DAYS - 1))
        for contact in self._pages(None):
            contact_id = str(contact.get("id"))
            stats = self.api.get_json(f"contacts/{contact_id}/campaignStats", params={
                "startDate": start.isoformat(), "endDate": today.isoformat()}, accept=(404,),
                doing="reading a contact's campaign activity") or {}
            events, consents = _campaign_events(contact_id, stats)
            if events:
                yield RawRecord(contact_id, {}, events=events, consents=consents, history_only=True)
        yield today.isoformat()

    def _pages(self, since: dt.datetime | None) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"limit": self.options.page_size, "sort": "asc"}
        if since is not None:
            params["modifiedSince"] = _iso(since)
        offset = 0
        while True:
            page = self.api.get_json(self._contacts_path, params={**params, "offset": offset},
                                     doing="listing contacts") or {}
            contacts = page.get("contacts") or []
            yield from contacts
            offset += len(contacts)
            if not contacts or offset >= int(page.get("count") or 0):
                return

    def _record(self, contact: dict[str, Any], changed: dt.datetime | None) -> RawRecord:
        values = {"email": contact.get("email")}
        values.update({k: v for k, v in (contact.get("attributes") or {}).items() if v not in (None, "")})
        # a blacklist does not say why (an unsubscribe, a complaint, a hard bounce, a block
        # by hand, hub's import of an opted-out contact): it leaves an opt-out hub knows as it is
        blacklisted = bool(contact.get("emailBlacklisted"))
        reports = [ConsentReport("email", "unsubscribed" if blacklisted else "subscribed", changed,
                                 (("brevo_emailBlacklisted", str(blacklisted)),), blocklist=blacklisted)]
        if contact.get("smsBlacklisted"):
            reports.append(ConsentReport("sms", "unsubscribed", changed, (("brevo_smsBlacklisted", "True"),),
                                         blocklist=True))
        return RawRecord(str(contact.get("id")), values, updated_at=changed, consents=tuple(reports))

    # -- writing -------------------------------------------------------------

    def write(self, items: Sequence[OutboundItem]) -> list[WriteResult]:
        outcome = BatchOutcome(item.contact_id for item in items)
        allowed: list[tuple[OutboundItem, dict[str, Any]]] = []
        withdrawn: list[tuple[OutboundItem, dict[str, Any]]] = []
        for item in items:
            if item.op == "delete":
                self._delete(item, outcome)
                continue
            email = next((str(item.values[k]).strip() for k in ADDRESS_KEYS if item.values.get(k)), "")
            if not email:
                outcome.rejected(item.contact_id, "no e-mail address")
                continue
            row = {"email": email, "attributes": {k: v for k, v in item.values.items()
                                                  if k not in ADDRESS_KEYS and v is not None}}
            (withdrawn if item.consent in OPTED_OUT else allowed).append((item, row))
        for group, blacklist in ((allowed, False), (withdrawn, True)):
            # rows with an attribute to clear ("": a category or segment the contact no longer
            # has) go in imports of their own, with emptyContactsAttributes
            for erase in (False, True):
                rows = [pair for pair in group if ("" in pair[1]["attributes"].values()) is erase]
                for start in range(0, len(rows), self.options.batch_size):
                    self._import(rows[start : start + self.options.batch_size], blacklist, outcome, erase=erase)
        return outcome.as_list()

    def _import(self, chunk: list[tuple[OutboundItem, dict[str, Any]]], blacklist: bool,
                outcome: BatchOutcome, *, erase: bool = False) -> None:
        by_email = {row["email"].lower(): item.contact_id for item, row in chunk}
        body: dict[str, Any] = {"jsonBody": [row for _, row in chunk], "updateExistingContacts": True,
                                "emptyContactsAttributes": erase, "emailBlacklist": blacklist}
        if self.options.list_id:
            body["listIds"] = [self.options.list_id]
        try:
            response = self.api.request("POST", "contacts/import", json_body=body, idempotent=True,
                                        doing=f"importing {len(chunk)} contacts")
            started = _server_time(response.headers) - dt.timedelta(seconds=1)
            process = (self.api.json(response) or {}).get("processId")
            if process is not None and not self._wait_for(process):
                outcome.fail_pending("Brevo has not finished the import yet; sent again next run", by_email.values())
                return
            waiting = set(by_email.values())
            for contact in self._pages(started):
                contact_id = by_email.get(str(contact.get("email") or "").lower())
                if contact_id is not None and contact_id not in outcome.results:
                    outcome.ok(contact_id, str(contact["id"]))
                    waiting.discard(contact_id)
                    if not waiting:
                        break  # every row found: the rest of the pages are not needed
        except RetriableError as error:
            outcome.fail_pending(error.message, by_email.values())
            return
        # a refused import (an unknown list) is raised: Brevo skips the rows it cannot take
        # and says so in its report, so the refusal is not about them, and they stay queued
        for contact_id in by_email.values():
            if contact_id not in outcome.results:
                outcome.rejected(contact_id, "Brevo did not import this address (invalid or refused)")

    def _wait_for(self, process_id: Any) -> bool:
        for attempt in range(self.options.import_polls):
            state = self.api.get_json(f"processes/{process_id}", doing="checking an import") or {}
            if state.get("status") == "completed":
                return True
            self.sleep(self.options.import_poll_seconds * (1 if attempt < 5 else 2))
        return False

    def _delete(self, item: OutboundItem, outcome: BatchOutcome) -> None:
        try:
            self.api.request("DELETE", f"contacts/{item.external_id}", accept=(404,), doing="deleting a contact")
        except RetriableError as error:
            outcome.retriable(item.contact_id, error.message)
            return
        except RejectedRequestError as error:
            outcome.rejected(item.contact_id, error.message)
            return
        outcome.ok(item.contact_id, item.external_id)

    def close(self) -> None:
        self.api.close()


def _email_event(kind: str, address: str, at: dt.datetime, row: dict[str, Any]) -> EventReport:
    message = str(row.get("messageId") or "")
    if kind == "email_sent":
        external_id = f"{message}|{address}"  # one send per message and recipient
    else:
        external_id = f"{message}|{address}|{row.get('event')}|{at.isoformat()}"
    payload = [("brevo_event", str(row.get("event")))]
    for key in ("subject", "tag", "from", "reason", "link", "templateId"):
        if row.get(key) not in (None, ""):
            payload.append((key, str(row[key])[:500]))
    if str(row.get("event")) in ("softBounces", "softBounce"):
        payload.append(("bounce", "soft"))
    elif str(row.get("event")) in ("hardBounces", "hardBounce"):
        payload.append(("bounce", "hard"))
    return EventReport(kind, external_id[:512], at, tuple(payload))


#: campaignStats keys -> hub's event type and the consent it reports.
CAMPAIGN_EVENTS = {"messagesSent": ("email_sent", None), "delivered": ("email_delivered", None),
                   "hardBounces": ("email_bounce", "bounced"), "softBounces": ("email_bounce", None),
                   "complaints": ("email_complaint", "complained")}


def _campaign_events(contact_id: str, stats: dict[str, Any]) -> tuple[tuple[EventReport, ...],
                                                                     tuple[ConsentReport, ...]]:
    """Events and consents of one contact's campaign statistics (the reader's IP is left out)."""
    events: list[EventReport] = []
    consents: list[ConsentReport] = []

    def add(kind: str, campaign: Any, at: Any, extra: tuple[tuple[str, str], ...] = (), *,
            once: bool = False, consent: str | None = None) -> None:
        when = _timestamp(at)
        if when is None or campaign is None:
            return
        key = f"campaign:{campaign}|{contact_id}" + ("" if once else f"|{kind}|{when.isoformat()}")
        events.append(EventReport(kind, key, when, (("campaign", str(campaign)), *extra)))
        if consent is not None:
            consents.append(ConsentReport("email", consent, when, (("brevo_campaign", str(campaign)),
                                                                   ("brevo_event", kind))))

    for name, (kind, consent) in CAMPAIGN_EVENTS.items():
        for row in stats.get(name) or []:
            if isinstance(row, dict):
                extra = (("bounce", "hard" if name == "hardBounces" else "soft"),) if kind == "email_bounce" else ()
                add(kind, row.get("campaignId"), row.get("eventTime"), extra,
                    once=kind in ("email_sent", "email_delivered"), consent=consent)
    for row in stats.get("opened") or []:
        if isinstance(row, dict):
            add("email_open", row.get("campaignId"), row.get("eventTime"))
    for row in stats.get("clicked") or []:
        for link in (row.get("links") or []) if isinstance(row, dict) else []:
            if isinstance(link, dict):
                add("email_click", row.get("campaignId"), link.get("eventTime"),
                    (("link", str(link.get("url") or "")[:500]),))
    unsubscriptions = stats.get("unsubscriptions") or {}
    for row in unsubscriptions.get("userUnsubscription") or [] if isinstance(unsubscriptions, dict) else []:
        if isinstance(row, dict):
            add("email_unsubscribe", row.get("campaignId"), row.get("eventTime"), consent="unsubscribed")
    events.sort(key=lambda event: (event.at, event.type))
    return tuple(events), tuple(consents)


def _split_cursor(cursor: str | None) -> dict[str, str | None]:
    """The contacts', the e-mail activity's and the campaigns' cursors (a lone timestamp is the contacts')."""
    if cursor and cursor.startswith("{"):
        return dict(json.loads(cursor))
    return {"contacts": cursor}


def _join_cursor(cursors: dict[str, str | None]) -> str | None:
    if not any(value is not None for key, value in cursors.items() if key != "contacts"):
        return cursors.get("contacts")
    return json.dumps(cursors, sort_keys=True)


def _server_time(headers: Any) -> dt.datetime:
    """The server's clock (``Date``), so reading back does not depend on ours."""
    try:
        return email.utils.parsedate_to_datetime(headers["Date"]).astimezone(dt.timezone.utc)
    except (KeyError, TypeError, ValueError):
        return dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)


__all__ = ["BrevoConnector", "BrevoOptions"]


@hookimpl
def hub_connectors(register):
    register(BrevoConnector)
