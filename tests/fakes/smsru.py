"""A local SMS.ru API server: sending, message statuses, the stop list and the balance.

Every method takes ``api_id`` in the query string (or the form body) and ``json=1``;
every answer is HTTP 200 with ``{"status": "OK"|"ERROR", "status_code", ...}``:

* ``/stoplist/get`` -> ``{"stoplist": {"79251234567": "note", ...}}``;
* ``/stoplist/add`` (``stoplist_phone``, ``stoplist_text``) and ``/stoplist/del``
  (``stoplist_phone``); a bad number is ``status_code`` 202;
* ``/sms/send`` (``to``: up to 100 numbers, comma-separated; ``msg``) ->
  ``{"sms": {"79251234567": {"status": "OK", "status_code": 100, "sms_id"}, "7…":
  {"status": "ERROR", "status_code": 207|209, "status_text"}}, "balance"}``: a number on
  the stop list is refused with 209; each message sent starts in status 100 (queued);
* ``/sms/status`` (``sms_id``: up to 100 ids, comma-separated) -> ``{"sms": {"<id>":
  {"status": "OK", "status_code", "status_text", "cost"}}}``; an unknown id is
  ``{"status": "ERROR", "status_code": -1, "status_text": "Сообщение не найдено"}``.
  Codes: 100 queued, 101 passed to the operator, 102 on its way, 103 delivered; 104
  expired, 105 deleted by the operator, 106 phone failure, 107 unknown reason, 108
  rejected, 150 no route to the number (final failures);
* ``/my/balance`` -> ``{"balance"}``;
* a wrong ``api_id`` is ``status_code`` 200; too many requests is ``status_code`` 231;
  ``unavailable`` answers the next N calls with ``status_code`` 220 (the service is
  temporarily unavailable); a fault of status 200 is ``status_code`` 500 (server error).

``callback_body`` builds what SMS.ru POSTs to a registered callback URL when statuses
change: a form with ``data[]`` entries ``sms_status\n<sms_id>\n<code>\n<unix time>``
(up to 100 an entry list); the receiver must answer with the body ``100``.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlencode

from tests.fakes.http import ApiError, FakeApi, Request


class FakeSmsRu(FakeApi):
    def __init__(self, api_id: str = "A1B2C3D4-E5F6-0718-293A-4B5C6D7E8F90", **kwargs: Any):
        self.api_id = api_id
        self.stoplist: dict[str, str] = {}
        self.keys_in_query = 0
        #: messages sent: sms_id -> {"phone", "text", "status_code", "cost"}
        self.messages: dict[str, dict[str, Any]] = {}
        self._sent = 0
        #: calls still to be answered with 220 "temporarily unavailable"
        self.unavailable = 0
        super().__init__(**kwargs)

    def route_table(self) -> list[Any]:
        return [
            ("GET", r"/stoplist/get", "stoplist.get", self._get),
            ("POST", r"/stoplist/get", "stoplist.get", self._get),
            ("POST", r"/stoplist/add", "stoplist.add", self._add),
            ("POST", r"/stoplist/del", "stoplist.del", self._del),
            ("GET", r"/sms/send", "sms.send", self._send),
            ("POST", r"/sms/send", "sms.send", self._send),
            ("GET", r"/sms/status", "sms.status", self._status),
            ("POST", r"/sms/status", "sms.status", self._status),
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
        with self.lock:
            if self.unavailable > 0:
                self.unavailable -= 1
                raise ApiError(200, {"status": "ERROR", "status_code": 220,
                                     "status_text": "Сервис временно недоступен, попробуйте чуть позже"})

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

    def _send(self, request: Request) -> Any:
        args = self._args(request)
        numbers = [re.sub(r"\D", "", n) for n in args.get("to", "").split(",") if n.strip()]
        if not args.get("msg"):
            return {"status": "ERROR", "status_code": 203, "status_text": "Нет текста сообщения"}
        if not numbers or len(numbers) > 100:
            return {"status": "ERROR", "status_code": 207, "status_text": "На этот номер (или один из номеров) "
                    "нельзя отправлять сообщения, либо указано более 100 номеров в списке получателей"}
        answer: dict[str, Any] = {}
        for number in numbers:
            if not 10 <= len(number) <= 15:
                answer[number] = {"status": "ERROR", "status_code": 202, "status_text": "Неправильно указан номер"}
            elif number in self.stoplist:
                answer[number] = {"status": "ERROR", "status_code": 209,
                                  "status_text": "Вы добавили этот номер (или один из номеров) в стоп-лист"}
            else:
                self._sent += 1
                sms_id = f"2026{self._sent:04d}-{1000000 + self._sent}"
                self.messages[sms_id] = {"phone": number, "text": args["msg"], "status_code": 100, "cost": 3.52}
                answer[number] = {"status": "OK", "status_code": 100, "sms_id": sms_id}
        return {"status": "OK", "status_code": 100, "sms": answer, "balance": 41.5}

    def _status(self, request: Request) -> Any:
        ids = [i.strip() for i in self._args(request).get("sms_id", "").split(",") if i.strip()]
        if not ids or len(ids) > 100:
            return {"status": "ERROR", "status_code": 202, "status_text": "Укажите от 1 до 100 sms_id"}
        answer: dict[str, Any] = {}
        for sms_id in ids:
            message = self.messages.get(sms_id)
            if message is None:
                answer[sms_id] = {"status": "ERROR", "status_code": -1, "status_text": "Сообщение не найдено"}
            else:
                code = message["status_code"]
                answer[sms_id] = {"status": "OK", "status_code": code, "status_text": STATUS_TEXT.get(code, ""),
                                  "cost": message["cost"]}
        return {"status": "OK", "status_code": 100, "sms": answer, "balance": 41.5}

    # -- what happens to a message ------------------------------------------------

    def send(self, *numbers: str, text: str = "Скидка 10% до пятницы") -> dict[str, Any]:
        """A sending system's ``/sms/send``: the answer it gets (and may pass on to hub)."""
        with self.lock:
            return self._send(Request("POST", "/sms/send", {}, {}, urlencode(
                {"api_id": self.api_id, "to": ",".join(numbers), "msg": text, "json": 1}).encode()))

    def progress(self, sms_id: str, code: int) -> None:
        """The operator reports a new status of a message."""
        with self.lock:
            self.messages[sms_id]["status_code"] = code


#: Status texts as SMS.ru words them.
STATUS_TEXT = {100: "Сообщение находится в нашей очереди", 101: "Сообщение передается оператору",
               102: "Сообщение отправлено (в пути)", 103: "Сообщение доставлено",
               104: "Не может быть доставлено: время жизни истекло",
               105: "Не может быть доставлено: удалено оператором", 106: "Не может быть доставлено: сбой в телефоне",
               107: "Не может быть доставлено: неизвестная причина", 108: "Не может быть доставлено: отклонено",
               150: "Не может быть доставлено: не найден маршрут на данный номер"}


def callback_body(statuses: list[tuple[str, int, int | None]]) -> bytes:
    """The form SMS.ru posts to a callback URL: ``data[]=sms_status\n<id>\n<code>\n<time>`` each."""
    return urlencode([("data[]", f"sms_status\n{sms_id}\n{code}\n{at if at is not None else int(time.time())}")
                      for sms_id, code, at in statuses]).encode()
