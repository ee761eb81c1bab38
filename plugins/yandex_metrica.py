"""hub connector for Yandex Metrica visits through the Logs API (source).

A read asks the Logs API for the visits of the dates after the cursor (the last day
loaded, less ``lookback_days`` because Metrica keeps changing a day's visits for about
three days): ``evaluate`` tells whether the range can be prepared at once, else it is
split into ranges of the days it can; each range is a log request that is created (or
an identical one left by a killed run is reused), polled until ``processed``, its parts
downloaded (TSV, at most ``parallel`` at once, never more than Metrica's 3) and then
cleaned, also when the read fails, so the counter's log storage does not fill up.

Each visit with a ClientID becomes a history-only record whose ``visit`` event goes to
the contact holding that Metrica ClientID (``_ym_uid`` of a site form), or waits for
one (``hub.analytics``). Visits never create contacts. 420 and 429 (Metrica's quota
answers) are retried with backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from zoneinfo import ZoneInfo

import requests
from pydantic import Field, field_validator

from hub.analytics import PENDING_DAYS, VISIT, YM_CLIENT_ID, client_id
from hub.connector import READ, Connector, ConnectorContext, ConnectorOptions, check_timezone
from hub.errors import FatalError, RetriableError
from hub.hookspecs import hookimpl
from hub.http import ApiClient, response_message
from hub.model import Checkpoint, EventReport, RawRecord
from hub.redact import register_secret

BASE_URL = "https://api-metrika.yandex.net"
#: Metrica answers more than 3 parallel requests of one user with 420/429.
MAX_PARALLEL = 3
#: Statuses of a log request that will not become ``processed``.
FAILED = ("canceled", "processing_failed", "cleaned_by_user", "cleaned_automatically_as_too_old")
#: Statuses of a log request still on its way (``awaiting_retry``: Metrica retries it).
WAITING = ("created", "awaiting_retry")

#: Logs API field -> the visit event's payload key (``hub.analytics.TOUCH_KEYS`` and more).
FIELDS: tuple[tuple[str, str], ...] = (
    ("ym:s:visitID", "visit_id"),
    ("ym:s:clientID", "client_id"),
    ("ym:s:dateTime", "at"),
    ("ym:s:lastTrafficSource", "channel"),
    ("ym:s:UTMSource", "source"),
    ("ym:s:UTMMedium", "medium"),
    ("ym:s:UTMCampaign", "campaign"),
    ("ym:s:UTMContent", "content"),
    ("ym:s:UTMTerm", "term"),
    ("ym:s:deviceCategory", "device"),
    ("ym:s:regionCountry", "region"),
    ("ym:s:regionCity", "city"),
    ("ym:s:startURL", "page"),
    ("ym:s:goalsID", "goals"),
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: ``ym:s:deviceCategory`` codes.
DEVICES = {"1": "desktop", "2": "mobile", "3": "tablet", "4": "tv"}


class MetricaOptions(ConnectorOptions):
    counter_id: int = Field(..., gt=0, description="The Metrica counter (tag) number.")
    token: str = Field(..., repr=False, description="OAuth token with the metrika:read permission ($VAR).")
    endpoint: str | None = Field(None, description="Base URL of the API (a proxy, a test server).")
    start_date: dt.date | None = Field(None, description="First day read on the initial load (default: initial_days ago).")
    initial_days: int = Field(30, ge=1, le=365, description="Days read on the initial load when start_date is not set.")
    lookback_days: int = Field(3, ge=0, le=30, description="Days before the cursor read again (late visits).")
    pending_days: int = Field(
        PENDING_DAYS, ge=0, le=3650,
        description="Days a visit of a client id no contact holds yet is kept for a form that may bring it (0: none).")
    timezone: str = Field("Europe/Moscow", description="The counter's time zone (ym:s:dateTime is in it).")
    parallel: int = Field(MAX_PARALLEL, ge=1, le=MAX_PARALLEL,
                          description="Requests in flight at once (parts downloaded in parallel); Metrica allows 3.")
    poll_seconds: float = Field(10.0, ge=0, description="Wait between two status checks of a log request.")
    max_wait_seconds: float = Field(3600.0, gt=0, description="Give up on a log request not processed by then.")
    timeout_seconds: float = Field(120.0, gt=0, description="How long to wait for an answer.")
    max_attempts: int = Field(6, ge=1, le=20, description="Tries per request on 420, 429, 5xx and timeouts.")
    backoff_seconds: float = Field(2.0, ge=0, description="First backoff; it doubles per try, with jitter.")
    max_backoff_seconds: float = Field(60.0, ge=0, description="Longest backoff between two tries.")

    @field_validator("token")
    @classmethod
    def _secret(cls, value: str) -> str:
        register_secret(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)


def _error_message(response: requests.Response) -> str:
    """Metrica's error body: ``{"errors": [{"error_type", "message"}], "code", "message"}``."""
    try:
        body = response.json()
    except ValueError:
        return response_message(response)
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return f"{first.get('error_type', 'error')}: {first.get('message', '')}".strip()
        if body.get("message"):
            return str(body["message"])
    return response_message(response)


class MetricaConnector(Connector):
    plugin = "yandex_metrica"
    Options = MetricaOptions
    capabilities = frozenset({READ})
    description = "Yandex Metrica visits via the Logs API, linked to contacts by ClientID (source)"
    options: MetricaOptions

    def __init__(self, options: MetricaOptions, context: ConnectorContext,
                 *, sleep: Callable[[float], None] = time.sleep, today: Callable[[], dt.date] | None = None):
        super().__init__(options, context)
        self.zone = ZoneInfo(options.timezone)
        self._sleep = sleep
        self._today = today or (lambda: dt.datetime.now(self.zone).date())
        account = hashlib.sha256(options.token.encode()).hexdigest()[:16]
        self.api = ApiClient(
            "Yandex Metrica", (options.endpoint or BASE_URL).rstrip("/") + f"/management/v1/counter/{options.counter_id}",
            headers={"Authorization": f"OAuth {options.token}"}, secrets=[options.token],
            timeout=(min(10.0, options.timeout_seconds), options.timeout_seconds),
            max_attempts=options.max_attempts, backoff_seconds=options.backoff_seconds,
            max_backoff_seconds=options.max_backoff_seconds, max_concurrent=options.parallel,
            pacing_key=("yandex_metrica", account), rate_limited=lambda r: r.status_code == 420,
            error_message=_error_message, sleep=sleep,
        )
        self.fields = ",".join(name for name, _ in FIELDS)

    # --- reading ---------------------------------------------------------------------
    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        end = self._today() - dt.timedelta(days=1)  # the Logs API has no data of today
        if cursor:
            try:
                start = dt.date.fromisoformat(cursor) + dt.timedelta(days=1 - self.options.lookback_days)
            except ValueError:
                start = None
        else:
            start = None
        if start is None:
            start = self.options.start_date or end - dt.timedelta(days=self.options.initial_days - 1)
        if start > end:
            yield Checkpoint(cursor)
            return
        for date1, date2 in self._ranges(start, end):
            yield from self._load(date1, date2)
            yield Checkpoint(date2.isoformat())

    def _ranges(self, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
        """The range split into pieces the Logs API says it can prepare."""
        answer = self.api.get_json("logrequests/evaluate", params=self._params(start, end), doing="evaluate")
        evaluation = (answer or {}).get("log_request_evaluation") or {}
        if evaluation.get("possible"):
            return [(start, end)]
        days = int(evaluation.get("max_possible_day_quantity") or 0)
        if days < 1:
            raise FatalError(
                f"Yandex Metrica: the Logs API cannot prepare the visits of {start} for counter "
                f"{self.options.counter_id} (no room left in the counter's log storage)",
                hint="clean old log requests of the counter (Metrica keeps 10 GB until they are cleaned)",
            )
        ranges = []
        while start <= end:
            last = min(end, start + dt.timedelta(days=days - 1))
            ranges.append((start, last))
            start = last + dt.timedelta(days=1)
        return ranges

    def _params(self, date1: dt.date, date2: dt.date) -> dict[str, str]:
        return {"date1": date1.isoformat(), "date2": date2.isoformat(), "fields": self.fields, "source": "visits"}

    def _load(self, date1: dt.date, date2: dt.date) -> Iterator[RawRecord]:
        request_id = self._create(date1, date2)
        processed = False
        try:
            parts = self._wait(request_id)
            processed = True
            numbers = [int(part["part_number"]) for part in parts]
            with ThreadPoolExecutor(max_workers=self.options.parallel) as pool:
                texts = pool.map(lambda n: self._download(request_id, n), numbers)
                for number, text in zip(numbers, texts, strict=True):
                    # a visitor's visits one after the other: its card is derived once, not per batch
                    yield from sorted(self._visits(text, request_id, number),
                                      key=lambda r: (r.client_id or ("", ""), r.updated_at or _EPOCH, r.external_id))
        finally:  # also when the read failed or was stopped: the counter's storage is limited
            self._release(request_id, processed)

    def _create(self, date1: dt.date, date2: dt.date) -> int:
        """A new log request, or the one a killed run left for the same range and fields."""
        params = self._params(date1, date2)
        listed = self.api.get_json("logrequests", doing="list log requests") or {}
        for request in listed.get("requests") or []:
            if (request.get("source") == "visits" and request.get("date1") == params["date1"]
                    and request.get("date2") == params["date2"]
                    and ",".join(request.get("fields") or []) == self.fields
                    and request.get("status") in WAITING + ("processed",)):
                return int(request["request_id"])
        answer = self.api.request("POST", "logrequests", params=params, doing="create a log request")
        request = (self.api.json(answer) or {}).get("log_request") or {}
        if "request_id" not in request:
            raise RetriableError("Yandex Metrica: the answer to creating a log request has no request_id")
        return int(request["request_id"])

    def _wait(self, request_id: int) -> list[dict[str, Any]]:
        waited = 0.0
        while True:
            request = (self.api.get_json(f"logrequest/{request_id}", doing="check a log request") or {}).get(
                "log_request") or {}
            status = request.get("status")
            if status == "processed":
                return sorted(request.get("parts") or [], key=lambda part: int(part["part_number"]))
            if status in FAILED:
                raise RetriableError(f"Yandex Metrica: log request {request_id} ended as {status}",
                                     hint="the next sync asks again")
            if waited >= self.options.max_wait_seconds:
                raise RetriableError(
                    f"Yandex Metrica: log request {request_id} not processed after {int(waited)} s (status {status})",
                    hint="the next sync takes it up again; raise max_wait_seconds for large counters")
            self._sleep(self.options.poll_seconds)
            waited += max(self.options.poll_seconds, 0.001)

    def _download(self, request_id: int, number: int) -> str:
        response = self.api.request("GET", f"logrequest/{request_id}/part/{number}/download",
                                    headers={"Accept": "text/tab-separated-values, text/plain, */*"},
                                    doing=f"download part {number}")
        return response.content.decode("utf-8", errors="replace")

    def _release(self, request_id: int, processed: bool) -> None:
        """Clean a processed log request, cancel one still being prepared."""
        action = "clean" if processed else "cancel"
        try:
            self.api.request("POST", f"logrequest/{request_id}/{action}", idempotent=True,
                             doing=f"{action} log request {request_id}")
        except (RetriableError, FatalError) as error:
            self.context.logger.warning("Yandex Metrica: log request %s not %s: %s", request_id,
                                        "cleaned" if processed else "canceled", error)

    def _visits(self, text: str, request_id: int, part: int) -> Iterator[RawRecord]:
        lines = text.split("\n")
        header = lines[0].split("\t") if lines else []
        names = dict(FIELDS)
        if "ym:s:visitID" not in header or "ym:s:clientID" not in header:
            raise RetriableError(f"Yandex Metrica: part {part} of log request {request_id} has no visitID/clientID "
                                 "header")
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            cells = line.split("\t")
            if len(cells) != len(header):
                yield RawRecord(f"part{part}:line{number}", {"line": line[:2000]},
                                error=f"{len(cells)} cells where the header has {len(header)}")
                continue
            row = {names.get(name, name): _unescape(cell) for name, cell in zip(header, cells, strict=True)}
            visit_id = row.get("visit_id", "")
            cid = client_id(YM_CLIENT_ID, row.get("client_id"))
            if not cid or cid == "0":
                continue  # a visit without a ClientID cannot be anyone's
            try:
                at = dt.datetime.fromisoformat(row.get("at", "")).replace(tzinfo=self.zone).astimezone(dt.timezone.utc)
            except ValueError:
                yield RawRecord(visit_id or f"part{part}:line{number}", {"line": line[:2000]},
                                error=f"bad ym:s:dateTime {row.get('at')!r}")
                continue
            row["device"] = DEVICES.get(row.get("device", ""), row.get("device", ""))
            goals = row.get("goals", "").strip("[]")
            row["goals"] = goals
            payload = tuple((key, value[:500]) for key, value in sorted(row.items())
                            if value and key not in ("at", "visit_id"))
            event = EventReport(VISIT, visit_id, at, payload)
            yield RawRecord(visit_id, {"client_id": cid}, updated_at=at, events=(event,), history_only=True,
                            client_id=(YM_CLIENT_ID, cid))

    def close(self) -> None:
        self.api.close()


def _unescape(cell: str) -> str:
    """TSV cells of the Logs API escape tabs, newlines and backslashes."""
    if "\\" not in cell:
        return cell
    out, chars = [], iter(cell)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\", "0": ""}.get(following, following))
        else:
            out.append(char)
    return "".join(out)


@hookimpl
def hub_connectors(register):  # type: ignore[no-untyped-def]
    register(MetricaConnector)
