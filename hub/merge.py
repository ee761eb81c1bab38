"""Survivorship: which value a contact keeps when its records disagree.

Strategies, chosen per field in ``merge:`` of hub.yaml:

* ``source_priority``: the value of the most trusted connector (``merge.source_priority``,
  then hub.yaml order) that has one;
* ``most_recent``: the value that changed last (the tool's timestamp, else when hub saw
  the change); records of a connector's initial load carry no time and rank by priority;
* ``most_complete``: the fullest value (for names: the most name parts; otherwise the
  longest), ties going to the more trusted source.

Name parts (full, last, first, middle) are one group decided by the strategy of
``full_name``, so a contact never mixes the surname of one record with the first
name of another. Phone and e-mail lists are the union of all records' lists.
The result depends only on the set of records, never on the order they arrived in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.model import CONTACT_FIELDS, LEAD_FIELD, LEAD_STATUSES, LIST_FIELDS

NAME_FIELDS = ("full_name", "last_name", "first_name", "middle_name")
#: Survivorship of ``x_lead_status``: the best status (target over non-target) wins.
BEST_LEAD = "best_lead"
_LEAD_RANK = {status: rank for rank, status in enumerate(LEAD_STATUSES)}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class SourceValues:
    """What one linked source record contributes to its contact."""

    connector: str
    external_id: str
    values: dict[str, Any]
    changed_at: dt.datetime | None


@dataclass(frozen=True)
class Survivor:
    value: Any
    connector: str | None
    external_id: str | None


class Survivorship:
    def __init__(self, priority: Sequence[str], default: str = "most_recent", fields: dict[str, str] | None = None):
        self.rank = {name: i for i, name in enumerate(priority)}
        self.default = default
        # a lead is as good as its best site-form submission, whatever order they came in
        self.fields = {"full_name": "most_complete", LEAD_FIELD: BEST_LEAD, **(fields or {})}

    def strategy(self, field: str) -> str:
        return self.fields.get(field, self.default)

    def _priority_key(self, record: SourceValues) -> tuple[int, str, str]:
        return (self.rank.get(record.connector, len(self.rank)), record.connector, record.external_id)

    def _order(self, records: Sequence[SourceValues], strategy: str, field: str) -> list[SourceValues]:
        """Records from best to worst for ``field`` under ``strategy``."""
        if strategy == "source_priority":
            return sorted(records, key=self._priority_key)
        if strategy == BEST_LEAD:
            return sorted(records, key=lambda r: (_LEAD_RANK.get(r.values.get(field), len(_LEAD_RANK)),
                                                  self._priority_key(r)))
        if strategy == "most_recent":
            return sorted(records, key=lambda r: (-_timestamp(r.changed_at), self._priority_key(r)))
        if field == "full_name":
            # more name parts win; between equally complete names, the more trusted source
            return sorted(records, key=lambda r: (-_name_parts(r.values), self._priority_key(r)))
        return sorted(records, key=lambda r: (-len(str(r.values.get(field) or "")), self._priority_key(r)))

    def merge(self, records: Sequence[SourceValues]) -> dict[str, Survivor]:
        """The surviving value of every field that any record has."""
        result: dict[str, Survivor] = {}
        if not records:
            return result
        if len(records) == 1:
            return self._single(records[0])
        named = [r for r in records if any(r.values.get(f) for f in NAME_FIELDS)]
        if named:
            best = self._order(named, self.strategy("full_name"), "full_name")[0]
            for field in NAME_FIELDS:
                if best.values.get(field):
                    result[field] = Survivor(best.values[field], best.connector, best.external_id)
        plain = [f for f in CONTACT_FIELDS if f not in NAME_FIELDS]
        extra = sorted({k for r in records for k in r.values if k.startswith("x_")})
        for field in plain + extra:
            having = [r for r in records if r.values.get(field) not in (None, "", [])]
            if having:
                best = having[0] if len(having) == 1 else self._order(having, self.strategy(field), field)[0]
                result[field] = Survivor(best.values[field], best.connector, best.external_id)
        for field in LIST_FIELDS:
            single = field[:-1]
            union: list[str] = []
            primary = result.get(single)
            if primary is not None:
                union.append(primary.value)
            for record in self._order(records, "source_priority", field):
                for value in record.values.get(field) or ():
                    if value not in union:
                        union.append(value)
            if union:
                result[field] = Survivor(union, None, None)
        return result

    @staticmethod
    def _single(record: SourceValues) -> dict[str, Survivor]:
        """``merge`` of one record (most contacts): every value survives as it is."""
        result: dict[str, Survivor] = {}
        values = record.values
        for field, value in values.items():
            if value in (None, "", []) or field in LIST_FIELDS:
                continue
            if field in _KNOWN or field.startswith("x_"):
                result[field] = Survivor(value, record.connector, record.external_id)
        for field in LIST_FIELDS:
            union: list[str] = []
            primary = result.get(field[:-1])
            if primary is not None:
                union.append(primary.value)
            for value in values.get(field) or ():
                if value not in union:
                    union.append(value)
            if union:
                result[field] = Survivor(union, None, None)
        return result


_KNOWN = frozenset(CONTACT_FIELDS)


def _timestamp(value: dt.datetime | None) -> float:
    if value is None:
        return float("-inf")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return (value - _EPOCH).total_seconds()


def _name_parts(values: dict[str, Any]) -> int:
    return sum(1 for f in ("last_name", "first_name", "middle_name") if values.get(f))
