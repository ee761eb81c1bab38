"""GA4 connector (google-api-python-client against a fake Data API server) and the
linking of its sessions to the contacts of site forms."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from hub_plugins.ga4 import Ga4Connector, Ga4Options
from sqlalchemy import func, select

from hub.connector import ConnectorContext
from hub.store.schema import cursors, events, pending_visits
from tests.conformance import ConnectorConformance, read_all
from tests.fakes.ga4 import FakeGa4
from tests.test_yandex_metrica import Site, tilda_form

GA_TOKEN = "ya29.ga4-access-token-3f9d"
PROPERTY = "345678901"
GA_CID = "987654321.1712345678"  # of the _ga cookie tilda_form sends
YM_UID = "1712345678901234567"
DOCUMENT = Path(__file__).parent / "fakes" / "analyticsdata.v1beta.json"


def property_today(zone: str = "Europe/Moscow") -> dt.date:
    """The fake property's current day (GA4 counts days in the property's time zone)."""
    return dt.datetime.now(ZoneInfo(zone)).date()


def hour(days_ago: int, at: int, zone: str = "Europe/Moscow") -> str:
    return (property_today(zone) - dt.timedelta(days=days_ago)).strftime("%Y%m%d") + f"{at:02d}"


def ga4_yaml(fake: FakeGa4, extra: str = "") -> str:
    return ("  ga:\n    plugin: ga4\n    property_id: '345678901'\n    access_token: $HUB_TEST_GA4_TOKEN\n"
            f"    endpoint: {fake.url}/\n    discovery_document: {DOCUMENT}\n    initial_days: 5\n"
            "    page_size: 2\n    backoff_seconds: 0\n" + extra)


@pytest.fixture
def ga() -> Iterator[FakeGa4]:
    with FakeGa4(GA_TOKEN, PROPERTY) as fake:
        yield fake


def make_site(root: Path, fake: FakeGa4, monkeypatch: pytest.MonkeyPatch, extra: str = "",
              store_url: str | None = None) -> Site:
    monkeypatch.setenv("HUB_TEST_TILDA_KEY", "tilda-api-key-0b7d")
    monkeypatch.setenv("HUB_TEST_GA4_TOKEN", GA_TOKEN)
    return Site(root, None, analytics=ga4_yaml(fake, extra), store_url=store_url)


@pytest.fixture
def site(tmp_path: Path, ga: FakeGa4, monkeypatch: pytest.MonkeyPatch, store_url: str) -> Iterator[Site]:
    served = make_site(tmp_path, ga, monkeypatch, store_url=store_url)
    yield served
    served.close()


def add_sessions(ga: FakeGa4) -> None:
    ga.session(GA_CID, hour(4, 9), sessionSource="google", sessionMedium="cpc", sessionCampaignName="brand",
               sessionDefaultChannelGroup="Paid Search", deviceCategory="desktop", city="Kazan", region="Tatarstan")
    ga.session(GA_CID, hour(2, 20), 2, sessionSource="(direct)", sessionMedium="(none)",
               sessionCampaignName="(direct)", sessionDefaultChannelGroup="Direct", deviceCategory="mobile",
               city="Moscow", region="Moscow")
    ga.session("GA1.1.111.222", hour(1, 10), sessionSource="t.me", sessionMedium="referral",
               sessionDefaultChannelGroup="Referral", deviceCategory="mobile", city="Omsk", region="Omsk Oblast")
    ga.session("(not set)", hour(1, 11), sessionSource="bing", deviceCategory="desktop")


def test_a_tilda_form_and_the_ga4_sessions_of_its_client_id_make_one_client_card(site: Site, ga: FakeGa4) -> None:
    site.post_form(tilda_form("g1:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
    add_sessions(ga)
    report = site.sync()
    assert report["status"] == "ok", report["errors"]
    card = site.card(f"ga_client_id:{GA_CID}")
    assert card["id"] == site.card("ivan@example.ru")["id"]
    fields = card["fields"]
    assert (fields["first_touch_channel"], fields["first_touch_source"], fields["first_touch_medium"],
            fields["first_touch_campaign"]) == ("Paid Search", "google", "cpc", "brand")
    assert fields["last_touch_channel"] == "Direct" and "last_touch_source" not in fields  # (direct) is no source
    assert (fields["device"], fields["visit_region"], fields["visit_city"]) == ("mobile", "Moscow", "Moscow")
    assert fields["visits"] == 3  # 1 + 2 sessions
    # one row asking the property's time zone, then 4 rows in pages of 2; the request the library sent is the API's
    assert ga.calls["runReport"] == 3
    body = ga.bodies("runReport")[2]
    assert body["offset"] == "2" and body["limit"] == "2" and len(body["dimensions"]) == 9
    assert body["dimensions"][0] == {"name": "customEvent:client_id"}
    with site.store.connect() as c:  # the other visitor (its raw _ga cookie value) waits; (not set) is no one
        assert [r.value for r in c.execute(select(pending_visits))] == ["111.222"]
    # the next run reads the lookback again and stores nothing twice
    assert site.sync()["status"] == "ok"
    with site.store.connect() as c:
        assert c.execute(select(func.count()).select_from(events).where(events.c.type == "visit")).scalar() == 2


def test_quota_exhausted_is_retried_then_left_for_the_next_sync(site: Site, ga: FakeGa4) -> None:
    site.post_form(tilda_form("g2:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
    add_sessions(ga)
    ga.fail("runReport", 429, times=2)
    ga.fail("runReport", 503)
    assert site.sync()["status"] == "ok"
    assert ga.calls["runReport"] == 6  # 3 failed tries, the time zone, 2 pages
    assert site.card("ivan@example.ru")["fields"]["visits"] == 3
    ga.fail("runReport", 429, times=100)
    report = site.sync("ga")
    assert report["status"] == "failed" and "RESOURCE_EXHAUSTED" in report["errors"][0]
    assert "next sync" in report["errors"][0] and GA_TOKEN not in json.dumps(report)


def test_an_answer_that_is_not_json_is_retried_then_left_for_the_next_sync(
        tmp_path: Path, ga: FakeGa4, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy's HTML page or a cut answer with status 200: the client library hands it
    over as text. It is retried; one that persists fails GA4 alone, with a clear message."""
    site = make_site(tmp_path, ga, monkeypatch, "    max_attempts: 2\n"
                     "  out: {plugin: csv, role: destination, path: out.csv}\n")
    try:
        site.post_form(tilda_form("g9:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
        add_sessions(ga)
        ga.fail("runReport", 200, body="html", after_apply=True)
        assert site.sync()["status"] == "ok"
        assert site.card("ivan@example.ru")["fields"]["visits"] == 3
        ga.fail("runReport", 200, body="truncated", after_apply=True, times=2)
        site.post_form(tilda_form("g9:2", "Анна Белова", "anna@example.ru", "+7 916 222-33-44", "1"))
        report = site.sync()
        assert report["status"] == "failed"
        assert report["errors"] == ["ga: GA4: runReport: the answer is not JSON (20 characters)\n"
                                    "  hint: the next sync goes on from the cursor"]
        assert "anna@example.ru" in (tmp_path / "out.csv").read_text(encoding="utf-8")  # the rest of the run went on
    finally:
        site.close()


def test_token_budget_running_out(site: Site, ga: FakeGa4) -> None:
    ga.tokens = 1
    add_sessions(ga)
    report = site.sync("ga")
    assert report["status"] == "failed" and "Exhausted property tokens" in report["errors"][0]
    ga.tokens = None
    assert site.sync("ga")["status"] == "ok"
    # the failed run saved no cursor: the whole initial range is asked again
    assert {b["dateRanges"][0]["startDate"] for b in ga.bodies("runReport") if "dimensions" in b} == {
        (property_today() - dt.timedelta(days=5)).isoformat()}


def test_a_failing_analytics_source_does_not_hold_the_name_joins_back(site: Site, ga: FakeGa4) -> None:
    """Joins on a name alone wait while a source that failed may hold what tells namesakes
    apart; GA4 brings visits, never records: its quota running out holds nothing back."""
    assert site.sync()["status"] == "ok"  # GA4 read once: it holds no records
    site.post_form({**tilda_form("g7:1", "Евдокия Прохорова", "", "+7 916 555-01-02", "1"), "COOKIES": ""})
    site.post_form({**tilda_form("g7:2", "Прохорова Евдокия", "dusya.p@example.ru", "", "2"), "COOKIES": ""})
    ga.fail("runReport", 429, times=100)
    report = site.sync()
    assert report["status"] == "failed" and "RESOURCE_EXHAUSTED" in report["errors"][0]
    assert site.card("dusya.p@example.ru")["id"] == site.card("+79165550102")["id"]


def test_an_unregistered_dimension_and_a_bad_token_are_clear_errors(tmp_path: Path, ga: FakeGa4,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    served = make_site(tmp_path, ga, monkeypatch, extra="    client_id_dimension: customUser:visitor\n")
    try:
        report = served.sync("ga")
        assert report["status"] == "failed"
        assert "customUser:visitor is not a valid dimension" in report["errors"][0]
        assert "registered as a custom dimension" in report["errors"][0]
        ga.token = "another"
        ga.custom.add("customUser:visitor")
        report = served.sync("ga")
        assert "HTTP 401" in report["errors"][0] and GA_TOKEN not in report["errors"][0]
    finally:
        served.close()


def test_a_user_id_dimension_links_by_the_forms_user_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeGa4(GA_TOKEN, PROPERTY, custom=("customUser:user_id",)) as fake:
        fake.sessions.append({"customUser:user_id": "u-42", "dateHour": hour(1, 12), "sessions": "1",
                              "sessionSource": "newsletter", "sessionMedium": "email",
                              "sessionDefaultChannelGroup": "Email", "deviceCategory": "tablet"})
        served = make_site(tmp_path, fake, monkeypatch,
                           extra="    client_id_dimension: customUser:user_id\n    id_kind: user_id\n")
        try:
            served.post_form({**tilda_form("g5:1", "Анна Смирнова", "anna@example.ru", "+7 903 555-11-22", YM_UID),
                              "ga_user_id": "u-42"})
            assert served.sync()["status"] == "ok"
            fields = served.card("ga_user_id:u-42")["fields"]
            assert fields["first_touch_channel"] == "Email" and fields["device"] == "tablet"
        finally:
            served.close()


def test_days_are_the_propertys_and_its_unfinished_day_is_not_read(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """GA4 counts days in the property's time zone. A property whose day is not the
    host's (here UTC-12 or UTC+14, whichever differs now) is read up to its own
    yesterday: not into its unfinished today (lost for good with lookback_days 0 once
    the cursor passed it), not a day short."""
    host_today = dt.date.today()
    zone = next(z for z in ("Etc/GMT+12", "Etc/GMT-14") if property_today(z) != host_today)
    with FakeGa4(GA_TOKEN, PROPERTY, time_zone=zone) as fake:
        fake.session(GA_CID, hour(1, 10, zone), sessionSource="google", deviceCategory="desktop")
        fake.session(GA_CID, hour(0, 0, zone), 2, sessionSource="yandex", deviceCategory="mobile")
        served = make_site(tmp_path, fake, monkeypatch, extra="    lookback_days: 0\n")
        try:
            served.post_form(tilda_form("g6:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
            assert served.sync()["status"] == "ok"
            assert served.card(f"ga_client_id:{GA_CID}")["fields"]["visits"] == 1  # yesterday's, not today's
            yesterday = (property_today(zone) - dt.timedelta(days=1)).isoformat()
            with served.store.connect() as c:
                assert c.execute(select(cursors.c.value).where(cursors.c.connector == "ga")).scalar() == yesterday
            reads = [b for b in fake.bodies("runReport") if "dimensions" in b]
            assert [b["dateRanges"][0]["endDate"] for b in reads] == [yesterday]
            # the same day again: nothing new is finished, nothing is asked but the time zone
            assert served.sync("ga")["status"] == "ok"
            assert len([b for b in fake.bodies("runReport") if "dimensions" in b]) == 1
            assert served.card(f"ga_client_id:{GA_CID}")["fields"]["visits"] == 1
        finally:
            served.close()


def test_a_time_zone_it_cannot_tell_reads_up_to_yesterday_where_days_end_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """No time zone in the answers (or one this host does not know): the days are read up
    to yesterday in UTC-12, finished in every time zone, never into an unfinished one."""
    with FakeGa4(GA_TOKEN, PROPERTY, time_zone="Pacific/Kiritimati") as fake:  # UTC+14
        fake.tells_time_zone = False
        served = make_site(tmp_path, fake, monkeypatch)
        try:
            with caplog.at_level(logging.WARNING):
                assert served.sync("ga")["status"] == "ok"
            last = dt.datetime.now(dt.timezone(dt.timedelta(hours=-12))).date() - dt.timedelta(days=1)
            reads = [b for b in fake.bodies("runReport") if "dimensions" in b]
            assert [b["dateRanges"][0]["endDate"] for b in reads] == [last.isoformat()]
            assert "time zone None is unknown" in caplog.text
        finally:
            served.close()


def test_options_need_one_credential(project) -> None:  # type: ignore[no-untyped-def]
    project.config("connectors:\n  ga:\n    plugin: ga4\n    property_id: '1'\n")
    result = project.hub("check")
    assert result.exit_code != 0 and "exactly one of credentials_file" in result.output


class TestGa4Conformance(ConnectorConformance):
    full_read_is_complete = False  # sessions are history, never the whole tool
    resume_may_repeat = True  # the lookback days are read again
    break_modes: ClassVar[tuple[str, ...]] = ("bad_token", "quota")

    @pytest.fixture(autouse=True)
    def _server(self) -> Iterator[None]:
        with FakeGa4(GA_TOKEN, PROPERTY) as self.fake:
            yield

    def seed_records(self) -> list[dict[str, Any]]:
        return [{"client_id": "11.1"}, {"client_id": "22.2"}, {"client_id": "33.3"}]

    def make_connector(self, tmp_path: Path) -> Ga4Connector:
        for n, seed in enumerate(self.seed_records()):
            self.fake.session(seed["client_id"], hour(2, 10 + n), sessionSource="google", deviceCategory="desktop")
        options = Ga4Options(property_id=PROPERTY, access_token=GA_TOKEN, endpoint=self.fake.url + "/",
                             discovery_document=str(DOCUMENT), initial_days=3, page_size=2, backoff_seconds=0,
                             max_attempts=2)
        return Ga4Connector(options, ConnectorContext("ga", tmp_path, logging.getLogger("test.ga4")))

    def change_record(self, connector: Ga4Connector) -> tuple[str, dict[str, Any]]:
        self.fake.session("44.4", hour(1, 9), sessionSource="bing", deviceCategory="mobile")
        records, _ = read_all(connector, None)
        return next(r.external_id for r in records if r.values == {"client_id": "44.4"}), {"client_id": "44.4"}

    def break_tool(self, connector: Ga4Connector, mode: str) -> None:
        if mode == "bad_token":
            self.fake.token = "another"
        else:
            self.fake.fail("*", 429, times=1000)


def test_a_service_account_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    email = "hub-reader@project-1.iam.gserviceaccount.com"
    with FakeGa4("not-used", PROPERTY) as fake:
        fake.add_service_account(email, private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        add_sessions(fake)
        key = {"type": "service_account", "project_id": "project-1", "private_key_id": "k1", "private_key": pem,
               "client_email": email, "client_id": "1", "token_uri": f"{fake.url}/token"}
        (tmp_path / "ga-key.json").write_text(json.dumps(key), encoding="utf-8")
        monkeypatch.setenv("HUB_TEST_TILDA_KEY", "tilda-api-key-0b7d")
        served = Site(tmp_path, None, analytics=ga4_yaml(fake).replace(
            "access_token: $HUB_TEST_GA4_TOKEN", "credentials_file: ga-key.json"))
        try:
            served.post_form(tilda_form("g7:1", "Иван Петров", "ivan@example.ru", "+7 916 123-45-67", YM_UID))
            report = served.sync()
            assert report["status"] == "ok", report["errors"]
            assert served.card(f"ga_client_id:{GA_CID}")["fields"]["visits"] == 3
            assert fake.calls["token"] == 1 and fake.calls["runReport"] == 3  # the time zone, 2 pages
            fake.public_keys.clear()  # the key was deleted in Google Cloud
            fake.issued.clear()
            report = served.sync("ga")
            assert report["status"] == "failed" and "credentials were refused" in report["errors"][0]
            assert "PRIVATE KEY" not in json.dumps(report)
            from hub.redact import redact
            assert redact(f"echoed: {pem}") != f"echoed: {pem}"  # the key file's key is a secret hub masks
        finally:
            served.close()
