"""hub serve: real HTTP requests to a running receiver, on SQLite and PostgreSQL.

Tilda-style form posts (with its test probe and API key), signed JSON, URL tokens,
limits and wrong content types; every accepted request is in the inbox before its 200
and becomes a contact and a ``form`` event through the sync.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from hub_plugins.webhook import ga_client_id, sign
from sqlalchemy import func, select

from hub.store.schema import contacts, events, inbox, source_records

TILDA_TOKEN = "tilda-url-token-7f3a9c"
TILDA_KEY = "tilda-api-key-51d0e2"
SITE_SECRET = "site-hmac-secret-a8b4c6"
FORM_TOKEN = "form-url-token-93be11"
SECRETS = (TILDA_TOKEN, TILDA_KEY, SITE_SECRET, FORM_TOKEN)

CONFIG = f"""\
connectors:
  tilda:
    plugin: webhook
    format: tilda
    api_key: {TILDA_KEY}
    token: $HUB_TEST_TILDA_TOKEN
  site:
    plugin: webhook
    format: json
    secret: $HUB_TEST_SITE_SECRET
  callback:
    plugin: webhook
    format: form
    token: {FORM_TOKEN}
    max_body: 2000
"""

MAPPING = """\
fields:
  full_name: {from: [Name, name], transforms: [split_name]}
  phone: {from: [Phone, phone], transforms: [phone]}
  email: {from: [Email, email], transforms: [email]}
"""


class Served:
    def __init__(self, root: Path, store_url: str, *, sync: bool = True):
        from hub.config import load_config
        from hub.plugins import connector_classes
        from hub.serve import Server
        from hub.store import open_store

        self.root = root
        (root / "mappings").mkdir(exist_ok=True)
        for name in ("tilda", "site", "callback"):
            (root / "mappings" / f"{name}.yaml").write_text(MAPPING, encoding="utf-8")
        (root / "hub.yaml").write_text(f"store: {store_url}\n{CONFIG}", encoding="utf-8")
        self.config = load_config(root / "hub.yaml", connector_classes())
        self.store = open_store(self.config.store_url)
        self.server = Server(self.config, self.store, "127.0.0.1", 0, threads=8, sync_delay=0.05, sync=sync).start()
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.http = requests.Session()

    def post(self, path: str, **kwargs) -> requests.Response:  # type: ignore[no-untyped-def]
        return self.http.post(self.url + path, timeout=30, **kwargs)

    def signed(self, body: dict | bytes, *, stamp: int | None = None, secret: str = SITE_SECRET,
               headers: dict[str, str] | None = None) -> requests.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        stamp_text = str(int(time.time()) if stamp is None else stamp)
        return self.post("/hooks/site", data=data, headers={
            "Content-Type": "application/json", "X-Hub-Timestamp": stamp_text,
            "X-Hub-Signature": sign(secret, stamp_text, data), **(headers or {})})

    def inbox(self, connector: str | None = None) -> list:
        query = select(inbox).order_by(inbox.c.id)
        if connector:
            query = query.where(inbox.c.connector == connector)
        with self.store.connect() as c:
            return c.execute(query).all()

    def synced(self) -> None:
        assert self.server.worker is not None
        assert self.server.worker.wait_idle(60), "the sync worker did not finish"

    def close(self) -> None:
        self.http.close()
        self.server.stop()
        self.store.dispose()


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TEST_TILDA_TOKEN", TILDA_TOKEN)
    monkeypatch.setenv("HUB_TEST_SITE_SECRET", SITE_SECRET)


@pytest.fixture
def served(tmp_path: Path, store_url: str, secrets_env: None) -> Iterator[Served]:
    server = Served(tmp_path, store_url)
    yield server
    server.close()


@pytest.fixture
def served_sqlite(tmp_path: Path, secrets_env: None) -> Iterator[Served]:
    server = Served(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}")
    yield server
    server.close()


TILDA_FORM = {
    "Name": "Иван Петров",
    "Phone": "8 (916) 123-45-67",
    "Email": "Ivan.Petrov@Example.ru",
    "tranid": "4242424:1717171717",
    "formid": "form123456789",
    "formname": "Заявка на звонок",
    "utm_source": "yandex",
    "utm_medium": "cpc",
    "utm_campaign": "spring_sale",
    "referer": "https://ya.ru/",
    "COOKIES": "_ym_uid=1712345678901234567; _ga=GA1.2.987654321.1712345678; session=abc",
    "api_key": TILDA_KEY,
}


# ------------------------------------------------------------------------ health, routes


def test_health_and_routes(served: Served) -> None:
    health = served.http.get(served.url + "/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "hooks": ["callback", "site", "tilda"]}
    assert served.post("/hooks/nope", data={"a": "b"}).status_code == 404
    assert served.http.get(served.url + "/hooks/tilda", timeout=10).status_code == 405
    assert served.http.get(served.url + "/", timeout=10).status_code == 404


# ------------------------------------------------------------------------ Tilda


def test_tilda_probe_is_answered_and_not_stored(served: Served) -> None:
    answer = served.post("/hooks/tilda", data={"test": "test", "api_key": TILDA_KEY})
    assert answer.status_code == 200 and answer.json()["test"] is True
    assert served.post(f"/hooks/tilda?token={TILDA_TOKEN}", data={"test": "test"}).status_code == 200
    assert served.inbox() == []


def test_tilda_submission_becomes_a_contact_and_a_form_event(served: Served) -> None:
    answer = served.post("/hooks/tilda", data=TILDA_FORM)
    assert answer.status_code == 200 and answer.json() == {"ok": True, "duplicate": False}
    # Tilda retries a delivery it thinks failed: the same tranid is recognised
    again = served.post(f"/hooks/tilda?token={TILDA_TOKEN}", data={**TILDA_FORM, "api_key": "ignored"})
    assert again.status_code == 200 and again.json()["duplicate"] is True
    rows = served.inbox()
    assert len(rows) == 1 and rows[0].delivery_id == "4242424:1717171717"
    fields = json.loads(rows[0].fields)
    assert "api_key" not in fields and "COOKIES" not in fields
    assert fields["_ym_uid"] == "1712345678901234567"
    served.synced()
    with served.store.connect() as c:
        contact = c.execute(select(contacts)).one()
        event = c.execute(select(events)).one()
    assert (contact.email, contact.phone, contact.first_name) == ("ivan.petrov@example.ru", "+79161234567", "Иван")
    assert (event.type, event.connector, event.contact_id) == ("form", "tilda", contact.id)
    payload = json.loads(event.payload)
    assert payload == {
        "form": "Заявка на звонок", "utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "spring_sale",
        "referrer": "https://ya.ru/", "ym_client_id": "1712345678901234567", "ga_client_id": "987654321.1712345678",
        "ip": "127.0.0.1",
    }


def test_a_blank_or_unprintable_delivery_id_falls_back_to_the_body(served: Served) -> None:
    people = [{"Name": "Анна", "Phone": "+79160000001", "tranid": "  "},
              {"Name": "Борис", "Phone": "+79160000002", "tranid": " "},
              {"Name": "Вера", "Phone": "+79160000003", "tranid": "4242\x00:17"},
              {"Name": "Глеб", "Phone": "+79160000004", "tranid": "4242\t17\n"}]
    for form in people:
        answer = served.post(f"/hooks/tilda?token={TILDA_TOKEN}", data=form)
        assert answer.status_code == 200 and answer.json()["duplicate"] is False, (form, answer.text)
        # the sender's retry of it is still recognised, by its body
        assert served.post(f"/hooks/tilda?token={TILDA_TOKEN}", data=form).json()["duplicate"] is True
    delivery_ids = [row.delivery_id for row in served.inbox()]
    assert len(delivery_ids) == 4 and all(i.startswith("sha256:") for i in delivery_ids), delivery_ids
    served.synced()
    with served.store.connect() as c:
        phones = set(c.execute(select(contacts.c.phone)).scalars())
    assert phones == {f"+7916000000{i}" for i in range(1, 5)}


def test_tilda_api_key_and_token_are_checked(served: Served) -> None:
    wrong_key = served.post("/hooks/tilda", data={**TILDA_FORM, "api_key": "guess"})
    assert wrong_key.status_code == 401
    no_key = {key: value for key, value in TILDA_FORM.items() if key != "api_key"}
    assert served.post("/hooks/tilda", data=no_key).status_code == 401
    assert served.post("/hooks/tilda?token=guess", data=no_key).status_code == 401
    assert served.post("/hooks/tilda", data=no_key, headers={"Api-Key": TILDA_KEY}).status_code == 200
    assert len(served.inbox()) == 1


# ------------------------------------------------------------------------ signed JSON


def test_signed_json_good_bad_replayed_and_duplicated(served: Served) -> None:
    body = {"name": "Anna Smirnova", "email": "anna@example.com", "page": "https://shop.example/contacts",
            "utm_source": "google", "_ga": "GA1.1.111.222"}
    assert served.signed(body).status_code == 200
    # the same delivery signed again (a sender's retry): recognised, no second row
    again = served.signed(body, stamp=int(time.time()) - 5)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    other = {**body, "email": "other@example.com"}
    assert served.signed(other, secret="not-the-secret").status_code == 401
    assert served.signed(other, stamp=int(time.time()) - 3600).status_code == 401  # replayed
    assert served.signed(other, stamp=int(time.time()) + 3600).status_code == 401
    unsigned = served.post("/hooks/site", data=json.dumps(other), headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    tampered = json.dumps(other).encode()
    stamp = str(int(time.time()))
    assert served.post("/hooks/site", data=tampered + b" ", headers={
        "Content-Type": "application/json", "X-Hub-Timestamp": stamp,
        "X-Hub-Signature": sign(SITE_SECRET, stamp, tampered)}).status_code == 401
    delivered = served.signed(other, headers={"X-Hub-Delivery": "order-77"})
    assert delivered.status_code == 200
    assert served.signed({**other, "note": "resent"}, headers={"X-Hub-Delivery": "order-77"}).json()["duplicate"]
    assert [row.connector for row in served.inbox("site")] == ["site", "site"]
    served.synced()
    with served.store.connect() as c:
        emails = set(c.execute(select(contacts.c.email)).scalars())
        page = c.execute(select(events.c.payload).where(events.c.external_id.like("sha256:%"))).scalar_one()
    assert emails == {"anna@example.com", "other@example.com"}
    assert json.loads(page)["page"] == "https://shop.example/contacts"
    assert json.loads(page)["ga_client_id"] == "111.222"


def test_a_signed_request_replayed_under_another_delivery_id_is_a_duplicate(served: Served) -> None:
    body = json.dumps({"name": "Anna Smirnova", "email": "anna@example.com", "form": "order"}).encode()
    stamp = str(int(time.time()))
    signed = {"Content-Type": "application/json", "X-Hub-Timestamp": stamp,
              "X-Hub-Signature": sign(SITE_SECRET, stamp, body)}
    first = served.post("/hooks/site", data=body, headers={**signed, "X-Hub-Delivery": "evt-1"})
    assert first.json() == {"ok": True, "duplicate": False}
    # the delivery header is not signed: whoever replays the request can change it
    for delivery in ("evt-2", "evt-3", ""):
        replay = served.post("/hooks/site", data=body, headers={**signed, "X-Hub-Delivery": delivery})
        assert replay.status_code == 200 and replay.json()["duplicate"] is True, delivery
    # what the sender signs anew is a delivery of its own, under its own id
    assert served.signed(body, stamp=int(stamp) - 1, headers={"X-Hub-Delivery": "evt-4"}).json()["duplicate"] is False
    assert served.signed(body, stamp=int(stamp) - 2, headers={"X-Hub-Delivery": "evt-4"}).json()["duplicate"] is True
    assert [row.delivery_id for row in served.inbox("site")] == ["evt-1", "evt-4"]
    served.synced()
    with served.store.connect() as c:
        assert c.execute(select(func.count()).select_from(events).where(events.c.type == "form")).scalar() == 2
    # a signed request is remembered while a replay of it could pass the signature check only
    with served.store.begin() as c:
        c.execute(inbox.update().where(inbox.c.connector != "site").values(
            received_at=inbox.c.received_at - dt.timedelta(hours=1)))
    assert served.signed({"name": "Oleg", "email": "oleg@example.com"}).json()["duplicate"] is False
    assert len(served.inbox()) == len(served.inbox("site")) + 1 == 4


def test_unparseable_and_wrong_content_type(served: Served) -> None:
    assert served.signed(b'{"name": "broken"').status_code == 400
    assert served.signed(b'["a list"]').status_code == 400
    stamp = str(int(time.time()))
    text_body = b"name=x"
    assert served.post("/hooks/site", data=text_body, headers={
        "Content-Type": "text/plain", "X-Hub-Timestamp": stamp,
        "X-Hub-Signature": sign(SITE_SECRET, stamp, text_body)}).status_code == 415
    assert served.post(f"/hooks/tilda?token={TILDA_TOKEN}", data=b"<a/>",
                       headers={"Content-Type": "application/xml"}).status_code == 415
    assert served.post(f"/hooks/callback?token={FORM_TOKEN}", data=b"\xff\xfe=\x00",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 400
    assert served.inbox() == []


def test_json_nested_too_deeply_or_with_a_lone_surrogate_is_a_400(served: Served) -> None:
    token = {"Content-Type": "application/json"}
    hostile = (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
               b'{"name": "\\ud800", "email": "lone@example.com"}', b'{"\\udfff": "x", "email": "key@example.com"}')
    for body in hostile:
        # refused before the sender is checked, like any body that does not parse
        answer = served.post(f"/hooks/tilda?token={TILDA_TOKEN}", data=body, headers=token)
        assert answer.status_code == 400, (body[:40], answer.text)
        assert served.signed(body).status_code == 400, body[:40]
    # a pair of surrogates is one character, as JSON writes it
    assert served.signed({"name": "😀 Anna", "email": "pair@example.com"}).status_code == 200
    assert [json.loads(row.fields)["name"] for row in served.inbox("site")] == ["😀 Anna"]


def test_form_posts_with_empty_pairs_and_bare_keys_are_accepted(served: Served) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # as browsers read a form body: an empty pair is skipped, a bare key has an empty value
    tilda = served.post("/hooks/tilda", headers=form,
                        data=f"Name=Anna&Phone=%2B79161234567&tranid=t-1&api_key={TILDA_KEY}&".encode())
    assert tilda.status_code == 200, tilda.text
    for body in (b"name=Oleg&phone=%2B79031112233&", b"name=Ivan&&phone=%2B79035556677",
                 b"name=Olga&agree&phone=%2B79034445566"):
        answer = served.post(f"/hooks/callback?token={FORM_TOKEN}", data=body, headers=form)
        assert answer.status_code == 200 and answer.json()["duplicate"] is False, (body, answer.text)
    assert [json.loads(row.fields) for row in served.inbox()] == [
        {"Name": "Anna", "Phone": "+79161234567", "tranid": "t-1"},
        {"name": "Oleg", "phone": "+79031112233"},
        {"name": "Ivan", "phone": "+79035556677"},
        {"name": "Olga", "agree": "", "phone": "+79034445566"},
    ]
    # a body with no name=value pair at all is no form: still refused (the same below)
    for body in (b'{"name": "Petr", "phone": "+79030000000"}', b"just some text", b" \r\n"):
        refused = served.post(f"/hooks/callback?token={FORM_TOKEN}", data=body, headers=form)
        assert refused.status_code == 400, (body, refused.text)
    assert len(served.inbox()) == 4


def test_a_byte_order_mark_before_the_body_is_not_part_of_the_first_field(served: Served) -> None:
    bom = "\ufeff".encode()
    form = served.post(f"/hooks/callback?token={FORM_TOKEN}", data=bom + "name=Иван&phone=%2B79161234567".encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 200, form.text
    signed = served.signed(bom + json.dumps({"name": "Анна", "email": "anna@example.com"}).encode())
    assert signed.status_code == 200, signed.text
    assert [sorted(json.loads(row.fields)) for row in served.inbox() if row.connector in ("callback", "site")] == [
        ["name", "phone"], ["email", "name"]]


def test_a_multipart_form_post_is_read_and_its_file_not_kept(served: Served) -> None:
    """An HTML form with enctype="multipart/form-data" (a file field, a form builder,
    curl -F) got 415."""
    url = f"/hooks/callback?token={FORM_TOKEN}"
    answer = served.post(url, data={"name": "Иван Петров", "agree": "on", "tags": ["a", "b"]},
                         files={"phone": (None, "+7 916 123-45-67"), "cv": ("резюме.pdf", b"%PDF-1.4 \xff", "application/pdf")})
    assert answer.status_code == 200, answer.text
    [row] = served.inbox("callback")
    assert json.loads(row.fields) == {"name": "Иван Петров", "agree": "on", "tags": "a, b",
                                      "phone": "+7 916 123-45-67", "cv": "резюме.pdf"}
    served.synced()
    with served.store.connect() as c:
        assert c.execute(select(contacts.c.full_name, contacts.c.phone)).all() == [("Иван Петров", "+79161234567")]
    # a part in windows-1251 that says so is read in it; one that is not UTF-8 and does not say is refused
    boundary = "hub-test-boundary"
    def body(part_headers: str, value: bytes) -> bytes:
        return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n{part_headers}\r\n".encode()
                + value + f"\r\n--{boundary}--\r\n".encode())
    declared = served.post(url, data=body("Content-Type: text/plain; charset=windows-1251\r\n", "Ольга".encode("cp1251")),
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert declared.status_code == 200, declared.text
    assert json.loads(served.inbox("callback")[-1].fields) == {"name": "Ольга"}
    refused = (
        ({"Content-Type": f"multipart/form-data; boundary={boundary}"}, body("", "Ольга".encode("cp1251"))),
        ({"Content-Type": "multipart/form-data"}, body("", b"x")),  # no boundary
        ({"Content-Type": "multipart/form-data; boundary=another"}, body("", b"x")),
        ({"Content-Type": f"multipart/form-data; boundary={boundary}"}, b"name=x"),
    )
    for headers, data in refused:
        answer = served.post(url, data=data, headers=headers)
        assert answer.status_code == 400, (headers, data, answer.text)
    assert len(served.inbox("callback")) == 2


def test_form_posts_are_read_in_their_charset_and_never_garbled(served: Served) -> None:
    from urllib.parse import quote

    url = f"/hooks/callback?token={FORM_TOKEN}"
    # a site in windows-1251 posts its form %-escaped in that charset, and may say so
    escaped = f"name={quote('Иван Петров'.encode('cp1251'))}&phone=%2B79161234567".encode()
    declared = served.post(url, data=escaped,
                           headers={"Content-Type": "application/x-www-form-urlencoded; charset=windows-1251"})
    assert declared.status_code == 200, declared.text
    raw = "name=Ольга&phone=+79031112233".encode("cp1251")
    assert served.post(url, data=raw, headers={
        "Content-Type": 'application/x-www-form-urlencoded;Charset="CP1251"'}).status_code == 200
    assert served.post(url, data="name=Пётр&phone=%2B79035556677".encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}).status_code == 200
    assert [json.loads(row.fields)["name"] for row in served.inbox()] == ["Иван Петров", "Ольга", "Пётр"]
    # without a charset the bytes must be UTF-8, %-escaped or not: refused, not stored as "����"
    for body, headers in ((escaped, {}), (raw, {}), (b"name=x", {"Content-Type": "application/x-www-form-urlencoded;"
                                                                 " charset=no-such-charset"})):
        answer = served.post(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
        assert answer.status_code == 400, (body, answer.text)
    assert len(served.inbox()) == 3


# ------------------------------------------------------------------------ tokens and limits


def test_token_in_the_url(served: Served) -> None:
    form = {"name": "Пётр", "phone": "+7 916 000 11 22"}
    assert served.post(f"/hooks/callback?token={FORM_TOKEN}", data=form).status_code == 200
    assert served.post("/hooks/callback?token=form-url-token-93be12", data=form).status_code == 401
    assert served.post("/hooks/callback", data=form).status_code == 401
    assert served.post(f"/hooks/site?token={FORM_TOKEN}", json=form).status_code == 401  # site takes signatures
    assert len(served.inbox()) == 1


def test_bodies_over_the_limit_get_413(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    big = b"name=" + b"x" * 10_000_000
    with caplog.at_level(logging.WARNING, logger="hub.serve"):
        answer = served.post(f"/hooks/tilda?token={TILDA_TOKEN}", data=big,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 413
        over_own_limit = {"name": "y" * 3000, "phone": "+79160001122"}  # callback takes at most 2000 bytes
        assert served.post(f"/hooks/callback?token={FORM_TOKEN}", data=over_own_limit).status_code == 413
    assert served.inbox() == []
    assert "webhook tilda: 413" in caplog.text and "webhook callback: 413" in caplog.text
    assert TILDA_TOKEN not in caplog.text and FORM_TOKEN not in caplog.text


# ------------------------------------------------------------------------ burst


def test_a_burst_every_accepted_request_is_stored_and_synced(served: Served) -> None:
    count = 300

    def send(i: int) -> int:
        with requests.Session() as http:
            answer = http.post(f"{served.url}/hooks/callback?token={FORM_TOKEN}", timeout=60,
                               data={"name": f"Client {i}", "email": f"client{i}@example.org"})
            return answer.status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(send, range(count)))
    assert statuses.count(200) == count
    rows = served.inbox("callback")
    assert len(rows) == count
    served.synced()
    with served.store.connect() as c:
        linked = c.execute(select(func.count()).select_from(source_records)
                           .where(source_records.c.connector == "callback")).scalar()
        forms = c.execute(select(func.count()).select_from(events).where(events.c.type == "form")).scalar()
    assert linked == count and forms == count


# ------------------------------------------------------------------------ hub sync, logs


def test_hub_sync_reads_the_inbox_too(tmp_path: Path, secrets_env: None) -> None:
    from click.testing import CliRunner

    from hub.cli import main

    served = Served(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}", sync=False)
    try:
        assert served.post(f"/hooks/callback?token={FORM_TOKEN}", data={"name": "Ольга", "email": "olga@example.ru"}
                           ).status_code == 200
    finally:
        served.close()
    result = CliRunner().invoke(main, ["-c", str(tmp_path / "hub.yaml"), "sync", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["callback"]["created"] == 1
    again = CliRunner().invoke(main, ["-c", str(tmp_path / "hub.yaml"), "sync", "--json"])
    assert json.loads(again.stdout)["counts"]["callback"]["read"] == 0  # the cursor is past it


def test_a_submission_after_the_newest_was_erased_is_still_synced(served: Served) -> None:
    from click.testing import CliRunner

    from hub.cli import main

    url = f"/hooks/callback?token={FORM_TOKEN}"
    assert served.post(url, data={"name": "Анна", "email": "anna@example.ru"}).status_code == 200
    served.synced()
    # the newest inbox row goes with the person (a row of old spam, by hub leads clean, alike)
    forget = CliRunner().invoke(main, ["-c", str(served.root / "hub.yaml"), "forget", "--email", "anna@example.ru"])
    assert forget.exit_code == 0, forget.output
    assert served.inbox() == []
    assert served.post(url, data={"name": "Борис", "email": "boris@example.ru"}).status_code == 200
    served.synced()
    with served.store.connect() as c:
        live = c.execute(select(contacts.c.email).where(contacts.c.deleted_at.is_(None))).scalars().all()
    assert live == ["boris@example.ru"]


def test_a_form_of_a_forgotten_person_is_not_kept_in_the_inbox(served: Served) -> None:
    from click.testing import CliRunner

    from hub.cli import main

    url = f"/hooks/callback?token={FORM_TOKEN}"
    served.synced()  # the sync at start
    forget = CliRunner().invoke(main, ["-c", str(served.root / "hub.yaml"), "forget", "--email", "anna@example.ru"])
    assert forget.exit_code == 0, forget.output
    assert served.post(url, data={"name": "Анна", "email": "Anna@Example.ru", "phone": "+79161112233"}
                       ).status_code == 200
    assert served.post(url, data={"name": "Борис", "email": "boris@example.ru"}).status_code == 200
    served.synced()
    # the sync skips her form (suppressed) and drops what she sent: hub keeps nothing of her
    assert [json.loads(row.fields)["name"] for row in served.inbox("callback")] == ["Борис"]
    with served.store.connect() as c:
        assert c.execute(select(contacts.c.email)).scalars().all() == ["boris@example.ru"]
    # her retry of the same form is recognised as hers again, and dropped again
    assert served.post(url, data={"name": "Анна", "email": "Anna@Example.ru", "phone": "+79161112233"}
                       ).status_code == 200
    served.synced()
    assert len(served.inbox("callback")) == 1


def test_a_store_upgraded_after_its_newest_row_was_erased_gives_new_ids(tmp_path: Path, secrets_env: None) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, insert, text

    from hub.store import MIGRATIONS
    from hub.store.schema import cursors

    # a store of the version before: the sync read rows 1 and 2, then row 2 was erased
    path = tmp_path / "hub.db"
    old = create_engine(f"sqlite:///{path}")
    with old.begin() as c:
        alembic = Config()
        alembic.set_main_option("script_location", str(MIGRATIONS))
        alembic.attributes["connection"] = c
        command.upgrade(alembic, "0010")
        for n in (1, 2):
            c.execute(insert(inbox).values(connector="callback", delivery_id=f"d{n}", fields='{"name": "x"}',
                                           received_at=dt.datetime.now(dt.timezone.utc)))
        c.execute(insert(cursors).values(connector="callback", stream="records", value="2"))
        c.execute(text("DELETE FROM inbox WHERE id = 2"))
    old.dispose()
    served = Served(tmp_path, f"sqlite:///{path}", sync=False)  # opening the store upgrades it
    try:
        assert served.post(f"/hooks/callback?token={FORM_TOKEN}", data={"name": "Вера"}).status_code == 200
        assert [row.id for row in served.inbox()] == [1, 3]
    finally:
        served.close()


def test_the_sync_waits_for_a_hub_sync_holding_the_lock(served: Served) -> None:
    served.synced()
    assert served.server.worker is not None
    served.server.worker.retry = 0.05
    with served.store.lock("sync"):  # a hub sync from cron is running
        assert served.post(f"/hooks/callback?token={FORM_TOKEN}", data={"name": "Лев", "email": "lev@example.ru"}
                           ).status_code == 200
        time.sleep(0.3)  # the worker tries and finds the lock held
        with served.store.connect() as c:
            assert c.execute(select(func.count()).select_from(contacts)).scalar() == 0
    served.synced()
    with served.store.connect() as c:
        assert c.execute(select(contacts.c.email)).scalars().all() == ["lev@example.ru"]


def test_refusals_are_logged_without_secrets(served_sqlite: Served, caplog: pytest.LogCaptureFixture) -> None:
    served = served_sqlite
    with caplog.at_level(logging.INFO, logger="hub"):
        served.post(f"/hooks/callback?token={FORM_TOKEN}x", data={"name": "a"})
        served.post("/hooks/tilda", data={**TILDA_FORM, "api_key": TILDA_KEY + "x"})
        served.signed({"name": "b"}, secret=SITE_SECRET + "x")
        served.post(f"/hooks/tilda?token={TILDA_TOKEN}", data=TILDA_FORM)
        served.synced()
    messages = caplog.text
    assert "401 wrong token" in messages and "401 wrong API key" in messages and "401 bad signature" in messages
    for secret in SECRETS:
        assert secret not in messages
    with served.store.connect() as c:
        stored = " ".join(str(value) for row in c.execute(select(inbox)) for value in row)
        stored += " ".join(str(value) for row in c.execute(select(events)) for value in row)
    for secret in SECRETS:
        assert secret not in stored


def test_a_path_cannot_write_lines_into_the_log(served_sqlite: Served, caplog: pytest.LogCaptureFixture) -> None:
    served = served_sqlite
    forged = "%0AERROR%20hub.serve:%20forged%1b[2J"
    with caplog.at_level(logging.INFO, logger="hub"):
        assert served.post(f"/hooks/nope{forged}", data={"a": "b"}).status_code == 404
        assert served.post(f"/hooks/tilda{forged}?token={TILDA_TOKEN}", data={"a": "b"}).status_code == 404
        # refused by waitress before the app sees it (a body over the limit)
        with socket.create_connection(("127.0.0.1", served.server.port)) as raw:
            raw.sendall(f"POST /hooks/x{forged} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n".encode())
            assert raw.recv(100).startswith(b"HTTP/1.1 413")
        time.sleep(0.2)
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("hub")]
    assert messages and "413" in " ".join(messages)
    for message in messages:
        assert message.isprintable(), message


def test_a_webhook_connector_needs_a_way_to_check_senders(project) -> None:  # type: ignore[no-untyped-def]
    project.config("""\
        connectors:
          forms:
            plugin: webhook
    """)
    result = project.hub("check")
    assert result.exit_code == 2
    assert "connectors.forms: set secret, token or api_key" in result.stderr


def test_ga_client_id_of_the_cookie() -> None:
    assert ga_client_id("GA1.2.1234567890.1600000000") == "1234567890.1600000000"
    assert ga_client_id("1234567890.1600000000") == "1234567890.1600000000"


# ------------------------------------------------------------------------ the command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str) -> None:
    """Wait for a ``hub serve`` started at ``url`` to answer its health check."""
    for _ in range(200):
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.05)


def test_hub_serve_command(tmp_path: Path) -> None:
    (tmp_path / "hub.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "callback.yaml").write_text(MAPPING, encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "HUB_TEST_TILDA_TOKEN": TILDA_TOKEN, "HUB_TEST_SITE_SECRET": SITE_SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "-c", str(tmp_path / "hub.yaml"), "-v", "serve", "--port", str(port),
         "--sync-delay", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url)
        assert requests.post(f"{url}/hooks/callback?token={FORM_TOKEN}", timeout=10,
                             data={"name": "Мария", "phone": "89161112233"}).status_code == 200
        assert requests.post(f"{url}/hooks/callback?token=wrong", timeout=10, data={"name": "x"}).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"listening on http://127.0.0.1:{port}" in err
    assert "401 wrong token" in err
    for secret in SECRETS:
        assert secret not in err + out


def test_hub_serve_on_an_address_it_cannot_use(project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    project.config(CONFIG.replace("$HUB_TEST_TILDA_TOKEN", TILDA_TOKEN).replace("$HUB_TEST_SITE_SECRET", SITE_SECRET))
    resolve = socket.getaddrinfo

    def no_such_host(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "hub.invalid":  # the resolver's answer, without asking one
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    unknown = project.hub("serve", "--host", "hub.invalid", "--port", "0")
    assert unknown.exit_code == 2, unknown.output
    assert "cannot listen on hub.invalid:0: hub.invalid does not resolve" in unknown.stderr
    assert "bug" not in unknown.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        in_use = project.hub("serve", "--port", str(taken.getsockname()[1]))
    assert in_use.exit_code == 2 and "Address already in use" in in_use.stderr, in_use.output


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_hub_serve_on_a_name_of_two_addresses(tmp_path: Path, secrets_env: None, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    from click.testing import CliRunner

    from hub.cli import main

    # "localhost" is ::1 and 127.0.0.1 on most systems: waitress listens on each
    resolve = socket.getaddrinfo

    def both(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "localhost":
            return resolve("::1", *args, **kwargs) + resolve("127.0.0.1", *args, **kwargs)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", both)
    port = _free_port()
    served = Served(tmp_path, f"sqlite:///{tmp_path / 'hub.db'}", sync=False)
    served.close()

    def post_to_both() -> None:
        _wait_until_up(f"http://127.0.0.1:{port}")
        with caplog.at_level(logging.WARNING, logger="hub.serve"):
            for host, name in (("127.0.0.1", "Anna"), ("[::1]", "Oleg")):
                url = f"http://{host}:{port}/hooks/callback?token={FORM_TOKEN}"
                assert requests.post(url, data={"name": name}, timeout=10).status_code == 200
                big = requests.post(url, data={"name": "x" * 1_100_000}, timeout=10)  # refused by waitress itself
                assert big.status_code == 413

    failures: list[BaseException] = []

    def sender() -> None:
        try:
            post_to_both()
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=sender)
    previous = signal.getsignal(signal.SIGTERM)
    thread.start()
    try:
        result = CliRunner().invoke(main, ["-c", str(tmp_path / "hub.yaml"), "serve", "--host", "localhost",
                                           "--port", str(port), "--no-sync"])
    finally:
        thread.join(30)
        signal.signal(signal.SIGTERM, previous)
    assert not failures, failures
    assert result.exit_code == 0, result.output
    assert f"http://[::1]:{port}" in result.stderr and f"http://127.0.0.1:{port}" in result.stderr
    assert [json.loads(row.fields)["name"] for row in served.inbox()] == ["Anna", "Oleg"]
    assert caplog.text.count("webhook callback: 413") == 2


def test_sigterm_lets_the_request_being_stored_get_its_answer(tmp_path: Path) -> None:
    import sqlite3

    (tmp_path / "hub.yaml").write_text(CONFIG, encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "HUB_TEST_TILDA_TOKEN": TILDA_TOKEN, "HUB_TEST_SITE_SECRET": SITE_SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "-c", str(tmp_path / "hub.yaml"), "serve", "--port", str(port), "--no-sync"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    answers: list[object] = []

    def send() -> None:
        try:
            answer = requests.post(f"{url}/hooks/callback?token={FORM_TOKEN}", data={"name": "Ирина"}, timeout=30)
            answers.append((answer.status_code, answer.json()))
        except requests.RequestException as error:
            answers.append(error)

    try:
        _wait_until_up(url)
        idle = requests.Session()  # a kept-alive connection with nothing to do does not hold the stop
        assert idle.get(f"{url}/healthz", timeout=5).status_code == 200
        writer = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # the store is busy: the delivery waits for it
        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        time.sleep(1)
        writer.execute("ROLLBACK")
        sender.join(30)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert answers == [(200, {"ok": True, "duplicate": False})], err
    rows = sqlite3.connect(tmp_path / "hub.db").execute("SELECT fields FROM inbox").fetchall()
    assert [json.loads(fields)["name"] for (fields,) in rows] == ["Ирина"]
