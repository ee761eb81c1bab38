#!/usr/bin/env python3
"""Sync benchmark: hub's first sync, no-op rerun, touched rerun, re-read and peak
memory, against a floor (plain ``csv`` read + SQLite ``executemany`` of the same rows).

    python bench/sync_bench.py                      # 100k rows -> bench/results/sync.json
    python bench/sync_bench.py --rows 1000000       # 1M rows   -> bench/results/sync-1m.json
    python bench/sync_bench.py --profile            # also cProfile a first sync

N synthetic contacts (Russian names, mixed RU phone formats, e-mails, city aliases,
DD.MM.YYYY birthdays; deterministic seed) are written as two CSV sources whose rows
overlap by e-mail and/or phone, with a mapping per source and a ``hub.yaml``, into a
temporary work folder. ``hub sync`` then runs as a child process on a fresh SQLite
store, then again on the same inputs (no-op), then after 1% of the rows of each file
changed (touched), then after a settings change that makes every row be read again
without changing its values (re-read: a city alias no row uses, as after an upgrade
of hub's normalization). The floor reads the same files with the ``csv`` module and inserts
the rows into a fresh SQLite file (WAL) with ``executemany`` in one transaction.

Every measured process is started by a small wrapper interpreter that times it and
reads ``getrusage(RUSAGE_CHILDREN)`` after waiting for it: the wrapper has one child,
so ``ru_maxrss`` is the peak RSS of that child alone (not of this process, whose
memory a forked child would otherwise report as its own high-water mark).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from harness import ToolFailed, child_env, hub_command, machine, measure, source_state  # bench/harness.py

TARGET_RECORDS_PER_S = 5_000  # first sync, at 100k rows
TARGET_NOOP_SHARE = 0.10  # no-op rerun / first sync
TARGET_PEAK_RSS_MB = 500  # at 1M rows

SURNAMES = (
    "Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов Волков "
    "Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев Макаров Никитин "
    "Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв Сергеев Кузьмин Фролов "
    "Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков Сорокин Виноградов Ковалёв "
    "Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров Давыдов Беляев Герасимов Богданов "
    "Осипов Сидоров Матвеев Титов Марков Миронов Крылов Куликов Карпов Власов Мельников Денисов "
    "Гаврилов Тихонов Казаков Афанасьев Данилов Савельев Тимофеев Фомин Чернов Абрамов Мартынов "
    "Ефимов Федотов Щербаков Назаров Калинин Исаев Чернышёв Быков Маслов Родионов Коновалов Лазарев "
    "Воронин Климов Филатов Пономарёв Голубев Кудрявцев Прохоров Наумов Потапов Журавлёв Овчинников "
    "Трофимов Леонов Соболев Ермаков Колесников Гончаров Емельянов Никифоров Грачёв Котов Гришин "
    "Ефремов Архипов Громов Кириллов Малышев Панов Моисеев Румянцев Акимов Кондратьев Бирюков Горбунов "
    "Анисимов Ерёмин Тихомиров Галкин Лукьянов Михеев Скворцов Юдин Белоусов Нестеров Симонов "
    "Прокофьев Харитонов Князев Цветков Левин Митрофанов Воронцов Аксёнов Софронов Мальцев Логинов "
    "Горшков Савин Краснов Майоров Демидов Елисеев Рыбаков Сафонов Плотников Дёмин Хохлов Фадеев "
    "Молчанов Игнатов Литвинов Ершов Ушаков Дементьев Рябов Мухин Калашников Леонтьев Лобанов Кузин "
    "Корнилов Евдокимов Бородин Платонов Некрасов Балашов Бобров Жданов Блинов Игнатьев Коротков "
    "Муравьёв Крюков Беляков Богомолов Дроздов Лавров Зуев Петухов Ларин Никулин Серов Терентьев "
    "Зотов Устинов Фокин Самойлов Константинов Сахаров Шишкин Самсонов Черкасов Чистяков Носов "
    "Высоцкий Ковальский Шевченко Бондаренко Ткаченко Кравченко Ким Пак Цой Гасанов Алиев Мамедов "
    "Абдуллаев Юсупов Хабибуллин Галиев Сафин Закиров Шарипов Гарипов Оганесян Петросян Саакян"
).split()

MALE_NAMES = (
    "Александр Алексей Андрей Антон Артём Борис Вадим Валентин Валерий Василий Виктор Виталий "
    "Владимир Владислав Вячеслав Геннадий Георгий Глеб Григорий Даниил Денис Дмитрий Евгений Егор "
    "Иван Игорь Илья Кирилл Константин Лев Леонид Максим Марк Матвей Михаил Никита Николай Олег "
    "Павел Пётр Роман Руслан Семён Сергей Станислав Степан Тимофей Тимур Фёдор Юрий Ярослав Марат "
    "Рустам Ринат Артур Арсений"
).split()

FEMALE_NAMES = (
    "Александра Алина Алиса Алла Анастасия Ангелина Анна Антонина Валентина Валерия Вера Вероника "
    "Виктория Галина Дарья Диана Екатерина Елена Елизавета Жанна Зинаида Зоя Инна Ирина Карина "
    "Кристина Ксения Лариса Лидия Любовь Людмила Маргарита Марина Мария Надежда Наталья Нина Оксана "
    "Ольга Полина Светлана София Тамара Татьяна Ульяна Юлия Яна Эльвира Гульнара Алсу Камила Милана"
).split()

#: father's name -> (patronymic of a son, of a daughter)
PATRONYMICS = {
    "Александр": ("Александрович", "Александровна"), "Алексей": ("Алексеевич", "Алексеевна"),
    "Андрей": ("Андреевич", "Андреевна"), "Анатолий": ("Анатольевич", "Анатольевна"),
    "Борис": ("Борисович", "Борисовна"), "Валерий": ("Валерьевич", "Валерьевна"),
    "Василий": ("Васильевич", "Васильевна"), "Виктор": ("Викторович", "Викторовна"),
    "Владимир": ("Владимирович", "Владимировна"), "Геннадий": ("Геннадьевич", "Геннадьевна"),
    "Георгий": ("Георгиевич", "Георгиевна"), "Григорий": ("Григорьевич", "Григорьевна"),
    "Дмитрий": ("Дмитриевич", "Дмитриевна"), "Евгений": ("Евгеньевич", "Евгеньевна"),
    "Иван": ("Иванович", "Ивановна"), "Игорь": ("Игоревич", "Игоревна"),
    "Илья": ("Ильич", "Ильинична"), "Константин": ("Константинович", "Константиновна"),
    "Леонид": ("Леонидович", "Леонидовна"), "Михаил": ("Михайлович", "Михайловна"),
    "Никита": ("Никитич", "Никитична"), "Николай": ("Николаевич", "Николаевна"),
    "Олег": ("Олегович", "Олеговна"), "Павел": ("Павлович", "Павловна"),
    "Пётр": ("Петрович", "Петровна"), "Роман": ("Романович", "Романовна"),
    "Семён": ("Семёнович", "Семёновна"), "Сергей": ("Сергеевич", "Сергеевна"),
    "Фёдор": ("Фёдорович", "Фёдоровна"), "Юрий": ("Юрьевич", "Юрьевна"),
    "Ярослав": ("Ярославович", "Ярославовна"), "Рустам": ("Рустамович", "Рустамовна"),
}

#: (how the cell is written, weight); aliases are resolved by hub's city table
CITIES = (
    ("Москва", 14), ("Мск", 5), ("г. Москва", 4), ("москва", 2), ("Moscow", 1),
    ("Санкт-Петербург", 7), ("СПб", 4), ("Питер", 2), ("С.-Петербург", 1),
    ("Екатеринбург", 3), ("Екб", 2), ("Новосибирск", 3), ("Нск", 1), ("Казань", 3),
    ("Нижний Новгород", 2), ("Н. Новгород", 1), ("Краснодар", 2), ("Ростов-на-Дону", 2), ("РнД", 1),
    ("Самара", 2), ("Челябинск", 2), ("Омск", 1), ("Уфа", 2), ("Красноярск", 1), ("Пермь", 1),
    ("Воронеж", 1), ("Волгоград", 1), ("Тюмень", 1), ("Сочи", 1), ("Калининград", 1), ("Тула", 1),
    ("Ярославль", 1), ("Владивосток", 1), ("г. Иркутск", 1), ("Томск", 1), ("", 4),
)

DOMAINS = (
    ("mail.ru", 30), ("yandex.ru", 25), ("gmail.com", 20), ("bk.ru", 5), ("inbox.ru", 5),
    ("list.ru", 4), ("rambler.ru", 4), ("ya.ru", 3), ("outlook.com", 2), ("icloud.com", 2),
)

MOBILE_CODES = (
    "900 901 902 903 904 905 906 908 909 910 911 912 913 914 915 916 917 918 919 920 921 922 923 "
    "924 925 926 927 928 929 931 932 933 934 936 937 938 939 950 951 952 953 958 960 961 962 "
    "963 964 965 966 967 968 969 977 978 980 981 982 983 984 985 986 987 988 989 991 992 993 994 "
    "995 996 997 999"
).split()

_TRANSLIT = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh sch _ y _ e yu ya".split(),
))


def translit(word: str) -> str:
    return "".join(_TRANSLIT.get(ch, ch) for ch in word.lower()).replace("_", "")


def female_surname(surname: str) -> str:
    if surname.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return surname + "а"
    if surname.endswith("ский"):
        return surname[:-4] + "ская"
    if surname.endswith("цкий"):
        return surname[:-4] + "цкая"
    return surname  # Шевченко, Ким, Петросян


def phone_text(national: str, style: int) -> str:
    """One of the ways people type a Russian mobile number."""
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    return (
        f"+7 ({a}) {b}-{c}-{d}",
        f"8 ({a}) {b}-{c}-{d}",
        f"8{national}",
        f"+7{national}",
        f"+7 {a} {b} {c} {d}",
        f"8-{a}-{b}-{c}-{d}",
        f"7{national}",
        f"8 {a} {b}{c}{d}",
        f"({a}) {b}-{c}-{d}",
        f"+7({a}){b}{c}{d}",
    )[style]


class People:
    """Deterministic people: names, a unique e-mail and a unique mobile number each."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.city_cells = [c for c, _ in CITIES]
        self.city_weights = [w for _, w in CITIES]
        self.domains = [d for d, _ in DOMAINS]
        self.domain_weights = [w for _, w in DOMAINS]
        self.fathers = list(PATRONYMICS)

    def person(self, index: int) -> dict:
        rng = self.rng
        female = rng.random() < 0.5
        surname = rng.choice(SURNAMES)
        last = female_surname(surname) if female else surname
        first = rng.choice(FEMALE_NAMES if female else MALE_NAMES)
        middle = PATRONYMICS[rng.choice(self.fathers)][1 if female else 0]
        # unique per person: the index is part of the address, the number a bijection of it
        local = rng.choice((
            f"{translit(first)}.{translit(last)}",
            f"{translit(first)[0]}.{translit(last)}",
            f"{translit(last)}.{translit(first)}",
            f"{translit(last)}",
        ))
        email = f"{local}{index}@{rng.choices(self.domains, self.domain_weights)[0]}"
        national = rng.choice(MOBILE_CODES) + f"{(index * 7919 + 1234567) % 10_000_000:07d}"
        roll = rng.random()
        has_email, has_phone = (roll >= 0.10), (roll < 0.10 or roll >= 0.20)  # 10% no e-mail, 10% no phone
        year = rng.randint(1950, 2005)
        birthday = f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{year}" if rng.random() < 0.8 else ""
        city = rng.choices(self.city_cells, self.city_weights)[0]
        return {
            "last": last, "first": first, "middle": middle,
            "email": email if has_email else "", "national": national if has_phone else "",
            "birthday": birthday, "city": city,
        }

    def email_cell(self, email: str) -> str:
        if not email:
            return ""
        roll = self.rng.random()
        if roll < 0.15:
            local, _, domain = email.partition("@")
            return f"{local.capitalize()}@{domain.capitalize()}"
        if roll < 0.20:
            return f" {email.upper()} "
        return email

    def phone_cell(self, national: str) -> str:
        return phone_text(national, self.rng.randrange(10)) if national else ""

    def fio_cell(self, p: dict) -> str:
        roll = self.rng.random()
        if roll < 0.75:
            text = f"{p['last']} {p['first']} {p['middle']}"
        elif roll < 0.85:
            text = f"{p['first']} {p['middle']} {p['last']}"
        elif roll < 0.93:
            text = f"{p['last']} {p['first']}"
        else:
            text = f"{p['first']} {p['last']}"
        if self.rng.random() < 0.05:
            text = text.upper()
        return text


SHEET_HEADER = ["№", "ФИО", "Телефон", "E-mail", "Город", "Дата рождения"]
CRM_HEADER = ["id", "Фамилия", "Имя", "Отчество", "Моб. телефон", "Email", "Город", "Дата рождения", "Статус"]
SOURCES = {  # file name, delimiter, id column, header
    "sheet": ("sheet.csv", ";", "№", SHEET_HEADER),
    "crm": ("crm.csv", ",", "id", CRM_HEADER),
}

MAPPINGS = {
    "sheet": """\
# Client sheet: one ФИО column, ";"-separated, UTF-8 with BOM.
fields:
  full_name: {from: ФИО, transforms: [split_name]}
  phone: {from: Телефон, transforms: [phone]}
  email: {from: E-mail, transforms: [email]}
  city: {from: Город, transforms: [strip]}
  birthday: {from: Дата рождения, transforms: [{date: DD.MM.YYYY}]}
""",
    "crm": """\
# CRM export: name parts in their own columns.
fields:
  last_name: Фамилия
  first_name: Имя
  middle_name: Отчество
  phone: {from: Моб. телефон, transforms: [phone]}
  email: {from: Email, transforms: [email]}
  city: {from: Город, transforms: [strip, {map: {Мск: Москва, Питер: Санкт-Петербург}}]}
  birthday: {from: Дата рождения, transforms: [{date: DD.MM.YYYY}]}
  x_status: {from: Статус, transforms: [lower]}
""",
}

HUB_YAML = """\
store: sqlite:///hub.db
connectors:
  sheet:
    plugin: csv
    role: source
    path: sheet.csv
    id_column: №
    mapping: sheet
  crm:
    plugin: csv
    role: source
    path: crm.csv
    id_column: id
    mapping: crm
normalize:
  default_region: RU
identity:
  match_on: [email, phone]
merge:
  default: most_recent
  source_priority: [sheet, crm]
  fields:
    full_name: most_complete
    city: source_priority
guards:
  mass_delete_threshold: 5%
"""


def generate(work: Path, rows: int, overlap: float, seed: int) -> dict:
    """Write the two sources, their mappings and hub.yaml; say what was written.

    ``sheet`` holds half the rows, one person each. ``crm`` holds the rest: a share
    ``overlap`` of *all* rows are second records of sheet people (same e-mail, same
    phone or both, typed differently), the others are new people. So the store should
    end with ``rows - overlap_rows`` contacts."""
    people = People(seed)
    rng = people.rng
    n_sheet = (rows + 1) // 2
    n_crm = rows - n_sheet
    n_dup = min(round(rows * overlap), n_crm)
    dup_of = set(rng.sample(range(n_sheet), n_dup))
    kept: list[dict] = []  # sheet people who also appear in crm

    (work / "mappings").mkdir(parents=True, exist_ok=True)
    for name, text in MAPPINGS.items():
        (work / "mappings" / f"{name}.yaml").write_text(text, encoding="utf-8")
    (work / "hub.yaml").write_text(HUB_YAML, encoding="utf-8")

    with open(work / "sheet.csv", "w", encoding="utf-8-sig", newline="") as fh:
        out = csv.writer(fh, delimiter=";", lineterminator="\r\n")
        out.writerow(SHEET_HEADER)
        for i in range(n_sheet):
            p = people.person(i)
            out.writerow([
                str(100_000 + i), people.fio_cell(p), people.phone_cell(p["national"]),
                people.email_cell(p["email"]), p["city"], p["birthday"],
            ])
            if i in dup_of:
                kept.append(p)
    rng.shuffle(kept)

    statuses = ("subscribed", "Subscribed", "unsubscribed", "cleaned", "")
    matched = {"email": 0, "phone": 0, "both": 0}
    with open(work / "crm.csv", "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, delimiter=",", lineterminator="\n")
        out.writerow(CRM_HEADER)
        fresh = n_sheet
        for j in range(n_crm):
            if j < n_dup:
                p = dict(kept[j])
                how = rng.choices(("both", "email", "phone"), (4, 3, 3))[0]
                if not p["email"]:
                    how = "phone"
                elif not p["national"]:
                    how = "email"
                matched[how] += 1
                if how == "email":
                    p["national"] = ""
                elif how == "phone":
                    p["email"] = ""
                if rng.random() < 0.3:
                    p["middle"] = ""  # the CRM often lacks the patronymic
                if rng.random() < 0.3:
                    p["city"] = rng.choices(people.city_cells, people.city_weights)[0]
            else:
                p = people.person(fresh)
                fresh += 1
            out.writerow([
                f"C{j:08d}", p["last"], p["first"], p["middle"], people.phone_cell(p["national"]),
                people.email_cell(p["email"]), p["city"], p["birthday"], rng.choice(statuses),
            ])
    # crm rows are written in the order of their duplicates first; interleave them so a
    # batch mixes new and known people as a real export would
    _shuffle_body(work / "crm.csv", rng)
    return {
        "rows": rows,
        "sources": {"sheet": n_sheet, "crm": n_crm},
        "overlap_rows": n_dup,
        "overlap_share": round(n_dup / rows, 3) if rows else 0.0,
        "overlap_matched_on": matched,
        "expected_contacts": rows - n_dup,
        "seed": seed,
    }


def _shuffle_body(path: Path, rng: random.Random) -> None:
    with open(path, encoding="utf-8", newline="") as fh:
        header = fh.readline()
        body = fh.readlines()
    rng.shuffle(body)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(header)
        fh.writelines(body)


def touch(work: Path, share: float, seed: int) -> int:
    """Change the city of ``share`` of the rows of every source; return how many rows changed."""
    rng = random.Random(seed + 1)
    cells = [c for c, _ in CITIES if c]
    changed = 0
    for name, (file_name, delimiter, _id, header) in SOURCES.items():
        path = work / file_name
        encoding = "utf-8-sig" if name == "sheet" else "utf-8"
        terminator = "\r\n" if name == "sheet" else "\n"
        with open(path, encoding=encoding, newline="") as fh:
            table = list(csv.reader(fh, delimiter=delimiter))
        city = header.index("Город")
        body = table[1:]
        for index in rng.sample(range(len(body)), max(1, round(len(body) * share))):
            row = body[index]
            row[city] = rng.choice([c for c in cells if c != row[city]])
            changed += 1
        with open(path, "w", encoding=encoding, newline="") as fh:
            csv.writer(fh, delimiter=delimiter, lineterminator=terminator).writerows(table)
    return changed


# ------------------------------------------------------------------------ floor


def floor(work: Path, db: Path) -> None:
    """Read every source with the csv module and insert its rows into SQLite (WAL)
    with executemany in one transaction: what storing the rows costs at the least."""
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("BEGIN")
    for name, (file_name, delimiter, id_column, _header) in SOURCES.items():
        encoding = "utf-8-sig" if name == "sheet" else "utf-8"
        with open(work / file_name, encoding=encoding, newline="") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader)
            columns = ", ".join(f'"{c}" TEXT' + (" PRIMARY KEY" if c == id_column else "") for c in header)
            connection.execute(f'CREATE TABLE "{name}" ({columns})')
            marks = ", ".join("?" * len(header))
            connection.executemany(f'INSERT INTO "{name}" VALUES ({marks})', reader)
    connection.execute("COMMIT")
    connection.close()


# ------------------------------------------------------------------------ the run


def fresh_store(work: Path, name: str = "hub.db") -> None:
    for suffix in ("", "-wal", "-shm", ".sync.lock"):
        (work / f"{name}{suffix}").unlink(missing_ok=True)


def store_counts(db: Path) -> dict:
    connection = sqlite3.connect(db)
    try:
        one = lambda sql: connection.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "contacts": one("SELECT count(*) FROM contacts WHERE merged_into IS NULL AND deleted_at IS NULL"),
            "source_records": one("SELECT count(*) FROM source_records"),
            "changes": one("SELECT count(*) FROM changes"),
            "quarantine": one("SELECT count(*) FROM quarantine"),
        }
    finally:
        connection.close()


def warm_up(work: Path, seed: int) -> None:
    """A small sync in a folder of its own, so the measured runs find the bytecode cached."""
    small = work / "warm-up"
    shutil.rmtree(small, ignore_errors=True)
    small.mkdir()
    generate(small, 200, 0.25, seed)
    subprocess.run([*hub_command(), "-c", "hub.yaml", "sync", "--json"], cwd=small, env=child_env(work),
                   check=True, capture_output=True)
    shutil.rmtree(small)


def sync_run(work: Path, label: str) -> dict:
    source = source_state()
    result = measure([*hub_command(), "-c", "hub.yaml", "sync", "--json"], work, label)
    result["source"] = source
    report = json.loads(result.pop("stdout"))
    counts: dict[str, int] = {}
    for per_connector in report["counts"].values():
        for key, value in per_connector.items():
            counts[key] = counts.get(key, 0) + value
    result["report"] = {"status": report["status"], "changes": report["changes"], **counts}
    return result


def targets(rows: int, first: dict, noop: dict, peak_rss_mb: float) -> list[dict]:
    records_per_s = rows / first["wall_s"]
    noop_share = noop["wall_s"] / first["wall_s"]
    checks = [
        ("first sync throughput", f">= {TARGET_RECORDS_PER_S} records/s", 100_000,
         round(records_per_s), records_per_s >= TARGET_RECORDS_PER_S),
        ("no-op rerun", f"< {TARGET_NOOP_SHARE:.0%} of the first sync", None,
         round(noop_share, 4), noop_share < TARGET_NOOP_SHARE),
        ("peak RSS", f"< {TARGET_PEAK_RSS_MB} MB", 1_000_000,
         peak_rss_mb, peak_rss_mb < TARGET_PEAK_RSS_MB),
    ]
    out = []
    for name, target, defined_at, value, ok in checks:
        applies = defined_at is None or defined_at == rows
        out.append({
            "target": name, "wanted": target, "defined_at_rows": defined_at, "value": value,
            "result": ("PASS" if ok else "FAIL") if applies else "n/a",
            "result_at_this_size": "PASS" if ok else "FAIL",
        })
    return out


def profile_first_sync(work: Path, out_text: Path, top: int) -> None:
    """cProfile a first sync on a fresh store of its own and summarize it."""
    fresh_store(work, "profile.db")
    config = (work / "hub.yaml").read_text(encoding="utf-8").replace("sqlite:///hub.db", "sqlite:///profile.db")
    (work / "hub-profile.yaml").write_text(config, encoding="utf-8")
    command = hub_command()
    profiler = [sys.executable, "-m", "cProfile", "-o", "first.prof"]
    command = [*profiler, command[0]] if len(command) == 1 else [*profiler, "-c", command[-1]]
    print("profiling a first sync (cProfile; about twice as slow) ...", flush=True)
    source = source_state()
    started = time.perf_counter()
    subprocess.run([*command, "-c", "hub-profile.yaml", "sync", "--json"], cwd=work, check=True,
                   capture_output=True, env=child_env(work))
    wall = time.perf_counter() - started
    rows = json.loads((work / "data.json").read_text())["rows"]
    summarize_profile(work / "first.prof", out_text, top, wall=wall, source=source, rows=rows)


def summarize_profile(prof: Path, out_text: Path, top: int, *, wall: float, source: dict, rows: int) -> None:
    """Write the top functions of a cProfile file by cumulative time (hub's own code,
    then all code below the CLI), by own time, and the time spent in SQL."""
    import pstats

    stats = pstats.Stats(str(prof))
    # the whole process: the cumulative time of the outermost frame
    total = max(cumulative for *_, cumulative, _callers in stats.stats.values())  # type: ignore[attr-defined]
    repo = str(HERE.parent) + os.sep

    def short(file: str, line: int, name: str) -> str:
        if file == "~":  # a built-in
            return name
        if "site-packages" + os.sep in file:
            file = file.split("site-packages" + os.sep, 1)[1]
        elif file.startswith(repo):
            file = file[len(repo):]
        else:
            file = os.path.basename(file)
        return f"{file}:{line}({name})"

    entries = []
    for (file, line, name), (_cc, calls, own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        entries.append((short(file, line, name), file.startswith(repo), calls, own, cumulative))

    def table(title: str, items: list) -> str:
        lines = [f"\n## {title}\n", f"{'calls':>10} {'own s':>8} {'own %':>6} {'cum s':>8} {'cum %':>6}  function"]
        for label, _ours, calls, own, cumulative in items[:top]:
            lines.append(f"{calls:>10} {own:>8.2f} {own / total:>6.1%} {cumulative:>8.2f} "
                         f"{cumulative / total:>6.1%}  {label}")
        return "\n".join(lines) + "\n"

    # time inside SQLAlchemy's Connection.execute, by the function that called it
    sql: dict[str, list[float]] = {}
    for (file, line, name), (*_, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if name in ("execute", "exec_driver_sql") and file.endswith(os.path.join("sqlalchemy", "engine", "base.py")):
            for (c_file, c_line, c_name), (_cc, calls, _own, cumulative) in callers.items():
                slot = sql.setdefault(short(c_file, c_line, c_name), [0, 0.0])
                slot[0] += calls
                slot[1] += cumulative

    by_cumulative = sorted(entries, key=lambda e: -e[4])
    run_total = max((e[4] for e in entries if e[0].endswith("(_run)") and e[1]), default=total)
    text = (f"# cProfile of a first sync: {out_text.stem}\n"
            f"# wall {wall:.1f} s under the profiler; {total:.1f} s profiled (the whole process, imports "
            f"included; shares are of this); Sync._run {run_total:.1f} s\n"
            f"# hub source: {json.dumps(source)}; rows: {rows}\n")
    text += table(f"top {top} by cumulative time: hub and plugins code",
                  [e for e in by_cumulative if e[1] and "bench" + os.sep not in e[0]])
    text += table(f"top {top} by cumulative time: all code (the CLI frames above Sync._run left out)",
                  [e for e in by_cumulative if e[4] < run_total * 0.999])
    text += table(f"top {top} by own time", sorted(entries, key=lambda e: -e[3]))
    text += "\n## time in SQLAlchemy Connection.execute / exec_driver_sql, by caller\n\n"
    text += f"{'calls':>10} {'cum s':>8} {'cum %':>6}  caller\n"
    for caller, (calls, cumulative) in sorted(sql.items(), key=lambda item: -item[1][1]):
        text += f"{calls:>10} {cumulative:>8.2f} {cumulative / total:>6.1%}  {caller}\n"
    in_sqlite = [e for e in entries if e[0].startswith("<method") and "'sqlite3." in e[0]]
    text += "\n## time inside the sqlite3 module itself (own time of its methods)\n\n"
    text += f"{'calls':>10} {'own s':>8} {'own %':>6}  method\n"
    for label, _ours, calls, own, _cumulative in sorted(in_sqlite, key=lambda e: -e[3]):
        if own >= 0.005:
            text += f"{calls:>10} {own:>8.2f} {own / total:>6.1%}  {label}\n"
    own_sum = sum(e[3] for e in in_sqlite)
    text += f"{'':>10} {own_sum:>8.2f} {own_sum / total:>6.1%}  total\n"
    out_text.parent.mkdir(parents=True, exist_ok=True)
    out_text.write_text(text, encoding="utf-8")
    print(f"profile: {out_text} (raw profile: {prof}, kept with --keep or --workdir)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="total rows across both sources (default 100000)")
    parser.add_argument("--overlap", type=float, default=0.25,
                        help="share of all rows that are a second record of a person (default 0.25, at most 0.5)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--touch", type=float, default=0.01, help="share of rows changed for the touched rerun")
    parser.add_argument("--workdir", type=Path, help="work folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/sync.json, "
                                                    "sync-1m.json for 1M rows, sync-<rows>.json otherwise)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile a first sync (not part of the timings) -> bench/results/sync-profile*.txt")
    parser.add_argument("--profile-only", action="store_true", help="only the profile: no timings, no results file")
    args = parser.parse_args()
    if not 0 <= args.overlap <= 0.5:
        parser.error("--overlap must be between 0 and 0.5")

    if args.output is None:
        name = {100_000: "sync.json", 1_000_000: "sync-1m.json"}.get(args.rows, f"sync-{args.rows}.json")
        args.output = RESULTS / name
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hub-sync-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"work folder {work}; generating {args.rows} rows ...", flush=True)
        started = time.perf_counter()
        data = generate(work, args.rows, args.overlap, args.seed)
        print(f"generated in {time.perf_counter() - started:.1f} s: {data['sources']}, "
              f"{data['overlap_rows']} overlapping rows, {data['expected_contacts']} people", flush=True)
        data["file_mb"] = {name: round((work / spec[0]).stat().st_size / 2**20, 1) for name, spec in SOURCES.items()}
        (work / "data.json").write_text(json.dumps(data), encoding="utf-8")

        warm_up(work, args.seed)
        suffix = "" if args.rows == 100_000 else ("-1m" if args.rows == 1_000_000 else f"-{args.rows}")
        profile_file = RESULTS / f"sync-profile{suffix}.txt"
        if args.profile_only:
            profile_first_sync(work, profile_file, top=25)
            return
        fresh_store(work)
        print("first sync ...", flush=True)
        first = sync_run(work, "first")
        first["store"] = store_counts(work / "hub.db")
        print(f"  {first['wall_s']:.2f} s, {first['max_rss_mb']} MB", flush=True)
        print("no-op rerun ...", flush=True)
        noop = sync_run(work, "noop")
        print(f"  {noop['wall_s']:.2f} s, {noop['max_rss_mb']} MB", flush=True)
        touched_rows = touch(work, args.touch, args.seed)
        print(f"touched rerun ({touched_rows} rows changed) ...", flush=True)
        touched = sync_run(work, "touched")
        touched["rows_changed"] = touched_rows
        touched["store"] = store_counts(work / "hub.db")
        print(f"  {touched['wall_s']:.2f} s, {touched['max_rss_mb']} MB", flush=True)
        config = (work / "hub.yaml").read_text(encoding="utf-8")
        anchor = "  default_region: RU\n"
        if anchor not in config:  # else the re-read would measure a no-op rerun
            raise SystemExit("bench: hub.yaml has no normalize.default_region line to add a city alias after")
        (work / "hub.yaml").write_text(config.replace(anchor, anchor + "  city_aliases: {Бенчград: Бенчград}\n"),
                                       encoding="utf-8")
        print("re-read (every row read again, its values unchanged) ...", flush=True)
        reread = sync_run(work, "reread")
        print(f"  {reread['wall_s']:.2f} s, {reread['max_rss_mb']} MB", flush=True)

        print("floor (csv + sqlite executemany) ...", flush=True)
        (work / "floor.db").unlink(missing_ok=True)
        floor_run = measure([sys.executable, str(Path(__file__).resolve()), "--floor", str(work), "floor.db"],
                            work, "floor")
        floor_run.pop("stdout")
        print(f"  {floor_run['wall_s']:.2f} s, {floor_run['max_rss_mb']} MB", flush=True)

        peak = max(first["max_rss_mb"], noop["max_rss_mb"], touched["max_rss_mb"], reread["max_rss_mb"])
        metrics = {
            "records_per_s": round(args.rows / first["wall_s"]),
            "records_per_cpu_s": round(args.rows / (first["user_s"] + first["sys_s"])),
            "noop_share": round(noop["wall_s"] / first["wall_s"], 4),
            "touched_share": round(touched["wall_s"] / first["wall_s"], 4),
            "reread_share": round(reread["wall_s"] / first["wall_s"], 4),
            "peak_rss_mb": peak,
            "first_over_floor": round(first["wall_s"] / floor_run["wall_s"], 1),
            "rss_over_floor": round(first["max_rss_mb"] / floor_run["max_rss_mb"], 1),
            "contacts_ok": first["store"]["contacts"] == data["expected_contacts"],
        }
        result = {
            "benchmark": "sync",
            "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "machine": {**machine(), "load_average_at_start": load_at_start},
            "method": {
                "hub": " ".join(Path(c).name for c in hub_command()) + " -c hub.yaml sync --json",
                "store": "fresh SQLite file (WAL) for the first sync; the same store for the reruns",
                "timing": "wall clock of the child process, interpreter start-up and imports included; "
                          "user/sys CPU from getrusage; cpu_wait_pct from /proc/pressure/cpu",
                "memory": "ru_maxrss of the child alone (a wrapper process with that one child)",
                "bytecode": "cached by a warm-up sync (PYTHONPYCACHEPREFIX in the work folder)",
                "floor": "csv.reader of both files + sqlite3 executemany into one table per source "
                         "(TEXT columns, id primary key), one transaction, WAL, synchronous=NORMAL",
            },
            "data": data,
            "runs": {"first": first, "noop": noop, "touched": touched, "reread": reread, "floor": floor_run},
            "metrics": metrics,
            "targets": targets(args.rows, first, noop, peak),
        }
        report(result)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.output}")
        if args.profile:
            profile_first_sync(work, profile_file, top=25)
    finally:
        if args.keep or args.workdir:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(result: dict) -> None:
    runs, metrics, data = result["runs"], result["metrics"], result["data"]
    first, noop, touched, floor_run = runs["first"], runs["noop"], runs["touched"], runs["floor"]
    columns = ["rows", "first s", "rec/s", "no-op s", "no-op/first", "touched s", "peak RSS MB",
               "floor s", "floor RSS MB", "first/floor"]
    values = [
        f"{data['rows']:,}", f"{first['wall_s']:.2f}", f"{metrics['records_per_s']:,}", f"{noop['wall_s']:.2f}",
        f"{metrics['noop_share']:.1%}", f"{touched['wall_s']:.2f}", f"{metrics['peak_rss_mb']:.0f}",
        f"{floor_run['wall_s']:.2f}", f"{floor_run['max_rss_mb']:.0f}", f"{metrics['first_over_floor']:.1f}x",
    ]
    widths = [max(len(c), len(v)) for c, v in zip(columns, values)]
    print()
    print(" | ".join(c.rjust(w) for c, w in zip(columns, widths)))
    print("-+-".join("-" * w for w in widths))
    print(" | ".join(v.rjust(w) for v, w in zip(values, widths)))
    store = first["store"]
    print(f"\ncontacts {store['contacts']:,} (expected {data['expected_contacts']:,}: "
          f"{'ok' if metrics['contacts_ok'] else 'MISMATCH'}); "
          f"{store['source_records'] - store['contacts']:,} records joined an existing contact by e-mail/phone, "
          f"quarantined {store['quarantine']:,}, field changes {first['report']['changes']:,}")
    print(f"CPU (user+sys): first {first['user_s'] + first['sys_s']:.1f} s "
          f"({metrics['records_per_cpu_s']:,} records per CPU second), no-op {noop['user_s'] + noop['sys_s']:.1f} s, "
          f"floor {floor_run['user_s'] + floor_run['sys_s']:.1f} s")
    if "cpu_wait_pct" in first:
        print(f"machine busy: some task waited for a CPU {first['cpu_wait_pct']}% of the first sync's wall time "
              f"(/proc/pressure/cpu); wall times include that wait")
    print(f"touched: {touched['rows_changed']:,} rows changed, {touched['report']['unchanged']:,} skipped "
          f"by hash, {touched['report']['updated']:,} contacts updated")
    reread = runs.get("reread")
    if reread:
        print(f"re-read: {reread['wall_s']:.2f} s ({metrics['reread_share']:.1%} of the first sync), "
              f"{reread['report']['read']:,} rows read, {reread['report']['unchanged']:,} unchanged, "
              f"{reread['report']['changes']:,} changes")
    print()
    for target in result["targets"]:
        note = "" if target["result"] != "n/a" else (
            f" (target at {target['defined_at_rows']:,} rows; {target['result_at_this_size']} at this size)")
        print(f"{target['result']:>4}  {target['target']}: {target['value']} (wanted {target['wanted']}){note}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--floor":
        floor(Path(sys.argv[2]), Path(sys.argv[2]) / sys.argv[3])
    else:
        try:
            main()
        except ToolFailed as error:  # a measured sync failed: its output, no traceback
            raise SystemExit(str(error)) from None
