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
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection

from hub.model import MESSAGE_EVENTS, EventReport
from hub.redact import redact
from hub.store import bulk_insert
from hub.store.schema import categories, events

WINDOW = dt.timedelta(days=30)
_CHUNK = 500
_LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def record(c: Connection, reports: Sequence[tuple[int, str, EventReport, str | None]], run_id: int) -> int:
    """Store events ``(contact_id, connector, event, record)`` not stored before (``record``:
    the id of the source record that reported the event, or None); return how many were new.

    An event a record reports again with other values (an order row whose amount was
    corrected, or that now holds another buyer's order and so moved to another contact)
    is updated in place: a row of a table is its event. The categories of the contacts it
    leaves and joins are due again. History a tool reports (``record`` None) is never
    rewritten."""
    keys: dict[tuple[str, str, str], tuple[int, EventReport, str | None]] = {}
    for contact_id, connector, event, record_id in reports:
        keys.setdefault((connector, event.type, event.external_id), (contact_id, event, record_id))
    known: dict[tuple[str, str, str], Any] = {}
    items = list(keys)
    for start in range(0, len(items), _CHUNK):
        chunk = items[start : start + _CHUNK]
        for connector in {key[0] for key in chunk}:
            ids = [key[2] for key in chunk if key[0] == connector]
            for row in c.execute(select(events).where(and_(events.c.connector == connector,
                                                           events.c.external_id.in_(ids)))):
                known[(row.connector, row.type, row.external_id)] = row
    rows, changed, due = [], [], set()
    for key, (contact_id, event, record_id) in keys.items():
        values = _values(contact_id, event, record_id)
        stored = known.get(key)
        if stored is None:
            rows.append({"type": event.type, "connector": key[0], "external_id": event.external_id,
                         "run_id": run_id, **values})
        elif record_id is not None and stored.record == record_id and _differs(stored, values):
            changed.append({"event_id": stored.id, "run_id": run_id, **values})
            due.update((stored.contact_id, contact_id))
    bulk_insert(c, events, rows)
    for row in changed:
        event_id = row.pop("event_id")
        c.execute(update(events).where(events.c.id == event_id).values(**row))
    if due:  # due at the next categories pass, whatever the time it goes by
        _categories_due(c, due, _LONG_AGO)
    return len(rows)


def move_with_record(c: Connection, connector: str, record_id: str, source: int, target: int,
                     now: dt.datetime) -> None:
    """The events a record reported go with it from contact ``source`` to ``target``
    (``hub split --record``, an undo moving the record back); the categories of both,
    read from events (RFM, ABC, stage), are due again at the next pass."""
    if c.execute(
        update(events)
        .where(and_(events.c.connector == connector, events.c.record == record_id, events.c.contact_id == source))
        .values(contact_id=target)
    ).rowcount:
        _categories_due(c, (source, target), now)


def _categories_due(c: Connection, contact_ids: Iterable[int], at: dt.datetime) -> None:
    c.execute(update(categories).where(categories.c.contact_id.in_(sorted(set(contact_ids)))).values(next_at=at))


def _values(contact_id: int, event: EventReport, record_id: str | None) -> dict[str, Any]:
    return {
        "contact_id": contact_id, "at": event.at, "amount": event.amount,
        "currency": event.currency.upper() if event.currency else None, "record": record_id,
        "payload": redact(json.dumps(dict(event.payload), ensure_ascii=False, sort_keys=True)) if event.payload
        else None,
    }


def _differs(stored: Any, values: dict[str, Any]) -> bool:
    return (
        stored.contact_id != values["contact_id"] or stored.amount != values["amount"]
        or stored.currency != values["currency"] or stored.payload != values["payload"]
        or _instant(stored.at) != _instant(values["at"])
    )


def _instant(value: dt.datetime) -> dt.datetime:
    """A time as naive UTC: SQLite gives stored times back without their zone."""
    if value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


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


__all__ = ["MESSAGE_EVENTS", "messages_30d", "move_with_record", "over_limit", "record"]


