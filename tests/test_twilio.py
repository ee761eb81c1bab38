"""The twilio connector against the local Twilio server in tests/fakes; SMS opt-outs
travel from Twilio to the SMS.ru stop list in a whole sync."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hub_plugins.twilio import TwilioConnector, TwilioOptions, keyword

from hub.connector import ConnectorContext
from hub.errors import FatalError
from tests.conformance import ConnectorConformance, by_external_id, read_all
from tests.fakes.smsru import FakeSmsRu
from tests.fakes.twilio import FakeTwilio

AUTH_TOKEN = "7b3f9e2a1c4d5e6f7a8b9c0d1e2f3a4b"


def make_connector(fake: FakeTwilio, tmp_path: Path, **options: Any) -> TwilioConnector:
    options.setdefault("account_sid", fake.account_sid)
    options.setdefault("auth_token", fake.auth_token)
    options.setdefault("endpoint", fake.url)
    options.setdefault("backoff_seconds", 0)
    options.setdefault("max_backoff_seconds", 0)
    options.setdefault("requests_per_second", 1000)
    context = ConnectorContext("twilio", tmp_path, logging.getLogger("test.twilio"))
    return TwilioConnector(TwilioOptions(**options), context)


@pytest.fixture
def fake():
    with FakeTwilio(auth_token=AUTH_TOKEN) as server:
        yield server


class TestTwilioConformance(ConnectorConformance):
    full_read_is_complete = False
    resume_may_repeat = True
    break_modes: ClassVar[tuple[str, ...]] = ("bad_token", "server_error")

    @pytest.fixture(autouse=True)
    def _server(self):
        with FakeTwilio(auth_token=AUTH_TOKEN) as self.fake:
            yield

    def seed_records(self) -> list[dict[str, Any]]:
        return [{"phone": "+79161234567"}, {"phone": "+79167654321"}, {"phone": "+447700900123"}]

    def make_connector(self, tmp_path: Path) -> TwilioConnector:
        for seed in self.seed_records():
            self.fake.outbound(seed["phone"], "Скидка 10%")
            self.fake.inbound(seed["phone"], "Stop")
        return make_connector(self.fake, tmp_path, max_attempts=2)

    def change_record(self, connector: TwilioConnector) -> tuple[str, dict[str, Any]]:
        self.fake.inbound("+79167654321", "START")
        return "79167654321", {"phone": "+79167654321"}

    def break_tool(self, connector: TwilioConnector, mode: str) -> None:
        if mode == "bad_token":
            self.fake.auth_token = "another"
        else:
            self.fake.fail("*", 503, times=1000)


@pytest.mark.parametrize(("body", "status"), [
    ("STOP", "unsubscribed"), (" stop. ", "unsubscribed"), ("Unsubscribe", "unsubscribed"), ("СТОП", "unsubscribed"),
    ("START", "subscribed"), ("yes", "subscribed"), ("stop sending me this", None), ("Спасибо", None),
])
def test_keywords(body, status):
    assert keyword(body) == status


def test_the_latest_keyword_wins_and_a_21610_failure_is_an_opt_out(fake, tmp_path):
    fake.inbound("+79161234567", "STOP")
    fake.inbound("+79161234567", "START")
    fake.inbound("+79162223344", "START")
    fake.inbound("+79162223344", "STOP")
    fake.outbound("+79163334455", "Акция", error_code=21610)
    records = by_external_id(read_all(make_connector(fake, tmp_path, page_size=2), None)[0])
    assert {k: r.consents[0].status for k, r in records.items()} == {
        "79161234567": "subscribed", "79162223344": "unsubscribed", "79163334455": "unsubscribed"}
    assert dict(records["79163334455"].consents[0].proof)["error_code"] == "21610"
    assert fake.calls["messages.list"] == 3


def test_every_message_is_an_event_and_counts_towards_messages_30d(fake, tmp_path):
    fake.outbound("+79161234567", "Скидка 10%")
    fake.outbound("+79161234567", "Ещё скидка", error_code=30003)
    fake.inbound("+79161234567", "Спасибо!")  # no keyword: says nothing about consent
    (record,) = read_all(make_connector(fake, tmp_path), None)[0]
    assert record.consents == ()
    assert [(e.type, dict(e.payload)["status"]) for e in record.events] == [
        ("sms_sent", "delivered"), ("sms_sent", "failed"), ("sms_received", "received")]
    assert dict(record.events[1].payload)["error_code"] == "30003"


def test_bad_credentials_are_a_clear_error_without_the_token(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FatalError, match="Authenticate") as raised:
        read_all(make_connector(fake, tmp_path, auth_token="wrong-token-4242"), None)
    assert "wrong-token-4242" not in str(raised.value) + caplog.text


def test_a_stop_sent_to_twilio_reaches_the_smsru_stop_list(project, fake, monkeypatch):
    with FakeSmsRu() as smsru:
        monkeypatch.setenv("TWILIO_TOKEN", AUTH_TOKEN)
        monkeypatch.setenv("SMSRU_API_ID", smsru.api_id)
        project.write("clients.csv", "id,full_name,phone\n1,Иван Петров,+79161234567\n2,Анна Белова,+79162223344\n")
        project.config(textwrap.dedent(f"""\
            connectors:
              clients: {{plugin: csv, path: clients.csv, id_column: id}}
              twilio:
                plugin: twilio
                account_sid: {fake.account_sid}
                auth_token: $TWILIO_TOKEN
                endpoint: {fake.url}
              smsru:
                plugin: smsru
                role: destination
                api_id: $SMSRU_API_ID
                endpoint: {smsru.url}
            """))
        fake.inbound("+79161234567", "STOP")
        result = project.hub("sync", "--json")
        assert result.exit_code == 0, result.output
        assert set(smsru.stoplist) == {"79161234567"}
        assert smsru.calls["stoplist.add"] == 1
        log = json.loads(project.hub("log", "--field", "consent_sms", "--json").stdout)
        assert [(entry["new"], entry["connector"]) for entry in log] == [("unsubscribed", "twilio")]
        assert project.hub("sync", "--json").exit_code == 0
        assert smsru.calls["stoplist.add"] == 1  # nothing sent again
        outputs = project.hub("log").output + project.hub("runs", "--json").output
        assert AUTH_TOKEN not in outputs and smsru.api_id not in outputs


def test_messages_30d_is_on_the_card_and_holds_back_the_over_messaged(project, fake, monkeypatch):
    import datetime as dt

    from tests.fakes.mailchimp import FakeMailchimp

    fake.clock = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    for text in ("Акция 1", "Акция 2", "Акция 3"):
        fake.outbound("+79161234567", text)
    fake.outbound("+79162223344", "Акция 1")
    with FakeMailchimp() as mailchimp:
        monkeypatch.setenv("TWILIO_TOKEN", AUTH_TOKEN)
        monkeypatch.setenv("MAILCHIMP_KEY", mailchimp.api_key)
        project.write("clients.csv", "id,full_name,phone,email\n1,Иван Петров,+79161234567,ivan@example.ru\n"
                                     "2,Анна Белова,+79162223344,anna@example.com\n")
        project.config(textwrap.dedent(f"""\
            connectors:
              clients: {{plugin: csv, path: clients.csv, id_column: id}}
              twilio: {{plugin: twilio, account_sid: {fake.account_sid}, auth_token: $TWILIO_TOKEN,
                        endpoint: {fake.url}}}
              mailchimp:
                plugin: mailchimp
                role: destination
                api_key: $MAILCHIMP_KEY
                list_id: {mailchimp.list_id}
                endpoint: {mailchimp.url}/3.0
                require_consent: false
                max_messages_30d: 2
            """))
        (project.root / "mappings").mkdir(exist_ok=True)
        (project.root / "mappings" / "mailchimp.yaml").write_text(
            "fields:\n  email: {from: email_address, transforms: [email]}\n  first_name: FNAME\n")
        result = project.hub("sync", "--json")
        assert result.exit_code == 0, result.output
        assert mailchimp.status_of("anna@example.com") == "subscribed"
        assert mailchimp.status_of("ivan@example.ru") is None  # 3 messages in 30 days: held back
        card = json.loads(project.hub("show", "ivan@example.ru", "--json").stdout)
        assert card["messages_30d"] == 3
        assert [e["type"] for e in card["events"]] == ["sms_sent"] * 3
        assert "3 messages sent in the last 30 days" in " ".join(project.hub("show", "ivan@example.ru").output.split())
        assert project.hub("sync", "--json").exit_code == 0  # the history is stored once
        card = json.loads(project.hub("show", "ivan@example.ru", "--json").stdout)
        assert len(card["events"]) == 3


def test_a_number_no_contact_holds_adds_no_contact(project, fake, monkeypatch):
    """The message history lands on the contact holding the number: a stranger's text and a
    send to a mistyped number became contacts of their own (and went to destinations)."""
    fake.inbound("+79161234567", "STOP")
    fake.inbound("+79035550000", "кто это?")
    fake.outbound("+79269990000", "Скидка 10%")
    fake.inbound("+79040001122", "STOP")  # a number hub does not know yet: the opt-out must hold
    monkeypatch.setenv("TWILIO_TOKEN", AUTH_TOKEN)
    project.write("clients.csv", "id,full_name,phone\n1,Иван Петров,+79161234567\n")
    project.config(textwrap.dedent(f"""\
        connectors:
          clients: {{plugin: csv, path: clients.csv, id_column: id}}
          twilio: {{plugin: twilio, account_sid: {fake.account_sid}, auth_token: $TWILIO_TOKEN, endpoint: {fake.url}}}
        """))
    result = project.hub("sync", "--json")
    assert result.exit_code == 0, result.output
    contacts = json.loads(project.hub("export", "contacts", "--format", "json", "--unmask").stdout)
    assert sorted(c["phone"] for c in contacts) == ["+79040001122", "+79161234567"]
    card = json.loads(project.hub("show", "1", "--json").stdout)
    assert {c["channel"]: c["status"] for c in card["consents"]}["sms"] == "unsubscribed"
    assert [e["type"] for e in card["events"]] == ["sms_received"]
    # the person who texted STOP arrives later: the opt-out is theirs
    project.write("clients.csv", "id,full_name,phone\n1,Иван Петров,+79161234567\n2,Олег Сидоров,+79040001122\n")
    assert project.hub("sync").exit_code == 0
    card = json.loads(project.hub("show", "+79040001122", "--json").stdout)
    assert card["fields"]["full_name"] == "Олег Сидоров"
    assert {c["channel"]: c["status"] for c in card["consents"]}["sms"] == "unsubscribed"
