"""Yandex Metrica Logs API connector and the linking of visitors to contacts.

A Tilda form is posted to a running ``hub serve`` (stored in its inbox), Metrica's
visits come from a fake Logs API server through the real connector, and ``hub sync``
puts both on one client card (``hub show``): channel, campaign, device, region.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
import requests
from click.testing import CliRunner
from hub_plugins.yandex_metrica import FIELDS, MetricaConnector, MetricaOptions
from sqlalchemy import func, insert, select

from hub.connector import ConnectorContext
from hub.store.schema import changes, consents, contacts, events, identifiers, merge_moves, pending_visits
from tests.conformance import ConnectorConformance
from tests.fakes.yandex_metrica import FakeMetrica

TOKEN = "y0_metrica-oauth-token-5c1e7a"
COUNTER = 44556677
TILDA_KEY = "tilda-api-key-0b7d"
YM_UID = "1712345678901234567"
OTHER_UID = "1699999999000000001"
ZONE = ZoneInfo("Europe/Moscow")

MAPPING = """\
fields:
  full_name: {from: [Name, name], transforms: [split_name]}
  phone: {from: [Phone, phone], transforms: [phone]}
  email: {from: [Email, email], transforms: [email]}
"""


def day(n: int) -> str:
    """The date ``n`` days before today in the counter's time zone."""
    return (dt.datetime.now(ZONE).date() - dt.timedelta(days=n)).isoformat()


def tilda_form(tranid: str, name: str, email: str, phone: str, ym_uid: str) -> dict[str, str]:
    return {"Name": name, "Email": email, "Phone": phone, "tranid": tranid, "formname": "Заявка",
            "COOKIES": f"_ym_uid={ym_uid}; _ga=GA1.2.987654321.1712345678", "api_key": TILDA_KEY}


class Site:
    """A project with a Tilda endpoint on a running hub serve and a Metrica connector."""

    def __init__(self, root: Path, metrica: FakeMetrica | None, *, extra: str = "", analytics: str | None = None,
                 store_url: str | None = None, serve_sync: bool = False):
        from hub.config import load_config
        from hub.plugins import connector_classes
        from hub.serve import Server
        from hub.store import open_store

        self.root = root
        (root / "mappings").mkdir(exist_ok=True)
        (root / "mappings" / "tilda.yaml").write_text(MAPPING, encoding="utf-8")
        (root / "hub.yaml").write_text(
            f"store: {store_url or 'sqlite:///' + str(root / 'hub.db')}\n"
            "connectors:\n"
            "  tilda:\n    plugin: webhook\n    format: tilda\n    api_key: $HUB_TEST_TILDA_KEY\n"
            + (analytics if metrica is None else
               "  metrica:\n    plugin: yandex_metrica\n    counter_id: 44556677\n    token: $HUB_TEST_METRICA_TOKEN\n"
               f"    endpoint: {metrica.url}\n    initial_days: 5\n    poll_seconds: 0\n    backoff_seconds: 0\n")
            + extra, encoding="utf-8")
        self.config = load_config(root / "hub.yaml", connector_classes())
        self.store = open_store(self.config.store_url)
        self.server = Server(self.config, self.store, "127.0.0.1", 0, threads=4, sync=serve_sync,
                             sync_delay=0.05).start()
        self.url = f"http://127.0.0.1:{self.server.port}"

    def post_form(self, form: dict[str, str]) -> None:
        answer = requests.post(self.url + "/hooks/tilda", data=form, timeout=30)
        assert answer.status_code == 200, answer.text

    def hub(self, *args: str, ok: bool = True) -> str:
        from hub.cli import main

        result = CliRunner().invoke(main, ["-c", str(self.root / "hub.yaml"), *args])
        assert result.exit_code == 0 or not ok, result.output
        return result.stdout

    def sync(self, *only: str) -> dict:
        return json.loads(self.hub("sync", "--json", *only, ok=False))

    def card(self, ref: str) -> dict:
        return json.loads(self.hub("show", "--json", ref))

    def close(self) -> None:
        self.server.stop()
        self.store.dispose()


@pytest.fixture
def metrica() -> Iterator[FakeMetrica]:
    with FakeMetrica(TOKEN, COUNTER, part_rows=2) as fake:
        yield fake


@pytest.fixture
def site(tmp_path: Path, metrica: FakeMetrica, monkeypatch: pytest.MonkeyPatch, store_url: str) -> Iterator[Site]:
    monkeypatch.setenv("HUB_TEST_TILDA_KEY", TILDA_KEY)
    monkeypatch.setenv("HUB_TEST_METRICA_TOKEN", TOKEN)
    served = Site(tmp_path, metrica, store_url=store_url)
    yield served
    served.close()


def add_visits(metrica: FakeMetrica) -> None:
    metrica.visit(9001, YM_UID, f"{day(4)} 09:15:00", lastTrafficSource="ad", UTMSource="yandex", UTMMedium="cpc",
                  UTMCampaign="spring_sale", deviceCategory="2", regionCountry="Russia", regionCity="Kazan",
                  goalsID="[123,456]")
    metrica.visit(9002, YM_UID, f"{day(2)} 18:40:10", lastTrafficSource="organic", deviceCategory="1",
                  regionCountry="Russia", regionCity="Moscow")
    metrica.visit(9003, OTHER_UID, f"{day(2)} 11:00:00", lastTrafficSource="direct", deviceCategory="1")
    metrica.visit(9004, "0", f"{day(1)} 12:00:00", lastTrafficSource="direct")  # no ClientID: no one's
    metrica.visit(9005, YM_UID, f"{day(1)} 08:00:00", lastTrafficSource="social", UTMSource="vk",
                  UTMMedium="social", UTMCampaign="autumn", deviceCategory="2", regionCountry="Russia",
                  regionCity="Moscow", UTMTerm="tab\tin\\term")


def test_a_tilda_form_and_the_metrica_visits_of_its_client_id_make_one_client_card(
        site: Site, metrica: FakeMetrica) -> None:
    site.post_form(tilda_form("t1:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
    add_visits(metrica)
    report = site.sync()
    assert report["status"] == "ok", report["errors"]
    card = site.card(f"ym_client_id:{YM_UID}")
    assert card == site.card("ivan@example.ru")
    fields = card["fields"]
    assert fields["first_touch_channel"] == "ad" and fields["first_touch_source"] == "yandex"
    assert fields["first_touch_medium"] == "cpc" and fields["first_touch_campaign"] == "spring_sale"
    assert fields["last_touch_channel"] == "social" and fields["last_touch_campaign"] == "autumn"
    assert (fields["device"], fields["visit_region"], fields["visit_city"]) == ("mobile", "Russia", "Moscow")
    assert fields["visits"] == 3
    assert {"kind": "ym_client_id", "value": YM_UID} in card["identifiers"]
    assert {"kind": "ga_client_id", "value": "987654321.1712345678"} in card["identifiers"]
    visits = [e for e in card["events"] if e["type"] == "visit"]
    assert len(visits) == 3 and {e["source"] for e in visits} == {"metrica"}
    assert visits[0]["payload"]["goals"] == "123,456"
    assert visits[-1]["payload"]["term"] == "tab\tin\\term"  # the TSV escapes undone
    assert any(h["field"] == "first_touch_campaign" and h["new"] == "spring_sale" for h in card["history"])
    # the other visitor is no one's yet; the visit without a ClientID is dropped
    with site.store.connect() as c:
        assert [r.value for r in c.execute(select(pending_visits))] == [OTHER_UID]
        assert c.execute(select(func.count()).select_from(contacts)).scalar() == 1
    # every log request was cleaned; never more than 3 requests in flight
    assert metrica.statuses() == ["cleaned_by_user"]
    assert metrica.calls["download"] == 3 and metrica.rate_limited == 0 and metrica.peak_concurrent <= 3
    text = site.hub("show", "ivan@example.ru")
    assert "first_touch_campaign: spring_sale" in text and "visit_city: Moscow" in text


def test_visits_read_before_the_form_wait_for_it(site: Site, metrica: FakeMetrica) -> None:
    add_visits(metrica)
    site.sync()
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(contacts)).scalar() == 0  # visits create no one
        assert c.execute(select(func.count()).select_from(pending_visits)).scalar() == 4
    site.post_form(tilda_form("t2:1", "Анна Смирнова", "anna@example.ru", "+7 903 555-11-22", OTHER_UID))
    report = site.sync("tilda")
    assert report["status"] == "ok"
    fields = site.card(f"ym_client_id:{OTHER_UID}")["fields"]
    assert fields["first_touch_channel"] == "direct" and fields["visits"] == 1 and fields["device"] == "desktop"
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(pending_visits)).scalar() == 3


def test_hub_serve_attaches_waiting_visits_as_the_form_arrives(tmp_path: Path, metrica: FakeMetrica,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TEST_TILDA_KEY", TILDA_KEY)
    monkeypatch.setenv("HUB_TEST_METRICA_TOKEN", TOKEN)
    served = Site(tmp_path, metrica, serve_sync=True)
    try:
        assert served.server.worker is not None and served.server.worker.wait_idle(60)  # its start-up sync
        add_visits(metrica)
        assert served.sync("metrica")["status"] == "ok"  # hub sync from cron: the visits wait
        served.post_form(tilda_form("t10:1", "Анна Смирнова", "anna@example.ru", "+7 903 555-11-22", OTHER_UID))
        assert served.server.worker.wait_idle(60)
        fields = served.card("anna@example.ru")["fields"]  # hub serve's own sync attached them
        assert fields["first_touch_channel"] == "direct" and fields["visits"] == 1
    finally:
        served.close()


def test_one_browser_two_people_stay_two_contacts(site: Site, metrica: FakeMetrica) -> None:
    """A shared client id is not identity evidence: it links visits, it never merges."""
    site.post_form(tilda_form("t3:1", "Ольга Кузнецова", "olga@example.ru", "+7 926 111-22-33", YM_UID))
    site.post_form(tilda_form("t3:2", "Пётр Кузнецов", "petr@example.ru", "+7 926 444-55-66", YM_UID))
    add_visits(metrica)
    site.sync()
    with site.store.connect() as c:
        holders = sorted(c.execute(select(identifiers.c.contact_id).where(identifiers.c.value == YM_UID)).scalars())
        assert len(holders) == 2 and c.execute(select(func.count()).select_from(contacts)).scalar() == 2
        owners = set(c.execute(select(events.c.contact_id).where(events.c.type == "visit")).scalars())
    assert owners == {holders[0]}  # the visits go to one of them, the smallest id, on every run
    assert site.card("olga@example.ru")["id"] != site.card("petr@example.ru")["id"]


def test_the_next_run_reads_from_the_cursor_and_adds_no_visit_twice(site: Site, metrica: FakeMetrica) -> None:
    site.post_form(tilda_form("t4:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
    add_visits(metrica)
    site.sync()
    with site.store.connect() as c:
        logged = c.execute(select(func.count()).select_from(changes)).scalar()
    assert [request.arg("date1") for name, request in metrica.requests if name == "create"] == [day(5)]
    site.sync()
    # the last day loaded was yesterday: the lookback of 3 days is read again, nothing is new
    assert [request.arg("date1") for name, request in metrica.requests if name == "create"][-1] == day(3)
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(events).where(events.c.type == "visit")).scalar() == 3
        assert c.execute(select(func.count()).select_from(changes)).scalar() == logged
    assert metrica.statuses() == ["cleaned_by_user", "cleaned_by_user"]


def test_quota_answers_are_retried(site: Site, metrica: FakeMetrica) -> None:
    site.post_form(tilda_form("t5:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
    add_visits(metrica)
    metrica.fail("create", 420, retry_after="0")
    metrica.fail("download", 429, times=2, retry_after="0")
    metrica.fail("status", 503)
    report = site.sync()
    assert report["status"] == "ok", report["errors"]
    assert metrica.calls["create"] == 2 and metrica.calls["download"] == 5
    assert len(metrica.log_requests) == 1  # the refused create made nothing
    assert site.card("ivan@example.ru")["fields"]["visits"] == 3


def test_a_failed_read_still_cleans_its_log_request_and_keeps_the_cursor(site: Site, metrica: FakeMetrica) -> None:
    add_visits(metrica)
    metrica.fail("download", 500, times=100)
    report = site.sync("metrica")
    assert report["status"] == "failed" and "download part" in report["errors"][0]
    assert TOKEN not in json.dumps(report)
    assert metrica.statuses() == ["cleaned_by_user"]
    metrica.faults.clear()
    assert site.sync("metrica")["status"] == "ok"
    assert [request.arg("date1") for name, request in metrica.requests if name == "create"] == [day(5), day(5)]
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(pending_visits)).scalar() == 4


def test_a_request_not_processed_in_time_is_canceled(site: Site, metrica: FakeMetrica, tmp_path: Path) -> None:
    metrica.polls = 10_000
    site.close()
    site.__init__(tmp_path, metrica, extra="    max_wait_seconds: 0.005\n", store_url=site.config.store_url)  # type: ignore[misc]
    report = site.sync("metrica")
    assert report["status"] == "failed" and "not processed" in report["errors"][0]
    assert metrica.statuses() == ["canceled"]


def test_a_long_range_is_split_as_evaluate_says(site: Site, metrica: FakeMetrica) -> None:
    metrica.max_days = 2
    add_visits(metrica)
    assert site.sync("metrica")["status"] == "ok"
    created = [(r.arg("date1"), r.arg("date2")) for name, r in metrica.requests if name == "create"]
    assert created == [(day(5), day(4)), (day(3), day(2)), (day(1), day(1))]
    assert metrica.statuses() == ["cleaned_by_user"] * 3


def test_a_request_left_by_a_killed_run_is_reused(site: Site, metrica: FakeMetrica) -> None:
    add_visits(metrica)
    fields = ",".join(name for name, _ in FIELDS)
    left = requests.post(f"{metrica.url}/management/v1/counter/{COUNTER}/logrequests", timeout=10,
                         params={"date1": day(5), "date2": day(1), "fields": fields, "source": "visits"},
                         headers={"Authorization": f"OAuth {TOKEN}"}).json()["log_request"]
    assert site.sync("metrica")["status"] == "ok"
    assert metrica.calls["create"] == 1  # only the one above
    assert metrica.log_requests[left["request_id"]]["status"] == "cleaned_by_user"


def test_wrong_token_is_a_clear_error(site: Site, metrica: FakeMetrica) -> None:
    metrica.token = "another"
    report = site.sync("metrica")
    assert report["status"] == "failed"
    assert "access_denied" in report["errors"][0] and TOKEN not in report["errors"][0]


def test_three_parallel_downloads_at_most(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TEST_TILDA_KEY", TILDA_KEY)
    monkeypatch.setenv("HUB_TEST_METRICA_TOKEN", TOKEN)
    with FakeMetrica(TOKEN, COUNTER, part_rows=1) as fake:
        fake.latency = 0.02  # answers overlap
        for n in range(12):
            fake.visit(7000 + n, str(1700000000000000000 + n), f"{day(1)} 10:{n:02d}:00", lastTrafficSource="direct")
        served = Site(tmp_path, fake)
        try:
            assert served.sync("metrica")["status"] == "ok"
        finally:
            served.close()
        assert fake.calls["download"] == 12 and fake.rate_limited == 0 and fake.peak_concurrent <= 3


def test_a_merge_brings_the_client_ids_and_visits_together(site: Site, metrica: FakeMetrica) -> None:
    site.post_form({**tilda_form("t6:1", "Иван Петров", "ivan@example.ru", "", YM_UID), "Phone": ""})
    site.post_form({**tilda_form("t6:2", "", "", "+7 916 123-45-67", OTHER_UID), "Email": "", "Name": ""})
    add_visits(metrica)
    site.sync()
    assert site.card("ivan@example.ru")["id"] != site.card("+79161234567")["id"]
    assert site.card("ivan@example.ru")["fields"]["visits"] == 3
    # a later form with both the e-mail and the phone: one person
    site.post_form(tilda_form("t6:3", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
    assert site.sync("tilda")["status"] == "ok"
    card = site.card(f"ym_client_id:{OTHER_UID}")
    assert card["id"] == site.card(f"ym_client_id:{YM_UID}")["id"] == site.card("ivan@example.ru")["id"]
    assert card["fields"]["visits"] == 4 and card["fields"]["first_touch_campaign"] == "spring_sale"
    with site.store.connect() as c:
        assert set(c.execute(select(events.c.contact_id).where(events.c.type == "visit")).scalars()) == {card["id"]}


def test_a_forgotten_persons_client_id_brings_no_visits_back(site: Site, metrica: FakeMetrica) -> None:
    site.post_form(tilda_form("t7:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
    add_visits(metrica)
    site.sync()
    site.hub("forget", "--email", "ivan@example.ru")
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(identifiers).where(identifiers.c.value == YM_UID)
                         ).scalar() == 0
        assert c.execute(select(func.count()).select_from(events)).scalar() == 0
    metrica.visit(9100, YM_UID, f"{day(1)} 21:00:00", lastTrafficSource="direct")
    assert site.sync("metrica")["status"] == "ok"
    with site.store.connect() as c:  # the erased visitor's visits are neither attached nor kept waiting
        assert [r.value for r in c.execute(select(pending_visits))] == [OTHER_UID]
        assert c.execute(select(func.count()).select_from(events)).scalar() == 0


class TestMetricaConformance(ConnectorConformance):
    full_read_is_complete = False  # visits are history, never the whole tool
    resume_may_repeat = True  # the lookback days are read again
    break_modes: ClassVar[tuple[str, ...]] = ("bad_token", "server_error")

    @pytest.fixture(autouse=True)
    def _server(self) -> Iterator[None]:
        with FakeMetrica(TOKEN, COUNTER) as self.fake:
            yield

    def seed_records(self) -> list[dict[str, Any]]:
        return [{"client_id": "1700000000000000001"}, {"client_id": "1700000000000000002"},
                {"client_id": "1700000000000000003"}]

    def make_connector(self, tmp_path: Path) -> MetricaConnector:
        for n, seed in enumerate(self.seed_records()):
            self.fake.visit(100 + n, seed["client_id"], f"{day(2)} 10:0{n}:00", lastTrafficSource="direct")
        options = MetricaOptions(counter_id=COUNTER, token=TOKEN, endpoint=self.fake.url, initial_days=3,
                                 poll_seconds=0, backoff_seconds=0, max_backoff_seconds=0, max_attempts=2)
        return MetricaConnector(options, ConnectorContext("metrica", tmp_path, logging.getLogger("test.metrica")))

    def change_record(self, connector: MetricaConnector) -> tuple[str, dict[str, Any]]:
        self.fake.visit(200, "1700000000000000009", f"{day(1)} 12:00:00", lastTrafficSource="organic")
        return "200", {"client_id": "1700000000000000009"}

    def break_tool(self, connector: MetricaConnector, mode: str) -> None:
        if mode == "bad_token":
            self.fake.token = "another"
        else:
            self.fake.fail("*", 503, times=1000)


@pytest.mark.parametrize(("option", "message"), [
    ("    parallel: 4\n", "connectors.metrica.parallel"),
    ("    timezone: Mars/Olympus\n", "unknown time zone 'Mars/Olympus'"),
    ("    counter: 1\n", "connectors.metrica.counter"),
])
def test_bad_options_name_the_key(project, option: str, message: str) -> None:  # type: ignore[no-untyped-def]
    project.config("connectors:\n  metrica:\n    plugin: yandex_metrica\n    counter_id: 1\n    token: t\n" + option)
    result = project.hub("check")
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("ym_client_id", " 1712345678901234567 ", "1712345678901234567"),
    ("ym_client_id", "<script>alert(1)</script>", None),
    ("ym_client_id", "12", None),
    ("ga_client_id", "987654321.1712345678", "987654321.1712345678"),
    ("ga_client_id", "GA1.2.987654321.1712345678", None),  # the raw cookie: the webhook strips it first
    ("ga_user_id", "u-42", "u-42"),
    ("ga_user_id", "a\x00b", None),
    ("email", "x@example.ru", None),
])
def test_client_ids_are_checked(kind: str, value: str, expected: str | None) -> None:
    from hub.analytics import client_id

    assert client_id(kind, value) == expected


def test_pending_days_zero_keeps_no_unmatched_visit(tmp_path: Path, metrica: FakeMetrica,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TEST_TILDA_KEY", TILDA_KEY)
    monkeypatch.setenv("HUB_TEST_METRICA_TOKEN", TOKEN)
    served = Site(tmp_path, metrica, extra="    pending_days: 0\n")
    try:
        served.post_form(tilda_form("t8:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
        add_visits(metrica)
        assert served.sync()["status"] == "ok"
        assert served.card("ivan@example.ru")["fields"]["visits"] == 3  # matched visits are kept all the same
        with served.store.connect() as c:
            assert c.execute(select(func.count()).select_from(pending_visits)).scalar() == 0
    finally:
        served.close()


def test_web_fields_are_logged_as_analytics_and_left_by_undo(site: Site, metrica: FakeMetrica) -> None:
    site.post_form(tilda_form("t9:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
    site.sync("tilda")
    add_visits(metrica)
    run = site.sync("metrica")["run_id"]
    logged = json.loads(site.hub("log", "--json", "--run", str(run)))
    assert logged and {entry["reason"] for entry in logged} == {"analytics"}
    assert {entry["field"] for entry in logged} >= {"first_touch_channel", "visits", "device"}
    site.hub("undo", str(run))
    assert site.card("ivan@example.ru")["fields"]["visits"] == 3  # the visits are still the contact's


def test_a_split_gives_the_merged_away_contact_its_visits_client_id_and_consent_back(
    site: Site, metrica: FakeMetrica
) -> None:
    site.post_form({**tilda_form("t8:1", "Иван Петров", "ivan@example.ru", "", YM_UID), "Phone": ""})
    site.post_form({**tilda_form("t8:2", "", "", "+7 916 123-45-67", OTHER_UID), "Email": "", "Name": ""})
    add_visits(metrica)
    site.sync()
    ivan, phone = site.card("ivan@example.ru")["id"], site.card("+79161234567")["id"]
    with site.store.begin() as c:  # the number's owner said no to SMS somewhere
        c.execute(insert(consents).values(contact_id=phone, channel="sms", status="unsubscribed", source="smsru",
                                          at=dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc), proof='{"k": "v"}'))

    def visits() -> dict[str, int]:
        with site.store.connect() as c:
            return dict(c.execute(select(events.c.external_id, events.c.contact_id).where(events.c.type == "visit")).all())

    before = visits()
    assert set(before.values()) == {ivan, phone}
    merged = json.loads(site.hub("merge", str(ivan), str(phone), "--json"))
    survivor, loser = merged["contact"], merged["merged"]
    assert set(visits().values()) == {survivor}
    assert site.card(f"ym_client_id:{OTHER_UID}")["id"] == survivor
    assert site.card(str(survivor))["fields"]["visits"] == 4

    site.hub("split", str(survivor))
    assert visits() == before
    assert site.card(f"ym_client_id:{OTHER_UID}")["id"] == phone
    assert site.card(f"ym_client_id:{YM_UID}")["id"] == ivan
    assert site.card(str(ivan))["fields"]["visits"] == 3 and site.card(str(phone))["fields"]["visits"] == 1
    with site.store.connect() as c:
        kept = {(r.contact_id, r.channel): (r.status, r.source, r.proof) for r in c.execute(select(consents))}
        assert kept[(phone, "sms")] == ("unsubscribed", "smsru", '{"k": "v"}')
        assert kept[(ivan, "sms")][0] == "unsubscribed"  # the survivor keeps the strictest: the safe side
        assert c.execute(select(func.count()).select_from(merge_moves)).scalar() == 0
    log = json.loads(site.hub("log", "--contact", str(loser), "--json"))
    assert ("consent_sms", "split") in {(r["field"], r["reason"]) for r in log}


def test_forgetting_a_merged_person_forgets_what_the_merge_moved(site: Site, metrica: FakeMetrica) -> None:
    site.post_form({**tilda_form("t9:1", "Иван Петров", "ivan@example.ru", "", YM_UID), "Phone": ""})
    site.post_form({**tilda_form("t9:2", "", "", "+7 916 123-45-67", OTHER_UID), "Email": "", "Name": ""})
    add_visits(metrica)
    site.sync()
    site.hub("merge", str(site.card("ivan@example.ru")["id"]), str(site.card("+79161234567")["id"]))
    with site.store.connect() as c:
        moved = sorted((r.kind, r.item) for r in c.execute(select(merge_moves)))
    # the phone's form and its visit; its Metrica id (new to Ivan) and the GA id both had
    assert [kind for kind, _ in moved] == ["client_id", "client_id", "event", "event"]
    assert [item for kind, item in moved if kind == "client_id"] == [
        '["ga_client_id", "987654321.1712345678", false]', f'["ym_client_id", "{OTHER_UID}", true]']
    site.hub("forget", "--email", "ivan@example.ru")
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(merge_moves)).scalar() == 0


def test_a_visit_waits_pending_days_and_no_longer(site: Site, metrica: FakeMetrica) -> None:
    """A form that comes after pending_days finds its visits gone, also when no visit of an
    unknown visitor was read since (the only time expired ones were dropped)."""
    from sqlalchemy import update

    add_visits(metrica)
    site.sync()
    with site.store.begin() as c:  # 91 days go by
        assert c.execute(select(func.count()).select_from(pending_visits)).scalar() == 4
        c.execute(update(pending_visits).where(pending_visits.c.external_id == "9003")
                  .values(at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=91)))
    site.post_form(tilda_form("t11:1", "Анна Смирнова", "anna@example.ru", "+7 903 555-11-22", OTHER_UID))
    assert site.sync("tilda")["status"] == "ok"
    assert "visits" not in site.card("anna@example.ru")["fields"]
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(events).where(events.c.type == "visit")).scalar() == 0
        assert c.execute(select(pending_visits.c.external_id)).scalars().all() == ["9001", "9002", "9005"]
