"""Identity resolution: each hard case has a pair that must merge and one that must not,
through a real sync; plus order independence, review, explain, merge and split."""

from __future__ import annotations

import csv
import io
import json
import random

import pytest
from sqlalchemy import create_engine, delete, func, insert, select, update

from hub.identity import compare, keys_version, profile
from hub.normalize import Normalizer
from hub.store.schema import changes, identifiers, store_settings

COLUMNS = ["id", "full_name", "first_name", "last_name", "phone", "email", "city", "birthday"]


def _write(project, name: str, rows: list[dict[str, str]]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in COLUMNS})
    project.write(f"{name}.csv", out.getvalue())


def _sync(project, sources: dict[str, list[dict[str, str]]]) -> dict[str, int]:
    """Sync the sources (id column ``id``, canonical column names); {"source:id": contact id}."""
    lines = ["connectors:"]
    for name, rows in sources.items():
        _write(project, name, rows)
        lines.append(f"  {name}: {{plugin: csv, path: {name}.csv, id_column: id}}")
    project.config("\n".join(lines) + "\n")
    result = project.hub("sync", "--json")
    assert result.exit_code == 0, result.output
    links = json.loads(project.hub("export", "links", "--format", "json").stdout)
    return {f"{row['source']}:{row['external_id']}": row["contact_id"] for row in links}


def _same(project, a: dict[str, str], b: dict[str, str]) -> bool:
    a, b = {**a, "id": "a"}, {**b, "id": "b"}
    links = _sync(project, {"s1": [a], "s2": [b]})
    return links["s1:a"] == links["s2:b"]


# (case, record a, record b): must be one contact
MUST_MERGE = [
    ("diminutive on a shared phone",
     {"full_name": "Романова Дарья Михайловна", "phone": "8 (968) 610-24-89"},
     {"first_name": "Даша", "phone": "968 610-24-89"}),
    ("transliterated name, same mailbox",
     {"full_name": "Романова Дарья Михайловна", "email": "d.romanova@mail.ru"},
     {"first_name": "Dasha", "last_name": "Romanova", "email": "D.Romanova@mail.ru "}),
    ("same local part at another provider, names agree through transliteration",
     {"full_name": "Морозова Юлия", "phone": "+7 912 345-67-89", "email": "yulia.morozova@yandex.ru"},
     {"first_name": "Yuliya", "last_name": "Morozova", "email": "yulia.morozova@gmail.com"}),
    ("e-mail domain typo",
     {"full_name": "Козлов Евгений", "email": "e.kozlov@gmial.com"},
     {"first_name": "Женя", "email": "e.kozlov@gmail.com"}),
    ("ё and е",
     {"full_name": "Фёдоров Алексей Игоревич", "phone": "9161112233"},
     {"full_name": "Федоров Алексей", "phone": "+7 916 111-22-33"}),
    ("name order and case",
     {"full_name": "ПЕТРОВА ЕЛЕНА ВИКТОРОВНА", "phone": "89031234567"},
     {"full_name": "елена петрова", "phone": "8 903 123-45-67"}),
    ("phone alone",
     {"full_name": "Новиков Павел", "phone": "8 (917) 222-33-44"},
     {"phone": "+7 917 222 33 44"}),
    ("one letter off in the surname, same phone",
     {"full_name": "Кузнецов Сергей", "phone": "8-925-555-12-34"},
     {"full_name": "Кузнецо Сергей", "phone": "89255551234"}),
    ("initials for the first name and patronymic",
     {"full_name": "Зотикин Вячеслав Вячеславович", "phone": "+7 921 842-61-64"},
     {"full_name": "зотикин в. в.", "phone": "79218426164"}),
    ("a lone first name on the person's phone and e-mail",
     {"full_name": "Olivia Thompson", "phone": "+7 916 555-01-02", "email": "olivia.t@gmail.com"},
     {"full_name": "Olivia", "phone": "89165550102", "email": "olivia.t@gmail.com"}),
    ("a lone unusual first name on the person's phone",
     {"full_name": "Кварацхелия Патимат", "phone": "+7 928 111-22-33"},
     {"full_name": "Патимат", "phone": "89281112233"}),
    ("a misspelt short form on the person's phone (Оьга ~ Оля)",
     {"full_name": "Валуйкова Оьга Ивановна", "phone": "+7 912 496-66-77"},
     {"first_name": "Оля", "phone": "89124966677"}),
    ("a foreign name written surname first, then the first name alone on the same phone",
     {"full_name": "Kaya Lucia", "phone": "+7 922 174-04-21"},
     {"first_name": "Lucia", "phone": "79221740421"}),
    ("a nameless mailbox named first.last, the same rare name elsewhere",
     {"email": "tatyana.belousova@gmail.com"},
     {"full_name": "Белоусова Татьяна", "phone": "+7 962 450-07-74"}),
    ("a first name that is also a surname read in the other order: no gender from it",
     {"full_name": "Яна Ким", "email": "yana.kim23599@mail.ru", "birthday": "10.09.2003"},
     {"last_name": "Ким", "first_name": "Яна", "middle_name": "Дмитриевна", "email": "yana.kim23599@mail.ru"}),
    ("a rare full name, one record with the mobile, the other with the home landline",
     {"full_name": "Нечайевская Ольга Игоревна", "phone": "+7 928 910-08-08"},
     {"full_name": "Ольга Нечайевская", "phone": "8 (812) 962-77-80"}),
    ("a rare name alone, one known by a phone, the other by a mailbox, one city",
     {"full_name": "Евдокимова Таисия", "phone": "+7 921 000-00-05", "city": "Калининград"},
     {"full_name": "Евдокимова Таисия", "email": "taisia.e@example.ru", "city": "Калининград"}),
    ("a rare name alone, one city written in Cyrillic and in Latin letters",
     {"full_name": "Евдокимова Таисия", "phone": "+7 921 000-00-05", "city": "Тверь"},
     {"full_name": "Евдокимова Таисия", "email": "taisia.e@example.ru", "city": "Tver"}),
    ("a first-name initial spelt in two Latin letters (Ю. = iu) is the initial of Юрий",
     {"full_name": "Иванов Ю. С.", "phone": "+7 916 123-45-67"},
     {"full_name": "Иванов Юрий Сергеевич", "phone": "89161234567"}),
    ("a first-name initial of the full form of the other's short name, on one phone (А. / Тёма)",
     {"full_name": "Клочин А. И.", "phone": "+7 908 025-92-55"},
     {"first_name": "Тёма", "phone": "89080259255"}),
    ("a first-name initial of the full form of a short name unlike it, on one phone (А. / Шура)",
     {"full_name": "Лобников А.", "phone": "+7 908 025-92-56"},
     {"full_name": "Шура Лобников", "phone": "89080259256"}),
    ("a foreign name written in two orders, one word with a typo, on one phone",
     {"full_name": "Garia Nora", "phone": "+7 986 473-66-92"},
     {"full_name": "Nora Garcia", "phone": "89864736692"}),
    ("same birthday typo tolerated with the same phone and name",
     {"full_name": "Лебедева Наталья", "phone": "8 (918) 333-44-55", "birthday": "17.01.1975"},
     {"full_name": "Лебедева Наталия", "phone": "8 (918) 333-44-55", "birthday": "17.01.1976"}),
    ("first and last name typed into each other's columns, one mailbox",
     {"first_name": "Neverova", "last_name": "Katya", "email": "tigr233@yandex.ru"},
     {"first_name": "екатерина", "email": "tigr233@yandex.ru"}),
    ("a female first name with a surname's ending in swapped columns, one mailbox",
     {"first_name": "Bogomolova", "last_name": "Ljubov", "email": "lbogomolova@mail.ru"},
     {"full_name": "БОГОМОЛОВА ЛЮБОВЬ", "email": "lbogomolova@mail.ru"}),
    ("patronymic written as an initial, one phone",
     {"full_name": "Дубинина Г.Ю.", "phone": "+7 931 612-37-57"},
     {"full_name": "Дубинина Галина Юрьевна", "phone": "89316123757"}),
    ("a typo in the patronymic, one phone and birthday",
     {"full_name": "Петрова Анна Алексевена", "phone": "+7 931 612-37-57", "birthday": "01.02.1980"},
     {"full_name": "Петрова Анна Алексеевна", "phone": "89316123757", "birthday": "01.02.1980"}),
    ("a surname ending in -ич read as a woman's surname, one phone",
     {"full_name": "Ангелина Гуревич", "phone": "+7 931 612-37-57"},
     {"full_name": "Гуревич Ангелина Кирилловна", "phone": "89316123757"}),
    ("a first name with a typo and a surname's ending, one phone",
     {"full_name": "Антоеина Чеботарева", "phone": "+7 931 612-37-57"},
     {"first_name": "Антонина", "phone": "89316123757"}),
    ("a first name with a typo that doubles a letter, against a short form, one phone",
     {"full_name": "Петрова Наалья Ильинична", "phone": "+7 912 664-61-36"},
     {"first_name": "наташа", "phone": "8(912)6646136"}),
    ("a four-letter first name with a typo, one phone",
     {"first_name": "Маат", "phone": "+7 912 664-61-36"},
     {"full_name": "Марат Сафин", "phone": "8(912)6646136"}),
    ("Ж written as J in a Latin diminutive, one phone",
     {"first_name": "Jenya", "phone": "+7 931 612-37-57"},
     {"full_name": "Громов Евгений", "phone": "89316123757"}),
]

# (case, record a, record b): must stay two contacts
MUST_NOT_MERGE = [
    ("two short first names of their own one letter apart, one phone",
     {"first_name": "Тая", "phone": "+7 495 123-45-67"},
     {"first_name": "Таня", "phone": "+7 495 123-45-67"}),
    ("father and son: patronymics of two known names, one phone",
     {"full_name": "Петров Иван Сергеевич", "phone": "+7 495 123-45-67"},
     {"full_name": "Петров Иван Иванович", "phone": "+7 495 123-45-67"}),
    ("a patronymic initial that is not the other's, one phone",
     {"full_name": "Дубинина Г. Ю.", "phone": "+7 495 123-45-67"},
     {"full_name": "Дубинина Галина Петровна", "phone": "+7 495 123-45-67"}),
    ("one word in common read in other roles, the other words differ, on one phone",
     {"full_name": "Яна Ким", "phone": "+7 495 123-45-67"},
     {"full_name": "Ким Иван", "phone": "+7 495 123-45-67"}),
    ("family on one home phone: different first names",
     {"full_name": "Иванов Пётр", "phone": "+7 495 123-45-67"},
     {"full_name": "Иванова Мария", "phone": "+7 495 123-45-67"}),
    ("male and female forms of one surname on one phone",
     {"full_name": "Иванов Саша", "phone": "+7 495 123-45-67"},
     {"full_name": "Иванова Саша", "phone": "+7 495 123-45-67"}),
    ("spouses sharing one mailbox",
     {"full_name": "Пётр Смирнов", "email": "smirnovy@mail.ru"},
     {"full_name": "Ольга Смирнова", "email": "smirnovy@mail.ru"}),
    ("mother and daughter: one name, different patronymics",
     {"full_name": "Иванова Мария Петровна", "phone": "+7 495 123-45-67"},
     {"full_name": "Иванова Мария Сергеевна", "phone": "+7 495 123-45-67"}),
    ("father and son: one name, different birthdays",
     {"full_name": "Петров Иван", "phone": "+7 495 765-43-21", "birthday": "01.01.1960"},
     {"full_name": "Петров Иван", "phone": "+7 495 765-43-21", "birthday": "02.03.1990"}),
    ("namesakes: full name only, different phones",
     {"full_name": "Иванов Александр Сергеевич", "phone": "+7 916 000-00-01", "city": "Москва"},
     {"full_name": "Иванов Александр Петрович", "phone": "+7 916 000-00-02", "city": "Москва"}),
    ("namesakes without patronymics, different phones",
     {"full_name": "Смирнова Ольга", "phone": "+7 921 000-00-01"},
     {"full_name": "Смирнова Ольга", "phone": "+7 921 000-00-02"}),
    ("a rare name alone, one known by a phone, the other by a mailbox, in two cities (asked in review)",
     {"full_name": "Евдокимова Таисия", "phone": "+7 921 000-00-05", "city": "Калининград"},
     {"full_name": "Евдокимова Таисия", "email": "taisia.e@example.ru", "city": "Владивосток"}),
    ("similar but different names on one phone (Мария / Марина)",
     {"first_name": "Мария", "phone": "+7 921 000-00-03"},
     {"first_name": "Марина", "phone": "+7 921 000-00-03"}),
    ("a name missing from the tables two letters from the other on a shared phone",
     {"first_name": "Оксана", "phone": "+7 921 000-00-05"},
     {"first_name": "Осна", "phone": "+7 921 000-00-05"}),
    ("a nameless mailbox named first.last against another first name",
     {"email": "tatyana.belousova@gmail.com"},
     {"full_name": "Белоусова Ольга", "phone": "+7 962 450-07-74"}),
    ("a first-name initial that is not the other's on a shared phone (father and son)",
     {"full_name": "Иванов А. С.", "phone": "+7 495 123-45-67"},
     {"full_name": "Иванов Борис", "phone": "+7 495 123-45-67"}),
    ("an initial that only some full forms of a short name start with (М. / Слава), one phone",
     {"full_name": "Петров М.", "phone": "+7 495 123-45-67"},
     {"full_name": "Петров Слава", "phone": "+7 495 123-45-67"}),
    ("an initial that no full form of a short name starts with (И. / Гоша), one phone",
     {"full_name": "Иванов И. П.", "phone": "+7 495 123-45-67"},
     {"full_name": "Гоша Иванов", "phone": "+7 495 123-45-67"}),
    ("two first names of their own read in swapped order (Martin / Martina), one phone",
     {"full_name": "Thomas Martin", "phone": "+7 495 123-45-67"},
     {"full_name": "Martina Thomas", "phone": "+7 495 123-45-67"}),
    ("a diminutive of another name on a shared phone (Саша / Женя)",
     {"first_name": "Саша", "phone": "+7 921 000-00-04"},
     {"first_name": "Женя", "phone": "+7 921 000-00-04"}),
]


@pytest.mark.parametrize("case,a,b", MUST_MERGE, ids=[c[0] for c in MUST_MERGE])
def test_must_merge(project, case, a, b):
    assert _same(project, a, b), case


@pytest.mark.parametrize("case,a,b", MUST_NOT_MERGE, ids=[c[0] for c in MUST_NOT_MERGE])
def test_must_not_merge(project, case, a, b):
    assert not _same(project, a, b), case


def test_a_rare_name_does_not_join_two_people_whose_other_records_disagree(project):
    """«Саша Лобников» with only a mailbox and «Шура Лобников» with only a phone agree on
    a rare name, but each is one of two namesakes whose other records hold another phone
    and another mailbox: the sides as a whole contradict the name."""
    links = _sync(project, {
        "sheet": [
            {"id": "1", "full_name": "Лобников Александр", "phone": "+7 951 718-59-70",
             "email": "lobnikov.a861@gmail.com", "city": "Новосибирск"},
            {"id": "2", "full_name": "Александр Денисович Лобников", "phone": "+7 977 751-86-00",
             "email": "lobnikov.a954@list.ru", "city": "Санкт-Петербург"},
        ],
        "forms": [
            {"id": "f1", "full_name": "Лобников Саша", "email": "lobnikov.a861@gmail.com"},
            {"id": "f2", "full_name": "Шура Лобников", "phone": "8 977 751 86 00"},
        ],
    })
    assert links["forms:f1"] == links["sheet:1"]
    assert links["forms:f2"] == links["sheet:2"]
    assert links["sheet:1"] != links["sheet:2"]


def test_a_new_record_of_a_stored_person_does_not_count_as_a_namesake(project):
    """A form with the stored person's mailbox is that person, not a second holder of the
    name: the rare name stays unique and joins the form that brings a phone."""
    links = _sync(project, {
        "sheet": [{"id": "1", "full_name": "Якушина Виктория Ильинична", "email": "yakushina.v387@mail.ru"}],
        "forms": [
            {"id": "f1", "first_name": "Виктория", "email": "yakushina.v387@mail.ru"},
            {"id": "f2", "full_name": "Якушина Виктория", "phone": "+7 988 650 96 64"},
        ],
    })
    assert links["forms:f1"] == links["sheet:1"] == links["forms:f2"]


def test_a_bridging_record_joins_only_the_compatible_relative(project):
    """A form "Даша, phone" on the family phone joins the daughter, not the mother."""
    links = _sync(project, {
        "sheet": [
            {"id": "1", "full_name": "Романова Дарья", "phone": "+7 968 610-24-89"},
            {"id": "2", "full_name": "Романова Ирина", "phone": "+7 968 610-24-89"},
        ],
        "forms": [{"id": "f1", "first_name": "Даша", "phone": "89686102489"}],
    })
    assert links["forms:f1"] == links["sheet:1"] != links["sheet:2"]


def test_a_nameless_row_on_a_shared_mailbox_joins_whom_the_address_names(project):
    """A couple shares «a.bulycheva@»; a mailing row with that address and no name joins
    Алена, whose initial the address starts with, not Виталий; a first name written out
    («shamil_omar38@») points the same way. Neither address vetoes anyone."""
    links = _sync(project, {
        "sheet": [
            {"id": "1", "full_name": "Булычев Виталий Львович", "email": "a.bulycheva@outlook.com"},
            {"id": "2", "full_name": "Алена Булычева", "email": "a.bulycheva@outlook.com"},
            {"id": "3", "full_name": "Омарова Нино", "email": "shamil_omar38@bk.ru"},
            {"id": "4", "full_name": "Омаров Шамиль", "email": "shamil_omar38@bk.ru"},
            {"id": "5", "full_name": "Тихонова Ольга", "email": "m.tikhonova@mail.ru"},
        ],
        "mailing": [
            {"id": "a.bulycheva@outlook.com", "email": "a.bulycheva@outlook.com"},
            {"id": "shamil_omar38@bk.ru", "email": "shamil_omar38@bk.ru"},
            {"id": "m.tikhonova@mail.ru", "email": "m.tikhonova@mail.ru"},
        ],
    })
    assert links["sheet:1"] != links["sheet:2"] and links["sheet:3"] != links["sheet:4"]
    assert links["mailing:a.bulycheva@outlook.com"] == links["sheet:2"]
    assert links["mailing:shamil_omar38@bk.ru"] == links["sheet:4"]
    assert links["mailing:m.tikhonova@mail.ru"] == links["sheet:5"]  # the only holder, whatever the initial


PEOPLE = [
    {"full_name": "Романова Дарья Михайловна", "phone": "8 (968) 610-24-89", "email": "d.romanova@mail.ru"},
    {"first_name": "Dasha", "last_name": "Romanova", "email": "d.romanova@mail.ru"},
    {"first_name": "Даша", "phone": "968 610-24-89"},
    {"full_name": "Романова Ирина", "phone": "8 (968) 610-24-89"},
    {"full_name": "Иванов Александр Сергеевич", "phone": "+7 916 123 45 67"},
    {"first_name": "Саша", "last_name": "Иванов", "phone": "79161234567"},
    {"first_name": "Aleksandr", "last_name": "Ivanov", "email": "a.ivanov@yandex.ru", "phone": "+79161234567"},
    {"full_name": "Иванова Мария", "phone": "+7 916 123 45 67"},
    {"full_name": "Смирнова Ольга", "phone": "+7 921 765-43-21"},
    {"full_name": "Смирнова Ольга", "phone": "+7 921 000-00-09"},
    {"first_name": "Оля", "email": "olga.s@mail.ru", "phone": "+7 921 765-43-21"},
]


def _partition(links: dict[str, int]) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for ref, contact in links.items():
        groups.setdefault(contact, set()).add(ref.split(":", 1)[1])
    return {frozenset(g) for g in groups.values()}


def test_shuffled_input_gives_the_same_clusters(tmp_path):
    from tests.conftest import Project

    partitions = []
    for seed in range(4):
        rows = [{**p, "id": f"p{i}"} for i, p in enumerate(PEOPLE)]
        random.Random(seed).shuffle(rows)
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        partitions.append(_partition(_sync(Project(folder), {"all": rows})))
    assert all(p == partitions[0] for p in partitions)
    by_id = {ref for group in partitions[0] for ref in group}
    assert len(by_id) == len(PEOPLE)
    groups = {ref: group for group in partitions[0] for ref in group}
    assert groups["p0"] == {"p0", "p1", "p2"}  # Дарья: sheet, mailing, form
    assert groups["p4"] == {"p4", "p5", "p6"}  # Александр in three spellings
    assert groups["p3"] == {"p3"} and groups["p7"] == {"p7"}  # relatives on the family phones
    assert groups["p8"] == {"p8", "p10"} and groups["p9"] == {"p9"}  # namesake apart


def test_the_result_does_not_depend_on_which_source_comes_first(tmp_path):
    from tests.conftest import Project

    rows = [{**p, "id": f"p{i}"} for i, p in enumerate(PEOPLE)]
    half = len(rows) // 2
    one = _partition(_sync(Project(tmp_path / "a"), {"x": rows[:half], "y": rows[half:]}))
    (tmp_path / "b").mkdir()
    two = _partition(_sync(Project(tmp_path / "b"), {"y": rows[half:], "x": rows[:half]}))
    assert one == two


NAMED = {
    "sheet": [
        {"id": "1", "full_name": "Соколов Сергей Петрович", "phone": "+7 912 100-00-01"},
        {"id": "2", "full_name": "Соколов Сергей", "phone": "+7 912 100-00-02"},  # a namesake
        {"id": "3", "full_name": "Лесков Дмитрий Ильич", "phone": "+7 912 100-00-03"},
    ],
    "mailing": [
        {"id": "m1", "first_name": "Sergey", "last_name": "Sokolov", "email": "sokol@example.ru"},
        {"id": "m2", "first_name": "Dmitry", "last_name": "Leskov", "email": "leskov.d@example.ru"},
        {"id": "m3", "first_name": "Анна", "last_name": "Фомина", "email": "fomina@example.ru"},
    ],
    "forms": [
        {"id": "f1", "full_name": "Дима Лесков", "city": "Москва"},
        {"id": "f2", "full_name": "Фомина Анна", "phone": "+7 912 100-00-04"},
        {"id": "f3", "full_name": "Петров Иван", "phone": "+7 912 100-00-05"},
    ],
}


def test_joins_on_a_name_alone_do_not_depend_on_batches_or_source_order(tmp_path, monkeypatch):
    """A name alone joins its holders when all of them can be one person, whichever
    batch or source each came in: Лесков in three spellings, with a phone, a mailbox
    and neither, is one contact. Two holders with different phones are two people, so a
    third record with only that name joins neither (it waits in review), also when it
    comes before the second namesake does."""
    from tests.conftest import Project

    monkeypatch.setattr("hub.sync.BATCH_SIZE", 2)
    monkeypatch.setenv("HUB_WORKERS", "0")
    partitions = []
    for seed in range(6):
        rng = random.Random(seed)
        names = list(NAMED)
        rng.shuffle(names)
        sources = {name: rng.sample(NAMED[name], len(NAMED[name])) for name in names}
        project = Project(tmp_path / f"run{seed}")
        project.root.mkdir()
        links = _sync(project, sources)
        partitions.append(_partition(links))
        reviews = json.loads(project.hub("review", "--json").stdout)
        assert reviews, "the mailbox-only Sokolov could be either namesake: asked in review"
    assert all(p == partitions[0] for p in partitions)
    groups = {ref: group for group in partitions[0] for ref in group}
    assert groups["3"] == {"3", "m2", "f1"}  # Лесков: three spellings, nothing disagrees
    assert groups["m3"] == {"m3", "f2"}  # Анна Фомина: a mailbox and a phone
    assert groups["m1"] == {"m1"} and groups["1"] == {"1"} and groups["2"] == {"2"}


def test_a_record_meets_a_group_of_its_batch_through_all_its_records(tmp_path, monkeypatch):
    """«Петров Саша» on a home phone is found through the name of «Петров Шура», whose
    phone is also «Aleksandr»'s, who has the same birthday as Саша. Met as a stored
    contact (an earlier batch), the group is compared through all its records, and the
    birthday joins Саша; met in the same batch it was compared through «Петров Шура»
    alone, and with a namesake in Тверь the name could not decide: one batch and
    batches of two now put Саша in the same place."""
    from tests.conftest import Project

    monkeypatch.setenv("HUB_WORKERS", "0")
    sources = {
        "a": [{"id": "a0", "full_name": "Петров Саня", "phone": "+7 916 036-68-53", "city": "Тверь"}],
        "b": [
            {"id": "b1", "full_name": "Петров Шура Сергеевич", "phone": "+7 916 303-40-24", "email": "b8@example.ru",
             "city": "Москва"},
            {"id": "b3", "full_name": "Aleksandr", "phone": "+7 916 303-40-24", "birthday": "13.06.1991"},
            {"id": "b6", "full_name": "Петров Саша", "phone": "+7 495 778-63-96", "city": "Москва",
             "birthday": "13.06.1991"},
        ],
    }
    partitions = []
    for batch in (2000, 2):
        monkeypatch.setattr("hub.sync.BATCH_SIZE", batch)
        project = Project(tmp_path / f"batch{batch}")
        project.root.mkdir()
        partitions.append(_partition(_sync(project, sources)))
    assert partitions[0] == partitions[1] == {frozenset({"a0"}), frozenset({"b1", "b3", "b6"})}


def test_a_review_pair_is_weighed_again_when_a_later_batch_grows_a_side(tmp_path, monkeypatch):
    """Two Даша Гаврилова, one with a mobile, one with a landline and a mailbox: a
    question for review while nothing else is known. A later record puts the first one's
    contact together with a mailing list address that is not the second one's mailbox,
    and then they differ in mailbox too: one batch holding all the records does not ask.
    Neither do batches of two, nor the last row appended and synced apart."""
    from tests.conftest import Project

    monkeypatch.setenv("HUB_WORKERS", "0")
    sources = {
        "mailing": [{"id": "m1", "full_name": "Дарья Гаврилова", "email": "darya_g@example.ru"}],
        "forms": [
            {"id": "1", "full_name": "Гаврилова Даша", "phone": "+7 962 954-52-12"},
            {"id": "2", "full_name": "Гаврилова Даша", "phone": "8 (383) 703-63-96", "email": "dasha.g@example.com"},
            {"id": "3", "full_name": "Даша", "phone": "89629545212", "email": "darya_g@example.ru"},
        ],
    }

    def run(folder: str, batch: int, steps: list[dict[str, list[dict[str, str]]]]):
        monkeypatch.setattr("hub.sync.BATCH_SIZE", batch)
        project = Project(tmp_path / folder)
        project.root.mkdir()
        for step in steps:
            links = _sync(project, step)
        return _partition(links), json.loads(project.hub("review", "--json").stdout)

    whole = run("whole", 2000, [sources])
    assert whole == ({frozenset({"m1", "1", "3"}), frozenset({"2"})}, [])
    assert run("small", 2, [sources]) == whole
    assert run("appended", 2000, [{**sources, "forms": sources["forms"][:2]}, sources]) == whole


def test_name_joins_wait_for_a_run_that_reads_every_source(project):
    """A source that fails to read may hold what tells namesakes apart: the joins on a
    name alone wait until a run reads every source, and then come out as if nothing had
    failed. Here the SMS list gives the second Вера a birthday that is not the first's."""
    sheet = [
        {"id": "1", "full_name": "Клененко Вера", "birthday": "25.08.1960", "city": "Калининград"},
        {"id": "2", "full_name": "Клененко Вера Романовна", "phone": "+7 921 727-98-86", "city": "Калининград"},
    ]
    sms = [{"id": "s1", "full_name": "Вера Клененко", "phone": "89217279886", "birthday": "01.02.2000"}]
    _write(project, "sheet", sheet)
    project.config("connectors:\n  sheet: {plugin: csv, path: sheet.csv, id_column: id}\n"
                   "  sms: {plugin: csv, path: sms.csv, id_column: id}\n")
    failed = project.hub("sync", "--json")
    assert failed.exit_code != 0 and "sms" in failed.output  # sms.csv is not there yet
    links = {f"{r['source']}:{r['external_id']}": r["contact_id"]
             for r in json.loads(project.hub("export", "links", "--format", "json").stdout)}
    assert links["sheet:1"] != links["sheet:2"], "joined on the name before the SMS list was read"
    only_sheet = project.hub("sync", "sheet")  # a run of the other source alone: sms is still unread
    assert only_sheet.exit_code == 0 and "wait until sms is read" in only_sheet.output
    links = {f"{r['source']}:{r['external_id']}": r["contact_id"]
             for r in json.loads(project.hub("export", "links", "--format", "json").stdout)}
    assert links["sheet:1"] != links["sheet:2"], "joined on the name in a run that did not read the SMS list"
    _write(project, "sms", sms)
    links = _sync(project, {"sheet": sheet, "sms": sms})
    assert links["sms:s1"] == links["sheet:2"] != links["sheet:1"]
    assert _sync(project, {"sheet": sheet, "sms": sms}) == links


def test_name_joins_wait_for_a_source_never_read(project):
    """`hub sync forms` before the sheet was ever read: the sheet may hold two namesakes
    with different phones, so the forms' two «Петров Иван» are not joined on the name
    yet; once every source is read they come out as a full sync makes them."""
    sheet = [
        {"id": "1", "full_name": "Петров Иван", "phone": "+7 916 111-00-01"},
        {"id": "2", "full_name": "Петров Иван", "phone": "+7 916 111-00-02"},
    ]
    forms = [
        {"id": "f1", "full_name": "Петров Иван", "email": "ivan.petrov@mail.ru"},
        {"id": "f2", "full_name": "Петров Иван", "city": "Казань"},
    ]
    from tests.conftest import Project

    (project.root / "all").mkdir()
    reference = _sync(Project(project.root / "all"), {"sheet": sheet, "forms": forms})
    _write(project, "sheet", sheet)
    _write(project, "forms", forms)
    project.config("connectors:\n  sheet: {plugin: csv, path: sheet.csv, id_column: id}\n"
                   "  forms: {plugin: csv, path: forms.csv, id_column: id}\n")
    only_forms = project.hub("sync", "forms")
    assert only_forms.exit_code == 0 and "wait until sheet is read" in only_forms.output
    links = {f"{r['source']}:{r['external_id']}": r["contact_id"]
             for r in json.loads(project.hub("export", "links", "--format", "json").stdout)}
    assert links["forms:f1"] != links["forms:f2"], "joined on the name before the sheet was ever read"
    assert _partition(_sync(project, {"sheet": sheet, "forms": forms})) == _partition(reference)


def test_a_source_read_with_nothing_to_read_holds_no_name_join_back(project):
    """A form inbox that has had no delivery is read (it has nothing) and saves no cursor:
    it is read all the same, and the rare name joins its two holders."""
    project.write("crm.csv", "id,full_name,phone,city\n1,Евдокимова Таисия,+7 921 000-00-05,Калининград\n")
    project.write("mail.csv", "id,full_name,email,city\nm1,Евдокимова Таисия,taisia.e@example.ru,Калининград\n")
    project.config("connectors:\n  crm: {plugin: csv, path: crm.csv, id_column: id}\n"
                   "  mail: {plugin: csv, path: mail.csv, id_column: id}\n"
                   "  forms: {plugin: webhook, format: form, token: t0ken-5ecret}\n")
    result = project.hub("sync", "--json")
    assert result.exit_code == 0 and "wait until" not in result.output, result.output
    links = {f"{r['source']}:{r['external_id']}": r["contact_id"]
             for r in json.loads(project.hub("export", "links", "--format", "json").stdout)}
    assert links["crm:1"] == links["mail:m1"]
    assert project.hub("sync", "--dry-run").exit_code == 0  # the inbox read takes no write lock


# --- scoring is explainable -------------------------------------------------------------


def _profile(**values):
    normalized, _ = Normalizer().normalize(values)
    return profile(normalized)


def test_evidence_names_each_field_and_sums_to_the_weight():
    a = _profile(full_name="Романова Дарья Михайловна", phone="8 (968) 610-24-89", city="Мск")
    b = _profile(first_name="Даша", phone="968 610-24-89", city="Москва")
    result = compare(a, b)
    fields = {e.field: e.level for e in result.evidence}
    assert fields == {"phone": "same", "first_name": "variant", "city": "same"}
    from hub.identity.compare import PRIOR

    assert result.weight == pytest.approx(PRIOR + sum(e.weight for e in result.evidence))
    assert result.veto is None and result.probability > 0.99


def test_a_city_in_latin_letters_is_the_same_city():
    """The aliases know the big cities' spellings; any other city written in Latin
    letters is still the one written in Cyrillic."""
    a = _profile(full_name="Евдокимова Таисия", phone="+7 921 000-00-05", city="Тверь")
    b = _profile(full_name="Евдокимова Таисия", phone="+7 921 000-00-05", city="Tver")
    assert {e.field: e.level for e in compare(a, b).evidence}["city"] == "same"
    c = _profile(full_name="Евдокимова Таисия", phone="+7 921 000-00-05", city="Тула")
    assert {e.field: e.level for e in compare(a, c).evidence}["city"] == "different"


def test_a_veto_says_why():
    a = _profile(full_name="Иванов Пётр", phone="+7 495 123-45-67")
    b = _profile(full_name="Иванова Мария", phone="+7 495 123-45-67")
    result = compare(a, b)
    assert result.probability == 0.0
    assert result.veto and "first names" in result.veto


def test_a_sure_veto_is_one_the_full_comparison_finds():
    """The resolver skips weighing a pair with a sure veto (two patronymics that differ):
    the veto must be one compare() finds too, on every pair, and none where it finds none
    (a typo in a patronymic, an initial, names written in swapped order)."""
    from hub.identity.compare import sure_veto

    names = ["Иванов Пётр Сергеевич", "Иванов Пётр Сергееевич", "Иванов Пётр Андреевич", "Иванов Пётр С.",
             "Иванов Пётр", "Пётр Иванов Андреевич", "Иванова Мария Петровна", "Иванова Мария Павловна",
             "Miller David Johnovich", "David Miller Petrovich", "Иванов Петр Сергеевич"]
    profiles = [_profile(full_name=name, phone=phone) for name in names
                for phone in ("+7 495 123-45-67", "+7 916 000-00-00")]
    # the split guessed the roles differently: compare() reads them as one name, no veto
    swapped = [_profile(first_name="Ярослав", last_name="Виктор", middle_name="Петрович"),
               _profile(first_name="Виктор", last_name="Ярослав", middle_name="Андреевич")]
    assert sure_veto(*swapped) is None and compare(*swapped).veto is None
    profiles += swapped
    vetoed = 0
    for a in profiles:
        for b in profiles:
            reason = sure_veto(a, b)
            if reason:
                vetoed += 1
                assert compare(a, b).veto, (a, b)
                assert "patronymics" in reason
    one = {name: profiles[2 * i] for i, name in enumerate(names)}
    sergeevich = one["Иванов Пётр Сергеевич"]
    assert sure_veto(sergeevich, one["Иванов Пётр Андреевич"]) is not None
    assert sure_veto(sergeevich, one["Иванов Пётр Сергееевич"]) is None  # a typo
    assert sure_veto(sergeevich, one["Иванов Пётр С."]) is None  # an initial
    assert sure_veto(sergeevich, one["Иванов Пётр"]) is None  # none known
    assert sure_veto(sergeevich, one["Иванов Петр Сергеевич"]) is None  # ё and е
    assert vetoed > 0


# --- review, explain, merge, split through the CLI ---------------------------------------


@pytest.fixture
def namesakes(store_project):
    """Two Кузнецов Сергей in Moscow with different phones: a pair for review."""
    rows = [
        {"id": "1", "full_name": "Кузнецов Сергей", "phone": "+7 925 555-12-34", "city": "Москва"},
        {"id": "2", "full_name": "Кузнецов Сергей", "phone": "+7 926 000-11-22", "city": "Москва"},
        {"id": "3", "full_name": "Орлова Анна", "phone": "+7 999 000-00-01", "email": "anna@orlova.ru"},
        {"id": "4", "first_name": "Аня", "email": "anna@orlova.ru"},
    ]
    _write(store_project, "people", rows)
    store_project.config("connectors:\n  people: {plugin: csv, path: people.csv, id_column: id}\n"
                         "  out: {plugin: csv, role: destination, path: out.csv}\n")
    assert store_project.hub("sync").exit_code == 0
    return store_project


def _links(project) -> dict[str, int]:
    rows = json.loads(project.hub("export", "links", "--format", "json").stdout)
    return {row["external_id"]: row["contact_id"] for row in rows if row["source"] == "people"}


def test_review_lists_the_gray_zone_and_remembers_a_rejection(namesakes):
    links = _links(namesakes)
    assert links["1"] != links["2"]
    pending = json.loads(namesakes.hub("review", "--json").stdout)
    assert len(pending) == 1
    pair = pending[0]
    assert {pair["a"], pair["b"]} == {links["1"], links["2"]}
    assert pair["probability"] >= 0.7  # likely, but two phones and no other proof: a person decides
    assert {e["field"] for e in pair["evidence"]} >= {"first_name", "last_name", "phone"}

    result = namesakes.hub("review", "reject", str(pair["id"]), "--actor", "olga")
    assert result.exit_code == 0, result.output
    assert json.loads(namesakes.hub("review", "--json").stdout) == []
    # a changed record is resolved again: the decision holds, nothing is asked again
    text = (namesakes.root / "people.csv").read_text()
    namesakes.write("people.csv", text.replace("+7 926 000-11-22", "+7 926 000-11-22; +7 926 000-11-23"))
    assert namesakes.hub("sync").exit_code == 0
    assert json.loads(namesakes.hub("review", "--json").stdout) == []
    assert _links(namesakes)["1"] != _links(namesakes)["2"]
    again = namesakes.hub("review", "reject", str(pair["id"]))
    assert again.exit_code == 2 and "decided already" in again.output


def test_review_leaves_out_a_pair_whose_contact_is_gone_until_it_comes_back(namesakes):
    """A namesake's row is deleted from the sheet: his contact goes, and hub review does not
    ask about a pair it could not merge. The row comes back: so does the pair."""
    links = _links(namesakes)
    path = namesakes.root / "people.csv"
    text = path.read_text()
    row = next(line for line in text.splitlines() if line.startswith("2,"))
    namesakes.write("people.csv", text.replace(row + "\n", ""))
    assert namesakes.hub("sync", "--allow-mass-delete").exit_code == 0
    assert json.loads(namesakes.hub("show", str(links["2"]), "--json").stdout)["deleted"]
    assert json.loads(namesakes.hub("review", "--json").stdout) == []
    namesakes.write("people.csv", text)
    assert namesakes.hub("sync").exit_code == 0
    pending = json.loads(namesakes.hub("review", "--json").stdout)
    assert [{p["a"], p["b"]} for p in pending] == [{links["1"], links["2"]}]


def test_review_accept_merges_and_is_logged(namesakes):
    pair = json.loads(namesakes.hub("review", "--json").stdout)[0]
    result = namesakes.hub("review", "accept", str(pair["id"]), "--json")
    assert result.exit_code == 0, result.output
    links = _links(namesakes)
    assert links["1"] == links["2"] == min(pair["a"], pair["b"])
    merged = json.loads(namesakes.hub("log", "--field", "merged_into", "--json").stdout)
    assert [(m["contact_id"], m["reason"]) for m in merged] == [(max(pair["a"], pair["b"]), "merge")]


def test_review_decides_several_pairs_at_once_or_none(store_project):
    """Three Кузнецов Сергей in Moscow with three phones: three pairs to review. A wrong id
    among those given decides nothing; accepting two pairs that share a contact merges all
    three, though the first merge moved the second pair to the survivor."""
    rows = [{"id": str(i), "full_name": "Кузнецов Сергей", "phone": f"+7 92{i} 555-12-34", "city": "Москва"}
            for i in (1, 2, 3)]
    _write(store_project, "people", rows)
    store_project.config("connectors:\n  people: {plugin: csv, path: people.csv, id_column: id}\n")
    assert store_project.hub("sync").exit_code == 0
    links = _links(store_project)
    pairs = {frozenset((p["a"], p["b"])): p["id"] for p in json.loads(store_project.hub("review", "--json").stdout)}
    first = pairs[frozenset((links["1"], links["2"]))]
    second = pairs[frozenset((links["2"], links["3"]))]

    result = store_project.hub("review", "accept", str(first), "999")
    assert result.exit_code == 2 and "no review pair 999" in result.output
    assert _links(store_project) == links
    assert len(json.loads(store_project.hub("runs", "--json").stdout)) == 1

    result = store_project.hub("review", "accept", str(first), str(second), "--json")
    assert result.exit_code == 0, result.output
    assert [r["decision"] for r in json.loads(result.stdout)] == ["accepted", "accepted"]
    assert set(_links(store_project).values()) == {links["1"]}
    assert json.loads(store_project.hub("review", "--json").stdout) == []


def test_review_and_explain_are_audited(namesakes):
    namesakes.hub("review", "--actor", "olga")
    namesakes.hub("explain", "people:3", "people:4", "--actor", "ivan")
    audit = json.loads(namesakes.hub("audit", "--json").stdout)
    seen = {(row["actor"], row["action"]) for row in audit}
    assert {("olga", "review"), ("ivan", "explain")} <= seen


def test_explain_breaks_the_score_down(namesakes):
    links = _links(namesakes)
    data = json.loads(namesakes.hub("explain", "people:3", "people:4", "--json").stdout)
    assert data["verdict"] == "merge"
    assert {e["field"]: e["level"] for e in data["evidence"]} == {"email": "same", "first_name": "variant"}
    text = namesakes.hub("explain", str(links["1"]), str(links["2"])).output
    assert "phone" in text and "different" in text and "review" in text


def test_explain_names_a_decision_that_keeps_two_contacts_apart(namesakes):
    """Аня's record is split off Орлова Анна's contact: no sync merges them again, and
    explain says so, naming the decision, rather than «merge» by the score alone."""
    links = _links(namesakes)
    assert json.loads(namesakes.hub("explain", "people:3", "people:4", "--json").stdout)["verdict"] == "merge"
    split = json.loads(namesakes.hub("split", str(links["3"]), "--record", "people:4", "--json",
                                     "--actor", "olga").stdout)
    for refs in (("people:3", "people:4"), (str(links["3"]), str(split["split_off"]))):
        data = json.loads(namesakes.hub("explain", *refs, "--json").stdout)
        assert data["verdict"] == "different people" and data["probability"] == 0
        assert f"olga in run {split['run_id']}" in data["veto"]
    # a merge undoes the split, and the decision with it
    assert namesakes.hub("merge", str(links["3"]), str(split["split_off"])).exit_code == 0
    assert json.loads(namesakes.hub("explain", "people:3", "people:4", "--json").stdout)["verdict"] == "merge"


def test_explain_weighs_a_custom_value_by_how_common_it_is(project):
    """A value most records share (a mailing list's status) says little about who is who:
    explain weighs it as a sync does, not as a rare value."""
    rows = ["id,name,email,status,card"] + [f"{i},Человек {i},p{i}@example.ru,subscribed,{100000 + i}"
                                            for i in range(40)]
    rows += ["a,Кузнецов Сергей,s.kuznetsov@mail.ru,subscribed,555001",
             "b,Кузнецов Сергей,kuznetsov.s@yandex.ru,subscribed,555001"]
    project.write("list.csv", "\n".join(rows) + "\n")
    project.write("mappings/list.yaml", "fields:\n  full_name: {from: name, transforms: [split_name]}\n"
                  "  email: {from: email, transforms: [email]}\n  x_status: status\n  x_card: card\n")
    project.config("connectors:\n  list: {plugin: csv, path: list.csv, id_column: id, mapping: list}\n")
    assert project.hub("sync").exit_code == 0
    data = json.loads(project.hub("explain", "list:a", "list:b", "--json").stdout)
    weights = {e["field"]: e["weight"] for e in data["evidence"]}
    assert weights["x_status"] < 1.0  # 42 of 42 records are subscribed
    assert weights["x_card"] >= 3.0  # a card number only these two hold


def test_merge_then_split_restores_both_contacts(namesakes):
    links = _links(namesakes)
    before = {cid: json.loads(namesakes.hub("show", str(cid), "--json").stdout)["fields"]
              for cid in (links["1"], links["2"])}
    merged = namesakes.hub("merge", str(links["1"]), str(links["2"]), "--json")
    assert merged.exit_code == 0, merged.output
    after = _links(namesakes)
    assert after["1"] == after["2"]
    survivor = json.loads(merged.stdout)["contact"]
    fields = json.loads(namesakes.hub("show", str(survivor), "--json").stdout)["fields"]
    assert set(fields["phones"]) == {"+79255551234", "+79260001122"}

    split = namesakes.hub("split", str(survivor), "--json")
    assert split.exit_code == 0, split.output
    restored = _links(namesakes)
    assert restored == links
    for cid, values in before.items():
        assert json.loads(namesakes.hub("show", str(cid), "--json").stdout)["fields"] == values
    log = json.loads(namesakes.hub("log", "--json", "-n", "500").stdout)
    reasons = {(r["field"], r["reason"]) for r in log}
    assert {("merged_into", "merge"), ("record", "merge"), ("merged_into", "split"), ("record", "split")} <= reasons
    # the next sync does not merge them again, and the merged-away one is back in the destination
    assert namesakes.hub("sync").exit_code == 0
    assert _links(namesakes) == links
    out = list(csv.DictReader((namesakes.root / "out.csv").open(encoding="utf-8-sig")))
    assert len(out) == 3


def test_a_merge_split_again_gives_the_review_decisions_back(store_project):
    """Two Кузнецов Сергей were told apart in hub review. One of them is merged into
    another contact by mistake and split off again: the rejection is his again, so a
    change of his record does not bring the pair back to hub review."""
    rows = [
        {"id": "1", "full_name": "Орлова Анна", "phone": "+7 999 000-00-01", "email": "anna@orlova.ru"},
        {"id": "2", "full_name": "Кузнецов Сергей", "phone": "+7 925 555-12-34", "city": "Москва"},
        {"id": "3", "full_name": "Кузнецов Сергей", "phone": "+7 926 000-11-22", "city": "Москва"},
    ]
    _write(store_project, "people", rows)
    store_project.config("connectors:\n  people: {plugin: csv, path: people.csv, id_column: id}\n")
    assert store_project.hub("sync").exit_code == 0
    links = _links(store_project)
    pair = json.loads(store_project.hub("review", "--json").stdout)[0]
    assert {pair["a"], pair["b"]} == {links["2"], links["3"]}
    assert store_project.hub("review", "reject", str(pair["id"])).exit_code == 0

    assert store_project.hub("merge", str(links["1"]), str(links["3"])).exit_code == 0
    result = store_project.hub("split", str(links["1"]))
    assert result.exit_code == 0, result.output
    assert _links(store_project) == links
    rows[2]["phone"] = "+7 926 000-11-22; +7 926 000-11-23"
    _write(store_project, "people", rows)
    assert store_project.hub("sync").exit_code == 0
    assert json.loads(store_project.hub("review", "--json").stdout) == []
    assert _links(store_project) == links
    # the rejection is the pair's own again: an undo of it asks the pair again
    undo = store_project.hub("undo", str(_review_run(store_project)))
    assert undo.exit_code == 0, undo.output
    again = json.loads(store_project.hub("review", "--json").stdout)
    assert [{p["a"], p["b"]} for p in again] == [{links["2"], links["3"]}]


def _review_run(project) -> int:
    runs = json.loads(project.hub("runs", "--json").stdout)
    return next(run["id"] for run in runs if run["kind"] == "review")


def test_split_of_a_merged_away_contact_takes_out_that_contact(namesakes):
    """Contacts 2 and then 3 are merged into 1. `hub split 2` names the contact to take
    out: 2 comes back, not 3, the latest, and only 1 and 2 are recorded as two people."""
    links = _links(namesakes)
    one, two, three = links["1"], links["2"], links["3"]
    assert namesakes.hub("merge", str(one), str(two)).exit_code == 0
    assert namesakes.hub("merge", str(one), str(three)).exit_code == 0
    result = namesakes.hub("split", str(two), "--json")
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["contact"], json.loads(result.stdout)["split_off"]) == (one, two)
    assert _links(namesakes) == {**links, "3": one, "4": one}
    assert namesakes.hub("split", str(one)).exit_code == 0  # and then 3, the merge left
    assert _links(namesakes) == links
    # a contact merged into one merged away since: the outer merge is split first
    assert namesakes.hub("merge", str(two), str(three)).exit_code == 0
    assert namesakes.hub("merge", str(one), str(two)).exit_code == 0
    result = namesakes.hub("split", str(three))
    assert result.exit_code == 2 and f"hub split {one} first" in result.output


def test_split_one_record_out_and_keep_it_out(namesakes):
    links = _links(namesakes)
    assert links["3"] == links["4"]
    result = namesakes.hub("split", str(links["3"]), "--record", "people:4", "--json")
    assert result.exit_code == 0, result.output
    new = json.loads(result.stdout)["split_off"]
    assert _links(namesakes)["4"] == new != links["3"]
    # the record changes: it is resolved again, the decision keeps it apart
    text = (namesakes.root / "people.csv").read_text()
    namesakes.write("people.csv", text.replace("4,,Аня", "4,,Анна"))
    assert namesakes.hub("sync").exit_code == 0
    assert _links(namesakes)["4"] == new
    # and a merge undoes the split
    assert namesakes.hub("merge", str(links["3"]), str(new)).exit_code == 0
    assert _links(namesakes)["4"] == links["3"]


def test_a_record_split_out_takes_its_events_along(store_project):
    """Two orders on one mailbox, «Анна Белова» and «А. Белова», make one contact with two
    purchases. The second order was her daughter's: split out, it takes its purchase
    along to the new contact; the first stays where it was."""
    store_project.write("orders.csv", "order_id,date,email,customer,amount,currency\n"
                        "o1,2026-01-10,anna@example.ru,Анна Белова,1000,RUB\n"
                        "o2,2026-02-10,anna@example.ru,А. Белова,5000,RUB\n")
    store_project.config("connectors:\n  orders:\n    plugin: csv\n    path: orders.csv\n    id_column: order_id\n"
                         "    events: {type: purchase, at: date, amount: amount, currency: currency}\n")
    assert store_project.hub("sync").exit_code == 0, "sync failed"

    def purchases(contact: int) -> list[float]:
        card = json.loads(store_project.hub("show", str(contact), "--json").stdout)
        return sorted(e["amount"] for e in card["events"] if e["type"] == "purchase")

    links = {r["external_id"]: r["contact_id"]
             for r in json.loads(store_project.hub("export", "links", "--format", "json").stdout)}
    assert links["o1"] == links["o2"]
    contact = links["o1"]
    assert purchases(contact) == [1000.0, 5000.0]
    result = store_project.hub("split", str(contact), "--record", "orders:o2", "--json")
    assert result.exit_code == 0, result.output
    other = json.loads(result.stdout)["split_off"]
    assert purchases(contact) == [1000.0] and purchases(other) == [5000.0]
    assert store_project.hub("sync").exit_code == 0  # and stays so

    def categories(contact: int) -> dict:
        return json.loads(store_project.hub("show", str(contact), "--json").stdout)["categories"]

    assert purchases(contact) == [1000.0] and purchases(other) == [5000.0]
    # the next sync derived the categories of both from the orders each holds now: one each
    assert categories(contact)["rfm_f"] == categories(other)["rfm_f"] == 1


def test_manual_decisions_name_bad_references(namesakes):
    result = namesakes.hub("merge", "1", "1")
    assert result.exit_code == 2 and "one contact already" in result.output
    result = namesakes.hub("split", "1")
    assert result.exit_code == 2 and "hub split 1 --record" in result.output
    result = namesakes.hub("split", "1", "--record", "people:3")
    assert result.exit_code == 2 and "not a source record of contact 1" in result.output
    result = namesakes.hub("review", "accept", "999")
    assert result.exit_code == 2 and "no review pair 999" in result.output


def test_a_record_gone_from_its_tool_is_not_split_off(store_project):
    """Three rows of Белова Анна make one contact; the third is deleted from the sheet and
    stays on her card as removed. Splitting it off would make a contact deleted at once:
    refused, and nothing changes."""
    rows = [{"id": "1", "full_name": "Белова Анна", "phone": "+7 915 100-00-01", "email": "anna@belova.ru"},
            {"id": "2", "full_name": "Белова Анна", "phone": "+7 915 100-00-01"},
            {"id": "3", "full_name": "Анна Белова", "email": "anna@belova.ru"}]
    _write(store_project, "people", rows)
    store_project.config("connectors:\n  people: {plugin: csv, path: people.csv, id_column: id}\n")
    assert store_project.hub("sync").exit_code == 0
    links = _links(store_project)
    assert len(set(links.values())) == 1
    _write(store_project, "people", rows[:2])
    assert store_project.hub("sync", "--allow-mass-delete").exit_code == 0
    runs = json.loads(store_project.hub("runs", "--json").stdout)
    result = store_project.hub("split", str(links["1"]), "--record", "people:3")
    assert result.exit_code == 2 and "record people:3 is gone from people" in result.output
    assert json.loads(store_project.hub("runs", "--json").stdout) == runs


def test_a_deleted_contact_is_not_split(namesakes):
    """The run that made Орлова Анна from two records is undone: her contact is deleted.
    Splitting a record off it would bring her back, and the record with her: refused,
    like a merge of a deleted contact, and nothing changes."""
    links = _links(namesakes)
    assert namesakes.hub("undo", "1").exit_code == 0
    assert json.loads(namesakes.hub("show", str(links["3"]), "--json").stdout)["deleted"]
    runs = json.loads(namesakes.hub("runs", "--json").stdout)
    for args in (("--record", "people:4"), ()):
        result = namesakes.hub("split", str(links["3"]), *args)
        assert result.exit_code == 2 and f"contact {links['3']} is deleted" in result.output
    assert json.loads(namesakes.hub("runs", "--json").stdout) == runs
    assert json.loads(namesakes.hub("export", "contacts", "--format", "json").stdout) == []
    assert namesakes.hub("sync").exit_code == 0
    assert json.loads(namesakes.hub("export", "contacts", "--format", "json").stdout) == []


def test_identifiers_made_by_other_key_rules_are_rebuilt_before_a_sync(namesakes):
    """An upgrade that changes how blocking keys are made (name tables, rules) re-keys the
    store once; with the same rules the identifiers are trusted as they are."""
    engine = create_engine(namesakes.store_url)

    def state() -> tuple[list, int, str | None]:
        with engine.connect() as c:
            rows = sorted(tuple(r) for r in c.execute(select(identifiers.c.kind, identifiers.c.value,
                                                             identifiers.c.contact_id)))
            logged = c.execute(select(func.count()).select_from(changes)).scalar()
            version = c.execute(select(store_settings.c.value).where(store_settings.c.name == "identity_keys")).scalar()
        return rows, logged, version

    try:
        keyed, logged, version = state()
        assert version == keys_version()
        assert any(kind == "name" for kind, _, _ in keyed)
        with engine.begin() as c:
            c.execute(delete(identifiers).where(identifiers.c.kind == "name"))
            c.execute(insert(identifiers).values(kind="name", value="stale|key", contact_id=keyed[0][2]))
        tampered = state()[0]

        assert namesakes.hub("sync").exit_code == 0
        assert state()[0] == tampered  # same rules: nothing rebuilt

        with engine.begin() as c:
            c.execute(update(store_settings).where(store_settings.c.name == "identity_keys").values(value="older"))
        assert namesakes.hub("sync").exit_code == 0
        assert state() == (keyed, logged, keys_version())  # rebuilt, and no contact changed
    finally:
        engine.dispose()


def test_a_profile_is_the_same_for_values_read_and_stored():
    """Profiles of records met again as stored ones are kept by their JSON: a custom value
    a spreadsheet gives as a date (or a number type JSON writes as text) must make the same
    profile both ways, or a comparison would depend on what the cache held."""
    import datetime as dt
    from decimal import Decimal

    values = {"first_name": "Анна", "phone": "+79161234567", "x_registered": dt.datetime(2024, 3, 1, 10, 30),
              "x_amount": Decimal("12.50"), "x_vip": True, "x_visits": 3, "x_tags": ["a", "b"]}
    stored = json.loads(json.dumps(values, ensure_ascii=False, default=str))
    assert profile(values) == profile(stored)
    assert ("x_registered", "2024-03-01 10:30:00") in profile(values).attributes
