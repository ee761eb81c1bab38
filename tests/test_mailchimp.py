"""The mailchimp connector against the local Marketing API v3 server in tests/fakes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hub_plugins.mailchimp import MailchimpConnector, MailchimpOptions, subscriber_hash

from hub.connector import ConnectorContext
from hub.errors import FatalError, RetriableError
from hub.model import OutboundItem
from tests.conformance import ConnectorConformance, by_external_id, read_all
from tests.fakes.mailchimp import FakeMailchimp

API_KEY = "5f4dcc3b5aa765d61d8327deb882cf99-us21"


def make_connector(fake: FakeMailchimp, tmp_path: Path, **options: Any) -> MailchimpConnector:
    options.setdefault("api_key", fake.api_key)
    options.setdefault("list_id", fake.list_id)
    options.setdefault("endpoint", fake.url + "/3.0")
    options.setdefault("backoff_seconds", 0)
    options.setdefault("max_backoff_seconds", 0)
    context = ConnectorContext("mailchimp", tmp_path, logging.getLogger("test.mailchimp"))
    return MailchimpConnector(MailchimpOptions(**options), context)


@pytest.fixture
def fake():
    with FakeMailchimp(API_KEY) as server:
        yield server


class TestMailchimpConformance(ConnectorConformance):
    resume_may_repeat = True
    break_modes: ClassVar[tuple[str, ...]] = ("bad_key", "server_error", "unknown_audience")

    @pytest.fixture(autouse=True)
    def _server(self):
        with FakeMailchimp(API_KEY) as self.fake:
            yield

    def make_connector(self, tmp_path: Path) -> MailchimpConnector:
        for seed in self.seed_records():
            fields = {k: v for k, v in seed.items() if k not in ("id", "email") and v}
            self.fake.add(seed["email"], **fields)
        return make_connector(self.fake, tmp_path, max_attempts=2)

    def comparable(self, values: dict[str, Any]) -> dict[str, Any]:
        return {("email_address" if k == "email" else k): v for k, v in values.items()
                if k != "id" and v not in ("", None)}

    def outbound_items(self) -> list[OutboundItem]:
        return [
            OutboundItem(101, "upsert", {"full_name": "Сидоров Пётр", "phone": "+79031112233",
                                         "email": "petr@example.ru", "city": "Тверь"}),
            OutboundItem(102, "upsert", {"full_name": "=HYPERLINK(\"http://example.com\",\"x\")",
                                         "phone": "+79035556677", "email": "olga@example.com", "city": "-Тула"}),
        ]

    def change_record(self, connector: MailchimpConnector) -> tuple[str, dict[str, Any]]:
        self.fake.person_edits("anna@example.com", city="Тверь")
        return subscriber_hash("anna@example.com"), {"city": "Тверь"}

    def break_tool(self, connector: MailchimpConnector, mode: str) -> None:
        if mode == "bad_key":
            self.fake.api_key = "ffffffffffffffffffffffffffffffff-us21"
        elif mode == "server_error":
            self.fake.fail("*", 503, times=1000)
        else:
            self.fake.list_id = "0000000000"


def subscribed(contact_id: int, email: str, **fields: Any) -> OutboundItem:
    return OutboundItem(contact_id, "upsert", {"email_address": email, **fields}, consent="subscribed")


def test_members_go_in_batches_of_500_with_errors_item_by_item(fake, tmp_path):
    connector = make_connector(fake, tmp_path)
    items = [subscribed(i, f"user{i}@example.com", FNAME=f"Имя{i}") for i in range(1, 1201)]
    items[7] = subscribed(8, "not-an-address", FNAME="x")
    results = connector.write(items)
    assert fake.calls["batch"] == 3
    assert [len(body["members"]) for body in fake.bodies("batch")] == [500, 500, 200]
    by_contact = {r.contact_id: r for r in results}
    assert by_contact[8].status == "rejected" and "looks fake or invalid" in by_contact[8].error
    assert sum(r.status == "ok" for r in results) == 1199
    assert by_contact[1].external_id == subscriber_hash("user1@example.com")
    assert fake.members[subscriber_hash("user5@example.com")]["status"] == "subscribed"


def test_an_opted_out_contact_is_unsubscribed_and_never_subscribed_again(fake, tmp_path):
    fake.add("gone@example.com", "unsubscribed")
    fake.add("stays@example.com", "subscribed")
    connector = make_connector(fake, tmp_path)
    results = connector.write([
        subscribed(1, "gone@example.com"),  # hub has not heard of the unsubscribe yet
        OutboundItem(2, "upsert", {"email_address": "stays@example.com"}, consent="unsubscribed"),
        OutboundItem(3, "upsert", {"email_address": "new@example.com"}, consent="complained"),
    ])
    assert [r.status for r in results] == ["rejected", "ok", "ok"]
    assert "compliance state" in results[0].error
    assert fake.status_of("gone@example.com") == "unsubscribed"
    assert fake.status_of("stays@example.com") == "unsubscribed"
    assert fake.status_of("new@example.com") == "unsubscribed"


def test_a_contact_without_known_consent_keeps_its_status(fake, tmp_path):
    fake.add("pending@example.com", "pending", FNAME="Old")
    connector = make_connector(fake, tmp_path)
    (result,) = connector.write([OutboundItem(1, "upsert", {"email_address": "pending@example.com", "FNAME": "New"},
                                              consent="pending")])
    assert result.status == "ok"
    member = fake.members[subscriber_hash("pending@example.com")]
    assert member["status"] == "pending" and member["merge_fields"]["FNAME"] == "New"


def test_reading_reports_consent_and_the_unsubscribe_incrementally(fake, tmp_path):
    fake.add("a@example.com", FNAME="A")
    fake.add("b@example.com", "cleaned")
    connector = make_connector(fake, tmp_path)
    records, checkpoint = read_all(connector, None)
    consents = {r.values["email_address"]: r.consents[0].status for r in records}
    assert consents == {"a@example.com": "subscribed", "b@example.com": "bounced"}
    fake.person_unsubscribes("a@example.com", reason="Abuse")
    again, _ = read_all(connector, checkpoint.cursor)
    changed = by_external_id(again)[subscriber_hash("a@example.com")]
    assert changed.consents[0].status == "complained"
    assert dict(changed.consents[0].proof)["reason"] == "Abuse"
    assert "since_last_changed=" in [path for endpoint, _, path in fake.log if endpoint == "members.list"][-1]


def test_pages_of_1000(fake, tmp_path):
    for i in range(2500):
        fake.members[subscriber_hash(f"p{i}@example.com")] = {
            "id": subscriber_hash(f"p{i}@example.com"), "email_address": f"p{i}@example.com",
            "status": "subscribed", "merge_fields": {}, "tags": [], "last_changed": fake.clock.tick()}
    records, _ = read_all(make_connector(fake, tmp_path), None)
    assert len(by_external_id(records)) == 2500
    assert fake.calls["members.list"] == 3


def test_rate_limits_and_server_errors_are_retried_with_retry_after(fake, tmp_path):
    fake.fail("batch", 429, retry_after="0")
    fake.fail("batch", 500)
    connector = make_connector(fake, tmp_path)
    results = connector.write([subscribed(1, "x@example.com")])
    assert results[0].status == "ok"
    assert fake.calls["batch"] == 3
    assert connector.api.retries == 2


def test_html_and_truncated_answers_and_drops_are_retried(fake, tmp_path):
    fake.fail("members.list", 502, body="html")
    fake.fail("members.list", 500, body="truncated")
    fake.fail("members.list", 500, body="drop")
    fake.add("a@example.com")
    records, _ = read_all(make_connector(fake, tmp_path), None)
    assert len(records) == 1


def test_a_failing_batch_leaves_its_items_retriable_and_spares_the_others(fake, tmp_path):
    fake.fail("batch", 503, times=2)
    connector = make_connector(fake, tmp_path, max_attempts=2, batch_size=2)
    results = connector.write([subscribed(i, f"u{i}@example.com") for i in range(1, 5)])
    assert [r.status for r in results] == ["retriable", "retriable", "ok", "ok"]
    assert "HTTP 503" in results[0].error


def test_a_batch_answered_with_a_proxys_page_is_retried_and_the_other_batches_go(project, fake):
    """A 200 whose body is an HTML page (a proxy's) after Mailchimp applied the batch: that
    batch's members are left to retry, the run's other batches are still sent."""
    for i in range(5):
        fake.add(f"m{i}@example.com")
    project.write("clients.csv", "id,full_name,email\n" + "".join(
        f"{i},Иван Петров,m{i}@example.com\n" for i in range(5)))
    project.write("mappings/mailchimp.yaml", "fields:\n  email: {from: email_address, transforms: [email]}\n"
                                             "  full_name: FNAME\n")
    project.config(f"""\
        connectors:
          clients: {{plugin: csv, path: clients.csv, id_column: id}}
          mailchimp:
            plugin: mailchimp
            role: both
            api_key: {fake.api_key}
            list_id: {fake.list_id}
            endpoint: {fake.url}/3.0
            batch_size: 2
            campaign_activity: false
            backoff_seconds: 0
        """)
    fake.fail("batch", 200, body="html", after_apply=True)
    result = project.hub("sync", "--json")
    report = json.loads(result.stdout)
    assert report["counts"]["mailchimp"]["sent"] == 3 and report["counts"]["mailchimp"]["retry"] == 2
    assert fake.calls["batch"] == 3
    names = {fake.members[subscriber_hash(f"m{i}@example.com")]["merge_fields"]["FNAME"] for i in range(5)}
    assert names == {"Иван Петров"}
    fake.reset_counters()
    result = project.hub("sync", "--json")
    assert json.loads(result.stdout)["counts"]["mailchimp"]["sent"] == 2, result.output
    assert [len(body["members"]) for body in fake.bodies("batch")] == [2]  # only the two left to retry


def test_bad_key_is_a_clear_error_without_the_key(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    connector = make_connector(fake, tmp_path, api_key="0000aaaa1111bbbb2222cccc3333dddd-us21")
    with pytest.raises(FatalError) as raised:
        read_all(connector, None)
    assert "API Key Invalid" in str(raised.value)
    assert "0000aaaa1111bbbb2222cccc3333dddd" not in str(raised.value) + caplog.text


def test_retries_give_up_as_retriable(fake, tmp_path):
    fake.fail("members.list", 500, times=10)
    with pytest.raises(RetriableError):
        read_all(make_connector(fake, tmp_path, max_attempts=3), None)
    assert fake.calls["members.list"] == 3


def test_options_need_a_data_center_or_an_endpoint():
    with pytest.raises(ValueError, match="data center"):
        MailchimpOptions(api_key="abcdef", list_id="x")
    assert MailchimpOptions(api_key="abc-us5", list_id="x").base_url == "https://us5.api.mailchimp.com/3.0"


def test_tags_from_the_options_and_the_mapping_are_added(fake, tmp_path):
    fake.add("old@example.com", FNAME="Old")
    fake.members[subscriber_hash("old@example.com")]["tags"] = ["vip"]
    connector = make_connector(fake, tmp_path, tags=["hub"])
    results = connector.write([subscribed(1, "old@example.com", tags="клиент, опт"), subscribed(2, "new@example.com")])
    assert [r.status for r in results] == ["ok", "ok"]
    assert sorted(fake.members[subscriber_hash("old@example.com")]["tags"]) == ["hub", "vip", "клиент", "опт"]
    assert fake.members[subscriber_hash("new@example.com")]["tags"] == ["hub"]
    records = by_external_id(read_all(connector, None)[0])
    assert records[subscriber_hash("old@example.com")].values["tags"] == "hub, vip, клиент, опт"


def test_campaign_sends_opens_and_clicks_are_history_only_records(fake, tmp_path):
    fake.add("a@example.com", FNAME="A")
    fake.add("b@example.com", FNAME="B")
    connector = make_connector(fake, tmp_path)
    _, checkpoint = read_all(connector, None)
    campaign = fake.send_campaign("Осенняя распродажа")
    fake.activity(campaign, "a@example.com", "open")
    fake.activity(campaign, "a@example.com", "click", url="https://shop.example/sale")
    records, checkpoint = read_all(connector, checkpoint.cursor)
    history = {r.external_id: r for r in records if r.history_only}
    a, b = history[subscriber_hash("a@example.com")], history[subscriber_hash("b@example.com")]
    assert [e.type for e in a.events] == ["email_sent", "email_open", "email_click"]
    assert dict(a.events[2].payload)["url"] == "https://shop.example/sale"
    assert [e.type for e in b.events] == ["email_sent"] and a.values == {} and a.history_only
    # later: only new activity of campaigns in the window, never the sends again
    fake.activity(campaign, "b@example.com", "open")
    records, _ = read_all(connector, checkpoint.cursor)
    (again,) = [r for r in records if r.history_only]
    assert again.external_id == subscriber_hash("b@example.com") and [e.type for e in again.events] == ["email_open"]
    assert "since=" in [path for endpoint, _, path in fake.log if endpoint == "reports.email_activity"][-1]


def test_campaign_activity_can_be_turned_off(fake, tmp_path):
    fake.add("a@example.com")
    fake.send_campaign("Новости")
    records, _ = read_all(make_connector(fake, tmp_path, campaign_activity=False), None)
    assert not any(r.history_only for r in records) and fake.calls["campaigns.list"] == 0


def test_segment_tags_are_added_in_the_batch_and_a_left_one_removed_in_one_call(fake, tmp_path):
    fake.add("anna@example.com")
    key = subscriber_hash("anna@example.com")
    fake.members[key]["tags"] = ["vip", "friend"]  # vip from hub, friend set by a person
    fake.add("oleg@example.org")
    connector = make_connector(fake, tmp_path)
    names = ("lapsed", "moscow", "vip")
    results = connector.write([
        OutboundItem(1, "upsert", {"email_address": "anna@example.com", "tags": "moscow"}, consent="subscribed",
                     segment_names=names),
        OutboundItem(2, "upsert", {"email_address": "oleg@example.org", "tags": "vip"}, consent="subscribed",
                     segment_names=names),
        OutboundItem(3, "upsert", {"email_address": "new@example.net", "tags": ""}, consent="subscribed",
                     segment_names=names),
    ])
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert fake.tags_of("anna@example.com") == ["friend", "moscow"]
    assert fake.tags_of("oleg@example.org") == ["vip"]
    assert fake.tags_of("new@example.net") == []
    # one batch; a tags call only for the member that carried a segment it left
    assert fake.calls["batch"] == 1 and fake.calls["members.tags"] == 1
