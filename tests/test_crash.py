"""Crash safety: `hub sync` killed with SIGKILL at random points, then rerun, ends in
the same store as one uninterrupted run.

Folder A holds the reference: one `hub sync` run from start to end (and a rerun that
must change nothing). Folders B1, B2, ... hold the same data; each is synced by runs
that are killed with SIGKILL after a random delay spread over the duration of the
reference run, until a run outlives its delay and finishes by itself. A run that
resumes a killed one skips what the killed one committed, so its remaining work is
shorter: a new folder is started once a run has finished, so that kills keep landing
in real work (startup, mid-pull, merges, mid-push) rather than in no-op runs. Each
crashed folder is finished with `hub sync`, rerun once more, and compared with A:

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

from hub.store.schema import changes, contacts, cursors, identifiers, outbox, quarantine, runs, source_records

SEED = 20240611
KILLS = 24  # runs actually ended by SIGKILL
SOURCES = ("crm", "shop", "mailing")
DESTINATION = "out"
DEST_FILE = "out/contacts.csv"
HUB = [sys.executable, "-m", "hub.cli"] if shutil.which("hub") is None else [shutil.which("hub")]

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


def generate(folder: Path, seed: int = SEED, people: int = 2600) -> dict[str, int]:
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
    used_emails: set[str] = set()
    for i in range(people):
        female = rng.random() < 0.5
        last = rng.choice(LAST) + ("а" if female else "")
        first = rng.choice(FEMALE if female else MALE)
        middle = rng.choice(PATRONYMIC) + ("на" if female else "ич")
        if middle.endswith("евна") or middle.endswith("евич"):
            pass
        while True:
            phone = "9" + "".join(rng.choice("0123456789") for _ in range(9))
            if phone not in used_phones:
                used_phones.add(phone)
                break
        local = f"{first[0].lower().translate(TRANSLIT)}.{last.lower().translate(TRANSLIT)}{i}"
        email = f"{local}@{rng.choice(DOMAINS)}"
        used_emails.add(email)
        city_name, spellings = rng.choice(CITIES)
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
        if rng.random() < 0.7:
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
        if rng.random() < 0.5:
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
        if rng.random() < 0.5:
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
    for _ in range(people // 60):
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
