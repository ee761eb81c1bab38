"""Reading contacts: the client card and exports."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import IO, Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import Connection

from hub.analytics import CLIENT_ID_KINDS
from hub.changes import _iso, change_log
from hub.errors import UsageError
from hub.events import messages_30d
from hub.formulas import neutralize_formula
from hub.model import CONTACT_FIELDS
from hub.segments import categories_of
from hub.store.schema import (
    consents,
    contacts,
    cursors,
    events,
    identifiers,
    outbox,
    quarantine,
    source_records,
)

LINK_COLUMNS = ("source", "external_id", "contact_id")
EXPORT_COLUMNS = ("id",) + CONTACT_FIELDS + ("phones", "emails")


def contact_values(row: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"id": row.id}
    values.update({f: getattr(row, f) for f in CONTACT_FIELDS})
    attributes = json.loads(row.attributes) if row.attributes else {}
    values.update(attributes)
    return values


#: The largest id a store can hold (SQLite INTEGER); a longer number is no contact id.
_MAX_ID = 2**63 - 1


def resolve_contact(c: Connection, ref: str) -> int:
    """A contact by id, e-mail, phone or SOURCE:EXTERNAL_ID; merged ids lead to the survivor.

    Digits are a contact id when a contact has that id, else a phone (89161234567)."""
    contact_id: int | None = None
    if ref.isascii() and ref.isdigit() and int(ref) <= _MAX_ID and _exists(c, int(ref)):
        contact_id = int(ref)
    elif ref.split(":", 1)[0] in CLIENT_ID_KINDS:  # an analytics client id: ym_client_id:1712345678901234567
        kind, value = ref.split(":", 1)
        contact_id = _by_identifier(c, kind, value.strip())
    elif "@" in ref:
        contact_id = _by_identifier(c, "email", ref.strip().lower())
    elif ":" in ref:
        source, external_id = ref.split(":", 1)
        contact_id = c.execute(
            select(source_records.c.contact_id).where(
                and_(source_records.c.connector == source, source_records.c.external_id == external_id)
            )
        ).scalar()
    else:
        from hub.normalize import normalize_phones

        phones, _ = normalize_phones(ref)
        if phones:
            contact_id = _by_identifier(c, "phone", phones[0])
    if contact_id is None:
        raise UsageError(f"no contact matches {ref!r}", hint="give a contact id, an e-mail, a phone, SOURCE:ID "
                         "or an analytics client id as ym_client_id:ID, ga_client_id:ID or ga_user_id:ID")
    for _ in range(100):
        row = c.execute(select(contacts.c.id, contacts.c.merged_into).where(contacts.c.id == contact_id)).first()
        if row is None:
            raise UsageError(f"no contact with id {contact_id}")
        if row.merged_into is None:
            return row.id
        contact_id = row.merged_into
    return contact_id


def _exists(c: Connection, contact_id: int) -> bool:
    return c.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is not None


def _by_identifier(c: Connection, kind: str, value: str) -> int | None:
    return c.execute(
        select(identifiers.c.contact_id).where(and_(identifiers.c.kind == kind, identifiers.c.value == value))
    ).scalar()


def contact_card(c: Connection, contact_id: int) -> dict[str, Any]:
    row = c.execute(select(contacts).where(contacts.c.id == contact_id)).one()
    links = c.execute(
        select(source_records)
        .where(source_records.c.contact_id == contact_id)
        .order_by(source_records.c.connector, source_records.c.external_id)
    ).all()
    return {
        "id": row.id,
        "deleted": row.deleted_at is not None,
        "fields": {k: v for k, v in contact_values(row).items() if k != "id" and v not in (None, "", [])},
        "identifiers": [
            {"kind": r.kind, "value": r.value}
            for r in c.execute(
                select(identifiers).where(identifiers.c.contact_id == contact_id).order_by(
                    identifiers.c.kind, identifiers.c.value
                )
            )
        ],
        "records": [
            {
                "source": r.connector,
                "external_id": r.external_id,
                "origin": r.origin,
                "removed": r.removed_at is not None,
                "values": json.loads(r.record_values) if r.record_values else {},
            }
            for r in links
        ],
        "consents": [
            {"channel": r.channel, "status": r.status, "source": r.source, "at": _iso(r.at), "proof": r.proof}
            for r in c.execute(select(consents).where(consents.c.contact_id == contact_id).order_by(consents.c.channel))
        ],
        "events": [
            {"type": r.type, "source": r.connector, "at": _iso(r.at), "payload": json.loads(r.payload) if r.payload else None,
             **({"amount": r.amount, "currency": r.currency} if r.amount is not None else {})}
            for r in c.execute(select(events).where(events.c.contact_id == contact_id).order_by(events.c.at, events.c.id))
        ],
        #: stage, temperature, rfm, rfm_segment, abc, region, activity, segments (docs/segments.md)
        "categories": categories_of(c, [contact_id]).get(contact_id, {}),
        "destinations": [
            {"destination": r.destination, "status": r.status, "attempts": r.attempts, "error": r.last_error,
             "at": _iso(r.updated_at)}
            for r in c.execute(select(outbox).where(outbox.c.contact_id == contact_id).order_by(outbox.c.destination))
        ],
        "messages_30d": messages_30d(c, [contact_id], dt.datetime.now(dt.timezone.utc)).get(contact_id, 0),
        "history": change_log(c, contact=contact_id, limit=1000),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def iter_contacts(c: Connection) -> Iterator[dict[str, Any]]:
    query = (
        select(contacts)
        .where(and_(contacts.c.deleted_at.is_(None), contacts.c.merged_into.is_(None)))
        .order_by(contacts.c.id)
    )
    for row in c.execution_options(yield_per=2000).execute(query):
        yield contact_values(row)


def iter_links(c: Connection) -> Iterator[dict[str, Any]]:
    query = (
        select(source_records.c.connector, source_records.c.external_id, source_records.c.contact_id)
        .where(source_records.c.removed_at.is_(None))
        .order_by(source_records.c.connector, source_records.c.external_id)
    )
    for row in c.execution_options(yield_per=5000).execute(query):
        yield {"source": row.connector, "external_id": row.external_id, "contact_id": row.contact_id}


def write_rows(rows: Iterator[dict[str, Any]], columns: tuple[str, ...], out: IO[str], fmt: str) -> int:
    """Write rows as CSV (header first) or as one JSON list; return how many."""
    count = 0
    if fmt == "json":
        out.write("[")
        for row in rows:
            out.write(("," if count else "") + "\n  " + json.dumps(row, ensure_ascii=False, default=str))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
        count += 1
    return count


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return neutralize_formula(";".join(str(v) for v in value))
    if isinstance(value, str):
        return neutralize_formula(value)
    return value


def list_quarantine(
    c: Connection, connector: str | None = None, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Quarantined records; ``status`` None means not resolved yet, ``all`` means every one."""
    query = select(quarantine).order_by(quarantine.c.id).limit(limit)
    if connector:
        query = query.where(quarantine.c.connector == connector)
    if status is None:
        query = query.where(quarantine.c.status != "resolved")
    elif status != "all":
        query = query.where(quarantine.c.status == status)
    return [
        {
            "id": r.id,
            "connector": r.connector,
            "external_id": r.external_id,
            "reason": r.reason,
            "status": r.status,
            "run_id": r.run_id,
            "at": _iso(r.at),
            "raw": json.loads(r.raw) if r.raw else None,
        }
        for r in c.execute(query)
    ]


def quarantined_connectors(c: Connection, resolved: bool = False) -> dict[str, int]:
    """Connectors with quarantine entries not resolved (or with any, ``resolved``), and how many each."""
    query = select(quarantine.c.connector, func.count().label("n")).group_by(quarantine.c.connector)
    if not resolved:
        query = query.where(quarantine.c.status != "resolved")
    return {row.connector: row.n for row in c.execute(query.order_by(quarantine.c.connector))}


def forget_cursors(c: Connection, names: list[str]) -> None:
    """These connectors lose their cursor, so their next read is complete and every
    quarantined record is tried again: those stored without some values too, whose
    unchanged rows the read would otherwise pass over (a hub that reads them better)."""
    if not names:
        return
    c.execute(update(cursors).where(cursors.c.connector.in_(names)).values(value=None))
    partial = select(quarantine.c.external_id).where(
        and_(quarantine.c.connector == source_records.c.connector, quarantine.c.status == "partial"))
    c.execute(update(source_records)
              .where(and_(source_records.c.connector.in_(names), source_records.c.external_id.in_(partial)))
              .values(payload_hash=None))


def drop_quarantine(c: Connection, connector: str) -> int:
    """Remove every quarantine entry of a connector; return how many there were."""
    return c.execute(delete(quarantine).where(quarantine.c.connector == connector)).rowcount
