"""The google_sheets connector against the local Sheets API server in tests/fakes:
the conformance suite, then calls and quotas, conflicts, loops and hostile sheets.

The real gspread client and google-auth talk HTTP to the fake; nothing in hub is patched.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any, ClassVar

import pydantic
import pytest
from hub_plugins.google_sheets import (
    QUOTA_PERIOD,
    GoogleSheetsConnector,
    GoogleSheetsOptions,
    a1_range,
)

from hub.connector import ConnectorContext
from hub.errors import FatalError, RetriableError
from hub.http import RateLimiter
from hub.model import OutboundItem
from tests.conformance import ConnectorConformance, by_external_id, read_all
from tests.fakes.google_sheets import (
    FakeGoogleSheets,
    Formula,
    authorized_user,
    service_account_key,
)

SHEET_ID = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_sheet"
WRITE_ENDPOINTS = ("values.update", "values.append", "values.batchUpdate", "spreadsheets.batchUpdate")

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
    "0012345",
    "TRUE",
    "1.5",
    "01.02.1990",
    "Иван\u00a0Петров",  # non-breaking space
    "Ива\u200bнов",  # zero-width space
    "Aлексей",  # a Latin A in a Cyrillic name
    "x" * 49_000,  # a long cell, under the 50,000 characters a cell holds
]


@pytest.fixture
def fake():
    with FakeGoogleSheets() as server:
        yield server


def new_account(fake: FakeGoogleSheets) -> dict[str, Any]:
    """A service account of its own per test: the client-side pacing is per account."""
    tag = secrets.token_hex(4)
    return service_account_key(fake, f"hub-{tag}@proj-{tag}.iam.gserviceaccount.com")


def make_connector(fake: FakeGoogleSheets, tmp_path: Path, **options: Any) -> GoogleSheetsConnector:
    options.setdefault("spreadsheet", SHEET_ID)
    options.setdefault("credentials", json.dumps(new_account(fake)))
    options.setdefault("endpoint", fake.url)
    options.setdefault("backoff_seconds", 0.01)
    context = ConnectorContext("sheet", tmp_path, logging.getLogger("test.google_sheets"))
    return GoogleSheetsConnector(GoogleSheetsOptions(**options), context)


def table(records: list[dict[str, Any]]) -> list[list[Any]]:
    header = list(records[0])
    return [header] + [[record.get(column, "") for column in header] for record in records]


# ---------------------------------------------------------------- conformance


class TestGoogleSheetsConformance(ConnectorConformance):
    """Rows keyed by the sheet's own ``id`` column."""

    break_modes = ("missing_spreadsheet", "no_access", "server_down", "revoked_key", "duplicate_header",
                   "missing_worksheet")
    options: ClassVar[dict[str, Any]] = {"key_column": "id", "worksheet": "Клиенты"}

    @pytest.fixture(autouse=True)
    def _server(self, fake):
        self.fake = fake

    def make_connector(self, tmp_path):
        self.seed_tool(self.seed_records())
        return make_connector(self.fake, tmp_path, **self.options)

    def seed_tool(self, records):
        self.fake.create(SHEET_ID, sheets={"Клиенты": table(records), "Notes": [["free text"]]})

    def key_of(self, seed_id: str) -> str:
        return seed_id

    def change_record(self, connector):
        sheet = self.fake.sheet(SHEET_ID, "Клиенты")
        header = sheet.cells[0]
        row = next(r for r in range(1, len(sheet.cells)) if sheet.get(r, header.index("id")) == "2")
        sheet.set(row, header.index("city"), "Новосибирск")
        return self.key_of("2"), {"city": "Новосибирск"}

    def break_tool(self, connector, mode):
        if mode == "missing_spreadsheet":
            del self.fake.spreadsheets[SHEET_ID]
        elif mode == "no_access":
            self.fake.fail("*", 403, times=100, message="The caller does not have permission")
        elif mode == "server_down":
            self.fake.fail("sheets", 503, times=1000)
        elif mode == "revoked_key":
            other = service_account_key(self.fake, "other@proj.iam.gserviceaccount.com", key_number=1)
            for email in list(self.fake.public_keys):
                self.fake.public_keys[email] = self.fake.public_keys[other["client_email"]]
        elif mode == "duplicate_header":
            self.fake.edit(SHEET_ID, "C1", "id", title="Клиенты")
        else:
            self.fake.spreadsheets[SHEET_ID].sheets[0].title = "Renamed"

    def test_no_op_read_costs_two_calls_and_writes_nothing(self, connector):
        _, checkpoint = read_all(connector, None)
        connector.close()
        self.fake.reset_counters()
        again = type(connector)(connector.options, connector.context)  # a new run
        records, _ = read_all(again, checkpoint.cursor)
        assert records == []
        assert self.fake.api_calls() <= 2
        assert not any(self.fake.calls[name] for name in WRITE_ENDPOINTS)


class TestGoogleSheetsHubIdConformance(TestGoogleSheetsConformance):
    """No key column of the sheet's own: hub adds ``hub_id`` once and fills it."""

    options: ClassVar[dict[str, Any]] = {}

    def seed_tool(self, records):
        rows = table([{k: v for k, v in record.items() if k != "id"} for record in records])
        self.fake.create(SHEET_ID, sheets={"Sheet1": rows})

    def seed_records(self):
        return [{k: v for k, v in record.items() if k != "id"} for record in super().seed_records()]

    def change_record(self, connector):
        sheet = self.fake.sheet(SHEET_ID)
        header = sheet.cells[0]
        row = next(r for r in range(1, len(sheet.cells)) if sheet.get(r, 0) == "Петрова Анна")
        sheet.set(row, header.index("city"), "Новосибирск")
        return sheet.get(row, header.index("hub_id")), {"city": "Новосибирск"}

    def break_tool(self, connector, mode):
        if mode == "duplicate_header":
            self.fake.edit(SHEET_ID, "C1", "full_name")
        elif mode == "missing_worksheet":
            connector.options.worksheet = "Клиенты"
        else:
            super().break_tool(connector, mode)

    def test_the_key_column_is_added_once(self, connector):
        read_all(connector, None)
        header = self.fake.values(SHEET_ID)[0]
        assert header[-1] == "hub_id"
        keys = [row[-1] for row in self.fake.values(SHEET_ID)[1:]]
        assert len(set(keys)) == 3 and all(key.startswith("r-") for key in keys)
        self.fake.reset_counters()
        read_all(connector, None)
        assert not any(self.fake.calls[name] for name in WRITE_ENDPOINTS)
        # a row a person adds by hand gets its key, in one request
        self.fake.edit(SHEET_ID, "A5", "Новый Человек")
        records = by_external_id(read_all(connector, None)[0])
        assert self.fake.calls["values.batchUpdate"] == 1
        assert len(records) == 4 and self.fake.values(SHEET_ID)[4][-1] in records


# ---------------------------------------------------------------- reading


def test_values_are_read_unformatted_and_by_header_name(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [
        ["Телефон", "ФИО", "", "Заметки", "id"],
        [79161234567, "Иванов Иван", "", "звонить вечером", 1],
        [],
        ["", "", "", "", ""],
        ["8 (916) 765-43-21", "Петрова Анна", "", "", 2],
    ]})
    fake.sheet(SHEET_ID).number_formats[(1, 0)] = "SCIENTIFIC"  # the sheet shows 7.92E+10
    connector = make_connector(fake, tmp_path, key_column="id")
    records, checkpoint = read_all(connector, None)
    assert [record.external_id for record in records] == ["1", "2"]  # blank rows skipped
    assert records[0].values["Телефон"] == 79161234567
    assert records[0].values["Заметки"] == "звонить вечером"
    assert checkpoint.complete
    # what a person would see, for comparison: the formatted value is useless
    formatted = connector._http.values_get(SHEET_ID, "'Sheet1'!A2")
    assert formatted["values"] == [["7.92E+10"]]


def test_columns_reordered_added_and_renamed_between_runs(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email", "phone"], ["1", "a@example.com", "+79161234567"]]})
    connector = make_connector(fake, tmp_path, key_column="id")
    first = read_all(connector, None)[0][0].values
    # a person moves columns, adds one and renames another
    fake.create(SHEET_ID, sheets={"Sheet1": [["Комментарий", "phone", "id", "E-mail"],
                                             ["VIP", "+79161234567", "1", "a@example.com"]]})
    second = read_all(connector, None)[0][0].values
    assert second == {"Комментарий": "VIP", "phone": "+79161234567", "id": "1", "E-mail": "a@example.com"}
    assert first["phone"] == second["phone"]
    assert connector.columns() == ["Комментарий", "phone", "id", "E-mail"]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([["id", "Email", "Телефон", "Email"], ["1", "a@x.ru", "", "b@x.ru"]], "'Email' twice: cells B1 and D1"),
        # a merged header cell reads as its first cell, the others blank
        ([["id", "", "Email"], ["1", "data", "a@x.ru"]], "cell B2 has data but its header cell B1 is blank"),
        ([["id", "Email"], ["1", "a@x.ru", "", "stray"]], "cell D2 has data but its header cell D1 is blank"),
    ],
)
def test_bad_headers_are_errors_naming_the_cells(fake, tmp_path, rows, expected):
    fake.create(SHEET_ID, sheets={"Sheet1": rows})
    connector = make_connector(fake, tmp_path, key_column="id")
    with pytest.raises(FatalError) as raised:
        read_all(connector, None)
    assert expected in raised.value.message


def test_header_row_below_a_title_and_header_only_sheet(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["Клиенты 2026"], [], ["id", "email"]]})
    connector = make_connector(fake, tmp_path, key_column="id", header_row=3)
    records, checkpoint = read_all(connector, None)
    assert records == [] and checkpoint.complete
    connector.write([OutboundItem(7, "upsert", {"email": "new@example.com"})])
    assert fake.values(SHEET_ID) == [["Клиенты 2026"], [], ["id", "email"], ["hub-7", "new@example.com"]]


def test_an_empty_worksheet_has_no_columns_and_gets_a_header_on_first_write(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": []})
    connector = make_connector(fake, tmp_path)
    assert connector.columns() is None
    assert read_all(connector, None)[0] == []
    connector.write([OutboundItem(3, "upsert", {"full_name": "Иванов Иван", "phone": "+79161234567"})])
    assert fake.values(SHEET_ID) == [["hub_id", "full_name", "phone"], ["hub-3", "Иванов Иван", "+79161234567"]]


def test_a_large_sheet_is_read_in_ranges(fake, tmp_path):
    rows = [["id", "email"]] + [[str(i), f"p{i}@example.com"] for i in range(1, 2501)]
    fake.create(SHEET_ID, sheets={"Sheet1": rows})
    connector = make_connector(fake, tmp_path, key_column="id", read_chunk_rows=1000)
    records, _ = read_all(connector, None)
    assert len(records) == 2500 and records[-1].values["email"] == "p2500@example.com"
    assert fake.calls["values.get"] == 3  # rows 1-1000, 1001-2000, 2001-2501
    assert fake.calls["spreadsheets.get"] == 1


def test_a_row_with_500_columns(fake, tmp_path):
    header = ["id"] + [f"c{i}" for i in range(1, 500)]
    fake.create(SHEET_ID, sheets={"Sheet1": [header, ["1"] + [f"v{i}" for i in range(1, 500)]]})
    connector = make_connector(fake, tmp_path, key_column="id")
    (record,), _ = read_all(connector, None)
    assert len(record.values) == 500 and record.values["c499"] == "v499"
    connector.write([OutboundItem(1, "upsert", {"c250": "changed"}, external_id="1")])
    assert fake.values(SHEET_ID)[1][250] == "changed"


# ---------------------------------------------------------------- writing


def test_formula_like_values_are_written_as_text_and_round_trip(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "note"]]})
    connector = make_connector(fake, tmp_path, key_column="id")
    items = [OutboundItem(100 + i, "upsert", {"note": text}) for i, text in enumerate(HOSTILE_TEXT)]
    assert all(result.status == "ok" for result in connector.write(items))
    sheet = fake.sheet(SHEET_ID)
    stored = [row[1] for row in sheet.cells[1:]]
    assert stored == HOSTILE_TEXT  # exactly: hub's text cleaning is the core's job, not the writer's
    assert not any(isinstance(cell, Formula) for cell in stored)
    assert all(isinstance(cell, str) for cell in stored)  # "0012345", "TRUE", "1.5" stay text
    records = by_external_id(read_all(connector, None)[0])
    assert [records[f"hub-{100 + i}"].values["note"] for i in range(len(HOSTILE_TEXT))] == HOSTILE_TEXT
    assert all(request["body"].get("valueInputOption", "RAW") == "RAW" or request["endpoint"] == "values.get"
               for request in fake.last_requests)
    assert all(request["query"].get("valueInputOption", ["RAW"]) == ["RAW"] for request in fake.last_requests)


def test_only_changed_cells_are_written_and_the_rest_is_left_alone(fake, tmp_path):
    rows = [["id", "ФИО", "Заметки", "Телефон", "Email"]]
    rows += [[str(i), f"Клиент {i}", f"заметка {i}", f"+7916000{i:04d}", f"c{i}@example.com"] for i in range(1, 201)]
    fake.create(SHEET_ID, sheets={"Sheet1": rows})
    sheet = fake.sheet(SHEET_ID)
    sheet.number_formats[(5, 3)] = "TEXT"  # a person's formatting
    connector = make_connector(fake, tmp_path, key_column="id")
    read_all(connector, None)
    fake.reset_counters()
    items = [
        OutboundItem(i, "upsert", {"ФИО": f"Клиент {i}", "Телефон": f"+7999000{i:04d}", "Email": f"c{i}@example.com"},
                     external_id=str(i))
        for i in range(1, 101)
    ]
    results = connector.write(items)
    assert {result.status for result in results} == {"ok"}
    # one read and one batched write, however many contacts changed
    assert dict(fake.calls) == {"values.get": 1, "values.batchUpdate": 1}
    body = next(r["body"] for r in fake.last_requests if r["endpoint"] == "values.batchUpdate")
    assert body["valueInputOption"] == "RAW"
    assert sorted(entry["range"] for entry in body["data"])[:2] == ["'Sheet1'!D10", "'Sheet1'!D100"]
    assert len(body["data"]) == 100  # the phone cells only: names and e-mails were equal
    after = fake.values(SHEET_ID)
    assert [row[0] for row in after] == [row[0] for row in rows]  # row order
    assert [row[2] for row in after] == [row[2] for row in rows]  # the person's column
    assert after[1][3] == "+79990000001" and after[150][3] == rows[150][3]
    assert sheet.number_formats == {(5, 3): "TEXT"}
    # writing the same again is free of writes
    fake.reset_counters()
    connector.write(items)
    assert dict(fake.calls) == {"values.get": 1}


def test_new_contacts_are_appended_after_the_table_and_a_lost_append_is_not_repeated(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email"], ["1", "a@example.com"]]})
    connector = make_connector(fake, tmp_path, key_column="id")
    items = [OutboundItem(i, "upsert", {"email": f"n{i}@example.com"}) for i in (5, 6)]
    # the append reaches the sheet but its answer is lost: not retried blindly
    fake.fail("values.append", 503, after_apply=True)
    with pytest.raises(RetriableError):
        connector.write(items)
    assert fake.calls["values.append"] == 1
    results = connector.write(items)  # the next run finds the rows by their keys
    assert [r.external_id for r in results] == ["hub-5", "hub-6"]
    assert fake.values(SHEET_ID) == [["id", "email"], ["1", "a@example.com"],
                                     ["hub-5", "n5@example.com"], ["hub-6", "n6@example.com"]]
    assert fake.calls["values.append"] == 1


def test_a_row_deleted_by_a_person_is_not_added_again(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email"], ["1", "a@example.com"]]})
    connector = make_connector(fake, tmp_path, key_column="id")
    (result,) = connector.write([OutboundItem(9, "upsert", {"email": "b@example.com"}, external_id="2")])
    assert result.status == "rejected" and "no longer in the sheet" in result.error
    assert len(fake.values(SHEET_ID)) == 2
    # with on_missing: ignore, hub's base is the master: the row comes back
    connector = make_connector(fake, tmp_path, key_column="id", on_missing="ignore")
    (result,) = connector.write([OutboundItem(9, "upsert", {"email": "b@example.com"}, external_id="2")])
    assert result.status == "ok" and fake.values(SHEET_ID)[2] == ["2", "b@example.com"]


def test_a_value_too_long_for_a_cell_is_rejected_alone(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "note"]]})
    connector = make_connector(fake, tmp_path, key_column="id")
    results = connector.write([OutboundItem(1, "upsert", {"note": "x" * 10_000_000}),
                               OutboundItem(2, "upsert", {"note": "short"})])
    assert [r.status for r in results] == ["rejected", "ok"]
    assert fake.values(SHEET_ID) == [["id", "note"], ["hub-2", "short"]]


def test_a_persons_edit_after_our_read_wins_and_is_reported_as_a_conflict(fake, tmp_path, caplog):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "phone", "city"], ["1", "+79161234567", "Москва"],
                                             ["2", "+79031112233", "Казань"]]})
    connector = make_connector(fake, tmp_path, key_column="id")
    read_all(connector, None)
    fake.edit(SHEET_ID, "B2", "+79990000000")  # the person fixes the phone meanwhile
    items = [OutboundItem(1, "upsert", {"phone": "+79161112233", "city": "Москва"}, external_id="1"),
             OutboundItem(2, "upsert", {"phone": "+79031112233", "city": "Тверь"}, external_id="2")]
    with caplog.at_level(logging.WARNING):
        results = connector.write(items)
    assert results[0].status == "retriable" and results[0].error.startswith("conflict: row 2")
    assert "phone" in results[0].error
    assert results[0].conflicts == {"phone": ("+79161112233", "+79990000000")}
    assert results[1].status == "ok"
    assert fake.values(SHEET_ID)[1:] == [["1", "+79990000000", "Москва"], ["2", "+79031112233", "Тверь"]]
    assert "conflict" in caplog.text
    # after hub has read the edit, its next write is no conflict
    read_all(connector, None)
    assert connector.write(items[:1])[0].status == "ok"


def test_a_later_row_with_the_same_key_column_value_is_never_written(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "name", "city"], ["1", "Иванов Иван", "Москва"],
                                             ["2", "Петров Пётр", "Тула"], ["1", "Смирнова Ольга", "Тверь"]]})
    connector = make_connector(fake, tmp_path, key_column="id")
    read_all(connector, None)
    item = OutboundItem(1, "upsert", {"name": "Иванов Иван", "city": "Казань"}, external_id="1")
    for _ in range(2):  # the rows differ in a column hub writes: that is no conflict
        assert connector.write([item])[0].status == "ok"
        read_all(connector, None)
    assert fake.values(SHEET_ID)[1:] == [["1", "Иванов Иван", "Казань"], ["2", "Петров Пётр", "Тула"],
                                         ["1", "Смирнова Ольга", "Тверь"]]
    connector.write([OutboundItem(1, "delete", {}, external_id="1")])
    assert fake.values(SHEET_ID)[1:] == [["2", "Петров Пётр", "Тула"], ["1", "Смирнова Ольга", "Тверь"]]


def test_delete_removes_rows_in_one_request(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email"]] + [[str(i), f"{i}@x.ru"] for i in range(1, 8)]})
    connector = make_connector(fake, tmp_path, key_column="id")
    fake.reset_counters()
    connector.write([OutboundItem(i, "delete", {}, external_id=str(i)) for i in (2, 4, 6)])
    assert fake.calls["spreadsheets.batchUpdate"] == 1
    assert [row[0] for row in fake.values(SHEET_ID)] == ["id", "1", "3", "5", "7"]


# ---------------------------------------------------------------- quotas, retries, auth


def test_429_and_5xx_are_retried_with_backoff_and_html_or_truncated_bodies(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email"], ["1", "a@example.com"]]})
    connector = make_connector(fake, tmp_path, key_column="id")
    fake.fail("spreadsheets.get", 429, times=2)
    fake.fail("values.get", 502, body="html")
    fake.fail("values.get", 500, body="truncated")
    fake.fail("values.get", 503, body="drop")
    records, _ = read_all(connector, None)
    assert len(records) == 1
    assert len(connector.pauses) == 5 and max(connector.pauses) < 1


def test_a_timeout_is_retried(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email"], ["1", "a@example.com"]]})
    connector = make_connector(fake, tmp_path, key_column="id", timeout=0.3)
    fake.fail("values.get", delay=1.0)
    records, _ = read_all(connector, None)
    assert len(records) == 1 and fake.calls["values.get"] == 2 and len(connector.pauses) == 1


def test_a_full_grid_grows_before_hub_adds_its_column(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["email", "phone"], ["a@example.com", "+79161234567"]]},
                rows=2, columns=2)
    connector = make_connector(fake, tmp_path)
    (record,), _ = read_all(connector, None)
    assert fake.calls["spreadsheets.batchUpdate"] == 1
    assert fake.values(SHEET_ID)[0] == ["email", "phone", "hub_id"]
    results = connector.write([OutboundItem(4, "upsert", {"email": "b@example.com", "city": "Тверь"})])
    assert results[0].status == "ok"
    assert fake.values(SHEET_ID) == [["email", "phone", "hub_id", "city"],
                                     ["a@example.com", "+79161234567", record.external_id],
                                     ["b@example.com", "", "hub-4", "Тверь"]]


def test_retry_after_is_honoured(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email"], ["1", "a@example.com"]]})
    connector = make_connector(fake, tmp_path, key_column="id", backoff_seconds=0)
    fake.fail("values.get", 429, retry_after="1")
    read_all(connector, None)
    assert connector.pauses == [1.0]


def test_a_retry_after_longer_than_a_run_waits_is_left_for_the_next_sync(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email"], ["1", "a@example.com"]]})
    connector = make_connector(fake, tmp_path, key_column="id", backoff_seconds=0, max_backoff_seconds=0)
    fake.fail("values.get", 429, retry_after="3600")
    with pytest.raises(RetriableError, match="asked to wait 60 min, longer than a run waits"):
        read_all(connector, None)
    assert connector.pauses == [] and fake.calls["values.get"] == 1
    connector = make_connector(fake, tmp_path, key_column="id", backoff_seconds=0, max_backoff_seconds=0)
    records, _ = read_all(connector, None)
    fake.fail("values.batchUpdate", 429, retry_after="3600")  # a write by row number: not rebuilt either
    with pytest.raises(RetriableError, match="longer than a run waits"):
        connector.write([OutboundItem(1, "upsert", {"email": "b@example.com"}, external_id=records[0].external_id)])
    assert connector.pauses == [] and fake.calls["values.batchUpdate"] == 1


def sort_rows_descending(title: str | None = None):
    """A person sorting the rows under the header, Z to A, by the first column's values."""
    def sort(server: FakeGoogleSheets) -> None:
        cells = server.sheet(SHEET_ID, title).cells
        cells[1:] = sorted(cells[1:], key=lambda row: str(row[0]), reverse=True)
    return sort


def test_a_sort_while_a_refused_write_waits_does_not_misdirect_it(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["name", "city", "id"], ["Иванов Иван", "Москва", "1"],
                                             ["Петров Пётр", "Тула", "2"]]})
    connector = make_connector(fake, tmp_path, key_column="id", backoff_seconds=0)
    read_all(connector, None)
    fake.reset_counters()
    # the write is refused once; during the pause a person sorts the sheet
    fake.fail("values.batchUpdate", 429, retry_after="1")
    fake.after("values.batchUpdate", sort_rows_descending())
    item = OutboundItem(1, "upsert", {"name": "Иванов Иван", "city": "Казань"}, external_id="1")
    assert connector.write([item])[0].status == "ok"
    assert fake.values(SHEET_ID)[1:] == [["Петров Пётр", "Тула", "2"], ["Иванов Иван", "Казань", "1"]]
    assert connector.pauses == [1.0]
    # the cells are found again by a fresh read of the sheet, its size included
    assert dict(fake.calls) == {"values.get": 2, "values.batchUpdate": 2, "spreadsheets.get": 1}


def test_a_delete_whose_answer_is_lost_is_not_repeated_on_shifted_rows(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email"]] + [[str(i), f"{i}@x.ru"] for i in range(1, 8)]})
    connector = make_connector(fake, tmp_path, key_column="id")
    fake.fail("spreadsheets.batchUpdate", 503, after_apply=True)
    results = connector.write([OutboundItem(i, "delete", {}, external_id=str(i)) for i in (2, 4, 6)])
    assert {result.status for result in results} == {"ok"}
    assert [row[0] for row in fake.values(SHEET_ID)] == ["id", "1", "3", "5", "7"]
    assert fake.calls["spreadsheets.batchUpdate"] == 1  # the fresh read found the rows gone


def test_a_sort_while_a_refused_key_write_waits_does_not_overwrite_other_keys(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["name", "hub_id"], ["Анна", "r-anna"], ["Борис", "r-boris"]]})
    connector = make_connector(fake, tmp_path, backoff_seconds=0)
    fake.edit(SHEET_ID, "A4", "Яков")  # a row added by hand, without a key
    fake.fail("values.batchUpdate", 429, retry_after="1")
    fake.after("values.batchUpdate", sort_rows_descending())
    records, _ = read_all(connector, None)
    rows = fake.values(SHEET_ID)
    assert [row[:2] for row in rows[2:4]] == [["Борис", "r-boris"], ["Анна", "r-anna"]]
    assert rows[0] == ["name", "hub_id"] and rows[1][0] == "Яков" and rows[1][1].startswith("r-")
    assert sorted(record.external_id for record in records) == sorted(row[1] for row in rows[1:])


def test_retries_give_up_with_a_retriable_error(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id"]]})
    connector = make_connector(fake, tmp_path, max_attempts=3)
    fake.fail("spreadsheets.get", 429, times=3)
    with pytest.raises(RetriableError) as raised:
        read_all(connector, None)
    assert "Quota exceeded" in raised.value.message and "3 attempts" in raised.value.message


def test_the_servers_quota_is_absorbed(tmp_path):
    """The fake's quota is 3 reads per half second; the retries wait it out."""
    with FakeGoogleSheets(read_quota_per_user=3, quota_window=0.5) as fake:
        fake.create(SHEET_ID, sheets={"Sheet1": [["id"]] + [[str(i)] for i in range(1, 101)]})
        fake.sheet(SHEET_ID).row_count = 101
        connector = make_connector(fake, tmp_path, read_chunk_rows=10, key_column="id", backoff_seconds=0.2,
                                   max_backoff_seconds=1, max_attempts=30)
        records, _ = read_all(connector, None)
    assert len(records) == 100
    assert fake.quota_errors > 0 and connector.pauses


def test_rate_limiter_paces_requests_in_a_sliding_minute():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(60, QUOTA_PERIOD, clock=lambda: now[0], sleep=sleep)
    for _ in range(60):
        limiter.acquire()
        now[0] += 0.1
    assert slept == []
    limiter.acquire()  # the 61st request within a minute waits for the first to age out
    assert slept == [pytest.approx(54.0)]
    assert len(limiter.sent) == 60


def test_user_credentials_and_an_expired_token(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email"], ["1", "a@example.com"]]})
    connector = make_connector(fake, tmp_path, key_column="id", credentials=json.dumps(authorized_user(fake)))
    read_all(connector, None)
    fake.expire_tokens()  # the token is refreshed once and the call repeated
    read_all(connector, None)
    assert fake.calls["token"] == 2


def test_read_only_asks_for_the_read_only_scope_and_never_writes(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id", "email"], ["1", "a@example.com"], ["", "no key"]]})
    with pytest.raises(pydantic.ValidationError, match="read_only needs key_column"):
        GoogleSheetsOptions(spreadsheet=SHEET_ID, credentials="{}", read_only=True)
    connector = make_connector(fake, tmp_path, key_column="id", read_only=True)
    records, _ = read_all(connector, None)
    assert [record.external_id for record in records] == ["1", ""]  # the core quarantines the keyless row
    assert next(iter(fake.tokens.values()))["scope"] == "https://www.googleapis.com/auth/spreadsheets.readonly"
    with pytest.raises(FatalError, match="read_only"):
        connector.write([OutboundItem(1, "upsert", {"email": "b@example.com"}, external_id="1")])
    assert write_calls(fake) == 0


def test_a_token_refused_after_its_refresh_is_a_clear_error(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id"]]})
    connector = make_connector(fake, tmp_path, key_column="id")
    fake.fail("sheets", 401, times=10, message="Request had invalid authentication credentials.")
    with pytest.raises(FatalError, match="access token was refused even after a refresh"):
        connector.columns()
    assert 2 <= fake.calls["token"] <= 3  # the first token, then one or two refreshes


def test_bad_credentials_are_clear_errors(fake, tmp_path):
    fake.create(SHEET_ID, sheets={"Sheet1": [["id"]]})
    with pytest.raises(pydantic.ValidationError, match="exactly one of credentials_file"):
        GoogleSheetsOptions(spreadsheet=SHEET_ID)
    with pytest.raises(pydantic.ValidationError, match="neither a spreadsheet key"):
        GoogleSheetsOptions(spreadsheet="not a key!", credentials="{}")
    connector = make_connector(fake, tmp_path, credentials='{"type": "nonsense"}')
    with pytest.raises(FatalError, match="unsupported credentials type"):
        connector.columns()
    # a key Google no longer knows (deleted or rotated): the signature does not verify
    key = new_account(fake)
    other = service_account_key(fake, "other@proj.iam.gserviceaccount.com", key_number=1)
    fake.public_keys[key["client_email"]] = fake.public_keys[other["client_email"]]
    connector = make_connector(fake, tmp_path, credentials=json.dumps(key))
    with pytest.raises(FatalError, match="cannot get an access token.*Invalid JWT Signature"):
        connector.columns()


def test_a1_ranges_quote_titles():
    assert a1_range("Sheet1", 1, 1, 10, 3) == "'Sheet1'!A1:C10"
    assert a1_range("It's", 2, 28) == "'It''s'!AB2"


# ---------------------------------------------------------------- whole syncs through the CLI

CLIENTS_MAPPING = """\
fields:
  full_name: {from: ФИО, transforms: [split_name]}
  phone: {from: Телефон, transforms: [phone]}
  email: {from: Email, transforms: [email]}
  city: Город
"""


def client_rows(count: int) -> list[list[Any]]:
    rows: list[list[Any]] = [["ФИО", "Телефон", "Email", "Город", "Заметки"]]
    for i in range(1, count + 1):
        rows.append([f"Клиентов{i} Иван", f"+7916{i:07d}", f"client{i}@example.ru", "Москва", f"заметка {i}"])
    return rows


def crm_csv(count: int, cities: dict[int, str] | None = None, phones: dict[int, str] | None = None) -> str:
    lines = ["id,email,city,phone"]
    for i in range(1, count + 1):
        city = (cities or {}).get(i, "Москва")
        phone = (phones or {}).get(i, "")
        lines.append(f"{i},client{i}@example.ru,{city},{phone}")
    return "\n".join(lines) + "\n"


def sheet_config(project, fake: FakeGoogleSheets, *, role: str = "both", extra: str = "", crm: bool = True,
                 merge: str = "") -> None:
    project.write("key.json", json.dumps(new_account(fake)))
    project.write("mappings/clients.yaml", CLIENTS_MAPPING)
    crm_entry = "  crm: {plugin: csv, path: crm.csv, id_column: id}\n" if crm else ""
    project.config(
        "connectors:\n" + crm_entry
        + "  clients:\n"
        + "    plugin: google_sheets\n"
        + f"    role: {role}\n"
        + f"    spreadsheet: https://docs.google.com/spreadsheets/d/{SHEET_ID}/edit#gid=0\n"
        + "    credentials_file: key.json\n"
        + f"    endpoint: {fake.url}\n"
        + "    backoff_seconds: 0.01\n"
        + "    mapping: clients\n"
        + extra
        + merge
    )


def sync(project, *args: str) -> dict[str, Any]:
    result = project.hub("sync", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write_calls(fake: FakeGoogleSheets) -> int:
    return sum(fake.calls[name] for name in WRITE_ENDPOINTS)


def test_two_way_sync_a_no_op_costs_two_calls_and_our_writes_do_not_come_back(project, fake):
    rows = client_rows(20)
    rows[1][1] = 79160000001  # typed as a number
    rows[2][1] = "8 (916) 000-00-02"
    fake.create(SHEET_ID, sheets={"Клиенты": rows})
    fake.sheet(SHEET_ID).number_formats[(1, 1)] = "SCIENTIFIC"
    project.write("crm.csv", crm_csv(20) + "21,new.client@example.ru,Тверь,+79035550000\n")
    sheet_config(project, fake)
    first = sync(project)
    assert first["counts"]["clients"]["read"] == 20 and first["errors"] == []
    assert first["counts"]["clients"]["sent"] == 21
    values = fake.values(SHEET_ID, "Клиенты")
    assert values[0] == ["ФИО", "Телефон", "Email", "Город", "Заметки", "hub_id"]
    assert values[1][1] == "+79160000001" and values[2][1] == "+79160000002"  # fixed phones show up
    assert values[21][2:4] == ["new.client@example.ru", "Тверь"]  # the new contact, appended
    assert [row[4] for row in values[1:21]] == [row[4] for row in rows[1:21]]  # the person's column
    # the rows hub wrote are read once more, and change nothing
    second = sync(project)
    assert second["changes"] == 0
    assert all(counts["sent"] == 0 and counts["updated"] == 0 for counts in second["counts"].values())
    # from then on a sync reads the sheet with two calls and writes nothing
    fake.reset_counters()
    third = sync(project)
    assert third["counts"]["clients"]["read"] == 0 and third["changes"] == 0
    assert fake.api_calls() <= 2 and write_calls(fake) == 0
    # a person moves the Email column to the end: same rows, nothing to do
    sheet = fake.sheet(SHEET_ID, "Клиенты")
    for cells in sheet.cells:
        cells.extend([None] * (6 - len(cells)))
        cells.append(cells.pop(2))
    fake.reset_counters()
    fourth = sync(project)
    assert fourth["counts"]["clients"]["unchanged"] == 21 and fourth["changes"] == 0
    assert write_calls(fake) == 0


def test_writing_back_changed_contacts_takes_the_same_calls_for_3_or_60(project, fake):
    fake.create(SHEET_ID, sheets={"Клиенты": client_rows(100)})
    project.write("crm.csv", crm_csv(100))
    sheet_config(project, fake, merge="merge:\n  source_priority: [crm, clients]\n")
    sync(project)
    sync(project)
    calls = []
    for changed, city in ((3, "Тверь"), (60, "Казань")):
        project.write("crm.csv", crm_csv(100, cities={i: city for i in range(1, changed + 1)}))
        fake.reset_counters()
        report = sync(project)
        assert report["counts"]["clients"]["sent"] == changed
        assert fake.calls["values.batchUpdate"] == 1
        calls.append(fake.api_calls())
        values = fake.values(SHEET_ID, "Клиенты")
        assert [row[3] for row in values[1:changed + 1]] == [city] * changed
    assert calls[0] == calls[1] <= 4  # read: 2, write: a fresh read and one batchUpdate


def test_a_persons_edit_during_a_sync_wins_over_hubs_write(project, fake):
    fake.create(SHEET_ID, sheets={"Клиенты": client_rows(5)})
    project.write("crm.csv", crm_csv(5))
    sheet_config(project, fake)
    sync(project)
    project.write("crm.csv", crm_csv(5, phones={2: "+79035551122"}))
    # right after hub has read the sheet, a person fixes the same client's phone there
    fake.after("values.get", lambda server: server.edit(SHEET_ID, "B3", "+79267770000", title="Клиенты"))
    report = sync(project)
    assert report["counts"]["clients"]["retry"] == 1
    assert fake.values(SHEET_ID, "Клиенты")[2][1] == "+79267770000"
    log = json.loads(project.hub("log", "--field", "phone", "--json").stdout)
    assert [entry["new"] for entry in log if entry["connector"] == "crm"] == ["+79035551122"]
    (conflict,) = [entry for entry in log if entry["reason"] == "conflict"]
    assert (conflict["old"], conflict["new"], conflict["connector"]) == ("+79035551122", "+79267770000", "clients")
    # the next sync reads the edit: being the latest, it wins, and nothing is overwritten
    report = sync(project)
    assert fake.values(SHEET_ID, "Клиенты")[2][1] == "+79267770000"
    log = json.loads(project.hub("log", "--field", "phone", "--json").stdout)
    assert (log[-1]["old"], log[-1]["new"], log[-1]["connector"], log[-1]["reason"]) == (
        "+79035551122", "+79267770000", "clients", "sync")
    assert report["counts"]["clients"]["retry"] == 0


def test_a_row_copied_with_its_hub_id_becomes_a_contact_of_its_own(project, fake):
    fake.create(SHEET_ID, sheets={"Клиенты": client_rows(2)})
    project.write("crm.csv", crm_csv(1))
    sheet_config(project, fake, merge="merge:\n  default: most_recent\n")
    sync(project)
    # a person copies row 2 (hub_id included) to row 4 and types a new client over it
    sheet = fake.sheet(SHEET_ID, "Клиенты")
    copy = list(sheet.cells[1])
    copy[0:3] = ["Смирнова Ольга", "+79035556677", "olga@example.ru"]
    sheet.cells.append(copy)
    report = sync(project)
    assert report["counts"]["clients"]["quarantined"] == 0 and report["errors"] == []
    values = fake.values(SHEET_ID, "Клиенты")
    key = values[0].index("hub_id")
    assert values[3][key].startswith("r-") and values[3][key] != values[1][key]
    contacts = json.loads(project.hub("export", "contacts", "--format", "json").stdout)
    assert [contact["full_name"] for contact in contacts][-1] == "Смирнова Ольга"
    # the first client changes in the CRM: only its own row is written
    project.write("crm.csv", crm_csv(1, cities={1: "Казань"}))
    sync(project)
    values = fake.values(SHEET_ID, "Клиенты")
    assert values[1][3] == "Казань"
    assert values[3][:4] == ["Смирнова Ольга", "+79035556677", "olga@example.ru", "Москва"]
    assert sync(project)["counts"]["clients"]["retry"] == 0


def test_rows_hub_appended_are_its_contacts_even_when_the_answer_was_lost(project, fake):
    # clients the CRM knows by name only: nothing but the link tells hub whose row is whose
    fake.create(SHEET_ID, sheets={"Клиенты": client_rows(1)})
    project.write("crm.csv", "id,full_name\n1,Петров Пётр\n2,Анна\n")
    project.write("key.json", json.dumps(new_account(fake)))
    project.write("mappings/clients.yaml", CLIENTS_MAPPING)
    project.config(
        "connectors:\n  crm: {plugin: csv, path: crm.csv, id_column: id}\n"
        f"  clients:\n    plugin: google_sheets\n    role: both\n    spreadsheet: {SHEET_ID}\n"
        f"    credentials_file: key.json\n    endpoint: {fake.url}\n    backoff_seconds: 0.01\n"
        "    mapping: clients\n"
    )
    # the rows reach the sheet, the answer does not (as when hub is killed right then)
    fake.fail("values.append", 503, after_apply=True, body="drop")
    assert project.hub("sync").exit_code == 1
    assert [row[0] for row in fake.values(SHEET_ID)[2:]] == ["Петров Пётр", "Анна"]
    first = sync(project)
    assert first["errors"] == [] and first["counts"]["clients"]["created"] == 0
    assert sync(project)["changes"] == 0
    contacts = json.loads(project.hub("export", "contacts", "--format", "json").stdout)
    assert sorted(contact["full_name"] for contact in contacts) == ["Анна", "Клиентов1 Иван", "Петров Пётр"]
    assert len(fake.values(SHEET_ID)) == 4
    links = project.hub("export", "links").stdout.splitlines()
    assert sorted(line.rsplit(",", 1)[0] for line in links if line.startswith("clients,hub-")) == [
        "clients,hub-1", "clients,hub-2"]


def test_a_row_keyed_by_the_contacts_own_value_is_added_after_a_write_that_failed(project, fake):
    """With key_column, a new contact's row is keyed by its own e-mail: a write that failed
    for good left a link to a row never made, and every later write refused the contact
    as a row a person had deleted."""
    fake.create(SHEET_ID, sheets={"Клиенты": client_rows(1)})
    project.write("crm.csv", crm_csv(2))
    sheet_config(project, fake, extra="    key_column: Email\n")
    fake.fail("values.append", 503, times=50)
    assert project.hub("sync").exit_code == 1
    assert len(fake.values(SHEET_ID)) == 2
    fake.faults.clear()
    report = sync(project)
    assert report["counts"]["clients"]["rejected"] == 0, report
    assert [row[2] for row in fake.values(SHEET_ID)[1:]] == ["client1@example.ru", "client2@example.ru"]
    assert sync(project)["changes"] == 0 and len(fake.values(SHEET_ID)) == 3


def test_a_cell_with_two_numbers_keeps_both_through_the_write_back(project, fake):
    rows = client_rows(2)
    rows[1][1] = "8 916 123-45-67, 8 916 765-43-21"
    fake.create(SHEET_ID, sheets={"Клиенты": rows})
    sheet_config(project, fake, crm=False)
    sync(project)
    sync(project)
    phones = {row["email"]: row["phones"] for row in json.loads(
        project.hub("export", "contacts", "--format", "json", "--unmask").stdout)}
    assert phones["client1@example.ru"] == ["+79161234567", "+79167654321"]
    assert phones["client2@example.ru"] == ["+79160000002"]
    assert [row[1] for row in fake.values(SHEET_ID)[1:]] == ["+79161234567, +79167654321", "+79160000002"]
    assert sync(project)["changes"] == 0


def test_a_deleted_hub_id_column_stops_the_sync_before_rows_get_new_keys(project, fake):
    fake.create(SHEET_ID, sheets={"Клиенты": client_rows(5)})
    sheet_config(project, fake, crm=False)
    sync(project)
    sheet = fake.sheet(SHEET_ID, "Клиенты")
    kept = [list(cells) for cells in sheet.cells]
    for cells in sheet.cells:  # a person deletes the hub_id column
        del cells[5:]
    before = fake.values(SHEET_ID, "Клиенты")
    fake.reset_counters()
    result = project.hub("sync")
    assert result.exit_code == 1
    assert "hub_id" in result.output and "Version history" in result.output
    assert write_calls(fake) == 0 and fake.values(SHEET_ID, "Клиенты") == before
    sheet.cells[:] = kept  # restored from the version history: nothing is lost
    report = sync(project)
    assert report["errors"] == [] and report["changes"] == 0
    assert len(json.loads(project.hub("export", "contacts", "--format", "json").stdout)) == 5


@pytest.mark.parametrize(("policy", "removed"), [("delete", 1), ("unlink", 0), ("ignore", 0)])
def test_rows_deleted_by_a_person_follow_on_missing(project, fake, policy, removed):
    fake.create(SHEET_ID, sheets={"Клиенты": client_rows(30)})
    sheet_config(project, fake, role="source", crm=False, extra=f"    on_missing: {policy}\n")
    sync(project)
    del fake.sheet(SHEET_ID, "Клиенты").cells[5]  # a person deletes row 6
    report = sync(project)
    assert report["counts"]["clients"]["removed"] == removed
    assert report["counts"]["clients"]["deleted"] == removed  # the contact only the sheet knew
    contacts = json.loads(project.hub("export", "contacts", "--format", "json").stdout)
    assert len(contacts) == 30 - removed


def test_a_dry_run_writes_nothing_to_the_sheet(project, fake):
    fake.create(SHEET_ID, sheets={"Клиенты": client_rows(5)})
    project.write("crm.csv", crm_csv(5, cities={1: "Тверь"}))
    sheet_config(project, fake)
    before = fake.values(SHEET_ID, "Клиенты")
    result = project.hub("sync", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["clients"]["read"] == 5
    assert write_calls(fake) == 0 and fake.values(SHEET_ID, "Клиенты") == before


def test_a_cleared_sheet_trips_the_mass_delete_guard(project, fake):
    fake.create(SHEET_ID, sheets={"Клиенты": client_rows(30)})
    sheet_config(project, fake, crm=False)
    sync(project)
    sheet = fake.sheet(SHEET_ID, "Клиенты")
    del sheet.cells[1:]
    fake.reset_counters()
    result = project.hub("sync")
    assert result.exit_code == 1
    assert "mass-delete guard" in result.output and "--allow-mass-delete" in result.output
    assert write_calls(fake) == 0  # nothing is written back into the cleared sheet


def test_a_title_above_the_header_is_reported_with_header_row(project, fake):
    fake.create(SHEET_ID, sheets={"Клиенты": [["Клиенты на 2026 год"]] + client_rows(3)})
    sheet_config(project, fake, crm=False)
    result = project.hub("sync")
    assert result.exit_code == 1
    assert "cell B2 has data but its header cell B1 is blank" in result.output and "header_row" in result.output
    assert write_calls(fake) == 0


def test_config_errors_and_secrets(project, fake):
    fake.create(SHEET_ID, sheets={"Клиенты": client_rows(2)})
    key = new_account(fake)
    project.write("mappings/clients.yaml", CLIENTS_MAPPING)
    config = (
        "connectors:\n  clients:\n    plugin: google_sheets\n    spreadsheet: " + SHEET_ID + "\n"
        "    credentials: $SHEETS_KEY\n    endpoint: " + fake.url + "\n    mapping: clients\n"
    )
    project.config(config)
    result = project.hub("sync")
    assert result.exit_code == 2 and "SHEETS_KEY" in result.output
    project.config(config + "    worksheet_name: Клиенты\n")
    result = project.hub("sync", env={"SHEETS_KEY": json.dumps(key)})
    assert result.exit_code == 2 and "worksheet_name" in result.output and "worksheet" in result.output
    project.config(config.replace("plugin: google_sheets", "plugin: google_sheets\n    role: both"))
    fake.fail("values.get", 403, message="The caller does not have permission")
    result = project.hub("sync", "--json", env={"SHEETS_KEY": json.dumps(key)})
    assert result.exit_code == 1
    assert "permission denied" in result.output and key["client_email"] in result.output
    assert "PRIVATE KEY" not in result.output and key["private_key_id"] not in result.output
    assert project.hub("plugins").output.count("google_sheets") == 1


def test_a_50k_row_sheet_syncs_within_the_default_quota(project, fake):
    rows: list[list[Any]] = [["email", "phone", "hub_id"]]
    for i in range(1, 50_001):
        rows.append([f"client{i}@example.ru", f"+7916{i:07d}", f"k{i}"])
    fake.create(SHEET_ID, sheets={"Клиенты": rows})
    project.write("key.json", json.dumps(new_account(fake)))
    project.config(
        f"connectors:\n  clients:\n    plugin: google_sheets\n    role: both\n    spreadsheet: {SHEET_ID}\n"
        f"    credentials_file: key.json\n    endpoint: {fake.url}\n"
    )
    report = sync(project)
    assert report["counts"]["clients"]["created"] == 50_000 and report["errors"] == []
    assert fake.quota_errors == 0  # the server never had to refuse a request
    # pull: spreadsheets.get + 3 ranges of 20,000 rows; push: the same read again, no write
    assert fake.calls["values.get"] == 6 and fake.api_calls() == 7
    assert write_calls(fake) == 0
