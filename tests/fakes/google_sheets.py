"""A local Google Sheets API v4 server for tests and benchmarks.

It speaks the wire protocol the real service speaks, for the endpoints gspread uses:

* ``POST /token``: the OAuth token exchange (JWT bearer grant of a service account,
  checked against the key's public half when one is registered; refresh-token grant
  of user credentials);
* ``GET /v4/spreadsheets/{id}``: spreadsheet properties and sheets' grid sizes;
* ``GET /v4/spreadsheets/{id}/values/{range}`` and ``values:batchGet``: values with
  ``valueRenderOption`` FORMATTED_VALUE / UNFORMATTED_VALUE / FORMULA and
  ``dateTimeRenderOption``, trailing blanks trimmed, ``values`` absent when empty;
* ``PUT /v4/spreadsheets/{id}/values/{range}``, ``POST .../values/{range}:append`` and
  ``POST .../values:batchUpdate``: with ``valueInputOption`` RAW (text stays text) or
  USER_ENTERED (``=`` makes a formula, numbers parse, ``'`` forces text); writes beyond
  the grid fail like the real API;
* ``POST /v4/spreadsheets/{id}:batchUpdate``: appendDimension, insertDimension,
  deleteDimension.

Errors have Google's shape (``{"error": {"code", "message", "status"}}``); read and
write requests are counted per minute per user and per project and answered with
429 RESOURCE_EXHAUSTED beyond the quota. Faults can be injected per endpoint (status,
``Retry-After``, HTML or truncated bodies, dropped connections, failures after the
write was applied), a callback can run after a given request (a person editing the
sheet meanwhile), and every endpoint has a call counter.

Cells hold what Sheets holds: text (``str``), numbers, booleans or a ``Formula``;
``number_formats`` marks cells whose formatted value differs (scientific phones).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from typing_extensions import Self

READ_LIMIT_MESSAGE = (
    "Quota exceeded for quota metric '{kind} requests' and limit '{kind} requests per minute{scope}' "
    "of service 'sheets.googleapis.com' for consumer 'project_number:{project}'."
)


#: The audience Google requires in a service account's JWT, whatever the token_uri.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


READ_ENDPOINTS = ("spreadsheets.get", "values.get", "values.batchGet")
WRITE_SCOPES = ("https://www.googleapis.com/auth/spreadsheets", "https://www.googleapis.com/auth/drive",
                "https://www.googleapis.com/auth/drive.file")


def _may_write(scope: str | None) -> bool:
    """Whether a token's scopes allow writes (a token granted without scopes: yes)."""
    return scope is None or any(granted in WRITE_SCOPES for granted in scope.split())


class Formula(str):
    """A cell holding a formula (its text, starting with ``=``)."""


@dataclass
class Sheet:
    sheet_id: int
    title: str
    index: int
    row_count: int = 1000
    column_count: int = 26
    #: rows of cells; ``None`` or missing = empty
    cells: list[list[Any]] = field(default_factory=list)
    #: (row, column) 0-based -> "SCIENTIFIC" | "TEXT"
    number_formats: dict[tuple[int, int], str] = field(default_factory=dict)

    def get(self, row: int, column: int) -> Any:
        if row < len(self.cells) and column < len(self.cells[row]):
            return self.cells[row][column]
        return None

    def set(self, row: int, column: int, value: Any) -> None:
        while len(self.cells) <= row:
            self.cells.append([])
        cells = self.cells[row]
        if len(cells) <= column:
            cells.extend([None] * (column + 1 - len(cells)))
        cells[column] = None if value == "" else value

    def last_row(self) -> int:
        """Rows in use (1-based number of the last non-empty row; 0 when empty)."""
        for index in range(len(self.cells) - 1, -1, -1):
            if any(cell not in (None, "") for cell in self.cells[index]):
                return index + 1
        return 0


@dataclass
class Spreadsheet:
    spreadsheet_id: str
    title: str
    sheets: list[Sheet] = field(default_factory=list)

    def sheet(self, title: str | None) -> Sheet | None:
        if title is None:
            return min(self.sheets, key=lambda sheet: sheet.index) if self.sheets else None
        return next((sheet for sheet in self.sheets if sheet.title == title), None)


@dataclass
class Fault:
    endpoint: str
    status: int = 500
    times: int = 1
    retry_after: str | None = None
    #: "json" (Google's error shape), "html", "truncated" or "drop" (close the connection)
    body: str = "json"
    #: apply the request first, then fail (an ambiguous outcome)
    after_apply: bool = False
    message: str | None = None
    #: seconds to wait before answering normally (a timeout when longer than the client's)
    delay: float = 0.0


class ApiError(Exception):
    def __init__(self, code: int, status: str, message: str, headers: dict[str, str] | None = None,
                 details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.details = details


def _quota_details(kind: str, scope: str, project: str) -> list[dict[str, Any]]:
    """The ``details`` of a quota refusal, as Google sends them."""
    metric = f"sheets.googleapis.com/{kind}_requests"
    limit = f"{kind.capitalize()}RequestsPerMinutePer{'User' if scope == 'user' else 'Project'}"
    return [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
         "domain": "googleapis.com",
         "metadata": {"quota_metric": metric, "quota_limit": limit, "service": "sheets.googleapis.com",
                      "consumer": f"projects/{project}", "quota_location": "global",
                      "quota_limit_value": "60" if scope == "user" else "300"}},
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Request a higher quota limit.",
                    "url": "https://cloud.google.com/docs/quotas/help/request_increase"}]},
    ]


_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
           504: "DEADLINE_EXCEEDED"}


def column_number(letters: str) -> int:
    number = 0
    for char in letters.upper():
        number = number * 26 + ord(char) - ord("A") + 1
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number > 0:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


_CELLS = re.compile(r"^(?P<c1>[A-Za-z]*)(?P<r1>\d*)(?::(?P<c2>[A-Za-z]*)(?P<r2>\d*))?$")


class FakeGoogleSheets:
    """The server and its state. Use as a context manager or call ``start``/``stop``."""

    def __init__(self, *, read_quota_per_user: int = 60, write_quota_per_user: int = 60,
                 read_quota_per_project: int = 300, write_quota_per_project: int = 300,
                 token_lifetime: int = 3600, quota_window: float = 60.0):
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, str, str]] = []  # (endpoint, method, path)
        self.faults: list[Fault] = []
        self.quota = {("read", "user"): read_quota_per_user, ("write", "user"): write_quota_per_user,
                      ("read", "project"): read_quota_per_project, ("write", "project"): write_quota_per_project}
        self.quota_enabled = True
        #: seconds over which the quota is counted (a minute, as Google does; shorter in tests)
        self.quota_window = quota_window
        self.quota_errors = 0
        self._windows: dict[tuple[str, str, str], deque[float]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.token_lifetime = token_lifetime
        #: client_email -> PEM public key; when set, JWT signatures are verified
        self.public_keys: dict[str, bytes] = {}
        #: refresh tokens accepted for user credentials: refresh_token -> client_id
        self.refresh_tokens: dict[str, str] = {}
        self.last_requests: list[dict[str, Any]] = []
        self._after: list[tuple[str, int, Callable[[FakeGoogleSheets], None]]] = []
        self.lock = threading.RLock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeGoogleSheets:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body leave in one segment: no delayed-ACK stall per request
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (timeout) closed its end: nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token_uri(self) -> str:
        return self.url + "/token"

    # ------------------------------------------------------------------ state helpers

    def create(self, spreadsheet_id: str, title: str = "Contacts", sheets: dict[str, list[list[Any]]] | None = None,
               *, rows: int | None = None, columns: int | None = None) -> Spreadsheet:
        """A spreadsheet whose sheets hold ``rows of cells`` (grid at least 1000 x 26, like a new one)."""
        book = Spreadsheet(spreadsheet_id, title)
        for index, (sheet_title, data) in enumerate((sheets or {"Sheet1": []}).items()):
            width = max((len(row) for row in data), default=0)
            sheet = Sheet(sheet_id=0 if index == 0 else 1000 + index, title=sheet_title, index=index,
                          row_count=rows or max(1000, len(data)), column_count=columns or max(26, width))
            for r, row in enumerate(data):
                for c, value in enumerate(row):
                    if value not in (None, ""):
                        sheet.set(r, c, value)
            book.sheets.append(sheet)
        with self.lock:
            self.spreadsheets[spreadsheet_id] = book
        return book

    def sheet(self, spreadsheet_id: str, title: str | None = None) -> Sheet:
        sheet = self.spreadsheets[spreadsheet_id].sheet(title)
        assert sheet is not None
        return sheet

    def values(self, spreadsheet_id: str, title: str | None = None) -> list[list[Any]]:
        """The sheet's rows as unformatted values, trailing blanks trimmed, like values.get."""
        with self.lock:
            sheet = self.sheet(spreadsheet_id, title)
            return _trimmed([[_unformatted(cell) for cell in row] for row in sheet.cells[: sheet.last_row()]])

    def edit(self, spreadsheet_id: str, cell: str, value: Any, title: str | None = None) -> None:
        """A person typing into a cell (``"B3"``)."""
        match = re.fullmatch(r"([A-Z]+)(\d+)", cell)
        assert match
        with self.lock:
            self.sheet(spreadsheet_id, title).set(int(match.group(2)) - 1, column_number(match.group(1)) - 1, value)

    def fail(self, endpoint: str, status: int = 500, *, times: int = 1, retry_after: str | None = None,
             body: str = "json", after_apply: bool = False, message: str | None = None,
             delay: float = 0.0) -> None:
        """The next ``times`` requests to ``endpoint`` fail: a counter name, ``sheets`` (any
        Sheets API endpoint) or ``*`` (the token exchange too)."""
        with self.lock:
            self.faults.append(Fault(endpoint, status, times, retry_after, body, after_apply, message, delay))

    def after(self, endpoint: str, callback: Callable[[FakeGoogleSheets], None], nth: int = 1) -> None:
        """Run ``callback`` after the ``nth`` next request to ``endpoint`` was answered."""
        with self.lock:
            self._after.append((endpoint, self.calls[endpoint] + nth, callback))

    def api_calls(self) -> int:
        """Sheets API requests (token exchanges not counted)."""
        return sum(count for name, count in self.calls.items() if name != "token")

    def reset_counters(self) -> None:
        with self.lock:
            self.calls.clear()
            self.log.clear()
            self.quota_errors = 0

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # ------------------------------------------------------------------ HTTP plumbing

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(request.path)
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        endpoint, route = self._route(method, split.path)
        with self.lock:
            self.calls[endpoint] += 1
            self.log.append((endpoint, method, split.path))
            fault = self._take_fault(endpoint)
        headers: dict[str, str] = {}
        if fault is not None and fault.delay:
            time.sleep(fault.delay)  # a slow answer; the request is then served normally
            fault = None
        try:
            if fault is not None and not fault.after_apply:
                raise self._fault_error(fault)
            if endpoint == "token":
                status, payload = 200, self._token(raw, request.headers.get("Content-Type", ""))
            else:
                identity = self._authorize(request.headers.get("Authorization", ""))
                if route is None:
                    raise ApiError(404, "NOT_FOUND", f"Method not found: {method} {split.path}")
                if endpoint not in READ_ENDPOINTS and not _may_write(identity.get("scope")):
                    raise ApiError(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.")
                self._count_quota(endpoint, identity)
                body = json.loads(raw) if raw else {}
                self.last_requests.append({"endpoint": endpoint, "query": query, "body": body})
                del self.last_requests[:-20]
                with self.lock:
                    status, payload = 200, route(query, body)
            if fault is not None:  # applied, then the answer is lost or an error
                raise self._fault_error(fault)
        except ApiError as error:
            status = error.code
            headers.update(error.headers)
            payload = {"error": {"code": error.code, "message": error.message, "status": error.status}}
            if error.details:
                payload["error"]["details"] = error.details
            if endpoint == "token":  # the OAuth endpoint answers in OAuth's own shape
                payload = {"error": error.status.lower(), "error_description": error.message}
            if fault is not None and fault.body != "json":
                self._send_raw(request, status, fault, headers)
                self._run_after(endpoint)
                return
        data = json.dumps(payload, ensure_ascii=False).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=UTF-8")
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
        self._run_after(endpoint)

    def _run_after(self, endpoint: str) -> None:
        with self.lock:
            due = [entry for entry in self._after if entry[0] == endpoint and self.calls[endpoint] >= entry[1]]
            self._after = [entry for entry in self._after if entry not in due]
            for _, _, callback in due:
                callback(self)

    def _send_raw(self, request: BaseHTTPRequestHandler, status: int, fault: Fault, headers: dict[str, str]) -> None:
        if fault.body == "drop":
            request.close_connection = True
            try:
                request.connection.shutdown(2)
            except OSError:
                pass
            return
        if fault.body == "html":
            data = b"<html><head><title>Error 502</title></head><body>Bad Gateway</body></html>"
            kind = "text/html; charset=UTF-8"
        else:  # truncated JSON
            data = b'{"error": {"code": ' + str(status).encode() + b', "mess'
            kind = "application/json; charset=UTF-8"
        request.send_response(status)
        request.send_header("Content-Type", kind)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _take_fault(self, endpoint: str) -> Fault | None:
        for fault in self.faults:
            every = fault.endpoint == "*" or (fault.endpoint == "sheets" and endpoint != "token")
            if (every or fault.endpoint == endpoint) and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _fault_error(self, fault: Fault) -> ApiError:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        details = None
        if fault.status == 429:
            message = fault.message or READ_LIMIT_MESSAGE.format(kind="Read", scope=" per user", project="0")
            details = _quota_details("read", "user", "0")
        else:
            message = fault.message or {500: "Internal error encountered.", 502: "Bad Gateway",
                                        503: "The service is currently unavailable."}.get(fault.status, "Error")
        if fault.body == "drop":
            headers = {}
        return ApiError(fault.status, _STATUS.get(fault.status, "UNKNOWN"), message, headers, details)

    def _route(self, method: str, path: str) -> tuple[str, Callable[..., Any] | None]:
        if path == "/token":
            return "token", None
        match = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(.*)", path)
        if not match:
            return "unknown", None
        spreadsheet_id, rest = match.group(1), match.group(2)

        def book() -> Spreadsheet:
            found = self.spreadsheets.get(spreadsheet_id)
            if found is None:
                raise ApiError(404, "NOT_FOUND", "Requested entity was not found.")
            return found

        if rest == "" and method == "GET":
            return "spreadsheets.get", lambda q, b: self._get_spreadsheet(book(), q)
        if rest == ":batchUpdate" and method == "POST":
            return "spreadsheets.batchUpdate", lambda q, b: self._batch_update(book(), b)
        if rest == "/values:batchGet" and method == "GET":
            return "values.batchGet", lambda q, b: self._batch_get(book(), q)
        if rest == "/values:batchUpdate" and method == "POST":
            return "values.batchUpdate", lambda q, b: self._values_batch_update(book(), b)
        match = re.fullmatch(r"/values/([^/]+?)(:append)?", rest)
        if match:
            cell_range = unquote(match.group(1))
            if match.group(2) and method == "POST":
                return "values.append", lambda q, b: self._append(book(), cell_range, q, b)
            if method == "GET":
                return "values.get", lambda q, b: self._values_get(book(), cell_range, q)
            if method == "PUT":
                return "values.update", lambda q, b: self._values_update(book(), cell_range, q, b)
        return "unknown", None

    # ------------------------------------------------------------------ auth and quota

    def _token(self, raw: bytes, content_type: str) -> dict[str, Any]:
        if "application/x-www-form-urlencoded" not in content_type:
            raise ApiError(400, "INVALID_REQUEST", "expected a form-encoded body")
        form = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            identity = self._check_jwt(form.get("assertion", ""))
        elif grant == "refresh_token":
            client = self.refresh_tokens.get(form.get("refresh_token", ""))
            if client is None or client != form.get("client_id"):
                raise ApiError(400, "INVALID_GRANT", "Token has been expired or revoked.")
            identity = {"user": client, "project": client, "scope": form.get("scope")}
        else:
            raise ApiError(400, "UNSUPPORTED_GRANT_TYPE", f"Invalid grant_type: {grant}")
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = {**identity, "expires": time.time() + self.token_lifetime}
        return {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}

    def _check_jwt(self, assertion: str) -> dict[str, Any]:
        try:
            header_b64, payload_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64decode(header_b64))
            claims = json.loads(_b64decode(payload_b64))
        except ValueError:
            raise ApiError(400, "INVALID_GRANT", "Invalid JWT: malformed assertion.") from None
        if header.get("alg") != "RS256":
            raise ApiError(400, "INVALID_GRANT", "Invalid JWT: algorithm must be RS256.")
        if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.token_uri):
            raise ApiError(400, "INVALID_GRANT", "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.")
        if "spreadsheets" not in str(claims.get("scope", "")):
            raise ApiError(400, "INVALID_SCOPE", "Invalid OAuth scope or ID token audience provided.")
        issuer = claims.get("iss", "")
        key = self.public_keys.get(issuer)
        if key is not None:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import padding

            public = serialization.load_pem_public_key(key)
            try:
                public.verify(_b64decode(signature_b64), f"{header_b64}.{payload_b64}".encode(),
                              padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
            except InvalidSignature:
                raise ApiError(400, "INVALID_GRANT", "Invalid JWT Signature.") from None
        project = issuer.partition("@")[2].split(".")[0]
        return {"user": issuer, "project": project, "scope": claims.get("scope")}

    def _authorize(self, header: str) -> dict[str, Any]:
        token = header[7:] if header.startswith("Bearer ") else ""
        with self.lock:
            identity = self.tokens.get(token)
        if identity is None or identity["expires"] < time.time():
            raise ApiError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. "
                           "Expected OAuth 2 access token, login cookie or other valid authentication credential.")
        return identity

    def _count_quota(self, endpoint: str, identity: dict[str, Any]) -> None:
        if not self.quota_enabled:
            return
        kind = "read" if endpoint in READ_ENDPOINTS else "write"
        now = time.monotonic()
        with self.lock:
            for scope, owner in (("user", identity["user"]), ("project", identity["project"])):
                window = self._windows.setdefault((kind, scope, owner), deque())
                while window and now - window[0] >= self.quota_window:
                    window.popleft()
                if len(window) >= self.quota[(kind, scope)]:
                    self.quota_errors += 1
                    message = READ_LIMIT_MESSAGE.format(
                        kind=kind.capitalize(), scope=" per user" if scope == "user" else "",
                        project=identity["project"])
                    raise ApiError(429, "RESOURCE_EXHAUSTED", message,
                                   details=_quota_details(kind, scope, identity["project"]))
            for scope, owner in (("user", identity["user"]), ("project", identity["project"])):
                self._windows[(kind, scope, owner)].append(now)

    # ------------------------------------------------------------------ ranges

    def _resolve(self, book: Spreadsheet, text: str) -> tuple[Sheet, int, int, int, int]:
        """A1 range -> (sheet, first row, first column, last row, last column), 0-based
        inclusive, clipped to the grid for reads."""
        original = text
        title: str | None
        if text.startswith("'"):
            end = 1
            title_chars = []
            while True:
                if end >= len(text):
                    raise ApiError(400, "INVALID_ARGUMENT", f"Unable to parse range: {original}")
                if text[end] == "'":
                    if end + 1 < len(text) and text[end + 1] == "'":
                        title_chars.append("'")
                        end += 2
                        continue
                    break
                title_chars.append(text[end])
                end += 1
            title = "".join(title_chars)
            rest = text[end + 1:]
            if rest and not rest.startswith("!"):
                raise ApiError(400, "INVALID_ARGUMENT", f"Unable to parse range: {original}")
            cells = rest[1:]
        elif "!" in text:
            title, _, cells = text.partition("!")
        else:
            sheet = book.sheet(text)
            if sheet is not None:
                title, cells = text, ""
            else:
                title, cells = None, text
        sheet = book.sheet(title)
        if sheet is None:
            raise ApiError(400, "INVALID_ARGUMENT", f"Unable to parse range: {original}")
        if not cells:
            return sheet, 0, 0, sheet.row_count - 1, sheet.column_count - 1
        match = _CELLS.match(cells)
        if not match or not (match.group("c1") or match.group("r1")):
            raise ApiError(400, "INVALID_ARGUMENT", f"Unable to parse range: {original}")
        c1, r1, c2, r2 = match.group("c1"), match.group("r1"), match.group("c2"), match.group("r2")
        first_column = column_number(c1) - 1 if c1 else 0
        first_row = int(r1) - 1 if r1 else 0
        if match.group(0).find(":") < 0:
            last_column, last_row = first_column, first_row
        else:
            last_column = column_number(c2) - 1 if c2 else sheet.column_count - 1
            last_row = int(r2) - 1 if r2 else sheet.row_count - 1
        return sheet, first_row, first_column, last_row, last_column

    @staticmethod
    def _a1(sheet: Sheet, first_row: int, first_column: int, last_row: int, last_column: int) -> str:
        title = sheet.title
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", title):
            title = "'" + title.replace("'", "''") + "'"
        start = f"{column_letters(first_column + 1)}{first_row + 1}"
        end = f"{column_letters(last_column + 1)}{last_row + 1}"
        return f"{title}!{start}" if start == end else f"{title}!{start}:{end}"

    def _check_grid(self, sheet: Sheet, original: str, last_row: int, last_column: int) -> None:
        if last_row >= sheet.row_count or last_column >= sheet.column_count:
            raise ApiError(400, "INVALID_ARGUMENT",
                           f"Range ({original}) exceeds grid limits. Max rows: {sheet.row_count}, "
                           f"max columns: {sheet.column_count}")

    # ------------------------------------------------------------------ endpoints

    def _get_spreadsheet(self, book: Spreadsheet, query: dict[str, list[str]]) -> dict[str, Any]:
        return {
            "spreadsheetId": book.spreadsheet_id,
            "properties": {"title": book.title, "locale": "ru_RU", "autoRecalc": "ON_CHANGE",
                           "timeZone": "Europe/Moscow"},
            "sheets": [
                {"properties": {"sheetId": sheet.sheet_id, "title": sheet.title, "index": sheet.index,
                                "sheetType": "GRID",
                                "gridProperties": {"rowCount": sheet.row_count, "columnCount": sheet.column_count}}}
                for sheet in book.sheets
            ],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.spreadsheet_id}/edit",
        }

    def _value_range(self, book: Spreadsheet, text: str, query: dict[str, list[str]]) -> dict[str, Any]:
        sheet, r1, c1, r2, c2 = self._resolve(book, text)
        r2, c2 = min(r2, sheet.row_count - 1), min(c2, sheet.column_count - 1)
        render = (query.get("valueRenderOption") or ["FORMATTED_VALUE"])[0]
        dates = (query.get("dateTimeRenderOption") or ["SERIAL_NUMBER"])[0]
        major = (query.get("majorDimension") or ["ROWS"])[0]
        if render not in ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"):
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid value at 'value_render_option' ({render})")
        if dates not in ("SERIAL_NUMBER", "FORMATTED_STRING"):
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid value at 'date_time_render_option' ({dates})")
        rows = []
        last = min(r2, sheet.last_row() - 1)
        for r in range(r1, last + 1):
            source = sheet.cells[r] if r < len(sheet.cells) else []
            row = []
            for c in range(c1, min(c2, len(source) - 1) + 1):
                row.append(_render(source[c], render, sheet.number_formats.get((r, c))))
            rows.append(row)
        rows = _trimmed(rows)
        if major == "COLUMNS":
            width = max((len(row) for row in rows), default=0)
            rows = _trimmed([[row[i] if i < len(row) else "" for row in rows] for i in range(width)])
        result: dict[str, Any] = {"range": self._a1(sheet, r1, c1, r2, c2), "majorDimension": major}
        if rows:
            result["values"] = rows
        return result

    def _values_get(self, book: Spreadsheet, text: str, query: dict[str, list[str]]) -> dict[str, Any]:
        return self._value_range(book, text, query)

    def _batch_get(self, book: Spreadsheet, query: dict[str, list[str]]) -> dict[str, Any]:
        ranges = query.get("ranges") or []
        return {"spreadsheetId": book.spreadsheet_id,
                "valueRanges": [self._value_range(book, text, query) for text in ranges]}

    def _write(self, book: Spreadsheet, text: str, values: list[list[Any]], option: str,
               major: str = "ROWS") -> dict[str, Any]:
        if option not in ("RAW", "USER_ENTERED"):
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid valueInputOption: {option!r}")
        if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
            raise ApiError(400, "INVALID_ARGUMENT", "Invalid values: expected a list of lists")
        if major == "COLUMNS":
            width = max((len(row) for row in values), default=0)
            values = [[row[i] if i < len(row) else None for row in values] for i in range(width)]
        sheet, r1, c1, r2, c2 = self._resolve(book, text)
        height = len(values)
        width = max((len(row) for row in values), default=0)
        single = ":" not in text.rpartition("!")[2]
        if single:
            r2, c2 = r1 + height - 1, c1 + width - 1
        elif height > r2 - r1 + 1 or width > c2 - c1 + 1:
            raise ApiError(400, "INVALID_ARGUMENT",
                           f"Requested writing within range [{text}], but tried writing to "
                           f"row [{r1 + height}]" if height > r2 - r1 + 1 else f"column [{column_letters(c1 + width)}]")
        self._check_grid(sheet, text, r1 + height - 1, c1 + width - 1)
        cells = 0
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if value is None:  # null leaves the cell as it is
                    continue
                sheet.set(r1 + i, c1 + j, _parse_input(value, option))
                cells += 1
        return {"spreadsheetId": book.spreadsheet_id,
                "updatedRange": self._a1(sheet, r1, c1, r1 + max(height, 1) - 1, c1 + max(width, 1) - 1),
                "updatedRows": height, "updatedColumns": width, "updatedCells": cells}

    def _values_update(self, book: Spreadsheet, text: str, query: dict[str, list[str]],
                       body: dict[str, Any]) -> dict[str, Any]:
        option = (query.get("valueInputOption") or [""])[0]
        return self._write(book, text, body.get("values", []), option, body.get("majorDimension", "ROWS"))

    def _values_batch_update(self, book: Spreadsheet, body: dict[str, Any]) -> dict[str, Any]:
        option = body.get("valueInputOption", "")
        data = body.get("data") or []
        # the whole request is checked before any cell changes, as the real API does
        for entry in data:
            sheet, r1, c1, *_ = self._resolve(book, entry.get("range", ""))
            values = entry.get("values", [])
            self._check_grid(sheet, entry.get("range", ""), r1 + len(values) - 1,
                             c1 + max((len(row) for row in values), default=1) - 1)
        if option not in ("RAW", "USER_ENTERED"):
            raise ApiError(400, "INVALID_ARGUMENT", f"Invalid valueInputOption: {option!r}")
        responses = [self._write(book, entry["range"], entry.get("values", []), option,
                                 entry.get("majorDimension", "ROWS")) for entry in data]
        return {"spreadsheetId": book.spreadsheet_id,
                "totalUpdatedRows": sum(r["updatedRows"] for r in responses),
                "totalUpdatedColumns": sum(r["updatedColumns"] for r in responses),
                "totalUpdatedCells": sum(r["updatedCells"] for r in responses),
                "totalUpdatedSheets": len({r["updatedRange"].rpartition("!")[0] for r in responses}),
                "responses": responses}

    def _append(self, book: Spreadsheet, text: str, query: dict[str, list[str]],
                body: dict[str, Any]) -> dict[str, Any]:
        option = (query.get("valueInputOption") or [""])[0]
        insert = (query.get("insertDataOption") or ["OVERWRITE"])[0]
        sheet, r1, c1, _r2, _c2 = self._resolve(book, text)
        values = body.get("values", [])
        # the table starting at the range: rows from r1 down to the last non-empty one
        table_end = max(sheet.last_row(), r1)
        start = table_end
        width = max((len(row) for row in values), default=0)
        if c1 + width > sheet.column_count:
            raise ApiError(400, "INVALID_ARGUMENT",
                           f"Range ({text}) exceeds grid limits. Max rows: {sheet.row_count}, "
                           f"max columns: {sheet.column_count}")
        if insert == "INSERT_ROWS":
            sheet.cells[start:start] = [[] for _ in values]
            for (r, c), kind in sorted(sheet.number_formats.items(), reverse=True):
                if r >= start:
                    sheet.number_formats[(r + len(values), c)] = sheet.number_formats.pop((r, c))
            sheet.row_count += len(values)
        elif start + len(values) > sheet.row_count:
            sheet.row_count = start + len(values)
        updated = self._write(book, self._a1(sheet, start, c1, start, c1), values, option)
        table = self._a1(sheet, r1, c1, max(table_end - 1, r1), c1 + max(width, 1) - 1)
        return {"spreadsheetId": book.spreadsheet_id, "tableRange": table, "updates": updated}

    def _batch_update(self, book: Spreadsheet, body: dict[str, Any]) -> dict[str, Any]:
        replies = []
        for request in body.get("requests") or []:
            if "appendDimension" in request:
                spec = request["appendDimension"]
                sheet = self._sheet_by_id(book, spec.get("sheetId"))
                if spec.get("dimension") == "ROWS":
                    sheet.row_count += int(spec.get("length", 0))
                elif spec.get("dimension") == "COLUMNS":
                    sheet.column_count += int(spec.get("length", 0))
                else:
                    raise ApiError(400, "INVALID_ARGUMENT", "Invalid requests[0].appendDimension: dimension")
            elif "insertDimension" in request or "deleteDimension" in request:
                insert = "insertDimension" in request
                spec = request["insertDimension" if insert else "deleteDimension"]["range"]
                sheet = self._sheet_by_id(book, spec.get("sheetId"))
                start, end = int(spec.get("startIndex", 0)), int(spec.get("endIndex", 0))
                if spec.get("dimension") == "ROWS":
                    if insert:
                        sheet.cells[start:start] = [[] for _ in range(end - start)]
                        sheet.row_count += end - start
                    else:
                        if end > sheet.row_count:
                            raise ApiError(400, "INVALID_ARGUMENT", "Invalid requests[0].deleteDimension: "
                                           "endIndex out of range")
                        del sheet.cells[start:end]
                        sheet.row_count -= end - start
                else:
                    for row in sheet.cells:
                        if insert:
                            row[start:start] = [None] * (end - start) if len(row) > start else []
                        else:
                            del row[start:end]
                    sheet.column_count += (end - start) if insert else -(end - start)
            else:
                name = next(iter(request), "?")
                raise ApiError(400, "INVALID_ARGUMENT", f"Unsupported request in this fake: {name}")
            replies.append({})
        return {"spreadsheetId": book.spreadsheet_id, "replies": replies}

    @staticmethod
    def _sheet_by_id(book: Spreadsheet, sheet_id: Any) -> Sheet:
        for sheet in book.sheets:
            if sheet.sheet_id == sheet_id:
                return sheet
        raise ApiError(400, "INVALID_ARGUMENT", f"No grid with id: {sheet_id}")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _trimmed(rows: list[list[Any]]) -> list[list[Any]]:
    out = []
    for row in rows:
        row = list(row)
        while row and row[-1] in (None, ""):
            row.pop()
        out.append(["" if cell is None else cell for cell in row])
    while out and not out[-1]:
        out.pop()
    return out


def _unformatted(cell: Any) -> Any:
    if isinstance(cell, Formula):
        return _evaluate(cell)
    return "" if cell is None else cell


def _evaluate(formula: Formula) -> Any:
    """Just enough of a formula engine to tell a formula from text: sums of numbers."""
    body = formula[1:]
    if re.fullmatch(r"[\d+\-*/. ()]+", body):
        try:
            value = eval(body, {"__builtins__": {}}, {})
        except (ArithmeticError, SyntaxError, TypeError, ValueError):
            return "#ERROR!"
        return int(value) if isinstance(value, float) and value.is_integer() else value
    return "#NAME?"


def _render(cell: Any, render: str, number_format: str | None) -> Any:
    if cell is None:
        return ""
    if render == "FORMULA":
        return str(cell) if isinstance(cell, Formula) else cell
    value = _unformatted(cell)
    if render == "UNFORMATTED_VALUE":
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        if number_format == "SCIENTIFIC":
            mantissa = f"{value:.2E}"
            return mantissa.replace("E+0", "E+").replace("E-0", "E-")
        if isinstance(value, float) and not value.is_integer():
            return f"{value:.10g}".replace(".", ",")  # ru_RU decimal comma
        return str(int(value))
    return value


def _parse_input(value: Any, option: str) -> Any:
    if option == "RAW" or not isinstance(value, str):
        if isinstance(value, (str, bool, int, float)):
            return value
        return str(value)
    if value.startswith("'"):
        return value[1:]
    if value.startswith("="):
        return Formula(value)
    if value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE"
    number = value.replace(" ", "")
    if re.fullmatch(r"[+-]?\d+", number):
        return int(number)
    if re.fullmatch(r"[+-]?\d*[.,]\d+", number):
        return float(number.replace(",", "."))
    return value


@functools.lru_cache(maxsize=2)
def throwaway_rsa_key(number: int = 0) -> Any:
    """An RSA key made for the tests (one per ``number`` per process: making one takes time)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_key(fake: FakeGoogleSheets, email: str = "hub-sync@hub-test.iam.gserviceaccount.com",
                        *, register: bool = True, key_number: int = 0) -> dict[str, Any]:
    """A service-account key file's JSON with a throwaway RSA key and the fake's token_uri;
    its public half is registered so the fake checks the JWT signature."""
    from cryptography.hazmat.primitives import serialization

    private = throwaway_rsa_key(key_number)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    if register:
        fake.public_keys[email] = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "type": "service_account",
        "project_id": email.partition("@")[2].split(".")[0],
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": fake.token_uri,
    }


def authorized_user(fake: FakeGoogleSheets, client_id: str = "1234.apps.googleusercontent.com") -> dict[str, Any]:
    """OAuth user credentials (``authorized_user`` JSON) the fake accepts."""
    refresh = "1//fake-" + secrets.token_urlsafe(16)
    fake.refresh_tokens[refresh] = client_id
    return {"type": "authorized_user", "client_id": client_id, "client_secret": "fake-secret",
            "refresh_token": refresh, "token_uri": fake.token_uri}
