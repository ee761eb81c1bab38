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


def test_an_undone_value_holds_through_a_merge_and_its_split(ops):
    """A phone undone after a bad import stays undone when its contact is merged with
    another by mistake and split again: the split gives back the contact as it was."""
    _edit(ops, "+79161234567", "+79160000000")
    bad = _sync(ops)["run_id"]
    assert ops.hub("undo", str(bad)).exit_code == 0
    before = _contacts(ops)["Иванов Иван"]
    assert before["phone"] == "+79161234567" and before["phones"] == ["+79161234567"]
    ivan, maria = before["id"], _contacts(ops)["Петрова Мария"]["id"]
    assert ops.hub("merge", str(ivan), str(maria)).exit_code == 0
    result = ops.hub("split", str(ivan))
    assert result.exit_code == 0, result.output
    assert _contacts(ops)["Иванов Иван"] == before
    _sync(ops)
    assert _contacts(ops)["Иванов Иван"] == before
    assert _out(ops)["Иванов Иван"]["phone"] == "+79161234567"


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


def test_undo_of_a_run_that_merged_lists_the_merge_for_hub_split(ops):
    ops.write("sheet.csv", SHEET + "4,Иванов Иван,,ivan2@example.ru,Москва\n")
    assert _sync(ops)["counts"]["sheet"]["created"] == 1  # no phone or mailbox in common yet
    _edit(ops, "4,Иванов Иван,,ivan2@example.ru", "4,Иванов Иван,+79161234567,ivan2@example.ru")
    merged = _sync(ops)
    assert merged["counts"]["sheet"]["merged"] == 1
    result = json.loads(ops.hub("undo", str(merged["run_id"]), "--json").stdout)
    assert any("hub split 1" in note for note in result["not_undone"]), result
    # contact 1 holds record 4 still: the mailbox it brought stays, nothing is overridden
    assert "ivan2@example.ru" in _contacts(ops)["Иванов Иван"]["emails"]
    assert result["changes"] == 0
    assert any("contact 1 email" in note or "contact 1 emails" in note for note in result["not_undone"]), result


def test_undo_of_a_merge_or_a_split_is_refused_with_the_command_that_reverses_it(ops):
    merged = json.loads(ops.hub("merge", "1", "2", "--json").stdout)["run_id"]
    refused = ops.hub("undo", str(merged))
    assert refused.exit_code == 2 and "hub split 1" in refused.stderr
    assert "maria@example.ru" in _contacts(ops)["Иванов Иван"]["emails"]  # record 2 is contact 1's still
    split = json.loads(ops.hub("split", "1", "--json").stdout)["run_id"]
    refused = ops.hub("undo", str(split))
    assert refused.exit_code == 2 and "hub merge 1 2" in refused.stderr
    contacts = _contacts(ops)
    assert contacts["Петрова Мария"]["email"] == "maria@example.ru"  # not deleted
    assert "maria@example.ru" not in contacts["Иванов Иван"]["emails"]
    assert [r["kind"] for r in json.loads(ops.hub("runs", "--json").stdout)].count("undo") == 0
    # the command the refusal names works, and the next sync keeps each value with its record
    assert ops.hub("merge", "1", "2").exit_code == 0
    assert ops.hub("split", "1").exit_code == 0
    _edit(ops, "maria@example.ru,Казань", "maria@example.ru,Самара")
    _sync(ops)
    contacts = _contacts(ops)
    assert contacts["Петрова Мария"]["city"] == "Самара"
    assert "maria@example.ru" not in contacts["Иванов Иван"]["emails"]


def test_undo_of_a_record_split_out_is_refused_and_leaves_the_new_contact_whole(ops):
    ops.write("sheet.csv", SHEET + "4,Иванов Ваня,+79161234567,vanya@example.ru,Москва\n")
    _sync(ops)
    assert "vanya@example.ru" in _contacts(ops)["Иванов Иван"]["emails"]  # one person, two records
    result = json.loads(ops.hub("split", "1", "--record", "sheet:4", "--json").stdout)
    refused = ops.hub("undo", str(result["run_id"]))
    assert refused.exit_code == 2 and f"hub merge 1 {result['split_off']}" in refused.stderr
    contacts = _contacts(ops)
    assert contacts["Иванов Ваня"]["email"] == "vanya@example.ru"
    assert "vanya@example.ru" not in contacts["Иванов Иван"]["emails"]
    links = {r["external_id"]: r["contact_id"] for r in json.loads(ops.hub("export", "links", "--format", "json").stdout)}
    assert links["4"] == result["split_off"] == contacts["Иванов Ваня"]["id"]


def test_undo_of_a_record_placed_anew_moves_it_back_to_its_contact(ops):
    """A sync that found rows overwritten with other people moved each record to a new
    contact. Its undo deleted the new contacts with the records still linked to them, and
    left the old ones deleted or without the records' values. Each record now goes back
    to its contact, which gets its values before the run; the new contacts go."""
    ops.config(CONFIG + "  crm: {plugin: csv, path: crm.csv, id_column: id}\n")
    ops.write("crm.csv", "id,full_name,phone,birthday\n9,Петрова Мария,+79037654321,1990-05-01\n")
    _sync(ops)
    links = {f"{r['source']}:{r['external_id']}": r["contact_id"]
             for r in json.loads(ops.hub("export", "links", "--format", "json").stdout)}
    assert links["crm:9"] == links["sheet:2"] == 2  # one person, two records
    _edit(ops, "2,Петрова Мария,+79037654321,maria@example.ru,Казань", "2,Кузнецова Вера,+79035550000,vera@example.ru,")
    _edit(ops, "3,Сидоров Пётр,+79250000001,petr@example.ru,Тверь", "3,Орлова Ольга,+79260000002,olga@example.ru,Омск")
    moved = _sync(ops)["run_id"]
    assert {e["contact_id"] for e in _log(ops, "--run", str(moved), "--field", "record")} == {4, 5}
    assert _contacts(ops)["Петрова Мария"].get("email") is None  # contact 2 kept the crm record only
    assert "Сидоров Пётр" not in _contacts(ops)  # contact 3 had no other record
    result = ops.hub("undo", str(moved), "--json")
    assert result.exit_code == 0, result.output
    undo = json.loads(result.stdout)
    assert undo["not_undone"] == []
    links = {f"{r['source']}:{r['external_id']}": r["contact_id"]
             for r in json.loads(ops.hub("export", "links", "--format", "json").stdout)}
    assert (links["sheet:2"], links["sheet:3"], links["crm:9"]) == (2, 3, 2)
    contacts = _contacts(ops)
    assert set(contacts) == {"Иванов Иван", "Петрова Мария", "Сидоров Пётр"}
    assert (contacts["Петрова Мария"]["id"], contacts["Петрова Мария"]["email"], contacts["Петрова Мария"]["city"],
            contacts["Петрова Мария"]["birthday"]) == (2, "maria@example.ru", "Казань", "1990-05-01")
    assert (contacts["Сидоров Пётр"]["id"], contacts["Сидоров Пётр"]["phone"]) == (3, "+79250000001")
    assert _linked_to_deleted(ops) == 0
    _sync(ops)  # the destination gets the people back, and the new ones go
    assert set(_out(ops)) == {"Иванов Иван", "Петрова Мария", "Сидоров Пётр"}
    assert set(_contacts(ops)) == {"Иванов Иван", "Петрова Мария", "Сидоров Пётр"}
    # the moves back are in the change log: an undo of the undo moves the records again
    assert {(e["contact_id"], e["old"], e["new"]) for e in _log(ops, "--run", str(undo["run_id"]), "--field", "record")
            } == {(2, "4", "2"), (3, "5", "3")}
    assert ops.hub("undo", str(undo["run_id"])).exit_code == 0
    links = {f"{r['source']}:{r['external_id']}": r["contact_id"]
             for r in json.loads(ops.hub("export", "links", "--format", "json").stdout)}
    assert (links["sheet:2"], links["sheet:3"], links["crm:9"]) == (4, 5, 2)
    contacts = _contacts(ops)
    assert set(contacts) == {"Иванов Иван", "Петрова Мария", "Кузнецова Вера", "Орлова Ольга"}
    assert contacts["Петрова Мария"].get("email") is None and contacts["Кузнецова Вера"]["id"] == 4
    assert _linked_to_deleted(ops) == 0


def test_undo_of_an_order_row_placed_anew_moves_its_purchase_back(ops):
    """An order row overwritten with another buyer's order moves to a new contact, with
    its purchase. The undo took the record back to its buyer and left the purchase on the
    contact it deleted: the buyer's history lost it."""
    ops.config(CONFIG + "  orders: {plugin: csv, path: orders.csv, id_column: order, "
                        "events: {type: purchase, at: date, amount: amount}}\n")
    ops.write("orders.csv", "order,full_name,phone,date,amount\n"
                            "A1,Петрова Мария,+79037654321,2026-01-10,1500\n"
                            "A2,Иванов Иван,+79161234567,2026-01-11,700\n")
    _sync(ops)
    assert _purchases(ops) == {("A1", "Петрова Мария", False), ("A2", "Иванов Иван", False)}
    ops.write("orders.csv", "order,full_name,phone,date,amount\n"
                            "A1,Орлова Ольга,+79260000002,2026-02-01,900\n"
                            "A2,Иванов Иван,+79161234567,2026-01-11,700\n")
    moved = _sync(ops)["run_id"]
    assert _purchases(ops) == {("A1", "Орлова Ольга", False), ("A2", "Иванов Иван", False)}
    result = ops.hub("undo", str(moved), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["not_undone"] == []
    # the purchase is where its record is: on the buyer's contact, none on a deleted one
    assert _purchases(ops) == {("A1", "Петрова Мария", False), ("A2", "Иванов Иван", False)}


def _purchases(project) -> set[tuple[str, str, bool]]:
    """(record, the name of its contact, whether that contact is deleted) of each event."""
    from sqlalchemy import create_engine, select

    from hub.store.schema import contacts, events

    engine = create_engine(project.store_url or f"sqlite:///{project.root / 'hub.db'}")
    with engine.connect() as c:
        rows = c.execute(select(events.c.record, contacts.c.full_name, contacts.c.deleted_at)
                         .select_from(events.join(contacts, contacts.c.id == events.c.contact_id))).all()
    engine.dispose()
    return {(r.record, r.full_name, r.deleted_at is not None) for r in rows}


def _linked_to_deleted(project) -> int:
    """Records of a tool linked to a deleted contact."""
    from sqlalchemy import create_engine, func, select

    from hub.store.schema import contacts, source_records

    engine = create_engine(project.store_url or f"sqlite:///{project.root / 'hub.db'}")
    with engine.connect() as c:
        count = c.execute(
            select(func.count()).select_from(source_records.join(contacts))
            .where(source_records.c.origin == "read", source_records.c.removed_at.is_(None),
                   contacts.c.deleted_at.is_not(None))
        ).scalar()
    engine.dispose()
    return count


def _namesakes(project) -> int:
    """Two Кузнецов Сергей in Moscow with different phones: one pair for review; its id."""
    project.write("sheet.csv", SHEET + "4,Кузнецов Сергей,+79255551234,,Москва\n"
                  "5,Кузнецов Сергей,+79260001122,,Москва\n")
    _sync(project)
    (pair,) = json.loads(project.hub("review", "--json").stdout)
    return pair["id"]


def test_undo_of_a_review_rejection_asks_the_pair_again(ops):
    pair = _namesakes(ops)
    rejected = json.loads(ops.hub("review", "reject", str(pair), "--json").stdout)[0]["run_id"]
    assert json.loads(ops.hub("review", "--json").stdout) == []
    result = ops.hub("undo", str(rejected), "--json")
    assert result.exit_code == 0, result.output
    undo = json.loads(result.stdout)
    assert [(p["id"], p["status"]) for p in undo["reviews"]] == [(pair, "pending")]
    assert [p["id"] for p in json.loads(ops.hub("review", "--json").stdout)] == [pair]
    _sync(ops)  # a sync leaves the pair pending
    assert [p["id"] for p in json.loads(ops.hub("review", "--json").stdout)] == [pair]
    # an undo of that undo rejects the pair again
    again = ops.hub("undo", str(undo["run_id"]))
    assert again.exit_code == 0, again.output
    assert f"review pair {pair} (contacts 4 and 5): rejected again" in again.stdout
    assert json.loads(ops.hub("review", "--json").stdout) == []


def test_undo_of_a_review_decision_decided_again_since_is_refused(ops):
    pair = _namesakes(ops)
    rejected = json.loads(ops.hub("review", "reject", str(pair), "--json").stdout)[0]["run_id"]
    assert ops.hub("merge", "4", "5").exit_code == 0  # they are one person after all
    refused = ops.hub("undo", str(rejected))
    assert refused.exit_code == 2 and "nothing to undo" in refused.stderr
    assert "hub split 4" in ops.hub("undo", str(_last_run(ops))).stderr


def test_undo_of_a_review_acceptance_is_refused_like_a_merge(ops):
    pair = _namesakes(ops)
    accepted = json.loads(ops.hub("review", "accept", str(pair), "--json").stdout)[0]["run_id"]
    refused = ops.hub("undo", str(accepted))
    assert refused.exit_code == 2 and "hub split 4" in refused.stderr
    assert set(_contacts(ops)["Кузнецов Сергей"]["phones"]) == {"+79255551234", "+79260001122"}
    # hub split reverses it and keeps them apart; an undo of the split is refused, the pair stays decided
    split = json.loads(ops.hub("split", "4", "--json").stdout)["run_id"]
    refused = ops.hub("undo", str(split))
    assert refused.exit_code == 2 and "hub merge 4 5" in refused.stderr
    assert json.loads(ops.hub("review", "--json").stdout) == []


def _last_run(project) -> int:
    return max(r["id"] for r in json.loads(project.hub("runs", "--json").stdout))


def test_undo_never_puts_back_values_of_an_erased_person(ops):
    _edit(ops, "+79161234567", "+79160000000")
    bad = _sync(ops)["run_id"]
    assert ops.hub("forget", "--email", "ivan@example.ru").exit_code == 0
    refused = ops.hub("undo", str(bad))
    assert refused.exit_code == 2 and "erased" in refused.stderr
    forced = json.loads(ops.hub("undo", str(bad), "--force", "--json").stdout)
    assert forced["contacts"] == 0 and any("was erased" in note for note in forced["not_undone"])
    dump = ops.hub("log", "--json", "-n", "1000").stdout + ops.hub("show", "1", "--json").stdout
    assert "+7916" not in dump


def test_undo_never_writes_back_a_value_the_change_log_holds_masked(store_project, monkeypatch, caplog):
    monkeypatch.setenv("HUB_TEST_UNDO_SECRET", "undo-secret-4e7a1c")
    store_project.write("mappings/sheet.yaml", "fields:\n  full_name: full_name\n  email: email\n  city: city\n"
                        "  company: company\n  x_site: site\n")
    store_project.write("mappings/out.yaml", "fields:\n  full_name: {from: full_name}\n  city: {from: city}\n"
                        "  company: {from: company}\n  x_site: {from: site}\n")
    store_project.config(CONFIG + "normalize: {city_aliases: {x: $HUB_TEST_UNDO_SECRET}}\n")
    header = "id,full_name,email,city,company,site\n"
    store_project.write("sheet.csv", header + "1,Иванов Иван,ivan@example.ru,Москва,undo-secret-4e7a1c Ltd,"
                        "https://shop.example/?key=promo2024\n")
    _sync(store_project)
    store_project.write("sheet.csv", header + "1,Иванов Иван,ivan@example.ru,Казань,Acme,https://shop.example/new\n")
    bad = _sync(store_project)["run_id"]
    # the change log holds the registered secret masked: "*** Ltd" is not the old value
    assert {(e["field"], e["old"]) for e in _log(store_project, "--run", str(bad))} >= {("company", "*** Ltd")}
    result = store_project.hub("undo", str(bad), "--json")
    assert result.exit_code == 0, result.output
    undo = json.loads(result.stdout)
    assert [note for note in undo["not_undone"] if "company" in note] == [
        "contact 1 company: the change log holds the old value masked (*** Ltd); the current value stays"]
    assert "contact 1 company keeps its current value" in caplog.text
    fields = json.loads(store_project.hub("show", "1", "--json").stdout)["fields"]
    assert fields["city"] == "Москва"  # the rest of the run is undone
    assert fields["company"] == "Acme"
    assert fields["x_site"] in ("https://shop.example/?key=promo2024", "https://shop.example/new")
    assert "***" not in json.dumps(_log(store_project, "--run", str(undo["run_id"])))
    _sync(store_project)
    sent = (store_project.root / "out.csv").read_text(encoding="utf-8")
    assert "Москва" in sent and "Acme" in sent and "***" not in sent


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
    ops.hub("log", "--actor", "analyst")
    ops.hub("log", "--field", "phone", "--actor", "analyst")
    reads = json.loads(ops.hub("audit", "--json", "--actor", "analyst").stdout)
    assert [(a["action"], a["what"], a["rows"]) for a in reads] == [("log", "everything", 3), ("log", "field phone", 3)]
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
    links = json.loads(project.hub("export", "links", "--format", "json").stdout)
    assert all(link["contact_id"] != 1 for link in links)  # the last links went with the deletes
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


def test_forget_removes_the_persons_quarantined_rows_and_keeps_them_out_of_quarantine(store_project):
    """Ольга's row repeats the id of Иван's: it waits in quarantine with her name, e-mail
    and phone. Forgotten by e-mail, her row leaves the quarantine, and the next full read
    of the file does not put it back there."""
    store_project.write("sheet.csv", SHEET + "1,Смирнова Ольга,8 916 111-22-33,OLGA@example.ru,Тверь\n")
    store_project.config(CONFIG)
    assert store_project.hub("sync").exit_code == 0
    held = json.loads(store_project.hub("quarantine", "list", "--json").stdout)
    assert [row["raw"]["values"]["full_name"] for row in held] == ["Смирнова Ольга"]
    result = store_project.hub("forget", "--email", "olga@example.ru")
    assert result.exit_code == 0, result.output
    assert json.loads(store_project.hub("quarantine", "list", "--json", "--status", "all").stdout) == []
    _edit(store_project, "Казань", "Казань-на-Волге")  # the file changes: read whole again
    report = _sync(store_project)
    assert report["counts"]["sheet"]["suppressed"] == 1 and report["counts"]["sheet"]["quarantined"] == 0
    assert json.loads(store_project.hub("quarantine", "list", "--json", "--status", "all").stdout) == []


def test_forget_by_email_erases_a_contact_deleted_before(ops):
    """Мария's row was deleted from the sheet: her contact is deleted but keeps its values
    and history. Forgetting her by e-mail or phone erases that contact too."""
    maria = _contacts(ops)["Петрова Мария"]["id"]
    _edit(ops, "2,Петрова Мария,+79037654321,maria@example.ru,Казань\n", "")
    _sync(ops, "--allow-mass-delete")
    assert json.loads(ops.hub("show", str(maria), "--json").stdout)["deleted"]
    result = ops.hub("forget", "--phone", "8 903 765-43-21", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["contacts"] == [maria]
    card = json.loads(ops.hub("show", str(maria), "--json").stdout)
    assert card["fields"] == {}
    dump = ops.hub("log", "--json", "-n", "10000").stdout + json.dumps(card, ensure_ascii=False)
    for secret in ("maria@example.ru", "+79037654321", "Петрова", "Казань"):
        assert secret not in dump


def test_forget_erases_the_person_from_the_history_of_a_contact_that_held_their_record(ops):
    """Мария was merged into Иван's contact by mistake and split off again; then she asks
    to be forgotten. Иван's history had her e-mail and phone from the time they were
    one contact: those values are erased too, his own stay."""
    ivan, maria = _contacts(ops)["Иванов Иван"]["id"], _contacts(ops)["Петрова Мария"]["id"]
    assert ops.hub("merge", str(ivan), str(maria)).exit_code == 0
    assert ops.hub("split", str(ivan)).exit_code == 0
    assert "maria@example.ru" in ops.hub("log", "--contact", str(ivan), "--json").stdout
    result = ops.hub("forget", "--email", "maria@example.ru")
    assert result.exit_code == 0, result.output
    dump = "".join(ops.hub(*args).stdout for args in (
        ("log", "--json", "-n", "10000"), ("show", str(ivan), "--json")))
    for secret in ("maria@example.ru", "+79037654321", "Петрова", "Казань"):
        assert secret not in dump
    history = _log(ops, "--contact", str(ivan))
    assert {(e["field"], e["old"], e["new"]) for e in history} >= {
        ("emails", '["ivan@example.ru"]', '["ivan@example.ru", "[erased]"]'),
        ("emails", '["ivan@example.ru", "[erased]"]', '["ivan@example.ru"]')}
    assert "+79161234567" in dump and "ivan@example.ru" in dump
    assert _contacts(ops)["Иванов Иван"]["phones"] == ["+79161234567"]


def test_forget_keeps_out_records_without_identifiers_and_lets_relatives_on_a_shared_phone_in(project):
    """Пётр's third record (a name, a city, a birthday: no phone, no e-mail) is his by the
    name alone; his family's home phone is also his wife's. After `hub forget`, the third
    record stays out (its id is suppressed) and so do records with the home phone and his
    name (Петя) or no name; his wife's and a new relative's records still come in."""
    rows = [
        "id,full_name,phone,email,city,birthday",
        "1,Лесовиков Пётр,+7 495 123-45-67,petr.l@example.ru,Тверь,",
        "2,Лесовикова Мария,+7 495 123-45-67,,Тверь,",
        "3,Лесовиков Пётр,,,Тверь,01.02.1970",
    ]
    project.write("sheet.csv", "\n".join(rows) + "\n")
    project.config("connectors:\n  sheet: {plugin: csv, path: sheet.csv, id_column: id}\n")
    assert _sync(project)["status"] == "ok"
    links = {r["external_id"]: r["contact_id"] for r in json.loads(project.hub("export", "links", "--format", "json").stdout)}
    assert links["1"] == links["3"] != links["2"]
    assert project.hub("forget", str(links["1"])).exit_code == 0
    rows[2] = "2,Лесовикова Мария,+7 495 123-45-67,,Москва,"  # an edit: the file is read whole again
    rows += ["4,Лесовикова Анна,+7 495 123-45-67,,Тверь,", "5,Петя,8 495 123 45 67,,,", "6,,+7 495 123-45-67,,,"]
    project.write("sheet.csv", "\n".join(rows) + "\n")
    report = _sync(project)
    assert report["counts"]["sheet"]["suppressed"] == 4  # rows 1, 3, 5 and 6
    people = _contacts(project)
    assert set(people) == {"Лесовикова Мария", "Лесовикова Анна"}
    assert people["Лесовикова Мария"]["city"] == "Москва"


def test_forget_a_mother_keeps_her_son_on_the_family_phone_and_mailbox(project):
    """Петрова Женя and her son Петров Евгений share a phone and a mailbox; the mailing
    list is keyed by the address. After forgetting her, her short name (Женя: Евгений or
    Евгения) is suppressed for her gender only, and the mailbox's row is not suppressed by
    its id: once it names the son, it comes in."""
    project.write("sheet.csv", "id,full_name,phone,email,city\n"
                  "1,Петрова Женя,+7 495 222-33-44,petrovy@mail.ru,Тверь\n"
                  "2,Петров Евгений,+7 495 222-33-44,petrovy@mail.ru,Тверь\n")
    project.write("mailing.csv", "email,full_name\npetrovy@mail.ru,Петрова Женя\n")
    project.config("connectors:\n  sheet: {plugin: csv, path: sheet.csv, id_column: id}\n"
                   "  mailing: {plugin: csv, path: mailing.csv, id_column: email}\n")
    assert _sync(project)["status"] == "ok"
    links = {f"{r['source']}:{r['external_id']}": r["contact_id"]
             for r in json.loads(project.hub("export", "links", "--format", "json").stdout)}
    assert links["sheet:1"] == links["mailing:petrovy@mail.ru"] != links["sheet:2"]
    assert project.hub("forget", str(links["sheet:1"])).exit_code == 0
    project.write("sheet.csv", "id,full_name,phone,email,city\n"
                  "1,Петрова Женя,+7 495 222-33-44,petrovy@mail.ru,Тверь\n"
                  "2,Петров Евгений,+7 495 222-33-44,petrovy@mail.ru,Москва\n")
    report = _sync(project)
    assert report["counts"]["sheet"]["suppressed"] == 1 and report["counts"]["sheet"]["updated"] == 1
    project.write("mailing.csv", "email,full_name\npetrovy@mail.ru,Петров Евгений\n")
    report = _sync(project)
    assert report["counts"]["mailing"]["suppressed"] == 0
    people = _contacts(project)
    assert set(people) == {"Петров Евгений"} and people["Петров Евгений"]["city"] == "Москва"
    links = {f"{r['source']}:{r['external_id']}": r["contact_id"]
             for r in json.loads(project.hub("export", "links", "--format", "json").stdout)}
    assert links["mailing:petrovy@mail.ru"] == links["sheet:2"]


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
    assert _sync(ops)["counts"]["sheet"]["suppressed"] == 1  # the appended row 4 (only it is read)
    assert set(_contacts(ops)) == {"Иванов Иван"}
    header, *rows = (SHEET + "4,Поздний Гость,,later@example.ru,Омск\n").splitlines()
    ops.write("sheet.csv", "\n".join([header, *reversed(rows)]) + "\n")  # not an append: read whole
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
    assert clean["counts"] == {"missing_in_tool": 0, "missing_in_store": 0, "conflicts": 0, "consent_mismatches": 0}
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
    assert applied["after"] == {"missing_in_tool": 0, "missing_in_store": 0, "conflicts": 0, "consent_mismatches": 0}
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


def test_reconcile_csv_neutralizes_formulas_read_from_the_tools_as_export_does(crm):
    assert crm.hub("sync").exit_code == 0  # the row hub wrote to crm is read back and linked
    path = crm.root / "crm.csv"
    text = path.read_text(encoding="utf-8").replace("Казань", '"=HYPERLINK(""http://evil.example/x"",""Казань"")"')
    path.write_text(text + "9,@SUM(1+1),+79995554433,guest@example.ru,Омск\n", encoding="utf-8")
    (crm.root / "mailing.csv").write_text(
        "email,full_name,phone\nnew@example.ru,@Новиков Олег,+79990001122\n", encoding="utf-8")

    def cells(*args: str) -> list[str]:
        result = crm.hub("reconcile", *args, "--format", "csv", "--unmask")
        assert result.exit_code == 0, result.output
        return [cell for row in list(csv.reader(io.StringIO(result.stdout)))[1:] for cell in row[1:] if cell]

    one, pair = cells("crm"), cells("crm", "mailing")
    assert "'=HYPERLINK(\"http://evil.example/x\",\"Казань\")" in one  # the tool's value in a conflict
    assert "'@Sum(1+1), guest@example.ru, +79995554433" in one  # a row hub does not know
    assert "'@Новиков Олег" in pair  # one tool's value against the other's
    assert [cell for cell in one + pair if cell[:1] in "=+-@" and not cell.startswith("+79")] == []


# --------------------------------------------------------------------- schedule


def _scheduled(project, jobs: str, missed: str = "run_once") -> None:
    project.write("sheet.csv", SHEET)
    project.config(CONFIG + f"schedule:\n  missed: {missed}\n  jobs:\n{jobs}")


def _remember(project, job: str, when: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(project.store_url or f"sqlite:///{project.root / 'hub.db'}")
    with engine.begin() as c:
        c.execute(text("DELETE FROM store_settings WHERE name = :n"), {"n": f"schedule:{job}"})
        c.execute(text("INSERT INTO store_settings (name, value) VALUES (:n, :v)"),
                  {"n": f"schedule:{job}", "v": when})
    engine.dispose()


@pytest.mark.parametrize(("jobs", "message"), [
    ("    a: {cron: '61 * * * *'}\n", "schedule.jobs.a.cron: '61 * * * *' is not a five-field cron"),
    ("    a: {cron: 'every hour'}\n", "schedule.jobs.a.cron"),
    ("    a: {cron: '* * * * *', connectors: [shet]}\n", "schedule.jobs.a.connectors[0]: no connector named 'shet'"),
    ("    a: {cron: '* * * * *', every: 5}\n", "schedule.jobs.a.every: unknown key"),
    ("    a: {cron: '* * * * *', run: clean, connectors: [sheet]}\n", "a clean job takes no connectors"),
    ("    a: {cron: '* * * * *', run: vacuum}\n", "schedule.jobs.a.run"),
    ("    a: {cron: '0 0 30 2 *'}\n", "schedule.jobs.a.cron: '0 0 30 2 *' never comes"),
    ("    a: {cron: '0 0 31 4,6 *'}\n", "never comes: no month it names has that day\n  hint: use a day every month"),
])
def test_schedule_config_errors_name_the_key(project, jobs, message):
    _scheduled(project, jobs)
    result = project.hub("check")
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_schedule_config_rejects_an_unknown_time_zone_and_policy(project):
    _scheduled(project, "    a: {cron: '* * * * *'}\n", missed="sometimes")
    assert "schedule.missed" in project.hub("check").stderr
    project.config(CONFIG + "schedule:\n  timezone: Mars/Olympus\n  jobs:\n    a: {cron: '* * * * *'}\n")
    result = project.hub("check")
    assert result.exit_code == 2 and "unknown time zone 'Mars/Olympus'" in result.stderr
    project.config(CONFIG)
    assert project.hub("schedule", "--once").exit_code == 2  # no jobs


@pytest.mark.parametrize(("missed", "runs"), [("run_once", 1), ("skip", 0)])
def test_missed_runs_follow_the_policy(store_project, missed, runs):
    _scheduled(store_project, "    yearly: {cron: '0 0 1 1 *'}\n", missed=missed)
    first = store_project.hub("schedule", "--once", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == []  # a new job waits for its first time
    _remember(store_project, "yearly", "2020-01-01T00:00:00+00:00")  # six years of runs missed
    result = store_project.hub("schedule", "--once", "--json")
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert len(made) == runs  # however many were missed, at most one run
    if runs:
        assert made[0]["status"] == "ok" and made[0]["counts"]["sheet"]["created"] == 3
        assert "missed" in result.stderr and "running it once now" in result.stderr
        assert "INFO hub.runs: run 1 ok: sheet: read 3 created 3" in result.stderr  # the built-in hook
    assert json.loads(store_project.hub("schedule", "--once", "--json").stdout) == []  # caught up


def _scheduler_at(project, times, *, stop_after: int = 50):
    """Scheduler.run(once=True) at each of ``times`` (the injected clock): the runs made at each."""
    import datetime as dt
    import threading

    from hub.config import load_config
    from hub.plugins import connector_classes
    from hub.schedule import Scheduler
    from hub.store import open_store

    config = load_config(project.root / "hub.yaml", connector_classes())
    store = open_store(config.store_url)
    made = []
    try:
        for moment in times:
            now = dt.datetime.fromisoformat(moment)
            stop = threading.Event()
            calls = []

            def clock(now=now, calls=calls, stop=stop):
                calls.append(now)
                if len(calls) > stop_after:  # a scheduler running a job again and again: stopped
                    stop.set()
                return now

            made.append(len(Scheduler(config, store, stop, clock=clock).run(once=True)))
    finally:
        store.dispose()
    return made


HOURLY = [0, 0] + [1, 0] * 5 + [1]  # from 00:05 local every half hour: a run after each hour


@pytest.mark.parametrize(("cron", "start", "runs"), [
    # autumn: 02:00-03:00 comes twice (CEST, then CET); an hourly job runs in both, a
    # daily one at 02:30 once
    ("0 * * * *", "2026-10-24T22:05:00+00:00", HOURLY),
    ("30 2 * * *", "2026-10-24T22:05:00+00:00", [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
    # spring: 02:00-03:00 never comes; the hourly job goes on, 02:30 runs at 03:30 CEST
    ("0 * * * *", "2026-03-28T22:05:00+00:00", HOURLY),
    ("30 2 * * *", "2026-03-28T22:05:00+00:00", [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]),
])
def test_a_daylight_saving_change_runs_each_time_once(project, cron, start, runs):
    import datetime as dt

    project.write("sheet.csv", SHEET)
    project.config(CONFIG + f"schedule:\n  timezone: Europe/Berlin\n  jobs:\n    job: {{cron: '{cron}'}}\n")
    first = dt.datetime.fromisoformat(start)
    times = [(first + dt.timedelta(minutes=30 * i)).isoformat() for i in range(13)]  # to 06:05 local
    assert _scheduler_at(project, times) == runs


def test_schedule_once_runs_a_new_job_once_its_first_time_has_passed(project):
    """`hub schedule --once` from cron: the first call records the new job, so the next
    call after one of its times runs it."""
    _scheduled(project, "    every-minute: {cron: '* * * * *'}\n")
    assert _scheduler_at(project, ["2026-05-01T10:00:30+00:00"]) == [0]  # from now on
    assert _scheduler_at(project, ["2026-05-01T10:00:50+00:00"]) == [0]  # no time passed yet
    assert _scheduler_at(project, ["2026-05-01T10:01:10+00:00", "2026-05-01T10:01:20+00:00"]) == [1, 0]
    assert _scheduler_at(project, ["2026-05-01T10:05:00+00:00"]) == [1]  # three missed: run once


def test_schedule_once_exits_1_when_a_run_it_made_failed(store_project):
    store_project.config("connectors:\n  file: {plugin: csv, role: source, path: missing.csv, id_column: id}\n"
                         "schedule:\n  jobs:\n    nightly: {cron: '30 3 * * *'}\n")
    assert store_project.hub("schedule", "--once").exit_code == 0  # nothing due
    _remember(store_project, "nightly", "2020-01-01T03:30:00+00:00")
    result = store_project.hub("schedule", "--once", "--json")
    assert result.exit_code == 1, result.output
    made = json.loads(result.stdout)
    assert [r["status"] for r in made] == ["failed"] and "missing.csv" in made[0]["errors"][0]
    assert store_project.hub("schedule", "--once").exit_code == 0  # the time is done: nothing due


def test_a_clean_job_runs_hub_clean_and_a_sync_job_beside_it_still_syncs(store_project):
    _scheduled(store_project, "    nightly: {cron: '0 3 * * *'}\n    weekly: {cron: '0 4 * * 1', run: clean}\n")
    assert json.loads(store_project.hub("schedule", "--once", "--json").stdout) == []
    _remember(store_project, "nightly", "2020-01-01T00:00:00+00:00")
    _remember(store_project, "weekly", "2020-01-01T00:00:00+00:00")
    result = store_project.hub("schedule", "--once", "--json")
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert [entry.get("kind", "sync") for entry in made] == ["sync", "clean"]  # the earlier-due job first
    sync, clean = made
    assert sync["status"] == "ok" and sync["counts"]["sheet"]["created"] == 3
    assert clean["status"] == "ok" and clean["flagged"] == 0 and clean["deleted"] == 0  # everyone active today
    runs = json.loads(store_project.hub("runs", "--json").stdout)
    assert [(r["id"], r["kind"]) for r in runs if r["id"] == clean["run_id"]] == [(clean["run_id"], "clean")]
    assert "job weekly: clean-up done" in result.stderr
    assert json.loads(store_project.hub("schedule", "--once", "--json").stdout) == []  # both caught up


def _scheduler_process(project):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HUB_CONFIG"}
    return subprocess.Popen(
        [sys.executable, "-c", "from hub.cli import main; main()", "-c", str(project.root / "hub.yaml"), "schedule"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def test_two_schedulers_never_run_at_once_and_sigterm_stops_a_waiting_one(store_project):
    import signal

    _scheduled(store_project, "    yearly: {cron: '0 0 1 1 *'}\n")
    first = _scheduler_process(store_project)
    try:
        line = first.stderr.readline()
        assert "hub.schedule: started" in line, line
        second = store_project.hub("schedule", "--once")
        assert second.exit_code == 3
        assert "another hub schedule is running on this store (pid" in second.stderr
        assert store_project.hub("sync").exit_code == 0  # a manual sync is not blocked by a waiting scheduler
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert store_project.hub("schedule", "--once").exit_code == 0  # the lock went with the process


def test_sigterm_mid_run_finishes_the_batch_and_the_next_run_goes_on(project, monkeypatch):
    """The scheduler in this process; a connector sends SIGTERM to it in the middle of its read."""
    import os
    import signal
    import threading

    from hub.config import load_config
    from hub.connector import Connector
    from hub.model import Checkpoint, RawRecord
    from hub.plugins import connector_classes
    from hub.schedule import Scheduler, graceful_signals
    from hub.store import open_store

    class Interrupted(Connector):
        plugin = "interrupted"
        capabilities = frozenset({"read"})

        def read(self, cursor):
            for i in range(1, 31):
                yield RawRecord(str(i), {"full_name": f"Человек Номер{i}", "phone": f"+7916000{i:04d}"})
                if i == 7 and os.environ.get("SEND_SIGTERM"):
                    os.kill(os.getpid(), signal.SIGTERM)
            yield Checkpoint("done", complete=True)

    monkeypatch.setattr("hub.sync.BATCH_SIZE", 5)
    monkeypatch.setenv("HUB_WORKERS", "0")
    monkeypatch.setenv("SEND_SIGTERM", "1")
    project.config("connectors:\n  src: {plugin: interrupted}\nschedule:\n  jobs:\n    yearly: {cron: '0 0 1 1 *'}\n")
    classes = {**connector_classes(), "interrupted": Interrupted}
    config = load_config(project.root / "hub.yaml", classes)
    store = open_store(config.store_url)
    _remember(project, "yearly", "2020-01-01T00:00:00+00:00")
    stop = threading.Event()
    with graceful_signals(stop):
        made = Scheduler(config, store, stop).run()  # returns once stopped, without --once
    assert stop.is_set() and len(made) == 1
    assert made[0]["status"] == "interrupted"
    assert made[0]["counts"]["src"]["created"] == 10  # the batch in hand (6-10) was finished
    from hub.changes import list_runs

    with store.connect() as c:
        runs = list_runs(c)
    assert runs[0]["status"] == "interrupted" and "stopped on request" in runs[0]["error"]
    monkeypatch.delenv("SEND_SIGTERM")
    with graceful_signals(stop := threading.Event()):
        again = Scheduler(config, store, stop).run(once=True)  # the interrupted job is still due
    store.dispose()
    assert again[0]["status"] == "ok"
    assert again[0]["counts"]["src"]["unchanged"] == 10 and again[0]["counts"]["src"]["created"] == 20


def test_a_lock_left_by_a_dead_process_is_detected(store_project):
    import fcntl
    import socket
    import subprocess

    from sqlalchemy import create_engine, text

    store_project.write("sheet.csv", SHEET)
    store_project.config(CONFIG)
    assert store_project.hub("sync").exit_code == 0
    gone = subprocess.Popen(["true"])
    gone.wait()
    holder = {"pid": gone.pid, "host": socket.gethostname(), "since": "2026-01-01T00:00:00+00:00"}
    if store_project.store_url is None or store_project.store_url.startswith("sqlite"):
        # a process the dead run started still holds the lock file open: said, not broken
        database = store_project.store_url.removeprefix("sqlite:///") if store_project.store_url else "hub.db"
        path = store_project.root / f"{database}.sync.lock"
        with open(path, "w") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            handle.write(json.dumps(holder))
            handle.flush()
            result = store_project.hub("sync")
        assert result.exit_code == 3
        assert f"(pid {gone.pid} on {socket.gethostname()}" in result.stderr and "no longer running" in result.stderr
        return
    # PostgreSQL: an orphaned session holds the advisory lock; its session is ended
    import zlib

    engine = create_engine(store_project.store_url)
    orphan = engine.connect()
    schema = orphan.execute(text("SELECT current_schema()")).scalar()
    key = zlib.crc32(f"hub:{schema}:sync".encode())  # the store's own lock (see Store.lock)
    assert orphan.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
    backend = orphan.execute(text("SELECT pg_backend_pid()")).scalar()
    orphan.execute(text("DELETE FROM store_settings WHERE name = 'lock:sync'"))
    orphan.execute(text("INSERT INTO store_settings (name, value) VALUES ('lock:sync', :v)"),
                   {"v": json.dumps({**holder, "backend": backend})})
    orphan.commit()
    result = store_project.hub("sync")
    assert result.exit_code == 0, result.output
    with engine.connect() as c:  # the sync took the lock by ending the orphaned session
        assert not c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": backend}).scalar()
    orphan.invalidate()
    engine.dispose()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_lock_held_from_another_host_says_how_to_end_its_session(store_project):
    """A run on another host holds the lock: hub cannot tell whether that host is still up
    (a host that went down keeps its session until the server's TCP keepalive ends it,
    hours by default), so the message names the session to end if it is down."""
    import zlib

    from sqlalchemy import create_engine, text

    store_project.write("sheet.csv", SHEET)
    store_project.config(CONFIG)
    assert store_project.hub("sync").exit_code == 0
    engine = create_engine(store_project.store_url)
    other = engine.connect()
    schema = other.execute(text("SELECT current_schema()")).scalar()
    assert other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": zlib.crc32(f"hub:{schema}:sync".encode())}).scalar()
    backend = other.execute(text("SELECT pg_backend_pid()")).scalar()
    holder = {"pid": 4242, "host": "crm-box-2", "since": "2026-01-01T00:00:00+00:00", "backend": backend}
    other.execute(text("DELETE FROM store_settings WHERE name = 'lock:sync'"))
    other.execute(text("INSERT INTO store_settings (name, value) VALUES ('lock:sync', :v)"), {"v": json.dumps(holder)})
    other.commit()
    try:
        result = store_project.hub("sync")
    finally:
        other.close()
        engine.dispose()
    assert result.exit_code == 3, result.output
    assert "another hub sync is running on this store (pid 4242 on crm-box-2" in result.stderr
    assert f"if crm-box-2 is down, end its database session: SELECT pg_terminate_backend({backend})" in result.stderr


def test_reconcile_reports_a_consent_withdrawn_behind_hubs_back(project, monkeypatch):
    import shutil
    from pathlib import Path

    from tests.fakes.mailchimp import FakeMailchimp

    key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0-us21"
    monkeypatch.setenv("MAILCHIMP_KEY", key)
    shutil.copytree(Path(__file__).resolve().parent.parent / "mappings", project.root / "mappings")
    with FakeMailchimp(key) as mailchimp:
        mailchimp.add("ivan@example.ru", FNAME="Иван", LNAME="Петров")
        mailchimp.add("anna@example.com", FNAME="Анна", LNAME="Смирнова")
        project.config(f"""\
        connectors:
          mailchimp:
            plugin: mailchimp
            role: both
            api_key: $MAILCHIMP_KEY
            list_id: {mailchimp.list_id}
            endpoint: {mailchimp.url}/3.0
            backoff_seconds: 0
            max_backoff_seconds: 0
        """)
        assert project.hub("sync").exit_code == 0
        clean = json.loads(project.hub("reconcile", "mailchimp", "--json").stdout)
        assert sum(clean["counts"].values()) == 0
        mailchimp.person_unsubscribes("ivan@example.ru")
        report = json.loads(project.hub("reconcile", "mailchimp", "--json").stdout)
        assert [(r["field"], r["tool"], r["store"]) for r in report["consent_mismatches"]] == [
            ("consent_email", "unsubscribed", "subscribed")]
        assert report["counts"]["conflicts"] == 0 and report["counts"]["missing_in_tool"] == 0
        applied = json.loads(project.hub("reconcile", "mailchimp", "--apply", "--json").stdout)
        assert sum(applied["after"].values()) == 0
        card = json.loads(project.hub("show", "ivan@example.ru", "--json").stdout)
        assert [(c["channel"], c["status"]) for c in card["consents"]] == [("email", "unsubscribed")]


def test_reconcile_leaves_out_contacts_the_consent_rule_never_sends_to_the_tool(store_project, monkeypatch):
    from tests.fakes.brevo import FakeBrevo
    from tests.fakes.mailchimp import FakeMailchimp, subscriber_hash
    from tests.test_messaging import BREVO_KEY, MAILCHIMP_KEY, configure

    project = store_project
    project.write("crm.csv", "id,full_name,email\n1,Анна Петрова,anna@example.com\n2,Борис Смирнов,boris@example.com\n")
    with FakeMailchimp(MAILCHIMP_KEY) as mailchimp, FakeBrevo(BREVO_KEY) as brevo:
        mailchimp.add("ivan@example.ru", FNAME="Иван", LNAME="Петров")
        brevo.add("boris@example.com", blacklisted=True, FIRSTNAME="Борис")  # opted out, never on Mailchimp
        configure(project, mailchimp, brevo, monkeypatch, extra="  crm: {plugin: csv, path: crm.csv, id_column: id}\n")
        assert project.hub("sync").exit_code == 0
        # Анна has no consent basis (require_consent is on), Борис opted out: the sync sends neither
        report = json.loads(project.hub("reconcile", "mailchimp", "--json").stdout)
        assert report["counts"]["missing_in_tool"] == 0 and report["consent_held"] == 2
        table = project.hub("reconcile", "mailchimp")
        assert "2 contacts hub does not send to mailchimp for consent" in table.stdout
        applied = project.hub("reconcile", "mailchimp", "--apply", "--json")
        assert applied.exit_code == 0 and sum(json.loads(applied.stdout)["after"].values()) == 0
        assert set(mailchimp.members) == {subscriber_hash("ivan@example.ru")}

        # without require_consent a contact with no status may be sent there; one who opted out still never
        path = project.root / "hub.yaml"
        path.write_text(path.read_text(encoding="utf-8").replace(
            f"list_id: {mailchimp.list_id}\n", f"list_id: {mailchimp.list_id}\n    require_consent: false\n", 1),
            encoding="utf-8")
        report = json.loads(project.hub("reconcile", "mailchimp", "--json", "--unmask").stdout)
        assert [r["store"] for r in report["missing_in_tool"]] == ["Анна Петрова, anna@example.com"]
        assert report["consent_held"] == 1


def test_reconcile_apply_sends_a_tool_added_later_the_contacts_it_lacks(store_project, monkeypatch):
    """A tool enabled after the contacts came in has no outbox row for them (nothing
    changed since): --apply queues them, by the consent rule, and sends them."""
    from tests.fakes.brevo import FakeBrevo
    from tests.fakes.mailchimp import FakeMailchimp, subscriber_hash
    from tests.test_messaging import BREVO_KEY, MAILCHIMP_KEY, configure

    project = store_project
    project.write("crm.csv", "id,full_name,email\n1,Анна Петрова,anna@example.com\n2,Борис Смирнов,boris@example.com\n"
                             "3,Вера Козлова,vera@example.com\n")
    with FakeMailchimp(MAILCHIMP_KEY) as mailchimp, FakeBrevo(BREVO_KEY) as brevo:
        brevo.add("anna@example.com", FIRSTNAME="Анна")  # subscribed in Brevo
        brevo.add("boris@example.com", blacklisted=True, FIRSTNAME="Борис")  # opted out
        configure(project, mailchimp, brevo, monkeypatch, extra="  crm: {plugin: csv, path: crm.csv, id_column: id}\n")
        path = project.root / "hub.yaml"
        config = path.read_text(encoding="utf-8")
        path.write_text(config.replace("  mailchimp:\n", "  mailchimp:\n    enabled: false\n", 1), encoding="utf-8")
        for _ in range(2):  # the second reads back what hub wrote to Brevo
            assert project.hub("sync").exit_code == 0
        path.write_text(config, encoding="utf-8")  # Mailchimp added: nothing changed, nothing queued for it
        assert project.hub("sync").exit_code == 0 and mailchimp.members == {}
        report = json.loads(project.hub("reconcile", "mailchimp", "--json", "--unmask").stdout)
        assert [r["store"] for r in report["missing_in_tool"]] == ["Петрова Анна, anna@example.com"]
        assert report["consent_held"] == 2  # Борис opted out, Вера has no consent basis
        applied = json.loads(project.hub("reconcile", "mailchimp", "--apply", "--json").stdout)
        assert sum(applied["after"].values()) == 0
        assert set(mailchimp.members) == {subscriber_hash("anna@example.com")}


def test_reconcile_two_tools_leaves_out_contacts_the_consent_rule_keeps_from_one(store_project, monkeypatch):
    """As in one tool's report: a contact hub never sends to Mailchimp for consent is not
    one Mailchimp lacks; the report counts it under the tool in consent_held."""
    from tests.fakes.brevo import FakeBrevo
    from tests.fakes.mailchimp import FakeMailchimp
    from tests.test_messaging import BREVO_KEY, MAILCHIMP_KEY, configure

    project = store_project
    project.write("crm.csv", "id,full_name,email\n1,Анна Петрова,anna@example.com\n2,Борис Смирнов,boris@example.com\n"
                             "3,Иван Петров,ivan@example.ru\n")
    with FakeMailchimp(MAILCHIMP_KEY) as mailchimp, FakeBrevo(BREVO_KEY) as brevo:
        mailchimp.add("ivan@example.ru", FNAME="Иван", LNAME="Петров")
        brevo.add("boris@example.com", blacklisted=True, FIRSTNAME="Борис")  # opted out, never on Mailchimp
        configure(project, mailchimp, brevo, monkeypatch, extra="  crm: {plugin: csv, path: crm.csv, id_column: id}\n")
        assert project.hub("sync").exit_code == 0
        # Анна has no consent basis (require_consent is on), Борис opted out: the sync sends neither
        report = json.loads(project.hub("reconcile", "crm", "mailchimp", "--json").stdout)
        assert report["counts"] == {"only_in_crm": 0, "only_in_mailchimp": 0, "conflicts": 0}
        assert report["consent_held"] == {"crm": 0, "mailchimp": 2}
        table = project.hub("reconcile", "crm", "mailchimp")
        assert "2 contacts hub does not send to mailchimp for consent" in table.stdout

        # without require_consent a contact with no status may be sent there; one who opted out still never
        path = project.root / "hub.yaml"
        path.write_text(path.read_text(encoding="utf-8").replace(
            f"list_id: {mailchimp.list_id}\n", f"list_id: {mailchimp.list_id}\n    require_consent: false\n", 1),
            encoding="utf-8")
        report = json.loads(project.hub("reconcile", "crm", "mailchimp", "--json", "--unmask").stdout)
        assert [r["a"] for r in report["only_in_crm"]] == ["Анна Петрова, anna@example.com"]
        assert report["consent_held"] == {"crm": 0, "mailchimp": 1}


def test_a_scheduled_run_and_a_manual_sync_started_at_once_lose_nothing(store_project):
    """Both take the store's run lock: one runs, the other waits for later or exits
    with code 3; whichever order, the store ends complete and a rerun changes nothing."""
    import os
    import subprocess
    import sys

    _scheduled(store_project, "    yearly: {cron: '0 0 1 1 *'}\n")
    assert store_project.hub("schedule", "--once").exit_code == 0  # creates the store, registers the job
    _remember(store_project, "yearly", "2020-01-01T00:00:00+00:00")
    env = {k: v for k, v in os.environ.items() if k != "HUB_CONFIG"}
    base = [sys.executable, "-c", "from hub.cli import main; main()", "-c", str(store_project.root / "hub.yaml")]
    scheduler = subprocess.Popen([*base, "schedule", "--once", "--json"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
    manual = subprocess.Popen([*base, "sync", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    scheduled_out, scheduled_err = scheduler.communicate(timeout=300)
    _manual_out, manual_err = manual.communicate(timeout=300)
    assert scheduler.returncode == 0, scheduled_err
    assert manual.returncode in (0, 3), manual_err
    ran = len(json.loads(scheduled_out)) + (manual.returncode == 0)
    assert ran >= 1
    if manual.returncode == 3:
        assert "another hub sync is running" in manual_err
    runs = json.loads(store_project.hub("runs", "--json").stdout)
    assert all(r["status"] == "ok" for r in runs)
    assert len(_contacts(store_project)) == 3 and len(_out(store_project)) == 3
    assert _sync(store_project)["changes"] == 0


def test_forget_deletes_the_person_from_a_tool_hub_reads_and_writes(crm):
    erased = json.loads(crm.hub("forget", "--email", "petr@example.ru", "--json").stdout)
    assert erased["deletion_queued"] == ["crm"] and erased["delete_by_hand"] == []
    report = _sync(crm)
    assert report["counts"]["crm"]["suppressed"] == 1 and report["counts"]["crm"]["sent"] == 1
    assert "petr@example.ru" not in (crm.root / "crm.csv").read_text(encoding="utf-8")
    assert not any(link["contact_id"] == erased["contacts"][0]
                   for link in json.loads(crm.hub("export", "links", "--format", "json").stdout))
    report = _sync(crm)
    assert report["changes"] == 0 and report["counts"]["crm"]["suppressed"] == 0


def test_reconcile_two_tools_through_the_store(crm):
    assert crm.hub("sync").exit_code == 0  # the row hub wrote to crm is read back and linked
    report = json.loads(crm.hub("reconcile", "crm", "mailing", "--json", "--unmask").stdout)
    assert report["counts"] == {"only_in_crm": 3, "only_in_mailing": 0, "conflicts": 0}
    assert report["consent_held"] == {"crm": 0, "mailing": 0}  # no consent rule for a sheet, nor one hub only reads
    (crm.root / "mailing.csv").write_text(
        "email,full_name,phone\nnew@example.ru,Новиков Олег,+79990009999\n", encoding="utf-8")
    report = json.loads(crm.hub("reconcile", "crm", "mailing", "--json", "--unmask").stdout)
    assert [(r["field"], r["a"], r["b"]) for r in report["conflicts"]] == [("phone", "+79990001122", "+79990009999")]
    as_csv = crm.hub("reconcile", "crm", "mailing", "--format", "csv").stdout.splitlines()
    assert as_csv[0] == "kind,contact_id,field,a_external_id,a,b_external_id,b" and len(as_csv) == 5
    assert "*" in as_csv[-1]  # masked without --unmask
    applied = json.loads(crm.hub("reconcile", "crm", "mailing", "--apply", "--json").stdout)
    assert applied["after"]["conflicts"] == 0  # the mailing's newer phone reached crm through the store
    assert "+79990009999" in (crm.root / "crm.csv").read_text(encoding="utf-8")
    assert crm.hub("reconcile", "crm", "crm").exit_code == 2


def test_two_schedulers_started_at_once_run_a_due_job_once(store_project):
    import os
    import subprocess
    import sys

    _scheduled(store_project, "    yearly: {cron: '0 0 1 1 *'}\n")
    assert store_project.hub("schedule", "--once").exit_code == 0
    _remember(store_project, "yearly", "2020-01-01T00:00:00+00:00")
    env = {k: v for k, v in os.environ.items() if k != "HUB_CONFIG"}
    command = [sys.executable, "-c", "from hub.cli import main; main()", "-c", str(store_project.root / "hub.yaml"),
               "schedule", "--once", "--json"]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in both]
    results = [(p.returncode, out, err) for p, (out, err) in zip(both, outputs)]
    made = 0
    for code, out, err in results:
        assert code in (0, 3), err
        if code == 3:
            assert "another hub schedule is running" in err
        else:
            made += len(json.loads(out))
    assert made == 1  # either the second found the lock taken, or the job done already
    assert [r["status"] for r in json.loads(store_project.hub("runs", "--json").stdout)] == ["ok"]


def test_a_run_finished_plugin_gets_every_run_and_cannot_fail_it(tmp_path):
    """A third-party plugin installed through an entry point: it sees the report, and
    its exception is logged while the run stays ok."""
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    site.mkdir()
    (site / "hub_notify_test.py").write_text(
        "import json, os\n"
        "from hub.hookspecs import hookimpl\n\n"
        "@hookimpl\n"
        "def hub_run_finished(run):\n"
        "    with open(os.environ['NOTIFY_FILE'], 'a', encoding='utf-8') as f:\n"
        "        f.write(json.dumps(run) + '\\n')\n"
        "    raise RuntimeError('chat is down')\n", encoding="utf-8")
    dist = site / "hub_notify_test-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hub-notify-test\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hub.connectors]\nnotify_test = hub_notify_test\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "sheet.csv").write_text(SHEET, encoding="utf-8")
    (project / "hub.yaml").write_text(CONFIG, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "HUB_CONFIG"}
    env.update(PYTHONPATH=os.pathsep.join([str(site), env.get("PYTHONPATH", "")]),
               HUB_LOAD_PLUGINS="notify_test", NOTIFY_FILE=str(tmp_path / "runs.jsonl"))
    result = subprocess.run([sys.executable, "-c", "from hub.cli import main; main()", "sync", "--json"],
                            check=False, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ok"
    assert "a hub_run_finished hook failed: RuntimeError: chat is down" in result.stderr
    seen = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["run_id"], r["status"], r["counts"]["sheet"]["created"]) for r in seen] == [(1, "ok", 3)]


def test_a_fault_of_a_connector_records_the_run_failed_not_interrupted(project, monkeypatch):
    """A run stopped by SIGTERM or Ctrl-C is `interrupted`; one where a fault in code (a
    plugin raising an unexpected exception) failed a connector is `failed`, as `hub
    schedule --once` reports it; the exception fails that connector's step, not the run
    halfway."""
    from hub.changes import list_runs
    from hub.config import load_config
    from hub.connector import Connector
    from hub.plugins import connector_classes
    from hub.store import open_store
    from hub.sync import Sync

    class Broken(Connector):
        plugin = "broken"
        capabilities = frozenset({"read"})

        def read(self, cursor):
            raise RuntimeError("a bug in the plugin")
            yield  # a generator, as read() is

    monkeypatch.setenv("HUB_WORKERS", "0")
    project.config("connectors:\n  src: {plugin: broken}\n")
    config = load_config(project.root / "hub.yaml", {**connector_classes(), "broken": Broken})
    store = open_store(config.store_url)
    report = Sync(config, store).run()
    assert [e.splitlines()[0] for e in report.errors] == [
        "src: unexpected error in the connector: RuntimeError: a bug in the plugin"]
    with store.connect() as c:
        runs = list_runs(c)
    store.dispose()
    assert runs[0]["status"] == "failed" and "a bug in the plugin" in runs[0]["error"]
