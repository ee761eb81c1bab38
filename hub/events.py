"""The client's history: events the tools report (messages sent, delivered, opened).

Events are stored once per (connector, type, the tool's id) in ``events``; reading the
same history again adds nothing. ``messages_30d`` counts the messages a person was
sent in the last 30 days, so over-messaging can be seen on the client card and held
back from email and SMS destinations (``max_messages_30d``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from hub.model import MESSAGE_EVENTS, EventReport
from hub.redact import redact
from hub.store import bulk_insert
from hub.store.schema import events

WINDOW = dt.timedelta(days=30)
_CHUNK = 500


def record(c: Connection, reports: Sequence[tuple[int, str, EventReport, str | None]], run_id: int) -> int:
    """Store events ``(contact_id, connector, event, record)`` not stored before (``record``:
    the id of the source record that reported the event, or None); return how many were new."""
    keys: dict[tuple[str, str, str], tuple[int, EventReport, str | None]] = {}
    for contact_id, connector, event, record_id in reports:
        keys.setdefault((connector, event.type, event.external_id), (contact_id, event, record_id))
    known: set[tuple[str, str, str]] = set()
    items = list(keys)
    for start in range(0, len(items), _CHUNK):
        chunk = items[start : start + _CHUNK]
        for connector in {key[0] for key in chunk}:
            ids = [key[2] for key in chunk if key[0] == connector]
            known.update(
                (row.connector, row.type, row.external_id)
                for row in c.execute(select(events.c.connector, events.c.type, events.c.external_id).where(
                    and_(events.c.connector == connector, events.c.external_id.in_(ids))))
            )
    rows = [
        {"contact_id": contact_id, "type": event.type, "connector": key[0], "external_id": event.external_id,
         "at": event.at, "run_id": run_id, "amount": event.amount,
         "currency": event.currency.upper() if event.currency else None, "record": record_id,
         "payload": redact(json.dumps(dict(event.payload), ensure_ascii=False, sort_keys=True)) if event.payload
         else None}
        for key, (contact_id, event, record_id) in keys.items() if key not in known
    ]
    bulk_insert(c, events, rows)
    return len(rows)


def messages_30d(c: Connection, contact_ids: Iterable[int], now: dt.datetime) -> dict[int, int]:
    """Messages sent to each contact in the 30 days before ``now`` (contacts with none are absent)."""
    ids = sorted(set(contact_ids))
    counts: dict[int, int] = {}
    for start in range(0, len(ids), _CHUNK):
        for row in c.execute(
            select(events.c.contact_id, func.count().label("n")).where(and_(
                events.c.contact_id.in_(ids[start : start + _CHUNK]), events.c.type.in_(MESSAGE_EVENTS),
                events.c.at >= now - WINDOW,
            )).group_by(events.c.contact_id)
        ):
            counts[row.contact_id] = row.n
    return counts


def over_limit(c: Connection, contact_ids: Iterable[int], limit: int | None, now: dt.datetime) -> set[int]:
    """Contacts sent more than ``limit`` messages in the last 30 days."""
    if limit is None:
        return set()
    return {contact_id for contact_id, n in messages_30d(c, contact_ids, now).items() if n > limit}


__all__ = ["MESSAGE_EVENTS", "messages_30d", "over_limit", "record"]


