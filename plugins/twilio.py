"""Twilio: SMS opt-outs read from the message history.

Twilio handles STOP itself: a person who texts STOP (STOPALL, UNSUBSCRIBE, CANCEL, END,
QUIT, and the like) receives nothing more from the number until they text START (YES,
UNSTOP); a later send to them fails with error 21610. hub reads the account's
messages (``GET /Accounts/{sid}/Messages.json``, 1,000 a page, newest first, from the
day of the cursor on) and reports, per number, the SMS consent its latest keyword
says: ``unsubscribed`` after STOP or a 21610 failure, ``subscribed`` after START. The
record key is the number. Every message is also an event on the client card
(``sms_sent`` with its delivery status, ``sms_received``), which counts towards
``messages_30d``. Numbers without an opt-out are history: they land on the contact holding the number,
and a number no contact holds (a stranger's text, a send to a mistyped number) adds no
contact. A number whose latest word is an opt-out is a record of its own, so the opt-out
holds whoever holds the number, now or later. hub sends no SMS; Twilio is a source only.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Iterator
from typing import Any

from pydantic import Field

from hub.connector import READ, Connector, ConnectorContext
from hub.hookspecs import hookimpl
from hub.http import ServiceOptions
from hub.model import Checkpoint, ConsentReport, EventReport, RawRecord

PAGE_LIMIT = 1000
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "СТОП"})
START_WORDS = frozenset({"START", "YES", "UNSTOP", "OPTIN"})
#: "Attempt to send to unsubscribed recipient"
OPTED_OUT_ERROR = 21610


class TwilioOptions(ServiceOptions):
    account_sid: str = Field(description="Account SID (AC…), Console → Account info.")
    auth_token: str = Field(description="Auth Token (or an API key secret with api_key_sid).")
    api_key_sid: str | None = Field(None, description="API key SID (SK…) to authenticate with instead of the SID.")
    endpoint: str | None = Field(None, description="Base URL; default https://api.twilio.com.")
    page_size: int = Field(PAGE_LIMIT, ge=1, le=PAGE_LIMIT)
    requests_per_second: float = Field(10.0, gt=0)


def keyword(body: Any) -> str | None:
    """The opt-out or opt-in keyword a message is, if it is one (Twilio matches the whole
    message, case-insensitively, ignoring surrounding spaces and punctuation)."""
    word = re.sub(r"[^\w]", "", str(body or "")).upper()
    if word in STOP_WORDS:
        return "unsubscribed"
    if word in START_WORDS:
        return "subscribed"
    return None


class TwilioConnector(Connector):
    plugin = "twilio"
    Options = TwilioOptions
    capabilities = frozenset({READ})
    description = "Twilio message history: SMS opt-outs (STOP) and opt-ins (START) (source)"
    consent_channel = "sms"

    def __init__(self, options: TwilioOptions, context: ConnectorContext):
        super().__init__(options, context)
        self.options: TwilioOptions = options
        user = options.api_key_sid or options.account_sid
        self.api = options.client("Twilio", "https://api.twilio.com", auth=(user, options.auth_token),
                                  secrets=[options.auth_token], requests_per_second=options.requests_per_second,
                                  pacing_key=("twilio", options.account_sid))

    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        params: dict[str, Any] = {"PageSize": self.options.page_size}
        if cursor:
            params["DateSent>"] = cursor  # the whole day again: a day is the filter's resolution
        latest: dict[str, tuple[dt.datetime, str, dict[str, Any]]] = {}
        history: dict[str, list[EventReport]] = {}
        newest: dt.date | None = dt.date.fromisoformat(cursor) if cursor else None
        path: str | None = f"2010-04-01/Accounts/{self.options.account_sid}/Messages.json"
        while path:
            page = self.api.get_json(path, params=params, doing="listing messages") or {}
            for message in page.get("messages") or []:
                sent = _when(message.get("date_sent") or message.get("date_created"))
                if sent is None:
                    continue
                newest = max(newest, sent.date()) if newest else sent.date()
                if message.get("direction") == "inbound":
                    number, status = message.get("from"), keyword(message.get("body"))
                else:
                    number = message.get("to")
                    status = "unsubscribed" if _int(message.get("error_code")) == OPTED_OUT_ERROR else None
                if not number:
                    continue
                history.setdefault(number, []).append(_event(message, sent))
                if status is None:
                    continue
                if number not in latest or sent > latest[number][0]:
                    latest[number] = (sent, status, message)
            next_uri = page.get("next_page_uri")
            path, params = (self.api.base_url + next_uri, {}) if next_uri else (None, params)
        for number in sorted(history):
            consents: tuple[ConsentReport, ...] = ()
            if number in latest:
                sent, status, message = latest[number]
                proof = (("message_sid", str(message.get("sid"))), ("text", str(message.get("body") or "")[:160]),
                         ("direction", str(message.get("direction"))))
                if message.get("error_code"):
                    proof += (("error_code", str(message.get("error_code"))),)
                consents = (ConsentReport("sms", status, sent, proof),)
            events = tuple(sorted(history[number], key=lambda event: (event.at, event.external_id)))
            # history: it lands on the contact holding the number; a stranger's text or a
            # send to a mistyped number adds no contact. An opt-out is a record all the same:
            # it must hold for a number no one (or a family) holds, also once its holder arrives
            opted_out = any(report.status == "unsubscribed" for report in consents)
            yield RawRecord(re.sub(r"\D", "", number), {"phone": number}, updated_at=events[-1].at,
                            consents=consents, events=events, history_only=not opted_out)
        yield Checkpoint(newest.isoformat() if newest else cursor)

    def close(self) -> None:
        self.api.close()


def _event(message: dict[str, Any], sent: dt.datetime) -> EventReport:
    inbound = message.get("direction") == "inbound"
    payload = [("status", str(message.get("status") or "")), ("direction", str(message.get("direction") or ""))]
    if message.get("error_code"):
        payload.append(("error_code", str(message["error_code"])))
    if inbound:
        payload.append(("text", str(message.get("body") or "")[:160]))
    return EventReport("sms_received" if inbound else "sms_sent", str(message.get("sid")), sent, tuple(payload))


def _when(value: Any) -> dt.datetime | None:
    try:
        return email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


__all__ = ["TwilioConnector", "TwilioOptions", "keyword"]


@hookimpl
def hub_connectors(register):
    register(TwilioConnector)
