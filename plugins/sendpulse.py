"""SendPulse (REST API, OAuth client credentials): one address book, read and written.

hub fetches an access token with the client id and secret (``POST
/oauth/access_token``), fetches a new one once when the API refuses it, and paces its
requests to SendPulse's 10 a second.

Reading lists the whole address book (``GET /addressbooks/{id}/emails``, 100 a page:
SendPulse has no "changed since"); the cursor is a digest of what was read, so an
unchanged book yields nothing. Each address is a record keyed by the address, with
its variables, and reports its email consent from its status.

Writing adds contacts with consent in batches (``POST /addressbooks/{id}/emails``: an
upsert by address that never changes an address's status); SendPulse refuses a
whole batch for one invalid address: the address its answer names is rejected with
SendPulse's reason and the rest sent again at once (when it names none, the batch is
sent again in halves until each bad address is alone). Opted-out
contacts are unsubscribed (``POST /addressbooks/{id}/emails/unsubscribe``); deleting
removes the address from the book.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import Field

from hub.connector import READ, WRITE, Connector, ConnectorContext
from hub.errors import RetriableError
from hub.hookspecs import hookimpl
from hub.http import (
    BatchOutcome,
    ServiceOptions,
    TokenAuth,
    send_in_halves,
)
from hub.model import Checkpoint, ConsentReport, OutboundItem, RawRecord, WriteResult

PAGE_LIMIT = 100
ADDRESS_KEYS = ("email",)
OPTED_OUT = ("unsubscribed", "complained")


class SendPulseOptions(ServiceOptions):
    client_id: str = Field(description="REST API ID (Account settings → API).")
    client_secret: str = Field(description="REST API Secret.")
    address_book_id: int = Field(description="The mailing list (address book) id.")
    endpoint: str | None = Field(None, description="Base URL of the API; default https://api.sendpulse.com.")
    batch_size: int = Field(500, ge=1, le=1000)
    requests_per_second: float = Field(10.0, gt=0, le=10, description="SendPulse allows 10 requests a second.")


def consent_of(status: Any, explain: Any) -> str | None:
    """SendPulse's status of an address in hub's words (by its explanation, then its code)."""
    text = str(explain or "").lower()
    if "unsub" in text:
        return "unsubscribed"
    if "spam" in text or "complain" in text:
        return "complained"
    if "bounce" in text or "invalid" in text:
        return "bounced"
    if "unconfirm" in text or "pending" in text:
        return "pending"
    if text in ("active", "new"):
        return "subscribed"
    return {0: "subscribed", 1: "subscribed", 2: "pending", 3: "bounced", 4: "unsubscribed",
            5: "complained"}.get(int(status) if str(status).isdigit() else -1)


class SendPulseConnector(Connector):
    plugin = "sendpulse"
    Options = SendPulseOptions
    capabilities = frozenset({READ, WRITE})
    description = "SendPulse address book emails with variables and email consent (source, destination)"
    write_batch_size = 500
    consent_channel = "email"

    def __init__(self, options: SendPulseOptions, context: ConnectorContext):
        super().__init__(options, context)
        self.options: SendPulseOptions = options
        base = options.endpoint or "https://api.sendpulse.com"
        common = {"secrets": [options.client_secret], "requests_per_second": options.requests_per_second,
                  "pacing_key": ("sendpulse", options.client_id)}
        self.token_api = options.client("SendPulse", base, **common)
        self.auth = TokenAuth(self._fetch_token)
        self.api = options.client("SendPulse", base, auth=self.auth, **common)

    def _fetch_token(self) -> str:
        response = self.token_api.request(
            "POST", "oauth/access_token", idempotent=True, doing="fetching an access token",
            json_body={"grant_type": "client_credentials", "client_id": self.options.client_id,
                       "client_secret": self.options.client_secret},
        )
        token = (self.token_api.json(response) or {}).get("access_token")
        if not token:
            raise RetriableError("SendPulse: the token answer has no access_token")
        return str(token)

    @property
    def _book(self) -> str:
        return f"addressbooks/{self.options.address_book_id}/emails"

    # -- reading -------------------------------------------------------------

    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        rows = list(self._pages())
        digest = hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]
        if cursor != digest:
            for row in rows:
                yield self._record(row)
        # unchanged: nothing read, so nothing can be told gone
        yield Checkpoint(digest, complete=cursor != digest)

    def _pages(self) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.api.get_json(self._book, params={"limit": PAGE_LIMIT, "offset": offset},
                                     doing="listing the address book") or []
            if isinstance(page, dict):
                if not isinstance(page.get("emails"), list):
                    # an error shape with 200: read as an empty page, its records would look gone
                    message = page.get("message") or page.get("error") or json.dumps(page)[:200]
                    raise RetriableError(
                        f"SendPulse answered listing the address book with an error: {message}",
                        hint="the next sync reads the book again",
                    )
                page = page["emails"]
            if not isinstance(page, list):
                raise RetriableError(f"SendPulse answered listing the address book with {type(page).__name__}, "
                                     "not a list", hint="the next sync reads the book again")
            yield from page
            offset += len(page)
            if len(page) < PAGE_LIMIT:
                return

    def _record(self, row: dict[str, Any]) -> RawRecord:
        email = str(row.get("email") or "")
        values: dict[str, Any] = {"email": email}
        values.update({k: v for k, v in (row.get("variables") or {}).items() if v not in (None, "")})
        consent = consent_of(row.get("status"), row.get("status_explain"))
        reports = ()
        if consent is not None:
            proof = (("sendpulse_status", f"{row.get('status')} {row.get('status_explain') or ''}".strip()),)
            reports = (ConsentReport("email", consent, None, proof),)
        return RawRecord(email.lower(), values, consents=reports)

    # -- writing -------------------------------------------------------------

    def write(self, items: Sequence[OutboundItem]) -> list[WriteResult]:
        outcome = BatchOutcome(item.contact_id for item in items)
        adds: list[tuple[OutboundItem, dict[str, Any]]] = []
        withdrawn: list[tuple[OutboundItem, str]] = []
        deletes: list[tuple[OutboundItem, str]] = []
        for item in items:
            if item.op == "delete":
                deletes.append((item, item.external_id or ""))
                continue
            email = next((str(item.values[k]).strip() for k in ADDRESS_KEYS if item.values.get(k)), "")
            if not email:
                outcome.rejected(item.contact_id, "no e-mail address")
            elif item.consent in OPTED_OUT:
                withdrawn.append((item, email))
            else:
                # "" (a category or segment the contact no longer has) clears the variable
                variables = {k: v for k, v in item.values.items() if k not in ADDRESS_KEYS and v is not None}
                adds.append((item, {"email": email, "variables": variables}))
        size = self.options.batch_size

        def add(chunk: Sequence[tuple[OutboundItem, dict[str, Any]]]) -> None:
            self.api.request("POST", self._book, json_body={"emails": [row for _, row in chunk]}, idempotent=True,
                             doing=f"adding {len(chunk)} emails")
            for item, row in chunk:
                outcome.ok(item.contact_id, row["email"].lower())

        def addresses(path: str, method: str, doing: str):
            def send(chunk: Sequence[tuple[OutboundItem, str]]) -> None:
                self.api.request(method, path, json_body={"emails": [email for _, email in chunk]},
                                 idempotent=True, doing=doing)
                for item, email in chunk:
                    outcome.ok(item.contact_id, email.lower())
            return send

        steps = [(adds, add), (withdrawn, addresses(self._book + "/unsubscribe", "POST", "unsubscribing emails")),
                 (deletes, addresses(self._book, "DELETE", "deleting emails"))]
        for group, send in steps:
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                try:
                    send_in_halves(chunk, send, lambda pair, reason: outcome.rejected(pair[0].contact_id, reason),
                                   about_items=_about_addresses,
                                   culprit=_named_address)
                except RetriableError as error:
                    outcome.fail_pending(error.message, [item.contact_id for item, _ in chunk])
        return outcome.as_list()

    def close(self) -> None:
        self.api.close()
        self.token_api.close()


def _about_addresses(error: Exception) -> bool:
    """Whether SendPulse's refusal is about the addresses sent ("Invalid email: a@b"), read
    in its answer alone: hub's own words ("adding 500 emails") say nothing. Another
    refusal (an unknown address book) is about the request: raised, not laid on each contact."""
    body = getattr(error, "body", None)
    text = (body.get("message") or body.get("error")) if isinstance(body, dict) else body
    return "email" in str(text or "").lower()


def _named_address(error: Exception, chunk: Sequence[tuple[OutboundItem, Any]]) -> tuple[OutboundItem, Any] | None:
    """The item whose address SendPulse's refusal names ("Invalid email: a@b"), if one."""
    words = set(re.findall(r"[^\s\"',;:]+@[^\s\"',;:]+", str(getattr(error, "message", error)).lower()))
    for pair in chunk:
        row = pair[1]
        address = row["email"] if isinstance(row, dict) else row
        if str(address).lower() in words:
            return pair
    return None


__all__ = ["SendPulseConnector", "SendPulseOptions"]


@hookimpl
def hub_connectors(register):
    register(SendPulseConnector)
