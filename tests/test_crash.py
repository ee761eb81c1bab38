"""Crash safety: `hub sync` killed with SIGKILL at random points, then rerun, ends in
the same store as one uninterrupted run.

Folder A holds the reference: one `hub sync` run from start to end (and a rerun that
must change nothing). Folders B0, B1, ... hold the same data; each is synced by runs
that are killed with SIGKILL after a random delay spread over the duration of the
reference run, until a run outlives its delay and finishes by itself. A run that
resumes a killed one skips what the killed one committed, so its remaining work is
shorter: a new folder is started once a run has finished, so that kills keep landing
in real work (startup, mid-pull, merges, mid-push) rather than in no-op runs. Each
crashed folder is compared with A once a run has finished (the last one after a
`hub sync` to completion and a rerun that must change nothing):

* the same clusters of source records (contacts compared by their links, not ids);
* the same field values of each cluster, the same identifiers and outbox state;
* the same destination file, up to the renaming of contact ids;
* no change-log entry written twice: per (cluster, field, old, new, ...) B never
  has more entries than A (a killed batch is rolled back as a whole);
* the same open quarantine entries;
* no run left `running`: killed runs are marked `interrupted` by the next run.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

from hub.store.schema import changes, contacts, cursors, identifiers, outbox, quarantine, runs, source_records

SEED = 20240611
KILLS = 20  # runs actually ended by SIGKILL
SOURCES = ("crm", "shop", "mailing")
DESTINATION = "out"
DEST_FILE = "out/contacts.csv"

# --------------------------------------------------------------------------- data

LAST = [
    "Иванов", "Петров", "Сидоров", "Смирнов", "Кузнецов", "Попов", "Васильев", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов",
    "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин", "Захаров", "Зайцев",
    "Соловьёв", "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв", "Сергеев", "Кузьмин",
]
MALE = ["Иван", "Пётр", "Сергей", "Алексей", "Дмитрий", "Андрей", "Михаил", "Николай", "Олег", "Артём",
        "Максим", "Владимир", "Юрий", "Игорь", "Роман", "Павел", "Константин", "Евгений"]
FEMALE = ["Анна", "Мария", "Ольга", "Елена", "Наталья", "Татьяна", "Ирина", "Светлана", "Юлия", "Дарья",
          "Екатерина", "Алёна", "Ксения", "Вера", "Людмила", "Галина", "Полина", "Софья"]
PATRONYMIC = ["Иванов", "Петров", "Сергеев", "Алексеев", "Дмитриев", "Андреев", "Михайлов", "Николаев",
              "Владимиров", "Юрьев", "Игорев", "Павлов"]
LATIN = {"Иван": "Ivan", "Пётр": "Petr", "Сергей": "Sergey", "Анна": "Anna", "Мария": "Maria",
         "Ольга": "Olga", "Елена": "Elena", "Дмитрий": "Dmitry", "Ирина": "Irina"}
CITIES = [("Москва", ["Москва", "Мск", "г. Москва", "МОСКВА"]),
          ("Санкт-Петербург", ["Санкт-Петербург", "СПб", "Питер"]),
          ("Казань", ["Казань", "Kazan"]),
          ("Екатеринбург", ["Екатеринбург", "Екб"]),
          ("Новосибирск", ["Новосибирск", "Нск"]),
          ("Самара", ["Самара"])]
DOMAINS = ["mail.ru", "yandex.ru", "gmail.com", "example.ru", "bk.ru", "inbox.ru"]
TRANSLIT = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "h", "ц": "c", "ч": "ch", "ш": "sh", "щ": "sch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya",
})


def _phone_text(rng: random.Random, digits: str) -> str:
    """One of the ways people write a Russian mobile number (digits: 10, starting with 9)."""
    a, b, c, d = digits[:3], digits[3:6], digits[6:8], digits[8:]
    return rng.choice([
        f"8 ({a}) {b}-{c}-{d}",
        f"+7 {a} {b} {c} {d}",
        f"{digits}",
        f"+7{digits}",
        f"8{digits}",
        f"7-{a}-{b}-{c}-{d}",
        f"8 {a} {b}-{c}-{d}",
    ])


def _email_text(rng: random.Random, email: str) -> str:
    return rng.choice([email, email, email, email.upper(), f" {email} ", email.capitalize()])


def generate(folder: Path, seed: int = SEED, people: int = 1250) -> dict[str, int]:
    """Write three overlapping sources, their mappings and hub.yaml into ``folder``.

    * crm.csv: `;`-separated, Russian headers, ФИО in one cell, DD.MM.YYYY birthdays;
    * shop.csv: canonical column names, sometimes two phones in a cell;
    * mailing.csv: Latin names, e-mails and phones only.

    People appear in one to three files with their e-mail and/or phone written in
    different ways; some rows bridge two people (one's e-mail, the other's phone),
    so contacts created apart are merged later; some rows are bad and quarantined.
    """
    rng = random.Random(seed)
    persons = []
    used_phones: set[str] = set()
    for i in range(people):
        female = rng.random() < 0.5
        last = rng.choice(LAST) + ("а" if female else "")
        first = rng.choice(FEMALE if female else MALE)
        middle = rng.choice(PATRONYMIC) + ("на" if female else "ич")
        while True:
            phone = "9" + "".join(rng.choice("0123456789") for _ in range(9))
            if phone not in used_phones:
                used_phones.add(phone)
                break
        local = f"{first[0].lower().translate(TRANSLIT)}.{last.lower().translate(TRANSLIT)}{i}"
        email = f"{local}@{rng.choice(DOMAINS)}"
        _, spellings = rng.choice(CITIES)
        birthday = (rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28))
        persons.append({
            "last": last, "first": first, "middle": middle, "phone": phone, "email": email,
            "spellings": spellings, "birthday": birthday, "phone2": None,
        })
    for person in rng.sample(persons, people // 10):  # a second phone for some
        while True:
            phone = "9" + "".join(rng.choice("0123456789") for _ in range(9))
            if phone not in used_phones:
                used_phones.add(phone)
                person["phone2"] = phone
                break

    crm: list[list[str]] = []
    shop: list[list[str]] = []
    mailing: list[list[str]] = []
    for p in persons:
        y, m, d = p["birthday"]
        if rng.random() < 0.9:
            has_email, has_phone = rng.random() < 0.75, rng.random() < 0.85
            if not (has_email or has_phone):
                has_phone = True
            name = rng.choice([
                f"{p['last']} {p['first']} {p['middle']}",
                f"{p['first']} {p['middle']} {p['last']}",
                f"{p['last']} {p['first']}",
                f"{p['last'].upper()} {p['first'].upper()} {p['middle'].upper()}",
            ])
            crm.append([
                "", name, _phone_text(rng, p["phone"]) if has_phone else "",
                _email_text(rng, p["email"]) if has_email else "", rng.choice(p["spellings"]),
                f"{d:02d}.{m:02d}.{y}" if rng.random() < 0.6 else "",
            ])
        if rng.random() < 0.82:
            has_email, has_phone = rng.random() < 0.6, rng.random() < 0.8
            if not (has_email or has_phone):
                has_email = True
            phone = _phone_text(rng, p["phone"]) if has_phone else ""
            if p["phone2"] and rng.random() < 0.7:
                phone = ", ".join(x for x in (phone, _phone_text(rng, p["phone2"])) if x)
            shop.append([
                "", rng.choice([f"{p['first']} {p['last']}", p["first"], f"{p['last']} {p['first']}"]), phone,
                _email_text(rng, p["email"]) if has_email else "",
                rng.choice(p["spellings"] + [""]), f"{y}-{m:02d}-{d:02d}" if rng.random() < 0.4 else "",
            ])
        if rng.random() < 0.82:
            has_phone = rng.random() < 0.4
            first = LATIN.get(p["first"], p["first"])
            mailing.append([
                "", _email_text(rng, p["email"]), first, p["last"] if first == p["first"] else
                p["last"].lower().translate(TRANSLIT).capitalize(),
                _phone_text(rng, p["phone"]) if has_phone else "",
            ])
    # bridges: one person's e-mail with another's phone (merges two contacts that
    # exist apart); most go to the last file read, so existing contacts merge
    bridges = 0
    for _ in range(people // 40):
        x, y = rng.sample(persons, 2)
        target = rng.choice([mailing, mailing, shop])
        if target is mailing:
            row = ["", x["email"], LATIN.get(x["first"], x["first"]), "", _phone_text(rng, y["phone"])]
        else:
            row = ["", x["first"], _phone_text(rng, y["phone"]), x["email"], "", ""]
        target.insert(rng.randrange(len(target) + 1), row)
        bridges += 1

    rng.shuffle(crm)
    rng.shuffle(shop)
    rng.shuffle(mailing)
    for prefix, rows in (("C", crm), ("S", shop), ("M", mailing)):
        for n, row in enumerate(rows, start=1):
            row[0] = f"{prefix}{n}"

    # bad rows: quarantined (open) or imported without the bad value (partial)
    bad = 0

    def insert(rows: list[list[str]], row: list[str]) -> None:
        nonlocal bad
        rows.insert(rng.randrange(len(rows) + 1), row)
        bad += 1

    for k in range(12):
        insert(crm, [f"CX{k}", "", "мусор", "не почта", "", ""])  # nothing usable left
        insert(crm, ["", f"Безымянный {k}", _phone_text(rng, "9000000%03d" % k), "", "", ""])  # no id
        insert(crm, [rng.choice(crm)[0] or "C1", "Дубль Дублев", "", f"dup{k}@example.ru", "", ""])  # duplicate id
        insert(crm, [f"CB{k}", f"Плохая Дата {k}", "", f"baddate{k}@example.ru", "", "31.02.1990"])  # bad date
        insert(shop, [f"SX{k}", "", "12", "@@", "", ""])
        insert(shop, [f"SP{k}", f"Частичная {k}", "", f"partial{k}@@example", "", ""])  # bad e-mail, kept name
        insert(mailing, [f"MX{k}", "not-an-email", "", "", "123"])

    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "mappings").mkdir(exist_ok=True)
    with (folder / "data/crm.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=";")
        writer.writerow(["Код", "ФИО", "Телефон", "Email", "Город", "Дата рождения"])
        writer.writerows(crm)
    with (folder / "data/shop.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "full_name", "phone", "email", "city", "birthday"])
        writer.writerows(shop)
    with (folder / "data/mailing.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "Email Address", "First Name", "Last Name", "Phone"])
        writer.writerows(mailing)
    (folder / "mappings/crm.yaml").write_text(textwrap.dedent("""\
        fields:
          full_name: {from: ФИО, transforms: [split_name]}
          phone: {from: Телефон, transforms: [phone]}
          email: {from: Email, transforms: [email]}
          city: Город
          birthday: {from: Дата рождения, transforms: [{date: DD.MM.YYYY}]}
        """), encoding="utf-8")
    (folder / "mappings/mailing.yaml").write_text(textwrap.dedent("""\
        fields:
          email: {from: Email Address, transforms: [email]}
          first_name: First Name
          last_name: Last Name
          phone: {from: Phone, transforms: [phone]}
        """), encoding="utf-8")
    (folder / "hub.yaml").write_text(textwrap.dedent(f"""\
        store: sqlite:///hub.db
        connectors:
          crm: {{plugin: csv, role: source, path: data/crm.csv, id_column: Код, mapping: crm}}
          shop: {{plugin: csv, role: source, path: data/shop.csv, id_column: id}}
          mailing: {{plugin: csv, role: source, path: data/mailing.csv, id_column: id, mapping: mailing}}
          {DESTINATION}: {{plugin: csv, role: destination, path: {DEST_FILE}}}
        merge:
          default: most_recent
          source_priority: [crm, shop, mailing]
          fields:
            full_name: most_complete
            city: source_priority
        """), encoding="utf-8")
    return {"crm": len(crm), "shop": len(shop), "mailing": len(mailing), "bridges": bridges, "bad": bad}


# --------------------------------------------------------------------------- running hub


def _hub_command() -> list[str]:
    script = Path(sys.executable).parent / "hub"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from hub.cli import main; sys.exit(main())"]


HUB = _hub_command()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["HUB_LOAD_PLUGINS"] = ""  # the built-in connectors only, as in the other tests
    env["HUB_WORKERS"] = "0"
    env.pop("HUB_CONFIG", None)
    return env


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUB, "-c", str(folder / "hub.yaml"), *args], capture_output=True, text=True, env=_env(), timeout=300
    )


def _sync_to_the_end(folder: Path) -> dict[str, Any]:
    result = _run(folder, "sync", "--json")
    assert result.returncode == 0, f"hub sync in {folder.name} failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def _assert_nothing_left_to_do(folder: Path) -> None:
    report = _sync_to_the_end(folder)
    assert report["status"] == "ok"
    assert report["changes"] == 0, f"{folder.name}: a rerun logged {report['changes']} changes: {report['sample']}"
    for name, counts in report["counts"].items():
        assert counts["created"] == counts["updated"] == counts["merged"] == 0, (folder.name, name, counts)
        assert counts["sent"] == counts["quarantined"] == 0, (folder.name, name, counts)


# --------------------------------------------------------------------------- the store, id-free


Key = tuple  # a cluster: the sorted source links of a contact


def _engine(folder: Path):
    return create_engine(f"sqlite:///{folder / 'hub.db'}")


def snapshot(folder: Path) -> dict[str, Any]:
    """The store of ``folder`` with contact ids replaced by clusters of source records."""
    engine = _engine(folder)
    with engine.connect() as c:
        records = c.execute(select(source_records)).all()
        contact_rows = {row.id: row for row in c.execute(select(contacts))}
        ident_rows = c.execute(select(identifiers)).all()
        outbox_rows = c.execute(select(outbox)).all()
        change_rows = c.execute(select(changes)).all()
        quarantine_rows = c.execute(select(quarantine)).all()
        run_rows = c.execute(select(runs).order_by(runs.c.id)).all()
        cursor_rows = c.execute(select(cursors)).all()
    engine.dispose()

    live = {cid for cid, row in contact_rows.items() if row.deleted_at is None and row.merged_into is None}
    links: dict[int, set[str]] = {}
    problems: list[str] = []
    for r in records:
        if r.origin != "read" or r.removed_at is not None:
            continue
        links.setdefault(r.contact_id, set()).add(f"{r.connector}:{r.external_id}")
        if r.contact_id not in live:
            problems.append(f"record {r.connector}:{r.external_id} is linked to contact {r.contact_id}, not live")
    cluster: dict[int, Key] = {cid: tuple(sorted(links.get(cid, ()))) for cid in live}
    for cid in live:
        if not cluster[cid]:
            problems.append(f"live contact {cid} has no source records")

    def final(cid: int) -> Key:
        """The cluster a contact ended in (merged contacts lead to their survivor)."""
        seen = set()
        while cid in contact_rows and contact_rows[cid].merged_into is not None and cid not in seen:
            seen.add(cid)
            cid = contact_rows[cid].merged_into
        if cid in cluster:
            return cluster[cid]
        return ("<contact without records>",)

    def values(row: Any) -> dict[str, Any]:
        out = {f: getattr(row, f) for f in ("full_name", "last_name", "first_name", "middle_name", "email",
                                             "phone", "city", "birthday", "company")}
        out.update(json.loads(row.attributes) if row.attributes else {})
        return out

    fields = {cluster[cid]: values(contact_rows[cid]) for cid in live}
    if len(fields) != len(live):
        problems.append("two live contacts have the same source records")
    idents: dict[Key, set[tuple[str, str]]] = {}
    for row in ident_rows:
        if row.contact_id not in live:
            problems.append(f"identifier {row.kind}={row.value} points at contact {row.contact_id}, not live")
        idents.setdefault(final(row.contact_id), set()).add((row.kind, row.value))
    destination_links = Counter(
        (r.connector, final(r.contact_id), r.external_id == str(r.contact_id)) for r in records if r.origin == "write"
    )
    out_state = Counter(
        (row.destination, final(row.contact_id), row.contact_id in live, row.op, row.status,
         row.payload_hash, row.sent_hash)
        for row in outbox_rows
    )
    change_log = Counter(
        (final(row.contact_id), row.field, row.old_value,
         final(int(row.new_value)) if row.field == "merged_into" and row.new_value else row.new_value,
         row.connector, row.external_id, row.reason)
        for row in change_rows
    )
    quarantined = Counter((row.connector, row.external_id, row.reason, row.status) for row in quarantine_rows)
    return {
        "problems": problems,
        "clusters": set(fields),
        "fields": fields,
        "identifiers": idents,
        "destination_links": destination_links,
        "outbox": out_state,
        "changes": change_log,
        "quarantine": quarantined,
        "cursors": {(row.connector, row.stream): (row.value, row.fingerprint) for row in cursor_rows},
        "runs": [(row.id, row.status) for row in run_rows],
        "cluster_of": {cid: final(cid) for cid in contact_rows},
        "ids": {cluster[cid]: cid for cid in live},
    }


def destination_rows(folder: Path, cluster_of: dict[int, Key]) -> tuple[list[str], Counter]:
    """The destination file's header and rows, the contact id in each row replaced by its cluster."""
    with (folder / DEST_FILE).open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        position = header.index("id")
        rows = Counter()
        for row in reader:
            key = cluster_of.get(int(row[position]), ("<unknown id>", row[position]))
            rows[(key, tuple(v for i, v in enumerate(row) if i != position))] += 1
    return header, rows


def _first_difference(a: Any, b: Any, label: str, limit: int = 5) -> str:
    """A short description of how two snapshots' parts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        only_a = [k for k in a if k not in b][:limit]
        only_b = [k for k in b if k not in a][:limit]
        differ = [(k, a[k], b[k]) for k in a if k in b and a[k] != b[k]][:limit]
        return f"{label}: only in A {only_a}; only in B {only_b}; different (key, A, B) {differ}"
    if isinstance(a, set) and isinstance(b, set):
        return f"{label}: only in A {sorted(a - b)[:limit]}; only in B {sorted(b - a)[:limit]}"
    return f"{label}: A={a!r:.500} B={b!r:.500}"


def compare(a_folder: Path, a: dict[str, Any], b_folder: Path, b: dict[str, Any],
            ended: frozenset[str] = frozenset({"ok", "interrupted"})) -> None:
    """B's store is A's, contact ids aside; ``ended``: how B's runs may have ended."""
    name = b_folder.name
    assert not a["problems"], a["problems"][:5]
    assert not b["problems"], f"{name}: {b['problems'][:5]}"
    assert a["clusters"] == b["clusters"], _first_difference(a["clusters"], b["clusters"], f"{name} clusters")
    assert a["fields"] == b["fields"], _first_difference(a["fields"], b["fields"], f"{name} field values")
    assert a["identifiers"] == b["identifiers"], _first_difference(
        a["identifiers"], b["identifiers"], f"{name} identifiers")
    assert a["cursors"] == b["cursors"], _first_difference(a["cursors"], b["cursors"], f"{name} cursors")
    assert a["quarantine"] == b["quarantine"], _first_difference(
        dict(a["quarantine"]), dict(b["quarantine"]), f"{name} quarantine")
    assert a["outbox"] == b["outbox"], _first_difference(dict(a["outbox"]), dict(b["outbox"]), f"{name} outbox")
    assert a["destination_links"] == b["destination_links"], _first_difference(
        dict(a["destination_links"]), dict(b["destination_links"]), f"{name} destination links")
    # the change log: a killed batch is rolled back, so no entry may be written twice
    twice = {key: (a["changes"].get(key, 0), count) for key, count in b["changes"].items()
             if count > a["changes"].get(key, 0)}
    assert not twice, f"{name}: change entries written more often than in one run (A, B): {list(twice.items())[:5]}"
    assert a["changes"] == b["changes"], _first_difference(dict(a["changes"]), dict(b["changes"]), f"{name} changes")
    # the destination file, up to the renaming of contact ids
    header_a, rows_a = destination_rows(a_folder, a["cluster_of"])
    header_b, rows_b = destination_rows(b_folder, b["cluster_of"])
    assert header_a == header_b
    assert rows_a == rows_b, _first_difference(dict(rows_a), dict(rows_b), f"{name} {DEST_FILE}")
    # run history: every killed run is marked interrupted by the next one, none left running
    statuses = Counter(status for _, status in b["runs"])
    assert set(statuses) <= ended, f"{name}: run statuses {dict(statuses)}"
    assert b["runs"][-1][1] == "ok"


# --------------------------------------------------------------------------- where a kill landed


def last_run_id(folder: Path) -> int:
    """The id of the newest run in the store; 0 while there is no store or schema yet."""
    if not (folder / "hub.db").exists():
        return 0
    engine = _engine(folder)
    try:
        with engine.connect() as c:
            return max([row.id for row in c.execute(select(runs.c.id))] or [0])
    except OperationalError:  # the schema was being created (a rolled-back migration)
        return 0
    finally:
        engine.dispose()


def kill_point(folder: Path, runs_before: int, sources_total: dict[str, int]) -> tuple[str, str, int]:
    """(phase, detail, live contacts) of a run just killed, read from what its transactions committed."""
    if last_run_id(folder) <= runs_before:
        return "startup", "no run row yet" if (folder / "hub.db").exists() else "no store yet", 0
    engine = _engine(folder)
    try:
        with engine.connect() as c:
            run_rows = c.execute(select(runs.c.id, runs.c.status).where(runs.c.id > runs_before)).all()
            if run_rows[-1].status == "ok":
                return "exit", "after the run was recorded as ok", -1
            saved = {row.connector for row in c.execute(select(cursors.c.connector))}
            committed = Counter(
                row.connector for row in c.execute(
                    select(source_records.c.connector).where(source_records.c.origin == "read"))
            )
            merged = sum(1 for row in c.execute(select(contacts.c.merged_into)) if row.merged_into is not None)
            live = sum(1 for row in c.execute(select(contacts.c.merged_into, contacts.c.deleted_at))
                       if row.merged_into is None and row.deleted_at is None)
            pending = sum(1 for row in c.execute(select(outbox.c.status)) if row.status in ("pending", "retry"))
            sent = sum(1 for row in c.execute(select(outbox.c.status)) if row.status == "sent")
    finally:
        engine.dispose()
    for source in SOURCES:
        if source not in saved:
            return f"pull:{source}", (
                f"{committed[source]}/{sources_total[source]} {source} records committed, "
                f"{live} contacts, {merged} merged away"
            ), live
    if pending:
        return "push", f"{sent} sent, {pending} pending", live
    return "finishing", f"{sent} sent, nothing pending", live


# --------------------------------------------------------------------------- the test


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sync_killed_at_random_points_converges_to_the_uninterrupted_store(tmp_path: Path) -> None:
    started = time.monotonic()
    seed_folder = tmp_path / "data"
    sizes = generate(seed_folder)
    rows_total = sizes["crm"] + sizes["shop"] + sizes["mailing"]

    def fresh(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(seed_folder, folder)
        return folder

    # the reference: one uninterrupted run, then a rerun that changes nothing
    a = fresh("A")
    t0 = time.monotonic()
    result = _run(a, "sync", "--json")
    reference = time.monotonic() - t0
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout)
    assert first["status"] == "ok"
    assert sum(c["merged"] for c in first["counts"].values()) > 0, "the data should make contacts merge"
    assert sum(c["quarantined"] for c in first["counts"].values()) > 0, "the data should have bad rows"
    _assert_nothing_left_to_do(a)
    snap_a = snapshot(a)
    assert not snap_a["problems"], snap_a["problems"][:5]
    sources_total = {}
    for source in SOURCES:
        sources_total[source] = sum(1 for key in snap_a["fields"] for link in key if link.startswith(source + ":"))

    # the crashed folders: kill runs at random moments until one outlives its delay
    rng = random.Random(SEED + 1)
    kills: list[tuple[int, float, str, str, int]] = []
    finished_naturally = 0
    episode = 0
    folder = fresh(f"B{episode}")
    runs_seen = 0
    compared = 0
    leftovers: list[str] = []
    histories: list[list[str]] = []
    same_ids: list[bool] = []

    def finish(folder: Path, rerun: bool) -> None:
        """Compare a finished folder with A (after a rerun that must change nothing)."""
        nonlocal compared
        if rerun:
            _assert_nothing_left_to_do(folder)
        snap_b = snapshot(folder)
        compare(a, snap_a, folder, snap_b)
        histories.append([status for _, status in snap_b["runs"]])
        same_ids.append(snap_b["ids"] == snap_a["ids"])
        leftovers.extend(str(p.relative_to(tmp_path)) for p in (folder / "out").glob(".*.tmp"))
        compared += 1

    # delays spread evenly over [0, reference]: one random point in each of KILLS equal
    # slices, in random order; every attempt takes the next slice, whether its run is
    # killed or finishes by itself
    # A machine busier than during the reference run runs slower: when too few of the
    # KILLS kills landed in real work on a store with contacts, more kills follow, later
    # in the run (up to twice the reference time), until enough have
    def in_work_with_contacts() -> int:
        return sum(1 for k in kills if k[2] not in ("startup", "exit") and k[4] > 0)

    slices: list[int] = []
    attempts = 0
    while len(kills) < KILLS or (in_work_with_contacts() < 3 and len(kills) < 2 * KILLS):
        assert attempts < 4 * KILLS, f"only {len(kills)} of {attempts} runs were still running at their kill time"
        if len(kills) >= KILLS:
            delay = reference * (1 + rng.random()) / 2 * (1 + len(kills) / KILLS)
        else:
            if not slices:
                slices = list(range(KILLS))
                rng.shuffle(slices)
            delay = reference * (slices.pop() + rng.random()) / KILLS
        attempts += 1
        # every other killed run prepares its batches in the worker process, so kills also
        # land while a worker holds a batch (the reference run prepares in-process)
        env = _env()
        env["HUB_WORKERS"] = "always" if attempts % 2 else "0"
        process = subprocess.Popen(
            [*HUB, "-c", str(folder / "hub.yaml"), "sync"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate()
        if process.returncode == 0:  # outlived its delay: this folder is done
            finished_naturally += 1
            finish(folder, rerun=False)  # the store is compared whole; the last folder gets the rerun
            episode += 1
            folder = fresh(f"B{episode}")
            runs_seen = 0
            continue
        assert process.returncode == -signal.SIGKILL, (
            f"hub sync in {folder.name} failed by itself (exit {process.returncode}):\n{stderr}")
        phase, detail, live = kill_point(folder, runs_seen, sources_total)
        kills.append((episode, delay, phase, detail, live))
        runs_seen = last_run_id(folder)
    # the last folder: finished by a complete run
    report = _sync_to_the_end(folder)
    assert report["status"] == "ok"
    finish(folder, rerun=True)

    # the run history of every crashed folder: killed runs are `interrupted`, none left `running`
    interrupted = sum(1 for statuses in histories for status in statuses if status == "interrupted")
    listed = json.loads(_run(folder, "runs", "--json", "-n", "1000").stdout)
    assert [r["status"] for r in reversed(listed)] == histories[-1]
    assert all(status in ("ok", "interrupted") for statuses in histories for status in statuses), histories

    phases = Counter(phase.split(":")[0] for _, _, phase, _, _ in kills)
    elapsed = time.monotonic() - started
    print(f"\n{rows_total} rows ({sizes}); reference run {reference:.2f}s; {len(kills)} kills over "
          f"{episode + 1} crashed folders, {finished_naturally} runs outlived their delay; "
          f"{interrupted} runs marked interrupted; {compared} folders compared, equal to A "
          f"(contact ids themselves equal in {sum(same_ids)}); {elapsed:.1f}s")
    print("kills by phase: " + ", ".join(f"{k} {v}" for k, v in sorted(phases.items())))
    for n, delay, phase, detail, _ in kills:
        print(f"  B{n} +{delay:.2f}s  {phase:<14} {detail}")
    if leftovers:
        print(f"temporary files left in destination folders by killed writes: {leftovers}")

    # the kills landed at varied points: in real work, not only in startup or no-op runs
    assert interrupted == sum(1 for k in kills if k[2] not in ("startup", "exit"))
    assert interrupted >= KILLS // 3, f"only {interrupted} of {KILLS} kills interrupted a run"
    assert in_work_with_contacts() >= 3, "too few kills landed after the store had contacts and before the run ended"
    assert len({"startup", "pull", "push"} & set(phases)) >= 2, f"kills landed in one phase only: {dict(phases)}"


def test_a_full_disk_fails_the_run_clearly_and_a_rerun_converges(tmp_path: Path) -> None:
    """The store's disk fills up in the middle of a run. Here the limit is the process's
    file size limit: SQLite then meets a short write, as on a full disk. The run fails
    with the store's error and a hint. Its report counts only what it committed. Once
    there is room, a rerun ends in the same store as an uninterrupted run."""
    import resource

    seed_folder = tmp_path / "data"
    generate(seed_folder)
    a = tmp_path / "A"
    shutil.copytree(seed_folder, a)
    _sync_to_the_end(a)
    snap_a = snapshot(a)
    full_size = (a / "hub.db").stat().st_size

    b = tmp_path / "B"
    shutil.copytree(seed_folder, b)
    limit = full_size * 3 // 4  # room for the first source's batch, not for the whole run

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    failed = subprocess.run([*HUB, "-c", str(b / "hub.yaml"), "sync", "--json"], capture_output=True, text=True,
                            env=_env(), timeout=300, preexec_fn=small_disk)
    assert failed.returncode == 1, failed.stderr
    report = json.loads(failed.stdout)
    assert report["status"] == "failed" and "store error" in report["errors"][0]
    assert "hint: check the store's disk (free space" in report["errors"][0]
    engine = _engine(b)
    with engine.connect() as c:
        stored = c.execute(select(contacts.c.id)).all()
        run = c.execute(select(runs.c.status, runs.c.counts)).one()
    engine.dispose()
    assert 0 < len(stored) < len(snap_a["fields"]), "the disk should fill up in the middle of the run"
    created = sum(counts["created"] for counts in report["counts"].values())
    assert created == len(stored), "the report counts contacts whose batch was rolled back"
    assert run.status == "failed" and json.loads(run.counts) == report["counts"]

    _sync_to_the_end(b)
    _assert_nothing_left_to_do(b)
    compare(a, snap_a, b, snapshot(b), ended=frozenset({"ok", "failed"}))
