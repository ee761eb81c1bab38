"""Name knowledge: folding, the transliteration skeleton, first names, surnames,
patronymics and mailbox identity of e-mail addresses."""

from __future__ import annotations

import pytest

from hub.names import (
    NAMES_DIR,
    canonical_email,
    email_local_key,
    first_name_forms,
    first_name_gender,
    first_name_keys,
    first_names_compatible,
    fold,
    latin_key,
    patronymic_info,
    surname_info,
)
from hub.normalize import split_full_name
from hub.yaml_loader import load_yaml

GARBAGE = ["", " ", "\u200b\u00a0", "123", "!!!", "--", "_", "@", "😀", "'", "1-2-3"]

# Passport (ICAO Doc 9303, 2013) and BGN/PCGN transliteration, to check that the
# skeleton reaches what the two most common systems write.
_ICAO = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя", [
    "a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "i", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
    "f", "kh", "ts", "ch", "sh", "shch", "ie", "y", "", "e", "iu", "ia"], strict=True))
_BGN = dict(_ICAO, ё="yo", й="y", ъ='"', ь="'", ю="yu", я="ya")


def _transliterate(name: str, table: dict[str, str]) -> str:
    out = []
    previous = ""
    for ch in name.lower():
        if table is _BGN and ch in "её" and (not previous or previous in "аеёиоуыэюяйъь"):
            out.append("ye" if ch == "е" else "yo")
        else:
            out.append(table.get(ch, ch))
        previous = ch
    return "".join(out).capitalize()


def _diminutives() -> list[tuple[str, str, list[str]]]:
    data = load_yaml(NAMES_DIR / "diminutives.yaml")
    return [(sex, full, forms or []) for sex in ("male", "female") for full, forms in data[sex].items()]


def _same_name_groups() -> list[list[str]]:
    return load_yaml(NAMES_DIR / "variants.yaml")["same_name"]


# ------------------------------------------------------------------------ fold


class TestFold:
    def test_lower_case_and_yo(self):
        assert fold("ПЁТР") == fold("Петр") == "петр"
        assert fold("Фёдор") == "федор"

    def test_latin_homoglyph_inside_cyrillic_word(self):
        assert fold("Дaрья") == "дарья"  # Latin "a"
        assert fold("Bаsilij") == "basilij"  # Cyrillic "а" in a Latin word

    def test_keeps_letters_hyphen_and_single_spaces(self):
        assert fold("  Анна – Мария!! ") == "анна-мария"
        assert fold("Ol'ga  O\u2019Neil") == "olga oneil"
        assert fold("Иван,  Петров.") == "иван петров"
        assert fold("-Иван-") == "иван"

    def test_any_script(self):
        assert fold("Σοφία") == "σοφία"
        assert fold("Müller") == "müller"

    def test_decomposed_short_i(self):
        assert fold("Серге\u0438\u0306") == "сергей"

    def test_stress_marks(self):
        assert fold("Мари\u0301я") == "мария"

    @pytest.mark.parametrize("text", GARBAGE)
    def test_garbage_is_empty(self, text):
        assert fold(text) == ""


# ------------------------------------------------------------------- latin_key

SAME_LATIN_KEY = [
    ["Юлия", "Yuliya", "Iuliia", "Julia", "Yulia"],
    ["Александр", "Aleksandr", "Alexander", "Aleksander"],
    ["Ксения", "Kseniya", "Ksenia", "Xenia"],
    ["Щукин", "Shchukin", "Schukin"],
    ["Хабибуллин", "Khabibullin", "Habibullin"],
    ["Белоусова", "Belousova"],  # оу spelt ou, and the French ou for у below
    ["Ульянов", "Oulianov", "Ulyanov"],
    ["Евгений", "Evgeniy", "Yevgeny", "Evgenii", "Evgenij"],
    ["Дарья", "Daria", "Darya", "Dariya"],
    ["Наталья", "Natalya", "Natalia", "Natalja"],
    ["Фёдор", "Fedor", "Fyodor", "Feodor"],
    ["Цой", "Tsoy", "Tsoi", "Coj"],
    ["Журавлёва", "Zhuravleva", "Zhuravlyova"],
    ["Воробьёв", "Vorobyov", "Vorobev", "Vorobiev"],
    ["Юрий", "Yuri", "Yury", "Yuriy", "Iurii", "Jurij"],
    ["Вячеслав", "Vyacheslav", "Viacheslav", "Wjatscheslaw"],
    ["Алексей", "Aleksei", "Alexey", "Alexei", "Aleksej"],
    ["Людмила", "Lyudmila", "Liudmila", "Ludmila"],
    ["Андреев", "Andreev", "Andreyev"],
    ["Ёлкин", "Елкин", "Yolkin", "Elkin"],
    ["Сергей", "Sergey", "Sergei", "Sergej"],
    ["Ольга", "Olga", "Ol'ga", "Ol’ga"],
    ["Шевченко", "Shevchenko", "Ševčenko"],
    ["Ющенко", "Yushchenko", "Iushchenko", "Juschtschenko"],
    ["Чайковский", "Tchaikovsky", "Chaykovskiy", "Tschaikowski", "Čajkovskij"],
    ["Соловьёв", "Solovyov", "Solovyev", "Soloviev", "Solovjov", "Solovjev"],
    ["Семёнов", "Semyonov", "Semenov", "Semionov"],
]

DIFFERENT_LATIN_KEY = [
    ("Иван", "Ян"),
    ("Мария", "Марина"),
    ("Алла", "Алина"),
    ("Петров", "Петрова"),
    ("Шукин", "Щукин"),
    ("Евгений", "Евгения"),
    ("Александр", "Александра"),
    ("Елена", "Алёна"),
    ("Ирина", "Арина"),
    ("Милана", "Милена"),
    ("Жанна", "Яна"),
]


class TestLatinKey:
    @pytest.mark.parametrize("group", SAME_LATIN_KEY, ids=lambda g: g[0])
    def test_same_key(self, group):
        keys = {name: latin_key(name) for name in group}
        assert len(set(keys.values())) == 1, keys

    @pytest.mark.parametrize("a, b", DIFFERENT_LATIN_KEY)
    def test_different_key(self, a, b):
        assert latin_key(a) != latin_key(b)

    def test_readable_latin(self):
        assert latin_key("Щукин") == "shchukin"
        assert latin_key("Юлия") == "iulia"
        assert latin_key("Хабибуллин") == "khabibulin"
        assert latin_key("Цой") == "tsoi"

    @pytest.mark.parametrize("group", SAME_LATIN_KEY, ids=lambda g: g[0])
    def test_a_key_is_its_own_key(self, group):
        key = latin_key(group[0])
        assert latin_key(key) == key

    def test_words_joined_by_one_space(self):
        assert latin_key("Анна-Мария  Петрова") == "ana maria petrova"

    def test_homoglyphs(self):
        assert latin_key("Дaрья") == latin_key("Дарья")

    @pytest.mark.parametrize("sex, full, forms", _diminutives(), ids=lambda v: v if isinstance(v, str) else "")
    def test_passport_and_bgn_spellings_of_every_name(self, sex, full, forms):
        for name in [full, *forms]:
            for table in (_ICAO, _BGN):
                assert latin_key(_transliterate(name, table)) == latin_key(name), (name, _transliterate(name, table))

    @pytest.mark.parametrize("text", GARBAGE)
    def test_garbage_is_empty(self, text):
        assert latin_key(text) == ""


# ----------------------------------------------------------------- first names


class TestFirstNameKeys:
    @pytest.mark.parametrize(
        "name, expected",
        [
            ("Александр", {"александр"}),
            ("Саша", {"александр", "александра"}),
            ("Sasha", {"александр", "александра"}),
            ("Шура", {"александр", "александра"}),
            ("Женя", {"евгений", "евгения"}),
            ("Zhenya", {"евгений", "евгения"}),
            ("Валя", {"валентин", "валентина", "алевтина"}),
            ("Даша", {"дарья"}),
            ("Дашенька", {"дарья"}),
            ("Дашуля", {"дарья"}),
            ("Dasha", {"дарья"}),
            ("Дария", {"дарья"}),
            ("Alexander", {"александр"}),
            ("Alex", {"александр", "алексей"}),
            ("Katya", {"екатерина"}),
            ("Ekaterina", {"екатерина"}),
            ("Yekaterina", {"екатерина"}),
            ("Katerina", {"екатерина"}),
            ("Kate", {"екатерина"}),
            ("Наталия", {"наталья"}),
            ("Natalie", {"наталья"}),
            ("София", {"софья"}),
            ("Влад", {"владимир", "владислав"}),
            ("Стас", {"станислав"}),
            ("Лёша", {"алексей"}),
            ("Lyosha", {"алексей"}),
            ("Гоша", {"георгий", "игорь"}),
            ("Michael", {"михаил"}),
            ("Eugene", {"евгений"}),
            ("Алёна", {"алена", "елена"}),
            ("Олександр", {"александр"}),
            ("Настя", {"анастасия"}),
            ("Ринат", {"ринат"}),
            ("Гуля", {"гульнара", "айгуль", "гузель", "гульшат", "гульноза"}),
        ],
    )
    def test_known(self, name, expected):
        assert first_name_keys(name) == expected

    def test_every_ambiguous_slava(self):
        keys = first_name_keys("Слава")
        for full in ("вячеслав", "владислав", "ярослав", "станислав", "мирослав", "святослав", "ростислав"):
            assert full in keys

    @pytest.mark.parametrize("sex, full, forms", _diminutives(), ids=lambda v: v if isinstance(v, str) else "")
    def test_every_short_form_resolves_to_its_full_form(self, sex, full, forms):
        full_key = fold(full)
        assert full_key in first_name_keys(full)
        for form in forms:
            assert full_key in first_name_keys(form), form
            assert first_names_compatible(form, full)

    @pytest.mark.parametrize("group", _same_name_groups(), ids=lambda g: g[0])
    def test_spellings_of_one_name(self, group):
        for member in group:
            assert first_name_keys(member) >= {fold(group[0])}, member

    @pytest.mark.parametrize("sex, full, forms", _diminutives(), ids=lambda v: v if isinstance(v, str) else "")
    def test_the_forms_of_a_full_name_are_the_ones_that_resolve_to_it(self, sex, full, forms):
        found = first_name_forms(fold(full))
        assert latin_key(full) in found
        for form in forms:
            assert latin_key(form) in found, form

    def test_unknown_name_is_its_skeleton(self):
        assert first_name_keys("Айнагуль") == {"~ainagul"}
        assert first_names_compatible("Айнагуль", "Ainagul")
        assert not first_names_compatible("Айнагуль", "Анна")

    def test_double_name(self):
        assert first_name_keys("Анна-Мария") == {"анна", "мария"}
        assert first_names_compatible("Анна-Мария", "Маша")

    @pytest.mark.parametrize("text", GARBAGE)
    def test_garbage_is_empty(self, text):
        assert first_name_keys(text) == frozenset()
        assert first_name_gender(text) is None
        assert not first_names_compatible(text, text)


class TestFirstNamesCompatible:
    @pytest.mark.parametrize(
        "a, b",
        [("Саша", "Aleksandra"), ("Саша", "Alexander"), ("Женя", "Evgeny"), ("Женя", "Евгения"),
         ("Dasha", "Дарья"), ("Natalie", "Наташа"), ("Алёна", "Елена"), ("Наталья", "Наталия"),
         ("Iuliia", "Юля"), ("Xenia", "Ксюша"), ("Fyodor", "Федя"), ("Yevgeny", "Женя"),
         ("Данила", "Даниил"), ("Софья", "Sofia"), ("Катя", "Kate"), ("Валя", "Алевтина")],
    )
    def test_same_person_possible(self, a, b):
        assert first_names_compatible(a, b)
        assert first_names_compatible(b, a)

    @pytest.mark.parametrize(
        "a, b",
        [("Иван", "Ян"), ("Мария", "Марина"), ("Алла", "Алина"), ("Саша", "Евгений"),
         ("Ксения", "Оксана"), ("Егор", "Георгий"), ("Юрий", "Георгий"), ("Юлия", "Юлиана"),
         ("Юлия", "Ульяна"), ("Александр", "Александра"), ("Евгений", "Евгения"), ("Даша", "Маша"),
         ("Natalie", "Nadia"), ("Дмитрий", "Денис"), ("Иосиф", "Осип")],
    )
    def test_different_names(self, a, b):
        assert not first_names_compatible(a, b)


class TestFirstNameGender:
    @pytest.mark.parametrize(
        "name, gender",
        [("Иван", "m"), ("Dasha", "f"), ("Даша", "f"), ("Vlad", "m"), ("Гоша", "m"), ("Наталия", "f"),
         ("Kate", "f"), ("Саша", None), ("Женя", None), ("Валя", None), ("Слава", None), ("Айнагуль", None)],
    )
    def test_gender(self, name, gender):
        assert first_name_gender(name) == gender


# -------------------------------------------------------------------- surnames


class TestSurnameInfo:
    @pytest.mark.parametrize(
        "male, female",
        [("Иванов", "Иванова"), ("Иванов", "Ivanova"), ("Ivanov", "Иванова"), ("Ivanoff", "Ivanova"),
         ("Воробьёв", "Vorobyova"), ("Журавлёв", "Zhuravleva"), ("Пушкин", "Пушкина"), ("Ильин", "Ilyina"),
         ("Троцкий", "Троцкая"), ("Trotsky", "Trotskaya"), ("Trotskiy", "Trotskaia"),
         ("Достоевский", "Dostoevskaya"), ("Толстой", "Толстая"), ("Tolstoy", "Tolstaya"),
         ("Трубецкой", "Трубецкая"), ("Белый", "Белая"), ("Римский-Корсаков", "Римская-Корсакова"),
         ("Kowalski", "Kowalska")],
    )
    def test_gender_forms_share_a_base(self, male, female):
        male_base, male_gender = surname_info(male)
        female_base, female_gender = surname_info(female)
        assert (male_gender, female_gender) == ("m", "f")
        assert male_base == female_base

    def test_base_is_the_masculine_latin_key(self):
        assert surname_info("Иванова") == ("ivanov", "f")
        assert surname_info("Ivanova") == ("ivanov", "f")
        assert surname_info("Zhuravlyova") == (latin_key("Журавлёв"), "f")

    @pytest.mark.parametrize(
        "name",
        ["Шевченко", "Ким", "Дюма", "Черных", "Долгих", "Цой", "Tsoi", "Ли", "Гелашвили", "Церетели",
         "Лев", "Ковальчук", "Бабич", "Гоцириди", "Живаго", "Dolgikh", "Shevchenko", "Ева"],
    )
    def test_no_gender(self, name):
        base, gender = surname_info(name)
        assert gender is None
        assert base == latin_key(name)

    def test_different_families(self):
        assert surname_info("Петров")[0] != surname_info("Петренко")[0]
        assert surname_info("Иванов")[0] != surname_info("Иванищев")[0]

    @pytest.mark.parametrize("text", GARBAGE)
    def test_garbage(self, text):
        assert surname_info(text) == ("", None)


# ----------------------------------------------------------------- patronymics


class TestPatronymicInfo:
    @pytest.mark.parametrize(
        "word, expected",
        [("Михайловна", ("михаил", "f")), ("Сергеевич", ("сергей", "m")), ("Ильич", ("илья", "m")),
         ("Ильинична", ("илья", "f")), ("Никитич", ("никита", "m")), ("Кузьминична", ("кузьма", "f")),
         ("Mikhailovna", ("михаил", "f")), ("Sergeyevich", ("сергей", "m")), ("Sergeevna", ("сергей", "f")),
         ("Евгеньевна", ("евгений", "f")), ("Евгениевна", ("евгений", "f")), ("Дмитриевич", ("дмитрий", "m")),
         ("Юрьевич", ("юрий", "m")), ("Yurievich", ("юрий", "m")), ("Игоревич", ("игорь", "m")),
         ("Львович", ("лев", "m")), ("Павловна", ("павел", "f")), ("Яковлевна", ("яков", "f")),
         ("Петровна", ("петр", "f")), ("Даниловна", ("даниил", "f")), ("Ринатович", ("ринат", "m")),
         ("Ильдаровна", ("ильдар", "f")), ("Николаевна", ("николай", "f")), ("Alekseevich", ("алексей", "m"))],
    )
    def test_known_fathers(self, word, expected):
        assert patronymic_info(word) == expected

    def test_father_key_is_a_first_name_key(self):
        father, _gender = patronymic_info("Михайловна")
        assert father in first_name_keys("Misha")

    def test_unknown_father(self):
        assert patronymic_info("Вахтангович") == ("~vakhtang", "m")
        assert patronymic_info("Vakhtangovna") == ("~vakhtang", "f")
        assert patronymic_info("Вахтангович")[0] in first_name_keys("Вахтанг")

    def test_turkic_particles(self):
        assert patronymic_info("Ильхам кызы") == ("~ilkham", "f")
        assert patronymic_info("Руслан оглы") == ("руслан", "m")

    @pytest.mark.parametrize("word", ["Иванов", "Петрова", "Бабич", "Иван", "Мария", "оглы", "Иван Петрович Сидоров"])
    def test_not_a_patronymic(self, word):
        assert patronymic_info(word) is None

    @pytest.mark.parametrize("text", GARBAGE)
    def test_garbage(self, text):
        assert patronymic_info(text) is None


# ---------------------------------------------------------------------- e-mail


class TestEmail:
    @pytest.mark.parametrize(
        "address, mailbox",
        [("d.r.omanova@googlemail.com", "dromanova@gmail.com"),
         ("D.Romanova+shop@Gmail.com", "dromanova@gmail.com"),
         ("Ivan-Petrov@ya.ru", "ivan.petrov@yandex.ru"),
         ("ivan.petrov@yandex.ru", "ivan.petrov@yandex.ru"),
         ("ivan-petrov+news@narod.ru", "ivan.petrov@yandex.ru"),
         ("ivan.petrov@yandex.kz", "ivan.petrov@yandex.ru"),
         ("ivan.petrov@gmial.com", "ivanpetrov@gmail.com"),
         ("ivan.petrov@mail.ry", "ivan.petrov@mail.ru"),
         ("ivan.petrov+x@mail.ru", "ivan.petrov+x@mail.ru"),
         ("i.v.a.n@bk.ru", "i.v.a.n@bk.ru"),
         ("user+tag@icloud.com", "user@icloud.com"),
         ("  <Foo.Bar@Mail.Ru> ", "foo.bar@mail.ru"),
         ("mailto:foo@yandex.ry", "foo@yandex.ru")],
    )
    def test_canonical_email(self, address, mailbox):
        assert canonical_email(address) == mailbox

    def test_local_key(self):
        assert email_local_key("ivan.petrov@yandex.ru") == email_local_key("ivan-petrov@ya.ru") == "ivan.petrov"
        assert email_local_key("Iv.Anpetrov+1@gmail.com") == "ivanpetrov"

    def test_different_providers_stay_apart(self):
        assert canonical_email("ivan@mail.ru") != canonical_email("ivan@bk.ru")
        assert canonical_email("ivan@hotmail.com") != canonical_email("ivan@outlook.com")

    @pytest.mark.parametrize("text", [*GARBAGE, "ivan", "@mail.ru", "ivan@", "+@gmail.com", "a b@mail.ru"])
    def test_not_an_address(self, text):
        assert canonical_email(text) == ""
        assert email_local_key(text) == ""


# ------------------------------------------------------------------ data files


def test_first_name_list_still_serves_normalize():
    assert split_full_name("Иванова Мария Петровна") == {
        "last_name": "Иванова", "first_name": "Мария", "middle_name": "Петровна",
    }


def test_data_sizes():
    entries = _diminutives()
    assert sum(1 for sex, _full, _forms in entries if sex == "male") >= 150
    assert sum(1 for sex, _full, _forms in entries if sex == "female") >= 130


def test_many_calls_are_served_from_the_cache():
    names = ["Саша", "Dasha", "Ivanova", "Михайловна", "Iuliia", "Щукин"] * 5000
    first = [(first_name_keys(n), latin_key(n), surname_info(n), patronymic_info(n)) for n in names[:6]]
    before = first_name_keys.cache_info().hits
    for i, name in enumerate(names):
        assert (first_name_keys(name), latin_key(name), surname_info(name), patronymic_info(name)) == first[i % 6]
    assert first_name_keys.cache_info().hits - before == len(names)
