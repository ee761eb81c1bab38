"""hub connector for site forms posted to ``hub serve`` (Tilda, generic JSON and form posts).

``hub serve`` hands each ``POST /hooks/<name>`` to ``receive``, which checks the
sender (HMAC signature, URL token or Tilda's API key) and parses the body; the server
stores what it accepts in the ``inbox`` table before it answers 200. ``read`` yields
the inbox rows after the cursor, so mapping, normalization, identity, quarantine and
the change log treat a form submission like any other record. Each submission also
becomes a ``form`` event: page, form name, UTM fields, referrer, analytics client ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl

from pydantic import Field, model_validator
from sqlalchemy import and_, select, text

from hub.connector import READ, Connector, ConnectorOptions
from hub.errors import FatalError
from hub.hookspecs import hookimpl
from hub.leads import LEAD_COLUMN, LeadRules, Verdict, qualify_rows
from hub.model import LEAD_FIELD, Checkpoint, EventReport, RawRecord
from hub.redact import register_secret
from hub.webhooks import Accepted, Probe, Rejected, WebhookRequest

SIGNATURE_HEADER = "x-hub-signature"
TIMESTAMP_HEADER = "x-hub-timestamp"
DELIVERY_HEADER = "x-hub-delivery"
PAGE_SIZE = 1000
MAX_DELIVERY_ID = 200

#: A byte order mark some senders (.NET, PowerShell) put before the body: not part of its first name.
_BOM = "\ufeff"

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MULTIPART = "multipart/form-data"
#: The most fields a form post may have (as many as ``parse_qsl`` is allowed to split).
MAX_FIELDS = 1000
JSON_TYPES = ("application/json",)

#: Body fields that describe where the form was sent from, and the event key each becomes.
#: The first non-empty field of a group wins.
EVENT_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("page", ("page", "pageurl", "page_url", "url")),
    ("form", ("formname", "form_name", "form", "formid", "form_id")),
    ("referrer", ("referrer", "referer", "http_referer")),
    ("utm_source", ("utm_source",)),
    ("utm_medium", ("utm_medium",)),
    ("utm_campaign", ("utm_campaign",)),
    ("utm_content", ("utm_content",)),
    ("utm_term", ("utm_term",)),
    ("ym_client_id", ("_ym_uid", "ym_uid", "ym_client_id")),
    ("ga_client_id", ("ga_client_id", "_ga", "ga_cid")),
    ("ga_user_id", ("ga_user_id",)),
)


class WebhookOptions(ConnectorOptions):
    format: Literal["tilda", "json", "form", "auto"] = Field(
        "auto",
        description="Body format: tilda (form-encoded, test probe, tranid), json, form (urlencoded or multipart), "
        "or auto (by Content-Type).",
    )
    secret: str | None = Field(
        None,
        description="HMAC-SHA256 key: senders sign timestamp + '.' + body and send X-Hub-Timestamp and "
        "X-Hub-Signature: sha256=<hex>.",
    )
    token: str | None = Field(None, description="Secret token senders that cannot sign put in the URL: ?token=...")
    api_key: str | None = Field(None, description="Tilda's API key (sent in a header or a body field).")
    api_key_field: str = Field(
        "api_key", description="Body field or header Tilda sends the API key in (in a header, '_' is sent as '-')."
    )
    max_body: int = Field(1_000_000, gt=0, description="Largest body accepted, in bytes (larger: 413).")
    replay_window: int = Field(300, gt=0, description="Seconds a signed request's timestamp may be off by.")
    leads: LeadRules | None = Field(
        None, description="Lead qualification: rules that mark each submission target, non-target or spam.")

    @model_validator(mode="after")
    def _guarded(self) -> WebhookOptions:
        if not (self.secret or self.token or self.api_key):
            raise ValueError("set secret, token or api_key: an endpoint without one takes anyone's posts")
        for value in (self.secret, self.token, self.api_key):
            if value:
                register_secret(value)
        return self


class WebhookConnector(Connector):
    plugin = "webhook"
    Options = WebhookOptions
    capabilities = frozenset({READ, "webhook"})
    implied_fields: ClassVar[dict[str, str]] = {LEAD_FIELD: LEAD_COLUMN}
    description = "Site forms posted to hub serve: Tilda, signed JSON, form posts (source)"
    options: WebhookOptions

    # --- receiving (called by hub serve for each request) ------------------------------
    @property
    def max_body(self) -> int:
        return self.options.max_body

    def receive(self, request: WebhookRequest) -> Accepted | Probe | Rejected:
        """Check the sender, parse the body; never raises for a bad request."""
        options = self.options
        fmt = options.format
        media = request.media_type
        if fmt == "auto":
            fmt = "json" if media in JSON_TYPES or media.endswith("+json") else "form"
        if fmt in ("tilda", "form") and media not in FORM_TYPES and not (fmt == "tilda" and media in JSON_TYPES):
            return Rejected(415, "expected a form post (application/x-www-form-urlencoded or multipart/form-data), "
                                 f"got {media or 'none'}")
        if fmt == "json" and media not in JSON_TYPES and not media.endswith("+json"):
            return Rejected(415, f"expected application/json, got {media or 'none'}")
        try:
            if media in JSON_TYPES or media.endswith("+json"):
                fields = _parse_json(request.body)
            elif media == MULTIPART:
                fields = _parse_multipart(request.body, request.boundary, request.charset)
            else:
                fields = _parse_form(request.body, request.charset)
        except (TypeError, ValueError) as error:
            return Rejected(400, f"unparseable body: {error}")
        if options.format == "tilda" and fields.get("test") == "test" and len(fields) <= 2:
            denied = self._check_sender(request, fields)
            return denied or Probe()
        denied = self._check_sender(request, fields)
        if denied is not None:
            return denied
        fields.pop(options.api_key_field, None)
        fields.pop("token", None)
        cookies = fields.pop("COOKIES", None) or fields.pop("cookies", None)
        if cookies:
            for name, value in _cookies(cookies).items():
                if name in ("_ym_uid", "_ga"):
                    fields.setdefault(name, value)
        if not fields:
            return Rejected(400, "the body has no fields")
        replay_key = self._replay_key(request)
        return Accepted(self._delivery_id(request, fields), fields, replay_key=replay_key,
                        replay_ttl=2 * options.replay_window if replay_key else 0)

    def _check_sender(self, request: WebhookRequest, fields: dict[str, str]) -> Rejected | None:
        options = self.options
        signature = request.headers.get(SIGNATURE_HEADER)
        if options.secret and signature is not None:
            return self._check_signature(request, signature)
        token = request.query.get("token")
        if options.token and token is not None:
            if hmac.compare_digest(token.encode(), options.token.encode()):
                return None
            return Rejected(401, "wrong token")
        if options.api_key:
            header = options.api_key_field.lower().replace("_", "-")  # servers drop header names with "_"
            key = request.headers.get(header) or fields.get(options.api_key_field)
            if key is not None:
                if hmac.compare_digest(key.encode(), options.api_key.encode()):
                    return None
                return Rejected(401, "wrong API key")
        wanted = [what for what, on in (("a signature", options.secret), ("a token", options.token),
                                        ("an API key", options.api_key)) if on]
        return Rejected(401, f"unauthenticated: expected {' or '.join(wanted)}")

    def _check_signature(self, request: WebhookRequest, signature: str) -> Rejected | None:
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        try:
            sent_at = int(stamp)
        except ValueError:
            return Rejected(401, f"missing or bad {TIMESTAMP_HEADER} header")
        if abs(time.time() - sent_at) > self.options.replay_window:
            return Rejected(401, f"timestamp outside the replay window of {self.options.replay_window} s")
        assert self.options.secret is not None
        expected = sign(self.options.secret, stamp, request.body)
        if not hmac.compare_digest(signature.strip().encode(), expected.encode()):
            return Rejected(401, "bad signature")
        return None

    def _replay_key(self, request: WebhookRequest) -> str | None:
        """A signed request's key: a digest of its signature, which covers timestamp and body
        (the ``X-Hub-Delivery`` header is not signed: a replay may carry any). ``None`` when
        the sender was not checked by a signature."""
        if not self.options.secret or request.headers.get(SIGNATURE_HEADER) is None:
            return None
        signature = sign(self.options.secret, request.headers.get(TIMESTAMP_HEADER, ""), request.body)
        return "signed:" + hashlib.sha256(signature.encode()).hexdigest()

    def _delivery_id(self, request: WebhookRequest, fields: dict[str, str]) -> str:
        given = (request.headers.get(DELIVERY_HEADER) or "").strip() or (fields.get("tranid") or "").strip()
        # a blank id would make every such delivery one; a control character (NUL) no store keeps
        if given and len(given) <= MAX_DELIVERY_ID and given.isprintable():
            return given
        return "sha256:" + hashlib.sha256(request.body).hexdigest()

    # --- reading (hub sync) --------------------------------------------------------------
    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        from hub.store.schema import inbox

        store = self.context.store
        if store is None:
            raise FatalError(f"connector {self.context.name!r} reads hub's own inbox: run it with hub sync")
        after = int(cursor) if cursor and cursor.isdigit() else 0
        while True:
            with store.begin(read_only=True) as c:
                if c.dialect.name == "postgresql":
                    # Inserts that took an id are committed before this reads: no row with a
                    # smaller id than the cursor can appear later.
                    c.execute(text("LOCK TABLE inbox IN SHARE MODE"))
                rows = c.execute(
                    select(inbox).where(and_(inbox.c.connector == self.context.name, inbox.c.id > after))
                    .order_by(inbox.c.id).limit(PAGE_SIZE)
                ).all()
            verdicts: dict[int, Verdict] = {}
            if self.options.leads is not None and rows:
                with store.connect() as c:  # after the lock: hub serve goes on storing meanwhile
                    verdicts = qualify_rows(c, self.options.leads, rows)
            for row in rows:
                yield self._record(row, verdicts.get(row.id))
            if not rows:
                return
            after = rows[-1].id
            yield Checkpoint(str(after))
            if len(rows) < PAGE_SIZE:
                return

    def _record(self, row: Any, verdict: Verdict | None = None) -> RawRecord:
        received = row.received_at
        if received.tzinfo is None:
            received = received.replace(tzinfo=dt.timezone.utc)
        try:
            fields = json.loads(row.fields)
        except ValueError as error:
            return RawRecord(row.delivery_id, {}, error=f"inbox row {row.id}: {error}")
        fields.pop(LEAD_COLUMN, None)  # set by hub alone, never by the sender
        if verdict is not None and verdict.status == "spam":
            # never a contact; one made under earlier rules loses this record
            return RawRecord(row.delivery_id, {}, updated_at=received, deleted=True)
        payload = form_event(fields)
        if row.remote_addr:
            payload.append(("ip", row.remote_addr))
        if verdict is not None:
            fields[LEAD_COLUMN] = verdict.status
            payload.extend(verdict.payload())
        event = EventReport("form", row.delivery_id, received, tuple(payload))
        return RawRecord(row.delivery_id, fields, updated_at=received, events=(event,))


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value of a body sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def form_event(fields: dict[str, str]) -> list[tuple[str, str]]:
    """The ``form`` event's payload: where the form was sent from, by whom in analytics."""
    lowered = {key.lower(): value for key, value in fields.items() if isinstance(value, str) and value.strip()}
    payload: list[tuple[str, str]] = []
    for key, names in EVENT_FIELDS:
        for name in names:
            value = lowered.get(name)
            if value:
                if key == "ga_client_id":
                    value = ga_client_id(value)
                payload.append((key, value.strip()[:2000]))
                break
    return payload


def ga_client_id(cookie: str) -> str:
    """``GA1.2.1234567890.1600000000`` (the ``_ga`` cookie) -> ``1234567890.1600000000``."""
    parts = cookie.strip().split(".")
    if len(parts) >= 4 and parts[0].upper().startswith("GA"):
        return ".".join(parts[-2:])
    return cookie.strip()


def _cookies(header: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            found[name] = value
    return found


def _decoded(data: bytes, charset: str, what: str) -> str:
    """``data`` as text in ``charset``, else UTF-8, without a leading byte order mark;
    bytes that are not in it are refused (``ValueError``), never read as U+FFFD."""
    try:
        return data.decode(charset or "utf-8").removeprefix(_BOM)
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not {charset or 'UTF-8'}") from None
    except LookupError:
        raise ValueError(f"unknown charset {charset!r}") from None


def _parse_form(body: bytes, charset: str = "") -> dict[str, str]:
    """The fields of a form post, read as browsers and the WHATWG URL standard read
    ``application/x-www-form-urlencoded``: an empty pair (a trailing ``&``, ``&&``) is
    skipped, a bare key (``agree``) is the key with an empty value. A body with no
    ``name=value`` pair at all is not a form (JSON, XML or text sent as one): refused.
    The body and its %-escapes are in ``charset`` (a site in windows-1251), else UTF-8;
    bytes that are not are refused, never stored as U+FFFD."""
    encoding = charset or "utf-8"
    decoded = _decoded(body, charset, "the form body")
    if not decoded.strip():
        return {}
    if "=" not in decoded:
        raise ValueError("no name=value pair: not a form body")
    try:
        pairs = parse_qsl(decoded, keep_blank_values=True, max_num_fields=MAX_FIELDS, encoding=encoding,
                          errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"a %-escaped value is not {charset or 'UTF-8'}") from None
    except ValueError as error:
        raise ValueError(str(error)) from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields


def _parse_multipart(body: bytes, boundary: str, charset: str = "") -> dict[str, str]:
    """The text fields of a ``multipart/form-data`` post (an HTML form with
    ``enctype="multipart/form-data"``, form builders, ``curl -F``), joined as
    :func:`_parse_form` joins repeated names. An uploaded file is not kept: its field
    holds the file's name. Text is in the part's ``charset``, else the request's, else
    UTF-8; bytes that are not are refused, never stored as U+FFFD."""
    if not boundary:
        raise ValueError("multipart/form-data without a boundary parameter")
    if not 0 < len(boundary) <= 70 or any(ch in boundary for ch in '\r\n"'):
        raise ValueError("the multipart boundary is not a valid one (1 to 70 characters)")
    head = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\n\r\n'.encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if message.defects or not message.is_multipart():
        raise ValueError("the body is not multipart/form-data with that boundary")
    fields: dict[str, str] = {}
    for number, part in enumerate(message.iter_parts()):
        if number >= MAX_FIELDS:
            raise ValueError(f"more than {MAX_FIELDS} fields")
        if part.defects or part.is_multipart():
            raise ValueError("a part of the body is not a form field")
        name = part.get_param("name", header="content-disposition")
        if part.get_content_disposition() != "form-data" or not isinstance(name, str):
            raise ValueError("a part of the body has no form-data name")
        filename = part.get_filename()
        if filename is not None:
            value = filename  # the file itself is not a contact's data
        else:
            value = _decoded(part.get_payload(decode=True) or b"", part.get_content_charset() or charset,
                             f"the field {name!r}")
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return fields


def _parse_json(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body.decode("utf-8").removeprefix(_BOM))
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"not JSON: {error}") from None
    except RecursionError:  # [[[[... : the parser's stack, not a form
        raise ValueError("not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise TypeError("the JSON body is not an object")
    fields: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        fields[str(key)] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    for item in (*fields, *fields.values()):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:  # "\ud800": half of a pair, which no store can keep as text
            raise ValueError("not JSON text: a lone surrogate escape (\\ud800-\\udfff)") from None
    return fields


@hookimpl
def hub_connectors(register):  # type: ignore[no-untyped-def]
    register(WebhookConnector)
