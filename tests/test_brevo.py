"""The brevo connector against the local Brevo API v3 server in tests/fakes."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hub_plugins.brevo import BrevoConnector, BrevoOptions

from hub.connector import ConnectorContext
from hub.errors import FatalError, RetriableError
from hub.model import OutboundItem
from tests.conformance import ConnectorConformance, by_external_id, read_all
from tests.fakes.brevo import FakeBrevo

API_KEY = "xkeysib-9a8b7c6d5e4f3a2b1c0d-QwErTyUi"


def make_connector(fake: FakeBrevo, tmp_path: Path, **options: Any) -> BrevoConnector:
    options.setdefault("api_key", fake.api_key)
    options.setdefault("list_id", 2)
    options.setdefault("endpoint", fake.url + "/v3")
    options.setdefault("backoff_seconds", 0)
    options.setdefault("max_backoff_seconds", 0)
    options.setdefault("requests_per_second", 1000)
    context = ConnectorContext("brevo", tmp_path, logging.getLogger("test.brevo"))
    return BrevoConnector(BrevoOptions(**options), context, sleep=lambda seconds: None)


@pytest.fixture
def fake():
    with FakeBrevo(API_KEY) as server:
        yield server


class TestBrevoConformance(ConnectorConformance):
    resume_may_repeat = True
    break_modes: ClassVar[tuple[str, ...]] = ("bad_key", "server_error")

    @pytest.fixture(autouse=True)
    def _server(self):
        with FakeBrevo(API_KEY) as self.fake:
            yield

    def make_connector(self, tmp_path: Path) -> BrevoConnector:
        for seed in self.seed_records():
            self.fake.add(seed["email"], **{k: v for k, v in seed.items() if k not in ("id", "email") and v})
        return make_connector(self.fake, tmp_path, max_attempts=2)

    def comparable(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k != "id" and v not in ("", None)}

    def outbound_items(self) -> list[OutboundItem]:
        return [
            OutboundItem(101, "upsert", {"full_name": "Сидоров Пётр", "phone": "+79031112233",
                                         "email": "petr@example.ru", "city": "Тверь"}, consent="subscribed"),
            OutboundItem(102, "upsert", {"full_name": "=1+2", "email": "olga@example.com", "city": "-Тула"},
                         consent="subscribed"),
        ]

    def change_record(self, connector: BrevoConnector) -> tuple[str, dict[str, Any]]:
        contact_id = self.fake.person_edits("anna@example.com", city="Тверь")
        return str(contact_id), {"city": "Тверь"}

    def break_tool(self, connector: BrevoConnector, mode: str) -> None:
        if mode == "bad_key":
            self.fake.api_key = "xkeysib-another"
        else:
            self.fake.fail("*", 500, times=1000)


def item(contact_id: int, email: str, consent: str | None = "subscribed", **attributes: Any) -> OutboundItem:
    return OutboundItem(contact_id, "upsert", {"email": email, **attributes}, consent=consent)


def test_contacts_are_imported_in_bulk_and_invalid_ones_rejected(fake, tmp_path):
    connector = make_connector(fake, tmp_path, batch_size=1000)
    items = [item(i, f"user{i}@example.com", FIRSTNAME=f"Имя{i}") for i in range(1, 2501)]
    items[4] = item(5, "broken@", FIRSTNAME="x")
    results = connector.write(items)
    assert fake.calls["import"] == 3
    assert [len(body["jsonBody"]) for body in fake.bodies("import")] == [1000, 1000, 500]
    statuses = {r.contact_id: r for r in results}
    assert statuses[5].status == "rejected" and "did not import" in statuses[5].error
    assert sum(r.status == "ok" for r in results) == 2499
    assert statuses[1].external_id == str(fake.by_email("user1@example.com")["id"])


def test_opted_out_contacts_are_blacklisted_and_never_lifted(fake, tmp_path):
    fake.add("gone@example.com", blacklisted=True)
    fake.add("stays@example.com")
    connector = make_connector(fake, tmp_path)
    results = connector.write([item(1, "gone@example.com"), item(2, "stays@example.com", "unsubscribed"),
                               item(3, "angry@example.com", "complained")])
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert fake.by_email("gone@example.com")["emailBlacklisted"] is True
    assert fake.by_email("stays@example.com")["emailBlacklisted"] is True
    assert fake.by_email("angry@example.com")["emailBlacklisted"] is True
    assert [body["emailBlacklist"] for body in fake.bodies("import")] == [False, True]


def test_reading_reports_email_and_sms_opt_outs_incrementally(fake, tmp_path):
    fake.add("a@example.com", FIRSTNAME="A")
    connector = make_connector(fake, tmp_path)
    records, checkpoint = read_all(connector, None)
    assert records[0].consents[0].status == "subscribed"
    fake.person_edits("a@example.com", blacklisted=True)
    again, _ = read_all(connector, checkpoint.cursor)
    assert again[0].consents[0].status == "unsubscribed"
    assert "modifiedSince=" in [path for endpoint, _, path in fake.log if endpoint == "list.contacts"][-1]


def test_a_lost_import_answer_is_sent_again_without_duplicates(fake, tmp_path):
    fake.fail("import", 500, after_apply=True)
    fake.fail("import", 429)
    results = make_connector(fake, tmp_path).write([item(1, "x@example.com"), item(2, "y@example.com")])
    assert [r.status for r in results] == ["ok", "ok"]
    assert len(fake.contacts) == 2


def test_an_unfinished_import_leaves_items_retriable(fake, tmp_path):
    results = make_connector(fake, tmp_path, import_polls=1).write([item(1, "x@example.com")])
    assert results[0].status == "retriable" and "not finished" in results[0].error


def test_bad_key_is_a_clear_error_without_the_key(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FatalError, match="Key not found") as raised:
        read_all(make_connector(fake, tmp_path, api_key="xkeysib-wrong-key-123456"), None)
    assert "xkeysib-wrong-key-123456" not in str(raised.value) + caplog.text


def test_pages_of_500_from_the_list(fake, tmp_path):
    for i in range(1200):
        fake.add(f"p{i}@example.com")
    records, _ = read_all(make_connector(fake, tmp_path), None)
    assert len(by_external_id(records)) == 1200
    assert fake.calls["list.contacts"] == 3


def history(records: list[Any]) -> dict[str, Any]:
    return {r.external_id: r for r in records if r.history_only}


def test_transactional_e_mail_activity_becomes_events_with_consent(fake, tmp_path):
    fake.add("a@example.com")
    sent = fake.email_event("A@example.com", "requests", subject="Заказ 17", tag="orders")
    fake.email_event("a@example.com", "delivered", message_id=sent)
    fake.email_event("a@example.com", "opened", message_id=sent, ip="10.1.2.3")
    fake.email_event("a@example.com", "clicks", message_id=sent, link="https://shop.example/o/17")
    fake.email_event("a@example.com", "softBounces", reason="mailbox full")
    fake.email_event("gone@example.com", "hardBounces", reason="550 no such user")
    fake.email_event("angry@example.com", "spam")
    fake.email_event("bye@example.com", "unsubscribed")
    fake.email_event("a@example.com", "deferred")  # a delay is not an event of the person
    records, checkpoint = read_all(make_connector(fake, tmp_path), None)
    found = history(records)
    a = found["a@example.com"]
    assert a.values == {"email": "a@example.com"} and a.consents == ()
    assert [e.type for e in a.events] == ["email_sent", "email_delivered", "email_open", "email_click",
                                          "email_bounce"]
    assert a.events[0].external_id == f"{sent}|a@example.com"
    assert dict(a.events[0].payload)["subject"] == "Заказ 17" and dict(a.events[0].payload)["tag"] == "orders"
    assert dict(a.events[3].payload)["link"] == "https://shop.example/o/17"
    assert "10.1.2.3" not in repr(a.events)  # the reader's IP is not kept
    assert dict(a.events[4].payload)["bounce"] == "soft"
    assert [(c.status, dict(c.proof)["brevo_event"]) for c in found["gone@example.com"].consents] == [
        ("bounced", "hardBounces")]
    assert found["angry@example.com"].consents[0].status == "complained"
    assert found["angry@example.com"].events[0].type == "email_complaint"
    assert found["bye@example.com"].consents[0].status == "unsubscribed"
    cursor = json.loads(checkpoint.cursor)
    assert cursor["events"] == fake.email_events[-1]["at"].astimezone(fake.timezone).date().isoformat()
    (request,) = [path for endpoint, _, path in fake.log if endpoint == "smtp.events"]
    assert "sort=asc" in request and "days=30" in request and "startDate" not in request


def test_e_mail_activity_is_read_in_pages_and_again_from_the_cursor_day(fake, tmp_path):
    for i in range(7):
        fake.email_event(f"p{i}@example.com", "requests")
    connector = make_connector(fake, tmp_path, events_page_size=3)
    records, checkpoint = read_all(connector, None)
    assert len(history(records)) == 7 and fake.calls["smtp.events"] == 3  # 3 + 3 + 1
    offsets = [int(p.split("offset=")[1].split("&")[0]) for e, _, p in fake.log if e == "smtp.events"]
    assert offsets == [0, 3, 6]
    first_ids = {e.external_id for r in records if r.history_only for e in r.events}
    fake.email_event("p0@example.com", "opened", message_id=fake.email_events[0]["messageId"])
    again, checkpoint = read_all(connector, checkpoint.cursor)
    # the day of the cursor is read again (Brevo filters by whole days): the same ids, stored once
    again_ids = {e.external_id for r in again if r.history_only for e in r.events}
    assert first_ids < again_ids and len(again_ids - first_ids) == 1
    days = int([p for e, _, p in fake.log if e == "smtp.events"][-1].split("days=")[1].split("&")[0])
    day = dt.date.fromisoformat(json.loads(checkpoint.cursor)["events"])
    # from the day before the cursor's to tomorrow in UTC (an account's today at most)
    assert days == (dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1) - day).days + 2


def test_an_old_cursor_reads_at_most_the_90_days_brevo_keeps(fake, tmp_path):
    connector = make_connector(fake, tmp_path)
    cursor = json.dumps({"contacts": None, "events": "2020-01-01"})
    read_all(connector, cursor)  # the fake refuses more than 90 days with a 400
    request = [p for e, _, p in fake.log if e == "smtp.events"][-1]
    assert "days=90&" in request or request.endswith("days=90")


def test_e_mail_activity_rides_out_rate_limits_and_server_errors(fake, tmp_path):
    fake.email_event("a@example.com", "requests")
    fake.fail("smtp.events", 429, retry_after="7")
    fake.fail("smtp.events", 500)
    fake.fail("smtp.events", 502, body="html")
    slept: list[float] = []
    connector = make_connector(fake, tmp_path)
    connector.api.sleep = slept.append
    records, _ = read_all(connector, None)
    assert [e.type for e in history(records)["a@example.com"].events] == ["email_sent"]
    assert fake.calls["smtp.events"] == 4 and 7 in slept  # Retry-After waited for


def test_e_mail_activity_can_be_turned_off(fake, tmp_path):
    fake.email_event("a@example.com", "requests")
    records, checkpoint = read_all(make_connector(fake, tmp_path, email_events=False), None)
    assert not history(records) and fake.calls["smtp.events"] == 0
    assert checkpoint.cursor is None or not checkpoint.cursor.startswith("{")


def test_a_key_refused_on_the_activity_report_is_a_clear_error_without_the_key(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail("smtp.events", 500, times=10)
    with pytest.raises(RetriableError) as raised:
        read_all(make_connector(fake, tmp_path, max_attempts=2), None)
    assert "reading the e-mail activity" in str(raised.value)
    assert API_KEY not in str(raised.value) + caplog.text


def test_a_key_without_statistics_access_names_the_way_out(fake, tmp_path):
    fake.statistics_allowed = False
    fake.add("a@example.com")
    with pytest.raises(FatalError) as raised:
        read_all(make_connector(fake, tmp_path), None)
    assert "may not read transactional statistics" in str(raised.value)
    assert "email_events: false" in str(raised.value) and API_KEY not in str(raised.value)
    records, _ = read_all(make_connector(fake, tmp_path, email_events=False), None)  # contacts still read
    assert [r.values["email"] for r in records] == ["a@example.com"] and fake.calls["smtp.events"] == 1


def test_campaign_activity_of_each_list_contact_when_asked_for(fake, tmp_path):
    a = fake.add("a@example.com")
    b = fake.add("b@example.com")
    fake.add("quiet@example.com")
    now = dt.datetime.now(dt.timezone.utc)
    fake.campaign_event("a@example.com", "messagesSent", 7, at=now - dt.timedelta(minutes=9))
    fake.campaign_event("a@example.com", "opened", 7, at=now - dt.timedelta(minutes=8))
    fake.campaign_event("a@example.com", "clicked", 7, at=now - dt.timedelta(minutes=7), url="https://shop.example/s")
    fake.campaign_event("b@example.com", "messagesSent", 7, at=now - dt.timedelta(minutes=9))
    fake.campaign_event("b@example.com", "hardBounces", 7, at=now - dt.timedelta(minutes=8))
    connector = make_connector(fake, tmp_path, campaign_stats=True, email_events=False)
    records, checkpoint = read_all(connector, None)
    found = history(records)
    assert set(found) == {str(a), str(b)}  # keyed by Brevo's contact id, like the contact's record
    assert [e.type for e in found[str(a)].events] == ["email_sent", "email_open", "email_click"]
    assert found[str(a)].events[0].external_id == f"campaign:7|{a}"
    assert dict(found[str(a)].events[2].payload)["link"] == "https://shop.example/s"
    assert "10.0.0.7" not in repr(found)
    assert [(c.status, dict(c.proof)["brevo_campaign"]) for c in found[str(b)].consents] == [("bounced", "7")]
    assert fake.calls["contacts.campaign_stats"] == 3
    assert json.loads(checkpoint.cursor)["campaigns"] == dt.datetime.now(dt.timezone.utc).date().isoformat()
    # the next sync asks from the day before: what was read comes back with the same ids
    fake.campaign_event("b@example.com", "opened", 8)
    again, _ = read_all(connector, checkpoint.cursor)
    ids = {e.external_id for r in again if r.history_only for e in r.events}
    assert {e.external_id for r in found.values() for e in r.events} < ids
    start = [p for e, _, p in fake.log if e == "contacts.campaign_stats"][-1].split("startDate=")[1][:10]
    assert dt.date.fromisoformat(start) == dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)


def test_a_campaign_hard_bounce_brevo_blacklisted_itself_is_a_bounce(fake, project):
    """Brevo blacklists an address a campaign hard-bounced. The contact's blacklist is read
    before the campaign activity, and the bounce that says why ranked below the
    unsubscribe the blacklist had made: the log called it the person's own opt-out."""
    now = dt.datetime.now(dt.timezone.utc)
    fake.timezone = dt.timezone.utc
    fake.add("anna@example.com", blacklisted=True, FIRSTNAME="Анна", LASTNAME="Петрова")
    fake.campaign_event("anna@example.com", "hardBounces", 7, at=now - dt.timedelta(minutes=8))
    fake.add("boris@example.com", blacklisted=True, FIRSTNAME="Борис", LASTNAME="Смирнов")  # nothing said why
    project.config(
        "connectors:\n  brevo: {plugin: brevo, role: both, api_key: " + API_KEY + ", list_id: 2, "
        f"endpoint: \"{fake.url}/v3\", import_poll_seconds: 0, backoff_seconds: 0, email_events: false, "
        "campaign_stats: true}\n"
    )
    for _ in range(2):  # read again: the blacklist does not take the reason away
        result = project.hub("sync", "--json")
        assert result.exit_code == 0, result.output

    def consent(email: str) -> dict:
        card = json.loads(project.hub("show", email, "--json").stdout)
        return {c["channel"]: c for c in card["consents"]}["email"]

    anna = consent("anna@example.com")
    assert (anna["status"], json.loads(anna["proof"]).get("brevo_campaign")) == ("bounced", "7")
    assert "blocklist" not in json.loads(anna["proof"])
    boris = consent("boris@example.com")
    assert (boris["status"], json.loads(boris["proof"])["blocklist"]) == ("unsubscribed", "yes")
    assert fake.by_email("anna@example.com")["emailBlacklisted"] is True  # opted out either way


def test_campaign_activity_is_off_by_default(fake, tmp_path):
    fake.add("a@example.com")
    fake.campaign_event("a@example.com", "messagesSent", 7)
    read_all(make_connector(fake, tmp_path), None)
    assert fake.calls["contacts.campaign_stats"] == 0


def _anna_bounced(fake, project) -> None:
    """Anna's address hard-bounced three days ago; Boris had a delivery today (the activity
    cursor moves to today). Both are in the list, read by a `both` brevo connector."""
    now = dt.datetime.now(dt.timezone.utc)
    fake.timezone = dt.timezone.utc
    fake.add("anna@example.com", FIRSTNAME="Анна", LASTNAME="Петрова")
    fake.add("boris@example.com", FIRSTNAME="Борис", LASTNAME="Смирнов")
    fake.email_event("anna@example.com", "hardBounces", at=now - dt.timedelta(days=3), reason="user unknown")
    fake.email_event("boris@example.com", "delivered", at=now)  # the activity cursor moves to today
    project.config(
        "connectors:\n  brevo: {plugin: brevo, role: both, api_key: " + API_KEY + ", list_id: 2, "
        f"endpoint: \"{fake.url}/v3\", import_poll_seconds: 0, backoff_seconds: 0}}\n"
    )


def test_a_hard_bounce_is_not_lifted_by_the_contact_hub_writes_back(fake, project):
    """A transactional e-mail to Anna hard-bounced: her consent is `bounced`. hub's import
    of her contact into Brevo changes it, and Brevo reads a contact it has not blacklisted
    as subscribed: the next sync lifted the bounce. She is imported blacklisted instead
    (Brevo then reads her blacklisted: opted out, never subscribed)."""
    _anna_bounced(fake, project)

    def consent() -> str:
        card = json.loads(project.hub("show", "anna@example.com", "--json").stdout)
        return {c["channel"]: c["status"] for c in card["consents"]}["email"]

    for _ in range(3):
        result = project.hub("sync", "--json")
        assert result.exit_code == 0, result.output
        assert consent() == "bounced"
    anna = next(c for c in fake.contacts.values() if c["email"] == "anna@example.com")
    assert anna["emailBlacklisted"] is True
    log = json.loads(project.hub("log", "--field", "consent_email", "--json").stdout)
    assert "subscribed" not in [entry["new"] for entry in log if entry["old"] is not None]


def test_a_bounce_hub_imported_blacklisted_stays_a_bounce_in_the_consent_log(fake, project):
    """Brevo's blacklist does not say why. Read back after hub imported Anna's bounced
    address blacklisted, it is no unsubscribe of hers: the log keeps the bounce, and she
    stays opted out. Boris, blacklisted with nothing else known, is unsubscribed."""
    _anna_bounced(fake, project)

    def sync() -> None:
        result = project.hub("sync", "--json")
        assert result.exit_code == 0, result.output

    def consent(email: str) -> dict:
        card = json.loads(project.hub("show", email, "--json").stdout)
        return {c["channel"]: c for c in card["consents"]}["email"]

    def log(email: str) -> list[tuple]:
        contact = json.loads(project.hub("show", email, "--json").stdout)["id"]
        entries = json.loads(project.hub("log", "--field", "consent_email", "--contact", str(contact), "--json").stdout)
        return [(entry["old"], entry["new"], entry["connector"]) for entry in entries]  # oldest first

    for _ in range(3):
        sync()
    anna = consent("anna@example.com")
    assert (anna["status"], anna["source"]) == ("bounced", "brevo")
    assert json.loads(anna["proof"])["brevo_event"] == "hardBounces"
    assert log("anna@example.com") == [(None, "subscribed", "brevo"), ("subscribed", "bounced", "brevo")]
    assert fake.by_email("anna@example.com")["emailBlacklisted"] is True  # still opted out in Brevo
    # the blacklist says what hub holds: no difference to reconcile
    assert json.loads(project.hub("reconcile", "brevo", "--json").stdout)["consent_mismatches"] == []

    fake.person_edits("boris@example.com", blacklisted=True)
    sync()
    assert consent("boris@example.com")["status"] == "unsubscribed"
    assert log("boris@example.com") == [(None, "subscribed", "brevo"), ("subscribed", "unsubscribed", "brevo")]


def test_an_import_refused_for_an_unknown_list_fails_the_write_instead_of_rejecting_each_contact(fake, tmp_path):
    items = [item(1, "x@example.com"), item(2, "y@example.com")]
    with pytest.raises(FatalError, match="List ID 3 does not exist"):
        make_connector(fake, tmp_path, list_id=3).write(items)
    assert not fake.contacts
    assert [r.status for r in make_connector(fake, tmp_path).write(items)] == ["ok", "ok"]
