"""A local SendPulse REST API server for address books.

* ``POST /oauth/access_token`` (client credentials, JSON) -> ``{"access_token",
  "token_type": "Bearer", "expires_in"}``; wrong credentials get 401
  ``{"error": "invalid_client", ...}``; ``expire_tokens`` makes every token stale (401);
* ``GET /addressbooks/{id}/emails?limit&offset`` (limit at most 100): ``[{"email",
  "status", "status_explain", "variables"}]``;
* ``POST /addressbooks/{id}/emails`` ``{"emails": [{"email", "variables"}]}`` adds or
  updates (an existing address keeps its status: adding never resubscribes); one
  invalid address refuses the whole request with 400 ``{"error_code", "message"}``;
* ``POST /addressbooks/{id}/emails/unsubscribe`` and ``DELETE /addressbooks/{id}/emails``
  ``{"emails": ["a@b"]}``; all answer ``{"result": true}``;
* more than ``requests_per_second`` (10) requests in a second get 429.
"""

from __future__ import annotations

import secrets
from typing import Any

from tests.fakes.http import ApiError, FakeApi, Request

PAGE_LIMIT = 100
#: status codes and their explanations as the address book listing gives them
STATUS = {"active": (1, "Active"), "new": (0, "New"), "unsubscribed": (4, "Unsubscribed"),
          "spam": (5, "Marked as spam"), "bounced": (3, "Hard bounce"), "unconfirmed": (2, "Unconfirmed")}


class FakeSendPulse(FakeApi):
    def __init__(self, client_id: str = "0123456789abcdef0123456789abcdef",
                 client_secret: str = "fedcba9876543210fedcba9876543210", book_id: int = 101,
                 *, requests_per_second: int | None = 10, **kwargs: Any):
        self.client_id = client_id
        self.client_secret = client_secret
        self.book_id = book_id
        self.tokens: set[str] = set()
        self.issued: list[str] = []
        #: email -> {"status": key of STATUS, "variables": {...}}, in the order added
        self.emails: dict[str, dict[str, Any]] = {}
        super().__init__(requests_per_second=requests_per_second, **kwargs)

    def route_table(self) -> list[Any]:
        book = r"/addressbooks/(\d+)/emails"
        return [
            ("POST", r"/oauth/access_token", "token", self._token),
            ("GET", book, "emails.list", self._list),
            ("POST", book, "emails.add", self._add),
            ("POST", book + r"/unsubscribe", "emails.unsubscribe", self._unsubscribe),
            ("DELETE", book, "emails.delete", self._delete),
        ]

    def authorize(self, request: Request, endpoint: str) -> None:
        if endpoint == "token":
            return
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            raise ApiError(401, {"error": "invalid_token", "error_description": "The access token is invalid",
                                 "message": "The access token provided is invalid"})

    def error_body(self, status: int, message: str) -> Any:
        return {"error_code": status, "message": message}

    def rate_limit_error(self) -> ApiError:
        return ApiError(429, {"error_code": 429, "message": "Too Many Requests"})

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # -- protocol ------------------------------------------------------------

    def _token(self, request: Request) -> Any:
        body = request.json() or {}
        if (body.get("grant_type") != "client_credentials" or body.get("client_id") != self.client_id
                or body.get("client_secret") != self.client_secret):
            raise ApiError(401, {"error": "invalid_client", "error_description": "Client authentication failed.",
                                 "message": "Client authentication failed."})
        token = "sp-" + secrets.token_hex(16)
        self.tokens.add(token)
        self.issued.append(token)
        return {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    def _book(self, book_id: str) -> None:
        if int(book_id) != self.book_id:
            raise ApiError(400, {"error_code": 213, "message": "Book not found"})

    def _emails(self, request: Request) -> list[Any]:
        body = request.json() or {}
        emails = body.get("emails")
        if isinstance(emails, str):  # the official SDK sends the list JSON-encoded again
            import json

            emails = json.loads(emails)
        if not isinstance(emails, list) or not emails:
            raise ApiError(400, {"error_code": 203, "message": "Empty emails list"})
        return emails

    def _list(self, request: Request, book_id: str) -> Any:
        self._book(book_id)
        limit = int(request.arg("limit", "100"))
        offset = int(request.arg("offset", "0"))
        if limit > PAGE_LIMIT:
            raise ApiError(400, {"error_code": 400, "message": f"limit must not exceed {PAGE_LIMIT}"})
        rows = list(self.emails.items())[offset : offset + limit]
        return [{"email": email, "status": STATUS[entry["status"]][0], "status_explain": STATUS[entry["status"]][1],
                 "variables": dict(entry["variables"])} for email, entry in rows]

    def _add(self, request: Request, book_id: str) -> Any:
        self._book(book_id)
        emails = self._emails(request)
        bad = [e.get("email") for e in emails if not self.valid_email(str(e.get("email") or ""))]
        if bad:
            raise ApiError(400, {"error_code": 502, "message": f"Invalid email: {bad[0]}"})
        for item in emails:
            email = str(item["email"]).lower()
            entry = self.emails.setdefault(email, {"status": "active", "variables": {}})
            entry["variables"].update(item.get("variables") or {})
        return {"result": True}

    def _unsubscribe(self, request: Request, book_id: str) -> Any:
        self._book(book_id)
        for email in self._emails(request):
            if str(email).lower() in self.emails:
                self.emails[str(email).lower()]["status"] = "unsubscribed"
        return {"result": True}

    def _delete(self, request: Request, book_id: str) -> Any:
        self._book(book_id)
        for email in self._emails(request):
            self.emails.pop(str(email).lower(), None)
        return {"result": True}

    # -- a person in SendPulse -------------------------------------------------

    def add(self, email: str, status: str = "active", **variables: Any) -> None:
        with self.lock:
            self.emails[email.lower()] = {"status": status, "variables": dict(variables)}

    def person_edits(self, email: str, status: str | None = None, **variables: Any) -> None:
        with self.lock:
            entry = self.emails[email.lower()]
            entry["variables"].update(variables)
            if status:
                entry["status"] = status
