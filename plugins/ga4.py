"""hub connector for Google Analytics 4 sessions through the Analytics Data API (source).

``properties.runReport`` (``google-api-python-client``, ``analyticsdata`` v1beta) is
asked for sessions per visitor and hour: the custom dimension that holds the GA client
id or the site's user id (``client_id_dimension``, e.g. ``customEvent:client_id``),
``dateHour``, session source, medium, campaign and default channel group, device
category, city and region; metric ``sessions``. Pages of ``page_size`` rows follow
``offset`` until ``rowCount``. Quota answers (429 ``RESOURCE_EXHAUSTED``) and server
errors are retried with backoff; after the last try the run stops with the cursor where
it was, and the next sync goes on.

GA4 reports aggregate: a row is one visitor's sessions of one hour from one source on
one device, and becomes one ``visit`` event (its id is a hash of the row's dimensions;
``sessions`` counts toward the card's visit count). Rows go to the contact holding the
client id (``ga_client_id``, from a form's ``_ga`` cookie) or user id (``ga_user_id``),
or wait for one (``hub.analytics``); they never create contacts. The cursor is the last
day read, a day of the property's time zone (asked of the API each run: a one-row
report's ``metadata.timeZone``), never its unfinished current day; ``lookback_days``
before it are read again (GA4 keeps processing for days), a row already stored is not
stored twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from hub.analytics import GA_CLIENT_ID, GA_USER_ID, PENDING_DAYS, VISIT, client_id
from hub.connector import READ, Connector, ConnectorContext, ConnectorOptions
from hub.errors import FatalError, RetriableError
from hub.hookspecs import hookimpl
from hub.model import Checkpoint, EventReport, RawRecord
from hub.redact import redact, register_secret

SCOPES = ("https://www.googleapis.com/auth/analytics.readonly",)
#: Report dimension -> the visit event's payload key (``hub.analytics.TOUCH_KEYS`` and more).
DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("dateHour", "hour"),
    ("sessionSource", "source"),
    ("sessionMedium", "medium"),
    ("sessionCampaignName", "campaign"),
    ("sessionDefaultChannelGroup", "channel"),
    ("deviceCategory", "device"),
    ("city", "city"),
    ("region", "region"),
)
EMPTY = ("", "(not set)", "(none)", "(direct)", "(other)")
RETRY_STATUSES = (429, 500, 502, 503, 504)


class Ga4Options(ConnectorOptions):
    property_id: str = Field(..., pattern=r"^\d+$", description="The GA4 property number (Admin > Property details).")
    client_id_dimension: str = Field(
        "customEvent:client_id", pattern=r"^(customEvent|customUser):\w+$",
        description="The custom dimension holding the visitor's id: customEvent:<param> or customUser:<property>.",
    )
    id_kind: Literal["client_id", "user_id"] = Field(
        "client_id", description="What the dimension holds: the GA client id (the _ga cookie) or the site's user id.")
    credentials_file: str | None = Field(None, description="Service account key file (JSON) with Viewer access.")
    credentials: str | None = Field(None, repr=False, description="The key file's JSON itself ($VAR).")
    access_token: str | None = Field(None, repr=False, description="An OAuth access token instead of a key ($VAR).")
    endpoint: str | None = Field(None, description="API endpoint (a proxy, a test server).")
    discovery_document: str | None = Field(
        None, description="Discovery document of analyticsdata v1beta to build the client from (default: the "
        "copy google-api-python-client bundles; never fetched from the network).")
    start_date: dt.date | None = Field(None, description="First day read on the initial load (default: initial_days ago).")
    initial_days: int = Field(30, ge=1, le=3650, description="Days read on the initial load when start_date is not set.")
    lookback_days: int = Field(3, ge=0, le=30, description="Days before the cursor read again (late data).")
    pending_days: int = Field(
        PENDING_DAYS, ge=0, le=3650,
        description="Days a visit of a client id no contact holds yet is kept for a form that may bring it (0: none).")
    page_size: int = Field(10_000, ge=1, le=250_000, description="Rows per runReport call (limit).")
    max_attempts: int = Field(6, ge=1, le=20, description="Tries per call on 429 RESOURCE_EXHAUSTED and 5xx.")
    backoff_seconds: float = Field(5.0, ge=0, description="First backoff; it doubles per try, with jitter.")
    max_backoff_seconds: float = Field(120.0, ge=0, description="Longest backoff between two tries.")
    timeout_seconds: float = Field(120.0, gt=0, description="How long to wait for an answer.")

    @model_validator(mode="after")
    def _one_credential(self) -> Ga4Options:
        given = [name for name in ("credentials_file", "credentials", "access_token") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("set exactly one of credentials_file (a service account key file), credentials "
                             "(its JSON, e.g. $GA4_CREDENTIALS) or access_token")
        for secret in (self.credentials, self.access_token):
            if secret:
                register_secret(secret)
        return self


class Ga4Connector(Connector):
    plugin = "ga4"
    Options = Ga4Options
    capabilities = frozenset({READ})
    description = "Google Analytics 4 sessions (Data API runReport), linked to contacts by client or user id (source)"
    options: Ga4Options

    def __init__(self, options: Ga4Options, context: ConnectorContext, *, sleep: Callable[[float], None] = time.sleep):
        super().__init__(options, context)
        self._sleep = sleep
        self._service: Any = None
        self.kind = GA_CLIENT_ID if options.id_kind == "client_id" else GA_USER_ID
        #: runReport calls sent (each retry counts)
        self.calls = 0

    # --- the client ---------------------------------------------------------------------
    def _credentials(self) -> Any:
        options = self.options
        if options.access_token:
            from google.oauth2.credentials import Credentials

            return Credentials(token=options.access_token)
        if options.credentials_file:
            path = self.context.resolve_path(options.credentials_file)
            try:
                text, where = path.read_text(encoding="utf-8"), str(path)
            except OSError as error:
                raise FatalError(f"{path}: cannot read the credentials file: {error.strerror}",
                                 hint="set credentials_file to the service account key (JSON) from Google Cloud") from None
        else:
            text, where = options.credentials or "", "credentials"
        try:
            info = json.loads(text)
            if isinstance(info, dict) and isinstance(info.get("private_key"), str) and info["private_key"]:
                register_secret(info["private_key"])  # a key file's: masked wherever it could be shown
            from google.oauth2.service_account import Credentials as ServiceAccount

            return ServiceAccount.from_service_account_info(info, scopes=list(SCOPES))
        except (ValueError, KeyError, TypeError) as error:
            raise FatalError(f"{where}: not a service account key: {redact(str(error))}",
                             hint="download a JSON key of a service account that has Viewer access to the property") \
                from None

    def _client(self) -> Any:
        if self._service is None:
            import google_auth_httplib2
            import httplib2
            from googleapiclient.discovery import build, build_from_document

            http = google_auth_httplib2.AuthorizedHttp(self._credentials(),
                                                       http=httplib2.Http(timeout=int(self.options.timeout_seconds)))
            client_options = {"api_endpoint": self.options.endpoint} if self.options.endpoint else None
            if self.options.discovery_document:
                path = self.context.resolve_path(self.options.discovery_document)
                try:
                    document = path.read_text(encoding="utf-8")
                except OSError as error:
                    raise FatalError(f"{path}: cannot read the discovery document: {error.strerror}",
                                     hint="fix discovery_document in hub.yaml or remove it") from None
                self._service = build_from_document(document, http=http, client_options=client_options)
            else:
                self._service = build("analyticsdata", "v1beta", http=http, client_options=client_options,
                                      static_discovery=True, cache_discovery=False)
        return self._service

    def _run_report(self, body: dict[str, Any]) -> dict[str, Any]:
        from googleapiclient.errors import HttpError

        request = self._client().properties().runReport(property=f"properties/{self.options.property_id}", body=body)
        attempt = 0
        while True:
            attempt += 1
            self.calls += 1
            try:
                answer = request.execute(num_retries=0)
            except HttpError as error:
                status = int(error.resp.status)
                message = redact(f"GA4: runReport: HTTP {status}: {_reason(error)}")
                if status in RETRY_STATUSES and attempt < self.options.max_attempts:
                    wait = min(self.options.max_backoff_seconds,
                               self.options.backoff_seconds * 2 ** (attempt - 1) * (0.5 + random.random() / 2))
                    self.context.logger.debug("%s; try %d in %.1f s", message, attempt + 1, wait)
                    self._sleep(wait)
                    continue
                if status in RETRY_STATUSES:
                    raise RetriableError(message, hint="GA4 token quotas refill hourly and daily; the next sync "
                                         "goes on from the cursor") from None
                if status in (401, 403):
                    raise FatalError(message, hint="give the service account Viewer access to the property, "
                                     "or check the token") from None
                raise FatalError(message, hint=f"check property_id and that {self.options.client_id_dimension} "
                                 "is registered as a custom dimension") from None
            except _auth_errors() as error:  # a 401 the credentials cannot refresh past
                raise FatalError(redact(f"GA4: runReport: HTTP 401: the credentials were refused "
                                        f"({type(error).__name__}: {error})"),
                                 hint="check access_token or the service account key") from None
            except (OSError, httplib2_errors()) as error:
                if attempt < self.options.max_attempts:
                    self._sleep(min(self.options.max_backoff_seconds, self.options.backoff_seconds * 2 ** attempt))
                    continue
                raise RetriableError(f"GA4: runReport: {type(error).__name__}: {redact(str(error))}") from None
            if isinstance(answer, dict):
                return answer
            # a 200 whose body is not JSON (a proxy's page, an answer cut short): the client
            # library hands it over as text; worth another try, then left for the next sync
            message = f"GA4: runReport: the answer is not JSON ({len(str(answer))} characters)"
            if attempt < self.options.max_attempts:
                self._sleep(min(self.options.max_backoff_seconds, self.options.backoff_seconds * 2 ** attempt))
                continue
            raise RetriableError(message, hint="the next sync goes on from the cursor")

    # --- reading ------------------------------------------------------------------------
    def _property_zone(self) -> dt.tzinfo:
        """The property's reporting time zone, from a one-row report (its ``metadata``):
        GA4 counts days in it, and the Data API has no other way to tell it. Unknown (not
        in the answer, or not in this host's time zone database): UTC-12, where a day ends
        last on earth, so that the day read up to is finished everywhere (one day late at
        worst)."""
        answer = self._run_report({"dateRanges": [{"startDate": "yesterday", "endDate": "yesterday"}],
                                   "metrics": [{"name": "sessions"}], "limit": "1"})
        zone = _zone(answer, None)
        if zone is None:
            self.context.logger.warning("GA4: the property's time zone %r is unknown here: reading up to "
                                        "yesterday in UTC-12", (answer.get("metadata") or {}).get("timeZone"))
            return LAST_ZONE
        return zone

    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        # the last finished day is the property's yesterday: the host's may be the property's today
        # (a property west of the host), whose unfinished data a cursor must not pass
        end = dt.datetime.now(self._property_zone()).date() - dt.timedelta(days=1)
        start: dt.date | None = None
        if cursor:
            try:
                start = dt.date.fromisoformat(cursor) + dt.timedelta(days=1 - self.options.lookback_days)
            except ValueError:
                start = None
        if start is None:
            start = self.options.start_date or end - dt.timedelta(days=self.options.initial_days - 1)
        if start > end:
            yield Checkpoint(cursor)
            return
        dimension = self.options.client_id_dimension
        names = [dimension] + [name for name, _ in DIMENSIONS]
        offset = 0
        while True:
            body = {
                "dateRanges": [{"startDate": start.isoformat(), "endDate": end.isoformat()}],
                "dimensions": [{"name": name} for name in names],
                "metrics": [{"name": "sessions"}],
                # a visitor's rows one after the other: its card is derived once, not per batch
                "orderBys": [{"dimension": {"dimensionName": dimension}}, {"dimension": {"dimensionName": "dateHour"}}],
                "limit": str(self.options.page_size),
                "offset": str(offset),
                "returnPropertyQuota": True,
            }
            answer = self._run_report(body)
            rows = answer.get("rows") or []
            headers = [h.get("name") for h in answer.get("dimensionHeaders") or []]
            zone = _zone(answer, dt.timezone.utc)
            for row in rows:
                record = self._visit(headers, row, zone)
                if record is not None:  # a session without the visitor's id is no one's
                    yield record
            offset += len(rows)
            if not rows or offset >= int(answer.get("rowCount") or 0):
                break
        yield Checkpoint(end.isoformat())

    def _visit(self, headers: list[str], row: dict[str, Any], zone: dt.tzinfo) -> RawRecord | None:
        values = [v.get("value", "") for v in row.get("dimensionValues") or []]
        cells = dict(zip(headers, values, strict=False))
        names = dict(DIMENSIONS)
        payload = {names[name]: value for name, value in cells.items() if name in names and value not in EMPTY}
        raw_id = cells.get(self.options.client_id_dimension, "")
        key = "sha256:" + hashlib.sha256("\x1f".join([self.options.property_id, *values]).encode()).hexdigest()[:32]
        visitor = _visitor_id(self.kind, raw_id)
        try:
            at = dt.datetime.strptime(cells.get("dateHour", ""), "%Y%m%d%H").replace(tzinfo=zone).astimezone(
                dt.timezone.utc)
        except ValueError:
            return RawRecord(key, {"row": json.dumps(cells, ensure_ascii=False)[:2000]},
                             error=f"bad dateHour {cells.get('dateHour')!r}")
        if visitor is None:  # (not set) or not an id
            return None
        metrics = row.get("metricValues") or []
        payload["sessions"] = metrics[0].get("value", "1") if metrics else "1"
        payload["client_id"] = visitor
        payload.pop("hour", None)
        event = EventReport(VISIT, key, at, tuple(sorted(payload.items())))
        return RawRecord(key, {"client_id": visitor}, updated_at=at, events=(event,), history_only=True,
                         client_id=(self.kind, visitor))


def _visitor_id(kind: str, value: str) -> str | None:
    value = value.strip()
    if kind == GA_CLIENT_ID:
        parts = value.split(".")
        if len(parts) >= 4 and parts[0].upper().startswith("GA"):  # the raw _ga cookie
            value = ".".join(parts[-2:])
    return client_id(kind, value)


#: where a day ends last (UTC-12): a day finished there is finished everywhere
LAST_ZONE = dt.timezone(dt.timedelta(hours=-12))


def _zone(answer: dict[str, Any], default: dt.tzinfo | None) -> dt.tzinfo | None:
    """The time zone a report's ``metadata`` names; ``default`` when it names none this
    host knows."""
    name = (answer.get("metadata") or {}).get("timeZone")
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else default
    except (ZoneInfoNotFoundError, ValueError):
        return default


def _reason(error: Any) -> str:
    try:
        body = json.loads(error.content.decode("utf-8"))
        inner = body.get("error") or {}
        return f"{inner.get('status', '')}: {inner.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return str(getattr(error, "reason", "") or "error")


def _auth_errors() -> type[Exception]:
    from google.auth.exceptions import GoogleAuthError

    return GoogleAuthError


def httplib2_errors() -> type[Exception]:
    import httplib2

    return httplib2.HttpLib2Error


@hookimpl
def hub_connectors(register):  # type: ignore[no-untyped-def]
    register(Ga4Connector)
