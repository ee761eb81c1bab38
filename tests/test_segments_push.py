"""Categories and segments pushed back to destinations: tags in Mailchimp and a column in
Google Sheets, written after a sync and changed when a contact's segment changes (a new
purchase, time passing with a fixed clock); only changes are sent."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import secrets

import pytest

from hub.config import load_config
from hub.errors import ConfigError
from hub.mapping import Mapping
from hub.plugins import connector_classes
from hub.store import open_store
from hub.sync import Sync
from tests.fakes.brevo import FakeBrevo
from tests.fakes.google_sheets import FakeGoogleSheets, service_account_key
from tests.fakes.mailchimp import FakeMailchimp, subscriber_hash
from tests.fakes.sendpulse import FakeSendPulse
from tests.fakes.unisender import FakeUnisender

UTC = dt.timezone.utc
API_KEY = "5f4dcc3b5aa765d61d8327deb882cf99-us21"
BREVO_KEY = "xkeysib-4e1a7a0c9d2b3f5e6a7b8c9d-ZxCvBnMq"
SENDPULSE_SECRET = "c0ffee5ecret5endpu15e9876543210ab"
UNISENDER_KEY = "5d41402abc4b2a76b9719d911017c592deadbeef"
SHEET_ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_segments"

ORDERS = """\
order_id,date,email,customer,amount
a1,2026-05-20,a@example.ru,Анна Белова,10000
b1,2025-01-10,b@example.ru,Борис Волков,3000
"""
#: a: one order 12 days before 2026-06-01: gold, hot, so vip. b: one order over a year
#: old: red-gold (stopped_after 365d), cold; not vip.
MAILCHIMP_MAPPING = """\
fields:
  email: {from: email_address, transforms: [email]}
  first_name: FNAME
  temperature: TEMP
  segments: tags
"""
SHEET_MAPPING = """\
fields:
  full_name: ФИО
  email: Email
  stage: Стадия
  segments: Сегменты
"""


def day(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def tools():
    with FakeMailchimp(API_KEY) as mailchimp, FakeGoogleSheets() as sheets:
        yield mailchimp, sheets


@pytest.fixture
def shop(store_project, tools):
    mailchimp, sheets = tools
    sheets.create(SHEET_ID, sheets={"Клиенты": [["ФИО", "Email"]]})
    tag = secrets.token_hex(4)
    store_project.write("key.json", json.dumps(
        service_account_key(sheets, f"hub-{tag}@proj-{tag}.iam.gserviceaccount.com")))
    store_project.write("orders.csv", ORDERS)
    store_project.write("mappings/orders.yaml", """\
        fields:
          email: {from: email, transforms: [email]}
          full_name: {from: customer, transforms: [split_name]}
        """)
    store_project.write("mappings/audience.yaml", MAILCHIMP_MAPPING)
    store_project.write("mappings/clients.yaml", SHEET_MAPPING)
    store_project.config(f"""\
connectors:
  orders:
    plugin: csv
    path: orders.csv
    id_column: order_id
    mapping: orders
    events: {{type: purchase, at: date, amount: amount}}
  mailchimp:
    plugin: mailchimp
    role: destination
    api_key: {API_KEY}
    list_id: {mailchimp.list_id}
    endpoint: {mailchimp.url}/3.0
    mapping: audience
    require_consent: false
    backoff_seconds: 0
    max_backoff_seconds: 0
  clients:
    plugin: google_sheets
    role: destination
    spreadsheet: https://docs.google.com/spreadsheets/d/{SHEET_ID}/edit#gid=0
    credentials_file: key.json
    endpoint: {sheets.url}
    backoff_seconds: 0.01
    mapping: clients
segments:
  vip:
    when: [{{category: stage, in: [gold, platinum]}}, {{category: temperature, is: hot}}]
  lapsed:
    when: [{{category: stage, in: [red-gold, red-platinum]}}]
""")
    return store_project


def sync(project, now: dt.datetime):
    config = load_config(project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    try:
        report = Sync(config, store, clock=lambda: now).run()
    finally:
        store.dispose()
    assert report.errors == []
    return report


def sheet_by_email(sheets: FakeGoogleSheets) -> dict[str, dict[str, str]]:
    header, *rows = sheets.values(SHEET_ID, "Клиенты")
    out = {}
    for cells in rows:
        cells = list(cells) + [""] * (len(header) - len(cells))
        row = dict(zip(header, cells, strict=True))
        out[row["Email"]] = row
    return out


def test_segments_become_tags_and_a_column_and_follow_the_contact(shop, tools):
    mailchimp, sheets = tools
    sync(shop, day("2026-06-01T12:00"))
    assert mailchimp.tags_of("a@example.ru") == ["vip"]
    assert mailchimp.tags_of("b@example.ru") == ["lapsed"]
    assert mailchimp.members[subscriber_hash("a@example.ru")]["merge_fields"]["TEMP"] == "hot"
    rows = sheet_by_email(sheets)
    assert rows["a@example.ru"]["Стадия"] == "gold" and rows["a@example.ru"]["Сегменты"] == "vip"
    assert rows["b@example.ru"]["Стадия"] == "red-gold" and rows["b@example.ru"]["Сегменты"] == "lapsed"

    # a person tags Анна by hand in Mailchimp: hub never removes a tag that is no segment
    mailchimp.members[subscriber_hash("a@example.ru")]["tags"].append("friend")
    # nothing changed: nothing is sent
    mailchimp.reset_counters()
    sheets.reset_counters()
    sync(shop, day("2026-06-01T13:00"))
    assert mailchimp.calls["members.put"] == mailchimp.calls["members.tags"] == mailchimp.calls["batch"] == 0
    assert sum(sheets.calls[name] for name in ("values.batchUpdate", "values.append", "values.update")) == 0

    # Борис buys again: gold and hot, so vip, and no longer lapsed
    (shop.root / "orders.csv").write_text(ORDERS + "b2,2026-05-30,b@example.ru,Борис Волков,5000\n",
                                          encoding="utf-8")
    mailchimp.reset_counters()
    sync(shop, day("2026-06-01T14:00"))
    assert mailchimp.tags_of("b@example.ru") == ["vip"]  # lapsed marked inactive
    assert mailchimp.tags_of("a@example.ru") == ["friend", "vip"]
    assert mailchimp.calls["members.put"] == 1 and mailchimp.calls["members.tags"] == 1  # Борис only
    rows = sheet_by_email(sheets)
    assert rows["b@example.ru"]["Стадия"] == "gold" and rows["b@example.ru"]["Сегменты"] == "vip"
    assert rows["a@example.ru"]["Сегменты"] == "vip"

    # time alone: by 2026-09-15 both last orders are over 90 days old: warm, so out of vip
    mailchimp.reset_counters()
    sync(shop, day("2026-09-15T12:00"))
    assert mailchimp.tags_of("a@example.ru") == ["friend"]
    assert mailchimp.tags_of("b@example.ru") == []
    assert mailchimp.members[subscriber_hash("a@example.ru")]["merge_fields"]["TEMP"] == "warm"
    assert mailchimp.calls["members.tags"] == 2
    rows = sheet_by_email(sheets)
    assert rows["a@example.ru"]["Сегменты"] == "" and rows["b@example.ru"]["Сегменты"] == ""
    assert rows["a@example.ru"]["Стадия"] == "gold"


def test_a_recompute_outside_a_sync_is_pushed_by_the_next_sync(shop, tools):
    mailchimp, _sheets = tools
    sync(shop, day("2026-06-01T12:00"))
    assert mailchimp.tags_of("a@example.ru") == ["vip"]
    # `hub segments recompute` months later: Анна cools down; the next sync sends it
    result = shop.hub("segments", "recompute", "--at", "2026-09-15T12:00:00+00:00")
    assert result.exit_code == 0, result.output
    assert mailchimp.tags_of("a@example.ru") == ["vip"]
    sync(shop, day("2026-09-15T12:05"))
    assert mailchimp.tags_of("a@example.ru") == []


def test_mapping_targets_for_destinations_are_write_only():
    mapping = Mapping.from_dict({"fields": {"email": "Email", "segments": "Теги", "stage": "Стадия"}}, "m.yaml")
    assert mapping.outbound == ("segments", "stage")
    # read from a source: the columns are ignored, and need not exist
    assert mapping.apply({"Email": "a@example.ru", "Теги": "vip", "Стадия": "gold"}) == {"email": "a@example.ru"}
    mapping.check_columns(["Email"], where="the file")
    assert mapping.reverse({"email": "a@example.ru", "segments": ["moscow", "vip"], "stage": None}) == {
        "Email": "a@example.ru", "Теги": "moscow, vip", "Стадия": None}
    with pytest.raises(ConfigError, match="written to destinations only: stage"):
        Mapping.from_dict({"fields": {"stages": "Стадия"}}, "m.yaml")


def test_variables_tags_attributes_and_a_csv_column_follow_the_segments(store_project):
    with (FakeSendPulse(client_secret=SENDPULSE_SECRET, requests_per_second=None) as sendpulse,
          FakeUnisender(UNISENDER_KEY) as unisender, FakeBrevo(BREVO_KEY) as brevo):
        store_project.write("orders.csv", ORDERS)
        store_project.write("mappings/orders.yaml", """\
            fields:
              email: {from: email, transforms: [email]}
              full_name: {from: customer, transforms: [split_name]}
            """)
        store_project.write("mappings/sendpulse.yaml", """\
            fields:
              email: {from: email, transforms: [email]}
              stage: stage
              segments: segments
            """)
        store_project.write("mappings/unisender.yaml", """\
            fields:
              email: {from: email, transforms: [email]}
              temperature: temperature
              segments: tags
            """)
        store_project.write("mappings/brevo.yaml", """\
            fields:
              email: {from: email, transforms: [email]}
              rfm_segment: RFM_SEGMENT
              segments: SEGMENTS
            """)
        store_project.write("mappings/export.yaml", """\
            fields:
              email: Email
              abc: ABC
              segments: Segments
            """)
        store_project.config(f"""\
connectors:
  orders: {{plugin: csv, path: orders.csv, id_column: order_id, mapping: orders,
           events: {{type: purchase, at: date, amount: amount}}}}
  sendpulse:
    plugin: sendpulse
    role: destination
    client_id: {sendpulse.client_id}
    client_secret: {SENDPULSE_SECRET}
    address_book_id: {sendpulse.book_id}
    endpoint: {sendpulse.url}
    require_consent: false
    backoff_seconds: 0
    max_backoff_seconds: 0
  unisender:
    plugin: unisender
    role: destination
    api_key: {UNISENDER_KEY}
    list_id: {unisender.list_id}
    endpoint: {unisender.url}
    require_consent: false
  brevo:
    plugin: brevo
    role: destination
    api_key: {BREVO_KEY}
    list_id: 2
    endpoint: {brevo.url}/v3
    require_consent: false
    backoff_seconds: 0
    max_backoff_seconds: 0
    import_poll_seconds: 0
  export: {{plugin: csv, role: destination, path: export.csv, mapping: export}}
segments:
  vip:
    when: [{{category: stage, in: [gold, platinum]}}, {{category: temperature, is: hot}}]
""")
        sync(store_project, day("2026-06-01T12:00"))
        assert sendpulse.emails["a@example.ru"]["variables"] == {"stage": "gold", "segments": "vip"}
        assert sendpulse.emails["b@example.ru"]["variables"] == {"stage": "red-gold", "segments": ""}
        assert unisender.contacts["a@example.ru"]["tags"] == ["vip"]
        assert unisender.contacts["a@example.ru"]["fields"]["temperature"] == "hot"
        assert brevo.by_email("a@example.ru")["attributes"]["SEGMENTS"] == "vip"
        # a: one order, recent, the only A client by revenue (10000 of 13000)
        assert brevo.by_email("a@example.ru")["attributes"]["RFM_SEGMENT"] == "new"
        exported = {row["Email"]: row for row in csv.DictReader(io.StringIO(
            (store_project.root / "export.csv").read_text(encoding="utf-8-sig")))}
        assert (exported["a@example.ru"]["ABC"], exported["a@example.ru"]["Segments"]) == ("A", "vip")
        assert exported["b@example.ru"]["Segments"] == ""

        # time alone: Анна cools down and leaves vip; every tool clears it
        sync(store_project, day("2026-09-15T12:00"))
        assert sendpulse.emails["a@example.ru"]["variables"]["segments"] == ""
        assert unisender.contacts["a@example.ru"]["tags"] == []
        assert unisender.contacts["a@example.ru"]["fields"]["temperature"] == "warm"
        assert brevo.by_email("a@example.ru")["attributes"]["SEGMENTS"] == ""
        exported = {row["Email"]: row for row in csv.DictReader(io.StringIO(
            (store_project.root / "export.csv").read_text(encoding="utf-8-sig")))}
        assert exported["a@example.ru"]["Segments"] == ""
