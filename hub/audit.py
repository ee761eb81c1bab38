"""Who read what: every export and client-card read is recorded, with the actor, what,
how many rows and whether e-mails and phones were shown in full (``hub audit``).

Exports mask e-mails and phones unless ``--unmask``; an unmasked export is recorded
as such. The audit table is append-only for hub: nothing in hub updates or deletes it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from hub.changes import _iso
from hub.store.schema import audit

MASKED_FIELDS = ("email", "phone", "emails", "phones")


def mask_email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at:
        return mask_text(value)
    return f"{local[:1]}***@{domain}"


def mask_phone(value: str) -> str:
    """All but the last two digits hidden; no leading ``+`` left for a spreadsheet to evaluate."""
    tail = "".join(ch for ch in value if ch.isdigit())[-2:] if sum(ch.isdigit() for ch in value) > 4 else ""
    return "*" * (len(value) - len(tail)) + tail


def mask_text(value: str) -> str:
    return value[:1] + "***" if value else value


def mask_value(field_: str, value: Any) -> Any:
    if value in (None, ""):
        return value
    if isinstance(value, list):
        return [mask_value(field_, item) for item in value]
    if not isinstance(value, str):
        return value
    return mask_email(value) if field_.startswith("email") else mask_phone(value)


def masked(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Contact rows with e-mails and phones masked."""
    for row in rows:
        yield {k: (mask_value(k, v) if k in MASKED_FIELDS else v) for k, v in row.items()}


def record_read(
    c: Connection, actor: str, action: str, target: str, rows: int, unmasked: bool, now: Any
) -> None:
    c.execute(
        insert(audit).values(
            at=now, actor=actor[:100], action=action, target=target, rows=rows, unmasked=int(unmasked),
            host=socket.gethostname()[:255],
        )
    )


def list_audit(c: Connection, limit: int = 100, actor: str | None = None) -> list[dict[str, Any]]:
    query = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if actor:
        query = query.where(audit.c.actor == actor)
    return [
        {
            "id": row.id, "at": _iso(row.at), "actor": row.actor, "action": row.action, "what": row.target,
            "rows": row.rows, "unmasked": bool(row.unmasked), "host": row.host,
        }
        for row in reversed(c.execute(query).all())
    ]
