"""The sendpulse connector against the local SendPulse REST API server in tests/fakes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hub_plugins.sendpulse import SendPulseConnector, SendPulseOptions

from hub.connector import ConnectorContext
from hub.errors import FatalError
from hub.model import OutboundItem
from tests.conformance import ConnectorConformance, read_all
from tests.fakes.sendpulse import FakeSendPulse

CLIENT_SECRET = "5ecret0f5endpu15e0123456789abcdef"


def make_connector(fake: FakeSendPulse, tmp_path: Path, **options: Any) -> SendPulseConnector:
    options.setdefault("client_id", fake.client_id)
    options.setdefault("client_secret", fake.client_secret)
    options.setdefault("address_book_id", fake.book_id)
    options.setdefault("endpoint", fake.url)
    options.setdefault("backoff_seconds", 0)
    options.setdefault("max_backoff_seconds", 0)
    context = ConnectorContext("sendpulse", tmp_path, logging.getLogger("test.sendpulse"))
    return SendPulseConnector(SendPulseOptions(**options), context)


@pytest.fixture
def fake():
    with FakeSendPulse(client_secret=CLIENT_SECRET) as server:
        yield server


class TestSendPulseConformance(ConnectorConformance):
    break_modes: ClassVar[tuple[str, ...]] = ("bad_secret", "server_error", "unknown_book")

    @pytest.fixture(autouse=True)
    def _server(self):
        with FakeSendPulse(client_secret=CLIENT_SECRET, requests_per_second=None) as self.fake:
            yield

    def make_connector(self, tmp_path: Path) -> SendPulseConnector:
        for seed in self.seed_records():
            self.fake.add(seed["email"], **{k: v for k, v in seed.items() if k not in ("id", "email") and v})
        return make_connector(self.fake, tmp_path, max_attempts=2, requests_per_second=10)

    def comparable(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k != "id" and v not in ("", None)}

    def outbound_items(self) -> list[OutboundItem]:
        return [
            OutboundItem(101, "upsert", {"full_name": "Сидоров Пётр", "phone": "+79031112233",
                                         "email": "petr@example.ru", "city": "Тверь"}, consent="subscribed"),
            OutboundItem(102, "upsert", {"full_name": "=1+2", "email": "olga@example.com", "city": "-Тула"},
                         consent="subscribed"),
        ]

    def change_record(self, connector: SendPulseConnector) -> tuple[str, dict[str, Any]]:
        self.fake.person_edits("anna@example.com", city="Тверь")
        return "anna@example.com", {"city": "Тверь"}

    def break_tool(self, connector: SendPulseConnector, mode: str) -> None:
        if mode == "bad_secret":
            self.fake.client_secret = "another-secret"
            self.fake.expire_tokens()
        elif mode == "server_error":
            self.fake.fail("*", 502, times=1000)
        else:
            self.fake.book_id = 999


def item(contact_id: int, email: str, consent: str | None = "subscribed", **variables: Any) -> OutboundItem:
    return OutboundItem(contact_id, "upsert", {"email": email, **variables}, consent=consent)


def test_a_batch_refused_for_one_address_is_sent_again_in_halves(fake, tmp_path):
    items = [item(i, f"u{i}@example.com") for i in range(1, 9)]
    items[5] = item(6, "not an address")
    results = make_connector(fake, tmp_path).write(items)
    assert [r.status for r in results] == ["ok"] * 5 + ["rejected"] + ["ok"] * 2
    assert "Invalid email" in results[5].error
    accepted = [e["email"] for body in fake.bodies("emails.add") for e in body["emails"]]
    # requests: 8 (refused), 4 ok, 4 refused, 2 ok, 2 refused, 1 refused, 1 ok
    assert fake.calls["emails.add"] == 7
    assert len(fake.emails) == 7 and accepted.count("u1@example.com") == 2  # once refused, once accepted


def test_opted_out_contacts_are_unsubscribed_and_adding_never_resubscribes(fake, tmp_path):
    fake.add("gone@example.com", "unsubscribed")
    fake.add("stays@example.com")
    results = make_connector(fake, tmp_path).write([item(1, "gone@example.com", Name="Г"),
                                                    item(2, "stays@example.com", "complained")])
    assert [r.status for r in results] == ["ok", "ok"]
    assert fake.emails["gone@example.com"]["status"] == "unsubscribed"
    assert fake.emails["stays@example.com"]["status"] == "unsubscribed"


def test_an_expired_token_is_fetched_again_once(fake, tmp_path):
    connector = make_connector(fake, tmp_path)
    fake.add("a@example.com")
    read_all(connector, None)
    fake.expire_tokens()
    records, _ = read_all(connector, None)
    assert len(records) == 1 and len(fake.issued) == 2


def test_bad_credentials_are_a_clear_error_without_the_secret(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FatalError, match="Client authentication failed") as raised:
        read_all(make_connector(fake, tmp_path, client_secret="wr0ng-5ecret-value-123"), None)
    assert "wr0ng-5ecret-value-123" not in str(raised.value) + caplog.text


def test_status_becomes_consent_and_requests_stay_under_ten_a_second(fake, tmp_path):
    for i in range(450):
        fake.add(f"p{i}@example.com", status=["active", "unsubscribed", "spam", "bounced", "unconfirmed"][i % 5])
    records, _ = read_all(make_connector(fake, tmp_path), None)
    assert [r.consents[0].status for r in records[:5]] == ["subscribed", "unsubscribed", "complained", "bounced",
                                                           "pending"]
    assert fake.calls["emails.list"] == 5 and fake.rate_limited == 0


def test_an_address_named_in_the_refusal_is_rejected_and_the_rest_sent_at_once(fake, tmp_path):
    fake.refused.update({"u3@example.com", "u7@example.com"})
    items = [item(i, f"u{i}@example.com") for i in range(1, 11)]
    results = make_connector(fake, tmp_path).write(items)
    assert [r.contact_id for r in results if r.status == "rejected"] == [3, 7]
    assert "u3@example.com" in results[2].error
    assert fake.calls["emails.add"] == 3 and len(fake.emails) == 8


def _source(fake, project, more: str = "") -> None:
    """hub.yaml with the fake's book as a source (``more``: further options)."""
    extra = f", {more}" if more else ""
    project.config(
        "connectors:\n  sendpulse: {plugin: sendpulse, role: source, "
        f"client_id: {fake.client_id}, client_secret: {fake.client_secret}, address_book_id: {fake.book_id}, "
        f"endpoint: \"{fake.url}\", backoff_seconds: 0{extra}}}\n"
    )


def _linked(project):
    """A function counting the records linked to contacts (``hub export links``)."""
    return lambda: len(json.loads(project.hub("export", "links", "--format", "json").stdout))


def test_an_unchanged_book_removes_nothing_and_a_deleted_address_is_removed(fake, project):
    """The book is read again only when it changed: an unchanged one must not read as emptied
    (the mass-delete guard stopped every later sync, and --allow-mass-delete removed all)."""
    for i in range(40):
        fake.add(f"p{i}@example.com", Name=f"Клиент {i}")
    _source(fake, project)
    live = _linked(project)

    for _ in range(3):
        result = project.hub("sync", "--json")
        assert result.exit_code == 0, result.output
        assert live() == 40
    with fake.lock:
        del fake.emails["p7@example.com"]
    result = project.hub("sync", "--json")
    assert result.exit_code == 0, result.output
    assert live() == 39


def test_an_error_answered_with_200_for_a_page_fails_the_read_and_removes_nothing(fake, project):
    """SendPulse may answer a page of the book with its error shape and status 200. Read as
    an empty last page, the records of that page looked gone: fewer than the guard's 5%
    were removed from the store without a word. The read now fails, and nothing goes."""
    for i in range(2050):
        fake.add(f"p{i:04d}@example.com", Name=f"Клиент {i}")
    _source(fake, project, "max_backoff_seconds: 0, max_attempts: 2")
    live = _linked(project)

    assert project.hub("sync", "--json").exit_code == 0
    assert live() == 2050
    fake.person_edits("p0000@example.com", Name="Клиентка 0")  # the book changed: read again
    fake.fail("emails.list", 200, times=10, skip=20)  # pages 1-20 fine, the last (50 records) an error
    result = project.hub("sync", "--json")
    assert result.exit_code != 0
    report = json.loads(result.stdout)
    assert report["counts"]["sendpulse"]["removed"] == 0
    assert "listing the address book" in result.output
    assert live() == 2050


def test_an_unknown_address_book_fails_the_write_instead_of_rejecting_each_contact(fake, tmp_path):
    # a refusal that names no address ("Book not found") is not about the contacts: they
    # stay queued for the sync after the book id is fixed, rather than rejected for good
    items = [item(i, f"u{i}@example.com") for i in range(1, 9)]
    with pytest.raises(FatalError, match="Book not found"):
        make_connector(fake, tmp_path, address_book_id=999).write(items)
    assert fake.calls["emails.add"] == 1
    assert [r.status for r in make_connector(fake, tmp_path).write(items)] == ["ok"] * 8
