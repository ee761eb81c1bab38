"""Web analytics: visitors' client ids linked to contacts, visits as events, attribution.

A site form carries the visitor's analytics client ids (Metrica's ``_ym_uid``, the GA
client id of the ``_ga`` cookie, a site's GA user id) in its ``form`` event. When the
form's record is placed on a contact, each id becomes an identifier of that contact
(kinds in ``CLIENT_ID_KINDS``): ``hub show <id>`` finds the contact by it, and the web
analytics connectors (Metrica Logs API, GA4) attach visits to it.

A client id is **not identity evidence**: one browser is used by several people (a
family computer, an office PC). The resolver never looks these kinds up, so two people
who sent forms from one browser stay two contacts, both holding the id. A visit of a
client id several contacts hold goes to one of them, the one with the smallest contact
id, so every run decides alike.

Visits never create contacts; those of a client id ``hub forget`` erased are dropped. A visit whose client id no contact holds yet waits in
``pending_visits`` (deduplicated by the tool's visit id) and becomes the contact's
``visit`` event when a form with that client id arrives; pending visits older than the
connector's ``pending_days`` (default ``PENDING_DAYS``) are dropped.

A contact's visits give fields of its card, each change in the change log like any
field: first and last touch (channel, source, medium, campaign), device, region and
city of the last visit, the visit count and the last visit's time.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.engine import Connection

from hub import events as history
from hub.model import EventReport
from hub.store import among, bulk_insert
from hub.store.schema import contacts, events, identifiers, pending_visits
from hub.suppression import Suppressed

VISIT = "visit"
YM_CLIENT_ID = "ym_client_id"
GA_CLIENT_ID = "ga_client_id"
GA_USER_ID = "ga_user_id"
#: Identifier kinds of analytics client ids; also the ``form`` event payload keys holding them.
CLIENT_ID_KINDS: tuple[str, ...] = (YM_CLIENT_ID, GA_CLIENT_ID, GA_USER_ID)
#: Pending visits (of client ids no contact holds) are kept this long by default.
PENDING_DAYS = 90

#: Fields of the client card derived from the contact's visits.
WEB_FIELDS: tuple[str, ...] = (
    "first_touch_channel", "first_touch_source", "first_touch_medium", "first_touch_campaign",
    "last_touch_channel", "last_touch_source", "last_touch_medium", "last_touch_campaign",
    "device", "visit_region", "visit_city", "visits", "last_visit_at",
)
#: Change-log reason of the web fields: derived from visits, so ``hub undo`` leaves them
#: (the visits stay, and would derive them again).
REASON = "analytics"
#: Payload keys of a ``visit`` event, as every analytics connector writes them.
TOUCH_KEYS: tuple[str, ...] = ("channel", "source", "medium", "campaign")

_PATTERNS = {
    YM_CLIENT_ID: re.compile(r"\d{6,25}"),
    GA_CLIENT_ID: re.compile(r"\d{1,20}\.\d{1,20}"),
    GA_USER_ID: re.compile(r"[^\x00-\x1f\x7f]{1,256}"),
}
_CHUNK = 500


def client_id(kind: str, value: Any) -> str | None:
    """``value`` as a client id of ``kind``, or ``None`` when it cannot be one."""
    if kind not in _PATTERNS or not isinstance(value, str):
        return None
    value = value.strip()
    return value if _PATTERNS[kind].fullmatch(value) else None


def client_ids_of(event: EventReport) -> set[tuple[str, str]]:
    """The analytics client ids an event (a ``form`` submission) carries."""
    found: set[tuple[str, str]] = set()
    for key, value in event.payload:
        if key in CLIENT_ID_KINDS:
            checked = client_id(key, value)
            if checked:
                found.add((key, checked))
    return found


def _owners(c: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The live contact holding each client id (the smallest id when several do)."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, value in set(keys):
        by_kind[kind].append(value)
    owners: dict[tuple[str, str], int] = {}
    for kind, values in by_kind.items():
        values.sort()
        for start in range(0, len(values), _CHUNK):
            rows = c.execute(
                select(identifiers.c.value, identifiers.c.contact_id)
                .join(contacts, contacts.c.id == identifiers.c.contact_id)
                .where(and_(identifiers.c.kind == kind, among(c, identifiers.c.value, values[start : start + _CHUNK]),
                            contacts.c.deleted_at.is_(None), contacts.c.merged_into.is_(None)))
            )
            for value, contact_id in rows:
                key = (kind, value)
                if key not in owners or contact_id < owners[key]:
                    owners[key] = contact_id
    return owners


def link_client_ids(c: Connection, reports: Sequence[tuple[int, EventReport]], run_id: int,
                    now: dt.datetime, pending_days: Mapping[str, int] | None = None) -> set[int]:
    """Give each contact the client ids its events carry; attach the visits that waited
    for them (``pending_days``: connector -> its ``pending_days``, see ``claim``). Returns
    the contacts whose visits changed."""
    wanted: dict[int, set[tuple[str, str]]] = defaultdict(set)
    for contact_id, event in reports:
        wanted[contact_id] |= client_ids_of(event)
    wanted = {cid: keys for cid, keys in wanted.items() if keys}
    if not wanted:
        return set()
    held: set[tuple[int, str, str]] = set()
    ids = sorted(wanted)
    for start in range(0, len(ids), _CHUNK):
        held.update(
            (row.contact_id, row.kind, row.value) for row in c.execute(
                select(identifiers).where(and_(among(c, identifiers.c.contact_id, ids[start : start + _CHUNK]),
                                               identifiers.c.kind.in_(CLIENT_ID_KINDS))))
        )
    rows = [{"kind": kind, "value": value, "contact_id": contact_id}
            for contact_id, keys in wanted.items() for kind, value in sorted(keys)
            if (contact_id, kind, value) not in held]
    bulk_insert(c, identifiers, rows)
    return claim(c, {key for keys in wanted.values() for key in keys}, run_id, now, pending_days)


def claim(c: Connection, keys: set[tuple[str, str]], run_id: int, now: dt.datetime,
          pending_days: Mapping[str, int] | None = None) -> set[int]:
    """Pending visits of these client ids become events of the contacts holding them;
    those that waited longer than their connector's ``pending_days`` (``PENDING_DAYS``
    for one not given) are dropped instead."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, value in keys:
        by_kind[kind].append(value)
    waiting = []
    for kind, values in by_kind.items():
        values.sort()
        for start in range(0, len(values), _CHUNK):
            waiting.extend(c.execute(select(pending_visits).where(and_(
                pending_visits.c.kind == kind, among(c, pending_visits.c.value, values[start : start + _CHUNK])))))
    if not waiting:
        return set()
    days = pending_days or {}
    expired, kept = [], []
    for row in waiting:
        old = _utc(row.at) < now - dt.timedelta(days=days.get(row.connector, PENDING_DAYS))
        (expired if old else kept).append(row)
    waiting = kept
    owners = _owners(c, {(row.kind, row.value) for row in waiting})
    taken = [row for row in waiting if (row.kind, row.value) in owners]
    history.record(c, [(owners[(row.kind, row.value)], row.connector, _pending_event(row), None) for row in taken],
                   run_id)
    by_connector: dict[str, list[str]] = defaultdict(list)
    for row in taken + expired:
        by_connector[row.connector].append(row.external_id)
    for connector, external_ids in by_connector.items():
        for start in range(0, len(external_ids), _CHUNK):
            c.execute(delete(pending_visits).where(and_(
                pending_visits.c.connector == connector,
                among(c, pending_visits.c.external_id, external_ids[start : start + _CHUNK]))))
    return {owners[(row.kind, row.value)] for row in taken}


def _pending_event(row: Any) -> EventReport:
    payload = tuple(sorted(json.loads(row.payload).items())) if row.payload else ()
    at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=dt.timezone.utc)
    return EventReport(VISIT, row.external_id, at, payload)


def attach_visits(c: Connection, connector: str, visits: Sequence[tuple[tuple[str, str], EventReport]], run_id: int,
                  now: dt.datetime, pending_days: int = PENDING_DAYS) -> set[int]:
    """Store visits ``((kind, client id), event)``: on the contact holding the client id,
    else as pending for ``pending_days`` (0: not kept). Each visit once, by the tool's id.
    Returns the contacts that got visits."""
    suppressed = Suppressed(c)
    if suppressed:  # the client ids of erased people (hub forget): their visits are not kept
        visits = [(key, event) for key, event in visits if not suppressed.holds(*key)]
    if not visits:
        return set()
    owners = _owners(c, {key for key, _ in visits})
    matched = [(owners[key], connector, event, None) for key, event in visits if key in owners]
    history.record(c, matched, run_id)
    for start in range(0, len(matched), _CHUNK):  # seen before its client id was known
        seen = [event.external_id for _, _, event, _ in matched[start : start + _CHUNK]]
        c.execute(delete(pending_visits).where(and_(pending_visits.c.connector == connector,
                                                    among(c, pending_visits.c.external_id, seen))))
    unmatched: dict[str, tuple[tuple[str, str], EventReport]] = {}
    for key, event in visits:
        if key not in owners:
            unmatched.setdefault(event.external_id, (key, event))
    if unmatched:
        c.execute(delete(pending_visits).where(and_(pending_visits.c.connector == connector,
                                                    pending_visits.c.at < now - dt.timedelta(days=pending_days))))
        unmatched = {key: item for key, item in unmatched.items()
                     if item[1].at >= now - dt.timedelta(days=pending_days)}
    if unmatched:
        known: set[str] = set()
        ids = sorted(unmatched)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            known.update(c.execute(select(pending_visits.c.external_id).where(and_(
                pending_visits.c.connector == connector, among(c, pending_visits.c.external_id, chunk)))).scalars())
            known.update(c.execute(select(events.c.external_id).where(and_(
                events.c.connector == connector, events.c.type == VISIT,
                among(c, events.c.external_id, chunk)))).scalars())
        bulk_insert(c, pending_visits, [
            {"connector": connector, "external_id": external_id, "kind": key[0], "value": key[1], "at": event.at,
             "payload": json.dumps(dict(event.payload), ensure_ascii=False, sort_keys=True), "run_id": run_id}
            for external_id, (key, event) in unmatched.items() if external_id not in known
        ])
    return {contact_id for contact_id, _, _, _ in matched}


def move_client_ids(c: Connection, survivor: int, losers: Sequence[int]) -> list[tuple[int, str, str, bool]]:
    """A merge: the losers' client ids go to the survivor (their visits go with the events).

    Returns each loser's client ids as (loser, kind, value, added): added when the
    survivor did not hold the id already."""
    rows = c.execute(select(identifiers.c.contact_id, identifiers.c.kind, identifiers.c.value).where(and_(
        identifiers.c.contact_id.in_(list(losers)), identifiers.c.kind.in_(CLIENT_ID_KINDS)))).all()
    if not rows:
        return []
    held = {(row.kind, row.value) for row in c.execute(select(identifiers.c.kind, identifiers.c.value).where(and_(
        identifiers.c.contact_id == survivor, identifiers.c.kind.in_(CLIENT_ID_KINDS))))}
    new = sorted({(r.kind, r.value) for r in rows} - held)
    bulk_insert(c, identifiers, [{"kind": kind, "value": value, "contact_id": survivor} for kind, value in new])
    added = set(new)
    moved: list[tuple[int, str, str, bool]] = []
    for r in sorted(rows, key=lambda r: (r.contact_id, r.kind, r.value)):
        moved.append((r.contact_id, r.kind, r.value, (r.kind, r.value) in added))
        added.discard((r.kind, r.value))  # two losers with one id: the survivor gives it up once
    return moved


def attribution(c: Connection, contact_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The web fields of each contact with visits, from its ``visit`` events."""
    found: dict[int, list[Any]] = defaultdict(list)
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), _CHUNK):
        for row in c.execute(
            select(events.c.contact_id, events.c.at, events.c.external_id, events.c.payload)
            .where(and_(among(c, events.c.contact_id, ids[start : start + _CHUNK]), events.c.type == VISIT))
        ):
            found[row.contact_id].append(row)
    result: dict[int, dict[str, Any]] = {}
    for contact_id, rows in found.items():
        visits = sorted(((_utc(r.at), r.external_id, json.loads(r.payload) if r.payload else {}) for r in rows),
                        key=lambda v: (v[0], v[1]))
        fields: dict[str, Any] = {}
        first, last = visits[0][2], visits[-1][2]
        for key in TOUCH_KEYS:
            if first.get(key):
                fields[f"first_touch_{key}"] = first[key]
            if last.get(key):
                fields[f"last_touch_{key}"] = last[key]
        for field, key in (("device", "device"), ("visit_region", "region"), ("visit_city", "city")):
            value = next((v[2][key] for v in reversed(visits) if v[2].get(key)), None)
            if value:
                fields[field] = value
        fields["visits"] = sum(_sessions(v[2]) for v in visits)
        fields["last_visit_at"] = visits[-1][0].isoformat()
        result[contact_id] = fields
    return result


def _sessions(payload: dict[str, Any]) -> int:
    try:
        return max(1, int(payload.get("sessions") or 1))
    except (TypeError, ValueError):
        return 1


def _utc(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.timezone.utc)


__all__ = [
    "CLIENT_ID_KINDS", "GA_CLIENT_ID", "GA_USER_ID", "REASON", "VISIT", "WEB_FIELDS", "YM_CLIENT_ID", "attach_visits",
    "attribution", "claim", "client_id", "client_ids_of", "link_client_ids", "move_client_ids",
]
