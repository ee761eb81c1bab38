"""The HTTP layer every web API connector shares.

``ApiClient`` wraps a ``requests`` session and gives each connector the same
behaviour: timeouts on every request; retries with exponential backoff and jitter
(``tenacity``) on 429, 5xx, timeouts and dropped connections, honouring
``Retry-After``; client-side pacing per API account (requests per second and
requests in flight); one token refresh on 401, then a clear error; keys masked in
every message (``hub.redact``); failures turned into hub's own errors.

A request that is not idempotent (an SMS send, a create without an upsert key) is
retried only when it certainly did not reach the server: a 429 refusal, a
connection that was never made. When its outcome is unknown (a timeout while
waiting for the answer, a 5xx, a reset after the body was sent) it raises
``AmbiguousRequestError``: the connector settles it by reading the tool again
rather than sending twice.

``BatchOutcome`` keeps the results of partial batch writes item by item.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from pydantic import Field
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from hub.connector import MessagingOptions
from hub.errors import FatalError, RetriableError
from hub.model import WriteResult
from hub.redact import RedactingFilter, redact, register_secret

log = logging.getLogger("hub.http")
T = TypeVar("T")

#: Methods that may be repeated without changing the outcome (RFC 9110 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Statuses worth another try: the server refused or failed, the request may go again.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Client-side pacing stays this much under a provider's per-second limit.
PACING_MARGIN = 1.05
#: A ``Retry-After`` longer than this is not waited for inside one run.
MAX_RETRY_AFTER = 120.0

# urllib3 logs request lines (with query strings) at DEBUG: mask keys there too.
logging.getLogger("urllib3.connectionpool").addFilter(RedactingFilter())


class AmbiguousRequestError(RetriableError):
    """A request that must not be repeated blindly may or may not have taken effect."""


class RejectedRequestError(FatalError):
    """The API refused the request as invalid (4xx other than auth and rate limits)."""

    def __init__(self, message: str, status: int, body: Any = None, hint: str | None = None):
        super().__init__(message, hint)
        self.status = status
        self.body = body


# ---------------------------------------------------------------- pacing


class RateLimiter:
    """At most ``limit`` requests in any ``period`` seconds (a sliding window)."""

    def __init__(self, limit: int, period: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.limit = max(1, int(limit))
        self.period = period
        self.clock = clock
        self.sleep = sleep
        self.sent: deque[float] = deque()
        self.lock = threading.Lock()
        #: seconds spent waiting, for reports and tests
        self.waited = 0.0

    def delay(self) -> float:
        now = self.clock()
        while self.sent and now - self.sent[0] >= self.period:
            self.sent.popleft()
        if len(self.sent) < self.limit:
            return 0.0
        return self.sent[0] + self.period - now

    def acquire(self) -> None:
        with self.lock:
            while (wait := self.delay()) > 0:
                self.waited += wait
                self.sleep(wait)
            self.sent.append(self.clock())


@dataclass
class Pacing:
    """The client-side limits of one API account, shared by every client of the process."""

    rate: RateLimiter | None
    concurrent: threading.BoundedSemaphore | None
    max_concurrent: int | None = None
    #: most requests seen in flight at once
    peak: int = 0
    _inflight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Pacing:  # noqa: PYI034
        if self.concurrent is not None:
            self.concurrent.acquire()
        if self.rate is not None:
            self.rate.acquire()
        with self._lock:
            self._inflight += 1
            self.peak = max(self.peak, self._inflight)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inflight -= 1
        if self.concurrent is not None:
            self.concurrent.release()


_PACING: dict[tuple[str, ...], Pacing] = {}
_PACING_LOCK = threading.Lock()


def shared_pacing(key: tuple[str, ...], requests_per_second: float | None, max_concurrent: int | None,
                  sleep: Callable[[float], None] = time.sleep) -> Pacing:
    """One ``Pacing`` per API account and limits: the provider counts all our requests together."""
    full_key = key + (str(requests_per_second), str(max_concurrent))
    with _PACING_LOCK:
        pacing = _PACING.get(full_key)
        if pacing is None:
            rate = None
            if requests_per_second:
                # whole requests per period: 10/s is 10 per second, 0.5/s is 1 per 2 seconds; the
                # period is 5% longer, as the provider counts arrivals and the network jitters
                if requests_per_second >= 1:
                    rate = RateLimiter(int(requests_per_second), 1.0 * PACING_MARGIN, sleep=sleep)
                else:
                    rate = RateLimiter(1, PACING_MARGIN / requests_per_second, sleep=sleep)
            semaphore = threading.BoundedSemaphore(max_concurrent) if max_concurrent else None
            pacing = _PACING[full_key] = Pacing(rate, semaphore, max_concurrent)
        return pacing


# ---------------------------------------------------------------- authentication


class TokenAuth(requests.auth.AuthBase):
    """A bearer token fetched by ``fetch`` (OAuth client credentials and the like).

    The token is fetched on first use and again, once, when the API answers 401; the
    value is registered as a secret so it is masked wherever it could be printed."""

    def __init__(self, fetch: Callable[[], str], scheme: str = "Bearer"):
        self.fetch = fetch
        self.scheme = scheme
        self.token: str | None = None
        self.lock = threading.Lock()
        self.refreshes = 0

    def refresh(self) -> None:
        with self.lock:
            token = self.fetch()
            register_secret(token)
            self.token = token
            self.refreshes += 1

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.token is None:
            self.refresh()
        request.headers["Authorization"] = f"{self.scheme} {self.token}"
        return request


class HeaderAuth(requests.auth.AuthBase):
    """A key sent in a header of its own (Brevo's ``api-key``)."""

    def __init__(self, header: str, value: str):
        self.header = header
        self.value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self.header] = self.value
        return request


# ---------------------------------------------------------------- errors


class _Refused(Exception):
    """A response worth another try (or, once tries are spent, a ``RetriableError``)."""

    def __init__(self, message: str, status: int | None, retry_after: float | None, *, sent: bool):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        #: the request reached the server (its outcome is unknown for a non-idempotent one)
        self.sent = sent


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After`` in seconds (delta or HTTP date), also Brevo's ``x-sib-ratelimit-reset``."""
    if not headers:
        return None
    value = headers.get("Retry-After") or headers.get("x-sib-ratelimit-reset")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": a time in UTC whose source zone is unknown
            when = when.replace(tzinfo=dt.timezone.utc)
        return max(0.0, when.timestamp() - time.time())


def response_message(response: requests.Response) -> str:
    """The provider's own words about a failed request, whatever shape its error body has."""
    try:
        body = response.json()
    except ValueError:
        body = None
    parts: list[str] = []
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Google style
            body = {**body, **error}
        for key in ("title", "detail", "message", "error_description", "error", "code", "error_code"):
            value = body.get(key)
            if isinstance(value, (str, int)) and str(value) and str(value) not in parts:
                parts.append(str(value))
        for item in body.get("errors") or []:
            if isinstance(item, dict):
                text = item.get("message") or item.get("error")
                where = item.get("field") or item.get("location")
                if text:
                    parts.append(f"{where}: {text}" if where else str(text))
    text = "; ".join(parts)
    if not text:
        text = f"HTTP {response.status_code} {response.reason or ''}".strip()
    return text[:500]


def _not_sent(error: requests.RequestException) -> bool:
    """The connection was never made, so the request cannot have reached the server."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if isinstance(error, requests.ConnectionError):
        text = repr(error)
        return "NewConnectionError" in text or "Connection refused" in text or "NameResolutionError" in text
    return False


# ---------------------------------------------------------------- the client


class ApiClient:
    """One web API as a connector sees it: paths relative to ``base_url``, JSON answers.

    ``name`` names the API in messages ("Mailchimp"). ``secrets`` are values that must
    never be printed (keys); they are registered with ``hub.redact``. ``pacing_key``
    identifies the account the provider counts requests against.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        auth: requests.auth.AuthBase | tuple[str, str] | None = None,
        secrets: Iterable[str] = (),
        timeout: float | tuple[float, float] = (10.0, 120.0),
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        requests_per_second: float | None = None,
        max_concurrent: int | None = None,
        pacing_key: tuple[str, ...] | None = None,
        rate_limited: Callable[[requests.Response], bool] | None = None,
        error_message: Callable[[requests.Response], str] = response_message,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        for secret in secrets:
            if secret:
                register_secret(secret)
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json", "User-Agent": "hub-contacts"})
        if headers:
            self.session.headers.update(headers)
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = wait_random_exponential(multiplier=backoff_seconds, max=max_backoff_seconds)
        self.max_backoff_seconds = max_backoff_seconds
        self.sleep = sleep
        self.pacing = shared_pacing(pacing_key or (name, self.base_url), requests_per_second, max_concurrent,
                                    sleep)
        self.rate_limited = rate_limited
        self.error_message = error_message
        #: requests sent (each retry counts), for reports and benchmarks
        self.calls = 0
        self.retries = 0

    # -- public --------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        accept: Collection[int] = (),
        doing: str | None = None,
    ) -> requests.Response:
        """Send one request with retries; return the response when it is a success
        (2xx) or its status is in ``accept``; raise a hub error otherwise."""
        method = method.upper()
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        what = doing or f"{method} {_path_only(url)}"
        refreshed = False

        def once() -> requests.Response:
            nonlocal refreshed
            with self.pacing:
                self.calls += 1
                try:
                    response = self.session.request(
                        method, url, params=params, json=json_body, data=data, headers=headers,
                        timeout=self.timeout,
                    )
                except requests.RequestException as error:
                    kind = "timed out" if isinstance(error, requests.Timeout) else "connection failed"
                    raise _Refused(f"{kind} ({type(error).__name__})", None, None,
                                   sent=not _not_sent(error)) from None
            status = response.status_code
            if status == 401 and isinstance(self.session.auth, TokenAuth) and not refreshed:
                refreshed = True
                self.session.auth.refresh()
                raise _Refused("the access token was refused; fetched a new one", 401, 0.0, sent=False)
            if status in accept or 200 <= status < 300:
                if self.rate_limited is not None and self.rate_limited(response):
                    raise _Refused(self._describe(response), status, retry_after_seconds(response.headers),
                                   sent=False)
                return response
            limited = self.rate_limited is not None and self.rate_limited(response)
            if status in RETRY_STATUSES or limited:
                # a 429 (or the provider's own rate-limit answer, Metrica's 420) is a refusal:
                # nothing was done; a 5xx may have done the work
                raise _Refused(self._describe(response), status, retry_after_seconds(response.headers),
                               sent=status not in (429, 425) and not limited)
            raise self._fatal(response, what)

        def retriable(error: BaseException) -> bool:
            if not isinstance(error, _Refused):
                return False
            if error.status == 401:
                return True
            if waits_too_long(error):
                return False  # the provider asks for a longer pause than one run waits
            return safe or not error.sent

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            error = state.outcome.exception() if state.outcome else None
            log.debug(redact(f"{self.name}: {what}: {error}; try {state.attempt_number + 1}"))

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts + (1 if isinstance(self.session.auth, TokenAuth) else 0)),
            wait=self._wait,
            retry=retry_if_exception(retriable),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(once)
        except _Refused as error:
            message = redact(f"{self.name}: {what}: {error.message}")
            if waits_too_long(error):
                message += f" (asked to wait {wait_text(error.retry_after)}, longer than a run waits)"
            if not safe and error.sent and error.status != 401:
                raise AmbiguousRequestError(
                    message + " (the request may have been applied; it is not sent again blindly)",
                    retry_after=error.retry_after,
                ) from None
            raise RetriableError(message, retry_after=error.retry_after,
                                 hint="the next sync tries again") from None

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.json(self.request("GET", path, **kwargs))

    def json(self, response: requests.Response) -> Any:
        """The body as JSON; a truncated or HTML body is a retriable failure, not a crash."""
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RetriableError(
                redact(f"{self.name}: {_path_only(response.url)}: the answer is not JSON "
                       f"(HTTP {response.status_code}, {len(response.content)} bytes)")
            ) from None

    def close(self) -> None:
        self.session.close()

    # -- internals -----------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Refused) and error.retry_after is not None:
            return error.retry_after
        return self.backoff(state)

    def _describe(self, response: requests.Response) -> str:
        return f"HTTP {response.status_code}: {self.error_message(response)}"

    def _fatal(self, response: requests.Response, what: str) -> FatalError:
        status = response.status_code
        message = redact(f"{self.name}: {what}: HTTP {status}: {self.error_message(response)}")
        if status == 401 and isinstance(self.session.auth, TokenAuth):
            return FatalError(message + " (also after fetching a new access token)",
                              hint="check the client id and secret in hub.yaml")
        if status in (401, 403):
            return FatalError(message, hint="check the API key in hub.yaml and its permissions")
        if status == 404:
            return FatalError(message, hint="check the list, audience or account id in hub.yaml")
        try:
            body = response.json()
        except ValueError:
            body = None
        return RejectedRequestError(message, status, body)


def waits_too_long(error: BaseException) -> bool:
    """The answer ``error`` stands for asks for a longer pause (``Retry-After``, its
    ``retry_after``) than one run waits (``MAX_RETRY_AFTER``): left for the next sync."""
    retry_after = getattr(error, "retry_after", None)
    return retry_after is not None and retry_after > MAX_RETRY_AFTER


def wait_text(seconds: float) -> str:
    """``Retry-After`` in words: ``90 s``, ``45 min``, ``24 h``."""
    if seconds < 600:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def _path_only(url: str) -> str:
    """A URL without its query string, for messages (keys often travel there)."""
    return redact(url.split("?", 1)[0])


# ---------------------------------------------------------------- options


class ServiceOptions(MessagingOptions):
    """Options every email and SMS service connector has besides its credentials."""

    endpoint: str | None = Field(None, description="Base URL of the API (a regional host, a proxy, a test server).")
    timeout_seconds: float = Field(60.0, gt=0, description="How long to wait for an answer.")
    max_attempts: int = Field(5, ge=1, le=20, description="Tries per request on 429, 5xx and timeouts.")
    backoff_seconds: float = Field(1.0, ge=0, description="First backoff; it doubles per try, with jitter.")
    max_backoff_seconds: float = Field(60.0, ge=0, description="Longest backoff between two tries.")

    def client(self, name: str, base_url: str, *, path: str = "", **kwargs: Any) -> ApiClient:
        """An ``ApiClient`` for ``endpoint`` (else ``base_url``), ``path`` appended."""
        return ApiClient(
            name, (self.endpoint or base_url).rstrip("/") + path, timeout=(min(10.0, self.timeout_seconds), self.timeout_seconds),
            max_attempts=self.max_attempts, backoff_seconds=self.backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds, **kwargs,
        )


# ---------------------------------------------------------------- partial batches


class BatchOutcome:
    """Results of a batch write, item by item.

    A connector sends a batch, then marks each item ``ok`` (with the tool's id),
    ``rejected`` (with the provider's reason; never sent again as is) or leaves it
    ``pending``. Only pending items are sent in a retry, so an accepted item is never
    sent twice. Items still pending at the end are ``retriable``.
    """

    def __init__(self, contact_ids: Iterable[int]):
        self.order = list(contact_ids)
        self.results: dict[int, WriteResult] = {}

    def ok(self, contact_id: int, external_id: str | None) -> None:
        self.results[contact_id] = WriteResult(contact_id, "ok", external_id=external_id)

    def rejected(self, contact_id: int, reason: str) -> None:
        self.results[contact_id] = WriteResult(contact_id, "rejected", error=redact(reason)[:500])

    def retriable(self, contact_id: int, reason: str) -> None:
        self.results[contact_id] = WriteResult(contact_id, "retriable", error=redact(reason)[:500])

    def pending(self) -> list[int]:
        return [cid for cid in self.order if cid not in self.results or self.results[cid].status == "retriable"]

    def fail_pending(self, reason: str, contact_ids: Iterable[int] | None = None) -> None:
        """Items (of ``contact_ids``, else all) the provider did not report on are retriable."""
        for contact_id in self.order if contact_ids is None else contact_ids:
            if contact_id not in self.results:
                self.retriable(contact_id, reason)

    def as_list(self) -> list[WriteResult]:
        return [self.results.get(cid) or WriteResult(cid, "retriable", error="not sent") for cid in self.order]


def send_in_halves(items: Sequence[T], send: Callable[[Sequence[T]], None],
                   rejected: Callable[[T, str], None],
                   about_items: Callable[[RejectedRequestError], bool] = lambda error: True,
                   culprit: Callable[[RejectedRequestError, Sequence[T]], T | None] = lambda error, items: None,
                   ) -> None:
    """Send ``items`` with an API that refuses a whole batch for one bad item: on a
    refusal, send each half again until the bad items are alone, and report each of
    them with the provider's reason. The items sent with the refused batch were not
    accepted, so nothing accepted is ever sent twice. A refusal ``about_items`` says is
    not about the items (an unknown list) is raised as it is. When ``culprit`` finds the
    item the refusal names, that item is rejected and the rest sent again at once."""
    while items:
        try:
            send(items)
            return
        except RejectedRequestError as error:
            if not about_items(error):
                raise
            if len(items) == 1:
                rejected(items[0], error.message)
                return
            named = culprit(error, items)
            if named is not None:
                rejected(named, error.message)
                items = [item for item in items if item is not named]
                continue
            middle = len(items) // 2
            send_in_halves(items[:middle], send, rejected, about_items, culprit)
            send_in_halves(items[middle:], send, rejected, about_items, culprit)
            return


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


__all__ = [
    "AmbiguousRequestError",
    "ApiClient",
    "BatchOutcome",
    "HeaderAuth",
    "RateLimiter",
    "RejectedRequestError",
    "ServiceOptions",
    "TokenAuth",
    "retry_after_seconds",
    "send_in_halves",
    "shared_pacing",
    "wait_text",
    "waits_too_long",
]
