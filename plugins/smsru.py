"""SMS.ru: the stop list, read and written.

SMS.ru keeps a stop list of numbers no message goes to. Reading it (``/stoplist/get``)
reports each number's SMS consent as ``unsubscribed``; the cursor is a digest of the
list, so an unchanged list yields nothing. Writing adds the numbers of contacts who
opted out of SMS anywhere (a STOP to Twilio, Brevo's SMS blacklist) with
``/stoplist/add``; hub never removes a number from it. SMS.ru takes its key
(``api_id``) as a request parameter: hub sends it in the POST body, never in the URL,
and masks it everywhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import requests
from pydantic import Field

from hub.connector import READ, WRITE, Connector, ConnectorContext
from hub.errors import FatalError, RetriableError
from hub.hookspecs import hookimpl
from hub.http import BatchOutcome, RejectedRequestError, ServiceOptions
from hub.model import Checkpoint, ConsentReport, OutboundItem, RawRecord, WriteResult

PHONE_KEYS = ("phone", "Phone", "SMS")
#: SMS.ru's own codes: credentials, and "too many requests" (retried like a 429).
AUTH_CODES = {200, 300, 301, 302}
RATE_CODES = {230, 231, 232}


class SmsRuOptions(ServiceOptions):
    api_id: str = Field(description="The api_id of the account (sms.ru → Programmers → API).")
    endpoint: str | None = Field(None, description="Base URL; default https://sms.ru.")
    stoplist_text: str = Field("hub: opted out", description="The note stored with numbers hub adds.")
    requests_per_second: float = Field(5.0, gt=0)


def _status_code(response: requests.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    try:
        return int(body.get("status_code")) if isinstance(body, dict) else None
    except (TypeError, ValueError):
        return None


def digits(phone: Any) -> str:
    return re.sub(r"\D", "", str(phone or ""))


class SmsRuConnector(Connector):
    plugin = "smsru"
    Options = SmsRuOptions
    capabilities = frozenset({READ, WRITE})
    description = "SMS.ru stop list: SMS opt-outs read and added (source, destination)"
    write_batch_size = 100
    consent_channel = "sms"
    suppression_list = True

    def __init__(self, options: SmsRuOptions, context: ConnectorContext):
        super().__init__(options, context)
        self.options: SmsRuOptions = options
        self.api = options.client(
            "SMS.ru", "https://sms.ru", secrets=[options.api_id], requests_per_second=options.requests_per_second,
            rate_limited=lambda response: _status_code(response) in RATE_CODES,
            pacing_key=("smsru", hashlib.sha256(options.api_id.encode()).hexdigest()),
        )

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
        stoplist = self._call("stoplist/get", {}, "reading the stop list").get("stoplist") or {}
        digest = hashlib.sha256(json.dumps(stoplist, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]
        if cursor != digest:
            for phone, note in sorted(stoplist.items()):
                proof = (("smsru_stoplist", str(note or "")),)
                yield RawRecord(digits(phone), {"phone": "+" + digits(phone), "note": note or ""},
                                consents=(ConsentReport("sms", "unsubscribed", None, proof),))
        yield Checkpoint(digest, complete=True)

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


__all__ = ["SmsRuConnector", "SmsRuOptions"]


@hookimpl
def hub_connectors(register):
    register(SmsRuConnector)
