"""Reading the history: runs and the change log."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from hub.store.schema import changes, runs

#: The field of a contact's creation entry (its new value holds every value).
CREATED = "created"


def list_runs(c: Connection, limit: int = 20) -> list[dict[str, Any]]:
    rows = c.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).all()
    return [
        {
            "id": row.id,
            "kind": row.kind,
            "status": row.status,
            "started_at": _iso(row.started_at),
            "finished_at": _iso(row.finished_at),
            "connectors": json.loads(row.connectors) if row.connectors else [],
            "counts": json.loads(row.counts) if row.counts else {},
            "error": row.error,
        }
        for row in rows
    ]


def change_log(
    c: Connection,
    *,
    contact: int | None = None,
    field: str | None = None,
    run: int | None = None,
    connector: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Change-log entries, oldest first. With ``field``, a contact's creation (one entry
    holding every value) shows as that field's first value."""
    conditions = []
    if contact is not None:
        conditions.append(changes.c.contact_id == contact)
    if field:
        conditions.append(changes.c.field.in_((field, CREATED)) if field != CREATED else changes.c.field == field)
    if run is not None:
        conditions.append(changes.c.run_id == run)
    if connector:
        conditions.append(changes.c.connector == connector)
    query = select(changes).order_by(changes.c.id.desc()).limit(limit)
    if conditions:
        query = query.where(and_(*conditions))
    entries = []
    for row in reversed(c.execute(query).all()):
        entry = {
            "id": row.id,
            "run_id": row.run_id,
            "contact_id": row.contact_id,
            "field": row.field,
            "old": row.old_value,
            "new": row.new_value,
            "connector": row.connector,
            "external_id": row.external_id,
            "reason": row.reason,
            "at": _iso(row.at),
        }
        if field and field != CREATED and row.field == CREATED:
            created = json.loads(row.new_value or "{}")
            if field not in created:
                continue
            value = created[field]
            entry.update(field=field, new=value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        entries.append(entry)
    return entries


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
