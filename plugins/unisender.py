"""Unisender (classic API): the contacts of one list, read and written.

Unisender's methods take the API key as a parameter; hub sends it in the POST form
body rather than in the URL, and masks it in every message, log line and error
anyway (the documented URL form, ``?api_key=...``, is masked the same way). Every
answer is HTTP 200: an ``error`` in the body is turned into hub's errors here
(``too_many_requests`` is retried like a 429).

Reading exports the list (``exportContacts``, 5,000 a page: Unisender has no
"changed since"); the cursor is a digest of what was read, so an unchanged list
yields nothing. Each address is a record keyed by the address with the configured
``fields``, and reports its email consent from ``email_status``.

Writing imports contacts (``importContacts``, 500 rows a call, an upsert by address):
new contacts with consent as ``active``, opted-out ones as ``unsubscribed``, those
already in Unisender without a status column, so hub never changes a status it has no
reason to. Rows Unisender refuses are rejected item by item with its reason from the
import log; accepted rows are not sent again. Deleting imports the row with ``delete``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import requests
from pydantic import Field

from hub.connector import READ, WRITE, Connector, ConnectorContext
from hub.errors import FatalError, RetriableError
from hub.hookspecs import hookimpl
from hub.http import BatchOutcome, RejectedRequestError, ServiceOptions
from hub.model import Checkpoint, ConsentReport, OutboundItem, RawRecord, WriteResult

IMPORT_LIMIT = 500
EXPORT_LIMIT = 5000
ADDRESS_KEYS = ("email",)
OPTED_OUT = ("unsubscribed", "complained")
CONSENT = {"active": "subscribed", "new": "subscribed", "unsubscribed": "unsubscribed", "blocked": "complained",
           "activation_requested": "pending", "invalid": "bounced", "inactive": "bounced"}


class UnisenderOptions(ServiceOptions):
    api_key: str = Field(description="API key (Settings → Integration and API).")
    list_id: int = Field(description="The list contacts are read from and imported into.")
    fields: list[str] = Field(default_factory=lambda: ["Name"],
                              description="User fields read besides email and its status (their system names).")
    language: str = Field("ru", pattern="^(ru|en|ua)$", description="Language of Unisender's messages.")
    endpoint: str | None = Field(None, description="Base URL; default https://api.unisender.com.")
    batch_size: int = Field(IMPORT_LIMIT, ge=1, le=IMPORT_LIMIT)
    page_size: int = Field(EXPORT_LIMIT, ge=1, le=EXPORT_LIMIT)
    requests_per_second: float = Field(10.0, gt=0)


def _rate_limited(response: requests.Response) -> bool:
    if not response.ok or "json" not in response.headers.get("Content-Type", ""):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == "too_many_requests"


class UnisenderConnector(Connector):
    plugin = "unisender"
    Options = UnisenderOptions
    capabilities = frozenset({READ, WRITE})
    description = "Unisender list contacts with user fields and email consent (source, destination)"
    write_batch_size = IMPORT_LIMIT
    consent_channel = "email"

    def __init__(self, options: UnisenderOptions, context: ConnectorContext):
        super().__init__(options, context)
        self.options: UnisenderOptions = options
        self.api = options.client("Unisender", "https://api.unisender.com", path=f"/{options.language}/api",
                                  secrets=[options.api_key], rate_limited=_rate_limited,
                                  requests_per_second=options.requests_per_second,
                                  pacing_key=("unisender", hashlib.sha256(options.api_key.encode()).hexdigest()))

    def _call(self, method: str, form: list[tuple[str, Any]], doing: str) -> Any:
        """One method call; the key travels in the form body, never in the URL."""
        response = self.api.request("POST", method, params={"format": "json"},
                                    data=[("api_key", self.options.api_key), *form], idempotent=True, doing=doing)
        body = self.api.json(response) or {}
        if isinstance(body, dict) and body.get("error"):
            code = str(body.get("code") or "")
            message = f"Unisender: {doing}: {body['error']} ({code})"
            if code in ("invalid_api_key", "access_denied", "api_key_is_locked"):
                raise FatalError(message, hint="check api_key in hub.yaml")
            if code in ("unspecified", "temporary_unavailable"):
                raise RetriableError(message)
            raise RejectedRequestError(message, 200, body, hint="check list_id and fields in hub.yaml")
        return body.get("result") if isinstance(body, dict) else None

    # -- reading -------------------------------------------------------------

    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        names = ["email", "email_status", *[f for f in self.options.fields if f not in ("email", "email_status")]]
        rows: list[list[Any]] = []
        offset = 0
        while True:
            form = [("list_id", self.options.list_id), ("offset", offset), ("limit", self.options.page_size)]
            form += [(f"field_names[{i}]", name) for i, name in enumerate(names)]
            result = self._call("exportContacts", form, "exporting the list") or {}
            page = result.get("data") or []
            rows.extend(page)
            offset += len(page)
            if len(page) < self.options.page_size:
                break
        digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:32]
        if cursor != digest:
            for row in rows:
                yield self._record(dict(zip(names, row, strict=False)))
        # unchanged: nothing read, so nothing can be told gone
        yield Checkpoint(digest, complete=cursor != digest)

    def _record(self, row: dict[str, Any]) -> RawRecord:
        email = str(row.get("email") or "")
        status = str(row.pop("email_status", "") or "")
        values = {k: v for k, v in row.items() if v not in (None, "")}
        consent = CONSENT.get(status)
        reports = (ConsentReport("email", consent, None, (("unisender_email_status", status),)),) if consent else ()
        return RawRecord(email.lower(), values, consents=reports)

    # -- writing -------------------------------------------------------------

    def write(self, items: Sequence[OutboundItem]) -> list[WriteResult]:
        outcome = BatchOutcome(item.contact_id for item in items)
        #: rows by the email_status they carry (None: no status column)
        groups: dict[str | None, list[tuple[OutboundItem, dict[str, Any]]]] = {}
        for item in items:
            email = next((str(item.values[k]).strip() for k in ADDRESS_KEYS if item.values.get(k)), "")
            if item.op == "delete":
                email = email or (item.external_id or "")
            if not email:
                outcome.rejected(item.contact_id, "no e-mail address")
                continue
            if item.op == "delete":
                groups.setdefault("delete", []).append((item, {"email": email, "delete": "1"}))
                continue
            row = {"email": email, "email_list_ids": str(self.options.list_id)}
            row.update({k: v for k, v in item.values.items() if k not in ADDRESS_KEYS and v is not None})
            if item.consent in OPTED_OUT:
                status: str | None = "unsubscribed"
            elif item.external_id is None and item.consent in ("subscribed", None):
                status = "active"
            else:
                status = None
            if status:
                row["email_status"] = status
            groups.setdefault(status, []).append((item, row))
        for rows in groups.values():
            for start in range(0, len(rows), self.options.batch_size):
                self._import(rows[start : start + self.options.batch_size], outcome)
        return outcome.as_list()

    def _import(self, chunk: list[tuple[OutboundItem, dict[str, Any]]], outcome: BatchOutcome) -> None:
        columns: list[str] = []
        for _, row in chunk:
            columns.extend(k for k in row if k not in columns)
        form: list[tuple[str, Any]] = [(f"field_names[{i}]", name) for i, name in enumerate(columns)]
        if "tags" in columns and any(item.segment_names for item, _ in chunk):
            # segments as tags: Unisender removes no single tag, so the contact's tags are
            # replaced by those sent (a tag set by hand in Unisender is dropped)
            form.append(("overwrite_tags", "1"))
        for r, (_, row) in enumerate(chunk):
            form += [(f"data[{r}][{i}]", "" if row.get(name) is None else row[name]) for i, name in enumerate(columns)]
        ids = [item.contact_id for item, _ in chunk]
        try:
            result = self._call("importContacts", form, f"importing {len(chunk)} contacts") or {}
        except RejectedRequestError as error:
            for contact_id in ids:
                outcome.rejected(contact_id, error.message)
            return
        except RetriableError as error:
            outcome.fail_pending(error.message, ids)
            return
        for entry in result.get("log") or []:
            try:
                index = int(entry.get("index"))
            except (TypeError, ValueError):
                continue
            if 0 <= index < len(chunk):
                outcome.rejected(chunk[index][0].contact_id, f"Unisender: {entry.get('message') or entry.get('code')}")
        for item, row in chunk:
            if item.contact_id not in outcome.results:
                outcome.ok(item.contact_id, row["email"].lower())

    def close(self) -> None:
        self.api.close()


__all__ = ["UnisenderConnector", "UnisenderOptions"]


@hookimpl
def hub_connectors(register):
    register(UnisenderConnector)
