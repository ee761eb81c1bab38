"""The smsru connector against the local SMS.ru server in tests/fakes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hub_plugins.smsru import SmsRuConnector, SmsRuOptions

from hub.connector import ConnectorContext
from hub.errors import FatalError
from hub.model import OutboundItem
from tests.conformance import ConnectorConformance, read_all
from tests.fakes.smsru import FakeSmsRu

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
