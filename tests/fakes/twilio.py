"""A local Twilio REST API server for the message history (``Messages.json``).

* HTTP Basic ``AccountSid:AuthToken``; wrong credentials get 401 ``{"code": 20003,
  "message": "Authenticate", "more_info", "status": 401}``;
* ``GET /2010-04-01/Accounts/{sid}/Messages.json``: ``PageSize`` (at most 1000),
  ``DateSent>`` (on or after a day, ``YYYY-MM-DD``), ``To``, ``From``; newest first;
  ``next_page_uri`` until the last page (``Page``, ``PageToken``);
* rate limits as 429 ``{"code": 20429, "message": "Too Many Requests"}``.

``inbound`` and ``outbound`` add messages as a person (STOP, START) or a campaign would.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
from typing import Any

from tests.fakes.http import ApiError, FakeApi, Request

PAGE_LIMIT = 1000


class FakeTwilio(FakeApi):
    def __init__(self, account_sid: str = "AC0123456789abcdef0123456789abcdef",
                 auth_token: str = "f0e1d2c3b4a5968778695a4b3c2d1e0f", number: str = "+15005550006", **kwargs: Any):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.number = number
        self.messages: list[dict[str, Any]] = []
        self.clock = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
        super().__init__(**kwargs)

    def route_table(self) -> list[Any]:
        return [("GET", r"/2010-04-01/Accounts/([^/]+)/Messages\.json", "messages.list", self._list)]

    def authorize(self, request: Request, endpoint: str) -> None:
        header = request.headers.get("Authorization", "")
        user, _, password = base64.b64decode(header[6:]).decode().partition(":") if header.startswith(
            "Basic ") else ("", "", "")
        if (user, password) != (self.account_sid, self.auth_token):
            raise ApiError(401, {"code": 20003, "message": "Authenticate",
                                 "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})

    def error_body(self, status: int, message: str) -> Any:
        return {"code": 20500 if status >= 500 else 20000 + status, "message": message,
                "more_info": "https://www.twilio.com/docs/errors", "status": status}

    def rate_limit_error(self) -> ApiError:
        return ApiError(429, {"code": 20429, "message": "Too Many Requests",
                              "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429})

    def _list(self, request: Request, sid: str) -> Any:
        if sid != self.account_sid:
            raise ApiError(404, {"code": 20404, "message": "The requested resource was not found",
                                 "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404})
        size = int(request.arg("PageSize", "50"))
        if size > PAGE_LIMIT:
            raise ApiError(400, {"code": 20001, "message": "PageSize must be at most 1000", "status": 400})
        page = int(request.arg("Page", "0"))
        rows = sorted(self.messages, key=lambda m: (m["_at"], m["sid"]), reverse=True)
        since = request.arg("DateSent>")
        if since:
            day = dt.date.fromisoformat(since)
            rows = [m for m in rows if m["_at"].date() >= day]
        for key in ("To", "From"):
            if request.arg(key):
                rows = [m for m in rows if m[key.lower()] == request.arg(key)]
        chunk = rows[page * size : (page + 1) * size]
        base = f"/2010-04-01/Accounts/{sid}/Messages.json"
        extra = f"&DateSent%3E={since}" if since else ""
        more = (page + 1) * size < len(rows)
        return {"messages": [{k: v for k, v in m.items() if k != "_at"} for m in chunk], "page": page,
                "page_size": size, "start": page * size, "end": page * size + len(chunk) - 1,
                "uri": f"{base}?PageSize={size}&Page={page}{extra}",
                "first_page_uri": f"{base}?PageSize={size}&Page=0{extra}",
                "previous_page_uri": None,
                "next_page_uri": f"{base}?PageSize={size}&Page={page + 1}&PageToken=PA{page + 1:08d}{extra}"
                if more else None}

    def _message(self, direction: str, sender: str, recipient: str, body: str, status: str,
                 error_code: int | None = None) -> str:
        with self.lock:
            self.clock += dt.timedelta(minutes=7)
            sid = f"SM{len(self.messages):032x}"
            self.messages.append({
                "sid": sid, "account_sid": self.account_sid, "from": sender, "to": recipient, "body": body,
                "status": status, "direction": direction, "date_sent": email.utils.format_datetime(self.clock),
                "date_created": email.utils.format_datetime(self.clock), "error_code": error_code,
                "error_message": None if error_code is None else "Attempt to send to unsubscribed recipient",
                "num_segments": "1", "price": None, "_at": self.clock,
            })
            return sid

    def inbound(self, phone: str, body: str) -> str:
        return self._message("inbound", phone, self.number, body, "received")

    def outbound(self, phone: str, body: str, error_code: int | None = None) -> str:
        return self._message("outbound-api", self.number, phone, body,
                             "failed" if error_code else "delivered", error_code)
