"""Categories and segments: purchases and stage events read from files, RFM, ABC,
funnel stages, temperature over time with a fixed clock, incremental recompute, the
change log, config errors and ``hub segments``. Expected values are computed by hand
in the comments."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from hub import segments
from hub.config import load_config
from hub.contacts import resolve_contact
from hub.model import EventReport
from hub.plugins import connector_classes
from hub.store import open_store
from hub.store.schema import categories, changes, events, quarantine
from hub.sync import Sync

UTC = dt.timezone.utc


def day(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


ORDERS_HEADER = "order_id,date,email,customer,amount,currency\n"
#: a: 6 orders of 10000, last 2026-05-20; b: 10000 + 10000 + 100 USD (= 10000 at 100), last
#: 2026-04-01; c: one of 5000 on 2026-01-15; d: two of 1500, last 2025-09-01; e: one of 2000
#: on 2025-03-01.
ORDERS = ORDERS_HEADER + """\
a1,2025-12-01,a@example.ru,Анна Белова,10000,RUB
a2,2026-01-10,a@example.ru,Анна Белова,10000,RUB
a3,2026-02-10,a@example.ru,Анна Белова,10000,RUB
a4,2026-03-10,a@example.ru,Анна Белова,10000,RUB
a5,2026-04-10,a@example.ru,Анна Белова,10000,RUB
a6,2026-05-20,a@example.ru,Анна Белова,"10 000,00",RUB
b1,2025-11-01,b@example.ru,Борис Волков,10000,RUB
b2,2026-02-01,b@example.ru,Борис Волков,10000,
b3,2026-04-01,b@example.ru,Борис Волков,100,USD
c1,2026-01-15,c@example.ru,Вера Гусева,5000,RUB
d1,2025-05-01,d@example.ru,Глеб Дёмин,1500,RUB
d2,2025-09-01,d@example.ru,Глеб Дёмин,1500,RUB
e1,2025-03-01,e@example.ru,Дина Ершова,2000,RUB
"""
ORDERS_MAPPING = """\
fields:
  email: {from: email, transforms: [email]}
  full_name: {from: customer, transforms: [split_name]}
"""


def orders_config(extra: str = "") -> str:
    return """\
connectors:
  orders:
    plugin: csv
    path: orders.csv
    id_column: order_id
    mapping: orders
    events: {type: purchase, at: date, amount: amount, currency: currency}
categories:
  rates: {USD: 100}
""" + extra


def sync(project, now: dt.datetime):
    """One ``hub sync`` at a fixed time; returns the run report."""
    config = load_config(project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    try:
        return Sync(config, store, clock=lambda: now).run()
    finally:
        store.dispose()


def categories_by_email(project, *emails: str) -> dict[str, dict]:
    config = load_config(project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    try:
        with store.connect() as c:
            ids = {email: resolve_contact(c, email) for email in emails}
            found = segments.categories_of(c, list(ids.values()))
            return {email: found.get(contact_id, {}) for email, contact_id in ids.items()}
    finally:
        store.dispose()


def ids_by_email(project, *emails: str) -> dict[str, int]:
    config = load_config(project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    try:
        with store.connect() as c:
            return {email: resolve_contact(c, email) for email in emails}
    finally:
        store.dispose()


def query(project, statement):
    config = load_config(project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    try:
        with store.connect() as c:
            return c.execute(statement).all()
    finally:
        store.dispose()


@pytest.fixture
def shop(store_project):
    store_project.write("orders.csv", ORDERS)
    store_project.write("mappings/orders.yaml", ORDERS_MAPPING)
    store_project.config(orders_config("""\
segments:
  best:
    description: A clients still hot
    when: [{category: abc, is: A}, {category: temperature, is: hot}]
  fading:
    when: [{any: [{category: rfm_segment, in: [hibernating, lost]}, {category: stage, is: red-gold}]}]
"""))
    return store_project


def test_rfm_abc_stage_and_temperature_of_a_small_order_set(shop):
    report = sync(shop, day("2026-06-01"))
    assert report.status == "ok", report.errors
    got = categories_by_email(shop, *(f"{k}@example.ru" for k in "abcde"))
    # days since the last order on 2026-06-01: a 12, b 61, c 137, d 273, e 457
    # R (bounds 30/90/180/365 days): a 5, b 4, c 3, d 2, e 1
    # F (orders; bounds 2,3,4,6): a 6 -> 5, b 3 -> 3, c 1 -> 1, d 2 -> 2, e 1 -> 1
    # M by quantiles: revenues 2000 3000 5000 30000 60000, edges at ranks 1..4: 3000 5000 30000 60000
    #   a 60000 -> 5, b 30000 -> 4, c 5000 -> 3, d 3000 -> 2, e 2000 -> 1
    assert {k: got[f"{k}@example.ru"]["rfm"] for k in "abcde"} == {
        "a": "555", "b": "434", "c": "313", "d": "222", "e": "111"}
    # champions r>=4 f>=4 m>=4; loyal r>=3 f>=3; new r>=4 f<=1; potential r>=3; ...; hibernating r>=2; lost
    assert {k: got[f"{k}@example.ru"]["rfm_segment"] for k in "abcde"} == {
        "a": "champions", "b": "loyal", "c": "potential", "d": "hibernating", "e": "lost"}
    # ABC: total 100000; a (before it 0) and b (60000) are under 80%: A; c (90000) under 95%: B; d, e: C
    assert {k: got[f"{k}@example.ru"]["abc"] for k in "abcde"} == {"a": "A", "b": "A", "c": "B", "d": "C", "e": "C"}
    # 4+ orders: platinum; 1-3 orders and a purchase within 365 days: gold; e stopped 457 days ago: red-gold
    assert {k: got[f"{k}@example.ru"]["stage"] for k in "abcde"} == {
        "a": "platinum", "b": "gold", "c": "gold", "d": "gold", "e": "red-gold"}
    # hot under 90 days, warm under 365, else cold
    assert {k: got[f"{k}@example.ru"]["temperature"] for k in "abcde"} == {
        "a": "hot", "b": "hot", "c": "warm", "d": "warm", "e": "cold"}
    assert got["a@example.ru"]["segments"] == ["best"] and got["b@example.ru"]["segments"] == ["best"]
    assert got["d@example.ru"]["segments"] == ["fading"] and got["e@example.ru"]["segments"] == ["fading"]
    assert "segments" not in got["c@example.ru"]
    rows = {row.orders: row for row in query(shop, select(categories))}
    assert rows[3].revenue == 30000.0  # b: the USD order at 100
    # a's next change by the clock: R drops from 5 when its last order is 30 days old
    assert rows[6].next_at.replace(tzinfo=UTC) == day("2026-06-19")
    # the first categories of a contact are one change-log entry holding every value
    first = query(shop, select(changes.c.field, changes.c.new_value, changes.c.run_id)
                  .where(changes.c.reason == "category"))
    assert len(first) == 5 and {row.field for row in first} == {"categories"}
    assert {row.run_id for row in first} == {report.run_id}
    entry = next(json.loads(row.new_value) for row in first if '"555"' in row.new_value)
    assert entry == {"stage": "platinum", "temperature": "hot", "rfm_r": 5, "rfm_f": 5, "rfm_m": 5, "rfm": "555",
                     "rfm_segment": "champions", "abc": "A", "segments": ["best"]}


def test_an_unchanged_rerun_changes_nothing_and_time_alone_moves_temperature(shop):
    sync(shop, day("2026-06-01"))
    again = sync(shop, day("2026-06-02"))
    assert again.changes == 0
    # 2026-06-20: a's last order is 31 days old: R 5 -> 4, rfm 555 -> 455 (still champions)
    later = sync(shop, day("2026-06-20"))
    logged = query(shop, select(changes.c.contact_id, changes.c.field, changes.c.old_value, changes.c.new_value)
                   .where(changes.c.run_id == later.run_id).order_by(changes.c.id))
    assert [(row.field, row.old_value, row.new_value) for row in logged] == [
        ("category:rfm_r", "5", "4"), ("category:rfm", "555", "455")]
    # b's last order (2026-04-01) turns 90 days old on 2026-06-30: hot -> warm, and leaves "best"
    warm = sync(shop, day("2026-06-30"))
    fields = {(row.field, row.old_value, row.new_value) for row in query(
        shop, select(changes.c.field, changes.c.old_value, changes.c.new_value).where(changes.c.run_id == warm.run_id))}
    assert ("category:temperature", "hot", "warm") in fields
    assert ("segment:best", "true", None) in fields
    assert categories_by_email(shop, "b@example.ru")["b@example.ru"]["temperature"] == "warm"


def test_temperature_decays_hot_warm_cold_and_a_client_stops(store_project):
    """One order on 2026-01-01 and nothing after: hot until day 90, warm until day 365,
    then cold; gold turns red-gold when the order is 365 days old."""
    store_project.write("orders.csv", ORDERS_HEADER + "o1,2026-01-01,z@example.ru,Зоя Жукова,700,RUB\n")
    store_project.write("mappings/orders.yaml", ORDERS_MAPPING)
    store_project.config(orders_config())
    seen = []
    for moment in ("2026-01-02", "2026-03-31T23:59", "2026-04-01", "2026-12-31T23:59", "2027-01-01"):
        sync(store_project, day(moment))
        values = categories_by_email(store_project, "z@example.ru")["z@example.ru"]
        seen.append((moment, values["temperature"], values["stage"], values["rfm_r"]))
    assert seen == [
        ("2026-01-02", "hot", "gold", 5),
        ("2026-03-31T23:59", "hot", "gold", 4),      # 89.99 days: R 4 (30 days or more)
        ("2026-04-01", "warm", "gold", 3),           # exactly 90 days: warm, R 3
        ("2026-12-31T23:59", "warm", "gold", 2),     # 180 days or more: R 2
        ("2027-01-01", "cold", "red-gold", 1),       # 365 days: cold, stopped, R 1
    ]
    history = query(store_project, select(changes.c.field, changes.c.new_value).where(
        changes.c.field == "category:temperature").order_by(changes.c.id))
    assert [row.new_value for row in history] == ["warm", "cold"]


STAGES_HEADER = "id,date,email,stage\n"
STAGE_ROWS = [
    "2,2026-02-01,lead@example.ru,ЛПР найден",
    "3,2026-02-10,lead@example.ru,Рассматривает",
    "4,2026-02-20,lead@example.ru,Рассылка",
    "5,2026-03-01,lead@example.ru,Заявка",
    "6,2026-03-05,lead@example.ru,Отказ",
]


def test_stage_follows_the_funnel_events_in_order(store_project):
    store_project.write("people.csv", "id,full_name,email\n1,Лев Лебедев,lead@example.ru\n")
    store_project.write("mappings/stages.yaml", "fields:\n  email: {from: email, transforms: [email]}\n")
    store_project.write("mappings/orders.yaml", ORDERS_MAPPING)
    store_project.write("orders.csv", ORDERS_HEADER)
    store_project.config("""\
connectors:
  people: {plugin: csv, path: people.csv}
  stages:
    plugin: csv
    path: stages.csv
    mapping: stages
    events:
      type_column: stage
      at: date
      types: {ЛПР найден: decision_maker, Рассматривает: offer_considered, Рассылка: newsletter_agreed,
              Заявка: request, Отказ: refused}
  orders:
    plugin: csv
    path: orders.csv
    id_column: order_id
    mapping: orders
    events: {type: purchase, at: date, amount: amount, currency: currency}
""")
    store_project.write("stages.csv", STAGES_HEADER)
    sync(store_project, day("2026-01-15"))
    rows = []
    for i, moment in enumerate(("2026-02-02", "2026-02-11", "2026-02-21", "2026-03-02", "2026-03-06")):
        rows.append(STAGE_ROWS[i])
        store_project.write("stages.csv", STAGES_HEADER + "\n".join(rows) + "\n")
        sync(store_project, day(moment))
    # a request after the refusal brings the lead back; then the first order
    rows.append("7,2026-03-20,lead@example.ru,Заявка")
    store_project.write("stages.csv", STAGES_HEADER + "\n".join(rows) + "\n")
    sync(store_project, day("2026-03-21"))
    store_project.write("orders.csv", ORDERS_HEADER + "o1,2026-04-01,lead@example.ru,Лев Лебедев,900,RUB\n")
    sync(store_project, day("2026-04-02"))
    history = query(store_project, select(changes.c.field, changes.c.old_value, changes.c.new_value).where(
        changes.c.reason == "category").order_by(changes.c.id))
    stages = [json.loads(history[0].new_value)["stage"]] + [
        row.new_value for row in history if row.field == "category:stage"]
    assert stages == ["white", "gray", "green", "yellow", "green-gold", "red-green", "green-gold", "gold"]


def test_only_touched_contacts_are_recomputed_and_a_killed_pass_is_caught_up(shop):
    first = sync(shop, day("2026-06-01"))
    c_id = ids_by_email(shop, "c@example.ru")["c@example.ru"]
    shop.write("orders.csv", ORDERS + "c2,2026-06-01,c@example.ru,Вера Гусева,4000,RUB\n")
    second = sync(shop, day("2026-06-01T12:00"))  # within categories.refresh (1d): incremental
    touched = query(shop, select(changes.c.contact_id, changes.c.field, changes.c.old_value, changes.c.new_value)
                    .where(changes.c.run_id == second.run_id, changes.c.reason == "category"))
    got = categories_by_email(shop, "c@example.ru")["c@example.ru"]
    # c: 2 orders, 9000, last half a day ago: R 5, F 2; M by the edges kept from the full pass
    # (3000 5000 30000 60000): 9000 -> 3; rfm 523 -> potential (r>=3, f 2); temperature warm -> hot
    assert got["rfm"] == "523" and got["temperature"] == "hot" and got["rfm_segment"] == "potential"
    assert {row.field for row in touched} >= {"category:rfm", "category:temperature"}
    assert {row.contact_id for row in touched} == {c_id}
    run_ids = dict(query(shop, select(categories.c.contact_id, categories.c.run_id)))
    assert run_ids.pop(c_id) == second.run_id
    assert set(run_ids.values()) == {first.run_id}
    # a pass killed after the pull committed an event: the next sync, with nothing new, catches up
    config = load_config(shop.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    try:
        with store.begin() as c:
            e_id = resolve_contact(c, "e@example.ru")
            segments_events = [(e_id, "orders", EventReport("purchase", "late", day("2026-06-01T15:00"),
                                                            amount=50000.0), None)]
            from hub import events as history

            history.record(c, segments_events, second.run_id)
    finally:
        store.dispose()
    third = sync(shop, day("2026-06-01T18:00"))
    moved = query(shop, select(changes.c.contact_id, changes.c.field, changes.c.new_value)
                  .where(changes.c.run_id == third.run_id))
    assert {row.contact_id for row in moved} == {e_id}
    assert categories_by_email(shop, "e@example.ru")["e@example.ru"]["stage"] == "gold"  # bought again


def test_an_order_row_corrected_updates_its_purchase_and_the_buyer_categories(shop):
    """An order row is its purchase: a corrected amount was kept at its first value for
    good, since an event was stored once and never read again."""
    sync(shop, day("2026-06-01"))
    c_id = ids_by_email(shop, "c@example.ru")["c@example.ru"]
    before = categories_by_email(shop, "c@example.ru")["c@example.ru"]
    shop.write("orders.csv", ORDERS.replace("c1,2026-01-15,c@example.ru,Вера Гусева,5000,RUB",
                                            "c1,2026-05-30,c@example.ru,Вера Гусева,65000,RUB"))
    second = sync(shop, day("2026-06-01T12:00"))  # incremental: only what changed is recomputed
    assert query(shop, select(events.c.contact_id, events.c.amount, events.c.at, events.c.run_id)
                 .where(events.c.external_id == "c1"))[0][:2] == (c_id, 65000.0)
    got = categories_by_email(shop, "c@example.ru")["c@example.ru"]
    assert (before["rfm"], got["rfm"]) == ("313", "515")  # recent now, and the largest buyer
    touched = query(shop, select(changes.c.contact_id).where(changes.c.run_id == second.run_id,
                                                             changes.c.reason == "category"))
    assert {row.contact_id for row in touched} == {c_id}
    assert len(query(shop, select(events.c.id))) == 13  # updated, not added


def test_recompute_command_and_listing(shop):
    sync(shop, day("2026-06-01"))
    listed = json.loads(shop.hub("segments", "--json").stdout)
    assert listed["categories"]["abc"] == {"A": 2, "B": 1, "C": 2}
    assert listed["categories"]["stage"] == {"gold": 3, "platinum": 1, "red-gold": 1}
    assert {s["name"]: s["members"] for s in listed["segments"]} == {"best": 2, "fading": 2}
    members = json.loads(shop.hub("segments", "members", "fading", "--json").stdout)
    assert [m["email"] for m in members] == ["d***@example.ru", "e***@example.ru"]
    by_value = json.loads(shop.hub("segments", "members", "stage=platinum", "--json").stdout)
    assert [m["email"] for m in by_value] == ["a***@example.ru"]
    explained = json.loads(shop.hub("segments", "explain", "e@example.ru", "--at", "2026-06-01", "--json").stdout)
    assert explained["categories"]["stage"] == "red-gold" and explained["segments"] == ["fading"]
    assert explained["facts"]["orders"] == 1 and explained["facts"]["revenue"] == 2000
    red_gold = [step for step in explained["stage_trace"] if "days_since_order" in step["test"]]
    assert red_gold[-1]["ok"] is True and red_gold[-1]["value"] == "457.0 days"
    card = json.loads(shop.hub("show", "a@example.ru", "--json").stdout)
    assert card["categories"]["stage"] == "platinum" and card["categories"]["segments"] == ["best"]
    assert {(e["amount"], e["currency"]) for e in card["events"]} == {(10000.0, "RUB")}
    assert "categories: stage: platinum" in shop.hub("show", "a@example.ru").stdout
    audit = shop.hub("audit", "--json").stdout
    assert '"segments"' in audit
    assert shop.hub("segments", "members", "rfm_r=high").exit_code == 2
    assert [m["contact_id"] for m in json.loads(shop.hub("segments", "members", "rfm_r=5", "--json").stdout)] == [
        ids_by_email(shop, "a@example.ru")["a@example.ru"]]
    unknown = shop.hub("segments", "members", "nope")
    assert unknown.exit_code == 2 and "no segment 'nope'" in unknown.stderr
    recomputed = json.loads(shop.hub("segments", "recompute", "--at", "2026-06-01", "--json").stdout)
    assert recomputed["contacts"] == 5 and recomputed["changed"] == 0 and recomputed["logged"] == 0


def test_orders_file_rows_are_history_and_bad_rows_are_quarantined(store_project):
    store_project.write("mappings/orders.yaml", ORDERS_MAPPING)
    store_project.write("orders.csv", ORDERS_HEADER + "o1,2026-01-01,q@example.ru,Ира Исаева,100,RUB\n"
                        "o2,когда-то,q@example.ru,Ира Исаева,100,RUB\n"
                        "o3,2026-01-03,q@example.ru,Ира Исаева,сто,RUB\n"
                        "o4,2026-01-04,q@example.ru,Ира Исаева,-5,RUB\n"
                        "o5,2026-01-05,q@example.ru,Ира Исаева,5,RUR1\n")
    store_project.config(orders_config())
    sync(store_project, day("2026-02-01"))
    reasons = sorted(row.reason for row in query(store_project, select(quarantine.c.reason)))
    assert len(reasons) == 4
    assert any(r.startswith("date: ") and "когда-то" in r for r in reasons)
    assert any(r.startswith("amount: ") and "сто" in r for r in reasons)
    assert any("negative" in r for r in reasons)
    assert any("RUR1" in r for r in reasons)
    # the file later holds only the newest order: the first stays (an order is not undone)
    store_project.write("orders.csv", ORDERS_HEADER + "o6,2026-01-20,q@example.ru,Ира Исаева,300,RUB\n")
    report = sync(store_project, day("2026-02-01"))
    assert report.status == "ok"
    assert query(store_project, select(func.count()).select_from(events))[0][0] == 2
    got = categories_by_email(store_project, "q@example.ru")["q@example.ru"]
    assert got["rfm_f"] == 2  # two orders


def test_an_events_column_missing_from_the_file_is_an_error(project):
    project.write("mappings/orders.yaml", ORDERS_MAPPING)
    project.write("orders.csv", "order_id,date,email,customer,sum\no1,2026-01-01,a@example.ru,А Б,1\n")
    project.config(orders_config())
    result = project.hub("sync")
    assert result.exit_code == 1
    assert "events: column 'amount' is not in the file" in result.stderr


@pytest.mark.parametrize(("text", "path", "message"), [
    ("categories:\n  temperature: {hot: 3 months}\n", "categories.temperature.hot", "is not a duration"),
    ("categories:\n  temperature: {hot: 400d}\n", "categories.temperature", "warm must be longer than hot"),
    ("categories:\n  abc: {a: 90, b: 20}\n", "categories.abc", "more than 100%"),
    ("categories:\n  rfm: {monetary: [1, 5, 3, 9]}\n", "categories.rfm.monetary", "must increase"),
    ("categories:\n  stage:\n    rules: [{value: x, when: [{category: abc, is: A}]}]\n",
     "categories.stage.rules[0].when[0].category", "stage rules cannot use categories"),
    ("segments:\n  a: {when: [{segment: b}]}\n  b: {when: [{field: city, is: Москва}]}\n",
     "segments.a.when[0].segment", "no segment 'b' defined before this one"),
    ("segments:\n  a: {when: [{field: city, fact: orders, min: 1}]}\n", "segments.a.when[0]",
     "exactly one of"),
    ("segments:\n  a: {when: [{field: town, is: Москва}]}\n", "segments.a.when[0]", "unknown field 'town'"),
    ("segments:\n  a: {when: [{category: stag, is: gold}]}\n", "segments.a.when[0].category", "stage"),
    ("segments:\n  a: {when: [{fact: orders, min_duration: 30d}]}\n", "segments.a.when[0]",
     "min_duration and max_duration apply to"),
    ("segments:\n  a: {when: [{fact: orders, mni: 3}]}\n", "segments.a.when[0].mni", "unknown key"),
    ("segments:\n  a: {when: [{not: {latest_event: [called]}}]}\n", "segments.a.when[0].not.latest_event[0]",
     "add it to categories.stage.funnel_events"),
    # durations past what a date can go back (or a timedelta hold)
    ("segments:\n  a: {when: [{fact: days_since_order, min_duration: 3000000y}]}\n", "segments.a.when[0]",
     "'3000000y' is too long; a duration is at most 1000y"),
    ("segments:\n  a: {when: [{fact: days_since_order, max_duration: 99999999999d}]}\n", "segments.a.when[0]",
     "is too long"),
    ("categories:\n  temperature: {hot: 90d, warm: 3000000y}\n", "categories.temperature.warm", "is too long"),
    ("clean: {inactive_after: 5000y}\n", "clean.inactive_after", "is too long"),
    ("clean: {inactive_after: P5000Y}\n", "clean.inactive_after", "too long"),
    # values a category or a consent never takes
    ("segments:\n  a: {when: [{category: stage, is: purple}]}\n", "segments.a.when[0].is",
     "'purple' is not a value of stage\n  hint: use one of: red-platinum, platinum"),
    ("segments:\n  a: {when: [{consent: email, is: maybe}]}\n", "segments.a.when[0].is",
     "'maybe' is not a consent status\n  hint: use one of: subscribed, unsubscribed, bounced"),
    ("segments:\n  a: {when: [{any: [{category: abc, in: [A, b]}]}]}\n", "segments.a.when[0].any[0].in[1]",
     "'b' is not a value of abc"),
    ("segments:\n  a: {when: [{category: temperature, not_in: [tepid]}]}\n", "segments.a.when[0].not_in[0]",
     "hot, warm, cold"),
    ("segments:\n  a: {when: [{category: rfm_r, is: 6}]}\n", "segments.a.when[0].is", "1, 2, 3, 4, 5"),
    ("categories:\n  stage:\n    rules: [{value: vip, when: [{fact: orders, min: 9}]}, {value: other}]\n"
     "segments:\n  a: {when: [{category: stage, is: gold}]}\n", "segments.a.when[0].is", "use one of: vip, other"),
    ("categories:\n  stage:\n    rules: [{value: x, when: [{consent: sms, in: [pending, opted_in]}]}]\n",
     "categories.stage.rules[0].when[0].in[1]", "'opted_in' is not a consent status"),
])
def test_config_errors_name_the_file_the_key_and_the_fix(project, text, path, message):
    project.config(text)
    result = project.hub("check")
    assert result.exit_code == 2, result.output
    assert f"hub.yaml: {path}" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_forget_removes_the_persons_categories_and_memberships(shop):
    sync(shop, day("2026-06-01"))
    a_id = ids_by_email(shop, "a@example.ru")["a@example.ru"]
    result = shop.hub("forget", "--email", "a@example.ru", "--json")
    assert result.exit_code == 0, result.output
    assert not query(shop, select(categories).where(categories.c.contact_id == a_id))
    from hub.store.schema import segment_members

    assert not query(shop, select(segment_members).where(segment_members.c.contact_id == a_id))
    sync(shop, day("2026-06-01T01:00"))  # the orders file still has a: suppressed, nothing comes back
    assert not query(shop, select(categories).where(categories.c.contact_id == a_id))
    best = query(shop, select(segment_members.c.contact_id).where(segment_members.c.segment == "best"))
    assert [row.contact_id for row in best] == [ids_by_email(shop, "b@example.ru")["b@example.ru"]]


def test_undo_leaves_categories_to_the_next_sync(shop):
    sync(shop, day("2026-06-01"))
    shop.write("orders.csv", ORDERS + "e2,2026-06-01,e@example.ru,Дина Ершова,100,RUB\n"
               "f1,2026-06-01,f@example.ru,Фёдор Жуков,100,RUB\n")
    second = sync(shop, day("2026-06-01T06:00"))
    assert categories_by_email(shop, "e@example.ru")["e@example.ru"]["stage"] == "gold"
    f_id = ids_by_email(shop, "f@example.ru")["f@example.ru"]
    undone = json.loads(shop.hub("undo", str(second.run_id), "--json").stdout)
    assert not [note for note in undone["not_undone"] if "category" in note or "segment" in note]
    sync(shop, day("2026-06-01T07:00"))
    # f was created by the undone run: deleted again, with its categories; e keeps its new
    # order (events are history, an undo does not remove them) and stays gold
    rows = {row.contact_id: row for row in query(shop, select(categories))}
    assert f_id not in rows and len(rows) == 5
    assert categories_by_email(shop, "e@example.ru")["e@example.ru"]["stage"] == "gold"


def test_a_stage_column_in_the_client_sheet(store_project):
    """The sheet is the client list and has a stage column: each stage becomes an event
    (at the file's time), and with history: false a row removed from the sheet is
    removed as usual."""
    store_project.write("clients.csv", "id,full_name,email,Этап\n1,Лев Лебедев,lev@example.ru,ЛПР найден\n"
                        "2,Яна Юдина,yana@example.ru,\n")
    store_project.config("""\
connectors:
  clients:
    plugin: csv
    path: clients.csv
    mapping: clients
    events: {type_column: Этап, types: {ЛПР найден: decision_maker, Отказ: refused}, history: false}
guards: {mass_delete_threshold: 100%}
""")
    store_project.write("mappings/clients.yaml", "fields:\n  full_name: full_name\n  email: {from: email, transforms: [email]}\n")
    sync(store_project, day("2026-06-01"))
    got = categories_by_email(store_project, "lev@example.ru", "yana@example.ru")
    assert got["lev@example.ru"]["stage"] == "gray" and got["yana@example.ru"]["stage"] == "white"
    store_project.write("clients.csv", "id,full_name,email,Этап\n1,Лев Лебедев,lev@example.ru,Отказ\n")
    sync(store_project, day("2026-06-02"))
    assert categories_by_email(store_project, "lev@example.ru")["lev@example.ru"]["stage"] == "red-green"
    assert len(query(store_project, select(categories))) == 1  # Яна left the sheet: removed
