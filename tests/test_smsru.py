"""The smsru connector against the local SMS.ru server in tests/fakes."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hub_plugins.smsru import SmsRuConnector, SmsRuOptions

from hub.connector import ConnectorContext
from hub.errors import FatalError
from hub.model import OutboundItem
from hub.webhooks import Accepted, Probe, WebhookRequest
from tests.conformance import ConnectorConformance, read_all
from tests.fakes.smsru import FakeSmsRu, callback_body

API_ID = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"


def make_connector(fake: FakeSmsRu, tmp_path: Path, **options: Any) -> SmsRuConnector:
    options.setdefault("api_id", fake.api_id)
    options.setdefault("endpoint", fake.url)
    options.setdefault("backoff_seconds", 0)
    options.setdefault("max_backoff_seconds", 0)
    options.setdefault("requests_per_second", 1000)
    context = ConnectorContext("smsru", tmp_path, logging.getLogger("test.smsru"))
    return SmsRuConnector(SmsRuOptions(**options), context)


@pytest.fixture
def fake():
    with FakeSmsRu(API_ID) as server:
        yield server


class TestSmsRuConformance(ConnectorConformance):
    supports_delete = False
    break_modes: ClassVar[tuple[str, ...]] = ("bad_key", "server_error")

    @pytest.fixture(autouse=True)
    def _server(self):
        with FakeSmsRu(API_ID) as self.fake:
            yield

    def seed_records(self) -> list[dict[str, Any]]:
        return [{"phone": "+79161234567", "note": "STOP"}, {"phone": "+79167654321", "note": "жалоба"},
                {"phone": "+79990001122", "note": ""}]

    def make_connector(self, tmp_path: Path) -> SmsRuConnector:
        for seed in self.seed_records():
            self.fake.stoplist[seed["phone"][1:]] = seed["note"]
        return make_connector(self.fake, tmp_path, max_attempts=2)

    def comparable(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k in ("phone", "note") and v not in ("", None)}

    def outbound_items(self) -> list[OutboundItem]:
        return [OutboundItem(101, "upsert", {"phone": "+79031112233"}, consent="unsubscribed"),
                OutboundItem(102, "upsert", {"phone": "+79035556677"}, consent="complained")]

    def change_record(self, connector: SmsRuConnector) -> tuple[str, dict[str, Any]]:
        self.fake.stoplist["79167654321"] = "новая заметка"
        return "79167654321", {"note": "новая заметка"}

    def break_tool(self, connector: SmsRuConnector, mode: str) -> None:
        if mode == "bad_key":
            self.fake.api_id = "another"
        else:
            self.fake.fail("*", 502, times=1000)


def test_only_opted_out_numbers_are_added_and_none_removed(fake, tmp_path):
    fake.stoplist["79160000000"] = "old"
    results = make_connector(fake, tmp_path).write([
        OutboundItem(1, "upsert", {"phone": "+7 916 111-22-33"}, consent="unsubscribed"),
        OutboundItem(2, "upsert", {"phone": "+79162223344"}, consent="subscribed"),
        OutboundItem(3, "upsert", {"phone": "12"}, consent="unsubscribed"),
        OutboundItem(4, "delete", {}, external_id="79160000000"),
    ])
    assert [r.status for r in results] == ["ok", "ok", "rejected", "ok"]
    assert "Неправильно указан номер" in results[2].error
    assert set(fake.stoplist) == {"79160000000", "79161112233"}
    assert fake.calls["stoplist.add"] == 2 and fake.calls["stoplist.del"] == 0


def test_the_api_id_never_travels_in_the_url_nor_appears_in_errors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail("stoplist.get", 429)  # SMS.ru's "too many requests" is retried
    records, _ = read_all(make_connector(fake, tmp_path), None)
    assert records == [] and fake.calls["stoplist.get"] == 2
    with pytest.raises(FatalError, match="Неправильный api_id") as raised:
        read_all(make_connector(fake, tmp_path, api_id="WRONG-API-ID-123"), None)
    assert fake.keys_in_query == 0
    assert "WRONG-API-ID-123" not in str(raised.value) + caplog.text and API_ID not in caplog.text


# ------------------------------------------------------------------ message status


def waiting(*ids_and_phones: tuple[str, str], days_ago: float = 0) -> str:
    sent = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days_ago)).isoformat()
    return json.dumps({"stoplist": None, "inbox": 0, "reported": {},
                       "pending": {sms_id: [phone, sent] for sms_id, phone in ids_and_phones}})


def history(records: list[Any]) -> list[tuple[str, str, str, dict[str, str]]]:
    return [(r.external_id, e.type, e.external_id, dict(e.payload)) for r in records if r.history_only
            for e in r.events]


def test_waiting_messages_are_asked_about_100_ids_a_call_until_final(fake, tmp_path):
    numbers = [f"7916{i:07d}" for i in range(150)]
    answers = [fake.send(*numbers[:100]), fake.send(*numbers[100:])]
    sent = [(a["sms"][n]["sms_id"], n) for a in answers for n in a["sms"]]
    fake.progress(sent[0][0], 103)
    fake.progress(sent[1][0], 106)
    fake.progress(sent[120][0], 102)  # still on its way
    connector = make_connector(fake, tmp_path)
    records, checkpoint = read_all(connector, waiting(*sent, ("000000-404", "79990001122")))
    found = {sms_id: (phone, kind, payload) for phone, kind, sms_id, payload in history(records)}
    assert found[sent[0][0]][:2] == (sent[0][1], "sms_delivered")
    assert found[sent[1][0]][1] == "sms_failed"
    assert found[sent[1][0]][2]["status_code"] == "106" and "сбой в телефоне" in found[sent[1][0]][2]["status_text"]
    assert found["000000-404"][1] == "sms_failed" and found["000000-404"][2]["status_code"] == "-1"
    assert len(found) == 3 and fake.calls["sms.status"] == 2
    asked = [len(request.form()["sms_id"][0].split(",")) for name, request in fake.requests if name == "sms.status"]
    assert asked == [100, 51]
    assert fake.keys_in_query == 0  # api_id travels in the body
    pending = json.loads(checkpoint.cursor)["pending"]
    assert len(pending) == 148 and sent[0][0] not in pending and sent[120][0] in pending
    # the next read asks only about the ones still waiting; a final status is reported once
    fake.progress(sent[120][0], 103)
    fake.reset_counters()
    again, checkpoint = read_all(connector, checkpoint.cursor)
    assert [(kind, sms_id) for _, kind, sms_id, _ in history(again)] == [("sms_delivered", sent[120][0])]
    assert sum(len(r.form()["sms_id"][0].split(",")) for n, r in fake.requests if n == "sms.status") == 148


def test_a_message_is_waited_for_status_days_then_dropped(fake, tmp_path):
    (sms_id,) = [r["sms_id"] for r in fake.send("79161234567")["sms"].values()]
    records, checkpoint = read_all(make_connector(fake, tmp_path, status_days=2), waiting((sms_id, "79161234567"),
                                                                                          days_ago=3))
    assert history(records) == [] and json.loads(checkpoint.cursor)["pending"] == {}


def test_status_checks_ride_out_rate_limits_and_server_errors(fake, tmp_path):
    (sms_id,) = [r["sms_id"] for r in fake.send("79161234567")["sms"].values()]
    fake.progress(sms_id, 103)
    fake.fail("sms.status", 429)  # SMS.ru's code 231 in an HTTP 200
    fake.fail("sms.status", 500)
    fake.fail("sms.status", 502, body="html")
    records, _ = read_all(make_connector(fake, tmp_path), waiting((sms_id, "79161234567")))
    assert [kind for _, kind, _, _ in history(records)] == ["sms_delivered"]
    assert fake.calls["sms.status"] == 4


def test_an_old_cursor_of_the_stop_list_alone_still_reads(fake, tmp_path):
    fake.stoplist["79161234567"] = "STOP"
    connector = make_connector(fake, tmp_path)
    records, checkpoint = read_all(connector, None)
    digest = json.loads(checkpoint.cursor)["stoplist"]
    records, _ = read_all(connector, digest)  # a cursor saved before message history
    assert records == []


def request(body: bytes, media_type: str, token: str | None = "hook-token-5e7a") -> WebhookRequest:
    return WebhookRequest(body=body, media_type=media_type, query={"token": token} if token else {})


def test_the_message_log_and_the_status_callback_are_received(fake, tmp_path):
    connector = make_connector(fake, tmp_path, token="hook-token-5e7a")
    answer = fake.send("79161234567", "79160000000")
    fake.stoplist["79035550000"] = ""
    answer["sms"].update(fake.send("79035550000")["sms"])  # refused (stop list): no id, not a message
    got = connector.receive(request(json.dumps(answer).encode(), "application/json"))
    assert isinstance(got, Accepted) and got.reply is None
    assert [m[1] for m in json.loads(got.fields["sms_sent"])] == ["+79161234567", "+79160000000"]
    one = connector.receive(request(b'{"sms_id": "201-1", "phone": "+7 916 123-45-67", "sent_at": '
                                    b'"2026-11-20T10:00:00+03:00"}', "application/json"))
    assert json.loads(one.fields["sms_sent"]) == [["201-1", "+79161234567", "2026-11-20T10:00:00+03:00"]]
    local = connector.receive(request(b'{"sms_id": "201-3", "phone": "8 (916) 123-45-67"}', "application/json"))
    assert json.loads(local.fields["sms_sent"]) == [["201-3", "89161234567", None]]  # read in the default region
    callback = connector.receive(request(callback_body([("201-1", 103, 1795000000), ("201-2", 106, None)]),
                                         "application/x-www-form-urlencoded"))
    assert isinstance(callback, Accepted) and callback.reply == "100"
    statuses = json.loads(callback.fields["sms_status"])
    assert statuses[0][:2] == ["201-1", 103] and statuses[1][:2] == ["201-2", 106]
    probe = connector.receive(request(b"data%5B%5D=test", "application/x-www-form-urlencoded"))
    assert isinstance(probe, Probe) and probe.reply == "100"
    assert connector.receive(request(b"{}", "application/json")).status == 400
    assert connector.receive(request(b"{not json", "application/json")).status == 400
    assert connector.receive(request(b"{}", "application/json", token="wrong")).status == 401
    assert connector.receive(request(b"{}", "application/json", token=None)).status == 401
    assert make_connector(fake, tmp_path).receive(request(b"{}", "application/json")).status == 401


def test_a_stop_list_add_the_service_cannot_take_now_stays_queued(project, fake):
    """SMS.ru's 220 (temporarily unavailable) and 500 (server error) come in an HTTP 200:
    the opt-out is retried, never rejected, and reaches the stop list."""
    import textwrap

    from tests.fakes.twilio import FakeTwilio

    with FakeTwilio() as twilio:
        project.write("clients.csv", "id,full_name,phone\n1,Иван Петров,+79161234567\n")
        project.config(textwrap.dedent(f"""\
            connectors:
              clients: {{plugin: csv, path: clients.csv, id_column: id}}
              twilio: {{plugin: twilio, account_sid: {twilio.account_sid}, auth_token: {twilio.auth_token},
                        endpoint: {twilio.url}}}
              smsru: {{plugin: smsru, role: destination, api_id: {fake.api_id}, endpoint: {fake.url},
                       backoff_seconds: 0, max_attempts: 3}}
            """))
        twilio.inbound("+79161234567", "STOP")
        fake.unavailable = 3
        report = json.loads(project.hub("sync", "--json").stdout)
        assert report["counts"]["smsru"]["retry"] == 1 and report["counts"]["smsru"]["rejected"] == 0
        assert fake.calls["stoplist.add"] == 3 and not fake.stoplist
        card = json.loads(project.hub("show", "1", "--json").stdout)
        assert "Сервис временно недоступен" in json.dumps(card, ensure_ascii=False)
        fake.fail("stoplist.add", 200)  # {"status_code": 500}: a server error, repeat the request
        report = json.loads(project.hub("sync", "--json").stdout)
        assert report["counts"]["smsru"]["sent"] == 1
        assert set(fake.stoplist) == {"79161234567"} and fake.calls["stoplist.add"] == 5


def test_a_hostile_message_log_is_a_400_through_hub_serve(project, fake):
    import requests

    from hub.config import load_config
    from hub.plugins import connector_classes
    from hub.serve import Server
    from hub.store import open_store

    project.config(f"""\
        connectors:
          smsru: {{plugin: smsru, api_id: {fake.api_id}, endpoint: {fake.url}, token: hook-token-5e7a}}
    """)
    config = load_config(project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    server = Server(config, store, "127.0.0.1", 0, threads=2, sync=False).start()
    hook = f"http://127.0.0.1:{server.port}/hooks/smsru?token=hook-token-5e7a"
    try:
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"sms_id":' * 50_000 + b"1" + b"}" * 50_000):
            answer = requests.post(hook, data=body, headers={"Content-Type": "application/json"}, timeout=30)
            assert answer.status_code == 400, answer.text
    finally:
        server.stop()
        store.dispose()


@pytest.mark.parametrize("at", ["100000000000000000", "100000000000000000000", "1000000000000", "-1000000000000"])
def test_a_callback_time_out_of_range_keeps_the_status_without_the_time(fake, tmp_path, at):
    """A time no clock can hold must not fail the callback (SMS.ru would post it again and
    again) nor lose the other statuses it carries."""
    from urllib.parse import urlencode

    connector = make_connector(fake, tmp_path, token="hook-token-5e7a")
    body = urlencode([("data[]", f"sms_status\n201-1\n103\n{at}"), ("data[]", "sms_status\n201-2\n106\n1795000000")])
    got = connector.receive(request(body.encode(), "application/x-www-form-urlencoded"))
    assert isinstance(got, Accepted) and got.reply == "100"
    assert json.loads(got.fields["sms_status"]) == [
        ["201-1", 103, None], ["201-2", 106, dt.datetime.fromtimestamp(1795000000, dt.timezone.utc).isoformat()]]
