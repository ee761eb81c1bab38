"""Rows of a table (a file, a sheet) as events: orders (``purchase``) and funnel stages (docs/segments.md).

The ``events:`` option of the csv connector names the columns. Each row stays a regular
record (its buyer found or created through the mapping like any record) and carries
one event whose id is the row's id; a row whose date, amount or type cannot be read
is quarantined with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import Field, field_validator, model_validator

from hub.connector import ConnectorOptions
from hub.errors import FatalError
from hub.model import PURCHASE_EVENT, Checkpoint, EventReport, RawRecord
from hub.normalize import DATE_FORMATS, parse_date

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_AMOUNT_NOISE = re.compile(r"[\s\u00a0\u202f'₽$€£¥]|руб\.?|р\.|RUB|USD|EUR", re.IGNORECASE)


class EventColumns(ConnectorOptions):
    """``events:`` of a csv connector: which columns make each row an event."""

    type: str | None = Field(None, description="The event type of every row, e.g. purchase.")
    type_column: str | None = Field(None, description="A column naming each row's event (a stage file).")
    types: dict[str, str] = Field(default_factory=dict,
                                  description="With type_column: cell value -> event type, e.g. {Отказ: refused}.")
    at: str | None = Field(None, description="Column with when it happened; required for purchases.")
    date_format: str = Field("auto", description="auto, DD.MM.YYYY, YYYY-MM-DD, MM/DD/YYYY, DD/MM/YYYY or excel.")
    amount: str | None = Field(None, description="Column with the order's amount.")
    currency: str | None = Field(None, description="Column with the order's ISO currency code.")
    items: str | None = Field(None, description="Column with the order's items (kept as text).")
    history: bool = Field(True, description="Rows are history: a row gone from the file removes nothing. "
                          "false: the file is also a list of contacts (a stage column in the client sheet), "
                          "whose removed rows are removed as usual.")

    @field_validator("type")
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        if value is not None and not _EVENT_TYPE.match(value):
            raise ValueError(f"{value!r} is not an event type: lower-case letters, digits and _, e.g. purchase")
        return value

    @field_validator("types")
    @classmethod
    def _types(cls, value: dict[str, str]) -> dict[str, str]:
        for cell, kind in value.items():
            if not _EVENT_TYPE.match(kind):
                raise ValueError(f"{cell!r}: {kind!r} is not an event type: lower-case letters, digits and _")
        return {cell.strip().casefold(): kind for cell, kind in value.items()}

    @field_validator("date_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value.lower() in ("auto", "excel"):
            return value.lower()
        if value.upper() not in DATE_FORMATS:
            raise ValueError(f"unknown date format {value!r}; use auto or one of {', '.join(DATE_FORMATS)}")
        return value.upper()

    @model_validator(mode="after")
    def _one_type(self) -> EventColumns:
        if (self.type is None) == (self.type_column is None):
            raise ValueError("give either type (every row's event, e.g. purchase) or type_column (a column naming it)")
        if self.type == PURCHASE_EVENT and self.at is None:
            raise ValueError("purchases need the column of their date: at")
        if self.types and self.type_column is None:
            raise ValueError("types translates the cells of type_column; set type_column")
        return self

    def columns(self) -> list[str]:
        return [c for c in (self.type_column, self.at, self.amount, self.currency, self.items) if c]


def with_events(records: Iterable[RawRecord | Checkpoint], spec: EventColumns, where: str,
                fallback_at: dt.datetime) -> Iterator[RawRecord | Checkpoint]:
    """Attach each row's event. With ``history`` checkpoints are never complete: a row
    gone from the file does not undo the order. ``fallback_at``: when a row has no
    ``at`` column (a stage column of a contact sheet)."""
    checked = False
    for item in records:
        if isinstance(item, Checkpoint):
            yield Checkpoint(item.cursor, complete=False) if spec.history else item
            continue
        if item.error or item.deleted:
            yield item
            continue
        if not checked:
            missing = [c for c in spec.columns() if c not in item.values]
            if missing:
                raise FatalError(f"{where}: events: column {missing[0]!r} is not in the file",
                                 hint=f"columns: {', '.join(sorted(k for k in item.values if k != '_extra'))}")
            checked = True
        event, error = event_of(item.external_id, item.values, spec, fallback_at)
        if error is not None:
            yield dataclasses.replace(item, error=error)
        elif event is not None:
            yield dataclasses.replace(item, events=(*item.events, event))
        else:
            yield item


def event_of(row_id: str, values: dict[str, Any], spec: EventColumns,
             fallback_at: dt.datetime) -> tuple[EventReport | None, str | None]:
    """The event of one row, or the reason it cannot be read. A stage row with an empty
    type cell carries no event."""
    kind = spec.type
    if spec.type_column is not None:
        cell = _text(values.get(spec.type_column))
        if not cell:
            return None, None
        kind = spec.types.get(cell.casefold(), cell if _EVENT_TYPE.match(cell) else None)
        if kind is None:
            known = ", ".join(sorted(spec.types)) or "none configured"
            return None, (f"{spec.type_column}: {cell!r} is not an event type; add it to events.types "
                          f"(known: {known})")
    assert kind is not None
    at = fallback_at
    if spec.at is not None:
        raw = values.get(spec.at)
        if _text(raw) is None:
            return None, f"{spec.at}: the date is empty"
        try:
            at = _when(raw, spec.date_format)
        except ValueError as error:
            return None, f"{spec.at}: {error}"
    amount = None
    if spec.amount is not None and _text(values.get(spec.amount)) is not None:
        try:
            amount = _amount(values[spec.amount])
        except ValueError as error:
            return None, f"{spec.amount}: {error}"
    currency = None
    if spec.currency is not None:
        currency = _text(values.get(spec.currency))
        if currency is not None:
            currency = {"руб": "RUB", "руб.": "RUB", "₽": "RUB", "р.": "RUB", "$": "USD", "€": "EUR"}.get(
                currency.lower(), currency)
            if not _CURRENCY.match(currency):
                return None, f"{spec.currency}: {currency!r} is not a currency code such as RUB, USD, EUR"
            currency = currency.upper()
    payload: tuple[tuple[str, str], ...] = ()
    if spec.items is not None and _text(values.get(spec.items)) is not None:
        payload = (("items", str(values[spec.items]).strip()),)
    external_id = row_id if spec.type is not None else f"{row_id}:{kind}"
    return EventReport(kind, external_id, at, payload, amount=amount, currency=currency), None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _when(value: Any, date_format: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str) and ("T" in value or ":" in value):
        try:
            moment = dt.datetime.fromisoformat(value.strip().replace(" ", "T", 1))
        except ValueError:
            raise ValueError(f"{value!r} is not a date and time (YYYY-MM-DD HH:MM)") from None
    else:
        day = parse_date(value, date_format)
        moment = dt.datetime(day.year, day.month, day.day)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _amount(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = _AMOUNT_NOISE.sub("", str(value))
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")
        elif "," in text and "." in text:
            text = text.replace(",", "")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an amount such as 1234.50") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not an amount")
    if number < 0:
        raise ValueError(f"{value!r} is negative; a refund is not an order (leave the row out)")
    return number
