"""Mappings: parsing, errors with key paths, apply, reverse and column checks."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from hub.errors import ConfigError, SkippableRecord
from hub.mapping import Mapping
from hub.model import DEFAULT_COLUMNS
from hub.normalize import Normalizer

FULL = textwrap.dedent(
    """\
    # a mapping as a person writes it
    fields:
      full_name: {from: ФИО, transforms: [split_name]}
      phone: {from: Телефон, transforms: [phone]}
      email: {from: [Email, E-mail], transforms: [strip, lower, email]}
      birthday: {from: Дата рождения, transforms: [{date: DD.MM.YYYY}]}
      city: {from: Город, transforms: [strip, {map: {Мск: Москва, "-": null}}], default: Москва}
      company: {concat: [Организация, Филиал], sep: ", "}
      x_manager:
        - {from: Менеджер}
        - {from: Ответственный, transforms: [title]}
    """
)


def write(tmp_path: Path, text: str, name: str = "crm.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Mapping:
    return Mapping.load(write(tmp_path, text))


def config_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        Mapping.load(path)
    assert info.value.file == str(path)
    return info.value


@pytest.fixture
def full(tmp_path) -> Mapping:
    return Mapping.load(write(tmp_path, FULL))


# ------------------------------------------------------------------- loading


def test_load_full_example(full, tmp_path):
    assert full.source == str(tmp_path / "crm.yaml")
    assert full.id_column is None
    assert full.columns == {
        "ФИО", "Телефон", "Email", "E-mail", "Дата рождения", "Город", "Организация", "Филиал",
        "Менеджер", "Ответственный",
    }
    assert len(full.fingerprint) == 64 and int(full.fingerprint, 16) >= 0


def test_fingerprint_is_stable_and_changes_with_content(tmp_path):
    a = Mapping.from_dict({"fields": {"email": "Email", "phone": "Тел"}}, "a.yaml")
    b = Mapping.from_dict({"fields": {"phone": "Тел", "email": "Email"}}, "b.yaml")
    c = Mapping.from_dict({"fields": {"email": "Email", "phone": "Телефон"}}, "a.yaml")
    d = Mapping.from_dict({"fields": {"email": {"from": "Email", "transforms": ["lower"]}, "phone": "Тел"}}, "a.yaml")
    assert a.fingerprint == Mapping.from_dict({"fields": {"email": "Email", "phone": "Тел"}}, "x").fingerprint
    assert a.fingerprint == b.fingerprint  # key order does not matter
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3
    assert Mapping.identity().fingerprint not in {a.fingerprint, c.fingerprint}


def test_identity():
    identity = Mapping.identity()
    assert identity.source == "<default>"
    assert identity.id_column == "id"
    assert identity.columns == set(DEFAULT_COLUMNS)
    raw = {"id": "7", "full_name": "Иван Петров", "phone": "89161234567", "email": "", "other": "x"}
    assert identity.apply(raw) == {"full_name": "Иван Петров", "phone": "89161234567"}


@pytest.mark.parametrize(
    "columns,expected",
    [
        (["№", "ФИО", "Телефон", "E-mail", "Город", "Дата рождения"],
         {"full_name": "ФИО", "phone": "Телефон", "email": "E-mail", "city": "Город", "birthday": "Дата рождения"}),
        (["Email", "First Name", "Last Name", "Status"],
         {"email": "Email", "first_name": "First Name", "last_name": "Last Name"}),
        # a form's lone «Имя» holds a whole name as often as a first name; «Дата» is no birthday
        (["tranid", "Имя", "Телефон", "Email", "Город", "Дата"],
         {"full_name": "Имя", "phone": "Телефон", "email": "Email", "city": "Город"}),
        (["Фамилия", "Имя", "Отчество", "Моб. телефон"],
         {"last_name": "Фамилия", "first_name": "Имя", "middle_name": "Отчество", "phone": "Моб. телефон"}),
        # case, ё, spaces and punctuation do not matter; a canonical column wins over a header
        (["ф.и.о.", "E_MAIL", "phone", "Телефон"], {"full_name": "ф.и.о.", "email": "E_MAIL"}),
        (["Комментарий", "Сумма"], {}),
        # an SMS list, a shop's export
        (["MSISDN", "Имя", "Дата отправки"], {"phone": "MSISDN", "full_name": "Имя"}),
        (["id", "Номер", "SMS", "Имя"], {"phone": "Номер", "full_name": "Имя"}),  # an SMS list; SMS: a yes/no
        (["Номер", "Дата", "Телефон"], {"phone": "Телефон"}),  # a document's number beside the phone
        (["Заказ", "Покупатель", "Телефон для связи", "E-mail клиента"],
         {"full_name": "Покупатель", "phone": "Телефон для связи", "email": "E-mail клиента"}),
    ],
)
def test_common_headers_of_an_unmapped_source(columns, expected):
    from hub.mapping import recognise_columns

    assert recognise_columns(columns) == expected


def test_the_default_mapping_reads_common_headers():
    identity = Mapping.identity()
    raw = {"№": "1", "ФИО": "Романова Дарья Михайловна", "Телефон": "8 (968) 610-24-89", "E-mail": "",
           "Дата рождения": "01.02.1990"}
    assert identity.apply(raw) == {"full_name": "Романова Дарья Михайловна", "phone": "8 (968) 610-24-89",
                                   "birthday": "01.02.1990"}
    # records of another source with canonical columns are read as before
    assert identity.apply({"id": "7", "full_name": "Иван Петров"}) == {"full_name": "Иван Петров"}


def test_column_names_that_yaml_reads_as_numbers(tmp_path):
    mapping = load(tmp_path, """\
        fields:
          phone: 2024
          email: {from: [1, E-mail]}
        """)
    assert mapping.columns == {"2024", "1", "E-mail"}
    assert mapping.apply({"2024": "89161234567", "1": "a@b.ru"}) == {"phone": "89161234567", "email": "a@b.ru"}


# -------------------------------------------------------------------- errors


def test_unknown_target_with_hint(tmp_path):
    error = config_error(tmp_path, """\
        fields:
          phnoe: Телефон
        """)
    assert error.path == "fields.phnoe"
    assert "unknown field 'phnoe'" in error.message
    assert "did you mean 'phone'?" in error.hint
    assert "x_" in error.hint


def test_custom_targets_are_allowed(tmp_path):
    mapping = load(tmp_path, """\
        fields:
          x_utm_source: UTM
        """)
    assert mapping.apply({"UTM": " google "}) == {"x_utm_source": " google "}


def test_id_is_not_a_field(tmp_path):
    error = config_error(tmp_path, "fields:\n  id: ID\n")
    assert error.path == "fields.id"
    assert "id_column" in error.hint and "hub.yaml" in error.hint


def test_the_record_id_is_not_set_in_a_mapping(tmp_path):
    """The id column is the connector's option: a mapping's ``id:`` would do nothing."""
    error = config_error(tmp_path, "id: Код\nfields:\n  email: Email\n")
    assert error.path == "id"
    assert "the record id is not set in a mapping" in error.message
    assert "id_column: Код" in error.hint


def test_unknown_transform_with_hint(tmp_path):
    error = config_error(tmp_path, """\
        fields:
          email: {from: Email, transforms: [strip, lowr]}
        """)
    assert error.path == "fields.email.transforms[1]"
    assert error.message.endswith("unknown transform 'lowr'")
    assert "did you mean 'lower'?" in error.hint


def test_unknown_key_with_hint(tmp_path):
    error = config_error(tmp_path, """\
        fields:
          phone: {form: Телефон}
        """)
    assert error.path == "fields.phone.form"
    assert "unknown key 'form'" in error.message
    assert "did you mean 'from'?" in error.hint


def test_unknown_top_level_key(tmp_path):
    error = config_error(tmp_path, "feilds:\n  phone: T\n")
    assert error.path in ("feilds", "fields")


def test_missing_fields(tmp_path):
    error = config_error(tmp_path, "# nothing mapped yet\n{}\n")
    assert error.path == "fields"
    assert "missing" in error.message


def test_bad_date_format(tmp_path):
    error = config_error(tmp_path, """\
        fields:
          birthday: {from: ДР, transforms: [{date: DD-MM-YY}]}
        """)
    assert error.path == "fields.birthday.transforms[0].date"
    assert "unknown date format 'DD-MM-YY'" in error.message
    assert "DD.MM.YYYY" in error.hint


def test_param_transform_without_value(tmp_path):
    error = config_error(tmp_path, """\
        fields:
          birthday: {from: ДР, transforms: [date]}
        """)
    assert error.path == "fields.birthday.transforms[0]"
    assert "needs a value" in error.message


def test_transform_with_extra_key(tmp_path):
    error = config_error(tmp_path, """\
        fields:
          birthday: {from: ДР, transforms: [{date: DD.MM.YYYY, strict: true}]}
        """)
    assert error.path == "fields.birthday.transforms[0].strict"
    assert "unknown key 'strict'" in error.message


def test_two_transforms_in_one_item(tmp_path):
    error = config_error(tmp_path, """\
        fields:
          city: {from: Г, transforms: [{map: {a: b}, replace: {c: d}}]}
        """)
    assert error.path == "fields.city.transforms[0]"
    assert "one transform per list item" in error.message


def test_wrong_type_for_strict(tmp_path):
    error = config_error(tmp_path, """\
        fields:
          city: {from: Г, transforms: [{map: {a: b}, strict: maybe}]}
        """)
    assert error.path == "fields.city.transforms[0].strict"
    assert "boolean" in error.message


def test_split_name_only_on_full_name(tmp_path):
    error = config_error(tmp_path, """\
        fields:
          last_name: {from: ФИО, transforms: [split_name]}
        """)
    assert error.path == "fields.last_name.transforms[0]"
    assert "only works on full_name" in error.message


def test_phone_must_be_last(tmp_path):
    error = config_error(tmp_path, """\
        fields:
          phone: {from: Т, transforms: [phone, strip]}
        """)
    assert error.path == "fields.phone.transforms[0]"
    assert "must be the last transform" in error.message


def test_phone_transform_on_wrong_field(tmp_path):
    error = config_error(tmp_path, "fields:\n  city: {from: Т, transforms: [phone]}\n")
    assert error.path == "fields.city.transforms[0]"


def test_from_and_concat_together(tmp_path):
    error = config_error(tmp_path, "fields:\n  company: {from: A, concat: [B, C]}\n")
    assert error.path == "fields.company"


def test_no_source_column(tmp_path):
    error = config_error(tmp_path, "fields:\n  company: {transforms: [strip]}\n")
    assert error.path == "fields.company"
    assert "no source column" in error.message


def test_wrong_shapes(tmp_path):
    assert config_error(tmp_path, "fields:\n  phone: true\n").path == "fields.phone"
    assert config_error(tmp_path, "fields:\n  phone: {from: T, transforms: strip}\n").path == "fields.phone.transforms"
    assert config_error(tmp_path, "fields:\n  phone: [{from: T}, 5.5, {from: U}]\n").path == "fields.phone[1]"
    assert config_error(tmp_path, "fields:\n  phone: {from: T, transforms: [[strip]]}\n").path == "fields.phone.transforms[0]"
    assert config_error(tmp_path, "fields:\n  phone: {from: T, transforms: [{replace: {'': x}}]}\n").path == (
        "fields.phone.transforms[0].replace"
    )


def test_empty_and_non_mapping_documents(tmp_path):
    assert "empty" in config_error(tmp_path, "").message
    assert "must be a YAML mapping" in config_error(tmp_path, "- a\n- b\n").message
    assert "no fields" in config_error(tmp_path, "fields: {}\n").message


def test_yaml_problems_become_config_errors(tmp_path):
    error = config_error(tmp_path, "fields:\n  phone: A\n  phone: B\n")
    assert "duplicate key 'phone'" in error.message
    with pytest.raises(ConfigError) as info:
        Mapping.load(tmp_path / "missing.yaml")
    assert "not found" in info.value.message


def test_from_dict_names_the_source():
    with pytest.raises(ConfigError) as info:
        Mapping.from_dict({"fields": {"emial": "E"}}, "mappings/site.yaml")
    assert str(info.value).startswith("mappings/site.yaml: fields.emial: unknown field 'emial'")


# --------------------------------------------------------------------- apply


def test_apply_full_example(full):
    raw = {
        "ID": 5,
        "ФИО": "ПЕТРОВ иван сергеевич",
        "Телефон": "8 916 123-45-67, 8 (495) 123-45-67",
        "Email": "",
        "E-mail": " Ivan@Mail.RU ",
        "Дата рождения": "01.02.1990",
        "Город": "-",
        "Организация": "ООО Ромашка",
        "Филиал": "",
        "Ответственный": "ольга",
    }
    assert full.apply(raw) == {
        "full_name": "ПЕТРОВ иван сергеевич",
        "last_name": "Петров",
        "first_name": "Иван",
        "middle_name": "Сергеевич",
        "phone": "+79161234567",
        "phones": ["+79161234567", "+74951234567"],
        "email": "ivan@mail.ru",
        "emails": ["ivan@mail.ru"],
        "birthday": "1990-02-01",
        "city": "Москва",  # "-" maps to nothing, then the default applies
        "company": "ООО Ромашка",
        "x_manager": "Ольга",
    }


def test_apply_then_normalize(full):
    values = full.apply({"ФИО": "Иван Петров", "Телефон": "abc, 89161234567", "Город": "мск"})
    normalized, problems = Normalizer().normalize(values)
    assert normalized["phone"] == "+79161234567"
    assert normalized["phones"] == ["+79161234567"]
    assert normalized["city"] == "Москва"
    assert problems == ["phones: 'abc' is not a phone number"]


def test_missing_and_empty_cells_are_absent(full):
    assert full.apply({}) == {"city": "Москва"}
    assert full.apply({"ФИО": None, "Телефон": "", "E-mail": "\u00a0\u200b", "Город": None}) == {"city": "Москва"}


def test_from_list_takes_first_non_empty():
    mapping = Mapping.from_dict({"fields": {"email": {"from": ["A", "B", "C"]}}}, "m")
    assert mapping.apply({"A": "", "B": "b@x.ru", "C": "c@x.ru"}) == {"email": "b@x.ru"}
    assert mapping.apply({"A": "a@x.ru", "B": "b@x.ru"}) == {"email": "a@x.ru"}


def test_alternatives_first_non_empty_result_wins():
    mapping = Mapping.from_dict(
        {"fields": {"city": [{"from": "A", "transforms": [{"map": {"нет": None}}]}, {"from": "B"}]}}, "m"
    )
    assert mapping.apply({"A": "нет", "B": "Тверь"}) == {"city": "Тверь"}
    assert mapping.apply({"A": "Казань", "B": "Тверь"}) == {"city": "Казань"}
    assert mapping.apply({}) == {}


def test_concat_skips_empty_parts():
    mapping = Mapping.from_dict({"fields": {"company": {"concat": ["A", "B", "C"], "sep": " / "}}}, "m")
    assert mapping.apply({"A": " Ромашка ", "B": None, "C": "Тверь"}) == {"company": "Ромашка / Тверь"}
    assert mapping.apply({"A": "", "B": " "}) == {}


@pytest.mark.parametrize(
    "transforms, value, expected",
    [
        (["strip"], "  a\u00a0 b\u200b ", "a b"),
        (["lower"], "AbC", "abc"),
        (["upper"], "abc", "ABC"),
        (["title"], "иван петров", "Иван Петров"),
        ([{"digits": True}], "+7 (916) 123-45-67", "79161234567"),
        ([{"digits": True}], 79161234567.0, "79161234567"),
        ([{"replace": {"(": "", ")": ""}}], "(916)", "916"),
        ([{"replace": {".*": "X"}}], "a.*b", "aXb"),  # plain text, not a pattern
        ([{"map": {"М": "Мужской", "Ж": "Женский"}}], " м ", "Мужской"),
        ([{"map": {"М": "Мужской"}}], "Другое", "Другое"),
        ([{"date": "DD.MM.YYYY"}], "01.02.1990", "1990-02-01"),
        ([{"date": "YYYY-MM-DD"}], "1990-02-01", "1990-02-01"),
        ([{"date": "MM/DD/YYYY"}], "02/01/1990", "1990-02-01"),
        ([{"date": "DD/MM/YYYY"}], "01/02/1990", "1990-02-01"),
        ([{"date": "excel"}], 32874, "1990-01-01"),
        ([{"date": "auto"}], "1 февраля 1990", "1990-02-01"),
        ([{"date": "DD.MM.YYYY"}], dt.date(1990, 2, 1), "1990-02-01"),
        (["strip", {"default": "нет"}], "  ", "нет"),
        ([{"map": {"-": None}}, {"default": "?"}], "-", "?"),
    ],
)
def test_transforms(transforms, value, expected):
    mapping = Mapping.from_dict({"fields": {"x_v": {"from": "V", "transforms": transforms}}}, "m")
    assert mapping.apply({"V": value}) == {"x_v": expected}


@pytest.mark.parametrize(
    "transforms, value, field_default, expected",
    [
        # a value that becomes empty on the way is no value: the next default applies
        ([{"map": {"a": ""}}, {"default": "d"}], "a", None, {"x_v": "d"}),
        ([{"map": {"a": "  "}}], "a", None, {}),
        ([{"map": {"a": None}}, "upper", {"default": "z"}], "A", None, {"x_v": "z"}),
        ([{"replace": {"x": ""}}], "xx", "d", {"x_v": "d"}),
        ([{"replace": {"x": " "}}, {"default": "d"}], "x", None, {"x_v": "d"}),
        (["lower", "strip"], "\u200b", None, {}),
        # an empty default is no value either
        ([{"default": " "}], "", None, {}),
        ([{"default": ""}], "", 0, {"x_v": 0}),
        # a default feeds the transforms after it
        ([{"default": "нет"}, "upper"], None, None, {"x_v": "НЕТ"}),
        (["strip", {"default": 5}], " ", None, {"x_v": 5}),
    ],
)
def test_empty_values_between_transforms(transforms, value, field_default, expected):
    spec = {"from": "V", "transforms": transforms}
    if field_default is not None:
        spec["default"] = field_default
    mapping = Mapping.from_dict({"fields": {"x_v": spec}}, "m")
    assert mapping.apply({"V": value}) == expected


@pytest.mark.parametrize(
    "fmt, value, expected",
    [
        ("DD.MM.YYYY", "01.02.1990", "1990-02-01"),
        ("DD.MM.YYYY", "1.2.1990", "1990-02-01"),
        ("DD.MM.YYYY", " 01.02.1990 г. ", "1990-02-01"),
        ("YYYY-MM-DD", "1990-2-1", "1990-02-01"),
        ("auto", "1990-02-01", "1990-02-01"),
        ("auto", "01.02.1990", "1990-02-01"),
    ],
)
def test_date_transform_spellings(fmt, value, expected):
    mapping = Mapping.from_dict({"fields": {"birthday": {"from": "Д", "transforms": [{"date": fmt}]}}}, "m")
    assert mapping.apply({"Д": value}) == {"birthday": expected}


def test_rejected_value_drops_the_field_and_its_alternatives():
    mapping = Mapping.from_dict(
        {"fields": {"birthday": [{"from": "A", "transforms": [{"date": "DD.MM.YYYY"}]}, {"from": "B"}], "email": "E"}},
        "m",
    )
    problems: list[str] = []
    assert mapping.apply({"A": "31.02.1990", "B": "1990-01-01", "E": "a@b.ru"}, problems) == {"email": "a@b.ru"}
    assert problems == ["birthday: '31.02.1990' is not a DD.MM.YYYY date"]
    assert mapping.apply({"A": "", "B": "1990-01-01"}, problems) == {"birthday": "1990-01-01"}
    assert len(problems) == 1


def test_default_region_can_be_changed_after_loading():
    mapping = Mapping.from_dict({"fields": {"phone": {"from": "Т", "transforms": ["phone"]}}}, "m")
    assert mapping.apply({"Т": "(650) 253-0000"}) == {"phone": "(650) 253-0000", "phones": ["(650) 253-0000"]}
    mapping.default_region = "US"
    assert mapping.apply({"Т": "(650) 253-0000"}) == {"phone": "+16502530000", "phones": ["+16502530000"]}


def test_unknown_region_fails_when_a_phone_is_read():
    mapping = Mapping.from_dict({"fields": {"phone": {"from": "Т", "transforms": ["phone"]}}}, "m", default_region="ZZ")
    assert mapping.apply({}) == {}
    with pytest.raises(ValueError, match="unknown phone region 'ZZ'"):
        mapping.apply({"Т": "89161234567"})


def test_mapping_survives_copy_and_pickle(full):
    import copy
    import pickle

    raw = {"ФИО": "Петров Иван", "Телефон": "8 916 123 45 67", "E-mail": "A@B.RU", "Город": "мск"}
    expected = full.apply(raw)
    for clone in (copy.deepcopy(full), pickle.loads(pickle.dumps(full))):
        assert clone.apply(raw) == expected
        assert clone.fingerprint == full.fingerprint


def test_map_to_null_makes_field_absent():
    mapping = Mapping.from_dict({"fields": {"city": {"from": "Г", "transforms": [{"map": {"-": None}}]}}}, "m")
    assert mapping.apply({"Г": " - "}) == {}


def test_bad_date_skips_record(full):
    with pytest.raises(SkippableRecord) as info:
        full.apply({"Дата рождения": "31.02.1990"})
    assert str(info.value) == "birthday: '31.02.1990' is not a DD.MM.YYYY date"
    with pytest.raises(SkippableRecord) as info:
        full.apply({"Дата рождения": "1990-02-01"})
    assert str(info.value) == "birthday: '1990-02-01' is not a DD.MM.YYYY date"


def test_bad_excel_date_skips_record():
    mapping = Mapping.from_dict({"fields": {"birthday": {"from": "Д", "transforms": [{"date": "excel"}]}}}, "m")
    with pytest.raises(SkippableRecord, match="birthday: 'вчера' is not an Excel date serial number"):
        mapping.apply({"Д": "вчера"})


def test_strict_map_miss_skips_record():
    mapping = Mapping.from_dict(
        {"fields": {"x_gender": {"from": "Пол", "transforms": [{"map": {"М": "m", "Ж": "f"}, "strict": True}]}}}, "m"
    )
    assert mapping.apply({"Пол": "ж"}) == {"x_gender": "f"}
    with pytest.raises(SkippableRecord, match="x_gender: 'Кот' is not one of the mapped values"):
        mapping.apply({"Пол": "Кот"})
    assert mapping.apply({"Пол": ""}) == {}  # an empty cell is not a miss


def test_phone_and_email_transforms_set_lists():
    mapping = Mapping.from_dict(
        {"fields": {"phone": {"from": "Тел", "transforms": ["phone"]},
                    "phones": {"from": "Доп", "transforms": ["phone"]},
                    "email": {"from": "Почта", "transforms": ["email"]}}},
        "m",
    )
    values = mapping.apply({"Тел": 79161234567.0, "Доп": "84951234567; 89161234567", "Почта": "A@B.RU b@gmial.com"})
    assert values == {
        "phone": "+79161234567",
        "phones": ["+79161234567", "+74951234567"],
        "email": "a@b.ru",
        "emails": ["a@b.ru", "b@gmail.com"],
    }


def test_phone_transform_keeps_bad_fragment_for_the_normalizer():
    mapping = Mapping.from_dict({"fields": {"phone": {"from": "Тел", "transforms": ["phone"]}}}, "m")
    values = mapping.apply({"Тел": "нет"})
    assert values == {"phone": "нет", "phones": ["нет"]}
    normalized, problems = Normalizer().normalize(values)
    assert normalized == {}
    assert problems == ["phone: 'нет' is not a phone number"]


def test_explicit_parts_win_over_split_name():
    mapping = Mapping.from_dict(
        {"fields": {"full_name": {"from": "ФИО", "transforms": ["split_name"]}, "first_name": "Имя"}}, "m"
    )
    assert mapping.apply({"ФИО": "Петров Иван", "Имя": "Ванечка"}) == {
        "full_name": "Петров Иван",
        "first_name": "Ванечка",
        "last_name": "Петров",
    }


def test_huge_cell_does_not_hang():
    import time

    mapping = Mapping.from_dict(
        {"fields": {"phone": {"from": "Т", "transforms": ["strip", "phone"]},
                    "email": {"from": "E", "transforms": ["lower", "email"]}}}, "m"
    )
    huge = "9" * (10 * 1024 * 1024)
    started = time.perf_counter()
    values = mapping.apply({"Т": huge, "E": huge})
    normalized, problems = Normalizer().normalize(values)
    assert time.perf_counter() - started < 3.0
    assert normalized == {}
    assert len(problems) == 2 and all("too long" in p for p in problems)


# ------------------------------------------------------------- check_columns


def test_check_columns_passes(full):
    full.check_columns(
        ["ID", "ФИО", "Телефон", "E-mail", "Дата рождения", "Город", "Организация", "Филиал", "Ответственный"],
        "sheet 'Лист1'",
    )


def test_check_columns_missing_column():
    mapping = Mapping.from_dict({"fields": {"full_name": "ФИО", "phone": "Телефон", "email": "Email"}}, "mappings/crm.yaml")
    with pytest.raises(ConfigError) as info:
        mapping.check_columns(["ФИО", "Телефн", "Email"], "file contacts.csv")
    error = info.value
    assert error.file == "mappings/crm.yaml"
    assert error.path == "fields.phone"
    assert error.message == "mappings/crm.yaml: fields.phone: column 'Телефон' not found in file contacts.csv"
    assert "columns there: ФИО, Телефн, Email" in error.hint
    assert "did you mean 'Телефн'?" in error.hint


def test_check_columns_reports_first_field():
    mapping = Mapping.from_dict({"fields": {"email": "A", "phone": "B"}}, "m.yaml")
    with pytest.raises(ConfigError) as info:
        mapping.check_columns(["C"], "x")
    assert info.value.path == "fields.email"


def test_check_columns_from_list_needs_one():
    mapping = Mapping.from_dict({"fields": {"email": {"from": ["Email", "E-mail"]}}}, "m.yaml")
    mapping.check_columns(["E-mail"], "x")
    with pytest.raises(ConfigError) as info:
        mapping.check_columns(["Почта"], "x")
    assert "none of the columns 'Email', 'E-mail' found in x" in info.value.message


def test_check_columns_concat_needs_all():
    mapping = Mapping.from_dict({"fields": {"company": {"concat": ["A", "B"]}}}, "m.yaml")
    mapping.check_columns(["A", "B"], "x")
    with pytest.raises(ConfigError, match="column 'B' not found in x"):
        mapping.check_columns(["A"], "x")


def test_check_columns_alternatives_need_one():
    mapping = Mapping.from_dict({"fields": {"city": [{"from": "A"}, {"from": "B"}]}}, "m.yaml")
    mapping.check_columns(["B"], "x")
    with pytest.raises(ConfigError, match="column 'A' not found"):
        mapping.check_columns(["C"], "x")


def test_check_columns_default_only_field_needs_nothing():
    mapping = Mapping.from_dict({"fields": {"city": {"default": "Москва"}, "email": "E"}}, "m.yaml")
    mapping.check_columns(["E"], "x")
    assert mapping.apply({"E": "a@b.ru"}) == {"city": "Москва", "email": "a@b.ru"}


def test_check_columns_identity():
    identity = Mapping.identity()
    identity.check_columns(["email", "something else"], "file a.csv")
    identity.check_columns(["Имя", "Телефон"], "file a.csv")  # common headers are read too
    with pytest.raises(ConfigError) as info:
        identity.check_columns(["Комментарий", "Сумма"], "file a.csv")
    assert info.value.file == "<default>"
    assert "found in file a.csv" in info.value.message
    assert "columns there: Комментарий, Сумма" in info.value.hint


def test_check_columns_hint_is_capped():
    mapping = Mapping.from_dict({"fields": {"email": "E"}}, "m.yaml")
    with pytest.raises(ConfigError) as info:
        mapping.check_columns([f"col{i}" for i in range(500)], "x")
    assert "(470 more)" in info.value.hint
    assert len(info.value.hint) < 1000


# -------------------------------------------------------------------- reverse


def test_reverse(full):
    values = {
        "full_name": "Петров Иван Сергеевич",
        "last_name": "Петров",
        "phone": "+79161234567",
        "phones": ["+79161234567", "+74951234567"],
        "email": "ivan@mail.ru",
        "birthday": "1990-02-01",
        "city": "Москва",
        "company": "ООО Ромашка",
        "x_manager": "Ольга",
    }
    assert full.reverse(values) == {
        "ФИО": "Петров Иван Сергеевич",  # split_name writes full_name
        "Телефон": "+79161234567",
        "Дата рождения": "01.02.1990",  # written back in the mapping's format
        "Город": "Мск",  # a one-to-one map is inverted
        "Менеджер": "Ольга",  # the first alternative
        # email reads a list of columns and company is a concat: not written
    }


def test_reverse_does_not_write_absent_values():
    mapping = Mapping.from_dict({"fields": {"email": "Email", "phone": "Тел", "x_id": "ID"}}, "m")
    assert mapping.reverse({"email": "a@b.ru"}) == {"Email": "a@b.ru"}


def test_reverse_keeps_map_that_is_not_one_to_one():
    mapping = Mapping.from_dict(
        {"fields": {"city": {"from": "Г", "transforms": [{"map": {"Мск": "Москва", "msk": "Москва"}}]}}}, "m"
    )
    assert mapping.reverse({"city": "Москва"}) == {"Г": "Москва"}


def test_reverse_lists_are_joined():
    mapping = Mapping.from_dict({"fields": {"phones": "Телефоны"}}, "m")
    assert mapping.reverse({"phones": ["+79161234567", "+74951234567"]}) == {"Телефоны": "+79161234567, +74951234567"}


def test_reverse_identity():
    values = {"full_name": "Иван Петров", "first_name": "Иван", "phone": "+79161234567", "phones": ["+79161234567"],
              "company": "X", "id": 5}
    assert Mapping.identity().reverse(values) == {"full_name": "Иван Петров", "first_name": "Иван",
                                                  "phone": "+79161234567"}
