"""SMS.ru: the stop list, read and written, and the delivery status of messages.

SMS.ru keeps a stop list of numbers no message goes to. Reading it (``/stoplist/get``)
reports each number's SMS consent as ``unsubscribed``; an unchanged list (the same
digest) yields nothing. Writing adds the numbers of contacts who opted out of SMS
anywhere (a STOP to Twilio, Brevo's SMS blacklist) with ``/stoplist/add``; hub never
removes a number from it. SMS.ru takes its key (``api_id``) as a request parameter:
hub sends it in the POST body, never in the URL, and masks it everywhere.

Message history: hub sends no SMS and SMS.ru has no list of sent messages, so the
system that sends them tells hub what it sent: it POSTs to ``hub serve`` at
``/hooks/<name>?token=…`` the answer SMS.ru gave its ``/sms/send`` (or
``{"sms_id", "phone", "sent_at"?}``, or a list of those under ``messages``). Each
message becomes an ``sms_sent`` event of the contact holding the number (counted in
``messages_30d``). SMS.ru's status callback, registered with the same URL, reports
status changes (``data[]=sms_status\n<id>\n<code>\n<time>``, answered ``100``); and each
sync asks ``/sms/status`` (100 ids a call) about messages with no final status yet, for
``status_days``. A delivered message (103) becomes ``sms_delivered``, a failed one
(104-108, 150, or an id SMS.ru does not know) ``sms_failed`` with SMS.ru's code and text.
The messages awaiting a status are kept in the cursor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl

import requests
from pydantic import Field

from hub.connector import READ, WRITE, Connector, ConnectorContext
from hub.errors import FatalError, RetriableError
from hub.hookspecs import hookimpl
from hub.http import BatchOutcome, RejectedRequestError, ServiceOptions, response_message
from hub.model import (
    Checkpoint,
    ConsentReport,
    EventReport,
    OutboundItem,
    RawRecord,
    WriteResult,
)
from hub.redact import register_secret
from hub.webhooks import WEBHOOK, Accepted, Probe, Rejected, WebhookRequest

PHONE_KEYS = ("phone", "Phone", "SMS")
#: SMS.ru's own codes: credentials, and "too many requests" (retried like a 429).
AUTH_CODES = {200, 300, 301, 302}
RATE_CODES = {230, 231, 232}
#: "Service temporarily unavailable" and "server error, repeat the request": retried, never a refusal.
TEMPORARY_CODES = {220, 500}
#: Message status codes: on the way (checked again), delivered; any other is a final failure.
PENDING_CODES = {100, 101, 102}
DELIVERED_CODES = {103, 110}
STATUS_BATCH = 100
INBOX_PAGE = 1000


class SmsRuOptions(ServiceOptions):
    api_id: str = Field(description="The api_id of the account (sms.ru → Programmers → API).")
    endpoint: str | None = Field(None, description="Base URL; default https://sms.ru.")
    stoplist_text: str = Field("hub: opted out", description="The note stored with numbers hub adds.")
    requests_per_second: float = Field(5.0, gt=0)
    token: str | None = Field(None, description="Secret token in the URL hub serve receives the message log and "
                              "SMS.ru's status callback at: /hooks/<name>?token=…")
    message_status: bool = Field(True, description="Ask SMS.ru for the status of messages that have none final yet.")
    status_days: int = Field(3, ge=1, le=30, description="How many days a message's status is waited for.")
    max_body: int = Field(1_000_000, gt=0, description="Largest body hub serve accepts, in bytes.")


def _status_code(response: requests.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    try:
        return int(body.get("status_code")) if isinstance(body, dict) else None
    except (TypeError, ValueError):
        return None


def _error_text(response: requests.Response) -> str:
    """SMS.ru's words about a failed call: ``status_text (code N)``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("status_text"):
        return f"{body['status_text']} (code {_status_code(response)})"
    return response_message(response)


def digits(phone: Any) -> str:
    return re.sub(r"\D", "", str(phone or ""))


def _number(phone: Any) -> str:
    """A number as the sender wrote it, reduced to its digits: with its ``+`` when it has
    one; one without (``8 916 …``, ``916 …``) is read in the project's default region."""
    text = str(phone or "").strip()
    return "+" + digits(text) if text.startswith("+") and digits(text) else digits(text)


class SmsRuConnector(Connector):
    plugin = "smsru"
    Options = SmsRuOptions
    capabilities = frozenset({READ, WRITE, WEBHOOK})
    description = "SMS.ru stop list: SMS opt-outs read and added; message delivery status (source, destination)"
    write_batch_size = 100
    consent_channel = "sms"
    suppression_list = True

    def __init__(self, options: SmsRuOptions, context: ConnectorContext):
        super().__init__(options, context)
        self.options: SmsRuOptions = options
        self.api = options.client(
            "SMS.ru", "https://sms.ru", secrets=[options.api_id], requests_per_second=options.requests_per_second,
            rate_limited=lambda response: _status_code(response) in RATE_CODES | TEMPORARY_CODES,
            error_message=_error_text,
            pacing_key=("smsru", hashlib.sha256(options.api_id.encode()).hexdigest()),
        )
        if options.token:
            register_secret(options.token)

    def _call(self, method: str, form: dict[str, Any], doing: str) -> dict[str, Any]:
        response = self.api.request("POST", method, data={"api_id": self.options.api_id, "json": 1, **form},
                                    idempotent=True, doing=doing)
        body = self.api.json(response) or {}
        if body.get("status") == "OK":
            return body
        code = _status_code(response)
        message = f"SMS.ru: {doing}: {body.get('status_text') or 'error'} (code {code})"
        if code in AUTH_CODES:
            raise FatalError(message, hint="check api_id in hub.yaml")
        raise RejectedRequestError(message, 200, body)

    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        state = _State.load(cursor)
        stoplist = self._call("stoplist/get", {}, "reading the stop list").get("stoplist") or {}
        digest = hashlib.sha256(json.dumps(stoplist, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]
        listed = state.stoplist != digest
        if listed:
            for phone, note in sorted(stoplist.items()):
                proof = (("smsru_stoplist", str(note or "")),)
                yield RawRecord(digits(phone), {"phone": "+" + digits(phone), "note": note or ""},
                                consents=(ConsentReport("sms", "unsubscribed", None, proof),))
            state.stoplist = digest
        yield from self._messages(state)
        # an unchanged stop list was not read again, so nothing can be told gone from it
        yield Checkpoint(state.dump(), complete=listed)

    # -- message history -----------------------------------------------------

    def _messages(self, state: _State) -> Iterator[RawRecord]:
        """Messages the sender reported and statuses SMS.ru called back with (hub serve's
        inbox), then the status of messages still on their way."""
        now = dt.datetime.now(dt.timezone.utc)
        for row in self._inbox(state):
            received = _aware(row.received_at)
            fields = _loads(row.fields)
            for sms_id, phone, sent in _loads(fields.get("sms_sent")) or []:
                at = _parse_time(sent) or received
                if sms_id in state.pending or not digits(phone):
                    continue
                yield _history(phone, EventReport("sms_sent", sms_id, at, (("sms_id", sms_id),)))
                state.pending[sms_id] = [phone, at.isoformat()]
            for sms_id, code, at in _loads(fields.get("sms_status")) or []:
                if _int(code) is not None and _final(int(code)):  # on-the-way statuses change nothing
                    state.reported[str(sms_id)] = [code, at, row.id]
        for sms_id, (code, at, _) in sorted(state.reported.items()):
            if sms_id in state.pending and _final(int(code)):
                yield self._settle(state, sms_id, int(code), "", _parse_time(at) or now)
        if self.options.message_status:
            waiting = sorted(state.pending)
            for start in range(0, len(waiting), STATUS_BATCH):
                chunk = waiting[start : start + STATUS_BATCH]
                answer = self._call("sms/status", {"sms_id": ",".join(chunk)},
                                    f"checking the status of {len(chunk)} messages").get("sms") or {}
                for sms_id in chunk:
                    status = answer.get(sms_id)
                    if not isinstance(status, dict):
                        continue
                    code = _int(status.get("status_code"))
                    if code is not None and _final(code):
                        yield self._settle(state, sms_id, code, str(status.get("status_text") or ""), now,
                                           status.get("cost"))
        # a message with no final status after status_days is no longer waited for
        horizon = now - dt.timedelta(days=self.options.status_days)
        for sms_id, (_, sent) in list(state.pending.items()):
            if (_parse_time(sent) or now) < horizon:
                del state.pending[sms_id]
        for sms_id, (_, at, _) in list(state.reported.items()):
            if sms_id not in state.pending and (_parse_time(at) or now) < horizon:
                del state.reported[sms_id]

    def _settle(self, state: _State, sms_id: str, code: int, text: str, at: dt.datetime,
                cost: Any = None) -> RawRecord:
        phone, sent = state.pending.pop(sms_id)
        state.reported.pop(sms_id, None)
        at = max(at, _parse_time(sent) or at)  # SMS.ru's times are whole seconds: never before the send
        kind = "sms_delivered" if code in DELIVERED_CODES else "sms_failed"
        payload = [("sms_id", sms_id), ("status_code", str(code))]
        if text:
            payload.append(("status_text", text[:300]))
        if cost is not None:
            payload.append(("cost", str(cost)))
        return _history(phone, EventReport(kind, sms_id, at, tuple(payload)))

    def _inbox(self, state: _State) -> Iterator[Any]:
        """Rows ``hub serve`` stored for this connector after the cursor's."""
        from sqlalchemy import and_, select, text

        from hub.store.schema import inbox

        store = self.context.store
        if store is None:
            return
        while True:
            with store.begin(read_only=True) as c:
                if c.dialect.name == "postgresql":
                    # rows that took a smaller id are committed before this reads (as the webhook connector)
                    c.execute(text("LOCK TABLE inbox IN SHARE MODE"))
                rows = c.execute(select(inbox).where(and_(inbox.c.connector == self.context.name,
                                                          inbox.c.id > state.inbox))
                                 .order_by(inbox.c.id).limit(INBOX_PAGE)).all()
            for row in rows:
                yield row
                state.inbox = row.id
            if len(rows) < INBOX_PAGE:
                return

    # -- receiving (hub serve) -------------------------------------------------

    @property
    def max_body(self) -> int:
        return self.options.max_body

    def receive(self, request: WebhookRequest) -> Accepted | Probe | Rejected:
        """The sender's message log (JSON) or SMS.ru's status callback (a form); never raises."""
        token = self.options.token
        if not token:
            return Rejected(401, "set `token` for this connector in hub.yaml to receive the message log and "
                                 "SMS.ru's status callback")
        given = request.query.get("token")
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            return Rejected(401, "wrong or missing token")
        delivery = request.headers.get("x-hub-delivery") or "sha256:" + hashlib.sha256(request.body).hexdigest()
        try:
            if "json" not in request.media_type:  # SMS.ru's callback, or a form
                pairs = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, max_num_fields=1000)
                statuses = _callback_statuses(pairs)
                if statuses:
                    return Accepted(delivery[:200], {"sms_status": json.dumps(statuses)}, reply="100")
                if any(key.startswith("data[") for key, _ in pairs):
                    return Probe(reply="100")  # SMS.ru's test, or a callback of another kind: nothing to keep
                sent = _sent_messages(dict(pairs))
            else:
                sent = _sent_messages(json.loads(request.body.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, TypeError, AttributeError) as error:
            return Rejected(400, f"unparseable body: {error}")
        except RecursionError:  # [[[[... : the JSON parser's stack
            return Rejected(400, "unparseable body: JSON nested too deeply")
        if not sent:
            return Rejected(400, "no message: expected SMS.ru's /sms/send answer, {sms_id, phone} or "
                                 "data[]=sms_status lines")
        return Accepted(delivery[:200], {"sms_sent": json.dumps(sent)})

    def write(self, items: Sequence[OutboundItem]) -> list[WriteResult]:
        outcome = BatchOutcome(item.contact_id for item in items)
        for item in items:
            phone = digits(next((item.values[k] for k in PHONE_KEYS if item.values.get(k)), item.external_id))
            if item.op == "delete" or item.consent not in ("unsubscribed", "complained"):
                outcome.ok(item.contact_id, phone or item.external_id)  # hub never takes a number off the list
                continue
            if not phone:
                outcome.rejected(item.contact_id, "no phone number")
                continue
            try:
                self._call("stoplist/add", {"stoplist_phone": phone, "stoplist_text": self.options.stoplist_text},
                           "adding a number to the stop list")
            except RejectedRequestError as error:
                outcome.rejected(item.contact_id, error.message)
                continue
            except RetriableError as error:
                outcome.retriable(item.contact_id, error.message)
                continue
            outcome.ok(item.contact_id, phone)
        return outcome.as_list()

    def close(self) -> None:
        self.api.close()


class _State:
    """The cursor: the stop list's digest, the last inbox row read, the messages awaiting
    a final status (id -> number, sent) and statuses called back before their message was
    reported (id -> code, time, inbox row)."""

    def __init__(self, stoplist: str | None = None, inbox: int = 0, pending: dict[str, list[str]] | None = None,
                 reported: dict[str, list[Any]] | None = None):
        self.stoplist = stoplist
        self.inbox = inbox
        self.pending = pending or {}
        self.reported = reported or {}

    @classmethod
    def load(cls, cursor: str | None) -> _State:
        if cursor and cursor.startswith("{"):
            data = json.loads(cursor)
            return cls(data.get("stoplist"), int(data.get("inbox") or 0), data.get("pending"), data.get("reported"))
        return cls(cursor)  # a lone digest: the stop list's cursor before message history

    def dump(self) -> str:
        return json.dumps({"stoplist": self.stoplist, "inbox": self.inbox, "pending": self.pending,
                           "reported": self.reported}, sort_keys=True)


def _final(code: int) -> bool:
    return code not in PENDING_CODES


def _history(phone: str, event: EventReport) -> RawRecord:
    """``phone``: ``+`` and digits, or the digits of a number written without a country code."""
    return RawRecord(digits(phone), {"phone": phone}, events=(event,), history_only=True)


def _callback_statuses(pairs: list[tuple[str, str]]) -> list[list[Any]]:
    """``data[]`` entries of SMS.ru's callback: ``sms_status\n<id>\n<code>\n<unix time>``."""
    found: list[list[Any]] = []
    for key, value in pairs:
        if not key.startswith("data["):
            continue
        lines = value.replace("\r", "").split("\n")
        if len(lines) >= 3 and lines[0] == "sms_status" and lines[1].strip() and _int(lines[2]) is not None:
            at = _int(lines[3]) if len(lines) > 3 else None
            found.append([lines[1].strip()[:100], _int(lines[2]), _unix_time(at)])
    return found


def _unix_time(value: int | None) -> str | None:
    """A unix time as ISO text; ``None`` for none, or one no calendar holds (the status
    is kept, dated when it is read)."""
    if not value:
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).isoformat()
    except (ValueError, OverflowError, OSError):
        return None


def _sent_messages(body: Any) -> list[list[Any]]:
    """``[sms_id, phone, sent_at]`` of a message log: SMS.ru's ``/sms/send`` answer,
    ``{"sms_id", "phone", "sent_at"}`` or ``{"messages": [...]}`` of those."""
    if isinstance(body, list):
        return [m for item in body for m in _sent_messages(item)]
    if not isinstance(body, dict):
        raise TypeError("expected a JSON object")
    if isinstance(body.get("messages"), list):
        return _sent_messages(body["messages"])
    if isinstance(body.get("sms"), dict):  # the answer of /sms/send: number -> result
        return [[str(result["sms_id"])[:100], "+" + digits(number), None] for number, result in body["sms"].items()
                if isinstance(result, dict) and result.get("sms_id") and digits(number)]
    if body.get("sms_id") and digits(body.get("phone")):
        return [[str(body["sms_id"])[:100], _number(body["phone"]), body.get("sent_at")]]
    return []


def _loads(value: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else {}
    except ValueError:
        return {}


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return _aware(parsed)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


__all__ = ["SmsRuConnector", "SmsRuOptions"]


@hookimpl
def hub_connectors(register):
    register(SmsRuConnector)
