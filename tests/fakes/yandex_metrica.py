"""A fake Yandex Metrica Logs API (visits): a real local HTTP server.

Routes under ``/management/v1/counter/{counter}``: ``GET logrequests/evaluate``,
``GET logrequests`` (list), ``POST logrequests`` (create), ``GET logrequest/{id}``,
``GET logrequest/{id}/part/{n}/download`` (TSV with a header line), ``POST
logrequest/{id}/clean`` (processed requests only) and ``POST logrequest/{id}/cancel``
(requests not processed yet). Auth: ``Authorization: OAuth <token>``. A request is
``created`` for ``polls`` status checks, then ``processed`` with its visits cut into
parts of ``part_rows`` rows; ``max_days`` bounds the days ``evaluate`` allows at once.
"Today" is the counter's, in its time zone (``timezone``, Moscow by default), as in
Metrica: from 21:00 UTC Moscow is a day ahead of the host.
More than 3 requests in flight get the quota answer (``quota_status``: 420 or 429),
as Metrica does; faults are injected per endpoint like every fake here.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

from tests.fakes.http import ApiError, FakeApi, Request, Route

PREFIX = r"/management/v1/counter/(\d+)"


class FakeMetrica(FakeApi):
    def __init__(self, token: str, counter_id: int, *, part_rows: int = 1000, polls: int = 1, max_days: int = 365,
                 quota_status: int = 420, timezone: str = "Europe/Moscow"):
        super().__init__(max_concurrent=3)
        self.timezone = ZoneInfo(timezone)
        self.token = token
        self.counter_id = counter_id
        self.part_rows = part_rows
        self.polls = polls
        self.max_days = max_days
        self.quota_status = quota_status
        #: visits the counter holds: Logs API field name -> value (as text)
        self.visits: list[dict[str, str]] = []
        self.log_requests: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1000)

    def route_table(self) -> list[Route]:
        return [
            ("GET", PREFIX + r"/logrequests/evaluate", "evaluate", self._evaluate),
            ("GET", PREFIX + r"/logrequests", "list", self._list),
            ("POST", PREFIX + r"/logrequests", "create", self._create),
            ("GET", PREFIX + r"/logrequest/(\d+)", "status", self._status),
            ("GET", PREFIX + r"/logrequest/(\d+)/part/(\d+)/download", "download", self._download),
            ("POST", PREFIX + r"/logrequest/(\d+)/clean", "clean", self._clean),
            ("POST", PREFIX + r"/logrequest/(\d+)/cancel", "cancel", self._cancel),
        ]

    def error_body(self, status: int, message: str) -> Any:
        kind = {400: "invalid_parameter", 403: "access_denied", 404: "not_found", 420: "quota_requests_by_uid",
                429: "quota_requests_by_uid", 503: "backend_error"}.get(status, "backend_error")
        return {"errors": [{"error_type": kind, "message": message}], "code": status, "message": message}

    def rate_limit_error(self) -> ApiError:
        return ApiError(self.quota_status, self.error_body(
            self.quota_status, "Quota exceeded: no more than 3 parallel requests per user"), {"Retry-After": "0"})

    def authorize(self, request: Request, endpoint: str) -> None:
        if request.headers.get("Authorization") != f"OAuth {self.token}":
            raise ApiError(403, self.error_body(403, "Invalid oauth_token"))

    # -- helpers ---------------------------------------------------------------
    def visit(self, visit_id: int, client_id: str, at: str, **fields: str) -> None:
        """Add a visit; ``fields`` are Logs API names without ``ym:s:`` (UTMSource=...)."""
        row = {"ym:s:visitID": str(visit_id), "ym:s:clientID": client_id, "ym:s:dateTime": at}
        row.update({f"ym:s:{name}": value for name, value in fields.items()})
        self.visits.append(row)

    def statuses(self) -> list[str]:
        return [request["status"] for _, request in sorted(self.log_requests.items())]

    def _counter(self, counter: str) -> None:
        if int(counter) != self.counter_id:
            raise ApiError(403, self.error_body(403, f"Access denied to counter {counter}"))

    def _dates(self, request: Request) -> tuple[dt.date, dt.date, list[str]]:
        try:
            date1 = dt.date.fromisoformat(request.arg("date1") or "")
            date2 = dt.date.fromisoformat(request.arg("date2") or "")
        except ValueError:
            raise ApiError(400, self.error_body(400, "date1 and date2 must be YYYY-MM-DD")) from None
        if date2 >= dt.datetime.now(self.timezone).date() or date1 > date2:
            raise ApiError(400, self.error_body(400, "date2 must be before today and not before date1"))
        if request.arg("source") != "visits":
            raise ApiError(400, self.error_body(400, "source must be visits or hits"))
        fields = (request.arg("fields") or "").split(",")
        if not all(name.startswith("ym:s:") for name in fields) or "ym:s:visitID" not in fields:
            raise ApiError(400, self.error_body(400, f"bad fields {request.arg('fields')!r}"))
        return date1, date2, fields

    def _request(self, counter: str, request_id: str) -> dict[str, Any]:
        self._counter(counter)
        found = self.log_requests.get(int(request_id))
        if found is None:
            raise ApiError(404, self.error_body(404, f"Log request {request_id} not found"))
        return found

    @staticmethod
    def _public(log_request: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in log_request.items() if not key.startswith("_")}

    # -- endpoints --------------------------------------------------------------
    def _evaluate(self, request: Request, counter: str) -> Any:
        self._counter(counter)
        date1, date2, _ = self._dates(request)
        days = (date2 - date1).days + 1
        return {"log_request_evaluation": {"possible": days <= self.max_days, "max_possible_day_quantity": self.max_days}}

    def _list(self, request: Request, counter: str) -> Any:
        self._counter(counter)
        return {"requests": [self._public(r) for r in self.log_requests.values()]}

    def _create(self, request: Request, counter: str) -> Any:
        self._counter(counter)
        date1, date2, fields = self._dates(request)
        if (date2 - date1).days + 1 > self.max_days:
            raise ApiError(400, self.error_body(400, "Requested period is too long; evaluate first"))
        request_id = next(self._ids)
        log_request = {
            "request_id": request_id, "counter_id": self.counter_id, "source": "visits",
            "date1": date1.isoformat(), "date2": date2.isoformat(), "fields": fields, "status": "created",
            "attribution": "LASTSIGN", "_polls": self.polls,
        }
        self.log_requests[request_id] = log_request
        return {"log_request": self._public(log_request)}

    def _status(self, request: Request, counter: str, request_id: str) -> Any:
        log_request = self._request(counter, request_id)
        if log_request["status"] == "created":
            if log_request["_polls"] > 0:
                log_request["_polls"] -= 1
            else:
                self._process(log_request)
        return {"log_request": self._public(log_request)}

    def _process(self, log_request: dict[str, Any]) -> None:
        date1, date2 = dt.date.fromisoformat(log_request["date1"]), dt.date.fromisoformat(log_request["date2"])
        fields = log_request["fields"]
        rows = [v for v in self.visits if date1 <= dt.date.fromisoformat(v["ym:s:dateTime"][:10]) <= date2]
        parts = [rows[i : i + self.part_rows] for i in range(0, len(rows), self.part_rows)] or [[]]
        log_request["_parts"] = [
            ("\t".join(fields) + "\n" + "".join("\t".join(_escape(row.get(name, "")) for name in fields) + "\n"
                                                 for row in part)).encode()
            for part in parts
        ]
        log_request["parts"] = [{"part_number": n, "size": len(data)} for n, data in enumerate(log_request["_parts"])]
        log_request["size"] = sum(part["size"] for part in log_request["parts"])
        log_request["status"] = "processed"

    def _download(self, request: Request, counter: str, request_id: str, number: str) -> Any:
        log_request = self._request(counter, request_id)
        if log_request["status"] != "processed":
            raise ApiError(400, self.error_body(400, f"Log request {request_id} is {log_request['status']}"))
        parts = log_request["_parts"]
        if int(number) >= len(parts):
            raise ApiError(404, self.error_body(404, f"Part {number} not found"))
        return 200, parts[int(number)], "text/tab-separated-values"

    def _clean(self, request: Request, counter: str, request_id: str) -> Any:
        log_request = self._request(counter, request_id)
        if log_request["status"] != "processed":
            raise ApiError(400, self.error_body(400, f"Only processed requests can be cleaned, not "
                                                     f"{log_request['status']}"))
        log_request["status"] = "cleaned_by_user"
        log_request.pop("_parts", None)
        return {"log_request": self._public(log_request)}

    def _cancel(self, request: Request, counter: str, request_id: str) -> Any:
        log_request = self._request(counter, request_id)
        if log_request["status"] not in ("created", "awaiting_retry"):
            raise ApiError(400, self.error_body(400, f"Only pending requests can be canceled, not "
                                                     f"{log_request['status']}"))
        log_request["status"] = "canceled"
        return {"log_request": self._public(log_request)}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
