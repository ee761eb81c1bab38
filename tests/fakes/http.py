"""What every fake web API of the tests shares: a real local HTTP server, routing,
fault injection, call counters and a rate limit.

A fake subclasses ``FakeApi``, lists its routes (method, path regex, endpoint name,
handler) and raises ``ApiError`` with the provider's error body. Faults are
injected per endpoint name (or ``*``): a status with the provider's error body and
``Retry-After``, an HTML page, truncated JSON, a dropped connection, a slow answer
(a client timeout), or a failure *after* the request was applied (an answer lost on
the way back). Every request is counted per endpoint and logged with its query and
body, so tests can assert how many calls were made and that nothing was sent twice.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from typing_extensions import Self


class ApiError(Exception):
    """An error answer: status, the provider's JSON body, extra headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None,
                 content_type: str = "application/json"):
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type


@dataclass
class Fault:
    endpoint: str
    status: int = 500
    times: int = 1
    retry_after: str | None = None
    #: "json" (the provider's error body), "html", "truncated" or "drop" (close the connection)
    body: str = "json"
    #: apply the request first, then fail (the answer is lost: an ambiguous outcome)
    after_apply: bool = False
    #: seconds to wait before answering (a timeout when longer than the client's)
    delay: float = 0.0
    #: matching requests answered normally before the fault starts (the third page of a list)
    skip: int = 0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.raw.decode(), keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


Route = tuple[str, str, str, Callable[..., Any]]


class FakeApi:
    """A local HTTP server speaking one provider's protocol."""

    #: (method, path regex, endpoint name, handler(request, *groups) -> (status, body[, content type]) | body)
    routes: list[Route]

    def __init__(self, *, requests_per_second: int | None = None, max_concurrent: int | None = None):
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, str, str]] = []  # endpoint, method, full path with query
        self.requests: list[tuple[str, Request]] = []
        #: requests whose effect took place: (endpoint, request, answer lost on the way back)
        self.applied: list[tuple[str, Request, bool]] = []
        #: addresses the provider refuses as invalid (a partial batch failure on demand)
        self.refused: set[str] = set()
        self.faults: list[Fault] = []
        self.requests_per_second = requests_per_second
        #: seconds every answer takes (a network's round trip, for benchmarks)
        self.latency = 0.0
        self.max_concurrent = max_concurrent
        self.rate_limited = 0
        self.peak_concurrent = 0
        self._inflight = 0
        self._window: deque[float] = deque()
        self.lock = threading.RLock()
        self.server: ThreadingHTTPServer | None = None
        self.routes = self.route_table()

    # -- to implement --------------------------------------------------------

    def route_table(self) -> list[Route]:
        raise NotImplementedError

    def authorize(self, request: Request, endpoint: str) -> None:
        """Raise ``ApiError`` when the request's credentials are wrong."""

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message}

    def rate_limit_error(self) -> ApiError:
        return ApiError(429, self.error_body(429, "Too Many Requests"), {"Retry-After": "0"})

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
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

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

            def do_DELETE(self) -> None:
                fake._handle(self, "DELETE")

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
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

    # -- test helpers --------------------------------------------------------

    def fail(self, endpoint: str, status: int = 500, *, times: int = 1, retry_after: str | None = None,
             body: str = "json", after_apply: bool = False, delay: float = 0.0, skip: int = 0) -> None:
        """The next ``times`` requests to ``endpoint`` (``*``: any) fail this way, after
        ``skip`` of them are answered normally."""
        with self.lock:
            self.faults.append(Fault(endpoint, status, times, retry_after, body, after_apply, delay, skip))

    def valid_email(self, email: str) -> bool:
        return bool(re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email)) and email.lower() not in self.refused

    def reset_counters(self) -> None:
        with self.lock:
            self.calls.clear()
            self.log.clear()
            self.requests.clear()
            self.applied.clear()

    def bodies(self, endpoint: str) -> list[Any]:
        """The JSON bodies of the requests to ``endpoint``, in order."""
        return [request.json() for name, request in self.requests if name == endpoint]

    # -- plumbing ------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        request = Request(method, split.path, parse_qs(split.query, keep_blank_values=True), handler.headers, raw)
        endpoint, route, groups = self._route(method, split.path)
        with self.lock:
            self.calls[endpoint] += 1
            self.log.append((endpoint, method, handler.path))
            self.requests.append((endpoint, request))
            fault = self._take_fault(endpoint)
            self._inflight += 1
            self.peak_concurrent = max(self.peak_concurrent, self._inflight)
            inflight = self._inflight
        headers: dict[str, str] = {}
        content_type = "application/json"
        lost = fault is not None and (fault.after_apply or fault.delay > 0)
        if self.latency:
            time.sleep(self.latency)
        try:
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
                fault = None
            try:
                if fault is not None and not fault.after_apply:
                    raise self._fault_error(fault)
                if route is None:
                    raise ApiError(404, self.error_body(404, f"Not found: {method} {split.path}"))
                self.authorize(request, endpoint)
                self._check_rate(inflight)
                with self.lock:
                    result = route(request, *groups)
                    self.applied.append((endpoint, request, lost))
                status, payload = result[:2] if isinstance(result, tuple) else (200, result)
                if isinstance(result, tuple) and len(result) > 2:  # (status, bytes, content type)
                    content_type = result[2]
                if fault is not None:
                    raise self._fault_error(fault)
            except ApiError as error:
                status, payload, content_type = error.status, error.body, error.content_type
                headers.update(error.headers)
                if fault is not None and fault.body != "json":
                    self._send_raw(handler, status, fault, headers)
                    return
            if payload is None and status == 204:
                handler.send_response(204)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", f"{content_type}; charset=utf-8")
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        finally:
            with self.lock:
                self._inflight -= 1

    def _check_rate(self, inflight: int) -> None:
        with self.lock:
            if self.max_concurrent is not None and inflight > self.max_concurrent:
                self.rate_limited += 1
                raise self.rate_limit_error()
            if self.requests_per_second is not None:
                now = time.monotonic()
                while self._window and now - self._window[0] >= 1.0:
                    self._window.popleft()
                if len(self._window) >= self.requests_per_second:
                    self.rate_limited += 1
                    raise self.rate_limit_error()
                self._window.append(now)

    def _route(self, method: str, path: str) -> tuple[str, Callable[..., Any] | None, tuple[str, ...]]:
        for route_method, pattern, endpoint, handler in self.routes:
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                return endpoint, handler, match.groups()
        return "unknown", None, ()

    def _take_fault(self, endpoint: str) -> Fault | None:
        for fault in self.faults:
            if (fault.endpoint in ("*", endpoint)) and fault.times > 0:
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _fault_error(self, fault: Fault) -> ApiError:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        message = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                   503: "Service Unavailable"}.get(fault.status, "Error")
        if fault.status == 429:
            error = self.rate_limit_error()
            error.headers = headers
            return error
        return ApiError(fault.status, self.error_body(fault.status, message), headers)

    def _send_raw(self, handler: BaseHTTPRequestHandler, status: int, fault: Fault, headers: dict[str, str]) -> None:
        if fault.body == "drop":
            handler.close_connection = True
            try:
                handler.connection.shutdown(2)
            except OSError:
                pass
            return
        if fault.body == "html":
            data = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            kind = "text/html"
        else:
            data = b'{"status": ' + str(status).encode() + b', "tit'
            kind = "application/json"
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
