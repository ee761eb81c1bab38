"""CSV and XLSX files as a source and a destination of contacts.

The file is read as a table: one header row, one record per row after it. The
cursor is the SHA-256 of the file's bytes, so an unchanged file costs one pass of
hashing and yields nothing. Rows are streamed, so a file of a million rows is
read in constant memory. A file that ends inside a quoted cell (a writer still at
it) has its last row quarantined and read again, from its start, when the file
changes.

Writing rewrites the file atomically (a temporary file in the same folder, then
``os.replace``), keyed by the ``id`` column, in the format, encoding and
delimiter the file already has. Strings that a spreadsheet would run as a
formula get a leading ``'``, which reading takes off again.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import difflib
import errno
import glob
import hashlib
import io
import itertools
import json
import math
import os
import re
import secrets
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import Field, field_validator, model_validator

from hub.connector import Connector, ConnectorContext, ConnectorOptions
from hub.errors import ConfigError, FatalError, HubError, RetriableError
from hub.event_columns import EventColumns, with_events
from hub.formulas import neutralize_formula, restore_formula
from hub.hookspecs import hookimpl
from hub.model import Checkpoint, OutboundItem, RawRecord, WriteResult

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
XLSX_SUFFIXES = (".xlsx", ".xlsm")
#: Candidate delimiters, in order of preference when the evidence ties.
DELIMITERS = (",", ";", "\t", "|")
#: Key under which cells beyond the header are kept when they hold data.
EXTRA_KEY = "_extra"
#: The largest single CSV cell accepted; far beyond any contact field.
MAX_CELL_BYTES = 256 * 1024 * 1024
#: Excel refuses longer strings in a cell.
XLSX_MAX_CELL_CHARS = 32767

_CHUNK = 1024 * 1024
_SAMPLE = 64 * 1024
#: Columns a hint lists at most.
_HINT_COLUMNS = 30

_XLSX_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")
_CYRILLIC_NEXT_TO_LATIN = re.compile(r"[A-Za-z][\u0400-\u04ff]|[\u0400-\u04ff][A-Za-z]")
_CP1251_PUNCTUATION = set("«»—–№…“”„‘’\u00a0•·°±§©®™€")
_RETRIABLE_ERRNOS = {errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.EINTR, getattr(errno, "ESTALE", -1)}


def column_letter(index: int) -> str:
    """Spreadsheet letters of a 1-based column number: 1 -> A, 28 -> AB."""
    letters = ""
    while index > 0:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def _column_label(index: int) -> str:
    return f"{index} ({column_letter(index)})"


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class CsvOptions(ConnectorOptions):
    """Options of a ``plugin: csv`` connector."""

    #: .csv/.tsv/.txt or .xlsx/.xlsm; relative to hub.yaml's folder.
    path: str
    #: Column holding a stable id. ``None``: the column ``id`` if there is one, else
    #: the row number (``row:N``), which is stable only for files that are appended to.
    id_column: str | None = None
    #: ``None``: detected among ``,`` ``;`` TAB ``|``.
    delimiter: str | None = None
    #: ``None``: UTF-8 (with or without BOM), else cp1251, else a guess.
    encoding: str | None = None
    #: Worksheet of an .xlsx file; ``None``: the first one (not the tab open when it was saved).
    sheet: str | None = None
    #: Row of the header (1-based); rows above it are ignored and kept on write.
    header_row: int = Field(1, ge=1)
    #: Each row is also an event of its record: an order (``purchase``) or a funnel stage
    #: (docs/segments.md). Rows are then history: a row gone from the file removes nothing.
    events: EventColumns | None = None

    @field_validator("path")
    @classmethod
    def _known_format(cls, value: str) -> str:
        suffix = Path(value).suffix.lower()
        if suffix == ".xls":
            raise ValueError("old .xls files are not supported: save the file as .xlsx")
        if suffix not in CSV_SUFFIXES + XLSX_SUFFIXES:
            known = ", ".join(CSV_SUFFIXES + XLSX_SUFFIXES)
            raise ValueError(f"the file name must end with one of {known}")
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = {"tab": "\t", "\\t": "\t"}.get(value.lower(), value)
        if len(value) != 1 or value in "\"\r\n":
            raise ValueError("must be one character such as ',' ';' '|' or 'tab'")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (examples: utf-8, cp1251)") from None
        return value

    @model_validator(mode="after")
    def _options_fit_format(self) -> CsvOptions:
        is_xlsx = Path(self.path).suffix.lower() in XLSX_SUFFIXES
        if is_xlsx and (self.delimiter is not None or self.encoding is not None):
            raise ValueError("delimiter and encoding apply to CSV files, not to .xlsx")
        if not is_xlsx and self.sheet is not None:
            raise ValueError("sheet applies to .xlsx files, not to CSV")
        return self


@dataclass
class _Scan:
    """What one pass over the bytes of a file tells."""

    fingerprint: str
    size: int
    sample: bytes
    utf8_valid: bool
    #: SHA-256 of the bytes before the mark, when a mark was asked for and reached.
    prefix_digest: str | None = None
    #: The byte just before the mark is a line feed.
    prefix_ends_line: bool = False


@dataclass(frozen=True)
class _Position:
    """Where a complete read of a CSV file ended: the cursor. ``digest`` and ``size`` are
    of the bytes read; ``rows`` counts the complete CSV rows in them (header and blank
    ones included; ``None``: the next read of a changed file reads it whole), which end
    at byte ``resume``: before ``size`` when the file ended inside a quoted cell. Older
    cursors are a bare digest, or have no ``resume``."""

    digest: str
    size: int = 0
    rows: int | None = None
    encoding: str = ""
    delimiter: str = ""
    resume: int | None = None

    @property
    def rows_end(self) -> int:
        """The byte after the last complete row."""
        return self.size if self.resume is None else self.resume

    def dump(self) -> str:
        return json.dumps([self.digest, self.size, self.rows, self.encoding, self.delimiter, self.rows_end])

    @classmethod
    def parse(cls, cursor: str | None) -> _Position | None:
        if cursor is None:
            return None
        if not cursor.startswith("["):
            return cls(cursor)
        try:
            digest, size, rows, encoding, delimiter, *resume = json.loads(cursor)
            return cls(str(digest), int(size), None if rows is None else int(rows), str(encoding), str(delimiter),
                       int(resume[0]) if resume else None)
        except (ValueError, TypeError):
            return cls(cursor)


class _LastRow:
    """Passes rows through and remembers the last row number."""

    def __init__(self) -> None:
        self.last = 0

    def track(self, rows: Iterator[tuple[int, list[Any]]]) -> Iterator[tuple[int, list[Any]]]:
        for row in rows:  # the caller closes ``rows``
            self.last = row[0]
            yield row


class _Tail:
    """Feeds a CSV file's lines to the parser and tells whether the file ends inside a
    quoted cell: the parser then asked for a line more to close its last row. That row,
    ``open_row`` (a writer may still be at it), and its text are kept."""

    def __init__(self) -> None:
        self.lines: list[str] = []  # of the row being parsed
        self.ended_inside = False
        self.open_row: int | None = None
        self.open_text = ""

    def feed(self, text: Iterable[str]) -> Iterator[str]:
        lines = self.lines
        for line in text:
            lines.append(line)
            yield line.replace("\x00", "")
        self.ended_inside = bool(lines)

    def row_parsed(self, number: int) -> None:
        if self.ended_inside:
            self.open_row, self.open_text = number, "".join(self.lines)
        self.lines.clear()


class _Prefix(io.RawIOBase):
    """A file's bytes from where it is up to ``end`` (see ``_read_to``); closing it
    leaves the file open."""

    def __init__(self, handle: BinaryIO, end: int):
        self.handle = handle
        self.left = max(end - handle.tell(), 0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self.left:
            return 0
        with memoryview(buffer) as view:
            count = self.handle.readinto(view[: self.left]) or 0
        self.left -= count
        return count


@dataclass
class _CsvFormat:
    encoding: str
    delimiter: str
    line_terminator: str


@dataclass
class _Header:
    """The header row: a name per column, ``None`` under blank header cells."""

    names: list[str | None]
    id_index: int | None

    @property
    def columns(self) -> list[str]:
        return [name for name in self.names if name is not None]


@dataclass
class _Pending:
    """What a batch does to one id: remove its rows and/or set values."""

    remove: bool = False
    values: dict[str, Any] | None = None


class CsvConnector(Connector):
    """A CSV or XLSX file: read as a table, written as a table keyed by ``id``."""

    plugin = "csv"
    Options = CsvOptions
    capabilities = frozenset({"read", "write"})
    multi_value_cells = True
    write_batch_size = None
    description = "CSV and XLSX files (source and destination)"

    options: CsvOptions

    def __init__(self, options: CsvOptions, context: ConnectorContext):
        super().__init__(options, context)
        self.path = context.resolve_path(options.path)
        self.is_xlsx = self.path.suffix.lower() in XLSX_SUFFIXES

    # ---------------------------------------------------------------- reading

    def read(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        """The file's records (``_read_file``), each with its row's event when ``events:``
        is set."""
        if self.options.events is None:
            return self._read_file(cursor)
        try:
            fallback = dt.datetime.fromtimestamp(self.path.stat().st_mtime, tz=dt.timezone.utc)
        except OSError as error:
            raise self._os_error(error, "read") from None
        return with_events(self._read_file(cursor), self.options.events, str(self.path), fallback)

    def _read_file(self, cursor: str | None) -> Iterator[RawRecord | Checkpoint]:
        """Every non-blank row, then a complete checkpoint; only a checkpoint when
        the file's fingerprint equals ``cursor``.

        A CSV file that only grew since ``cursor`` (its old bytes unchanged, ending
        with a line break, in the same encoding and delimiter) is read from where the
        last read ended: the new rows, marked ``appended``, then a checkpoint that is
        not complete, since the old rows were not read again.

        A CSV file that ends inside a quoted cell has not been written whole yet (or a
        quote is not closed): its last row is yielded with an ``error`` (quarantined,
        not stored) and the cursor ends before it, so that the next read of the grown
        file starts with that row (not marked ``appended``: it was read before)."""
        previous = _Position.parse(cursor)
        with self._open_to_read() as handle:
            try:
                scan = _scan(handle, check_utf8=not self.is_xlsx and self.options.encoding is None,
                             mark=None if self.is_xlsx or previous is None else previous.size)
            except OSError as error:
                raise self._os_error(error, "read") from None
            if previous is not None and previous.digest == scan.fingerprint:
                yield Checkpoint(cursor, complete=False)
                return
            if not scan.size:
                yield Checkpoint(scan.fingerprint, complete=True)
                return
            csv_format = None if self.is_xlsx else self._csv_format(scan)
            start = self._resume_point(previous, scan, csv_format)
            handle.seek(0 if start is None else start.rows_end)
            counter = _LastRow()
            tail = _Tail()
            try:
                if csv_format is None:
                    rows = self._xlsx_rows(handle)
                elif start is None:
                    rows = self._parse_csv(_read_to(handle, scan.size), csv_format, tail=tail)
                else:
                    rows = self._appended_rows(_read_to(handle, scan.size), scan, csv_format, start, tail)
                # a row the last read stopped before was read then: it is not appended
                appended_from = None if start is None else start.rows + (1 if start.rows_end == start.size else 2)
                with closing(rows):
                    yield from self._records(counter.track(rows), appended_from=appended_from, tail=tail,
                                             delimiter=None if csv_format is None else csv_format.delimiter)
                rows_end: int | None = scan.size
                if tail.open_row is not None and csv_format is not None:
                    rows_end = self._row_start(handle, tail.open_text, scan.size, csv_format)
            except OSError as error:
                raise self._os_error(error, "read") from None
        if csv_format is None:
            yield Checkpoint(scan.fingerprint, complete=True)
            return
        rows_read = counter.last if start is None else max(counter.last, start.rows)
        if tail.open_row is not None:
            # the next read starts with that row; where it starts unknown: the next read is whole
            rows_read = tail.open_row - 1 if rows_end is not None else None
        position = _Position(scan.fingerprint, scan.size, rows_read, csv_format.encoding, csv_format.delimiter,
                             rows_end)
        yield Checkpoint(position.dump(), complete=start is None)

    @staticmethod
    def _row_start(handle: BinaryIO, text: str, end: int, csv_format: _CsvFormat) -> int | None:
        """Where the bytes ``text`` was decoded from start, when they are the last before
        ``end``; ``None`` when they are not (an encoding that does not encode back to them)."""
        try:
            data = text.encode(_text_encoding(csv_format.encoding))
        except UnicodeEncodeError:
            return None
        if len(data) > end:
            return None
        handle.seek(end - len(data))
        return end - len(data) if handle.read(len(data)) == data else None

    def _resume_point(self, previous: _Position | None, scan: _Scan, csv_format: _CsvFormat | None) -> _Position | None:
        """Where the last read ended, when the file only grew after it; else ``None``."""
        if (
            previous is None or csv_format is None or previous.rows is None
            or scan.prefix_digest != previous.digest
            # a row the read stopped before starts after a line break that was complete
            or (not scan.prefix_ends_line and previous.rows_end == previous.size)
            or (previous.encoding, previous.delimiter) != (csv_format.encoding, csv_format.delimiter)
            or csv_format.encoding.replace("_", "-").startswith(("utf-16", "utf-32"))
            or previous.rows < self.options.header_row
        ):
            return None
        return previous

    def _appended_rows(
        self, handle: BinaryIO, scan: _Scan, csv_format: _CsvFormat, start: _Position, tail: _Tail
    ) -> Iterator[tuple[int, list[Any]]]:
        """The header rows, then the rows after ``start`` numbered as in the whole file."""
        top = scan.sample[: scan.sample.rfind(b"\n") + 1]
        header = list(itertools.islice(self._parse_csv(io.BytesIO(top), csv_format), self.options.header_row))
        yield from header
        tail_format = _CsvFormat(_text_encoding(csv_format.encoding), csv_format.delimiter, csv_format.line_terminator)
        yield from self._parse_csv(handle, tail_format, first_row=start.rows + 1, tail=tail)

    def columns(self) -> list[str] | None:
        """The header's column names; ``None`` while the file does not exist or is empty.
        The core asks a source before a run: an ``id_column`` the header lacks is a
        ``ConfigError`` then."""
        if not self.path.exists():
            return None
        with self._open_to_read() as handle:
            try:
                size = os.fstat(handle.fileno()).st_size
                sample = handle.read(_SAMPLE)
                handle.seek(0)
                if not sample:
                    return None
                scan = _Scan("", size, sample, _utf8_prefix_valid(sample))
                with closing(self._rows(handle, scan)) as rows:
                    for row_number, cells in rows:
                        if row_number == self.options.header_row:
                            header = self._header(cells, for_write=False)
                            if len(header.columns) <= 1:
                                self._check_title(header.columns, rows)
                            return header.columns
            except OSError as error:
                raise self._os_error(error, "read") from None
        return None

    def _check_title(self, header: list[str], rows: Iterator[tuple[int, list[Any]]]) -> None:
        """A header row of one cell (or none) above a row that reads like a header is a
        title («Клиенты на 01.02.2024»): a ``FatalError`` naming the row to set as
        ``header_row``, instead of a mapping that finds none of its columns."""
        from hub.mapping import recognise_columns
        from hub.model import DEFAULT_COLUMNS

        for row_number, cells in itertools.islice(rows, 10):
            texts = [str(cell).strip() for cell in cells if not _is_blank(cell)]
            if len(texts) < 2 or any(not isinstance(cell, str) for cell in cells if not _is_blank(cell)):
                continue
            known = recognise_columns(texts) or set(texts) & set(DEFAULT_COLUMNS)
            if known or (len(set(texts)) == len(texts) >= 3 and not any(t[:1].isdigit() for t in texts)):
                above = f"holds only {header[0]!r}" if header else "is blank"
                raise FatalError(
                    f"{self.path}: row {self.options.header_row} {above}, and row {row_number} looks like the "
                    f"header ({', '.join(texts[:5])}{', …' if len(texts) > 5 else ''})",
                    hint=f"set header_row: {row_number} in the connector's options (rows above the header are "
                    "ignored and kept on write)",
                )
            return

    def _rows(self, handle: BinaryIO, scan: _Scan) -> Iterator[tuple[int, list[Any]]]:
        """``(row number, cells)`` of every row of the file or worksheet."""
        if self.is_xlsx:
            return self._xlsx_rows(handle)
        return self._parse_csv(handle, self._csv_format(scan))

    def _records(
        self, rows: Iterable[tuple[int, list[Any]]], *, appended_from: int | None = None, tail: _Tail | None = None,
        delimiter: str | None = None,
    ) -> Iterator[RawRecord]:
        """A record per non-blank row after the header; rows from ``appended_from`` on
        are marked ``appended``, the row ``tail`` finds the file ending inside gets an error,
        and so does a CSV row of one cell that another delimiter splits into columns."""
        header: _Header | None = None
        convert = _read_xlsx_cells if self.is_xlsx else _read_csv_cells
        for row_number, cells in rows:
            if row_number < self.options.header_row:
                continue
            if header is None:
                header = self._header(cells, for_write=False)
                names = header.names
                width = len(names)
                blank_columns = [index for index, name in enumerate(names) if name is None]
                continue
            # only a workbook holds formulas: a CSV row is not scanned for them
            uncomputed = [index for index, cell in enumerate(cells) if cell is UNCOMPUTED] if self.is_xlsx else ()
            other = _other_delimiter(cells, delimiter, len(header.names)) if delimiter is not None else None
            cells = convert(cells)
            if all(_is_blank(cell) for cell in cells):
                continue
            if len(cells) < width:
                cells.extend([""] * (width - len(cells)))
            for index in blank_columns:
                if not _is_blank(cells[index]):
                    raise self._blank_header_error(index + 1, row_number)
            values = dict(zip(names, cells, strict=False))  # cells beyond the header: below
            values.pop(None, None)  # type: ignore[call-overload]
            if len(cells) > width:
                extra = cells[width:]
                while extra and _is_blank(extra[-1]):
                    extra.pop()
                if extra:
                    if self.is_xlsx or not width:  # a grid, or no header at all: the header cell is blank
                        column = width + next(i for i, cell in enumerate(extra) if not _is_blank(cell))
                        raise self._blank_header_error(column + 1, row_number)
                    values[EXTRA_KEY] = extra
            if header.id_index is None:
                external_id = f"row:{row_number}"
            else:
                external_id = _id_text(cells[header.id_index])
            unreadable = tuple(
                (name, f"cell {column_letter(index + 1)}{row_number} ({name}) holds a formula saved without its "
                 "value (by a program that does not calculate formulas): open the file in Excel or LibreOffice "
                 "and save it, or replace the formula by its value")
                for index in uncomputed if index < width and (name := names[index]) is not None
            )
            error = None
            if other is not None:
                error = (f"row {row_number} is one cell where the header has {width} columns, and {other!r} splits "
                         f"it into values: the row was written with {other!r} between values, the file with "
                         f"{delimiter!r}; write the row like the others (or save the whole file with one delimiter)")
            if tail is not None and tail.open_row == row_number:
                error = (f"row {row_number} is not complete: the file ends inside a quoted cell (still being "
                         'written, or a " is not closed); the row is read again when the file changes')
            appended = appended_from is not None and row_number >= appended_from
            yield RawRecord(external_id, values, appended=appended, error=error, unreadable=unreadable)

    def _header(self, cells: Sequence[Any], *, for_write: bool) -> _Header:
        names: list[str | None] = []
        seen: dict[str, int] = {}
        for index, cell in enumerate(cells, start=1):
            name = _id_text(_read_value(cell)).replace("\ufeff", "").strip() if not _is_blank(cell) else ""
            if not name:
                names.append(None)
                continue
            if name in seen:
                raise FatalError(
                    f"{self.path}: the header has the column name {name!r} twice: "
                    f"columns {_column_label(seen[name])} and {_column_label(index)}",
                    hint="rename one of the columns so that every header is unique",
                )
            seen[name] = index
            names.append(name)
        if self.is_xlsx:  # a worksheet is a grid: blank cells right of the header are no columns
            while names and names[-1] is None:
                names.pop()
        id_index = self._id_index(names, for_write=for_write)
        return _Header(names, id_index)

    def _id_index(self, names: list[str | None], *, for_write: bool) -> int | None:
        """The id column's index; ``None`` for row numbers, or, writing, when the
        configured column is still to be added. Reading, a configured column the header
        lacks is a ``ConfigError``."""
        wanted = self.options.id_column
        if wanted is not None:
            if wanted in names:
                return names.index(wanted)
            if for_write:
                return None
            columns = [name for name in names if name is not None]
            close = [name for name in columns if name.casefold() == wanted.casefold()]
            close = close or difflib.get_close_matches(wanted, columns, n=1, cutoff=0.6)
            shown = ", ".join(columns[:_HINT_COLUMNS])
            if len(columns) > _HINT_COLUMNS:
                shown += f", … ({len(columns) - _HINT_COLUMNS} more)"
            hint = f"columns there: {shown}" if columns else f"row {self.options.header_row} is blank: check header_row"
            raise ConfigError(
                str(self.path), f"connectors.{self.context.name}.id_column", f"{wanted!r} is not a column of the file",
                hint=f"did you mean {close[0]!r}? {hint}" if close else hint,
            )
        if "id" in names:
            return names.index("id")
        for index, name in enumerate(names):
            if name is not None and name.lower() == "id":
                return index
        return None

    def _blank_header_error(self, column: int, row_number: int) -> FatalError:
        merged = "; a merged header cell names only its first column" if self.is_xlsx else ""
        return FatalError(
            f"{self.path}: column {_column_label(column)} has data (row {row_number}) but no header",
            hint=f"give the column a header or delete it (set header_row if the header is not on row 1){merged}",
        )

    def _no_id_column_error(self, row_number: int) -> FatalError:
        """Writing, a file with rows but no id column: no row can be told apart, and every
        contact would be added again below its old row."""
        wanted = self.options.id_column or "id"
        return FatalError(
            f"{self.path}: cannot write: row {row_number} has data but the file has no {wanted!r} column, "
            "so hub cannot tell which row is which contact",
            hint=f"restore the {wanted!r} column, or set id_column to a column with a unique value in every row; "
            "a file hub only writes may also be deleted, and hub writes it anew",
        )

    # ---------------------------------------------------------------- file access

    def _open_to_read(self) -> BinaryIO:
        try:
            return open(self.path, "rb")
        except OSError as error:
            raise self._os_error(error, "read") from None

    def _os_error(self, error: OSError, doing: str) -> HubError:
        reason = error.strerror or str(error)
        if isinstance(error, FileNotFoundError) and doing == "read":
            return FatalError(
                f"{self.path}: file not found",
                hint="check 'path' in hub.yaml; a relative path is taken from the folder of hub.yaml",
            )
        if isinstance(error, IsADirectoryError):
            return FatalError(f"{self.path}: is a folder, not a file", hint="point 'path' at a file")
        if isinstance(error, PermissionError):
            return FatalError(
                f"{self.path}: cannot {doing}: permission denied",
                hint="check the permissions of the file and its folder; close the file if another program holds it",
            )
        if error.errno == errno.ENOSPC:
            return FatalError(f"{self.path}: cannot {doing}: no space left on the disk", hint="free some disk space")
        if error.errno == errno.EROFS:
            return FatalError(f"{self.path}: cannot {doing}: the file system is read-only")
        if isinstance(error, FileNotFoundError):
            return FatalError(
                f"{self.path}: cannot {doing}: the folder does not exist",
                hint="create the folder or fix 'path' in hub.yaml",
            )
        if error.errno in _RETRIABLE_ERRNOS:
            return RetriableError(f"{self.path}: cannot {doing}: {reason}")
        return FatalError(f"{self.path}: cannot {doing}: {reason}")

    # ---------------------------------------------------------------- CSV parsing

    def _csv_format(self, scan: _Scan) -> _CsvFormat:
        encoding = self._csv_encoding(scan)
        text = _decode_sample(scan.sample, encoding, truncated=scan.size > len(scan.sample))
        delimiter = self.options.delimiter or _detect_delimiter(
            text, prefer_tab=self.path.suffix.lower() == ".tsv", header_row=self.options.header_row
        )
        match = re.search(r"\r\n|\n|\r", text)
        return _CsvFormat(encoding, delimiter, match.group() if match else "\r\n")

    def _csv_encoding(self, scan: _Scan) -> str:
        sample = scan.sample
        if sample.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
            raise FatalError(
                f"{self.path}: this is an Excel workbook, not a text file",
                hint="name the file .xlsx (save old .xls files as .xlsx first), or export it as CSV",
            )
        configured = self.options.encoding
        if configured is not None:
            if codecs.lookup(configured).name == "utf-8" and sample.startswith(codecs.BOM_UTF8):
                return "utf-8-sig"
            return configured
        if sample.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if sample.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            return "utf-32"
        if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if scan.utf8_valid:
            return "utf-8"
        if _looks_like_cp1251(sample):
            return "cp1251"
        import charset_normalizer

        guess = charset_normalizer.from_bytes(sample).best()
        if guess is not None and guess.encoding:
            return guess.encoding
        raise FatalError(
            f"{self.path}: cannot tell the file's encoding",
            hint="set 'encoding' in the connector's options, for example encoding: cp1251",
        )

    def _parse_csv(
        self, handle: BinaryIO, csv_format: _CsvFormat, first_row: int = 1, tail: _Tail | None = None
    ) -> Iterator[tuple[int, list[str]]]:
        if csv.field_size_limit() < MAX_CELL_BYTES:
            csv.field_size_limit(MAX_CELL_BYTES)
        text = io.TextIOWrapper(handle, encoding=csv_format.encoding, newline="", errors="strict")
        lines = (line.replace("\x00", "") for line in text) if tail is None else tail.feed(text)
        reader = csv.reader(lines, delimiter=csv_format.delimiter, quotechar='"', doublequote=True)
        row_number = first_row - 1
        try:
            for row_number, cells in enumerate(reader, start=first_row):
                if tail is not None:
                    tail.row_parsed(row_number)
                yield row_number, cells
        except UnicodeDecodeError:
            raise FatalError(
                f"{self.path}: cannot decode the text near row {row_number + 1} as {csv_format.encoding}",
                hint="set 'encoding' to the file's real encoding, for example cp1251 or utf-8",
            ) from None
        except csv.Error as error:
            raise FatalError(f"{self.path}: row {row_number + 1}: {error}") from None

    # ---------------------------------------------------------------- XLSX parsing

    def _load_workbook(self, source: Any, **kwargs: Any) -> Any:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            return openpyxl.load_workbook(source, **kwargs)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, TypeError) as error:
            raise FatalError(
                f"{self.path}: not a readable .xlsx file ({error})",
                hint="open it in a spreadsheet program and save it again as .xlsx",
            ) from None

    def _worksheet(self, workbook: Any, *, create: bool = False) -> Any:
        name = self.options.sheet
        if name is None:  # not the active sheet: it is whichever tab was open when the file was saved
            if workbook.worksheets:
                return workbook.worksheets[0]
            if create:
                return workbook.create_sheet("Contacts")
            raise FatalError(f"{self.path}: the workbook has no worksheet", hint="add a worksheet with a header row")
        if name in workbook.sheetnames:
            return workbook[name]
        if create:
            return workbook.create_sheet(name)
        sheets = ", ".join(repr(sheet) for sheet in workbook.sheetnames)
        raise FatalError(f"{self.path}: no worksheet named {name!r}", hint=f"set sheet to one of: {sheets}")

    def _xlsx_rows(self, handle: BinaryIO) -> Iterator[tuple[int, list[Any]]]:
        """The worksheet's rows, each cell the value a spreadsheet program computed and saved
        (a formula's cached value); a formula saved without one is ``UNCOMPUTED``."""
        workbook = self._load_workbook(handle, read_only=True, data_only=True)
        try:
            sheet = self._worksheet(workbook)
            sheet.reset_dimensions()  # some writers store a wrong size; read what is there
            try:
                yield from _xlsx_cached_rows(workbook, sheet)
            except _NoCachedRows:  # an openpyxl whose insides differ: its own reading
                for row_number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
                    yield row_number, list(cells)
        finally:
            workbook.close()

    # ---------------------------------------------------------------- writing

    def write(self, items: Sequence[OutboundItem]) -> list[WriteResult]:
        """Upsert and delete rows keyed by the id column, then replace the file atomically.

        The file is left untouched when the items change nothing in it."""
        if not items:
            return []
        results: dict[int, WriteResult] = {}
        try:
            if self.is_xlsx:
                self._write_xlsx(items, results)
            else:
                self._write_csv(items, results)
        except OSError as error:
            raise self._os_error(error, "write") from None
        return [results[position] for position in range(len(items))]

    def _plan(
        self, items: Sequence[OutboundItem], results: dict[int, WriteResult], convert: Callable[[Any], Any]
    ) -> dict[str, _Pending]:
        """Fold the batch into one pending change per id, converting values on the way;
        an item whose values cannot be stored is rejected alone."""
        plan: dict[str, _Pending] = {}
        for position, item in enumerate(items):
            key = _item_key(item)
            converted: dict[str, Any] = {}
            try:
                for column, value in item.values.items():
                    name = str(column).replace("\ufeff", "").strip()  # as a header reads back
                    if not name:
                        raise ValueError(f"the column name {column!r} is blank")
                    if name != EXTRA_KEY:
                        converted[name] = convert(value)
            except Exception as error:  # a value this file format cannot hold
                results[position] = WriteResult(item.contact_id, "rejected", key, f"cannot store value: {error}")
                continue
            pending = plan.setdefault(key, _Pending())
            if item.op == "delete":
                pending.remove, pending.values = True, None
            else:
                pending.values = {**(pending.values or {}), **converted}
            results[position] = WriteResult(item.contact_id, "ok", external_id=key)
        return plan

    def _final_header(self, names: list[str | None], plan: dict[str, _Pending]) -> tuple[list[str | None], int]:
        """The header with the id column and new value columns appended in first-seen order."""
        id_index = self._id_index(names, for_write=True)
        id_name = names[id_index] if id_index is not None else self.options.id_column or "id"
        new_columns = [] if id_index is not None else [id_name]
        for pending in plan.values():
            for column in pending.values or {}:
                if column not in names and column not in new_columns and not _same_column(column, id_name):
                    new_columns.append(column)
        if id_index is not None and not new_columns:
            return list(names), id_index
        kept = list(names)
        while kept and kept[-1] is None:  # blank columns at the end hold no data: reuse them
            kept.pop()
        names = kept + new_columns
        return names, names.index(id_name)

    def _check_folder(self) -> None:
        """A destination's folder is created on first write, like the file itself."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FatalError(
                f"{self.path}: cannot write: cannot create the folder {self.path.parent}: {error.strerror}",
                hint="create the folder or fix 'path' in hub.yaml",
            ) from None

    # CSV

    def _write_csv(self, items: Sequence[OutboundItem], results: dict[int, WriteResult]) -> None:
        existing_format = self._existing_csv_format()
        csv_format = existing_format or self._new_csv_format()

        def convert(value: Any) -> str:
            text = neutralize_formula(_csv_text(value).replace("\x00", ""))
            try:
                text.encode(csv_format.encoding)
            except UnicodeEncodeError as error:
                character = error.object[error.start : error.end]
                encoding = csv_format.encoding
                raise ValueError(f"{character!r} cannot be written in the file's encoding {encoding}") from None
            return text

        plan = self._plan(items, results, convert)
        if existing_format is None:
            if not plan:
                return
            self._check_folder()
            with _AtomicFile(self.path) as atomic:
                self._stream_csv(atomic, csv_format, iter(()), plan, existing=False)
            return
        with open(self.path, "rb") as handle, closing(self._parse_csv(handle, csv_format)) as rows:
            with _AtomicFile(self.path) as atomic:
                self._stream_csv(atomic, csv_format, rows, plan, existing=True)

    def _existing_csv_format(self) -> _CsvFormat | None:
        """The format of the file as it is; ``None`` when there is no file or it is empty."""
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return None
        with handle:
            scan = _scan(handle, check_utf8=self.options.encoding is None)
        return self._csv_format(scan) if scan.size else None

    def _new_csv_format(self) -> _CsvFormat:
        """UTF-8 with BOM, so that Excel shows Cyrillic right when it opens the file."""
        default_delimiter = "\t" if self.path.suffix.lower() == ".tsv" else ","
        return _CsvFormat(self.options.encoding or "utf-8-sig", self.options.delimiter or default_delimiter, "\r\n")

    def _stream_csv(
        self,
        atomic: _AtomicFile,
        csv_format: _CsvFormat,
        rows: Iterator[tuple[int, list[str]]],
        plan: dict[str, _Pending],
        *,
        existing: bool,
    ) -> None:
        """Copy the rows to the temporary file, changing the planned ones, in one pass."""
        text = io.TextIOWrapper(atomic.handle, encoding=csv_format.encoding, newline="", errors="strict")
        out = _CsvRowWriter(text, csv_format)
        changed = not existing
        header_row = self.options.header_row
        old_names: list[str | None] = []
        blank_columns: list[int] = []
        names: list[str | None] | None = None
        id_index = 0
        seen: set[str] = set()
        keyless = False
        for row_number, cells in rows:
            if row_number < header_row:
                out.write(cells)
                continue
            if names is None:
                old_names = self._header(cells, for_write=True).names
                blank_columns = [index for index, name in enumerate(old_names) if name is None]
                keyless = self._id_index(old_names, for_write=True) is None
                names, id_index = self._final_header(old_names, plan)
                changed |= names != old_names
                out.write([name or "" for name in names] + cells[len(old_names):])
                continue
            checked = blank_columns if old_names else range(len(cells))  # no header: every cell
            for index in checked:
                if index < len(cells) and not _is_blank(cells[index]):
                    raise self._blank_header_error(index + 1, row_number)
            if keyless and not all(_is_blank(cell) for cell in cells):
                raise self._no_id_column_error(row_number)
            if len(cells) > len(old_names) and len(names) > len(old_names):
                # cells beyond the old header stay beyond the new one
                cells = cells[: len(old_names)] + [""] * (len(names) - len(old_names)) + cells[len(old_names):]
            key = _id_text(restore_formula(cells[id_index])) if id_index < len(cells) else ""
            pending = plan.get(key) if key else None
            if pending is None:
                out.write(cells)
                continue
            seen.add(key)
            if pending.remove:
                changed = True
                continue
            updated = _apply(cells, names, id_index, neutralize_formula(key), pending.values or {}, empty="")
            changed |= updated != cells
            out.write(updated)
        if names is None:  # a new or empty file: write the header first
            for _ in range(header_row - 1):
                out.write([])
            names, id_index = self._final_header([], plan)
            out.write([name or "" for name in names])
            changed = True
        for key, pending in plan.items():
            if pending.values is not None and (key not in seen or pending.remove):
                out.write(_apply([], names, id_index, neutralize_formula(key), pending.values, empty=""))
                changed = True
        text.flush()
        text.detach()
        if changed:
            atomic.commit()

    # XLSX

    def _write_xlsx(self, items: Sequence[OutboundItem], results: dict[int, WriteResult]) -> None:
        from openpyxl import Workbook

        plan = self._plan(items, results, _xlsx_value)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size:
            workbook = self._load_workbook(str(self.path), keep_vba=self.path.suffix.lower() == ".xlsm")
            sheet = self._worksheet(workbook, create=True)
        elif not plan:
            return
        elif self.path.suffix.lower() == ".xlsm":
            raise FatalError(
                f"{self.path}: cannot create a new .xlsm workbook (macros cannot be written)",
                hint="write to an .xlsx file, or create the .xlsm in Excel first",
            )
        else:
            self._check_folder()
            workbook = Workbook()
            sheet = workbook.active
            sheet.title = self.options.sheet or "Contacts"
        if self._apply_xlsx(sheet, plan) or not size:
            with _AtomicFile(self.path) as atomic:
                workbook.save(atomic.handle)
                atomic.commit()

    def _apply_xlsx(self, sheet: Any, plan: dict[str, _Pending]) -> bool:
        """Apply the plan to the worksheet in place; say whether anything changed."""
        header_row = self.options.header_row
        width = sheet.max_column if sheet.max_row >= header_row else 0
        header_cells = [sheet.cell(header_row, column).value for column in range(1, width + 1)]
        old_names = self._header(header_cells, for_write=True).names
        keyless = self._id_index(old_names, for_write=True) is None
        names, id_index = self._final_header(old_names, plan)
        id_name = names[id_index]
        rows_by_key: dict[str, list[int]] = {}
        last_data_row = header_row
        data_rows = sheet.iter_rows(min_row=header_row + 1, max_col=max(width, 1), values_only=True)
        for row_number, cells in enumerate(data_rows, start=header_row + 1):
            if all(_is_blank(cell) for cell in cells):
                continue
            last_data_row = row_number
            for index, cell in enumerate(cells):
                if not _is_blank(cell) and (index >= len(old_names) or old_names[index] is None):
                    raise self._blank_header_error(index + 1, row_number)
            if keyless:
                raise self._no_id_column_error(row_number)
            if id_index < len(cells):
                key = _id_text(_read_value(cells[id_index]))
                if key in plan:
                    rows_by_key.setdefault(key, []).append(row_number)
        changed = False
        if len(names) > len(old_names):
            changed = True
            for index in range(len(old_names), len(names)):
                _set_xlsx_cell(sheet, header_row, index + 1, names[index])
        to_delete: list[int] = []
        appended = last_data_row
        for key, pending in plan.items():
            rows = rows_by_key.get(key, [])
            if pending.remove:
                to_delete.extend(rows)
            if pending.values is None:
                continue
            if pending.remove or not rows:
                appended += 1
                rows = [appended]
            for row_number in rows:
                id_cell = sheet.cell(row_number, id_index + 1)
                if _id_text(_read_value(id_cell.value)) != key:
                    _set_xlsx_cell(sheet, row_number, id_index + 1, _xlsx_value(key))
                    changed = True
                for column, value in pending.values.items():
                    if _same_column(column, id_name):
                        continue
                    column_number = names.index(column) + 1
                    if _xlsx_differs(sheet.cell(row_number, column_number).value, value):
                        _set_xlsx_cell(sheet, row_number, column_number, value)
                        changed = True
        for row_number in sorted(to_delete, reverse=True):
            sheet.delete_rows(row_number, 1)
            changed = True
        return changed


class _AtomicFile:
    """A temporary file beside ``target`` that replaces it on ``commit`` and is
    removed otherwise, so readers see either the old file or the new one."""

    def __init__(self, target: Path):
        self.target = target
        self.temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        self.handle: BinaryIO
        self.committed = False

    def __enter__(self) -> _AtomicFile:
        self._remove_leftovers()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        descriptor = os.open(self.temporary, flags, 0o666)
        self.handle = os.fdopen(descriptor, "wb")
        return self

    def _remove_leftovers(self) -> None:
        """Temporary files of writers that were killed (their process is gone)."""
        for leftover in self.target.parent.glob(f".{glob.escape(self.target.name)}.*.tmp"):
            parts = leftover.name[len(self.target.name) + 2 :].split(".")
            if len(parts) == 3 and parts[0].isdigit() and not _process_alive(int(parts[0])):
                with suppress(OSError):
                    leftover.unlink()

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        with suppress(FileNotFoundError):  # a new file keeps the default permissions
            os.chmod(self.temporary, stat.S_IMODE(self.target.stat().st_mode))
        os.replace(self.temporary, self.target)
        self.committed = True
        _fsync_folder(self.target.parent)

    def __exit__(self, *exc_info: Any) -> bool:
        if not self.committed:
            with suppress(OSError):
                self.handle.close()
            with suppress(OSError):
                os.unlink(self.temporary)
        return False


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class _CsvRowWriter:
    """``csv.writer`` with the file's own line ending.

    The csv module quotes a cell holding CR or LF only when that character is part
    of its line terminator, so rows are formatted with CRLF and the ending swapped.
    """

    def __init__(self, text: io.TextIOBase, csv_format: _CsvFormat):
        self.text = text
        self.ending = csv_format.line_terminator
        self.buffer = io.StringIO()
        self.writer = csv.writer(
            self.buffer, delimiter=csv_format.delimiter, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL
        )

    def write(self, cells: Sequence[str]) -> None:
        self.buffer.seek(0)
        self.buffer.truncate()
        self.writer.writerow(cells)
        self.text.write(self.buffer.getvalue()[:-2] + self.ending)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; not every platform can open a folder."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _scan(handle: BinaryIO, *, check_utf8: bool, mark: int | None = None) -> _Scan:
    """Hash the whole file and check it is UTF-8 in one pass of constant memory; with
    ``mark``, also hash its first ``mark`` bytes and tell whether they end a line."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")() if check_utf8 else None
    sample = b""
    size = 0
    prefix_digest: str | None = None
    prefix_ends_line = False
    while chunk := handle.read(_CHUNK):
        if mark is not None and size < mark <= size + len(chunk):
            digest.update(chunk[: mark - size])
            prefix_digest = digest.hexdigest()
            prefix_ends_line = mark > 0 and chunk[mark - size - 1 : mark - size] == b"\n"
            digest.update(chunk[mark - size :])
        else:
            digest.update(chunk)
        if size < _SAMPLE:
            sample += chunk[: _SAMPLE - size]
        size += len(chunk)
        if decoder is not None:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                decoder = None
                check_utf8 = False
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            check_utf8 = False
    return _Scan(digest.hexdigest(), size, sample, check_utf8, prefix_digest, prefix_ends_line)


def _read_to(handle: BinaryIO, end: int) -> BinaryIO:
    """The file from where it is up to byte ``end``: the bytes its scan hashed, so that
    rows a writer appends during the read are left to the next one."""
    return io.BufferedReader(_Prefix(handle, end), _CHUNK)


def _text_encoding(encoding: str) -> str:
    """The encoding of text after the file's start: a BOM is only there."""
    return "utf-8" if encoding == "utf-8-sig" else encoding


def _utf8_prefix_valid(sample: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample)
    except UnicodeDecodeError:
        return False
    return True


def _looks_like_cp1251(sample: bytes) -> bool:
    """Russian text in cp1251: decodes, and its non-ASCII characters are Cyrillic
    words (not single letters glued to Latin ones, as Western text would give)."""
    try:
        text = sample.decode("cp1251")
    except UnicodeDecodeError:
        return False
    foreign = [char for char in text if ord(char) > 127]
    if not foreign:
        return True
    cyrillic = sum(1 for char in foreign if "\u0400" <= char <= "\u04ff")
    plausible = sum(1 for char in foreign if char in _CP1251_PUNCTUATION) + cyrillic
    if plausible < 0.95 * len(foreign):
        return False
    return len(_CYRILLIC_NEXT_TO_LATIN.findall(text)) <= 0.2 * max(cyrillic, 1)


def _decode_sample(sample: bytes, encoding: str, *, truncated: bool) -> str:
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
    text = text.replace("\x00", "").lstrip("\ufeff")
    if truncated:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut > 0:
            text = text[:cut]
    return text


def _detect_delimiter(text: str, *, prefer_tab: bool, header_row: int) -> str:
    """The candidate that splits the header into most columns with rows agreeing."""
    candidates = ("\t",) + tuple(d for d in DELIMITERS if d != "\t") if prefer_tab else DELIMITERS
    best, best_score = candidates[0], None
    for order, candidate in enumerate(candidates):
        rows: list[list[str]] = []
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=candidate)
        try:
            for cells in itertools.islice(reader, header_row - 1 + 200):
                rows.append(cells)
        except csv.Error:
            pass
        rows = [cells for cells in rows[header_row - 1:] if any(cell.strip() for cell in cells)]
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        agreeing = sum(1 for cells in rows if len(cells) == width) / len(rows)
        score = (round(agreeing, 1), width, -order)
        if best_score is None or score > best_score:
            best, best_score = candidate, score
    return best


class _Uncomputed(str):
    """A formula cell saved without its value: blank, and told apart by identity."""

    __slots__ = ()


#: The value of a formula cell whose file holds no computed value for it.
UNCOMPUTED = _Uncomputed("")


class _NoCachedRows(Exception):
    """openpyxl's worksheet parser is not what ``_xlsx_cached_rows`` expects."""


def _xlsx_cached_rows(workbook: Any, sheet: Any) -> Iterator[tuple[int, list[Any]]]:
    """``sheet.iter_rows(values_only=True)`` numbered from 1, from openpyxl's own parser,
    with ``UNCOMPUTED`` for a formula cell the file holds no value of. Programs that write
    formulas without calculating them leave its ``<v>`` out or empty in a numeric cell;
    a formula computed to empty text is a ``t="str"`` cell and stays blank."""
    try:
        from openpyxl.worksheet._reader import FORMULA_TAG, VALUE_TAG, WorkSheetParser

        source = sheet._get_source()
        options = dict(data_only=True, epoch=workbook.epoch, date_formats=workbook._date_formats,
                       timedelta_formats=workbook._timedelta_formats)
        shared_strings = sheet._shared_strings
    except (ImportError, AttributeError):
        raise _NoCachedRows from None

    class Parser(WorkSheetParser):  # type: ignore[misc, valid-type]
        def parse_cell(self, element: Any) -> dict[str, Any]:
            cell = super().parse_cell(element)
            if cell["value"] is None and element.find(FORMULA_TAG) is not None:
                if element.get("t", "n") not in ("str", "inlineStr") and not element.findtext(VALUE_TAG):
                    cell["value"] = UNCOMPUTED
            return cell

    with source:
        expected = 1
        for row_number, cells in Parser(source, shared_strings, **options).parse():
            while expected < row_number:  # rows the file leaves out are empty
                yield expected, []
                expected += 1
            values: list[Any] = [None] * (cells[-1]["column"] if cells else 0)
            for cell in cells:
                values[cell["column"] - 1] = cell["value"]
            yield row_number, values
            expected = row_number + 1


def _other_delimiter(cells: list[Any], delimiter: str, width: int) -> str | None:
    """The delimiter a CSV row of a single cell was written with, when it is not the
    file's: ``Петров Пётр;89161234568;b@x.ru`` appended to a comma file splits on ``;``
    into the header's number of values, or at least three."""
    if width < 2 or len(cells) != 1 or not isinstance(cells[0], str):
        return None
    for candidate in DELIMITERS:
        if candidate != delimiter:
            parts = cells[0].count(candidate) + 1
            if parts == width or parts >= 3:
                return candidate
    return None


def _read_value(value: Any) -> Any:
    """A cell as a record carries it: strings without hub's formula guard, integral
    floats as ints (a phone is not 7.9E+10), empty cells as ``""``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return restore_formula(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def _read_csv_cells(cells: list[str]) -> list[str]:
    return [restore_formula(cell) if cell[:1] == "'" else cell for cell in cells]


def _read_xlsx_cells(cells: list[Any]) -> list[Any]:
    return [_read_value(cell) for cell in cells]


def _id_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return "" if value is None else str(value).strip()


def _item_key(item: OutboundItem) -> str:
    """The id a contact has in the file: the known link, else its contact id."""
    if item.external_id and not item.external_id.startswith("row:"):
        return item.external_id
    return str(item.contact_id)


def _apply(
    cells: list[Any], names: list[str | None], id_index: int, key: str, values: dict[str, Any], *, empty: Any
) -> list[Any]:
    updated = list(cells) + [empty] * (len(names) - len(cells))
    updated[id_index] = key
    for column, value in values.items():
        if not _same_column(column, names[id_index]):
            updated[names.index(column)] = value
    return updated


def _same_column(column: str, id_name: Any) -> bool:
    """The id column belongs to the connector: a value for it (in any case) is ignored."""
    return isinstance(id_name, str) and column.lower() == id_name.lower()


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(_csv_text(item) for item in items)
    return str(value)


def _xlsx_value(value: Any) -> Any:
    """A value as an XLSX cell stores it: numbers and dates native, the rest text
    without the control characters XML cannot hold."""
    if value is None or isinstance(value, (bool, dt.time)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, decimal.Decimal):
        return _xlsx_value(float(value)) if value.is_finite() else str(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.isoformat()
    elif isinstance(value, dt.date):
        return value
    # XML turns CR into LF when the file is read back, so store LF in the first place
    text = _csv_text(value).replace("\r\n", "\n").replace("\r", "\n")
    text = neutralize_formula(_XLSX_ILLEGAL.sub("", text))
    if len(text) > XLSX_MAX_CELL_CHARS:
        raise ValueError(f"text of {len(text)} characters is longer than an XLSX cell holds ({XLSX_MAX_CELL_CHARS})")
    return text or None


def _xlsx_differs(current: Any, wanted: Any) -> bool:
    if _is_blank(current) and _is_blank(wanted):
        return False
    return type(current) is not type(wanted) or current != wanted


def _set_xlsx_cell(sheet: Any, row: int, column: int, value: Any) -> None:
    """Store strings as text, never as a formula, whatever they start with."""
    from openpyxl.cell.cell import MergedCell

    cell = sheet.cell(row, column)
    if isinstance(cell, MergedCell):  # a cell hidden by a merge: split the merge to write it
        for merged in list(sheet.merged_cells.ranges):
            if merged.min_row <= row <= merged.max_row and merged.min_col <= column <= merged.max_col:
                sheet.unmerge_cells(merged.coord)
        cell = sheet.cell(row, column)
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"


@hookimpl
def hub_connectors(register):
    register(CsvConnector)
