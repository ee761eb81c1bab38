"""The strict YAML loader used for configuration files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.yaml_loader import MAX_YAML_BYTES, load_yaml


def write(tmp_path: Path, text: str | bytes, name: str = "conf.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str | bytes) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert info.value.file == str(path)
    return info.value


def test_plain_document(tmp_path):
    assert load_yaml(write(tmp_path, "a: 1\nb: [x, 'y']\nc: {d: null}\n")) == {"a": 1, "b": ["x", "y"], "c": {"d": None}}


def test_empty_file_is_none(tmp_path):
    assert load_yaml(write(tmp_path, "")) is None
    assert load_yaml(write(tmp_path, "# only a comment\n")) is None


def test_utf8_bom_is_accepted(tmp_path):
    assert load_yaml(write(tmp_path, "\ufeffгород: Москва\n".encode("utf-8"))) == {"город": "Москва"}


@pytest.mark.parametrize("word", ["no", "No", "NO", "yes", "Yes", "on", "On", "off", "OFF", "y", "n", "Y", "N"])
def test_yes_no_on_off_stay_strings(tmp_path, word):
    assert load_yaml(write(tmp_path, f"v: {word}\n")) == {"v": word}


@pytest.mark.parametrize("word, expected", [("true", True), ("True", True), ("FALSE", False), ("false", False)])
def test_true_false_are_booleans(tmp_path, word, expected):
    assert load_yaml(write(tmp_path, f"v: {word}\n")) == {"v": expected}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("+79161234567", "+79161234567"),
        ("0123", "0123"),
        ("007", "007"),
        ("0o17", "0o17"),
        ("0x1F", "0x1F"),
        ("1_000", "1_000"),
        ("1:30", "1:30"),
        ("+1", "+1"),
        (".inf", ".inf"),
        (".NaN", ".NaN"),
        ("89161234567", 89161234567),
        ("0", 0),
        ("-5", -5),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("-0.25", -0.25),
    ],
)
def test_numbers(tmp_path, text, expected):
    value = load_yaml(write(tmp_path, f"v: {text}\n"))["v"]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text", ["2024-01-02", "2024-01-02 10:00:00", "2024-01-02T10:00:00Z", "01.02.1990"])
def test_dates_stay_strings(tmp_path, text):
    assert load_yaml(write(tmp_path, f"v: {text}\n")) == {"v": text}


def test_null_forms(tmp_path):
    assert load_yaml(write(tmp_path, "a:\nb: ~\nc: null\nd: Null\n")) == {"a": None, "b": None, "c": None, "d": None}


def test_duplicate_keys(tmp_path):
    error = error_of(tmp_path, "fields:\n  phone: A\n  email: B\n  phone: C\n")
    assert "line 4: duplicate key 'phone' (first defined on line 2)" in error.message


def test_duplicate_keys_nested_in_lists(tmp_path):
    error = error_of(tmp_path, "items:\n  - {a: 1, a: 2}\n")
    assert "duplicate key 'a'" in error.message


def test_same_key_in_different_mappings_is_fine(tmp_path):
    assert load_yaml(write(tmp_path, "a: {x: 1}\nb: {x: 2}\n")) == {"a": {"x": 1}, "b": {"x": 2}}


def test_anchors_and_aliases_are_refused(tmp_path):
    error = error_of(tmp_path, "base: &b {x: 1}\nother: *b\n")
    assert "line 1" in error.message and "anchor 'b'" in error.message


def test_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    started = time.perf_counter()
    error = error_of(tmp_path, "\n".join(lines) + "\n")
    assert time.perf_counter() - started < 1.0
    assert "anchor" in error.message


def test_merge_keys_are_not_merged(tmp_path):
    assert load_yaml(write(tmp_path, "'<<': {a: 1}\n")) == {"<<": {"a": 1}}


def test_tabs_in_indentation(tmp_path):
    error = error_of(tmp_path, "fields:\n\tphone: A\n")
    assert "line 2: tab character in indentation" in error.message
    assert "spaces" in error.hint


def test_tab_inside_a_value_is_fine(tmp_path):
    assert load_yaml(write(tmp_path, 'v: "a\tb"\n')) == {"v": "a\tb"}


def test_syntax_error_names_the_line(tmp_path):
    error = error_of(tmp_path, "a: 1\nb: [1, 2\nc: 3\n")
    assert "line " in error.message


def test_big_file_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    with path.open("w", encoding="utf-8") as fh:
        line = "k: " + "x" * 1000 + "\n"
        for _ in range(MAX_YAML_BYTES // len(line) + 2):
            fh.write(line)
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert time.perf_counter() - started < 1.0
    assert "too large" in info.value.message


def test_not_utf8(tmp_path):
    error = error_of(tmp_path, "город: Москва\n".encode("cp1251"))
    assert "UTF-8" in error.message


def test_deep_nesting(tmp_path):
    error = error_of(tmp_path, "[" * 5000 + "]" * 5000)
    assert "nested too deeply" in error.message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml(tmp_path / "nope.yaml")


def test_complex_keys_are_refused(tmp_path):
    error = error_of(tmp_path, "? [a, b]\n: 1\n")
    assert "plain value" in error.message
