"""The unisender connector against the local Unisender API server in tests/fakes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hub_plugins.unisender import UnisenderConnector, UnisenderOptions

from hub.connector import ConnectorContext
from hub.errors import FatalError, RetriableError
from hub.model import OutboundItem
from tests.conformance import ConnectorConformance, read_all
from tests.fakes.unisender import FakeUnisender

API_KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"
FIELDS = ["full_name", "phone", "city"]


def make_connector(fake: FakeUnisender, tmp_path: Path, **options: Any) -> UnisenderConnector:
    options.setdefault("api_key", fake.api_key)
    options.setdefault("list_id", fake.list_id)
    options.setdefault("fields", FIELDS)
    options.setdefault("endpoint", fake.url)
    options.setdefault("backoff_seconds", 0)
    options.setdefault("max_backoff_seconds", 0)
    options.setdefault("requests_per_second", 1000)
    context = ConnectorContext("unisender", tmp_path, logging.getLogger("test.unisender"))
    return UnisenderConnector(UnisenderOptions(**options), context)


@pytest.fixture
def fake():
    with FakeUnisender(API_KEY) as server:
        yield server


class TestUnisenderConformance(ConnectorConformance):
    break_modes: ClassVar[tuple[str, ...]] = ("bad_key", "server_error", "unknown_list")

    @pytest.fixture(autouse=True)
    def _server(self):
        with FakeUnisender(API_KEY) as self.fake:
            yield

    def make_connector(self, tmp_path: Path) -> UnisenderConnector:
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

    def change_record(self, connector: UnisenderConnector) -> tuple[str, dict[str, Any]]:
        self.fake.person_edits("anna@example.com", city="Тверь")
        return "anna@example.com", {"city": "Тверь"}

    def break_tool(self, connector: UnisenderConnector, mode: str) -> None:
        if mode == "bad_key":
            self.fake.api_key = "another-key-0000"
        elif mode == "server_error":
            self.fake.fail("*", 503, times=1000)
        else:
            self.fake.list_id = 12345


def item(contact_id: int, email: str, consent: str | None = "subscribed", external_id: str | None = None,
         **fields: Any) -> OutboundItem:
    return OutboundItem(contact_id, "upsert", {"email": email, **fields}, external_id=external_id, consent=consent)


def test_imports_of_500_rows_with_rejected_rows_item_by_item(fake, tmp_path):
    items = [item(i, f"u{i}@example.com", Name=f"Имя{i}") for i in range(1, 1101)]
    items[600] = item(601, "broken@", Name="x")
    results = make_connector(fake, tmp_path).write(items)
    assert fake.calls["importContacts"] == 3
    assert results[600].status == "rejected" and "Invalid email address" in results[600].error
    assert sum(r.status == "ok" for r in results) == 1099
    assert fake.contacts["u1@example.com"]["email_status"] == "active"


def test_the_key_never_travels_in_the_url_nor_appears_in_errors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake.fail("exportContacts", 500, times=2)
    connector = make_connector(fake, tmp_path, max_attempts=2)
    with pytest.raises(RetriableError) as raised:
        read_all(connector, None)
    assert fake.keys_in_query == 0
    assert API_KEY not in str(raised.value) + caplog.text
    with pytest.raises(FatalError, match="invalid api key") as bad:
        read_all(make_connector(fake, tmp_path, api_key="0123456789-wrong-key"), None)
    assert "0123456789-wrong-key" not in str(bad.value)


def test_too_many_requests_in_a_200_answer_is_retried(fake, tmp_path):
    fake.fail("importContacts", 429)
    results = make_connector(fake, tmp_path).write([item(1, "a@example.com")])
    assert results[0].status == "ok" and fake.calls["importContacts"] == 2


def test_statuses_are_never_changed_without_reason_and_opt_outs_unsubscribe(fake, tmp_path):
    fake.add("gone@example.com", "unsubscribed")
    fake.add("pending@example.com", "activation_requested")
    fake.add("stays@example.com")
    results = make_connector(fake, tmp_path).write([
        item(1, "gone@example.com"),  # hub has not heard of the unsubscribe: the status is Unisender's
        item(2, "pending@example.com", "pending", external_id="pending@example.com", Name="P"),
        item(3, "stays@example.com", "unsubscribed", external_id="stays@example.com"),
    ])
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert fake.contacts["gone@example.com"]["email_status"] == "unsubscribed"
    assert fake.contacts["pending@example.com"]["email_status"] == "activation_requested"
    assert fake.contacts["stays@example.com"]["email_status"] == "unsubscribed"


def test_consent_from_email_status(fake, tmp_path):
    fake.add("a@example.com", "active")
    fake.add("b@example.com", "blocked")
    records, _ = read_all(make_connector(fake, tmp_path), None)
    assert {r.external_id: r.consents[0].status for r in records} == {"a@example.com": "subscribed",
                                                                      "b@example.com": "complained"}
