"""The brevo connector against the local Brevo API v3 server in tests/fakes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hub_plugins.brevo import BrevoConnector, BrevoOptions

from hub.connector import ConnectorContext
from hub.errors import FatalError
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
    assert "modifiedSince=" in fake.log[-1][2]


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
