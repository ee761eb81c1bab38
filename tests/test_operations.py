"""Operations through the CLI: undo, forget, export audit, reconcile, schedule."""

from __future__ import annotations

import csv
import io
import json

import pytest

SHEET = """\
id,full_name,phone,email,city
1,Иванов Иван,+79161234567,ivan@example.ru,Москва
2,Петрова Мария,+79037654321,maria@example.ru,Казань
3,Сидоров Пётр,+79250000001,petr@example.ru,Тверь
"""

CONFIG = """\
connectors:
  sheet: {plugin: csv, path: sheet.csv, id_column: id}
  out: {plugin: csv, role: destination, path: out.csv}
"""


@pytest.fixture
def ops(store_project):
    store_project.write("sheet.csv", SHEET)
    store_project.config(CONFIG)
    assert store_project.hub("sync").exit_code == 0
    return store_project


def _sync(project, *args: str) -> dict:
    result = project.hub("sync", "--json", *args)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def _edit(project, old: str, new: str) -> None:
    path = project.root / "sheet.csv"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def _contacts(project) -> dict[str, dict]:
    rows = json.loads(project.hub("export", "contacts", "--format", "json", "--unmask").stdout)
    return {row["full_name"]: row for row in rows}


def _out(project) -> dict[str, dict]:
    with open(project.root / "out.csv", encoding="utf-8") as f:
        return {row["full_name"]: row for row in csv.DictReader(f)}


def _log(project, *args: str) -> list[dict]:
    return json.loads(project.hub("log", "--json", "-n", "10000", *args).stdout)


# ------------------------------------------------------------------------- undo


def test_undo_reverts_a_run_and_the_next_sync_sends_it(ops):
    _edit(ops, "+79161234567", "+79160000000")
    _edit(ops, "Казань", "Самара")
    bad = _sync(ops)["run_id"]
    assert _out(ops)["Иванов Иван"]["phone"] == "+79160000000"
    result = ops.hub("undo", str(bad), "--json")
    assert result.exit_code == 0, result.output
    undo = json.loads(result.stdout)
    assert undo["undid"] == bad and undo["contacts"] == 2
    contacts = _contacts(ops)
    assert contacts["Иванов Иван"]["phone"] == "+79161234567"
    assert contacts["Петрова Мария"]["city"] == "Казань"
    entries = _log(ops, "--run", str(undo["run_id"]))
    assert {(e["field"], e["old"], e["new"], e["reason"]) for e in entries} >= {
        ("phone", "+79160000000", "+79161234567", "undo"),
        ("city", "Самара", "Казань", "undo"),
    }
    # queued for the destination through the outbox: the next sync writes it
    _sync(ops)
    assert _out(ops)["Иванов Иван"]["phone"] == "+79161234567"
    assert _out(ops)["Петрова Мария"]["city"] == "Казань"
    # the undo holds while the source is unchanged, even on a full re-read
    assert ops.hub("quarantine", "retry").exit_code == 0
    ops.write("hub.yaml", (ops.root / "hub.yaml").read_text(encoding="utf-8").replace(
        "id_column: id}", "id_column: id, delimiter: ','}"))
    _sync(ops)
    assert _contacts(ops)["Иванов Иван"]["phone"] == "+79161234567"
    # a new value from the source wins again
    _edit(ops, "+79160000000", "+79169999999")
    _sync(ops)
    assert _contacts(ops)["Иванов Иван"]["phone"] == "+79169999999"
    # a run is undone once
    again = ops.hub("undo", str(bad))
    assert again.exit_code == 2 and f"undone already by run {undo['run_id']}" in again.stderr


def test_undo_refuses_when_later_runs_changed_the_same_fields_unless_forced(ops):
    _edit(ops, "+79161234567", "+79160000000")
    bad = _sync(ops)["run_id"]
    _edit(ops, "+79160000000", "+79161111111")
    later = _sync(ops)["run_id"]
    refused = ops.hub("undo", str(bad))
    assert refused.exit_code == 2
    assert f"run {later}: contact 1 phone: '+79160000000' -> '+79161111111'" in refused.stderr
    assert "--force" in refused.stderr
    assert _contacts(ops)["Иванов Иван"]["phone"] == "+79161111111"  # nothing written
    forced = ops.hub("undo", str(bad), "--force", "--json")
    assert forced.exit_code == 0, forced.output
    assert {e["run_id"] for e in json.loads(forced.stdout)["forced_over"]} == {later}
    assert _contacts(ops)["Иванов Иван"]["phone"] == "+79161234567"


def test_undo_of_a_run_that_created_and_removed_contacts(ops):
    path = ops.root / "sheet.csv"
    path.write_text(SHEET + "4,Новикова Анна,+79991112233,anna@example.ru,Омск\n", encoding="utf-8")
    created = _sync(ops)["run_id"]
    assert "Новикова Анна" in _out(ops)
    assert ops.hub("undo", str(created)).exit_code == 0
    assert "Новикова Анна" not in _contacts(ops)
    _sync(ops)
    assert "Новикова Анна" not in _out(ops)  # deleted in the destination too
    _sync(ops)
    assert "Новикова Анна" not in _contacts(ops)  # and it stays deleted
    # a removal undone brings the contact back
    path.write_text("\n".join(SHEET.splitlines()[:3]) + "\n", encoding="utf-8")  # row 3 gone
    removed = _sync(ops, "--allow-mass-delete")["run_id"]
    assert "Сидоров Пётр" not in _contacts(ops)
    assert ops.hub("undo", str(removed)).exit_code == 0
    assert _contacts(ops)["Сидоров Пётр"]["phone"] == "+79250000001"


def test_undo_of_an_unknown_run_is_a_usage_error(ops):
    result = ops.hub("undo", "99")
    assert result.exit_code == 2 and "no run 99" in result.stderr


def test_the_migrations_build_the_tables_of_schema_py(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from hub.store import open_store
    from hub.store.schema import metadata

    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    with store.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), metadata)
    store.dispose()
    assert diff == []


# ------------------------------------------------------------------------ audit


def test_exports_are_masked_unless_unmask_and_every_read_is_audited(ops):
    masked = list(csv.DictReader(io.StringIO(ops.hub("export", "contacts", "--actor", "manager").stdout)))
    assert {row["email"] for row in masked} == {"i***@example.ru", "m***@example.ru", "p***@example.ru"}
    assert "**********67" in {row["phone"] for row in masked}
    assert not any("1234567" in json.dumps(row, ensure_ascii=False) for row in masked)
    full = ops.hub("export", "contacts", "--unmask", "--format", "json", "-o", str(ops.root / "all.json"),
                   "--actor", "owner")
    assert full.exit_code == 0
    assert "+79161234567" in (ops.root / "all.json").read_text(encoding="utf-8")
    links = ops.hub("export", "links").stdout.splitlines()
    assert links[0] == "source,external_id,contact_id" and links[1] == "out,1,1"  # unchanged format
    assert ops.hub("show", "ivan@example.ru", "--json").exit_code == 0
    audit = json.loads(ops.hub("audit", "--json").stdout)
    assert [(a["actor"], a["action"], a["what"], a["rows"], a["unmasked"]) for a in audit] == [
        ("manager", "export", "contacts", 3, False),
        ("owner", "export", "contacts", 3, True),
        (audit[2]["actor"], "export", "links", 6, True),
        (audit[3]["actor"], "show", "contact 1", 1, True),
    ]
    assert audit[2]["actor"]  # the OS user when no --actor
    assert [a["actor"] for a in json.loads(ops.hub("audit", "--json", "--actor", "owner").stdout)] == ["owner"]
    assert "manager" in ops.hub("audit").stdout


# ----------------------------------------------------------------------- forget


FORGET_CONFIG = """\
connectors:
  sheet: {plugin: csv, path: sheet.csv, id_column: id}
  mailing: {plugin: csv, path: mailing.csv, id_column: email}
  out: {plugin: csv, role: destination, path: out.csv}
"""


def test_forget_erases_a_person_and_a_source_that_still_has_them_does_not_bring_them_back(store_project):
    project = store_project
    project.write("sheet.csv", SHEET)
    project.write("mailing.csv", "email,full_name,phone\nivan@example.ru,Иван Иванов,8 916 123-45-67\n"
                  "maria@example.ru,Мария Петрова,\n")
    project.config(FORGET_CONFIG)
    assert project.hub("sync").exit_code == 0
    assert "Иванов Иван" in _out(project)
    result = project.hub("forget", "--email", " IVAN@example.ru ", "--json", "--actor", "dpo")
    assert result.exit_code == 0, result.output
    erased = json.loads(result.stdout)
    assert erased["contacts"] == [1]
    assert erased["identifiers_suppressed"] == 2  # the e-mail and the phone
    assert erased["deletion_queued"] == ["out"]
    assert {t["connector"]: t["external_ids"] for t in erased["delete_by_hand"]} == {
        "sheet": ["1"], "mailing": ["ivan@example.ru"]}
    assert "Иванов Иван" not in _contacts(project)
    # nothing of the person is left in the store's readable tables
    dump = "".join(project.hub(*args).stdout for args in (
        ("log", "--json", "-n", "10000"), ("export", "links", "--format", "json"), ("show", "1", "--json"),
        ("runs", "--json"), ("quarantine", "list", "--json", "--status", "all")))
    for secret in ("ivan@example.ru", "+79161234567", "Иванов", "Иван"):
        assert secret not in dump
    card = json.loads(project.hub("show", "1", "--json").stdout)
    assert card["deleted"] and card["fields"] == {} and card["identifiers"] == []
    assert {e["field"] for e in card["history"]} >= {"created", "erased"}
    assert all(e["new"] in (None, "[erased]") for e in card["history"])
    # the next sync deletes the person from the destination; the sources still have them
    report = _sync(project)
    assert "Иванов Иван" not in _out(project)
    assert report["counts"]["out"]["sent"] == 1
    # re-import from a source that still has the person, even after an edit: skipped and counted
    _edit(project, "1,Иванов Иван,+79161234567,ivan@example.ru,Москва", "1,Иванов Иван,+79161234567,,Тула")
    report = _sync(project)
    assert report["counts"]["sheet"]["suppressed"] == 1 and report["counts"]["sheet"]["created"] == 0
    project.write("sheet.csv", SHEET + "9,Иван И.,8 (916) 123-45-67,,Москва\n")  # a new row: same phone
    report = _sync(project)
    assert report["counts"]["sheet"]["suppressed"] == 2
    names = set(_contacts(project))
    assert not any("Иван" in name for name in names) and names == {"Петрова Мария", "Сидоров Пётр"}
    assert len(_out(project)) == 2


def test_forget_by_contact_or_phone_and_bad_arguments(ops):
    result = ops.hub("forget", "--phone", "8 903 765-43-21")
    assert result.exit_code == 0, result.output
    assert "erased contacts 2" in result.stdout and "out" in result.stdout
    assert ops.hub("forget", "3", "--json").exit_code == 0
    assert set(_contacts(ops)) == {"Иванов Иван"}
    assert ops.hub("forget").exit_code == 2
    bad = ops.hub("forget", "--email", "not an address")
    assert bad.exit_code == 2 and "not an e-mail" in bad.stderr
    # someone not in the store yet: suppressed before they arrive
    nobody = json.loads(ops.hub("forget", "--email", "later@example.ru", "--json").stdout)
    assert nobody["contacts"] == [] and nobody["identifiers_suppressed"] == 1
    ops.write("sheet.csv", SHEET + "4,Поздний Гость,,later@example.ru,Омск\n")
    assert _sync(ops)["counts"]["sheet"]["suppressed"] == 3  # rows 2, 3 (erased before) and 4
    assert set(_contacts(ops)) == {"Иванов Иван"}
    refused = ops.hub("undo", str(nobody["run_id"]))
    assert refused.exit_code == 2 and "cannot be undone" in refused.stderr


# -------------------------------------------------------------------- reconcile


CRM = """\
id,full_name,phone,email,city
1,Иванов Иван,8 916 123-45-67,ivan@example.ru,Москва
2,Петрова Мария,+79037654321,maria@example.ru,Казань
3,Сидоров Пётр,+79250000001,petr@example.ru,Тверь
"""


@pytest.fixture
def crm(store_project):
    store_project.write("crm.csv", CRM)
    store_project.write("mailing.csv", "email,full_name,phone\nnew@example.ru,Новиков Олег,+79990001122\n")
    store_project.config("""\
    connectors:
      crm: {plugin: csv, role: both, path: crm.csv, id_column: id}
      mailing: {plugin: csv, path: mailing.csv, id_column: email}
    """)
    assert store_project.hub("sync").exit_code == 0
    return store_project


def test_reconcile_reports_exactly_the_edits_made_behind_hubs_back(crm):
    clean = json.loads(crm.hub("reconcile", "crm", "--json").stdout)
    assert clean["counts"] == {"missing_in_tool": 0, "missing_in_store": 0, "conflicts": 0}
    path = crm.root / "crm.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    edited = [
        rows[0].replace("+79161234567", "+79161110000"),  # a phone edited
        rows[1].replace("Казань", "Самара"),  # a city edited
        # row 3 deleted
        *rows[3:],
        "9,Гость Новый,+79995554433,guest@example.ru,Омск",  # a row added
    ]
    path.write_text("\n".join([header, *edited]) + "\n", encoding="utf-8")
    report = json.loads(crm.hub("reconcile", "crm", "--json", "--unmask").stdout)
    found = {(r["kind"], r["external_id"], r["field"], r["tool"], r["store"]) for r in
             report["missing_in_tool"] + report["missing_in_store"] + report["conflicts"]}
    assert found == {
        ("conflict", "1", "phone", "+79161110000", "+79161234567"),
        ("conflict", "2", "city", "Самара", "Казань"),
        ("missing_in_tool", "3", None, None, "Сидоров Пётр, petr@example.ru, +79250000001"),
        ("missing_in_store", "9", None, "Гость Новый, guest@example.ru, +79995554433", None),
    }
    table = crm.hub("reconcile", "crm")
    assert table.exit_code == 0 and "1 missing in the tool, 1 missing in the store, 2 conflicts" in table.stdout
    assert "+79161110000" not in table.stdout  # masked without --unmask
    as_csv = crm.hub("reconcile", "crm", "--format", "csv").stdout.splitlines()
    assert as_csv[0] == "kind,external_id,contact_id,field,tool,store" and len(as_csv) == 5
    # --apply: the tool is read (edits flow in, the deleted row is removed behind the guard)
    guarded = crm.hub("reconcile", "crm", "--apply")
    assert guarded.exit_code == 1 and "mass-delete guard" in guarded.stderr
    applied = json.loads(crm.hub("reconcile", "crm", "--apply", "--allow-mass-delete", "--json").stdout)
    assert applied["after"] == {"missing_in_tool": 0, "missing_in_store": 0, "conflicts": 0}
    contacts = _contacts(crm)
    assert contacts["Иванов Иван"]["phone"] == "+79161110000" and contacts["Петрова Мария"]["city"] == "Самара"
    assert "Гость Новый" in contacts and "Сидоров Пётр" not in contacts
    log = _log(crm)
    assert ("phone", "+79161234567", "+79161110000") in {(e["field"], e["old"], e["new"]) for e in log}
    assert [a["action"] for a in json.loads(crm.hub("audit", "--json").stdout)].count("reconcile") >= 4


def test_reconcile_of_a_destination_puts_the_stores_version_back(store_project):
    store_project.write("sheet.csv", SHEET)
    store_project.config("""\
    connectors:
      sheet: {plugin: csv, path: sheet.csv, id_column: id}
      out: {plugin: csv, role: destination, path: out.csv}
    """)
    assert store_project.hub("sync").exit_code == 0
    refused = store_project.hub("reconcile", "out")
    assert refused.exit_code == 2 and "destination only" in refused.stderr
    store_project.write("hub.yaml", (store_project.root / "hub.yaml").read_text(encoding="utf-8").replace(
        "role: destination", "role: both"))
    assert store_project.hub("sync").exit_code == 0
    path = store_project.root / "out.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Тверь", "Тула"), encoding="utf-8")
    report = json.loads(store_project.hub("reconcile", "out", "--json").stdout)
    assert [(r["field"], r["tool"], r["store"]) for r in report["conflicts"]] == [("city", "Тула", "Тверь")]
    assert store_project.hub("reconcile", "nope").exit_code == 2
