"""The sync engine end to end through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random

import pytest
from sqlalchemy import create_engine, func, select, text, update

from hub.store.schema import changes, contacts, cursors, identifiers, outbox, runs, source_records, store_settings

SHEET = """\
id;ФИО;Телефон;Email;Город
1;Иванов Иван Иванович;8 (916) 123-45-67;ivan@example.ru;Мск
2;Петрова Мария;+7 903 765 43 21;MARIA.P@EXAMPLE.RU;СПб
3;Сидоров Пётр;8 925 000-00-01;;Казань
"""

MAILING = """\
email,first_name,last_name,phone
ivan@example.ru,Ivan,Ivanov,
maria.p@example.ru,Маша,Петрова,
new.person@example.ru,Анна,Новикова,+7 999 111-22-33
"""

CONFIG = """\
connectors:
  sheet: {plugin: csv, path: sheet.csv, id_column: id, mapping: sheet}
  mailing: {plugin: csv, path: mailing.csv, id_column: email}
  merged: {plugin: csv, role: destination, path: out/merged.csv}
merge:
  source_priority: [sheet, mailing]
"""

SHEET_MAPPING = """\
fields:
  full_name: {from: ФИО, transforms: [split_name]}
  phone: {from: Телефон, transforms: [phone]}
  email: {from: Email, transforms: [email]}
  city: Город
"""


@pytest.fixture
def demo(store_project):
    store_project.write("sheet.csv", SHEET)
    store_project.write("mailing.csv", MAILING)
    store_project.write("mappings/sheet.yaml", SHEET_MAPPING)
    store_project.config(CONFIG)
    return store_project


def _engine(project):
    url = project.store_url or f"sqlite:///{project.root / 'hub.db'}"
    return create_engine(url)


def _count(project, table, *where) -> int:
    engine = _engine(project)
    with engine.connect() as c:
        query = select(func.count()).select_from(table)
        for condition in where:
            query = query.where(condition)
        value = c.execute(query).scalar()
    engine.dispose()
    return value


def _links(project) -> list[dict[str, str]]:
    result = project.hub("export", "links")
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def _clusters(project, sources=("sheet", "mailing", "c")) -> set[frozenset[str]]:
    """Source records grouped by contact (links written to destinations left out)."""
    groups: dict[str, set[str]] = {}
    for link in _links(project):
        if link["source"] not in sources:
            continue
        groups.setdefault(link["contact_id"], set()).add(f"{link['source']}:{link['external_id']}")
    return {frozenset(v) for v in groups.values()}


def test_first_sync_dedupes_and_logs(demo):
    result = demo.hub("sync", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "ok"
    assert report["counts"]["sheet"]["created"] == 3
    assert report["counts"]["mailing"]["created"] == 1  # only the new person
    assert _count(demo, contacts, contacts.c.deleted_at.is_(None)) == 4
    clusters = _clusters(demo)
    assert frozenset({"sheet:1", "mailing:ivan@example.ru"}) in clusters
    assert frozenset({"sheet:2", "mailing:maria.p@example.ru"}) in clusters
    # the merged truth reached the destination file
    rows = list(csv.DictReader((demo.root / "out/merged.csv").open(encoding="utf-8-sig")))
    assert len(rows) == 4
    ivan = next(r for r in rows if r["email"] == "ivan@example.ru")
    assert ivan["phone"] == "+79161234567"
    assert ivan["full_name"] == "Иванов Иван Иванович"  # most complete name wins over "Ivan Ivanov"
    assert ivan["city"] == "Москва"


def test_second_run_with_unchanged_inputs_changes_and_sends_nothing(demo):
    assert demo.hub("sync").exit_code == 0
    before = _count(demo, changes)
    report = json.loads(demo.hub("sync", "--json").stdout)
    assert report["changes"] == 0
    assert _count(demo, changes) == before
    assert all(c["sent"] == 0 for c in report["counts"].values())
    assert all(c["created"] == 0 and c["updated"] == 0 for c in report["counts"].values())


def test_an_edit_is_logged_with_old_new_source_and_run(demo):
    demo.hub("sync")
    demo.write("sheet.csv", SHEET.replace("8 925 000-00-01", "8 925 000-00-02"))
    report = json.loads(demo.hub("sync", "--json").stdout)
    assert report["counts"]["sheet"]["unchanged"] == 2
    assert report["counts"]["sheet"]["updated"] == 1
    log = json.loads(demo.hub("log", "--field", "phone", "--run", str(report["run_id"]), "--json").stdout)
    assert [(e["old"], e["new"], e["connector"], e["external_id"], e["reason"]) for e in log] == [
        ("+79250000001", "+79250000002", "sheet", "3", "sync")
    ]
    assert report["counts"]["merged"]["sent"] == 1  # only the changed contact is pushed
    rows = list(csv.DictReader((demo.root / "out/merged.csv").open(encoding="utf-8-sig")))
    assert any(r["phone"] == "+79250000002" for r in rows)


def test_a_value_emptied_at_every_source_is_cleared_in_the_destination(demo):
    demo.hub("sync")
    demo.write("sheet.csv", SHEET.replace(";Казань", ";"))  # Сидоров's only city goes
    report = json.loads(demo.hub("sync", "--json").stdout)
    assert report["counts"]["merged"]["sent"] == 1
    rows = list(csv.DictReader((demo.root / "out/merged.csv").open(encoding="utf-8-sig")))
    sidorov = next(r for r in rows if r["phone"] == "+79250000001")
    assert sidorov["city"] == ""
    assert sidorov["full_name"] == "Сидоров Пётр"  # the rest stays
    # the cleared column is part of the payload from now on: nothing more to send
    report = json.loads(demo.hub("sync", "--json").stdout)
    assert report["counts"]["merged"]["sent"] == 0
    demo.write("sheet.csv", SHEET)  # the city comes back
    assert json.loads(demo.hub("sync", "--json").stdout)["counts"]["merged"]["sent"] == 1
    rows = list(csv.DictReader((demo.root / "out/merged.csv").open(encoding="utf-8-sig")))
    assert next(r for r in rows if r["phone"] == "+79250000001")["city"] == "Казань"


def test_a_column_the_destination_mapping_stopped_writing_is_left_to_the_tool(demo):
    demo.write("mappings/out.yaml", "fields:\n  full_name: ФИО\n  phone: Телефон\n  city: Город\n")
    demo.config(CONFIG.replace("path: out/merged.csv}", "path: out/merged.csv, mapping: out}"))
    demo.hub("sync")
    demo.write("mappings/out.yaml", "fields:\n  full_name: ФИО\n  phone: Телефон\n")  # the tool owns Город now
    demo.write("sheet.csv", SHEET.replace(";Казань", ";"))
    assert demo.hub("sync").exit_code == 0
    rows = list(csv.DictReader((demo.root / "out/merged.csv").open(encoding="utf-8-sig")))
    assert next(r for r in rows if r["Телефон"] == "+79250000001")["Город"] == "Казань"


def test_dry_run_writes_nothing_and_shows_a_sample(demo):
    engine = _engine(demo)
    result = demo.hub("sync", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["changes"] > 0 and report["sample"]
    assert report["pending"]["merged"] == 4
    with engine.connect() as c:
        for table in (contacts, changes, source_records, outbox, runs):
            assert c.execute(select(func.count()).select_from(table)).scalar() == 0
    engine.dispose()
    assert not (demo.root / "out/merged.csv").exists()


def test_bad_rows_are_quarantined_and_the_run_goes_on(demo):
    demo.write("sheet.csv", SHEET + "4;;мусор;не почта;\n;Без Айди;89160000000;;\n1;Дубль Иван;;;\n")
    result = demo.hub("sync", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["sheet"]["quarantined"] == 3
    assert report["counts"]["sheet"]["created"] == 3
    listed = json.loads(demo.hub("quarantine", "list", "--json").stdout)
    reasons = {entry["external_id"]: entry["reason"] for entry in listed}
    assert "no e-mail, phone or name" in reasons["4"]
    assert "no id" in reasons[""]
    assert "duplicate id '1'" in reasons["1"]
    # a rerun does not add the same entries again
    demo.hub("sync")
    assert len(json.loads(demo.hub("quarantine", "list", "--json").stdout)) == 3


def _appended_store(project) -> tuple:
    """What the store holds, ids and run numbers aside: contacts' values and records' clusters."""
    exported = json.loads(project.hub("export", "contacts", "--format", "json").stdout)
    values = sorted(json.dumps({k: v for k, v in row.items() if k not in ("id", "contact_id")}, sort_keys=True)
                    for row in exported)
    quarantined = sorted((e["external_id"], e["reason"]) for e in json.loads(
        project.hub("quarantine", "list", "--json").stdout))
    return values, _clusters(project), quarantined


def test_rows_appended_to_a_file_give_the_store_a_whole_read_gives(demo, tmp_path_factory):
    demo.hub("sync")
    engine = _engine(demo)
    with engine.connect() as c:
        before = c.execute(select(cursors.c.value).where(cursors.c.connector == "sheet")).scalar()
    added = "4;Орлова Вера;+7 916 444-44-44;;Тверь\n1;Дубль Иван;;;\n5;Сидоров П.;8 925 000-00-01;;\n"
    with (demo.root / "sheet.csv").open("a", encoding="utf-8") as handle:
        handle.write(added)
    result = demo.hub("sync", "--json")
    report = json.loads(result.stdout)["counts"]["sheet"]
    assert report["read"] == 3  # only the appended rows
    assert report["quarantined"] == 1 and report["created"] == 1
    appended = _appended_store(demo)
    # a run killed before it saved its cursor: the appended rows are read again, unchanged
    with engine.begin() as c:
        c.execute(update(cursors).where(cursors.c.connector == "sheet").values(value=before))
    engine.dispose()
    again = json.loads(demo.hub("sync", "--json").stdout)["counts"]["sheet"]
    assert (again["read"], again["unchanged"], again["quarantined"], again["created"]) == (3, 2, 1, 0)
    assert _appended_store(demo) == appended
    assert ("1", "duplicate id '1': an earlier record has it") in appended[2]
    # the same files read whole into a new store
    fresh = demo.__class__(tmp_path_factory.mktemp("whole"), None)
    for name in ("sheet.csv", "mailing.csv", "mappings/sheet.yaml"):
        fresh.write(name, (demo.root / name).read_text(encoding="utf-8"))
    fresh.config(CONFIG)
    assert fresh.hub("sync").exit_code == 0
    assert _appended_store(fresh) == appended


def test_a_sync_while_a_multiline_cell_is_half_written_gives_the_store_a_whole_read_gives(
        store_project, tmp_path_factory):
    config = "connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n"
    store_project.config(config)
    path = store_project.write("c.csv", 'id,full_name,email\n1,Иванов Иван,a@x.ru\n2,"Петров\n')
    first = json.loads(store_project.hub("sync", "--json").stdout)["counts"]["c"]
    assert (first["created"], first["quarantined"]) == (1, 1)  # the half row waits, it is not a contact
    with path.open("a", encoding="utf-8") as handle:
        handle.write('Пётр",b@x.ru\n3,Сидоров Сидор,c@x.ru\n')
    second = json.loads(store_project.hub("sync", "--json").stdout)["counts"]["c"]
    assert (second["read"], second["created"], second["quarantined"]) == (2, 2, 0)
    assert json.loads(store_project.hub("sync", "--json").stdout)["changes"] == 0
    grown = _appended_store(store_project)
    assert grown[2] == []  # the quarantined half row was resolved by the whole one
    fresh = store_project.__class__(tmp_path_factory.mktemp("whole"), None)
    fresh.write("c.csv", path.read_text(encoding="utf-8"))
    fresh.config(config)
    assert fresh.hub("sync").exit_code == 0
    assert _appended_store(fresh) == grown
    emails = {row["email"] for row in json.loads(store_project.hub("export", "contacts", "--format", "json",
                                                                     "--unmask").stdout)}
    assert emails == {"a@x.ru", "b@x.ru", "c@x.ru"}


def test_a_row_read_again_with_the_same_values_keeps_its_time_for_most_recent(store_project):
    store_project.config("""\
    connectors:
      a: {plugin: csv, path: a.csv, id_column: id}
      b: {plugin: csv, path: b.csv, id_column: id}
    """)
    store_project.write("a.csv", "id,full_name,phone,city\n1,Иванов Иван,8 916 123-45-67,Москва\n")
    store_project.write("b.csv", "id,full_name,phone,city\n7,Иванов Иван,+79161234567,Казань\n")
    store_project.hub("sync")
    store_project.write("b.csv", "id,full_name,phone,city\n7,Иванов Иван,+79161234567,Тверь\n")  # a real change
    store_project.hub("sync")
    cities = {row["city"] for row in json.loads(store_project.hub("export", "contacts", "--format", "json").stdout)}
    assert cities == {"Тверь"}
    # the other row changes its cells, not its values: it is no more recent than before
    store_project.write("a.csv", "id,full_name,phone,city\n1,Иванов Иван,+7 (916) 123-45-67,Москва\n")
    report = json.loads(store_project.hub("sync", "--json").stdout)
    assert report["counts"]["a"]["read"] == 1 and report["changes"] == 0
    cities = {row["city"] for row in json.loads(store_project.hub("export", "contacts", "--format", "json").stdout)}
    assert cities == {"Тверь"}


def test_fixed_rows_leave_quarantine_on_retry(demo):
    demo.write("sheet.csv", SHEET + "4;;мусор;;\n")
    demo.hub("sync")
    assert len(json.loads(demo.hub("quarantine", "list", "--json").stdout)) == 1
    demo.write("sheet.csv", SHEET + "4;Новый Человек;89160000004;;\n")
    result = demo.hub("quarantine", "retry", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["still_quarantined"] == 0
    assert json.loads(demo.hub("quarantine", "list", "--json").stdout) == []


def test_quarantine_retry_reads_again_a_row_stored_without_some_values(demo):
    """A row stored without a value hub could not read then (an older release) and read
    unchanged since: retry passed it over as unchanged and still said it was imported
    without some values."""
    from hub.store.schema import quarantine

    demo.hub("sync")
    # the store as a hub that could not read sheet:3's phone left it
    engine = _engine(demo)
    with engine.begin() as c:
        values = json.loads(c.execute(select(source_records.c.record_values).where(
            source_records.c.connector == "sheet", source_records.c.external_id == "3")).scalar())
        del values["phone"], values["phones"]
        c.execute(update(source_records).where(source_records.c.connector == "sheet",
                                               source_records.c.external_id == "3")
                  .values(record_values=json.dumps(values, ensure_ascii=False)))
        c.execute(quarantine.insert().values(connector="sheet", external_id="3", status="partial", raw="{}",
                                             raw_hash="0" * 32, at=dt.datetime.now(dt.timezone.utc),
                                             reason="phone: '8 925 000-00-01' is not a valid phone number"))
    engine.dispose()
    result = demo.hub("quarantine", "retry", "--json")
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["still_quarantined"], json.loads(result.stdout)["partial"]) == (0, 0)
    assert json.loads(demo.hub("quarantine", "list", "--json").stdout) == []
    engine = _engine(demo)
    with engine.connect() as c:
        values = json.loads(c.execute(select(source_records.c.record_values).where(
            source_records.c.connector == "sheet", source_records.c.external_id == "3")).scalar())
    engine.dispose()
    assert values["phone"] == "+79250000001"


def test_a_release_that_normalizes_differently_reads_every_row_again_once(demo, monkeypatch):
    """Rows unchanged at their source kept the values an older release made of them (a
    city alias it did not know) until someone edited the row."""
    import hub.normalize

    demo.hub("sync")
    # the store as a release without the alias «Мск» left it
    engine = _engine(demo)
    with engine.begin() as c:
        where = (source_records.c.connector == "sheet", source_records.c.external_id == "1")
        values = json.loads(c.execute(select(source_records.c.record_values).where(*where)).scalar())
        values["city"] = "Мск"
        c.execute(update(source_records).where(*where).values(record_values=json.dumps(values, ensure_ascii=False)))
        contact_id = c.execute(select(source_records.c.contact_id).where(*where)).scalar()
        c.execute(update(contacts).where(contacts.c.id == contact_id).values(city="Мск"))
    engine.dispose()
    assert json.loads(demo.hub("sync", "--json").stdout)["changes"] == 0  # the same release: rows skipped

    monkeypatch.setattr(hub.normalize, "NORMALIZATION_REVISION", hub.normalize.NORMALIZATION_REVISION + 1)
    hub.normalize.normalization_version.cache_clear()
    try:
        report = json.loads(demo.hub("sync", "--json").stdout)
        assert report["status"] == "ok", report
        assert (report["counts"]["sheet"]["read"], report["counts"]["mailing"]["read"]) == (3, 3)
        # the one row whose values come out different is stored anew; the others are not placed again
        assert report["counts"]["sheet"]["unchanged"] + report["counts"]["mailing"]["unchanged"] == 5
        card = json.loads(demo.hub("show", str(contact_id), "--json").stdout)
        assert card["fields"]["city"] == "Москва"
        log = json.loads(demo.hub("log", "--contact", str(contact_id), "--field", "city", "--json").stdout)
        assert [(e["old"], e["new"]) for e in log][-1:] == [("Мск", "Москва")]
        again = json.loads(demo.hub("sync", "--json").stdout)  # once: the files are not read again
        assert again["changes"] == 0 and again["counts"]["sheet"]["read"] == again["counts"]["mailing"]["read"] == 0
    finally:
        monkeypatch.undo()
        hub.normalize.normalization_version.cache_clear()


def test_a_file_hub_reads_and_writes_keeps_a_cell_with_two_numbers(store_project):
    """A both-way file's phone cell with two numbers was written back with the main one
    only, and the next read took the second number away from the contact."""
    store_project.config("""\
    connectors:
      sheet: {plugin: csv, role: both, path: sheet.csv, id_column: id, mapping: sheet}
      crm: {plugin: csv, path: crm.csv, id_column: id}
    """)
    store_project.write("mappings/sheet.yaml", SHEET_MAPPING)
    store_project.write("sheet.csv", "id;ФИО;Телефон;Email;Город\n"
                                     "1;Иванов Иван;8 916 123-45-67, 8 916 765-43-21;ivan@example.ru;Москва\n"
                                     "2;Петров Пётр;8 (903) 111-22-33;petr@example.ru;Тверь\n")
    store_project.write("crm.csv", "id,email,phone\nc1,petr@example.ru,+7 999 000-11-22\n")
    for _ in range(2):
        assert json.loads(store_project.hub("sync", "--json").stdout)["status"] == "ok"
    contacts_ = {row["email"]: row for row in json.loads(
        store_project.hub("export", "contacts", "--format", "json", "--unmask").stdout)}
    assert contacts_["ivan@example.ru"]["phones"] == ["+79161234567", "+79167654321"]
    assert contacts_["petr@example.ru"]["phones"] == ["+79031112233", "+79990001122"]
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO((store_project.root / "sheet.csv").read_text(
        encoding="utf-8-sig")), delimiter=";")}
    assert rows["1"]["Телефон"].lstrip("'") == "+79161234567, +79167654321"
    # a number only another source has is not added to the cell
    assert rows["2"]["Телефон"] == "+79031112233"
    log = json.loads(store_project.hub("log", "--field", "phones", "--json").stdout)
    assert not [e for e in log if e["new"] is not None and len(json.loads(e["new"])) < len(json.loads(e["old"] or "[]"))]
    assert json.loads(store_project.hub("sync", "--json").stdout)["changes"] == 0
    # the main number changed elsewhere replaces the cell's first; its second stays
    store_project.write("crm.csv", "id,email,phone\nc1,petr@example.ru,+7 999 000-11-22\n"
                                   "c2,ivan@example.ru,+7 926 555-44-33\n")
    store_project.config("""\
    connectors:
      sheet: {plugin: csv, role: both, path: sheet.csv, id_column: id, mapping: sheet}
      crm: {plugin: csv, path: crm.csv, id_column: id}
    merge:
      source_priority: [crm, sheet]
    """)
    for _ in range(2):
        assert json.loads(store_project.hub("sync", "--json").stdout)["status"] == "ok"
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO((store_project.root / "sheet.csv").read_text(
        encoding="utf-8-sig")), delimiter=";")}
    assert rows["1"]["Телефон"].lstrip("'") == "+79265554433, +79167654321"
    assert json.loads(store_project.hub("sync", "--json").stdout)["changes"] == 0


def test_quarantine_retry_speaks_json_and_refuses_an_unknown_connector(demo):
    demo.hub("sync")
    result = demo.hub("quarantine", "retry", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"connectors": [], "skipped": [], "run": None, "still_quarantined": 0,
                                         "partial": 0}
    for args in (["nope"], ["sheet", "nope"]):
        result = demo.hub("quarantine", "retry", *args)
        assert result.exit_code == 2, result.output
        assert "no connector named 'nope' in hub.yaml" in result.stderr
        assert "connectors: sheet, mailing, merged" in result.stderr


def _cursor(project, name):
    engine = _engine(project)
    with engine.connect() as c:
        value = c.execute(select(cursors.c.value).where(cursors.c.connector == name)).scalar()
    engine.dispose()
    return value


def test_quarantine_of_a_renamed_connector_is_skipped_by_retry_and_dropped_by_name(demo):
    demo.write("sheet.csv", SHEET + "4;;мусор;;\n")
    demo.hub("sync")
    demo.config(CONFIG.replace("  sheet:", "  clients:").replace("[sheet,", "[clients,"))
    demo.hub("sync")
    assert {e["connector"] for e in json.loads(demo.hub("quarantine", "list", "--json").stdout)} == {"sheet", "clients"}
    result = demo.hub("quarantine", "retry")
    assert result.exit_code == 0, result.output
    assert "skipped sheet (not in hub.yaml): 1 quarantined records; hub quarantine drop sheet" in result.stdout
    assert "re-read clients: 1 records still quarantined" in result.stdout
    data = json.loads(demo.hub("quarantine", "retry", "--json").stdout)
    assert data["connectors"] == ["clients"]
    assert data["skipped"] == [{"connector": "sheet", "records": 1, "reason": "not in hub.yaml"}]
    # naming the old connector is refused before any cursor is reset, with the way out
    assert _cursor(demo, "clients") is not None
    named = demo.hub("quarantine", "retry", "clients", "sheet")
    assert named.exit_code == 2 and "hub quarantine drop sheet" in named.stderr
    assert _cursor(demo, "clients") is not None
    # drop takes only connectors hub.yaml no longer has, and only names with entries
    kept = demo.hub("quarantine", "drop", "clients")
    assert kept.exit_code == 2 and "hub quarantine retry clients" in kept.stderr
    unknown = demo.hub("quarantine", "drop", "sheets")
    assert unknown.exit_code == 2 and "not in hub.yaml with quarantined records: sheet" in unknown.stderr
    dropped = demo.hub("quarantine", "drop", "sheet")
    assert dropped.exit_code == 0, dropped.output
    assert "dropped 1 quarantine entries of sheet" in dropped.stdout
    assert [e["connector"] for e in json.loads(demo.hub("quarantine", "list", "--json").stdout)] == ["clients"]
    assert json.loads(demo.hub("quarantine", "retry", "--json").stdout)["skipped"] == []


def test_mass_delete_guard_stops_the_run(demo):
    demo.hub("sync")
    demo.write("sheet.csv", "id;ФИО;Телефон;Email;Город\n")
    result = demo.hub("sync")
    assert result.exit_code == 1
    assert "mass-delete guard" in result.stderr and "--allow-mass-delete" in result.stderr
    assert _count(demo, source_records, source_records.c.removed_at.is_not(None)) == 0
    # the guard trips again on the next run: the cursor was not advanced; --json reports it too
    result = demo.hub("sync", "--json")
    assert result.exit_code == 1 and "mass-delete guard" in result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "failed" and "mass-delete guard" in report["errors"][0]
    result = demo.hub("sync", "--allow-mass-delete", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["sheet"]["removed"] == 3
    # Сидоров had only the sheet: his contact is gone; Ivan and Maria live on from the mailing list
    assert _count(demo, contacts, contacts.c.deleted_at.is_(None)) == 3
    rows = list(csv.DictReader((demo.root / "out/merged.csv").open(encoding="utf-8-sig")))
    assert len(rows) == 3
    assert not any(r["last_name"] == "Сидоров" for r in rows)


def test_removal_under_threshold_is_applied(demo):
    many = "id;ФИО;Телефон;Email;Город\n" + "".join(
        f"{i};Человек Номер{i};;p{i}@example.ru;\n" for i in range(1, 41)
    )
    demo.write("sheet.csv", many)
    demo.hub("sync")
    demo.write("sheet.csv", many.replace("40;Человек Номер40;;p40@example.ru;\n", ""))
    report = json.loads(demo.hub("sync", "--json").stdout)
    assert report["counts"]["sheet"]["removed"] == 1
    assert report["counts"]["sheet"]["deleted"] == 1


def test_a_new_record_joins_an_existing_contact_by_phone(demo):
    demo.hub("sync")
    demo.write("mailing.csv", MAILING + "petr@example.ru,Пётр,Сидоров,+7 925 000 00 01\n")
    report = json.loads(demo.hub("sync", "--json").stdout)
    assert report["counts"]["mailing"]["created"] == 0
    assert frozenset({"sheet:3", "mailing:petr@example.ru"}) in _clusters(demo)


def test_a_bridging_record_merges_two_contacts(demo):
    # a first name alone never merges: the sheet's Анна stays apart from the mailing's
    demo.write("sheet.csv", SHEET + "4;Анна;;;Москва\n")
    demo.hub("sync")
    assert len(list(csv.DictReader((demo.root / "out/merged.csv").open(encoding="utf-8-sig")))) == 5
    # the sheet row gains the phone the mailing list has for her: the two contacts are one
    demo.write("sheet.csv", SHEET + "4;Анна;+7 999 111-22-33;;Москва\n")
    report = json.loads(demo.hub("sync", "--json").stdout)
    assert report["counts"]["sheet"]["merged"] == 1
    merged_into = json.loads(demo.hub("log", "--field", "merged_into", "--json").stdout)
    assert len(merged_into) == 1 and merged_into[0]["reason"] == "merge"
    card = json.loads(demo.hub("show", "new.person@example.ru", "--json").stdout)
    assert card["fields"]["city"] == "Москва" and card["fields"]["phone"] == "+79991112233"
    assert {(r["source"], r["external_id"]) for r in card["records"] if r["origin"] == "read"} == {
        ("sheet", "4"), ("mailing", "new.person@example.ru")
    }
    # the old id leads to the survivor; the destination lost the merged-away row
    old_id = merged_into[0]["contact_id"]
    assert json.loads(demo.hub("show", str(old_id), "--json").stdout)["id"] == card["id"]
    rows = list(csv.DictReader((demo.root / "out/merged.csv").open(encoding="utf-8-sig")))
    assert len(rows) == 4
    assert str(old_id) not in {r["id"] for r in rows}
    assert demo.hub("sync", "--json").exit_code == 0
    assert json.loads(demo.hub("sync", "--json").stdout)["changes"] == 0


def test_identifiers_kept_batch_by_batch_are_those_of_all_records(store_project, monkeypatch):
    """A contact that only gains records gets their identifiers added; one whose record
    changed, went away or that absorbed another is derived from all its records. Either
    way the identifiers are what a rebuild from every record gives."""
    monkeypatch.setattr("hub.sync.BATCH_SIZE", 3)
    monkeypatch.setenv("HUB_WORKERS", "0")
    p = store_project
    p.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    engine = _engine(p)

    def identifiers_now() -> set[tuple]:
        with engine.connect() as c:
            return {tuple(row) for row in c.execute(
                select(identifiers.c.kind, identifiers.c.value, identifiers.c.contact_id))}

    def sync_and_rebuild(rows: list[str], *options: str) -> set[tuple[str, str]]:
        p.write("c.csv", "id,full_name,phone,email\n" + "\n".join(rows) + "\n")
        assert p.hub("sync", *options).exit_code == 0
        kept = identifiers_now()
        with engine.begin() as c:  # other key rules: every contact's identifiers are rebuilt
            c.execute(update(store_settings).where(store_settings.c.name == "identity_keys").values(value="older"))
        assert p.hub("sync").exit_code == 0
        assert identifiers_now() == kept
        return {(kind, value) for kind, value, _ in kept}

    try:
        first = [
            "1,Анна Белова,+79990000001,",
            "2,Борис Орлов,+79990000002,boris@example.ru",
            "3,Вера Котова,,vera@example.ru",
            "4,Анна,+79990000001,anna.b@example.ru",  # the next batches: known contacts grow
            "5,Белова Анна Сергеевна,,anna.b@example.ru",
            "6,Боря,+79990000002,borya@example.ru",
            "7,Вера К,+79990000003,vera@example.ru",
            "10,Дмитрий,+79990000005,",
            "11,Дима Лесков,,dima@example.ru",
            "14,Галина Петрова,+79990000006,",
        ]
        kept = sync_and_rebuild(first)
        assert {("email", "anna.b@example.ru"), ("phone", "+79990000003"), ("email", "borya@example.ru")} <= kept
        second = [row for row in first if not row.startswith("6,")]  # Боря's record is gone
        second[3] = "4,Анна,+79990000001,anna.new@example.ru"  # known records changed
        second[5] = "7,Вера К,+79990000004,vera@example.ru"
        second += ["12,Дмитрий,+79990000005,dima@example.ru",  # joins 10 and 11: a merge
                   "13,Галя,+79990000006,galya@example.ru"]  # Галина's only change: a new record
        kept = sync_and_rebuild(second, "--allow-mass-delete")
        assert {("email", "anna.new@example.ru"), ("email", "anna.b@example.ru"), ("email", "galya@example.ru"),
                ("email", "dima@example.ru"), ("phone", "+79990000005"), ("surname", "leskov")} <= kept
        assert not {("phone", "+79990000003"), ("email", "borya@example.ru")} & kept
    finally:
        engine.dispose()


def test_clusters_do_not_depend_on_record_order(project):
    rows = [
        "1,Анна Белова,+79990000001,anna@example.ru",
        "2,Анна,+79990000001,",
        "3,,,anna@example.ru",
        "4,Борис,+79990000002,boris@example.ru",
        "5,Борис Б,,boris@example.ru",
        "6,Вера,+79990000003,",
        "7,,+79990000002,b2@example.ru",
    ]
    seen = None
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        folder = project.root / f"run{seed}"
        folder.mkdir()
        p = type(project)(folder)
        p.write("c.csv", "id,full_name,phone,email\n" + "\n".join(shuffled) + "\n")
        p.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
        assert p.hub("sync").exit_code == 0
        clusters = _clusters(p)
        assert seen is None or clusters == seen
        seen = clusters
    assert len(seen) == 3


@pytest.mark.parametrize(
    "strategy, expected",
    [("source_priority", "+79160000001"), ("most_recent", "+79160000002")],
)
def test_survivorship_strategies(project, strategy, expected):
    project.write("a.csv", "id,full_name,phone,email\n1,Анна,+79160000001,anna@example.ru\n")
    project.write("b.csv", "id,full_name,phone,email\n1,Анна,+79160000009,anna@example.ru\n")
    project.config(f"""
        connectors:
          a: {{plugin: csv, path: a.csv, id_column: id}}
          b: {{plugin: csv, path: b.csv, id_column: id}}
        merge:
          source_priority: [a, b]
          fields: {{phone: {strategy}}}
    """)
    project.hub("sync")
    # an edit in b after the initial load is the most recent change
    project.write("b.csv", "id,full_name,phone,email\n1,Анна,+79160000002,anna@example.ru\n")
    project.hub("sync")
    card = json.loads(project.hub("show", "anna@example.ru", "--json").stdout)
    assert card["fields"]["phone"] == expected
    assert set(card["fields"]["phones"]) == {"+79160000001", "+79160000002"}


def test_a_record_that_now_describes_another_person_is_placed_anew(store_project):
    """Rows numbered by position (no id column) that were sorted, and a row overwritten
    with someone else, kept their contacts: the two people's contacts were then merged
    into one. A record whose new values share no e-mail or phone with its old ones and
    whose name differs outright is placed as a new record; a record of the same person
    that changed (a new address, a typo put right) keeps its contact."""
    project = store_project

    def links() -> dict[str, int]:
        return {f"{r['source']}:{r['external_id']}": r["contact_id"]
                for r in json.loads(project.hub("export", "links", "--format", "json").stdout)}

    def people() -> dict[str, str]:
        rows = json.loads(project.hub("export", "contacts", "--format", "json", "--unmask").stdout)
        return {row["full_name"]: row["email"] for row in rows}

    project.config("connectors:\n  clients: {plugin: csv, path: clients.csv}\n"
                   "  crm: {plugin: csv, path: crm.csv, id_column: id}\n"
                   "  family: {plugin: csv, path: family.csv}\n")
    project.write("clients.csv", "ФИО,Email\nИванов Иван,a@x.ru\nПетров Пётр,b@x.ru\n")
    project.write("crm.csv", "id,full_name,email\n7,Сидорова Анна,anna@x.ru\n8,Орлов Олег,oleg@x.ru\n")
    project.write("family.csv", "ФИО,Телефон,Город\nЛесков Пётр,+7 495 111-22-33,Тверь\nЛескова Мария,+7 495 111-22-33,Тула\n")
    assert project.hub("sync").exit_code == 0
    before = links()
    project.write("clients.csv", "ФИО,Email\nПетров Пётр,b@x.ru\nИванов Иван,a@x.ru\n")  # sorted
    project.write("crm.csv", "id,full_name,email\n7,Котова Анна Петровна,anna.k@x.ru\n"  # married: the same person
                  "8,Кузнецова Вера,vera@x.ru\n")  # row 8 overwritten with someone else
    project.write("family.csv", "ФИО,Телефон,Город\nЛескова Мария,+7 495 111-22-33,Тула\nЛесков Пётр,+7 495 111-22-33,Тверь\n")
    result = project.hub("sync", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["clients"]["merged"] == 0
    assert people() == {"Иванов Иван": "a@x.ru", "Петров Пётр": "b@x.ru", "Котова Анна Петровна": "anna.k@x.ru",
                        "Кузнецова Вера": "vera@x.ru", "Лесков Пётр": None, "Лескова Мария": None}
    after = links()
    assert after["clients:row:2"] == before["clients:row:3"] and after["clients:row:3"] == before["clients:row:2"]
    assert after["family:row:2"] == before["family:row:3"] and after["family:row:3"] == before["family:row:2"]
    assert after["crm:7"] == before["crm:7"] and after["crm:8"] != before["crm:8"]
    moved = [e for e in json.loads(project.hub("log", "--json", "--field", "record").stdout) if e["reason"] == "sync"]
    assert len(moved) == 5


def test_second_run_exits_3_while_the_lock_is_held(demo):
    from hub.store import Store

    demo.hub("sync")
    store = Store(demo.store_url or f"sqlite:///{demo.root / 'hub.db'}")
    with store.lock("sync"):
        result = demo.hub("sync")
    store.dispose()
    assert result.exit_code == 3
    assert "another hub sync is running" in result.stderr
    assert demo.hub("sync").exit_code == 0


def test_a_write_transaction_waits_for_another_writer_instead_of_failing(tmp_path):
    """SQLite: a transaction that reads, then writes after another process (hub serve
    storing a form) committed, failed at once with "database is locked" (its snapshot
    was stale); one that takes the write lock at its start waits for the other instead."""
    import threading

    from hub.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    failures: list[BaseException] = []

    def another_writer() -> None:
        try:
            with store.begin() as other:
                other.execute(store_settings.insert().values(name="form", value="stored"))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    with store.begin() as c:
        c.execute(select(func.count()).select_from(contacts)).scalar()
        writer = threading.Thread(target=another_writer)
        writer.start()
        writer.join(timeout=0.5)  # it commits now, or waits for this transaction to end
        c.execute(store_settings.insert().values(name="batch", value="stored"))
    writer.join()
    with store.connect() as c:
        stored = dict(c.execute(select(store_settings.c.name, store_settings.c.value)).all())
    store.dispose()
    assert not failures and {stored.get("form"), stored.get("batch")} == {"stored"}


def test_export_links_and_contacts(demo):
    demo.hub("sync")
    result = demo.hub("export", "links")
    lines = result.stdout.splitlines()
    assert lines[0] == "source,external_id,contact_id"
    assert len(lines) - 1 == 6 + 4  # six source records, four written to merged.csv
    as_json = json.loads(demo.hub("export", "links", "--format", "json").stdout)
    assert set(as_json[0]) == {"source", "external_id", "contact_id"}
    out = demo.root / "contacts.json"
    assert demo.hub("export", "contacts", "--format", "json", "-o", str(out)).exit_code == 0
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert len(exported) == 4 and exported[0]["id"] == 1


def test_runs_lists_history_with_counts(demo):
    demo.hub("sync")
    demo.hub("sync")
    listed = json.loads(demo.hub("runs", "--json").stdout)
    assert [r["status"] for r in listed] == ["ok", "ok"]
    assert listed[1]["counts"]["sheet"]["created"] == 3


def test_store_on_a_newer_schema_is_refused(demo):
    demo.hub("sync")
    engine = _engine(demo)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    result = demo.hub("sync")
    assert result.exit_code == 1
    assert "newer than this hub knows" in result.stderr


def test_a_bad_value_is_dropped_and_reported_while_the_row_is_imported(project):
    project.write("c.csv", "id,name,phone,born\n1,Орлов Игорь,89161234567,31.02.1990\n2,Анна,мусор,01.02.1990\n")
    project.write("mappings/c.yaml", """
        fields:
          full_name: {from: name, transforms: [split_name]}
          phone: {from: phone, transforms: [phone]}
          birthday: {from: born, transforms: [{date: DD.MM.YYYY}]}
    """)
    project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    report = json.loads(project.hub("sync", "--json").stdout)
    assert report["counts"]["c"]["created"] == 2 and report["counts"]["c"]["quarantined"] == 0
    partial = {e["external_id"]: e for e in json.loads(project.hub("quarantine", "list", "--json").stdout)}
    assert partial["1"]["status"] == "partial"
    assert "birthday: '31.02.1990' is not a DD.MM.YYYY date" in partial["1"]["reason"]
    assert "phone: 'мусор' is not a phone number" in partial["2"]["reason"]
    orlov = json.loads(project.hub("show", "c:1", "--json").stdout)["fields"]
    assert orlov["phone"] == "+79161234567" and "birthday" not in orlov
    # the source is fixed: the entry resolves on the next sync
    project.write("c.csv", "id,name,phone,born\n1,Орлов Игорь,89161234567,28.02.1990\n2,Анна,мусор,01.02.1990\n")
    project.hub("sync")
    left = json.loads(project.hub("quarantine", "list", "--json").stdout)
    assert [e["external_id"] for e in left] == ["2"]
    assert json.loads(project.hub("show", "c:1", "--json").stdout)["fields"]["birthday"] == "1990-02-28"


def test_reordered_and_added_columns_change_nothing(demo):
    demo.hub("sync")
    lines = SHEET.splitlines()
    reordered = []
    for line in lines:
        cells = line.split(";")
        reordered.append(";".join([cells[4], cells[0], cells[3], cells[2], cells[1], "x"]))
    reordered[0] = reordered[0][:-1] + "Заметка"
    demo.write("sheet.csv", "\n".join(reordered) + "\n")
    report = json.loads(demo.hub("sync", "--json").stdout)
    assert report["counts"]["sheet"]["read"] == 3
    assert report["changes"] == 0


def test_the_worker_process_gives_the_same_store(tmp_path):
    """Batches prepared in the worker process and in the main process give one result."""
    from tests.conftest import Project

    rows = ["id,full_name,phone,email,birthday"]
    for i in range(600):
        person = i // 2  # every person twice, once by phone and once by e-mail
        born = dt.date(1950, 1, 1) + dt.timedelta(days=person)
        rows.append(f"{i},Человек Номер{person} Иванович,8 916 {person:07d},p{person}@example.ru,"
                    f"{born:%d.%m.%Y}")
    results = []
    for setting in ("0", "always"):
        project = Project(tmp_path / setting)
        project.write("c.csv", "\n".join(rows) + "\n")
        project.write("mappings/c.yaml", "fields:\n  full_name: {from: full_name, transforms: [split_name]}\n"
                      "  phone: phone\n  email: email\n  birthday: {from: birthday, transforms: [{date: DD.MM.YYYY}]}\n")
        project.config("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
        result = project.hub("sync", "--json", env={"HUB_WORKERS": setting})
        assert result.exit_code == 0, result.output
        contacts = json.loads(project.hub("export", "contacts", "--format", "json").stdout)
        links = json.loads(project.hub("export", "links", "--format", "json").stdout)
        log = json.loads(project.hub("log", "--json", "-n", "100000").stdout)
        results.append((contacts, links, [(e["contact_id"], e["field"], e["new"]) for e in log]))
    assert results[0] == results[1]
    assert len(results[0][0]) == 300


def test_field_history_starts_with_the_value_a_contact_was_created_with(demo):
    demo.hub("sync")
    demo.write("sheet.csv", SHEET.replace("8 925 000-00-01", "8 925 000-00-02"))
    demo.hub("sync")
    history = json.loads(demo.hub("log", "--contact", "sheet:3", "--field", "phone", "--json").stdout)
    assert [(e["old"], e["new"], e["connector"], e["run_id"]) for e in history] == [
        (None, "+79250000001", "sheet", 1),
        ("+79250000001", "+79250000002", "sheet", 2),
    ]
    created = json.loads(demo.hub("log", "--contact", "sheet:3", "--field", "created", "--json").stdout)
    assert json.loads(created[0]["new"])["city"] == "Казань"


def test_the_worker_process_dies_with_a_killed_sync(tmp_path):
    """A SIGKILLed sync leaves no worker behind holding its output pipes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    rows = "\n".join(f"{i},Человек Номер{i},p{i}@example.ru" for i in range(20000))
    (tmp_path / "c.csv").write_text("id,full_name,email\n" + rows + "\n", encoding="utf-8")
    (tmp_path / "hub.yaml").write_text("connectors:\n  c: {plugin: csv, path: c.csv, id_column: id}\n")
    env = dict(os.environ, HUB_WORKERS="always", HUB_LOAD_PLUGINS="")
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "-c", str(tmp_path / "hub.yaml"), "sync"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    children: list[int] = []
    deadline = time.monotonic() + 60
    while not children and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        tasks = f"/proc/{process.pid}/task/{process.pid}/children"
        if os.path.exists(tasks):
            children = [int(pid) for pid in open(tasks).read().split()]
    assert children, "the sync started no worker process"
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=20)  # returns only when no process holds the pipes
    time.sleep(0.5)
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()


def test_an_item_the_destination_rejects_is_counted_and_not_resent(project):
    project.write("c.csv", "id,full_name,email\n1,Анна 😀 Белова,a@example.ru\n2,Борис Петров,b@example.ru\n")
    out = project.root / "out.csv"
    # a cp1251 file (a row of someone's own keeps it recognisable) cannot hold the emoji
    out.write_bytes("id;full_name\r\nx9;Свой Человек\r\n".encode("cp1251"))
    project.config("""
        connectors:
          c: {plugin: csv, path: c.csv, id_column: id}
          out: {plugin: csv, role: destination, path: out.csv}
    """)
    report = json.loads(project.hub("sync", "--json").stdout)
    assert (report["counts"]["out"]["sent"], report["counts"]["out"]["rejected"]) == (1, 1)
    assert "Петров" in out.read_bytes().decode("cp1251")
    again = json.loads(project.hub("sync", "--json").stdout)
    assert (again["counts"]["out"]["sent"], again["counts"]["out"]["rejected"]) == (0, 0)


def test_sources_with_common_headers_sync_without_a_mapping(project):
    """A manager's sheet (cp1251, «;», ФИО / Телефон / E-mail / Дата рождения) and a
    mailing export (Email / First Name / Last Name) need no mapping file."""
    project.write("sheet.csv", "№;ФИО;Телефон;E-mail;Город;Дата рождения\r\n"
                               "1;Романова Дарья Михайловна;8 (968) 610-24-89;;Мск;05.03.1990\r\n",
                  encoding="cp1251")
    project.write("mailing.csv", "Email,First Name,Last Name,Status\n"
                                 "d.romanova@mail.ru,Dasha,Romanova,subscribed\n")
    project.write("forms.csv", "tranid,Имя,Телефон,Email\n"
                               "t1,Даша Романова,+7 968 610 24 89,d.romanova@mail.ru\n")
    project.config("""\
        connectors:
          sheet: {plugin: csv, path: sheet.csv, id_column: №}
          mailing: {plugin: csv, path: mailing.csv, id_column: Email}
          forms: {plugin: csv, path: forms.csv, id_column: tranid}
    """)
    check = project.hub("check")
    assert check.exit_code == 0, check.output
    assert "ФИО -> full_name" in check.output and "Имя -> full_name" in check.output
    result = project.hub("sync")
    assert result.exit_code == 0, result.output
    links = json.loads(project.hub("export", "links", "--format", "json").stdout)
    assert len({row["contact_id"] for row in links}) == 1
    card = json.loads(project.hub("show", "d.romanova@mail.ru", "--json").stdout)
    fields = card["fields"]
    assert (fields["last_name"], fields["first_name"], fields["middle_name"]) == ("Романова", "Дарья", "Михайловна")
    assert fields["phone"] == "+79686102489"
    assert fields["birthday"] == "1990-03-05"
    assert fields["city"] == "Москва"


def test_a_column_renamed_in_a_source_without_a_mapping_does_not_empty_its_field(project):
    # a source read by its headers: «Телефон» renamed to a header hub does not know would
    # have taken the phone from every contact, silently
    project.config("connectors:\n  clients: {plugin: csv, path: clients.csv}\n"
                   "  out: {plugin: csv, role: destination, path: out.csv}\n")
    project.write("clients.csv", "id,ФИО,Телефон,Email\n1,Иванов Иван,89161234567,a@x.ru\n"
                  "2,Петров Пётр,89161234568,b@x.ru\n")
    assert project.hub("sync").exit_code == 0
    # reordered, and renamed to another header of the same field: nothing changes
    project.write("clients.csv", "Мобильный телефон,id,Email,ФИО\n89161234567,1,a@x.ru,Иванов Иван\n"
                  "89161234568,2,b@x.ru,Петров Пётр\n")
    result = project.hub("sync", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["changes"] == 0
    project.write("clients.csv", "id,ФИО,Тел. сотовый,Email\n1,Иванов Иван,89161234567,a@x.ru\n"
                  "2,Петров Пётр,89161234568,b@x.ru\n")
    result = project.hub("sync", "--json")
    assert result.exit_code == 1
    (error,) = json.loads(result.stdout)["errors"]
    assert "'Мобильный телефон' (phone)" in error and "--allow-mass-delete" in error
    rows = json.loads(project.hub("export", "contacts", "--format", "json", "--unmask").stdout)
    assert sorted(row["phone"] for row in rows) == ["+79161234567", "+79161234568"]
    assert project.hub("sync", "--dry-run", "--json").exit_code == 1  # a dry run remembers nothing
    # removed on purpose
    result = project.hub("sync", "--allow-mass-delete", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(project.hub("export", "contacts", "--format", "json", "--unmask").stdout)
    assert [row["phone"] for row in rows] == [None, None]
    assert project.hub("sync").exit_code == 0


def test_the_id_column_is_never_read_as_a_field_by_its_header(project):
    """«Номер» is an SMS list's phone where no other column is; as a numbered sheet's id
    column it was read as a phone too, and every row was quarantined with '1' is not a
    phone number."""
    project.write("sheet.csv", "Номер;ФИО;Email\n1;Иванов Иван;ivan@example.ru\n2;Петрова Мария;maria@example.ru\n")
    project.write("sms.csv", "id,Номер,Имя\nS1,+79161234567,Иван\n")
    project.config("connectors:\n  sheet: {plugin: csv, path: sheet.csv, id_column: Номер}\n"
                   "  sms: {plugin: csv, path: sms.csv, id_column: id}\n")
    report = json.loads(project.hub("sync", "--json").stdout)
    assert report["counts"]["sheet"]["quarantined"] == 0
    assert json.loads(project.hub("quarantine", "list", "--json").stdout) == []
    phones = {row["phone"] for row in json.loads(project.hub("export", "contacts", "--format", "json",
                                                              "--unmask").stdout)}
    assert phones == {None, "+79161234567"}
