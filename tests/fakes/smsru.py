"""A local SMS.ru API server: the stop list and the balance.

Every method takes ``api_id`` in the query string (or the form body) and ``json=1``;
every answer is HTTP 200 with ``{"status": "OK"|"ERROR", "status_code", ...}``:

* ``/stoplist/get`` -> ``{"stoplist": {"79251234567": "note", ...}}``;
* ``/stoplist/add`` (``stoplist_phone``, ``stoplist_text``) and ``/stoplist/del``
  (``stoplist_phone``); a bad number is ``status_code`` 202;
* ``/my/balance`` -> ``{"balance"}``;
* a wrong ``api_id`` is ``status_code`` 200; too many requests is ``status_code`` 231.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.http import ApiError, FakeApi, Request


class FakeSmsRu(FakeApi):
    def __init__(self, api_id: str = "A1B2C3D4-E5F6-0718-293A-4B5C6D7E8F90", **kwargs: Any):
        self.api_id = api_id
        self.stoplist: dict[str, str] = {}
        self.keys_in_query = 0
        super().__init__(**kwargs)

    def route_table(self) -> list[Any]:
        return [
            ("GET", r"/stoplist/get", "stoplist.get", self._get),
            ("POST", r"/stoplist/get", "stoplist.get", self._get),
            ("POST", r"/stoplist/add", "stoplist.add", self._add),
            ("POST", r"/stoplist/del", "stoplist.del", self._del),
            ("POST", r"/my/balance", "balance", lambda request: {"status": "OK", "status_code": 100,
                                                                "balance": 41.5}),
        ]

    def _args(self, request: Request) -> dict[str, str]:
        args = {k: v[0] for k, v in request.query.items()}
        if request.raw:
            args.update({k: v[0] for k, v in request.form().items()})
        return args

    def authorize(self, request: Request, endpoint: str) -> None:
        if "api_id" in request.query:
            self.keys_in_query += 1
        if self._args(request).get("api_id") != self.api_id:
            raise ApiError(200, {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"})

    def error_body(self, status: int, message: str) -> Any:
        return {"status": "ERROR", "status_code": 500, "status_text": message}

    def rate_limit_error(self) -> ApiError:
        return ApiError(200, {"status": "ERROR", "status_code": 231,
                              "status_text": "Превышен лимит запросов, повторите позже"})

    def _get(self, request: Request) -> Any:
        return {"status": "OK", "status_code": 100, "stoplist": dict(self.stoplist)}

    def _phone(self, request: Request) -> str:
        phone = re.sub(r"\D", "", self._args(request).get("stoplist_phone", ""))
        if not 10 <= len(phone) <= 15:
            raise ApiError(200, {"status": "ERROR", "status_code": 202, "status_text": "Неправильно указан номер"})
        return phone

    def _add(self, request: Request) -> Any:
        self.stoplist[self._phone(request)] = self._args(request).get("stoplist_text", "")
        return {"status": "OK", "status_code": 100}

    def _del(self, request: Request) -> Any:
        self.stoplist.pop(self._phone(request), None)
        return {"status": "OK", "status_code": 100}
