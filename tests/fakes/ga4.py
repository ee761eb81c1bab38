"""A fake Google Analytics Data API v1beta (``properties.runReport``): a real local HTTP server.

``POST /v1beta/properties/{id}:runReport`` with a Bearer token, the request body as the
API takes it (dateRanges, dimensions, metrics, orderBys, limit and offset as int64
strings); answers in the API's shape (dimensionHeaders, metricHeaders, rows of string
values, rowCount, metadata.timeZone, propertyQuota). Dates of a date range are
``YYYY-MM-DD`` or ``today``/``yesterday``/``NdaysAgo`` of the property's time zone
(``time_zone``); a range that starts after it ends is 400. At most 9 dimensions; a dimension
must be a standard one or a registered custom dimension, else 400 INVALID_ARGUMENT.
Quota errors are Google's 429 RESOURCE_EXHAUSTED body (``fail("runReport", 429)``, or
``tokens`` running out); every call counted. ``POST /token`` is the OAuth token
endpoint of a service account key (JWT bearer grant, RS256 checked against the key).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
from typing import Any
from zoneinfo import ZoneInfo

from tests.fakes.http import ApiError, FakeApi, Request, Route

STANDARD = {"date", "dateHour", "sessionSource", "sessionMedium", "sessionCampaignName", "sessionSourceMedium",
            "sessionDefaultChannelGroup", "deviceCategory", "city", "region", "country", "landingPage"}
METRICS = {"sessions", "activeUsers", "eventCount", "keyEvents"}
SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


class FakeGa4(FakeApi):
    def __init__(self, token: str, property_id: str, *, custom: tuple[str, ...] = ("customEvent:client_id",),
                 time_zone: str = "Europe/Moscow", tokens: int | None = None):
        super().__init__()
        self.token = token
        self.property_id = property_id
        self.custom = set(custom)
        self.time_zone = time_zone
        #: False: answers leave metadata.timeZone out
        self.tells_time_zone = True
        #: property tokens left this hour (None: unlimited); each report costs one per 100 rows, at least 1
        self.tokens = tokens
        #: session rows: dimension name -> value, plus "sessions"
        self.sessions: list[dict[str, str]] = []
        #: service accounts (e-mail -> public key PEM) and the access tokens issued to them
        self.public_keys: dict[str, bytes] = {}
        self.issued: set[str] = set()

    def route_table(self) -> list[Route]:
        return [("POST", r"/v1beta/properties/(\d+):runReport", "runReport", self._run_report),
                ("POST", r"/token", "token", self._token)]

    def add_service_account(self, email: str, public_pem: bytes) -> None:
        """Accept JWT bearer grants of this service account, signed by the key's private half."""
        self.public_keys[email] = public_pem

    def _token(self, request: Request) -> Any:
        """Google's OAuth token endpoint for a service account (JWT bearer grant, RS256)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        form = {key: values[0] for key, values in request.form().items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            raise ApiError(400, {"error": "unsupported_grant_type"})
        try:
            header_b64, claims_b64, signature_b64 = form.get("assertion", "").split(".")
            claims = json.loads(_b64decode(claims_b64))
        except ValueError:
            raise ApiError(400, {"error": "invalid_grant", "error_description": "Invalid JWT"}) from None
        key = self.public_keys.get(claims.get("iss", ""))
        if key is None or SCOPE not in str(claims.get("scope", "")):
            raise ApiError(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        try:
            serialization.load_pem_public_key(key).verify(  # type: ignore[union-attr,call-arg]
                _b64decode(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ApiError(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}) from None
        token = "ya29.sa-" + secrets.token_urlsafe(16)
        self.issued.add(token)
        return {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}}

    def rate_limit_error(self) -> ApiError:
        return ApiError(429, self.error_body(429, "Exhausted property tokens per hour. Wait until the next hour."))

    def authorize(self, request: Request, endpoint: str) -> None:
        if endpoint == "token":
            return
        given = request.headers.get("Authorization", "")
        if given != f"Bearer {self.token}" and given.removeprefix("Bearer ") not in self.issued:
            raise ApiError(401, self.error_body(401, "Request had invalid authentication credentials."))

    def session(self, client_id: str, date_hour: str, sessions: int = 1, **dimensions: str) -> None:
        row = {"customEvent:client_id": client_id, "dateHour": date_hour, "sessions": str(sessions)}
        row.update(dimensions)
        self.sessions.append(row)

    def today(self) -> dt.date:
        """The property's current day: GA4 counts days in the property's time zone."""
        return dt.datetime.now(ZoneInfo(self.time_zone)).date()

    def _day(self, text: Any) -> str:
        """A date of a date range as ``YYYYMMDD``: ``YYYY-MM-DD``, ``today``, ``yesterday`` or
        ``NdaysAgo``, the relative ones in the property's time zone (as the API resolves them)."""
        text = str(text or "")
        relative = re.fullmatch(r"(\d+)daysAgo", text)
        if text in ("today", "yesterday") or relative:
            ago = int(relative.group(1)) if relative else (text == "yesterday")
            return (self.today() - dt.timedelta(days=ago)).strftime("%Y%m%d")
        if re.fullmatch(r"\d{4}-\d\d-\d\d", text):
            try:
                return dt.date.fromisoformat(text).strftime("%Y%m%d")
            except ValueError:
                pass
        raise ApiError(400, self.error_body(400, f"Invalid date {text!r}: expected YYYY-MM-DD, today, "
                                                 "yesterday or NdaysAgo."))

    def _run_report(self, request: Request, property_id: str) -> Any:
        if property_id != self.property_id:
            raise ApiError(403, self.error_body(403, "User does not have sufficient permissions for this property."))
        body = request.json() or {}
        dimensions = [d["name"] for d in body.get("dimensions") or []]
        metrics = [m["name"] for m in body.get("metrics") or []]
        if len(dimensions) > 9 or len(metrics) > 10:
            raise ApiError(400, self.error_body(400, "Requests are limited to 9 dimensions and 10 metrics."))
        for name in dimensions:
            if name not in STANDARD and name not in self.custom:
                raise ApiError(400, self.error_body(400, f"Field {name} is not a valid dimension."))
        for name in metrics:
            if name not in METRICS:
                raise ApiError(400, self.error_body(400, f"Field {name} is not a valid metric."))
        ranges = body.get("dateRanges") or []
        if len(ranges) != 1:
            raise ApiError(400, self.error_body(400, "One date range expected by this fake."))
        start, end = (self._day(ranges[0].get(side)) for side in ("startDate", "endDate"))
        if start > end:
            raise ApiError(400, self.error_body(400, f"Invalid date range: startDate {ranges[0]['startDate']} "
                                                     f"is after endDate {ranges[0]['endDate']}."))
        try:
            limit, offset = int(body.get("limit", 10000)), int(body.get("offset", 0))
        except ValueError:
            raise ApiError(400, self.error_body(400, "limit and offset must be int64")) from None
        if not 0 < limit <= 250000 or offset < 0:
            raise ApiError(400, self.error_body(400, "limit must be in 1..250000 and offset not negative"))
        # aggregate sessions by the requested dimensions
        totals: dict[tuple[str, ...], int] = {}
        for row in self.sessions:
            if not start <= row["dateHour"][:8] <= end:
                continue
            key = tuple(row.get(name) or "(not set)" for name in dimensions)
            totals[key] = totals.get(key, 0) + int(row["sessions"])
        order = [o["dimension"]["dimensionName"] for o in body.get("orderBys") or [] if "dimension" in o]
        keys = sorted(totals, key=lambda k: tuple(k[dimensions.index(name)] for name in order) + k)
        page = keys[offset : offset + limit]
        cost = max(1, len(page) // 100)
        if self.tokens is not None:
            if self.tokens < cost:
                raise self.rate_limit_error()
            self.tokens -= cost
        answer: dict[str, Any] = {
            "dimensionHeaders": [{"name": name} for name in dimensions],
            "metricHeaders": [{"name": name, "type": "TYPE_INTEGER"} for name in metrics],
            "rowCount": len(keys),
            "metadata": {"currencyCode": "RUB", **({"timeZone": self.time_zone} if self.tells_time_zone else {})},
            "kind": "analyticsData#runReport",
        }
        if page:
            answer["rows"] = [{"dimensionValues": [{"value": v} for v in key],
                               "metricValues": [{"value": str(totals[key])} for _ in metrics]} for key in page]
        if body.get("returnPropertyQuota"):
            answer["propertyQuota"] = {"tokensPerHour": {"consumed": cost, "remaining": self.tokens or 40000}}
        return answer


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
