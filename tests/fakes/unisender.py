"""A local Unisender (classic API) server.

Methods are ``/{lang}/api/{method}`` with ``format=json`` and ``api_key`` in the query
string or the form body, as Unisender accepts both. Every answer is HTTP 200: success
is ``{"result": ...}``, failure ``{"error": "...", "code": "invalid_api_key|invalid_arg|
too_many_requests|..."}``.

* ``importContacts``: ``field_names[i]``, ``data[row][i]`` (at most 500 rows); system
  columns ``email``, ``email_status`` (new, active, unsubscribed, ...), ``email_list_ids``,
  ``delete``, ``tags`` (a comma list, added to the contact's, or replacing them with
  ``overwrite_tags=1``); other columns are user fields. An existing unsubscribed address stays
  unsubscribed whatever the import says. Answers ``{"result": {"total", "inserted",
  "updated", "deleted", "new_emails", "invalid", "log": [{"index", "code", "message"}]}}``;
* ``exportContacts``: ``list_id``, ``field_names[]``, ``offset``, ``limit`` (at most 5000) ->
  ``{"result": {"field_names": [...], "data": [[...]]}}``;
* more than ``requests_per_second`` requests a second get ``too_many_requests``.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.http import ApiError, FakeApi, Request

IMPORT_LIMIT = 500
EXPORT_LIMIT = 5000
SYSTEM = ("email", "email_status", "email_list_ids", "delete", "tags")  # phone is kept like a field


class FakeUnisender(FakeApi):
    def __init__(self, api_key: str = "6a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", list_id: int = 7,
                 **kwargs: Any):
        self.api_key = api_key
        self.list_id = list_id
        #: email -> {"email_status", "lists": set, "fields": {...}}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.keys_in_query = 0
        super().__init__(**kwargs)

    def route_table(self) -> list[Any]:
        return [
            ("POST", r"/(?:ru|en|ua)/api/importContacts", "importContacts", self._import),
            ("POST", r"/(?:ru|en|ua)/api/exportContacts", "exportContacts", self._export),
            ("GET", r"/(?:ru|en|ua)/api/exportContacts", "exportContacts", self._export),
        ]

    def _args(self, request: Request) -> dict[str, list[str]]:
        args = dict(request.query)
        if request.method == "POST" and request.raw:
            for key, values in request.form().items():
                args.setdefault(key, []).extend(values)
        return args

    def authorize(self, request: Request, endpoint: str) -> None:
        if "api_key" in request.query:
            self.keys_in_query += 1
        if self._args(request).get("api_key", [""])[0] != self.api_key:
            raise ApiError(200, {"error": "AK100310-02 invalid api key", "code": "invalid_api_key"})

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message, "code": "unspecified"}

    def rate_limit_error(self) -> ApiError:
        return ApiError(200, {"error": "Too many requests, please slow down", "code": "too_many_requests"})

    # -- protocol ------------------------------------------------------------

    @staticmethod
    def _indexed(args: dict[str, list[str]], name: str) -> dict[int, str]:
        found: dict[int, str] = {}
        for key, values in args.items():
            match = re.fullmatch(re.escape(name) + r"\[(\d+)\]", key)
            if match:
                found[int(match.group(1))] = values[0]
        return found

    def _import(self, request: Request) -> Any:
        args = self._args(request)
        names = self._indexed(args, "field_names")
        columns = [names[i] for i in sorted(names)]
        if "email" not in columns:
            return {"error": "Required field email or phone is missing", "code": "invalid_arg"}
        rows: dict[int, dict[int, str]] = {}
        for key, values in args.items():
            match = re.fullmatch(r"data\[(\d+)\]\[(\d+)\]", key)
            if match:
                rows.setdefault(int(match.group(1)), {})[int(match.group(2))] = values[0]
        if len(rows) > IMPORT_LIMIT:
            return {"error": f"Too many rows: at most {IMPORT_LIMIT}", "code": "invalid_arg"}
        result = {"total": len(rows), "inserted": 0, "updated": 0, "deleted": 0, "new_emails": 0, "invalid": 0,
                  "log": []}
        for index in sorted(rows):
            row = {columns[i]: value for i, value in rows[index].items() if i < len(columns)}
            email = row.get("email", "").strip().lower()
            if not self.valid_email(email):
                result["invalid"] += 1
                result["log"].append({"index": str(index), "code": "invalid_email",
                                      "message": f"Invalid email address: {row.get('email', '')}"})
                continue
            if row.get("delete") == "1":
                if self.contacts.pop(email, None) is not None:
                    result["deleted"] += 1
                continue
            contact = self.contacts.get(email)
            if contact is None:
                contact = self.contacts[email] = {"email_status": "new", "lists": set(), "fields": {}}
                result["inserted"] += 1
                result["new_emails"] += 1
            else:
                result["updated"] += 1
            status = row.get("email_status")
            if status and contact["email_status"] not in ("unsubscribed", "blocked") or status == "unsubscribed":
                contact["email_status"] = status
            if row.get("email_list_ids"):
                contact["lists"] |= {int(x) for x in row["email_list_ids"].split(",") if x.strip()}
            contact["fields"].update({k: v for k, v in row.items() if k not in SYSTEM})
            if "tags" in row:
                sent = [t.strip() for t in row["tags"].split(",") if t.strip()]
                kept = [] if args.get("overwrite_tags", ["0"])[0] == "1" else contact.get("tags", [])
                contact["tags"] = kept + [t for t in sent if t not in kept]
        return {"result": result}

    def _export(self, request: Request) -> Any:
        args = self._args(request)
        list_id = int(args.get("list_id", ["0"])[0] or 0)
        if list_id and list_id != self.list_id:
            return {"error": f"List {list_id} not found", "code": "invalid_arg"}
        limit = int(args.get("limit", ["1000"])[0])
        offset = int(args.get("offset", ["0"])[0])
        if limit > EXPORT_LIMIT:
            return {"error": f"limit must not exceed {EXPORT_LIMIT}", "code": "invalid_arg"}
        names = [v for k, values in args.items() if k.startswith("field_names") for v in values]
        contacts = [(email, c) for email, c in self.contacts.items() if not list_id or list_id in c["lists"]]
        data = []
        for email, contact in contacts[offset : offset + limit]:
            row = []
            for name in names:
                if name == "email":
                    row.append(email)
                elif name == "email_status":
                    row.append(contact["email_status"])
                elif name == "email_list_ids":
                    row.append(",".join(str(x) for x in sorted(contact["lists"])))
                else:
                    row.append(contact["fields"].get(name))
            data.append(row)
        return {"result": {"field_names": names, "data": data}}

    # -- a person in Unisender -------------------------------------------------

    def add(self, email: str, status: str = "active", **fields: Any) -> None:
        with self.lock:
            self.contacts[email.lower()] = {"email_status": status, "lists": {self.list_id}, "fields": dict(fields)}

    def person_edits(self, email: str, status: str | None = None, **fields: Any) -> None:
        with self.lock:
            contact = self.contacts[email.lower()]
            contact["fields"].update(fields)
            if status:
                contact["email_status"] = status
