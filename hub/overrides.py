"""Values an undo put back over what a contact's records derive.

A contact is derived from its source records (``Sync._recompute``), so an undo cannot
just write old values into the contact: the next derivation would bring the undone
values back. An override says "this field keeps this value while the records still
derive that one"; a source that later brings a new value for the field wins again,
and the override is dropped. Field ``deleted`` (an undone creation) keeps the
contact deleted while its records derive the same contact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.engine import Connection

from hub.store.schema import overrides

#: The override of an undone creation: the contact stays deleted.
DELETED = "deleted"


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def load_overrides(c: Connection, contact_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The overrides of these contacts: contact -> field -> row."""
    held: dict[int, dict[str, Any]] = {}
    for start in range(0, len(contact_ids), 500):
        chunk = contact_ids[start : start + 500]
        for row in c.execute(select(overrides).where(overrides.c.contact_id.in_(chunk))):
            held.setdefault(row.contact_id, {})[row.field] = row
    return held


def apply_overrides(
    contact_id: int, derived: dict[str, Any], held: dict[int, dict[str, Any]], stale: list[tuple[int, str]]
) -> dict[str, Any] | None:
    """``derived`` with this contact's overrides applied; None when it stays deleted.
    Overrides whose masked value the records no longer derive are added to ``stale``."""
    rows = held.get(contact_id)
    if not rows:
        return derived
    values = dict(derived)
    deleted = rows.get(DELETED)
    if deleted is not None:
        if deleted.masked == dump(derived):
            return None
        stale.append((contact_id, DELETED))
    for field_, row in rows.items():
        if field_ == DELETED:
            continue
        if row.masked != dump(derived.get(field_)):
            stale.append((contact_id, field_))
            continue
        value = json.loads(row.value) if row.value is not None else None
        if value is None:
            values.pop(field_, None)
        else:
            values[field_] = value
    return values


def drop_overrides(c: Connection, keys: list[tuple[int, str]]) -> None:
    for contact_id, field_ in keys:
        c.execute(delete(overrides).where(and_(overrides.c.contact_id == contact_id, overrides.c.field == field_)))
