"""A Google Sheets worksheet as a source and a destination of contacts, on gspread.

Reading: one ``spreadsheets.get`` for the worksheet's size, then the rows in ranges of
``read_chunk_rows`` (``values.get``, unformatted values so that a phone shown as
7.9E+10 reads as its digits). Headers are matched by name on every read, so people
may reorder, add or rename columns between runs. The cursor is a hash of everything
read: an unchanged sheet yields no record, and the core's row hashes skip unchanged
rows of a changed one. A no-op sync thus costs two API calls and writes nothing.

Rows are keyed by ``key_column``, or by a ``hub_id`` column that hub adds once and
fills for rows people add by hand (one ``values.batchUpdate`` when there are such rows).
The first row holding a key is that key's record. A later row with the same ``hub_id``
(a row copied with its key cell) gets a key of its own, like a row added without one;
with ``key_column``, hub never writes such a later row.

Writing: the sheet is read again, each item's row found by its key and only the cells
whose value differs are sent, all in one ``values.batchUpdate`` with RAW input (a value
is never run as a formula); new contacts are appended with ``values.append``; rows to
delete go in one ``spreadsheets.batchUpdate``. Other columns, formatting and row order
are left alone. A cell a person changed after hub's last read of it is not
overwritten: the item is reported as a conflict (retried by the next sync, after that
sync has read the person's edit).

Quotas: requests are paced client-side (per minute, per user and per project, reads and
writes counted apart as Google does), and 429/5xx answers are retried with exponential
backoff and jitter, honouring ``Retry-After``. A request addressed to row numbers (cell
updates, row deletes) is never sent again as it was: a person may sort the sheet during
the pause. hub reads the sheet again and rebuilds the request from where the keys are
now.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from hub.connector import Connector, ConnectorContext, ConnectorOptions
from hub.errors import FatalError, RetriableError
from hub.hookspecs import hookimpl
from hub.http import RateLimiter, retry_after_seconds, wait_text, waits_too_long
from hub.model import Checkpoint, OutboundItem, RawRecord, WriteResult
from hub.redact import register_secret

#: The only scope hub asks for: read and write spreadsheets, no Drive access...
SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
#: ... or only read them (``read_only: true``).
READ_ONLY_SCOPES = ("https://www.googleapis.com/auth/spreadsheets.readonly",)
GOOGLE_ENDPOINT = "https://sheets.googleapis.com"
#: Name of the key column hub adds when ``key_column`` is not set.
HUB_ID_COLUMN = "hub_id"
#: Key prefix of rows hub appends (followed by the contact id), so that an append
#: that was lost or retried finds its row instead of adding a second one.
NEW_ROW_PREFIX = "hub-"
#: Key prefix hub gives rows that people add without a key.
MANUAL_ROW_PREFIX = "r-"
#: Largest payload Google advises for one request; larger writes are split.
MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
#: A cell holds at most this many characters.
MAX_CELL_CHARS = 50000

log = logging.getLogger(__name__)


def column_letter(index: int) -> str:
    """Spreadsheet letters of a 1-based column number: 1 -> A, 28 -> AB."""
    letters = ""
    while index > 0:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def a1_range(title: str, first_row: int, first_column: int, last_row: int | None = None,
             last_column: int | None = None) -> str:
    """``'Title'!B2:D9`` with the title quoted as the API expects (``'`` doubled)."""
    sheet = "'" + title.replace("'", "''") + "'"
    start = f"{column_letter(first_column)}{first_row}"
    if last_row is None and last_column is None:
        return f"{sheet}!{start}"
    end = f"{column_letter(last_column or first_column)}{last_row or first_row}"
    return f"{sheet}!{start}:{end}"


# ---------------------------------------------------------------- options


class GoogleSheetsOptions(ConnectorOptions):
    """Options of a ``plugin: google_sheets`` connector."""

    #: The spreadsheet's key or its URL (a ``#gid=`` in the URL picks the worksheet).
    spreadsheet: str
    #: Worksheet title; ``None``: the ``gid`` of the URL, else the first worksheet.
    worksheet: str | None = None
    #: Row of the header (1-based); rows above it are neither read nor written.
    header_row: int = Field(1, ge=1)
    #: Column holding each row's stable key; ``None``: a ``hub_id`` column hub adds.
    key_column: str | None = None
    #: Path of a service account key file, or of OAuth user credentials
    #: (``authorized_user`` JSON); relative to hub.yaml.
    credentials_file: str | None = None
    #: The same JSON as text, usually ``$GOOGLE_SHEETS_CREDENTIALS``.
    credentials: str | None = Field(None, repr=False)
    #: Ask Google only for read access (the sheet may then be shared as Viewer); needs
    #: ``key_column``, since hub cannot add its ``hub_id`` keys, and the role ``source``.
    read_only: bool = False
    #: Base URL of the Sheets API (a proxy, or a local fake in tests).
    endpoint: str = GOOGLE_ENDPOINT
    #: What a row deleted by a person means. ``delete``: hub removes the row's record,
    #: behind the mass-delete guard; a contact no other tool knows is deleted (also in
    #: the other destinations). ``unlink``: hub keeps the contact and what the row said,
    #: and stops syncing it with the sheet (the row is not added again). ``ignore``: hub
    #: keeps everything and adds the row again the next time it writes that contact.
    on_missing: Literal["ignore", "unlink", "delete"] = "delete"
    #: Client-side pacing, per minute, for reads and for writes each (Google's defaults).
    requests_per_minute_per_user: int = Field(60, ge=1)
    requests_per_minute_per_project: int = Field(300, ge=1)
    #: Rows per ``values.get`` when reading a large sheet.
    read_chunk_rows: int = Field(20000, ge=10)
    #: Attempts of one request on 429/5xx/network errors, and the first backoff (s).
    max_attempts: int = Field(6, ge=1)
    backoff_seconds: float = Field(1.0, ge=0)
    max_backoff_seconds: float = Field(64.0, ge=0)
    #: Seconds to wait for an answer.
    timeout: float = Field(120.0, gt=0)

    @model_validator(mode="after")
    def _one_credential(self) -> GoogleSheetsOptions:
        if (self.credentials_file is None) == (self.credentials is None):
            raise ValueError(
                "set exactly one of credentials_file (path of a service account key file) "
                "or credentials (its JSON, e.g. credentials: $GOOGLE_SHEETS_CREDENTIALS)"
            )
        if self.credentials is not None:
            register_secret(self.credentials)
        self.endpoint = self.endpoint.rstrip("/")
        if not re.match(r"^https?://", self.endpoint):
            raise ValueError("endpoint must be a URL such as https://sheets.googleapis.com")
        if self.key_column is not None and not self.key_column.strip():
            raise ValueError("key_column must name a column")
        if self.read_only and self.key_column is None:
            raise ValueError("read_only needs key_column: without write access hub cannot add its hub_id column")
        spreadsheet_key(self.spreadsheet)
        return self


def spreadsheet_key(value: str) -> str:
    """The key of a spreadsheet given as a key or as its URL."""
    value = value.strip()
    match = re.search(r"/spreadsheets/d/([a-zA-Z0-9_-]+)", value) or re.search(r"[?&]key=([a-zA-Z0-9_-]+)", value)
    if match:
        return match.group(1)
    if re.fullmatch(r"[a-zA-Z0-9_-]+", value):
        return value
    raise ValueError(f"{value!r} is neither a spreadsheet key nor a Google Sheets URL")


def _url_gid(value: str) -> int | None:
    match = re.search(r"[#&?]gid=(\d+)", value)
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------- pacing


#: Google's quotas are per minute.
QUOTA_PERIOD = 60.0

_LIMITERS: dict[tuple[str, ...], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(key: tuple[str, ...], limit: int) -> RateLimiter:
    """One limiter per user or project and kind of request, shared by every connector
    of the process, since Google counts them together."""
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key + (str(limit),))
        if limiter is None:
            limiter = _LIMITERS[key + (str(limit),)] = RateLimiter(limit, QUOTA_PERIOD)
        return limiter


# ---------------------------------------------------------------- HTTP


class _Refused(Exception):
    """A response that is worth another try after ``retry_after`` seconds (or backoff)."""

    def __init__(self, status: int, message: str, retry_after: float | None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _error_message(error: Any) -> tuple[int, str]:
    """The status and message of a gspread ``APIError``, also for non-JSON bodies."""
    response = error.response
    code = error.code if isinstance(error.code, int) and error.code > 0 else response.status_code
    message = error.error.get("message") if isinstance(error.error, dict) else None
    text = str(message or "").strip()
    if not text or text.lstrip().startswith("<") or error.code == -1:
        text = f"HTTP {response.status_code} {response.reason or ''}".strip()
    return code, text[:300]


class _RowWriteFailed(Exception):
    """A request addressed to row numbers failed: it is rebuilt from a fresh read, not resent."""

    def __init__(self, error: RetriableError):
        super().__init__(error.message)
        self.error = error
        self.retry_after = error.retry_after


def _retry_wait(options: GoogleSheetsOptions) -> Callable[[Any], float]:
    """Seconds to wait before a retry: ``Retry-After`` when given (capped), else
    exponential backoff with jitter."""
    from tenacity import RetryCallState, wait_random_exponential

    backoff = wait_random_exponential(multiplier=options.backoff_seconds, max=options.max_backoff_seconds)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if isinstance(error, (_Refused, _RowWriteFailed)) and retry_after is not None:
            return min(retry_after, max(options.max_backoff_seconds, 1.0) * 4)
        return backoff(state)

    return wait


def _row_addressed(url: str, body: Any) -> bool:
    """Whether a request names rows by their number (cell updates, row deletes): sent
    again later, it would hit whatever rows a person has moved there meanwhile."""
    if url.endswith("/values:batchUpdate"):
        return True
    requests_ = body.get("requests", []) if isinstance(body, dict) else []
    return url.endswith(":batchUpdate") and any("deleteDimension" in entry for entry in requests_)


def _make_http_client(options: GoogleSheetsOptions, limiters: list[tuple[RateLimiter, RateLimiter]],
                      sleep: Callable[[float], None]) -> type:
    """A gspread ``HTTPClient`` that talks to ``options.endpoint``, paces requests and
    retries what is safe to retry."""
    import gspread
    import requests
    from tenacity import Retrying, retry_if_exception, stop_after_attempt

    wait = _retry_wait(options)

    class HubHTTPClient(gspread.HTTPClient):
        calls = 0

        def request(self, method: str, endpoint: str, **kwargs: Any) -> Any:  # type: ignore[override]
            url = endpoint
            if url.startswith(GOOGLE_ENDPOINT):
                url = options.endpoint + url[len(GOOGLE_ENDPOINT):]
            reading = method.lower() == "get"
            # an append that failed after reaching the server may have added its rows:
            # only a refusal (429) is retried; anything else is settled by the next write
            ambiguous_unsafe = url.endswith(":append")
            # a request naming rows by number is sent once: the connector reads the sheet
            # again and rebuilds it (see ``_rebuilt``), as rows may have moved meanwhile
            once_only = _row_addressed(url, kwargs.get("json"))

            def retriable(error: BaseException) -> bool:
                if once_only or waits_too_long(error):
                    return False
                if isinstance(error, _Refused):
                    return error.status == 429 or not ambiguous_unsafe
                return isinstance(error, (requests.ConnectionError, requests.Timeout)) and not ambiguous_unsafe

            def once() -> Any:
                for pair in limiters:
                    pair[0 if reading else 1].acquire()
                type(self).calls += 1
                try:
                    return gspread.HTTPClient.request(self, method, url, **kwargs)
                except gspread.exceptions.APIError as error:
                    code, message = _error_message(error)
                    if code == 429 or code >= 500 or code == 408:
                        raise _Refused(code, message, retry_after_seconds(error.response.headers)) from None
                    raise

            retrying = Retrying(
                stop=stop_after_attempt(options.max_attempts),
                wait=wait,
                retry=retry_if_exception(retriable),
                sleep=sleep,
                reraise=True,
            )
            return retrying(once)

    return HubHTTPClient


# ---------------------------------------------------------------- the sheet as read


@dataclass
class _Grid:
    """One read of the worksheet: its header and its rows by sheet row number."""

    title: str
    sheet_id: int
    row_count: int
    column_count: int
    #: Header names by 0-based column; ``None`` under blank header cells.
    names: list[str | None] = field(default_factory=list)
    #: Sheet row number -> cells (unformatted values), for non-blank rows below the header.
    rows: dict[int, list[Any]] = field(default_factory=dict)
    #: Sheet row number of the last row that holds anything (the header at least).
    last_row: int = 0

    def index(self, name: str) -> int | None:
        try:
            return self.names.index(name)
        except ValueError:
            return None

    @property
    def width(self) -> int:
        """Columns in use: the header's and any data's."""
        used = len(self.names)
        for cells in self.rows.values():
            used = max(used, len(cells))
        return used


def _cell_text(value: Any) -> str:
    """A cell's value as text, as hub compares and keys it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**63:
            return str(int(value))
        return repr(value)
    return str(value)


def _read_value(value: Any) -> Any:
    """A cell as a record carries it: integral numbers as ints (a phone is not 7.9E+10)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _write_value(value: Any) -> Any:
    """A value as sent with RAW input: text stays text whatever it starts with."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell_text(_write_value(v)) for v in value)
    text = str(value).replace("\x00", "")
    if len(text) > MAX_CELL_CHARS:
        raise ValueError(f"text of {len(text)} characters is longer than a cell holds ({MAX_CELL_CHARS})")
    return text


def _same(current: Any, wanted: Any) -> bool:
    if _is_blank(current) and _is_blank(wanted):
        return True
    return _cell_text(current) == _cell_text(wanted)


# ---------------------------------------------------------------- the connector


class GoogleSheetsConnector(Connector):
    """One worksheet of a Google spreadsheet: a table with a header row, keyed by a column."""

    plugin = "google_sheets"
    Options = GoogleSheetsOptions
    capabilities = frozenset({"read", "write"})
    multi_value_cells = True
    #: All pending items in one write: it reads the sheet once and sends every change in one request.
    write_batch_size = None
    description = "Google Sheets worksheets (source and destination), within the API quotas"

    options: GoogleSheetsOptions

    def __init__(self, options: GoogleSheetsOptions, context: ConnectorContext):
        super().__init__(options, context)
        self.key = spreadsheet_key(options.spreadsheet)
        self._client: Any = None
        self._http: Any = None
        self._meta: dict[str, Any] | None = None
        #: Rows as hub last read or wrote them: key -> {column name: cell text}.
        self._baseline: dict[str, dict[str, str]] = {}
        #: Seconds paused before each retry, in order (observable in tests and logs).
        self.pauses: list[float] = []
        self.limiters: list[tuple[RateLimiter, RateLimiter]] | None = None
        self.account = ""

    # ------------------------------------------------------------ connection

    def _credentials(self) -> Any:
        options = self.options
        if options.credentials_file is not None:
            path = self.context.resolve_path(options.credentials_file)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as error:
                raise FatalError(
                    f"{path}: cannot read the credentials file: {error.strerror}",
                    hint="set credentials_file to the service account key file (JSON) downloaded from Google Cloud",
                ) from None
            where = str(path)
        else:
            text = options.credentials or ""
            where = "credentials"
        try:
            info = json.loads(text)
        except json.JSONDecodeError:
            raise FatalError(f"{where}: not a JSON key file", hint="use the JSON key downloaded from Google Cloud") from None
        if not isinstance(info, dict):
            raise FatalError(f"{where}: not a JSON key file", hint="use the JSON key downloaded from Google Cloud")
        for secret in (info.get("private_key"), info.get("client_secret"), info.get("refresh_token")):
            if isinstance(secret, str) and secret:
                register_secret(secret)
        kind = info.get("type")
        try:
            if kind == "service_account":
                from google.oauth2.service_account import Credentials

                credentials = Credentials.from_service_account_info(info, scopes=list(self._scopes))
                self.account = str(info.get("client_email", ""))
                project = str(info.get("project_id") or self.account.partition("@")[2])
            elif kind == "authorized_user":
                from google.oauth2.credentials import Credentials as UserCredentials

                missing = [k for k in ("client_id", "client_secret", "refresh_token") if not info.get(k)]
                if missing:
                    raise ValueError(f"missing {', '.join(missing)}")
                # built directly: from_authorized_user_info ignores the file's token_uri
                credentials = UserCredentials(
                    token=None, refresh_token=info["refresh_token"], client_id=info["client_id"],
                    client_secret=info["client_secret"], scopes=list(self._scopes),
                    token_uri=info.get("token_uri") or "https://oauth2.googleapis.com/token",
                    quota_project_id=info.get("quota_project_id"),
                )
                self.account = str(info.get("client_id", ""))
                project = str(info.get("quota_project_id") or info.get("client_id", ""))
            else:
                raise FatalError(
                    f"{where}: unsupported credentials type {kind!r}",
                    hint="use a service account key (type service_account) or OAuth user credentials "
                    "(type authorized_user)",
                )
        except (ValueError, KeyError) as error:
            raise FatalError(f"{where}: invalid credentials: {error}") from None
        if self.limiters is None:
            per_user = self.options.requests_per_minute_per_user
            per_project = self.options.requests_per_minute_per_project
            self.limiters = [
                (shared_limiter(("user", "read", self.account), per_user),
                 shared_limiter(("user", "write", self.account), per_user)),
                (shared_limiter(("project", "read", project), per_project),
                 shared_limiter(("project", "write", project), per_project)),
            ]
        return credentials

    @property
    def _scopes(self) -> tuple[str, ...]:
        return READ_ONLY_SCOPES if self.options.read_only else SCOPES

    def _connect(self) -> Any:
        if self._http is None:
            import gspread

            credentials = self._credentials()
            assert self.limiters is not None
            http_class = _make_http_client(self.options, self.limiters, self._pause)
            self._client = gspread.Client(auth=credentials, http_client=http_class)
            self._client.set_timeout(self.options.timeout)
            self._http = self._client.http_client
        return self._http

    def _pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.context.logger.info("%s: Google Sheets asked to slow down; retrying in %.1f s", self.context.name, seconds)
        time.sleep(seconds)

    @property
    def api_calls(self) -> int:
        """Requests sent to the Sheets API by this connector (retries included)."""
        return type(self._http).calls if self._http is not None else 0

    def _call(self, doing: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one API call; turn what fails into hub's errors."""
        import gspread
        import requests
        from google.auth import exceptions as auth_errors

        try:
            return function(*args, **kwargs)
        except _Refused as error:
            if waits_too_long(error):
                raise RetriableError(
                    f"Google Sheets: cannot {doing}: {error.message} (HTTP {error.status}, asked to wait "
                    f"{wait_text(error.retry_after)}, longer than a run waits)",
                    retry_after=error.retry_after, hint="the next sync tries again",
                ) from None
            raise RetriableError(
                f"Google Sheets: cannot {doing}: {error.message} (HTTP {error.status}, "
                f"still failing after {self.options.max_attempts} attempts)",
                retry_after=error.retry_after,
            ) from None
        except gspread.exceptions.APIError as error:
            code, message = _error_message(error)
            if code == 401:
                raise FatalError(
                    f"Google Sheets: cannot {doing}: the access token was refused even after a refresh ({message})",
                    hint="check the credentials: a key of a deleted service account, or OAuth consent revoked?",
                ) from None
            if code == 403:
                raise FatalError(
                    f"Google Sheets: cannot {doing}: permission denied ({message})",
                    hint=f"share the spreadsheet with {self.account or 'the service account'} as Editor "
                    "and check that the Google Sheets API is enabled in its project",
                ) from None
            if code == 404:
                raise FatalError(
                    f"Google Sheets: spreadsheet {self.key!r} not found ({message})",
                    hint="check 'spreadsheet' in hub.yaml (the key is the part of the URL after /d/)",
                ) from None
            raise FatalError(f"Google Sheets: cannot {doing}: {message} (HTTP {code})") from None
        except auth_errors.RefreshError as error:
            if getattr(error, "retryable", False):
                raise RetriableError(f"Google Sheets: cannot get an access token now: {error.args[0]}") from None
            raise FatalError(
                f"Google Sheets: cannot get an access token: {error.args[0] if error.args else error}",
                hint="check the credentials (a revoked or deleted key, a wrong file?)",
            ) from None
        except auth_errors.TransportError as error:
            raise RetriableError(f"Google Sheets: cannot reach the token service: {error}") from None
        except (requests.ConnectionError, requests.Timeout) as error:
            raise RetriableError(f"Google Sheets: cannot {doing}: {type(error).__name__}") from None
        except requests.RequestException as error:
            raise RetriableError(f"Google Sheets: cannot {doing}: {error}") from None
        except ValueError as error:  # a truncated or non-JSON answer
            raise RetriableError(f"Google Sheets: cannot {doing}: the answer is not valid JSON ({error})") from None

    def _metadata(self, *, fresh: bool = False) -> dict[str, Any]:
        """The worksheet's properties (title, id, grid size): one ``spreadsheets.get``."""
        if self._meta is not None and not fresh:
            return self._meta
        http = self._connect()
        data = self._call("open the spreadsheet", http.fetch_sheet_metadata, self.key)
        sheets = [sheet.get("properties", {}) for sheet in data.get("sheets", [])]
        wanted, gid = self.options.worksheet, _url_gid(self.options.spreadsheet)
        if wanted is not None:
            chosen = next((sheet for sheet in sheets if sheet.get("title") == wanted), None)
        elif gid is not None:
            chosen = next((sheet for sheet in sheets if sheet.get("sheetId") == gid), None)
        else:
            chosen = min(sheets, key=lambda sheet: sheet.get("index", 0), default=None)
        if chosen is None:
            titles = ", ".join(repr(sheet.get("title")) for sheet in sheets) or "none"
            what = f"no worksheet named {wanted!r}" if wanted is not None else f"no worksheet with gid {gid}"
            raise FatalError(f"Google Sheets: {what} in spreadsheet {self.key!r}",
                             hint=f"set worksheet to one of: {titles}")
        grid = chosen.get("gridProperties", {})
        self._meta = {
            "title": chosen["title"],
            "sheet_id": int(chosen.get("sheetId", 0)),
            "row_count": int(grid.get("rowCount", 0)),
            "column_count": int(grid.get("columnCount", 0)),
        }
        return self._meta

    # ------------------------------------------------------------ reading the grid

    def _read_grid(self, *, fresh_metadata: bool = False) -> _Grid:
        """Every row from the header down, in ranges of ``read_chunk_rows``."""
        meta = self._metadata(fresh=fresh_metadata)
        http = self._connect()
        grid = _Grid(meta["title"], meta["sheet_id"], meta["row_count"], meta["column_count"])
        header_row = self.options.header_row
        columns = max(grid.column_count, 1)
        params = {"valueRenderOption": "UNFORMATTED_VALUE", "dateTimeRenderOption": "FORMATTED_STRING",
                  "majorDimension": "ROWS"}
        start = header_row
        header_seen = False
        while start <= max(grid.row_count, header_row):
            end = min(start + self.options.read_chunk_rows - 1, max(grid.row_count, header_row))
            cell_range = a1_range(grid.title, start, 1, end, columns)
            data = self._call("read the worksheet", http.values_get, self.key, cell_range, params=params)
            for offset, cells in enumerate(data.get("values", [])):
                row_number = start + offset
                if row_number == header_row:
                    header_seen = True
                    grid.names = self._header(cells, grid.title)
                    grid.last_row = header_row
                    continue
                if all(_is_blank(cell) for cell in cells):
                    continue
                grid.rows[row_number] = cells
                grid.last_row = row_number
            start = end + 1
        if not header_seen:
            grid.names = []
        return grid

    def _header(self, cells: list[Any], title: str) -> list[str | None]:
        names: list[str | None] = []
        seen: dict[str, int] = {}
        row = self.options.header_row
        for index, cell in enumerate(cells, start=1):
            name = _cell_text(cell).replace("\ufeff", "").strip()
            if not name:
                names.append(None)
                continue
            if name in seen:
                raise FatalError(
                    f"Google Sheets: worksheet {title!r}: the header has the column name {name!r} twice: "
                    f"cells {column_letter(seen[name])}{row} and {column_letter(index)}{row}",
                    hint="rename one of the columns so that every header is unique",
                )
            seen[name] = index
            names.append(name)
        while names and names[-1] is None:
            names.pop()
        return names

    def _check_rows(self, grid: _Grid) -> None:
        """Data under a blank header cell is an error naming the cells."""
        for row_number, cells in grid.rows.items():
            for index, cell in enumerate(cells):
                if not _is_blank(cell) and (index >= len(grid.names) or grid.names[index] is None):
                    letter = column_letter(index + 1)
                    raise FatalError(
                        f"Google Sheets: worksheet {grid.title!r}: cell {letter}{row_number} has data "
                        f"but its header cell {letter}{self.options.header_row} is blank",
                        hint="give the column a header or clear it (set header_row if the header is not "
                        "on row 1); a merged header cell names only its first column",
                    )

    @property
    def key_name(self) -> str:
        return self.options.key_column or HUB_ID_COLUMN

    def _row_values(self, grid: _Grid, cells: list[Any]) -> dict[str, Any]:
        return {name: _read_value(cells[i] if i < len(cells) else None)
                for i, name in enumerate(grid.names) if name is not None}

    # ------------------------------------------------------------ reading

    def columns(self) -> list[str] | None:
        """The header's names; ``None`` for an empty worksheet (a cleared sheet is for the
        mass-delete guard to judge, not a mapping error). The rows read here are kept
        for the ``read`` that follows, so checking the columns costs no extra call."""
        grid = self._read_grid()
        # data under blank header cells (a title above the header?) is told as such, not
        # as mapped columns missing from a header that is not the header
        self._check_rows(grid)
        self._pending_grid = grid
        if not grid.names:
            return None
        names = [name for name in grid.names if name is not None]
        if self.options.key_column is None and HUB_ID_COLUMN not in names:
            names.append(HUB_ID_COLUMN)
        return names

    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        """Every non-blank row keyed by its key column, then a checkpoint whose cursor
        is a hash of the rows; only the checkpoint when that hash equals ``cursor``."""
        grid = getattr(self, "_pending_grid", None)
        self._pending_grid = None
        if grid is None:
            grid = self._read_grid()
        self._check_rows(grid)
        self._check_keys_kept(grid, cursor)
        if grid.names:
            grid = self._rebuilt(lambda fresh: self._assign_keys(self._reread() if fresh else grid))
        key_index = grid.index(self.key_name) if grid.names else None
        if grid.names and key_index is None:
            names = ", ".join(repr(name) for name in grid.names if name is not None)
            raise FatalError(
                f"Google Sheets: worksheet {grid.title!r}: key_column {self.key_name!r} is not a column",
                hint=f"set key_column to one of: {names}",
            )
        records: list[RawRecord] = []
        baseline: dict[str, dict[str, str]] = {}
        ordered = sorted(grid.rows)
        for row_number in ordered:
            cells = grid.rows[row_number]
            values = self._row_values(grid, cells)
            key = _cell_text(values.get(self.key_name, "")).strip()
            if key not in baseline:  # the first row holding a key is its record
                baseline[key] = {name: _cell_text(value) for name, value in values.items()}
            records.append(RawRecord(key, values))
        self._baseline = baseline
        fingerprint = self._fingerprint(grid)
        complete = self.options.on_missing == "delete"  # only then does the core remove what is gone
        if cursor is not None and cursor == fingerprint:
            yield Checkpoint(cursor, complete=False)
            return
        yield from records
        yield Checkpoint(fingerprint, complete=complete)

    def _fingerprint(self, grid: _Grid) -> str:
        """The cursor of a read: a hash of the worksheet's header and rows."""
        digest = hashlib.sha256(f"{self.key}\x1f{grid.sheet_id}\x1f{self.key_name}".encode())
        digest.update(json.dumps(grid.names, ensure_ascii=False).encode())
        digest.update(json.dumps([grid.rows[row] for row in sorted(grid.rows)], ensure_ascii=False, default=str)
                      .encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:32]

    def _check_keys_kept(self, grid: _Grid, cursor: str | None) -> None:
        """A ``hub_id`` column gone from a sheet hub has read before (deleted by a person)
        stops the read: new keys would make every row a new record, and the old ones are
        still in the sheet's version history. Only a read of an empty worksheet left no
        column behind."""
        if (self.options.key_column is not None or cursor is None or not grid.rows
                or grid.index(HUB_ID_COLUMN) is not None):
            return
        if cursor == self._fingerprint(_Grid(grid.title, grid.sheet_id, 0, 0)):
            return
        raise FatalError(
            f"Google Sheets: worksheet {grid.title!r}: the {HUB_ID_COLUMN} column is gone (deleted or renamed?); "
            "hub keeps each row's key there, and without it every row would be read as a new client",
            hint=f"restore the column (Edit > Undo, or File > Version history) or give it back its name "
            f"{HUB_ID_COLUMN!r}; to give every row a new key instead, add an empty column named {HUB_ID_COLUMN!r}",
        )

    def _reread(self) -> _Grid:
        """The sheet read again after a failed key write (rows may have moved)."""
        grid = self._read_grid(fresh_metadata=True)
        self._check_rows(grid)
        return grid

    def _assign_keys(self, grid: _Grid) -> _Grid:
        """Give rows without a key a ``hub_id`` (adding the column once), in one request.
        A row holding the key of a row above it (copied with its key cell) is a row of its
        own and gets a new key too: the first row holding a key keeps it."""
        if self.options.key_column is not None or not grid.names:
            return grid
        key_index = grid.index(HUB_ID_COLUMN)
        missing: list[int] = []
        holders: dict[str, int] = {}
        for row in sorted(grid.rows):
            cells = grid.rows[row]
            if key_index is None or key_index >= len(cells) or _is_blank(cells[key_index]):
                missing.append(row)
                continue
            key = _cell_text(cells[key_index]).strip()
            if key in holders:
                self.context.logger.warning(
                    "%s: row %d has the %s %r of row %d (a copied row?); it gets a key of its own "
                    "and is read as a new record", self.context.name, row, HUB_ID_COLUMN, key, holders[key])
                missing.append(row)
                continue
            holders[key] = row
        if key_index is not None and not missing:
            return grid
        data: list[dict[str, Any]] = []
        if key_index is None:
            key_index = grid.width
            if not self.context.dry_run:
                self._ensure_columns(grid, key_index + 1)
            data.append({"range": a1_range(grid.title, self.options.header_row, key_index + 1),
                         "values": [[HUB_ID_COLUMN]]})
            grid.names = grid.names + [None] * (key_index - len(grid.names)) + [HUB_ID_COLUMN]
        for row in missing:
            key = MANUAL_ROW_PREFIX + secrets.token_hex(5)
            cells = grid.rows[row]
            cells.extend([""] * (key_index + 1 - len(cells)))
            cells[key_index] = key
            data.append({"range": a1_range(grid.title, row, key_index + 1), "values": [[key]]})
        if self.context.dry_run:  # keys for this run only; a real run writes them
            return grid
        self._values_batch_update(data, "add hub_id keys")
        return grid

    # ------------------------------------------------------------ writing

    def _ensure_columns(self, grid: _Grid, needed: int, rows_needed: int = 0) -> None:
        """Grow the grid when new columns (or rows) do not fit: one structural request."""
        requests_: list[dict[str, Any]] = []
        if needed > grid.column_count:
            requests_.append({"appendDimension": {"sheetId": grid.sheet_id, "dimension": "COLUMNS",
                                                  "length": needed - grid.column_count}})
        if rows_needed > grid.row_count:
            requests_.append({"appendDimension": {"sheetId": grid.sheet_id, "dimension": "ROWS",
                                                  "length": rows_needed - grid.row_count}})
        if not requests_:
            return
        http = self._connect()
        self._call("add columns to the worksheet", http.batch_update, self.key, {"requests": requests_})
        grid.column_count = max(grid.column_count, needed)
        grid.row_count = max(grid.row_count, rows_needed)
        if self._meta is not None:
            self._meta["column_count"] = grid.column_count
            self._meta["row_count"] = grid.row_count

    def _values_batch_update(self, data: list[dict[str, Any]], doing: str) -> None:
        """Send cell updates with RAW input, split only where a request would pass 2 MB."""
        if not data:
            return
        http = self._connect()
        batch: list[dict[str, Any]] = []
        size = 0
        for entry in data:
            entry_size = len(json.dumps(entry, ensure_ascii=False).encode()) + 2
            if batch and size + entry_size > MAX_PAYLOAD_BYTES:
                self._send_rows(doing, http.values_batch_update, self.key,
                                {"valueInputOption": "RAW", "data": batch})
                batch, size = [], 0
            batch.append(entry)
            size += entry_size
        self._send_rows(doing, http.values_batch_update, self.key, {"valueInputOption": "RAW", "data": batch})

    def _send_rows(self, doing: str, function: Callable[..., Any], *args: Any) -> Any:
        """Send a request addressed to row numbers, once; a failure worth retrying is
        raised as ``_RowWriteFailed`` for ``_rebuilt`` to read the sheet again."""
        try:
            return self._call(doing, function, *args)
        except RetriableError as error:
            raise _RowWriteFailed(error) from None

    def _rebuilt(self, attempt: Callable[[bool], Any]) -> Any:
        """Run ``attempt(fresh)``, which reads the sheet (``fresh``: anew, with its
        size) and writes by row number. When its write fails in a way worth retrying,
        wait as for any retry and run it again: the rows are found by their keys in the
        new read, so a sort or an insert during the pause cannot misdirect a value.
        After ``max_attempts`` the last error is raised."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt

        retrying = Retrying(
            stop=stop_after_attempt(self.options.max_attempts),
            wait=_retry_wait(self.options),
            retry=retry_if_exception(lambda error: isinstance(error, _RowWriteFailed) and not waits_too_long(error)),
            sleep=self._pause,
            reraise=True,
        )
        state = {"tries": 0}

        def once() -> Any:
            state["tries"] += 1
            return attempt(state["tries"] > 1)

        try:
            return retrying(once)
        except _RowWriteFailed as failed:
            raise failed.error from None

    def write(self, items: Sequence[OutboundItem]) -> list[WriteResult]:
        """Upsert and delete rows keyed by the key column; see the module docstring."""
        if not items:
            return []
        if self.options.read_only:
            raise FatalError(
                f"Google Sheets: connector {self.context.name!r} has read_only: true and cannot write",
                hint="use role: source, or remove read_only and share the sheet as Editor",
            )
        return self._rebuilt(lambda fresh: self._write_once(items, fresh))

    def _write_once(self, items: Sequence[OutboundItem], fresh: bool) -> list[WriteResult]:
        """One read of the sheet and the writes it calls for."""
        grid = self._read_grid(fresh_metadata=fresh or self._meta is None)
        self._check_rows(grid)
        if not grid.names:  # an empty worksheet: the header is written with the first rows
            grid.names = []
        key_name = self.key_name
        key_index = grid.index(key_name)
        # the first row holding a key is its record; a later row with the same key (a
        # copied row) belongs to someone else and is never written or deleted
        row_of_key: dict[str, int] = {}
        if key_index is not None:
            for row in sorted(grid.rows):
                cells = grid.rows[row]
                if key_index < len(cells) and not _is_blank(cells[key_index]):
                    row_of_key.setdefault(_cell_text(cells[key_index]).strip(), row)
        results: dict[int, WriteResult] = {}
        new_columns: list[str] = []
        if key_index is None:
            new_columns.append(key_name)
        updates: dict[tuple[int, str], Any] = {}
        appends: list[tuple[str, dict[str, Any]]] = []
        appended_keys: set[str] = set()
        deletes: set[int] = set()
        written: dict[str, dict[str, str]] = {}
        for position, item in enumerate(items):
            key = self._item_key(item)
            try:
                values = {self._column(name): _write_value(value) for name, value in item.values.items()
                          if name != "_extra"}
            except ValueError as error:
                results[position] = WriteResult(item.contact_id, "rejected", key, f"cannot store value: {error}")
                continue
            values.pop(key_name, None)
            for name in values:
                if grid.index(name) is None and name not in new_columns:
                    new_columns.append(name)
            row = row_of_key.get(key)
            if item.op == "delete":
                if row is not None:
                    deletes.add(row)
                results[position] = WriteResult(item.contact_id, "ok", key)
                continue
            if row is None:
                if (item.external_id and not item.external_id.startswith(NEW_ROW_PREFIX)
                        and self.options.on_missing != "ignore"):
                    # the row was deleted in the sheet: the read side decides (on_missing)
                    results[position] = WriteResult(
                        item.contact_id, "rejected", key,
                        f"the row with {key_name} {key!r} is no longer in the sheet (deleted by a person); "
                        "it is not added again",
                    )
                    continue
                if key not in appended_keys:
                    appended_keys.add(key)
                    appends.append((key, values))
                results[position] = WriteResult(item.contact_id, "ok", key)
                continue
            conflict = self._conflicts(grid, key, row, values)
            if conflict:
                message = (
                    f"conflict: row {row} ({key_name} {key!r}) was edited in the sheet after hub read it "
                    f"({', '.join(conflict)}); the person's edit is kept and the next sync reads it first"
                )
                self.context.logger.warning("%s: %s", self.context.name, message)
                results[position] = WriteResult(item.contact_id, "retriable", key, message, conflicts=conflict)
                continue
            for name, value in values.items():
                updates[(row, name)] = value
            written[key] = {name: _cell_text(value) for name, value in values.items()}
            results[position] = WriteResult(item.contact_id, "ok", key)
        names = list(grid.names)
        first_new = max(grid.width, len(names))
        if new_columns:
            names = names + [None] * (first_new - len(names)) + new_columns
        data: list[dict[str, Any]] = []
        if new_columns and (updates or appends):
            self._ensure_columns(grid, len(names))
            data.append({"range": a1_range(grid.title, self.options.header_row, first_new + 1,
                                           self.options.header_row, len(names)),
                         "values": [list(new_columns)]})
        changed_cells = 0
        for (row, name), value in sorted(updates.items(), key=lambda entry: (entry[0][0], names.index(entry[0][1]))):
            column = names.index(name)
            cells = grid.rows.get(row, [])
            current = cells[column] if column < len(cells) else None
            if _same(current, value):
                continue
            changed_cells += 1
            data.append({"range": a1_range(grid.title, row, column + 1), "values": [[value]]})
        if changed_cells or (data and appends):
            self._values_batch_update(_merge_adjacent(data), "write changed cells")
        if appends:
            key_column = names.index(key_name)
            width = max(names.index(name) for _, values in appends for name in [key_name, *values]) + 1
            rows_out = []
            for key, values in appends:
                cells: list[Any] = [""] * width
                cells[key_column] = key
                for name, value in values.items():
                    cells[names.index(name)] = value
                rows_out.append(cells)
                written[key] = {name: _cell_text(value) for name, value in values.items()}
            self._append(grid, rows_out)
        if deletes:
            http = self._connect()
            requests_ = [
                {"deleteDimension": {"range": {"sheetId": grid.sheet_id, "dimension": "ROWS",
                                               "startIndex": row - 1, "endIndex": row}}}
                for row in sorted(deletes, reverse=True)
            ]
            self._send_rows("delete rows", http.batch_update, self.key, {"requests": requests_})
            self._meta = None  # rows moved up: positions are read again next time
        for key, values in written.items():
            self._baseline.setdefault(key, {}).update(values)
        return [results[position] for position in range(len(items))]

    def _append(self, grid: _Grid, rows: list[list[Any]]) -> None:
        """Add rows after the table with ``values.append`` (INSERT_ROWS), in requests
        under 2 MB. The server finds the table's end, so rows people add meanwhile are
        never overwritten."""
        http = self._connect()
        params = {"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS", "includeValuesInResponse": "false"}
        target = a1_range(grid.title, self.options.header_row, 1)
        batch: list[list[Any]] = []
        size = 0
        for cells in rows:
            cells_size = len(json.dumps(cells, ensure_ascii=False).encode()) + 2
            if batch and size + cells_size > MAX_PAYLOAD_BYTES:
                self._call("append rows", http.values_append, self.key, target, params, {"values": batch})
                batch, size = [], 0
            batch.append(cells)
            size += cells_size
        self._call("append rows", http.values_append, self.key, target, params, {"values": batch})
        self._meta = None  # the grid grew

    def new_external_id(self, item: OutboundItem) -> str | None:
        """The key hub gives a new contact's row (``hub-<contact id>``). A row keyed by the
        contact's own value (``key_column``) is not linked ahead: read back, that value
        finds the contact anyway, and a link to a row the write never made would have the
        next write take the row for one a person deleted."""
        key = self._item_key(item)
        return key if key.startswith(NEW_ROW_PREFIX) else None

    def _item_key(self, item: OutboundItem) -> str:
        if item.external_id:
            return item.external_id
        own = item.values.get(self.key_name) if self.options.key_column else None
        if own is not None and _cell_text(own).strip():
            return _cell_text(own).strip()
        return f"{NEW_ROW_PREFIX}{item.contact_id}"

    @staticmethod
    def _column(name: Any) -> str:
        text = str(name).replace("\ufeff", "").strip()
        if not text:
            raise ValueError(f"the column name {name!r} is blank")
        return text

    def _conflicts(self, grid: _Grid, key: str, row: int, values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Columns of this row that a person changed since hub last read or wrote it and
        that this write would change: column -> (hub's value, the person's value)."""
        before = self._baseline.get(key)
        if before is None:
            return {}
        cells = grid.rows.get(row, [])
        changed: dict[str, tuple[Any, Any]] = {}
        for name, wanted in values.items():
            column = grid.index(name)
            if column is None:
                continue
            current = cells[column] if column < len(cells) else None
            now = _cell_text(current)
            if name in before and now != before[name] and not _same(now, wanted):
                changed[name] = (wanted, _read_value(current))
        return changed

    def close(self) -> None:
        if self._http is not None:
            session = getattr(self._http, "session", None)
            if session is not None:
                session.close()
        self._http = None
        self._client = None


def _merge_adjacent(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells side by side in one row become one range: a smaller request."""
    merged: list[dict[str, Any]] = []
    previous: tuple[str, int, int] | None = None
    for entry in data:
        match = re.fullmatch(r"(.*)!([A-Z]+)(\d+)", entry["range"])
        if match is None or len(entry["values"]) != 1 or len(entry["values"][0]) != 1:
            merged.append(entry)
            previous = None
            continue
        sheet, letters, row = match.group(1), match.group(2), int(match.group(3))
        column = _column_number(letters)
        if previous is not None and previous == (sheet, row, column - 1) and "_start" in merged[-1]:
            last = merged[-1]
            last["values"][0].append(entry["values"][0][0])
            start_column = last["_start"]
            last["range"] = f"{sheet}!{column_letter(start_column)}{row}:{letters}{row}"
        else:
            merged.append({"range": entry["range"], "values": [list(entry["values"][0])], "_start": column})
        previous = (sheet, row, column)
    for entry in merged:
        entry.pop("_start", None)
    return merged


def _column_number(letters: str) -> int:
    number = 0
    for char in letters:
        number = number * 26 + ord(char) - ord("A") + 1
    return number


__all__ = ["GoogleSheetsConnector", "GoogleSheetsOptions"]


@hookimpl
def hub_connectors(register):
    register(GoogleSheetsConnector)
