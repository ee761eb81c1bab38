"""hub.http against a local server: retries, Retry-After, pacing, token refresh,
ambiguous sends, redaction and partial batch results."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from hub.errors import FatalError, RetriableError
from hub.http import (
    AmbiguousRequestError,
    ApiClient,
    BatchOutcome,
    RateLimiter,
    RejectedRequestError,
    TokenAuth,
    retry_after_seconds,
    shared_pacing,
)
from tests.fakes.http import ApiError, FakeApi, Request

KEY = "uk-7c1d2e3f4a5b6c7d8e9f"


class Echo(FakeApi):
    """A tiny API: ``GET /items``, ``POST /send`` (not idempotent), token auth optional."""

    def __init__(self, **kwargs: Any):
        self.tokens: set[str] = set()
        self.require_token = False
        self.sent: list[Any] = []
        self.issued = 0
        self.tokens_work = True
        super().__init__(**kwargs)

    def route_table(self) -> list[Any]:
        return [
            ("GET", r"/items", "items", lambda request: {"items": [1, 2], "query": request.query}),
            ("POST", r"/send", "send", self._send),
            ("POST", r"/token", "token", self._token),
            ("GET", r"/missing", "missing", self._missing),
        ]

    def authorize(self, request: Request, endpoint: str) -> None:
        if self.require_token and endpoint != "token":
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in self.tokens:
                raise ApiError(401, {"error": "invalid_token", "message": "token expired"})

    def _send(self, request: Request) -> Any:
        self.sent.append(request.json())
        return {"result": True}

    def _token(self, request: Request) -> Any:
        self.issued += 1
        token = f"tok-{self.issued:04d}-abcdefgh"
        if self.tokens_work:
            self.tokens.add(token)
        return {"access_token": token, "expires_in": 3600}

    def _missing(self, request: Request) -> Any:
        raise ApiError(400, {"error": "invalid_arg", "message": "list_id is unknown"})


@pytest.fixture
def echo():
    with Echo() as server:
        yield server


def client(echo: Echo, **kwargs: Any) -> ApiClient:
    kwargs.setdefault("backoff_seconds", 0)
    kwargs.setdefault("max_backoff_seconds", 0)
    return ApiClient("Echo", echo.url, **kwargs)


def test_429_and_5xx_are_retried_honouring_retry_after(echo):
    slept: list[float] = []
    echo.fail("items", 429, retry_after="3")
    echo.fail("items", 503)
    api = client(echo, sleep=slept.append)
    assert api.get_json("items")["items"] == [1, 2]
    assert echo.calls["items"] == 3
    assert slept[0] == 3.0 and slept[1] == 0


def test_retry_after_as_http_date_and_brevo_reset_header():
    assert retry_after_seconds({"x-sib-ratelimit-reset": "7"}) == 7.0
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) is None


def test_a_retry_after_longer_than_a_run_waits_is_left_for_the_next_sync(echo):
    slept: list[float] = []
    echo.fail("items", 429, retry_after="86400")
    api = client(echo, sleep=slept.append)
    with pytest.raises(RetriableError, match="asked to wait 24 h") as raised:
        api.get_json("items")
    assert not isinstance(raised.value, AmbiguousRequestError)
    assert slept == [] and echo.calls["items"] == 1
    assert raised.value.hint == "the next sync tries again"
    echo.fail("items", 503, retry_after="90")  # within a run's wait: honoured in full
    assert api.get_json("items")["items"] == [1, 2]
    assert slept == [90.0]


def test_retry_after_as_a_future_http_date_in_utc(monkeypatch):
    import email.utils
    import time

    when = email.utils.formatdate(time.time() + 30)  # "-0000": no zone of its own, read as UTC
    monkeypatch.setenv("TZ", "America/New_York")  # not the host's zone
    time.tzset()
    try:
        assert 25 < retry_after_seconds({"Retry-After": when}) <= 30
    finally:
        monkeypatch.undo()
        time.tzset()


def test_giving_up_is_retriable_with_the_providers_words(echo):
    echo.fail("items", 500, times=5)
    with pytest.raises(RetriableError, match="Internal Server Error"):
        client(echo, max_attempts=3).get_json("items")
    assert echo.calls["items"] == 3


def test_a_non_idempotent_send_is_not_repeated_after_an_ambiguous_failure(echo):
    echo.fail("send", 500, after_apply=True)
    api = client(echo)
    with pytest.raises(AmbiguousRequestError, match="not sent again blindly"):
        api.request("POST", "send", json_body={"text": "hello"})
    assert echo.calls["send"] == 1 and len(echo.sent) == 1


def test_a_non_idempotent_send_refused_with_429_is_retried(echo):
    echo.fail("send", 429, retry_after="0")
    client(echo).request("POST", "send", json_body={"text": "hi"})
    assert echo.calls["send"] == 2 and len(echo.sent) == 1


def test_a_timeout_of_a_send_is_ambiguous_and_of_a_read_is_retried(echo):
    echo.fail("send", delay=2.0)
    api = client(echo, timeout=(2.0, 0.5))
    with pytest.raises(AmbiguousRequestError, match="timed out"):
        api.request("POST", "send", json_body={"text": "slow"})
    assert echo.calls["send"] == 1  # never sent twice
    echo.fail("items", delay=2.0)
    assert api.get_json("items")["items"] == [1, 2]
    # retried (more than once only if this busy machine answered the retry late too)
    assert echo.calls["items"] >= 2


def test_a_refused_connection_is_retried_even_for_a_send():
    api = ApiClient("Nowhere", "http://127.0.0.1:9", backoff_seconds=0, max_attempts=2)
    with pytest.raises(RetriableError) as raised:
        api.request("POST", "send", json_body={})
    assert not isinstance(raised.value, AmbiguousRequestError)
    assert api.calls == 2


def test_an_idempotent_post_is_retried_after_an_ambiguous_failure(echo):
    echo.fail("send", 500, after_apply=True)
    client(echo).request("POST", "send", json_body={"upsert": 1}, idempotent=True)
    assert echo.calls["send"] == 2


def test_a_token_is_refreshed_once_then_a_clear_error(echo):
    echo.require_token = True
    plain = client(echo)
    auth = TokenAuth(lambda: plain.json(plain.request("POST", "token", idempotent=True))["access_token"])
    api = client(echo, auth=auth)
    assert api.get_json("items")["items"] == [1, 2]
    echo.tokens.clear()  # the token expired
    assert api.get_json("items")["items"] == [1, 2]
    assert auth.refreshes == 2
    echo.tokens.clear()
    echo.tokens_work = False  # the account was disabled: new tokens are refused too
    with pytest.raises(FatalError, match="also after fetching a new access token") as raised:
        api.get_json("items")
    assert "tok-" not in str(raised.value)
    assert echo.issued == 3


def test_a_bad_request_is_rejected_with_the_providers_reason(echo):
    with pytest.raises(RejectedRequestError) as raised:
        client(echo).get_json("missing")
    assert raised.value.status == 400 and "list_id is unknown" in str(raised.value)
    assert raised.value.body["error"] == "invalid_arg"


def test_keys_in_query_strings_and_secrets_never_reach_messages_or_logs(echo, caplog):
    caplog.set_level(logging.DEBUG)
    echo.fail("items", 500, times=10)
    api = client(echo, secrets=[KEY], max_attempts=2)
    with pytest.raises(RetriableError) as raised:
        api.request("GET", "items", params={"api_key": KEY, "format": "json"})
    with pytest.raises(RetriableError) as raised_again:
        api.request("GET", f"items?api_key={KEY}")
    text = str(raised.value) + str(raised_again.value) + caplog.text
    assert KEY not in text
    assert "urllib3" in caplog.text or "Echo" in text


def test_rate_limiter_paces_to_the_limit():
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(10, 1.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(25):
        limiter.acquire()
    assert len(waits) == 2 and limiter.waited == pytest.approx(2.0)


def test_concurrency_is_capped_per_account(echo):
    echo.max_concurrent = 2
    echo.fail("items", delay=0.05, times=8)
    api = client(echo, max_concurrent=2, pacing_key=("echo-test", "account-1"))
    threads = [threading.Thread(target=api.get_json, args=("items",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert echo.rate_limited == 0
    assert api.pacing.peak <= 2
    assert shared_pacing(("echo-test", "account-1"), None, 2) is api.pacing


def test_batch_outcome_keeps_accepted_items_out_of_retries():
    outcome = BatchOutcome([1, 2, 3, 4])
    outcome.ok(1, "a")
    outcome.rejected(2, f"bad address; api_key={KEY}")
    outcome.retriable(3, "HTTP 503")
    assert outcome.pending() == [3, 4]
    outcome.fail_pending("not reported", [4])
    results = outcome.as_list()
    assert [r.status for r in results] == ["ok", "rejected", "retriable", "retriable"]
    assert KEY not in results[1].error
