"""The csv connector: the conformance suite for CSV, TSV and XLSX, then the bad
files and faults it must survive."""

from __future__ import annotations

import csv
import datetime as dt
import errno
import inspect
import io
import json
import logging
import os
import tracemalloc
from pathlib import Path
from typing import Any

import openpyxl
import pydantic
import pytest

from hub.connector import ConnectorContext
from hub.errors import ConfigError, FatalError
from hub.model import Checkpoint, OutboundItem, RawRecord
from hub_plugins import csv_file
from hub_plugins.csv_file import CsvConnector, CsvOptions
from tests.conformance import ConnectorConformance, by_external_id, read_all

HOSTILE_TEXT = [
    "=1+2",
    '=HYPERLINK("http://evil.example","click")',
    "+7 916 123-45-67",
    "-2+3",
    "@SUM(A1)",
    "\tstarts with tab",
    "\rstarts with CR",
    "'=already quoted",
    "'plain apostrophe",
]


def connector_for(tmp_path: Path, name: str = "contacts.csv", content: bytes | None = None, **options: Any):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    context = ConnectorContext("contacts", tmp_path, logging.getLogger("test"))
    return CsvConnector(CsvOptions(path=name, **options), context)


def records_of(connector: CsvConnector, cursor: str | None = None) -> list[RawRecord]:
    return read_all(connector, cursor)[0]


def write_csv(path: Path, rows: list[list[Any]], *, encoding="utf-8-sig", delimiter=",", ending="\r\n") -> None:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=ending).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))


def write_xlsx(path: Path, rows: list[list[Any]], *, title: str = "Contacts", merge: str | None = None) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    if merge:
        sheet.merge_cells(merge)
    workbook.save(path)


def seed_rows(records: list[dict[str, Any]]) -> list[list[Any]]:
    header = list(records[0])
    return [header] + [[record.get(column, "") for column in header] for record in records]


# ---------------------------------------------------------------- conformance


class TestCsvConformance(ConnectorConformance):
    file_name = "contacts.csv"
    encoding = "utf-8-sig"
    delimiter = ";"
    break_modes = ("missing", "directory", "duplicate_header")

    def make_connector(self, tmp_path: Path) -> CsvConnector:
        self.file_path = tmp_path / self.file_name
        self.seed_tool(self.seed_records())
        return connector_for(tmp_path, self.file_name)

    def seed_tool(self, records: list[dict[str, Any]]) -> None:
        write_csv(self.file_path, seed_rows(records), encoding=self.encoding, delimiter=self.delimiter)

    def change_record(self, connector):
        records = self.seed_records()
        records[1]["city"] = "Новосибирск"
        self.seed_tool(records)
        return "2", {"city": "Новосибирск"}

    def break_tool(self, connector, mode):
        if mode == "missing":
            self.file_path.unlink()
        elif mode == "directory":
            self.file_path.unlink()
            self.file_path.mkdir()
        else:
            write_csv(self.file_path, [["id", "email", "id"], ["1", "a@example.com", "2"]])

    def tool_state(self, connector):
        return self.file_path.read_bytes()


class TestCp1251TsvConformance(TestCsvConformance):
    file_name = "contacts.tsv"
    encoding = "cp1251"
    delimiter = "\t"

    def test_keeps_its_encoding_and_delimiter_on_write(self, connector):
        connector.write(self.outbound_items())
        text = self.file_path.read_bytes().decode("cp1251")
        assert text.startswith("id\tfull_name\t")
        assert "Сидоров Пётр" in text


class TestXlsxConformance(ConnectorConformance):
    break_modes = ("missing", "directory", "corrupt")

    def seed_records(self):
        records = super().seed_records()
        records[0]["phone"] = 79161234567  # a number cell stays a number
        records[1]["birthday"] = dt.datetime(1990, 2, 1)
        records[0]["birthday"] = records[2]["birthday"] = ""
        return records

    def make_connector(self, tmp_path: Path) -> CsvConnector:
        self.file_path = tmp_path / "contacts.xlsx"
        rows = seed_rows(self.seed_records())
        write_xlsx(self.file_path, [[cell if cell != "" else None for cell in row] for row in rows])
        return connector_for(tmp_path, "contacts.xlsx")

    def change_record(self, connector):
        workbook = openpyxl.load_workbook(self.file_path)
        sheet = workbook.active
        sheet["E3"] = "Новосибирск"
        workbook.save(self.file_path)
        return "2", {"city": "Новосибирск"}

    def break_tool(self, connector, mode):
        self.file_path.unlink()
        if mode == "directory":
            self.file_path.mkdir()
        elif mode == "corrupt":
            self.file_path.write_bytes(b"PK\x03\x04 this is not a workbook")

    def tool_state(self, connector):
        return self.file_path.read_bytes()


# ---------------------------------------------------------------- options


def test_options_reject_what_cannot_work():
    for bad in (
        {"path": "contacts.xls"},
        {"path": "contacts.json"},
        {"path": "a.csv", "delimiter": ";;"},
        {"path": "a.csv", "encoding": "no-such-encoding"},
        {"path": "a.csv", "sheet": "Sheet1"},
        {"path": "a.xlsx", "delimiter": ","},
        {"path": "a.csv", "header_row": 0},
        {"path": "a.csv", "unknown": 1},
    ):
        with pytest.raises(pydantic.ValidationError):
            CsvOptions(**bad)
    assert CsvOptions(path="a.tsv", delimiter="tab").delimiter == "\t"
    assert CsvOptions(path="A.XLSX", sheet="Клиенты").sheet == "Клиенты"


def test_relative_path_resolves_against_the_config_folder(tmp_path):
    (tmp_path / "data").mkdir()
    connector = connector_for(tmp_path, "data/contacts.csv", b"id,name\r\n1,A\r\n")
    assert connector.path == tmp_path / "data" / "contacts.csv"
    assert [r.values for r in records_of(connector)] == [{"id": "1", "name": "A"}]


# ---------------------------------------------------------------- encodings and bytes


def test_utf8_with_bom_gives_clean_header(tmp_path):
    connector = connector_for(tmp_path, content="\ufeffid,Имя\r\n1,Ёлкин\r\n".encode())
    assert [r.values for r in records_of(connector)] == [{"id": "1", "Имя": "Ёлкин"}]
    assert connector.columns() == ["id", "Имя"]


def test_cp1251_is_detected(tmp_path):
    content = "id;ФИО;Город\r\n1;Иванов Иван;Москва\r\n2;Пётр Щукин;Тверь\r\n".encode("cp1251")
    records = records_of(connector_for(tmp_path, content=content))
    assert [r.values["ФИО"] for r in records] == ["Иванов Иван", "Пётр Щукин"]


def test_cp1251_after_a_long_ascii_start_is_detected(tmp_path):
    lines = [f"{n},user{n}@example.com" for n in range(1, 20001)] + ["20001,Щукин"]
    content = ("id,name\n" + "\n".join(lines) + "\n").encode("cp1251")
    records = records_of(connector_for(tmp_path, content=content))
    assert records[-1].values["name"] == "Щукин"


def test_explicit_encoding_wins_and_a_wrong_one_is_a_clear_error(tmp_path):
    content = "id,name\r\n1,Щукин\r\n".encode("cp1251")
    connector = connector_for(tmp_path, content=content, encoding="cp1251")
    assert records_of(connector)[0].values["name"] == "Щукин"
    wrong = connector_for(tmp_path, content=content, encoding="utf-8")
    with pytest.raises(FatalError, match="cannot decode the text near row 1 as utf-8"):
        records_of(wrong)


def test_western_text_is_not_taken_for_cp1251():
    assert not csv_file._looks_like_cp1251("name\nMüller Straße Genève\n".encode("cp1252"))
    assert csv_file._looks_like_cp1251("ФИО\nЩукин «Пётр» №5\n".encode("cp1251"))


def test_mixed_line_endings(tmp_path):
    connector = connector_for(tmp_path, content=b"id,name\r\n1,A\n2,B\r3,C\r\n")
    assert [(r.external_id, r.values["name"]) for r in records_of(connector)] == [("1", "A"), ("2", "B"), ("3", "C")]


def test_nul_bytes_are_stripped(tmp_path):
    connector = connector_for(tmp_path, content=b"id,na\x00me\r\n1,Iv\x00an\x00\r\n")
    assert [r.values for r in records_of(connector)] == [{"id": "1", "name": "Ivan"}]


def test_utf16_export_from_excel(tmp_path):
    content = "id\tname\r\n1\tЩукин\r\n".encode("utf-16")
    assert records_of(connector_for(tmp_path, "export.txt", content))[0].values == {"id": "1", "name": "Щукин"}


# ---------------------------------------------------------------- table shape


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(tmp_path, delimiter):
    rows = [["id", "name", "note"], ["1", "Иванов, Иван; мл.", "a|b\tc"], ["2", "Б", ""]]
    write_csv(tmp_path / "contacts.csv", rows, delimiter=delimiter)
    records = records_of(connector_for(tmp_path))
    assert [r.values for r in records] == [
        {"id": "1", "name": "Иванов, Иван; мл.", "note": "a|b\tc"},
        {"id": "2", "name": "Б", "note": ""},
    ]


def test_configured_delimiter_is_used(tmp_path):
    connector = connector_for(tmp_path, content=b"id;name,x\r\n1;A,B\r\n", delimiter=";")
    assert records_of(connector)[0].values == {"id": "1", "name,x": "A,B"}


def test_quoted_multiline_cells(tmp_path):
    content = 'id,address,name\r\n1,"Москва,\r\nул. Тверская, 1\nкв. 2",Иван\r\n2,"""цитата""",Анна\r\n'.encode()
    records = records_of(connector_for(tmp_path, content=content))
    assert records[0].values["address"] == "Москва,\r\nул. Тверская, 1\nкв. 2"
    assert records[1].values == {"id": "2", "address": '"цитата"', "name": "Анна"}


def test_header_only_and_empty_files_give_a_complete_checkpoint(tmp_path):
    header_only = connector_for(tmp_path, "a.csv", b"id,name,phone\r\n")
    records, checkpoint = read_all(header_only, None)
    assert records == [] and checkpoint.complete and checkpoint.cursor
    assert header_only.columns() == ["id", "name", "phone"]
    empty = connector_for(tmp_path, "b.csv", b"")
    records, checkpoint = read_all(empty, None)
    assert records == [] and checkpoint.complete
    assert empty.columns() is None


def test_blank_rows_are_skipped_and_rows_without_id_are_kept(tmp_path):
    content = b"id,name\r\n1,A\r\n\r\n , \r\n,,\r\n,Nameless\r\n2,B\r\n"
    records = records_of(connector_for(tmp_path, content=content))
    assert [(r.external_id, r.values["name"]) for r in records] == [("1", "A"), ("", "Nameless"), ("2", "B")]


def test_without_id_column_the_row_number_is_the_id(tmp_path):
    connector = connector_for(tmp_path, content=b"name\r\nA\r\n\r\nB\r\n")
    assert [r.external_id for r in records_of(connector)] == ["row:2", "row:4"]


def test_id_column_option(tmp_path):
    content = "Клиент №,name\r\n A-17 ,A\r\n".encode()
    connector = connector_for(tmp_path, content=content, id_column="Клиент №")
    assert records_of(connector)[0].external_id == "A-17"
    missing = connector_for(tmp_path, content=content, id_column="client_id")
    for call in (missing.columns, lambda: records_of(missing)):  # checked before a run, and by the read
        with pytest.raises(ConfigError, match="'client_id' is not a column of the file") as raised:
            call()
        assert (raised.value.file, raised.value.path) == (str(missing.path), "connectors.contacts.id_column")
        assert raised.value.hint == "columns there: Клиент №, name"
    assert "did you mean 'Клиент №'?" in _config_error(connector_for(tmp_path, id_column="клиент №")).hint
    assert "did you mean 'name'?" in _config_error(connector_for(tmp_path, id_column="nmae")).hint
    # a destination's file gets the column when it is written, unless rows without it are there
    with pytest.raises(FatalError, match="row 2 has data but the file has no 'client_id' column"):
        missing.write([OutboundItem(1, "upsert", {"name": "B"})])
    (tmp_path / "contacts.csv").write_bytes("Клиент №,name\r\n".encode())
    assert missing.write([OutboundItem(1, "upsert", {"name": "B"})])[0].status == "ok"
    assert missing.columns() == ["Клиент №", "name", "client_id"]


def _config_error(connector: CsvConnector) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        connector.columns()
    return raised.value


def test_id_column_found_in_any_case(tmp_path):
    connector = connector_for(tmp_path, content=b"Name,ID\r\nA,7\r\n")
    assert records_of(connector)[0].external_id == "7"


def test_header_row_option_skips_a_title(tmp_path):
    content = "Выгрузка за май\r\nid,name\r\n1,A\r\n".encode()
    connector = connector_for(tmp_path, content=content, header_row=2)
    assert [r.values for r in records_of(connector)] == [{"id": "1", "name": "A"}]
    assert connector.columns() == ["id", "name"]


def test_duplicate_header_is_an_error_naming_file_and_columns(tmp_path):
    connector = connector_for(tmp_path, content=b"id,email,name,email\r\n1,a@x.ru,A,b@x.ru\r\n")
    with pytest.raises(FatalError) as raised:
        records_of(connector)
    message = str(raised.value)
    assert "contacts.csv" in message and "'email'" in message
    assert "2 (B)" in message and "4 (D)" in message
    with pytest.raises(FatalError, match="twice"):
        connector.columns()


def test_blank_header_over_data_is_an_error(tmp_path):
    connector = connector_for(tmp_path, content=b"id,name,,phone\r\n1,A,,+7916\r\n2,B,oops,\r\n")
    with pytest.raises(FatalError) as raised:
        records_of(connector)
    assert "contacts.csv" in str(raised.value) and "column 3 (C)" in str(raised.value)
    assert "row 3" in str(raised.value)


def test_blank_trailing_headers_without_data_are_ignored(tmp_path):
    connector = connector_for(tmp_path, content=b"id,name,,\r\n1,A,,\r\n")
    assert records_of(connector)[0].values == {"id": "1", "name": "A"}
    assert connector.columns() == ["id", "name"]
    connector.write([OutboundItem(1, "upsert", {"email": "a@x.ru"})])
    assert (tmp_path / "contacts.csv").read_bytes() == b"id,name,email\r\n1,A,a@x.ru,\r\n"


def test_blank_trailing_header_over_data_is_an_error(tmp_path):
    connector = connector_for(tmp_path, content=b"id,name,\r\n1,A,note\r\n")
    with pytest.raises(FatalError, match=r"column 3 \(C\) has data \(row 2\) but no header"):
        records_of(connector)


def test_extra_cells_with_data_are_kept_under_extra(tmp_path):
    content = b"id,name\r\n1,A,,\r\n2,B,,lost?,\r\n3\r\n"
    records = records_of(connector_for(tmp_path, content=content))
    assert records[0].values == {"id": "1", "name": "A"}
    assert records[1].values == {"id": "2", "name": "B", "_extra": ["", "lost?"]}
    assert records[2].values == {"id": "3", "name": ""}


def test_row_with_500_columns(tmp_path):
    header = ["id"] + [f"c{n}" for n in range(1, 500)]
    write_csv(tmp_path / "contacts.csv", [header, ["1"] + [f"v{n}" for n in range(1, 500)]])
    (record,) = records_of(connector_for(tmp_path))
    assert len(record.values) == 500 and record.values["c499"] == "v499"


def test_a_10_mb_cell(tmp_path):
    big = "Щ" * (10 * 1024 * 1024)
    write_csv(tmp_path / "contacts.csv", [["id", "note"], ["1", big], ["2", "small"]])
    records = records_of(connector_for(tmp_path))
    assert records[0].values["note"] == big and records[1].values["note"] == "small"


def test_formula_guard_is_removed_on_read(tmp_path):
    content = b"id,a,b,c,d\r\n1,'=1+2,'+79161234567,'plain,''=x\r\n"
    (record,) = records_of(connector_for(tmp_path, content=content))
    assert record.values == {"id": "1", "a": "=1+2", "b": "+79161234567", "c": "'plain", "d": "'=x"}


# ---------------------------------------------------------------- files that are not there


def test_missing_file(tmp_path):
    connector = connector_for(tmp_path, "nowhere.csv")
    with pytest.raises(FatalError, match="nowhere.csv: file not found") as raised:
        records_of(connector)
    assert raised.value.hint
    assert connector.columns() is None


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "contacts.csv").mkdir()
    with pytest.raises(FatalError, match="is a folder"):
        records_of(connector_for(tmp_path))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    connector = connector_for(tmp_path, content=b"id\r\n1\r\n")
    connector.path.chmod(0)
    try:
        with pytest.raises(FatalError, match="permission denied"):
            records_of(connector)
    finally:
        connector.path.chmod(0o644)


# ---------------------------------------------------------------- cursor and streaming


def test_unchanged_file_yields_only_a_checkpoint(tmp_path):
    connector = connector_for(tmp_path, content=b"id,name\r\n1,A\r\n")
    _, checkpoint = read_all(connector, None)
    assert list(connector.read(checkpoint.cursor)) == [Checkpoint(checkpoint.cursor, complete=False)]
    (tmp_path / "contacts.csv").write_bytes(b"id,name\r\n1,B\r\n")
    records, new_checkpoint = read_all(connector, checkpoint.cursor)
    assert [r.values["name"] for r in records] == ["B"] and new_checkpoint.cursor != checkpoint.cursor


def test_rows_appended_to_a_file_are_read_from_where_the_last_read_ended(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_bytes("name,phone\r\nАнна,1\r\n\"Борис\r\nБ.\",2\r\n".encode("utf-8-sig"))
    connector = connector_for(tmp_path)
    first, checkpoint = read_all(connector, None)
    assert checkpoint.complete and [r.external_id for r in first] == ["row:2", "row:3"]
    with path.open("ab") as handle:
        handle.write("Вера,3\r\n\r\nГлеб,4\r\n".encode())
    appended, tail_checkpoint = read_all(connector, checkpoint.cursor)
    assert not tail_checkpoint.complete
    assert [(r.external_id, r.values["name"], r.appended) for r in appended] == [
        ("row:4", "Вера", True), ("row:6", "Глеб", True)]
    # the same rows, numbered the same, as a read of the whole file gives
    whole, _ = read_all(connector, None)
    assert [(r.external_id, r.values) for r in whole[2:]] == [(r.external_id, r.values) for r in appended]
    # appending again goes on from the new end; an unchanged file yields nothing
    assert list(connector.read(tail_checkpoint.cursor)) == [Checkpoint(tail_checkpoint.cursor, complete=False)]
    with path.open("ab") as handle:
        handle.write("Дина,5\r\n".encode())
    again, _ = read_all(connector, tail_checkpoint.cursor)
    assert [(r.external_id, r.values["name"]) for r in again] == [("row:7", "Дина")]


def test_a_row_the_file_ends_inside_is_not_taken_and_is_read_again_from_its_start(tmp_path):
    """A writer caught inside a quoted multi-line cell: the half row is quarantined, not
    stored, and the next read starts at that row, so it is read whole once complete."""
    path = tmp_path / "contacts.csv"
    path.write_bytes('id,name,email\r\n1,Иванов Иван,a@x.ru\r\n2,"Петров\r\n'.encode())
    connector = connector_for(tmp_path)
    first, checkpoint = read_all(connector, None)
    assert checkpoint.complete
    assert [(r.external_id, r.error is None) for r in first] == [("1", True), ("2", False)]
    assert "row 3" in first[1].error and "ends inside a quoted cell" in first[1].error
    assert list(connector.read(checkpoint.cursor)) == [Checkpoint(checkpoint.cursor, complete=False)]
    with path.open("ab") as handle:
        handle.write('Пётр",b@x.ru\r\n3,Сидоров Сидор,c@x.ru\r\n'.encode())
    records, tail_checkpoint = read_all(connector, checkpoint.cursor)
    assert not tail_checkpoint.complete
    # the row read again is no newcomer: its id is its own, not a duplicate of an earlier row
    assert [(r.external_id, r.values["name"], r.error, r.appended) for r in records] == [
        ("2", "Петров\r\nПётр", None, False), ("3", "Сидоров Сидор", None, True)]
    whole, _ = read_all(connector, None)
    assert [(r.external_id, r.values) for r in whole[1:]] == [(r.external_id, r.values) for r in records]
    # a cell that stays open through several appends, in a file numbered by rows
    path.write_bytes(b'name,note\n"A","x\n')
    rows = connector_for(tmp_path)
    _, cursor = read_all(rows, None)
    for more in (b"y\n", b'z"\nB,\n'):
        with path.open("ab") as handle:
            handle.write(more)
        records, cursor = read_all(rows, cursor.cursor)
    assert [(r.external_id, r.values["note"], r.error) for r in records] == [
        ("row:2", "x\ny\nz", None), ("row:3", "", None)]


def test_rows_appended_during_a_read_are_left_to_the_next_read(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"name\nA\nB\n")
    connector = connector_for(tmp_path)
    reader = connector.read(None)
    assert next(reader).external_id == "row:2"
    with path.open("ab") as handle:
        handle.write(b"C\n")
    rest = list(reader)
    assert [r.external_id for r in rest[:-1]] == ["row:3"]
    records, _ = read_all(connector, rest[-1].cursor)
    assert [(r.external_id, r.values["name"], r.appended) for r in records] == [("row:4", "C", True)]


@pytest.mark.parametrize(
    "change",
    ["edit", "no_final_newline", "bare_digest_cursor", "delimiter"],
)
def test_a_file_that_did_not_only_grow_is_read_whole(tmp_path, change):
    path = tmp_path / "contacts.csv"
    old = b"id,name\n1,A\n2,B\n" if change != "no_final_newline" else b"id,name\n1,A\n2,B"
    path.write_bytes(old)
    connector = connector_for(tmp_path)
    _, checkpoint = read_all(connector, None)
    cursor = checkpoint.cursor
    if change == "edit":
        path.write_bytes(b"id,name\n1,Z\n2,B\n3,C\n")
    elif change == "no_final_newline":
        path.write_bytes(old + b"b\n3,C\n")  # the last old row went on: "2,Bb"
    elif change == "bare_digest_cursor":
        cursor = json.loads(cursor)[0]  # a cursor written before positions were kept
        path.write_bytes(old + b"3,C\n")
    else:
        path.write_bytes(old + b"3,C\n")
        cursor = json.dumps(json.loads(cursor)[:4] + [";"])  # the last read split on ";"
    records, final = read_all(connector, cursor)
    assert final.complete and not any(r.appended for r in records)
    assert [r.external_id for r in records] == ["1", "2", "3"] if change != "no_final_newline" else ["1", "2"]


def test_xlsx_keeps_a_plain_digest_cursor(tmp_path):
    write_xlsx(tmp_path / "contacts.xlsx", [["id", "name"], [1, "A"]])
    connector = connector_for(tmp_path, name="contacts.xlsx")
    _, checkpoint = read_all(connector, None)
    assert checkpoint.complete and len(checkpoint.cursor) == 64


def test_read_streams_rows(tmp_path):
    rows = "".join(f"{n},Имя Фамилия {n},+7916{n:07d},user{n}@example.com,Москва\r\n" for n in range(300_000))
    (tmp_path / "contacts.csv").write_bytes(("id,name,phone,email,city\r\n" + rows).encode())
    del rows
    size = (tmp_path / "contacts.csv").stat().st_size
    assert size > 20 * 1024 * 1024
    connector = connector_for(tmp_path)
    reader = connector.read(None)
    assert inspect.isgenerator(reader)
    tracemalloc.start()
    try:
        first = next(reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        reader.close()
    assert first.external_id == "0"
    assert peak < 8 * 1024 * 1024, f"took {peak} bytes to yield the first of a {size}-byte file"


# ---------------------------------------------------------------- XLSX reading


def test_xlsx_values_keep_their_types(tmp_path):
    when = dt.datetime(2024, 5, 1, 10, 30)
    write_xlsx(tmp_path / "c.xlsx", [
        ["id", "phone", "float_phone", "serial_date", "visited", "ratio", "note"],
        [1, 79161234567, 79161234567.0, 33000, when, 0.5, "'=SUM(A1)"],
        [None, None, None, None, None, None, None],
        ["  ", None, None, None, None, None, None],
        [2.0, None, None, None, None, None, "text"],
    ])
    records = records_of(connector_for(tmp_path, "c.xlsx"))
    assert [r.external_id for r in records] == ["1", "2"]
    values = records[0].values
    assert values["phone"] == 79161234567 and type(values["float_phone"]) is int
    assert values["serial_date"] == 33000 and values["visited"] == when and values["ratio"] == 0.5
    assert values["note"] == "=SUM(A1)"
    assert records[1].values["phone"] == ""


def test_xlsx_formulas_read_as_their_values_not_their_text(tmp_path):
    write_xlsx(tmp_path / "c.xlsx", [["id", "total"], [1, "=1+2"]])
    (record,) = records_of(connector_for(tmp_path, "c.xlsx"))
    assert record.values["total"] in ("", 3)  # no cached value from openpyxl: empty, never the formula


def _with_cached_values(path: Path, cached: dict[str, str]) -> None:
    """Give formula cells the values a spreadsheet program saves with them: cell -> XML of
    its type attribute and value, e.g. ``' t="str"><f>A1</f><v>x</v>'``."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    for cell, xml in cached.items():
        sheet, count = re.subn(rf'<c r="{cell}">.*?</c>', f'<c r="{cell}"{xml}</c>', sheet)
        assert count == 1
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w") as target:
        for name, data in parts.items():
            target.writestr(name, data)


def test_xlsx_formula_without_a_computed_value_is_an_unreadable_cell(tmp_path):
    # a workbook written by a program that does not calculate (a script, an export, hub's
    # own write of a workbook) holds formulas without values: read as empty, silently
    write_xlsx(tmp_path / "c.xlsx", [
        ["id", "Фамилия", "ФИО", "Email"],
        [1, "Иванов", '=B2&" Иван"', '=LOWER("A@X.RU")'],
        [2, "Петров", "Петров Пётр", "b@x.ru"],
        [3, "Орлов", '=B4&" Олег"', "c@x.ru"],
        [4, "Зуев", '=IF(B5="","",B5)', "d@x.ru"],
        [None, None, "=1+2", None],  # a row of formulas alone is blank
    ])
    _with_cached_values(tmp_path / "c.xlsx", {
        "C4": '><f>B4&amp;" Олег"</f>',  # no value at all: not computed either
        "C5": ' t="str"><f>IF(B5="","",B5)</f><v></v>',  # computed to empty text
    })
    records = records_of(connector_for(tmp_path, "c.xlsx"))
    assert [(r.external_id, [column for column, _why in r.unreadable]) for r in records] == [
        ("1", ["ФИО", "Email"]), ("2", []), ("3", ["ФИО"]), ("4", [])]
    why = records[0].unreadable[1][1]
    assert "cell D2 (Email) holds a formula saved without its value" in why and "Excel or LibreOffice" in why
    assert records[0].values["Email"] == "" and records[0].error is None
    assert records[3].values["ФИО"] == "" and records[1].values["ФИО"] == "Петров Пётр"


def test_xlsx_formulas_saved_with_their_values_read_as_the_values(tmp_path):
    write_xlsx(tmp_path / "c.xlsx", [["id", "ФИО", "n", "when"], [1, '=B1&" x"', "=1+2", "=DATE(1990,2,1)"]])
    _with_cached_values(tmp_path / "c.xlsx", {
        "B2": ' t="str"><f>B1&amp;" x"</f><v>Иванов Иван</v>',
        "C2": "><f>1+2</f><v>3</v>",
    })
    (record,) = records_of(connector_for(tmp_path, "c.xlsx"))
    assert [column for column, _why in record.unreadable] == ["when"]
    assert record.values["ФИО"] == "Иванов Иван" and record.values["n"] == 3


def test_a_formula_without_its_value_in_a_column_read_quarantines_only_that_row(project):
    project.config("connectors:\n  book: {plugin: csv, path: book.xlsx}\n"
                   "  mapped: {plugin: csv, path: mapped.xlsx, mapping: mapped}\n")
    project.write("mappings/mapped.yaml", "fields:\n  full_name: ФИО\n  email: Почта\n")
    rows = [["id", "ФИО", "Email", "Сумма"], [1, "Иванов Иван", "a@x.ru", 5], [2, "Петров Пётр", "b@x.ru", 7]]
    write_xlsx(project.root / "book.xlsx", rows)
    write_xlsx(project.root / "mapped.xlsx", [["id", "ФИО", "Почта"], [1, "Орлов Олег", "c@x.ru"]])
    assert project.hub("sync").exit_code == 0
    rows[1][2] = '=LOWER("A2@X.RU")'  # the e-mail: read, so the row waits in quarantine
    rows[2][3] = "=2+5"  # a column no field reads: the row is read as usual
    rows[2][1] = "Петров Пётр Петрович"
    write_xlsx(project.root / "book.xlsx", rows)
    write_xlsx(project.root / "mapped.xlsx", [["id", "ФИО", "Почта"], [1, "Орлов Олег", '=LOWER("C2@X.RU")']])
    result = project.hub("sync", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["counts"]
    assert (counts["book"]["quarantined"], counts["book"]["updated"], counts["mapped"]["quarantined"]) == (1, 1, 1)
    listed = json.loads(project.hub("quarantine", "list", "--json").stdout)
    assert sorted((q["connector"], q["external_id"]) for q in listed) == [("book", "1"), ("mapped", "1")]
    assert all("holds a formula saved without its value" in q["reason"] for q in listed)
    people = {row["full_name"]: row["email"] for row in
              json.loads(project.hub("export", "contacts", "--format", "json", "--unmask").stdout)}
    assert people == {"Иванов Иван": "a@x.ru", "Петров Пётр Петрович": "b@x.ru", "Орлов Олег": "c@x.ru"}


def test_xlsx_merged_header_over_data_is_an_error(tmp_path):
    write_xlsx(tmp_path / "c.xlsx", [["id", "ФИО", None], [1, "Иванов", "Иван"]], merge="B1:C1")
    with pytest.raises(FatalError) as raised:
        records_of(connector_for(tmp_path, "c.xlsx"))
    assert "c.xlsx" in str(raised.value) and "column 3 (C)" in str(raised.value)


def test_xlsx_duplicate_header(tmp_path):
    write_xlsx(tmp_path / "c.xlsx", [["id", "Телефон", "Телефон"], [1, "+7", "+8"]])
    with pytest.raises(FatalError, match=r"'Телефон' twice: columns 2 \(B\) and 3 \(C\)"):
        records_of(connector_for(tmp_path, "c.xlsx"))


def test_xlsx_sheet_option(tmp_path):
    workbook = openpyxl.Workbook()
    workbook.active.append(["id", "name"])
    workbook.active.append([1, "first sheet"])
    other = workbook.create_sheet("Клиенты")
    other.append(["id", "name"])
    other.append([1, "named sheet"])
    workbook.save(tmp_path / "c.xlsx")
    assert records_of(connector_for(tmp_path, "c.xlsx"))[0].values["name"] == "first sheet"
    assert records_of(connector_for(tmp_path, "c.xlsx", sheet="Клиенты"))[0].values["name"] == "named sheet"
    with pytest.raises(FatalError, match="no worksheet named 'Нет'") as raised:
        records_of(connector_for(tmp_path, "c.xlsx", sheet="Нет"))
    assert "Клиенты" in raised.value.hint


def test_not_a_workbook(tmp_path):
    connector = connector_for(tmp_path, "c.xlsx", b"id,name\r\n1,A\r\n")
    with pytest.raises(FatalError, match="not a readable .xlsx file"):
        records_of(connector)


# ---------------------------------------------------------------- writing


def test_new_csv_is_utf8_with_bom_comma_crlf(tmp_path):
    connector = connector_for(tmp_path, "out.csv")
    assert connector.columns() is None
    results = connector.write([OutboundItem(7, "upsert", {"full_name": "Щукин Пётр", "phone": "+79161234567"})])
    assert [(r.status, r.external_id) for r in results] == [("ok", "7")]
    assert (tmp_path / "out.csv").read_bytes() == "\ufeffid,full_name,phone\r\n7,Щукин Пётр,+79161234567\r\n".encode()


def test_write_merges_into_existing_rows_and_keeps_the_rest(tmp_path):
    content = "Отчёт\r\nid;name;note;phone\r\n1;A;keep me;+7001\r\n;no id;x;\r\n2;B;;\r\n3;C;;\r\n".encode("cp1251")
    connector = connector_for(tmp_path, content=content, header_row=2)
    results = connector.write([
        OutboundItem(2, "upsert", {"name": "B2", "email": "b@example.ru"}),
        OutboundItem(3, "delete", {}),
        OutboundItem(4, "upsert", {"city": "Тверь", "name": "D"}),
        OutboundItem(5, "upsert", {"name": "Emoji 😀"}),
    ])
    assert [r.status for r in results] == ["ok", "ok", "ok", "rejected"]
    assert "cp1251" in results[3].error
    assert (tmp_path / "contacts.csv").read_bytes().decode("cp1251") == (
        "Отчёт\r\n"
        "id;name;note;phone;email;city\r\n"
        "1;A;keep me;+7001\r\n"
        ";no id;x;\r\n"
        "2;B2;;;b@example.ru;\r\n"
        "4;D;;;;Тверь\r\n"
    )


def test_write_keeps_line_endings_and_extra_cells(tmp_path):
    connector = connector_for(tmp_path, content=b"id,name\n1,A,stray\n")
    connector.write([OutboundItem(1, "upsert", {"name": "A", "email": "a@x.ru", "multi": "x\ry"})])
    assert (tmp_path / "contacts.csv").read_bytes() == b'id,name,email,multi\n1,A,a@x.ru,"x\ry",stray\n'
    (record,) = records_of(connector)
    assert record.values == {"id": "1", "name": "A", "email": "a@x.ru", "multi": "x\ry", "_extra": ["stray"]}


def test_write_uses_the_known_external_id_and_the_configured_id_column(tmp_path):
    connector = connector_for(tmp_path, content=b"code,name\r\nA-17,Old\r\n", id_column="code")
    results = connector.write([
        OutboundItem(5, "upsert", {"name": "New"}, external_id="A-17"),
        OutboundItem(6, "upsert", {"name": "Other"}),
    ])
    assert [r.external_id for r in results] == ["A-17", "6"]
    assert [(r.external_id, r.values["name"]) for r in records_of(connector)] == [("A-17", "New"), ("6", "Other")]


def test_write_delete_then_upsert_in_one_batch(tmp_path):
    connector = connector_for(tmp_path, content=b"id,name,note\r\n1,A,user note\r\n2,B,\r\n")
    connector.write([OutboundItem(1, "delete", {}), OutboundItem(1, "upsert", {"name": "A again"})])
    assert [(r.external_id, r.values) for r in records_of(connector)] == [
        ("2", {"id": "2", "name": "B", "note": ""}),
        ("1", {"id": "1", "name": "A again", "note": ""}),
    ]


def test_write_formats_values(tmp_path):
    connector = connector_for(tmp_path)
    connector.write([OutboundItem(1, "upsert", {
        "phone": 79161234567.0, "born": dt.date(1990, 2, 1), "phones": ["+7916", "+7903"], "vip": True, "none": None,
    })])
    (record,) = records_of(connector)
    assert record.values == {"id": "1", "phone": "79161234567", "born": "1990-02-01",
                             "phones": "+7916, +7903", "vip": "true", "none": ""}


def test_csv_formula_injection_round_trip(tmp_path):
    connector = connector_for(tmp_path)
    values = {f"c{n}": text for n, text in enumerate(HOSTILE_TEXT)} | {"phone": "+79161234567"}
    connector.write([OutboundItem(1, "upsert", values)])
    with open(tmp_path / "contacts.csv", newline="", encoding="utf-8-sig") as handle:
        stored = list(csv.DictReader(handle))[0]
    for column, text in values.items():
        if column == "phone":
            assert stored[column] == "+79161234567"
        else:
            assert stored[column][0] not in "=+-@\t\r", f"{text!r} stored as {stored[column]!r}"
    (record,) = records_of(connector)
    assert record.values == {"id": "1", **values}


def test_xlsx_formula_injection_round_trip_and_no_formula_cells(tmp_path):
    connector = connector_for(tmp_path, "out.xlsx")
    values = {f"c{n}": text for n, text in enumerate(HOSTILE_TEXT)} | {"phone": "+79161234567", "number": 42}
    connector.write([OutboundItem(1, "upsert", values), OutboundItem(-5, "upsert", {"c0": "=2"})])
    workbook = openpyxl.load_workbook(tmp_path / "out.xlsx")
    for row in workbook.active.iter_rows():
        for cell in row:
            assert cell.data_type != "f", f"{cell.coordinate} is a formula: {cell.value!r}"
            if isinstance(cell.value, str):
                assert cell.value == "+79161234567" or cell.value[0] not in "=+-@\t\r"
    records = by_external_id(records_of(connector))
    as_stored = {column: text.replace("\r", "\n") if isinstance(text, str) else text for column, text in values.items()}
    assert records["1"].values == {"id": "1", **as_stored}  # XML keeps no CR: line breaks come back as LF
    assert records["-5"].values["c0"] == "=2"
    before = (tmp_path / "out.xlsx").read_bytes()
    connector.write([OutboundItem(1, "upsert", values)])
    assert (tmp_path / "out.xlsx").read_bytes() == before


def test_xlsx_write_keeps_other_sheets_and_user_cells(tmp_path):
    workbook = openpyxl.Workbook()
    workbook.active.title = "Notes"
    workbook.active["A1"] = "=1+1"
    contacts = workbook.create_sheet("Contacts")
    for row in (["id", "name", "comment"], [1, "A", "keep"], [2, "B", None]):
        contacts.append(row)
    workbook.save(tmp_path / "c.xlsx")
    connector = connector_for(tmp_path, "c.xlsx", sheet="Contacts")
    connector.write([
        OutboundItem(1, "upsert", {"name": "A2", "email": "a@x.ru"}),
        OutboundItem(2, "delete", {}),
        OutboundItem(3, "upsert", {"name": "C"}),
    ])
    reloaded = openpyxl.load_workbook(tmp_path / "c.xlsx")
    assert reloaded["Notes"]["A1"].value == "=1+1"  # the user's own formula elsewhere is untouched
    assert [list(row) for row in reloaded["Contacts"].iter_rows(values_only=True)] == [
        ["id", "name", "comment", "email"],
        [1, "A2", "keep", "a@x.ru"],
        ["3", "C", None, None],
    ]


def test_xlsx_data_right_of_the_header_is_an_error(tmp_path):
    write_xlsx(tmp_path / "c.xlsx", [["id", "name"], [1, "A"], [2, "B", None, "note"]])
    connector = connector_for(tmp_path, "c.xlsx")
    for action in (lambda: records_of(connector), lambda: connector.write([OutboundItem(1, "upsert", {"x": "y"})])):
        with pytest.raises(FatalError, match=r"column 4 \(D\) has data \(row 3\) but no header"):
            action()


def test_unstorable_value_rejects_only_its_item(tmp_path):
    class Unprintable:
        def __str__(self):
            raise RuntimeError("no text for you")

    connector = connector_for(tmp_path, content=b"id,name\r\n1,A\r\n")
    results = connector.write(
        [OutboundItem(1, "upsert", {"name": Unprintable()}), OutboundItem(2, "upsert", {"name": "B"})]
    )
    assert [r.status for r in results] == ["rejected", "ok"] and "no text for you" in results[0].error
    assert [(r.external_id, r.values["name"]) for r in records_of(connector)] == [("1", "A"), ("2", "B")]


@pytest.mark.parametrize("name", ["contacts.csv", "contacts.xlsx"])
def test_failed_write_leaves_the_file_as_it_was(tmp_path, monkeypatch, name):
    connector = connector_for(tmp_path, name)
    connector.write([OutboundItem(1, "upsert", {"name": "A"})])
    before = (tmp_path / name).read_bytes()

    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv_file.os, "fsync", disk_full)
    with pytest.raises(FatalError, match="no space left on the disk"):
        connector.write([OutboundItem(1, "upsert", {"name": "B"}), OutboundItem(2, "upsert", {"name": "C"})])
    monkeypatch.undo()

    def denied(source, target):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(csv_file.os, "replace", denied)
    with pytest.raises(FatalError, match="permission denied") as raised:
        connector.write([OutboundItem(2, "upsert", {"name": "C"})])
    assert "close the file" in raised.value.hint
    monkeypatch.undo()
    assert (tmp_path / name).read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [name]  # no temporary file left behind


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_folder(tmp_path):
    connector = connector_for(tmp_path, content=b"id,name\r\n1,A\r\n")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(FatalError, match="permission denied"):
            connector.write([OutboundItem(1, "upsert", {"name": "B"})])
    finally:
        tmp_path.chmod(0o755)
    assert (tmp_path / "contacts.csv").read_bytes() == b"id,name\r\n1,A\r\n"


def test_write_to_a_missing_folder_creates_it(tmp_path):
    connector = connector_for(tmp_path, "nowhere/deeper/out.csv")
    results = connector.write([OutboundItem(1, "upsert", {"name": "A"})])
    assert [r.status for r in results] == ["ok"]
    assert (tmp_path / "nowhere/deeper/out.csv").read_text(encoding="utf-8-sig").splitlines()[1] == "1,A"


def test_write_where_the_folder_cannot_be_created(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")
    connector = connector_for(tmp_path, "blocker/out.csv")
    with pytest.raises(FatalError, match="cannot write"):
        connector.write([OutboundItem(1, "upsert", {"name": "A"})])


def test_write_refuses_a_file_with_a_duplicate_header(tmp_path):
    content = b"id,name,name\r\n1,A,B\r\n"
    connector = connector_for(tmp_path, content=content)
    with pytest.raises(FatalError, match="twice"):
        connector.write([OutboundItem(1, "upsert", {"name": "C"})])
    assert (tmp_path / "contacts.csv").read_bytes() == content


def test_write_with_nothing_to_change_does_not_touch_the_file(tmp_path):
    content = b'"id","name"\n"1","A"\n'
    connector = connector_for(tmp_path, content=content)
    connector.write([OutboundItem(1, "upsert", {"name": "A"}), OutboundItem(9, "delete", {})])
    assert (tmp_path / "contacts.csv").read_bytes() == content
    assert connector.write([]) == []
    assert not (tmp_path / "new.csv").exists()


def test_an_empty_header_row_over_data_is_an_error(tmp_path):
    connector = connector_for(tmp_path, content=b"\r\n1,A\r\n")
    for action in (lambda: records_of(connector), lambda: connector.write([OutboundItem(1, "upsert", {"x": "y"})])):
        with pytest.raises(FatalError, match=r"column 1 \(A\) has data \(row 2\) but no header"):
            action()


def test_a_value_for_the_id_column_does_not_override_the_key(tmp_path):
    connector = connector_for(tmp_path, content=b"ID,name\r\n5,A\r\n")
    connector.write([OutboundItem(5, "upsert", {"id": "other", "ID": "x", "name": "B"})])
    assert (tmp_path / "contacts.csv").read_bytes() == b"ID,name\r\n5,B\r\n"


def test_xlsx_new_column_under_a_merged_header_cell(tmp_path):
    write_xlsx(tmp_path / "c.xlsx", [["id", "ФИО", None], [1, "Иванов", None]], merge="B1:C1")
    connector = connector_for(tmp_path, "c.xlsx")
    connector.write([OutboundItem(1, "upsert", {"email": "i@x.ru"})])
    assert records_of(connector)[0].values == {"id": 1, "ФИО": "Иванов", "email": "i@x.ru"}


def test_blank_and_padded_column_names_in_values(tmp_path):
    connector = connector_for(tmp_path)
    results = connector.write([OutboundItem(1, "upsert", {" ": "x"}), OutboundItem(2, "upsert", {" name ": "B"})])
    assert [r.status for r in results] == ["rejected", "ok"] and "blank" in results[0].error
    connector.write([OutboundItem(2, "upsert", {"name": "C"})])
    assert records_of(connector)[0].values == {"id": "2", "name": "C"}


def test_a_new_xlsm_is_refused(tmp_path):
    with pytest.raises(FatalError, match="cannot create a new .xlsm"):
        connector_for(tmp_path, "c.xlsm").write([OutboundItem(1, "upsert", {"name": "A"})])


def test_a_workbook_named_csv(tmp_path):
    write_xlsx(tmp_path / "book.xlsx", [["id"], [1]])
    connector = connector_for(tmp_path, content=(tmp_path / "book.xlsx").read_bytes())
    with pytest.raises(FatalError, match="an Excel workbook, not a text file"):
        records_of(connector)


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    leftover = tmp_path / f".contacts.csv.{pid}.deadbeef.tmp"
    leftover.write_text("half a file")
    alive = tmp_path / f".contacts.csv.{os.getppid()}.cafebabe.tmp"
    alive.write_text("another writer's file")
    connector = connector_for(tmp_path, "contacts.csv")
    connector.write([OutboundItem(1, "upsert", {"name": "A"})])
    assert not leftover.exists()
    assert alive.exists()  # its writer is still running


@pytest.mark.parametrize("name", ["contacts.csv", "contacts.xlsx"])
def test_write_refuses_a_file_with_rows_but_no_id_column(tmp_path, name):
    # a person deleted the id column of the file hub writes: without it no row can be
    # found, and every contact would be added again below its old row
    rows = [["full_name", "phone"], ["Иванов Иван", "+79161234567"]]
    (write_xlsx if name.endswith(".xlsx") else write_csv)(tmp_path / name, rows)
    before = (tmp_path / name).read_bytes()
    connector = connector_for(tmp_path, name)
    with pytest.raises(FatalError, match=r"row 2 has data but the file has no 'id' column") as caught:
        connector.write([OutboundItem(1, "upsert", {"full_name": "Иванов Иван", "phone": "+79161234500"})])
    assert "id_column" in caught.value.hint
    assert (tmp_path / name).read_bytes() == before
    # a header with no rows under it yet gets the id column
    (write_xlsx if name.endswith(".xlsx") else write_csv)(tmp_path / name, [["full_name"], [None if name.endswith(".xlsx") else ""]])
    connector.write([OutboundItem(1, "upsert", {"full_name": "Иванов Иван"})])
    assert [(r.external_id, r.values["full_name"]) for r in records_of(connector)] == [("1", "Иванов Иван")]


def test_a_source_written_back_without_an_id_column_is_not_doubled(project):
    # role: both on a file keyed by row numbers: the write used to append every contact
    # again, and the next read found the old rows gone (the mass-delete guard stopped it)
    project.config("connectors:\n  clients: {plugin: csv, role: both, path: clients.csv}\n"
                   "  crm: {plugin: csv, path: crm.csv}\n")
    text = "ФИО,Телефон,Email\nИванов Иван,89161234567,a@x.ru\nПетров Пётр,89161234568,b@x.ru\n"
    project.write("clients.csv", text)
    project.write("crm.csv", "id,full_name,email\n7,Сидоров Сидор,c@x.ru\n")
    result = project.hub("sync", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["counts"]["crm"]["created"] == 1 and report["counts"]["clients"]["created"] == 2
    assert any("no 'id' column" in error for error in report["errors"])
    assert (project.root / "clients.csv").read_text(encoding="utf-8") == text
    again = project.hub("sync", "--json")
    counts = json.loads(again.stdout)["counts"]["clients"]
    assert counts["removed"] == 0 and counts["quarantined"] == 0


@pytest.mark.parametrize("name", ["contacts.csv", "contacts.xlsx"])
def test_a_title_above_the_header_names_the_header_row_to_set(tmp_path, name):
    # without header_row the title was taken for the header: a source without a mapping
    # found "none of the columns", a mapped one "column 'ФИО' not found"
    rows = [["Клиенты на 01.02.2024"], [], ["id", "ФИО", "Телефон", "Email"], ["1", "Иванов Иван", "89161234567", "a@x.ru"]]
    (write_xlsx if name.endswith(".xlsx") else write_csv)(tmp_path / name, rows)
    with pytest.raises(FatalError, match=r"row 1 holds only 'Клиенты на 01.02.2024', and row 3 looks like the header "
                       r"\(id, ФИО, Телефон, Email\)") as raised:
        connector_for(tmp_path, name).columns()
    assert "header_row: 3" in raised.value.hint
    assert connector_for(tmp_path, name, header_row=3).columns() == ["id", "ФИО", "Телефон", "Email"]


def test_a_one_column_file_is_not_taken_for_a_title(tmp_path):
    write_csv(tmp_path / "contacts.csv", [["Почта"], ["a@x.ru"], ["b@x.ru", "c@x.ru"], ["Петров", "Сидоров", "Орлов"]])
    assert connector_for(tmp_path).columns() == ["Почта"]


def test_a_row_written_with_another_delimiter_is_quarantined_not_read_as_one_value(tmp_path):
    # a row appended by hand or by another export with ';' in a comma file was one cell:
    # a contact named «Петров Пётр;89161234568;b@x.ru» without its phone or e-mail
    content = "ФИО,Телефон,Email\r\nИванов Иван,89161234567,a@x.ru\r\n".encode()
    connector = connector_for(tmp_path, content=content)
    records, checkpoint = read_all(connector, None)
    with open(tmp_path / "contacts.csv", "ab") as f:
        f.write("Петров Пётр;89161234568;b@x.ru\r\nСидоров Сидор\r\nОрлов Олег; звонить после 18\r\n".encode())
    for cursor in (checkpoint.cursor, None):  # the appended rows alone, and the whole file
        records = [r for r in records_of(connector, cursor) if r.external_id != "row:2"]
        assert [(r.external_id, r.error is not None) for r in records] == [
            ("row:3", True), ("row:4", False), ("row:5", False)]
        assert "row 3 is one cell where the header has 3 columns, and ';' splits it" in records[0].error
        assert "the file with ','" in records[0].error


def test_xlsx_without_sheet_is_its_first_worksheet_whichever_tab_was_left_open(tmp_path):
    # a person adds a tab to the workbook and saves it with that tab open: the active sheet
    # changed, and hub read the new tab and wrote its contacts there
    write_xlsx(tmp_path / "c.xlsx", [["id", "name"], [1, "A"]])
    workbook = openpyxl.load_workbook(tmp_path / "c.xlsx")
    workbook.create_sheet("Сводка")["A1"] = "итого"
    workbook.active = 1
    workbook.save(tmp_path / "c.xlsx")
    connector = connector_for(tmp_path, "c.xlsx")
    assert connector.columns() == ["id", "name"]
    connector.write([OutboundItem(1, "upsert", {"name": "B"})])
    assert [(r.external_id, r.values["name"]) for r in records_of(connector)] == [("1", "B")]
    workbook = openpyxl.load_workbook(tmp_path / "c.xlsx")
    assert [list(row) for row in workbook["Сводка"].iter_rows(values_only=True)] == [["итого"]]
