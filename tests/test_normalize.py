"""Normalization of phones, e-mails, names, cities and dates, hostile inputs included."""

from __future__ import annotations

import datetime as dt
import random
import time
from decimal import Decimal

import phonenumbers
import pytest

from hub.normalize import (
    _CLEAN_TABLE,
    MAX_VALUE_CHARS,
    Normalizer,
    _cc7_validator,
    _has_content,
    _is_blank,
    clean_text,
    name_key,
    normalize_emails,
    normalize_phones,
    parse_date,
    split_full_name,
)

# ----------------------------------------------------------------------- text


class TestCleanText:
    def test_strips_and_collapses_spaces(self):
        assert clean_text("  Иван \t  Петров \n") == "Иван Петров"

    def test_nbsp_becomes_space(self):
        assert clean_text("Иван\u00a0Петров\u202f") == "Иван Петров"

    def test_zero_width_and_nul_removed(self):
        assert clean_text("Ив\u200bан\x00\ufeff \u200dПетров\u2060") == "Иван Петров"

    def test_none_and_non_strings(self):
        assert clean_text(None) == ""
        assert clean_text(42) == "42"
        assert clean_text(dt.date(1990, 2, 1)) == "1990-02-01"

    def test_only_invisible_is_empty(self):
        assert clean_text("\u200b\u00a0\x00 ") == ""


    @pytest.mark.parametrize(
        "raw, expected",
        [("Иван Петров", "Иван Петров"), ("Иван  Петров", "Иван Петров"), (" Иван", "Иван"), ("Иван ", "Иван"),
         ("", ""), (" ", ""), ("a\u00a0b", "a b"), ("a\tb", "a b"), ("a\u200bb", "ab"), ("a\x1cb", "a b")],
    )
    def test_clean_and_unclean_text(self, raw, expected):
        assert clean_text(raw) == expected
        assert type(clean_text(type("Text", (str,), {})(raw))) is str

    def test_content_check_agrees_with_clean_text(self):
        chars = [chr(c) for c in range(0x3100)] + [chr(c) for c in _CLEAN_TABLE] + ["\U0001f600", "\ufeff"]
        for ch in chars:
            assert _has_content(ch) == bool(clean_text(ch)), hex(ord(ch))
            assert _has_content(f" {ch}\u200b ") == bool(clean_text(f" {ch}\u200b ")), hex(ord(ch))
            assert _is_blank(ch) == (not ch.isalnum()), hex(ord(ch))


class TestNameKey:
    def test_casefold_yo_and_spaces(self):
        assert name_key("  ПЁТР\u00a0  Иванов ") == "петр иванов"

    def test_homoglyphs_in_cyrillic_word(self):
        # Latin "a", "o" and "C" inside Cyrillic words
        assert name_key("Ивaнoв Cергей") == name_key("Иванов Сергей") == "иванов сергей"

    def test_cyrillic_lookalike_in_latin_word(self):
        assert name_key("Ivаn") == "ivan"  # Cyrillic "а"

    def test_pure_latin_word_is_kept(self):
        assert name_key("Petrov COM") == "petrov com"


# --------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    "raw",
    [
        "8 (916) 123-45-67",
        "+7 916 123 45 67",
        "89161234567",
        "9161234567",
        "79161234567",
        "+7(916)1234567 доб. 12",
        "+7 (916) 123-45-67 ext. 3",
        "8-916-123-45-67 (доб. 123)",
        "моб.: 8 916 123 45 67",
        "8\u00a0916\u00a0123\u200b45\u00a067",
        "\ufeff+7 916 123 45 67\x00",
        "8.916.123.45.67",
        79161234567,
        79161234567.0,
        7.9161234567e10,
        Decimal("79161234567"),
        "79161234567.0",
        "7.9161234567E10",
        "7,9161234567E+10",
        "+7 (916) 123-45-67 (Иван)",
        "8 916 123 45 67 мобильный",
        "Иван: 8 916 123 45 67",
        "=+79161234567",
    ],
)
def test_phone_formats(raw):
    assert normalize_phones(raw) == (["+79161234567"], [])


@pytest.mark.parametrize(
    "number,kind",
    [
        ("+79161234567", "mobile"),
        ("+74951234567", "fixed"),  # Moscow landline
        ("+78129627780", "fixed"),
        ("+78005553535", "fixed"),  # toll free: not a person's mobile
        ("+77012345678", "mobile"),  # Kazakhstan shares +7
        ("+77172123456", "fixed"),
        ("+4915112345678", "mobile"),
        ("+493012345678", "fixed"),
        ("+12025550123", None),  # the US plan does not tell
        ("+7916", None),
    ],
)
def test_phone_kind(number, kind):
    from hub.normalize import phone_kind

    assert phone_kind(number) == kind


def test_phone_extension_is_dropped_without_problem():
    numbers, problems = normalize_phones("+7(916)1234567 доб. 12")
    assert numbers == ["+79161234567"]
    assert problems == []


def test_extension_after_a_comma_is_not_a_second_number():
    assert normalize_phones("+7 916 123-45-67, доб. 12") == (["+79161234567"], [])


@pytest.mark.parametrize(
    "raw",
    [
        "89161234567, 84951234567",
        "89161234567; 84951234567",
        "89161234567/84951234567",
        "8 (916) 123-45-67 / 8 (495) 123-45-67",
        "89161234567 или 84951234567",
        "89161234567\n84951234567",
        "89161234567\r\n84951234567",
        "89161234567 84951234567",
        "8 916 123 45 67 8 495 123 45 67",
        "моб 89161234567 раб 84951234567",
        "8 916 123 45 67 (моб), 8 495 123 45 67 (раб)",
    ],
)
def test_two_numbers_in_one_cell(raw):
    assert normalize_phones(raw) == (["+79161234567", "+74951234567"], [])


def test_duplicates_removed_order_kept():
    assert normalize_phones("84951234567, +7 916 123 45 67, 8 (495) 123-45-67") == (
        ["+74951234567", "+79161234567"],
        [],
    )


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("8 (495) 123-45-67", "+74951234567"),  # Moscow landline
        ("8 (812) 123-45-67", "+78121234567"),  # St Petersburg landline
        ("+1 212 555 0123", "+12125550123"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+375 29 123 45 67", "+375291234567"),
        ("+7 727 258 12 34", "+77272581234"),  # Almaty, country code 7 too
        ("8 800 555 35 35", "+78005553535"),
        ("8 10 44 20 7946 0958", "+442079460958"),  # Russian international prefix
    ],
)
def test_landlines_and_foreign(raw, expected):
    assert normalize_phones(raw) == ([expected], [])


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("abc", "'abc' is not a phone number"),
        ("+7 000 000 00 00", "'+7 000 000 00 00' is not a valid phone number"),
        ("8 916 123 45", "'8 916 123 45' is not a valid phone number"),
        ("12", "'12' is not a phone number"),
        ("01.02.1990", "'01.02.1990' is not a valid phone number"),
    ],
)
def test_garbage_is_a_problem(raw, problem):
    assert normalize_phones(raw) == ([], [problem])


@pytest.mark.parametrize("raw", ["7,91612E+10", "7.91612345E+10", "7,9E+10", " 8,91612E+10 "])
def test_a_phone_a_spreadsheet_cut_to_scientific_notation_is_a_problem_not_a_number(raw):
    # Excel shows 79161234567 as 7,91612E+10 in a narrow column and saves that to CSV:
    # the last digits are gone, and trailing zeros would make another person's number
    numbers, problems = normalize_phones(raw)
    assert numbers == []
    assert len(problems) == 1 and "scientific notation" in problems[0] and repr(raw.strip()) in problems[0]


def test_a_phone_in_scientific_notation_with_every_digit_is_read():
    assert normalize_phones("7.9161234567E+10") == (["+79161234567"], [])
    assert normalize_phones("7,91612345670E10") == (["+79161234567"], [])


def test_good_and_bad_in_one_cell():
    assert normalize_phones("89161234567, не звонить") == (
        ["+79161234567"],
        ["'не звонить' is not a phone number"],
    )


def test_empty_and_dash_are_nothing():
    for raw in ("", "   ", "-", "—", "\u200b", None):
        assert normalize_phones(raw) == ([], [])


def test_default_region():
    assert normalize_phones("020 7946 0958", "GB") == (["+442079460958"], [])
    # the same digits with the Russian default are not a number
    assert normalize_phones("020 7946 0958")[0] == []
    with pytest.raises(ValueError, match="unknown phone region"):
        normalize_phones("89161234567", "XX")


def test_huge_phone_cell_is_refused_quickly():
    cell = "8916123456" * (1024 * 1024)  # 10 MB
    started = time.perf_counter()
    numbers, problems = normalize_phones(cell)
    assert time.perf_counter() - started < 1.0
    assert numbers == []
    assert problems == [f"value is too long ({len(cell)} characters; the limit is {MAX_VALUE_CHARS})"]


def test_long_digit_garbage_does_not_hang():
    cell = "1 " * 4000
    started = time.perf_counter()
    numbers, problems = normalize_phones(cell)
    assert time.perf_counter() - started < 2.0
    assert numbers == []
    assert len(problems) == 1


def test_fast_validator_agrees_with_phonenumbers():
    validator = _cc7_validator()
    assert validator is not None
    rng = random.Random(7)
    for _ in range(20_000):
        national = f"{rng.randint(0, 9_999_999_999):010d}"
        number = phonenumbers.PhoneNumber(country_code=7, national_number=int(national))
        assert validator.valid(national) == phonenumbers.is_valid_number(number), national


# --------------------------------------------------------------------- emails


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Ivan.Petrov@Mail.RU", "ivan.petrov@mail.ru"),
        ("  ivan@mail.ru  ", "ivan@mail.ru"),
        ("ivan@mail.ru.", "ivan@mail.ru"),
        ("ivan@mail.ru...", "ivan@mail.ru"),
        ("mailto:ivan@mail.ru", "ivan@mail.ru"),
        ("MAILTO:Ivan@Mail.ru?subject=Привет", "ivan@mail.ru"),
        ("<ivan@mail.ru>", "ivan@mail.ru"),
        ("Иван Петров <Ivan@Mail.ru>", "ivan@mail.ru"),
        ('"Petrov, Ivan" <ivan@mail.ru>', "ivan@mail.ru"),
        ("ivan @ mail.ru", "ivan@mail.ru"),
        ("iv\u200ban@mail\u00a0.ru".replace("\u00a0", ""), "ivan@mail.ru"),
        ("ivan@mail.ru\x00", "ivan@mail.ru"),
        ("ivan@mail.ru (рабочий)", "ivan@mail.ru"),
        ("почта@пример.рф", "почта@пример.рф"),
        ("ПОЧТА@ПРИМЕР.РФ", "почта@пример.рф"),
        ("info@xn--e1afmkfd.xn--p1ai", "info@пример.рф"),
        ("ivаn@mаil.ru", "ivan@mail.ru"),  # Cyrillic "а" in a Latin address
        ("first.last+tag@sub.example.com", "first.last+tag@sub.example.com"),
    ],
)
def test_email_cleanup(raw, expected):
    assert normalize_emails(raw) == ([expected], [])


@pytest.mark.parametrize(
    "typo, fixed",
    [
        ("gmial.com", "gmail.com"),
        ("maol.ru", "mail.ru"),
        ("lits.ru", "list.ru"),
        ("gmail.co", "gmail.com"),
        ("gmail.con", "gmail.com"),
        ("mail.r", "mail.ru"),
        ("mail.ru.", "mail.ru"),
        ("yandex.ry", "yandex.ru"),
        ("yandx.ru", "yandex.ru"),
        ("rambler.r", "rambler.ru"),
        ("hotmail.con", "hotmail.com"),
        ("GMIAL.COM", "gmail.com"),
    ],
)
def test_domain_typos_are_fixed(typo, fixed):
    assert normalize_emails(f"user@{typo}") == ([f"user@{fixed}"], [])


def test_correct_domains_are_not_touched():
    assert normalize_emails("a@gmail.com, b@mail.com, c@yandex.com") == (
        ["a@gmail.com", "b@mail.com", "c@yandex.com"],
        [],
    )


@pytest.mark.parametrize(
    "raw",
    ["a@mail.ru, b@gmail.com", "a@mail.ru; b@gmail.com", "a@mail.ru b@gmail.com", "a@mail.ru\nb@gmail.com",
     "<a@mail.ru>, Б <b@gmail.com>", "A@MAIL.RU;;b@gmail.com, a@mail.ru"],
)
def test_two_addresses(raw):
    assert normalize_emails(raw) == (["a@mail.ru", "b@gmail.com"], [])


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("abc", "'abc' is not an email address"),
        ("ivan@", "'ivan@' is not an email address"),
        ("@mail.ru", "'@mail.ru' is not an email address"),
        ("a@b", "'a@b' is not a valid email address"),
        ("a..b@mail.ru", "'a..b@mail.ru' is not a valid email address"),
        ("a@localhost", "'a@localhost' is not a valid email address"),
        ("a b@mail", "'b@mail' is not a valid email address"),
    ],
)
def test_invalid_emails(raw, fragment):
    addresses, problems = normalize_emails(raw)
    assert addresses == []
    assert len(problems) == 1 and problems[0].startswith(fragment)


def test_good_and_bad_address():
    addresses, problems = normalize_emails("ivan@mail.ru, нет почты")
    assert addresses == ["ivan@mail.ru"]
    assert problems == ["'нет почты' is not an email address"]


def test_huge_email_cell():
    cell = "a" * (10 * 1024 * 1024) + "@mail.ru"
    started = time.perf_counter()
    addresses, problems = normalize_emails(cell)
    assert time.perf_counter() - started < 1.0
    assert addresses == [] and "too long" in problems[0]


# ---------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Петров Иван Сергеевич", ("Петров", "Иван", "Сергеевич")),
        ("Иван Сергеевич Петров", ("Петров", "Иван", "Сергеевич")),
        ("Иван Петров", ("Петров", "Иван", None)),
        ("Петров Иван", ("Петров", "Иван", None)),
        ("ПЕТРОВ иван", ("Петров", "Иван", None)),
        ("петрова анна ивановна", ("Петрова", "Анна", "Ивановна")),
        ("Анна Ивановна Петрова", ("Петрова", "Анна", "Ивановна")),
        ("Ёлкина Алёна Ильинична", ("Ёлкина", "Алёна", "Ильинична")),
        ("Шостакович Дмитрий Дмитриевич", ("Шостакович", "Дмитрий", "Дмитриевич")),
        ("Цой Виктор Робертович", ("Цой", "Виктор", "Робертович")),
        ("Ким Ирина", ("Ким", "Ирина", None)),
        ("Саша Петров", ("Петров", "Саша", None)),
        ("Зубрицкая Снежанна", ("Зубрицкая", "Снежанна", None)),
        ("Петров-Водкин Кузьма Сергеевич", ("Петров-Водкин", "Кузьма", "Сергеевич")),
        ("Алиев Рашид Гасан оглы", ("Алиев", "Рашид", "Гасан оглы")),
        ("Мамедова Айгюль Ильхам кызы", ("Мамедова", "Айгюль", "Ильхам кызы")),
        ("Петров, Иван", ("Петров", "Иван", None)),
        ("Иван Сергеевич", (None, "Иван", "Сергеевич")),
        ("Ivan Petrov", ("Petrov", "Ivan", None)),
        ("Petrov Ivan", ("Petrov", "Ivan", None)),
        ("IVAN SERGEEVICH PETROV", ("Petrov", "Ivan", "Sergeevich")),
        ("Aleksandr Ivanov", ("Ivanov", "Aleksandr", None)),
        ("Иван", (None, "Иван", None)),
        ("Петров", ("Петров", None, None)),
        ("Петров И.С.", ("Петров", "И.", "С.")),
        ("И. С. Петров", ("Петров", "И.", "С.")),
        # a first name with a typo is still the first name, whatever its ending
        ("Антоеина Чеботарева", ("Чеботарева", "Антоеина", None)),
        ("Еактерина Неверова", ("Неверова", "Еактерина", None)),
        ("Чеботарева Антоеина", ("Чеботарева", "Антоеина", None)),
        # a surname ending in -ич: no woman's patronymic, nor one of a first name known
        ("Ангелина Гуревич", ("Гуревич", "Ангелина", None)),
        ("Иван Гуревич", ("Гуревич", "Иван", None)),
        ("Иван Петрович", (None, "Иван", "Петрович")),
        ("Мамед Бахтияр оглы", (None, "Мамед", "Бахтияр оглы")),
    ],
)
def test_split_full_name(raw, expected):
    last, first, middle = expected
    result = split_full_name(raw)
    assert result.get("last_name") == last
    assert result.get("first_name") == first
    assert result.get("middle_name") == middle
    assert set(result) == {k for k, v in zip(("last_name", "first_name", "middle_name"), expected) if v}


def test_split_fixes_homoglyphs_in_display_values():
    result = split_full_name("Ивaнов Пётр Cергеевич")  # Latin "a" and "C"
    assert result == {"last_name": "Иванов", "first_name": "Пётр", "middle_name": "Сергеевич"}
    assert all(ch not in "aC" for v in result.values() for ch in v)


def test_split_empty_and_punctuation():
    assert split_full_name("") == {}
    assert split_full_name(" - ") == {}
    assert split_full_name("x" * 20_000) == {}


# ---------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("01.02.1990", dt.date(1990, 2, 1)),
        ("1.2.1990", dt.date(1990, 2, 1)),
        ("01.02.1990 г.", dt.date(1990, 2, 1)),
        ("1990-02-01", dt.date(1990, 2, 1)),
        ("1990-02-01T00:00:00", dt.date(1990, 2, 1)),
        ("1990-02-01 13:45:00+03:00", dt.date(1990, 2, 1)),
        ("01/02/1990", dt.date(1990, 2, 1)),  # day first by default
        ("01-02-1990", dt.date(1990, 2, 1)),
        ("1990.02.01", dt.date(1990, 2, 1)),
        ("19900201", dt.date(1990, 2, 1)),
        ("01021990", dt.date(1990, 2, 1)),
        ("1 февраля 1990", dt.date(1990, 2, 1)),
        ("1 февраля 1990 г.", dt.date(1990, 2, 1)),
        ("01.02.90", dt.date(1990, 2, 1)),
        (" 01.02.1990\u00a0", dt.date(1990, 2, 1)),
        (dt.date(1990, 2, 1), dt.date(1990, 2, 1)),
        (dt.datetime(1990, 2, 1, 23, 59), dt.date(1990, 2, 1)),
        (32874, dt.date(1990, 1, 1)),
        (32874.0, dt.date(1990, 1, 1)),
        (32874.75, dt.date(1990, 1, 1)),
        ("32874", dt.date(1990, 1, 1)),
        ("32874.0", dt.date(1990, 1, 1)),
        (36526, dt.date(2000, 1, 1)),
    ],
)
def test_parse_date_auto(raw, expected):
    assert parse_date(raw) == expected


@pytest.mark.parametrize(
    "serial, expected",
    [
        (1, dt.date(1900, 1, 1)),
        (59, dt.date(1900, 2, 28)),
        (61, dt.date(1900, 3, 1)),
        (32874, dt.date(1990, 1, 1)),
        (36526, dt.date(2000, 1, 1)),
        ("45658", dt.date(2025, 1, 1)),
    ],
)
def test_excel_serials(serial, expected):
    assert parse_date(serial, "excel") == expected


def test_excel_phantom_leap_day_and_range():
    with pytest.raises(ValueError, match="does not exist"):
        parse_date(60, "excel")
    with pytest.raises(ValueError, match="outside the range"):
        parse_date(0, "excel")
    with pytest.raises(ValueError, match="not an Excel date serial number"):
        parse_date("01.02.1990", "excel")


@pytest.mark.parametrize(
    "raw, fmt, expected",
    [
        ("01.02.1990", "DD.MM.YYYY", dt.date(1990, 2, 1)),
        ("1990-02-01", "YYYY-MM-DD", dt.date(1990, 2, 1)),
        ("02/01/1990", "MM/DD/YYYY", dt.date(1990, 2, 1)),
        ("01/02/1990", "DD/MM/YYYY", dt.date(1990, 2, 1)),
        ("01.02.1990", "auto", dt.date(1990, 2, 1)),
        (dt.date(1990, 2, 1), "MM/DD/YYYY", dt.date(1990, 2, 1)),
    ],
)
def test_parse_date_explicit_format(raw, fmt, expected):
    assert parse_date(raw, fmt) == expected


@pytest.mark.parametrize(
    "raw, fmt, message",
    [
        ("31.02.1990", None, "'31.02.1990' is not a valid date (day is out of range for month)"),
        ("31.02.1990", "DD.MM.YYYY", "'31.02.1990' is not a valid date (day is out of range for month)"),
        ("01.13.1990", None, "'01.13.1990' is not a valid date (month must be in 1..12)"),
        ("1990-02-30", None, "'1990-02-30' is not a valid date"),
        ("29.02.1990", None, "'29.02.1990' is not a valid date"),
        ("1990-02-01", "DD.MM.YYYY", "'1990-02-01' does not match DD.MM.YYYY"),
        ("13/25/1990", "MM/DD/YYYY", "'13/25/1990' is not a valid date"),
        ("abc", None, "'abc' is not a date"),
        ("1990", None, "'1990' looks like a year, not a full date"),
        (1990, None, "'1990' looks like a year, not a full date"),
        ("", None, "no date given"),
        (None, None, "no date given"),
        (True, None, "'True' is not a date"),
        (10**9, None, "is not a date"),
        (float("nan"), None, "is not a date"),
        (32874, "DD.MM.YYYY", "'32874' is a number, not a DD.MM.YYYY date"),
        ("01.02.1990", "DD-MM", "unknown date format"),
    ],
)
def test_parse_date_errors(raw, fmt, message):
    with pytest.raises(ValueError) as info:
        parse_date(raw, fmt)
    assert message in str(info.value)


def test_parse_date_accepts_leap_day():
    assert parse_date("29.02.2000") == dt.date(2000, 2, 29)


# ----------------------------------------------------------------- normalizer


@pytest.fixture(scope="module")
def normalizer() -> Normalizer:
    return Normalizer()


def test_full_record(normalizer):
    values, problems = normalizer.normalize(
        {
            "full_name": "  ПЕТРОВ иван\u00a0сергеевич\u200b ",
            "phone": "8 (916) 123-45-67, +7 903 123 45 67",
            "email": "Ivan@Mail.RU; b@gmial.com",
            "city": "г. Мск",
            "birthday": "01.02.1990",
            "company": " ООО «Ромашка»\x00 ",
        }
    )
    assert problems == []
    assert values == {
        "full_name": "Петров Иван Сергеевич",
        "last_name": "Петров",
        "first_name": "Иван",
        "middle_name": "Сергеевич",
        "phone": "+79161234567",
        "phones": ["+79161234567", "+79031234567"],
        "email": "ivan@mail.ru",
        "emails": ["ivan@mail.ru", "b@gmail.com"],
        "city": "Москва",
        "birthday": "1990-02-01",
        "company": "ООО «Ромашка»",
    }


def test_bad_phone_is_dropped_with_problem(normalizer):
    values, problems = normalizer.normalize({"phone": "abc", "first_name": "Иван"})
    assert "phone" not in values and "phones" not in values
    assert problems == ["phone: 'abc' is not a phone number"]


def test_phone_and_phones_merge(normalizer):
    values, problems = normalizer.normalize(
        {"phone": "garbage", "phones": ["89031234567", 79161234567.0, "89031234567", "мусор"]}
    )
    assert values["phone"] == "+79031234567"
    assert values["phones"] == ["+79031234567", "+79161234567"]
    assert problems == ["phone: 'garbage' is not a phone number", "phones: 'мусор' is not a phone number"]


def test_primary_phone_comes_from_phone_field(normalizer):
    values, _ = normalizer.normalize({"phones": "84951234567", "phone": "89161234567"})
    assert values["phone"] == "+79161234567"
    assert values["phones"] == ["+79161234567", "+74951234567"]


@pytest.mark.parametrize(
    ("phone", "city", "expected"),
    [
        ("123-45-67", "Казань", "+78431234567"),  # a 3-digit code and 7 digits
        ("123 45 67", "г. Казань", "+78431234567"),  # the city as people write it
        ("1234567", "Kazan", "+78431234567"),
        ("12-34-56", "Омск", "+73812123456"),  # a 4-digit code and 6 digits
        ("12-34-56", "Тольятти", "+78482123456"),
    ],
)
def test_a_local_phone_is_completed_with_the_area_code_of_its_city(normalizer, phone, city, expected):
    values, problems = normalizer.normalize({"phone": phone, "city": city, "first_name": "Иван"})
    assert (values.get("phone"), values.get("phones"), problems) == (expected, [expected], [])


def test_a_local_phone_is_not_completed_when_the_city_does_not_say_which_code(normalizer):
    # Moscow has two codes; Omsk's numbers have 6 digits; no city; a city without a code
    for phone, city in (("123-45-67", "Мск"), ("123-45-67", "Омск"), ("123-45-67", None), ("23-45-67", "Урюпинск")):
        values, problems = normalizer.normalize({"phone": phone, "city": city})
        assert "phone" not in values, (phone, city)
        assert len(problems) == 1 and problems[0].startswith(f"phone: {phone!r} is "), problems
    _, problems = normalizer.normalize({"phone": "123-45-67, 8 916 123 45 67", "city": "Москва"})
    assert problems == ["phone: '123-45-67' is a local number without its area code; write it with the code "
                        "(495 or 499)"]
    # a full number is never touched, nor a region outside +7
    assert normalizer.normalize({"phone": "8 (916) 123-45-67", "city": "Казань"})[0]["phone"] == "+79161234567"
    assert "phone" not in Normalizer("DE").normalize({"phone": "123-45-67", "city": "Казань"})[0]


def test_every_city_area_code_is_a_valid_number_in_its_region():
    from phonenumbers import geocoder

    from hub.normalize import DATA_DIR, _city_table
    from hub.yaml_loader import load_yaml

    table = load_yaml(DATA_DIR / "city_phone_codes.yaml")
    canonical = set(_city_table().values())
    assert len(table) >= 30
    for city, entry in table.items():
        assert city in canonical, f"{city} is not a canonical name of city_aliases.yaml"
        for code in entry["codes"]:
            number = phonenumbers.parse("+7" + code + "2" * (10 - len(code)))
            assert phonenumbers.is_valid_number(number), (city, code)
            assert entry["region"] in geocoder.description_for_number(number, "ru"), (city, code)


def test_same_bad_fragment_reported_once(normalizer):
    _, problems = normalizer.normalize({"phone": "abc", "phones": ["abc"]})
    assert problems == ["phone: 'abc' is not a phone number"]


def test_bad_email(normalizer):
    values, problems = normalizer.normalize({"email": "not-an-email"})
    assert "email" not in values
    assert problems == ["email: 'not-an-email' is not an email address"]


def test_empty_values_are_absent(normalizer):
    values, problems = normalizer.normalize(
        {"full_name": " \u00a0", "email": "", "phone": None, "city": "\u200b", "company": "  ", "birthday": "",
         "phones": [], "emails": [None, ""]}
    )
    assert values == {}
    assert problems == []


def test_full_name_from_parts(normalizer):
    values, problems = normalizer.normalize({"first_name": "иван", "last_name": "ПЕТРОВ", "middle_name": "сергеевич"})
    assert problems == []
    assert values["full_name"] == "Петров Иван Сергеевич"
    assert (values["last_name"], values["first_name"], values["middle_name"]) == ("Петров", "Иван", "Сергеевич")


def test_parts_from_full_name_do_not_override_given_parts(normalizer):
    values, _ = normalizer.normalize({"full_name": "Иван Петров", "first_name": "Ванечка"})
    assert values["first_name"] == "Ванечка"
    assert values["last_name"] == "Петров"
    assert values["full_name"] == "Иван Петров"


def test_mixed_case_name_is_kept(normalizer):
    values, _ = normalizer.normalize({"last_name": "McDonald", "first_name": "ДЖОН"})
    assert values["last_name"] == "McDonald"
    assert values["first_name"] == "Джон"


@pytest.mark.parametrize(
    "cell, name",
    [
        ("Dasha Romanova <d.romanova@mail.ru>", ("Dasha Romanova", "Dasha", "Romanova")),
        ('"Романова Дарья" <d.romanova@mail.ru>', ("Романова Дарья", "Дарья", "Романова")),
        ("Даша <d.romanova@mail.ru>", ("Даша", "Даша", None)),
        # not a person's name: an organisation, a mailbox, digits, two addresses, no name
        ("ООО Ромашка <info@romashka.ru>", None),
        ("Support Team <help@example.com>", None),
        ("Отдел продаж <sales@example.ru>", None),
        ("12345 <a@example.ru>", None),
        ("Иван <ivan@mail.ru>, Пётр <petr@mail.ru>", None),
        ("<d.romanova@mail.ru>", None),
        ("d.romanova@mail.ru", None),
    ],
)
def test_a_nameless_record_takes_the_name_its_address_was_written_with(normalizer, cell, name):
    """Mail programs export «Name <address>»: the name was dropped with the brackets, and
    the record could only join others by its address."""
    from hub.mapping import Mapping

    mapped = Mapping.from_dict({"fields": {"email": {"from": "Email", "transforms": ["email"]}}}, "m.yaml")
    for values in (normalizer.normalize({"email": cell})[0], normalizer.normalize(mapped.apply({"Email": cell}, []))[0]):
        got = (values.get("full_name"), values.get("first_name"), values.get("last_name"))
        assert got == (name or (None, None, None)), (cell, values)
        assert values["email"] in ("d.romanova@mail.ru", "info@romashka.ru", "help@example.com", "sales@example.ru",
                                   "a@example.ru", "ivan@mail.ru")
    # a record with a name keeps it
    values, _ = normalizer.normalize({"email": "Dasha Romanova <d.romanova@mail.ru>", "first_name": "Дарья"})
    assert (values["full_name"], values.get("last_name")) == ("Дарья", None)


def test_yo_is_kept_and_homoglyphs_fixed(normalizer):
    values, _ = normalizer.normalize({"full_name": "Сeмёнов Пётр"})  # Latin "e"
    assert values["full_name"] == "Семёнов Пётр"
    assert values["last_name"] == "Семёнов"


def test_name_without_letters_is_a_problem(normalizer):
    values, problems = normalizer.normalize({"first_name": "12345"})
    assert "first_name" not in values and "full_name" not in values
    assert problems == ["first_name: '12345' is not a name"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Москва", "Москва"),
        ("москва", "Москва"),
        ("МОСКВА", "Москва"),
        ("Мск", "Москва"),
        ("msk", "Москва"),
        ("Moscow", "Москва"),
        ("г. Москва", "Москва"),
        ("г Москва", "Москва"),
        ("г.Москва", "Москва"),
        ("Москва г.", "Москва"),
        ("город Москва", "Москва"),
        ("СПб", "Санкт-Петербург"),
        ("Питер", "Санкт-Петербург"),
        ("санкт петербург", "Санкт-Петербург"),
        ("St. Petersburg", "Санкт-Петербург"),
        ("spb", "Санкт-Петербург"),
        ("Екб", "Екатеринбург"),
        ("Екат", "Екатеринбург"),
        ("Нск", "Новосибирск"),
        ("Новосиб", "Новосибирск"),
        ("НН", "Нижний Новгород"),
        ("Нижний", "Нижний Новгород"),
        ("Ростов", "Ростов-на-Дону"),
        ("ростов на дону", "Ростов-на-Дону"),
        ("казань", "Казань"),
        ("КРАСНОДАР", "Краснодар"),
        ("самара", "Самара"),
        ("Mocквa", "Москва"),  # Latin look-alikes
        ("тверь", "Тверь"),  # not in the table: re-cased only
        ("г. Тверь", "Тверь"),
        ("новый уренгой", "Новый Уренгой"),
        ("комсомольск-на-амуре", "Комсомольск-на-Амуре"),
        ("Старый Оскол", "Старый Оскол"),
    ],
)
def test_cities(normalizer, raw, expected):
    values, problems = normalizer.normalize({"city": raw})
    assert values == {"city": expected}
    assert problems == []


def test_city_aliases_extend_and_override():
    custom = Normalizer(city_aliases={"Мытищи-2": "Мытищи", "МСК": "Moscow"})
    assert custom.normalize({"city": "мытищи 2"})[0]["city"] == "Мытищи"
    assert custom.normalize({"city": "мск"})[0]["city"] == "Moscow"
    assert custom.normalize({"city": "спб"})[0]["city"] == "Санкт-Петербург"
    # the built-in table is not changed for other instances
    assert Normalizer().normalize({"city": "мск"})[0]["city"] == "Москва"


@pytest.mark.parametrize(
    "raw, expected",
    [("01.02.1990", "1990-02-01"), (32874, "1990-01-01"), ("32874", "1990-01-01"),
     (dt.datetime(1990, 2, 1, 10, 0), "1990-02-01"), ("1990-02-01", "1990-02-01")],
)
def test_birthday(normalizer, raw, expected):
    assert normalizer.normalize({"birthday": raw}) == ({"birthday": expected}, [])


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("31.02.1990", "birthday: '31.02.1990' is not a valid date (day is out of range for month)"),
        ("скоро", "birthday: 'скоро' is not a date"),
        ("2090-01-01", "birthday: '2090-01-01' is not a plausible birth date"),
        ("1850-01-01", "birthday: '1850-01-01' is not a plausible birth date"),
    ],
)
def test_bad_birthday(normalizer, raw, problem):
    assert normalizer.normalize({"birthday": raw}) == ({}, [problem])


def test_custom_attributes_pass_through(normalizer):
    values, _ = normalizer.normalize({"x_source": " site ", "x_score": 5, "x_empty": "", "x_none": None})
    assert values == {"x_source": " site ", "x_score": 5}


def test_huge_values_are_refused(normalizer):
    huge = "Я" * (10 * 1024 * 1024)
    started = time.perf_counter()
    values, problems = normalizer.normalize({"full_name": huge, "city": huge, "company": huge, "phone": huge,
                                             "email": huge, "birthday": huge})
    assert time.perf_counter() - started < 2.0
    assert values == {}
    assert len(problems) == 6 and all("too long" in p for p in problems)


def test_never_raises_on_odd_types(normalizer):
    odd = [object(), [1, 2], {"a": 1}, b"\x00\xff", 3.5, -1, float("inf"), True, Decimal("NaN"), (None,)]
    for value in odd:
        for field in ("full_name", "first_name", "phone", "phones", "email", "emails", "city", "birthday", "company"):
            values, problems = normalizer.normalize({field: value})
            assert isinstance(values, dict) and isinstance(problems, list)


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("1990-02-30", "birthday: '1990-02-30' is not a valid date (day is out of range for month)"),
        ("0000-01-01", "birthday: '0000-01-01' is not a valid date (year 0 is out of range)"),
        ("1899-12-31", "birthday: '1899-12-31' is not a plausible birth date"),
    ],
)
def test_bad_iso_birthday(normalizer, raw, problem):
    assert normalizer.normalize({"birthday": raw}) == ({}, [problem])


@pytest.mark.parametrize(
    "raw, numbers, problems",
    [
        ("+79161234567", ["+79161234567"], []),
        ("+70000000000", [], ["'+70000000000' is not a valid phone number"]),
        ("80000000000", [], ["'80000000000' is not a valid phone number"]),
        ("+7 (000) 000-00-00", [], ["'+7 (000) 000-00-00' is not a valid phone number"]),
        ("  8 (916)  123-45-67 ", ["+79161234567"], []),
        ("(916) 123 45 67 - ", ["+79161234567"], []),
    ],
)
def test_plain_phone_cells(raw, numbers, problems):
    assert normalize_phones(raw) == (numbers, problems)
    assert normalize_phones(raw) == (numbers, problems)  # the second time too


def test_domain_typo_fixed_once_and_kept():
    assert normalize_emails("ivan@gmail.co") == (["ivan@gmail.com"], [])
    assert normalize_emails("ivan@GMIAL.COM") == (["ivan@gmail.com"], [])
    assert normalize_emails("ivan@gmail.com") == (["ivan@gmail.com"], [])
    assert normalize_emails(" IVAN@MAIL.RU ") == (["ivan@mail.ru"], [])
    assert normalize_emails("ivan@mail.local") == normalize_emails("ivan@mail.local")  # special-use names stay refused
    assert normalize_emails("ivan@mail.local")[0] == []


def test_split_full_name_gives_a_new_dict_each_time():
    first = split_full_name("Петров Иван")
    first["last_name"] = "changed"
    assert split_full_name("Петров Иван") == {"last_name": "Петров", "first_name": "Иван"}


def test_city_text_need_not_be_clean(normalizer):
    assert normalizer.normalize({"city": " г.\u00a0Мск\u200b "}) == ({"city": "Москва"}, [])
    assert normalizer.city(" тверь\u00a0 ") == normalizer.city("тверь") == "Тверь"
    assert normalizer.normalize({"city": "—"}) == ({}, [])


@pytest.mark.parametrize(
    "raw",
    [
        {"full_name": "ПЕТРОВ иван", "phone": "8 (916) 123-45-67, +7 903 123 45 67",
         "email": " Ivan@Mail.RU; b@gmial.com", "city": "г. Мск", "birthday": "01.02.1990"},
        {"last_name": "петров", "first_name": "Ивaн", "phones": ["89161234567", 79031234567], "emails": ["A@B.RU"]},
        {"full_name": "Иванов И.С.", "phone": "+79161234567", "email": "ivan@gmail.co", "birthday": 32874},
    ],
)
def test_normalized_values_stay_as_they_are(normalizer, raw):
    values, _ = normalizer.normalize(raw)
    assert normalizer.normalize(values) == (values, [])


def test_long_names_are_not_kept_but_still_work(normalizer):
    name = "Петров " + "Иван" * 60
    assert normalizer.normalize({"full_name": name})[0]["full_name"] == name
    assert split_full_name(name) == split_full_name(name)


def test_unknown_region_is_rejected():
    with pytest.raises(ValueError):
        Normalizer(default_region="ZZ")


def test_speed_of_typical_rows(normalizer):
    rows = [
        {
            "full_name": f"Петров{i % 50} Иван Сергеевич",
            "phone": f"8 (916) {i % 1000:03d}-{i % 100:02d}-67",
            "email": f"User{i}@Mail.ru",
            "city": "г. Мск",
        }
        for i in range(2000)
    ]
    started = time.perf_counter()
    for row in rows:
        normalizer.normalize(row)
    assert time.perf_counter() - started < 2.0  # about 0.1 s on a laptop
