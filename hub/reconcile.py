"""``hub reconcile CONNECTOR``: read the whole tool and compare it with the store.

Reports what the tool has that the store does not (``missing_in_store``), what the
store links to or would write there that the tool lacks (``missing_in_tool``; contacts
the consent rules keep off an e-mail or SMS service are counted in ``consent_held``), and
fields whose value in the tool differs from the contact's (``conflicts``), and consent
statuses the tool reports that the store does not hold (``consent_mismatches``). Values are
normalized the way a sync normalizes them, so a reformatted phone is no difference.

``--apply`` fixes them through the normal paths, by the connector's role: a tool hub
reads from is read again completely (its edits and missing rows flow in by
survivorship, a row gone from it is removed behind the mass-delete guard); a tool hub
writes to gets the store's version of every contact that is missing or differs, queued
in the outbox and sent by the same run. Everything lands in the change log like any sync.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection

from hub import consent
from hub.audit import MASKED_FIELDS, mask_value
from hub.config import LoadedConfig
from hub.contacts import contact_values
from hub.errors import UsageError
from hub.model import CONTACT_FIELDS, RawRecord
from hub.prepare import prepare
from hub.store import Store
from hub.store.schema import contacts, cursors, outbox, source_records
from hub.suppression import Suppressed
from hub.sync import Sync, _chunks

COLUMNS = ("kind", "external_id", "contact_id", "field", "tool", "store")


def read_tool(config: LoadedConfig, store: Store, name: str) -> tuple[list[RawRecord], dict[str, dict[str, Any]], int]:
    """Every record of tool ``name``, normalized as a sync would: (records, values by id, unreadable)."""
    if name not in config.model.connectors:
        raise UsageError(f"no connector named {name!r} in {config.path.name}",
                         hint=f"connectors: {', '.join(config.model.connectors) or 'none'}")
    entry = config.model.connectors[name]
    if not entry.reads:
        raise UsageError(f"{name} is a destination only: hub cannot read it to compare",
                         hint=f"set role: both on {name} if the tool can be read")
    sync = Sync(config, store)
    connector = sync.connector(name)
    records: list[RawRecord] = []
    unreadable = 0
    try:
        for item in connector.read(None):
            if isinstance(item, RawRecord):
                if item.error or item.deleted or not item.external_id:
                    unreadable += 1
                else:
                    records.append(item)
    finally:
        connector.close()
    prepared = prepare(config.mappings[name], sync.normalizer, [r.values for r in records])
    tool = {r.external_id: values for r, (values, _problems, _encoded) in zip(records, prepared, strict=True)}
    return records, tool, unreadable


def _links(c: Connection, name: str) -> dict[str, int]:
    """External id -> contact id of the connector's live records."""
    return {
        row.external_id: row.contact_id
        for row in c.execute(
            select(source_records.c.external_id, source_records.c.contact_id).where(
                and_(source_records.c.connector == name, source_records.c.removed_at.is_(None))
            )
        )
    }


def reconcile(config: LoadedConfig, store: Store, name: str, unmask: bool = False) -> dict[str, Any]:
    """Compare the whole of tool ``name`` with the store; nothing is written. E-mails
    and phones in the report are masked unless ``unmask``."""
    records, tool, unreadable = read_tool(config, store, name)
    entry = config.model.connectors[name]
    reported = {r.external_id: r.consents for r in records if r.consents}
    compared = _compared_fields(config, name)
    writes = entry.writes
    report: dict[str, Any] = {"connector": name, "role": entry.role, "read": len(records), "unreadable": unreadable,
                              "missing_in_tool": [], "missing_in_store": [], "conflicts": [],
                              "consent_mismatches": [], "suppressed": 0, "consent_held": 0}
    with store.connect() as c:
        suppressed = Suppressed(c)
        links = _links(c, name)
        live = _live_contacts(c, sorted(set(links.values())))
        stored_consent = consent.current(c, [links[e] for e in reported if e in links])
        for external_id, values in sorted(tool.items()):
            if suppressed and suppressed.match(values, (name, external_id)):
                report["suppressed"] += 1
                continue
            contact_id = links.get(external_id)
            if contact_id is None or contact_id not in live:
                report["missing_in_store"].append(
                    {"kind": "missing_in_store", "external_id": external_id, "contact_id": None, "field": None,
                     "tool": _summary(values, unmask), "store": None})
                continue
            store_values = live[contact_id]
            for report_ in reported.get(external_id, ()):
                row = stored_consent.get((contact_id, report_.channel))
                if not consent.agrees(row.status if row is not None else None, report_):
                    report["consent_mismatches"].append(
                        {"kind": "consent", "external_id": external_id, "contact_id": contact_id,
                         "field": consent.field_name(report_.channel), "tool": report_.status,
                         "store": row.status if row is not None else None})
            for field_ in compared:
                theirs, ours = _text(values.get(field_)), _text(store_values.get(field_))
                if theirs == ours or (theirs is None and not writes):
                    continue
                if not unmask and field_ in MASKED_FIELDS:
                    theirs, ours = mask_value(field_, theirs), mask_value(field_, ours)
                report["conflicts"].append(
                    {"kind": "conflict", "external_id": external_id, "contact_id": contact_id, "field": field_,
                     "tool": theirs, "store": ours})
        for external_id, contact_id in sorted(links.items()):
            if external_id not in tool and contact_id in live:
                report["missing_in_tool"].append(
                    {"kind": "missing_in_tool", "external_id": external_id, "contact_id": contact_id, "field": None,
                     "tool": None, "store": _summary(live[contact_id], unmask)})
        if writes:
            linked = set(links.values())
            unlinked = [row for row in c.execute(
                select(contacts).where(and_(contacts.c.deleted_at.is_(None), contacts.c.merged_into.is_(None)))
                .order_by(contacts.c.id)
            ) if row.id not in linked]
            held = _consent_held(config, c, name, [row.id for row in unlinked])
            for row in unlinked:
                if row.id in held:
                    report["consent_held"] += 1  # the sync would never write it there
                    continue
                report["missing_in_tool"].append(
                    {"kind": "missing_in_tool", "external_id": None, "contact_id": row.id, "field": None,
                     "tool": None, "store": _summary(contact_values(row), unmask)})
    report["counts"] = {k: len(report[k]) for k in ("missing_in_tool", "missing_in_store", "conflicts",
                                                    "consent_mismatches")}
    return report


def apply(config: LoadedConfig, store: Store, report: dict[str, Any], allow_mass_delete: bool = False) -> Any:
    """Fix what ``report`` found through a sync of the connector; returns its run report."""
    name = report["connector"]
    entry = config.model.connectors[name]
    with store.begin() as c:
        if entry.reads:
            # a complete read: every row is compared with what the store holds
            c.execute(update(cursors).where(cursors.c.connector == name).values(value=None, fingerprint=None))
        if entry.writes:
            resend = sorted({
                item["contact_id"]
                for item in report["missing_in_tool"] + report["conflicts"] + report["consent_mismatches"]
                if item["contact_id"] is not None
            })
            queued: set[int] = set()
            for chunk in _chunks(resend):
                c.execute(
                    update(outbox)
                    .where(and_(outbox.c.destination == name, outbox.c.contact_id.in_(chunk),
                                outbox.c.op == "upsert"))
                    .values(status="pending", sent_hash=None)
                )
                queued.update(row.contact_id for row in c.execute(
                    select(outbox.c.contact_id).where(and_(outbox.c.destination == name,
                                                           outbox.c.contact_id.in_(chunk)))))
            # a contact never queued for the tool (added after the contact last changed) is
            # queued now, by the consent rule; one whose record left the tool is not: the
            # complete read removes that record
            gone = {item["contact_id"] for item in report["missing_in_tool"] if item["external_id"] is not None}
            Sync(config, store).queue(c, [cid for cid in resend if cid not in queued and cid not in gone], [name])
    report_ = Sync(config, store, allow_mass_delete=allow_mass_delete).run([name])
    if entry.reads and entry.writes and report_.counts_for(name).sent and not report_.errors:
        # rows hub just wrote to a tool it also reads are linked by reading them back
        report_ = Sync(config, store, allow_mass_delete=allow_mass_delete).run([name])
    return report_


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return report["missing_in_tool"] + report["missing_in_store"] + report["conflicts"] + report["consent_mismatches"]


def _consent_held(config: LoadedConfig, c: Connection, name: str, ids: list[int]) -> set[int]:
    """The contacts among ``ids`` the sync's outbox never writes to ``name`` for consent:
    for an e-mail or SMS service, those its consent rule keeps off it (``consent.send_rule``),
    and those whose queued version it holds back."""
    rule = consent.send_rule(c, config, name, ids)
    queued_held = {row.contact_id for row in c.execute(
        select(outbox.c.contact_id).where(and_(outbox.c.destination == name, outbox.c.status == "held")))}
    return {contact_id for contact_id in ids if contact_id in queued_held or not rule.allows(contact_id)}


def _compared_fields(config: LoadedConfig, name: str) -> list[str]:
    """The contact fields the connector's mapping carries both ways."""
    mapping = config.mappings[name]
    probe = {f: "x" for f in CONTACT_FIELDS}
    fields = {mapping.field_of(column) for column in mapping.reverse(probe)}
    return [f for f in CONTACT_FIELDS if f in fields]


def _live_contacts(c: Connection, ids: list[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        for row in c.execute(
            select(contacts).where(and_(contacts.c.id.in_(chunk), contacts.c.deleted_at.is_(None),
                                        contacts.c.merged_into.is_(None)))
        ):
            found[row.id] = contact_values(row)
    return found


def _text(value: Any) -> str | None:
    if value in (None, "", []):
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _summary(values: dict[str, Any], unmask: bool) -> str:
    shown = [
        str(values[f]) if unmask or f == "full_name" else mask_value(f, str(values[f]))
        for f in ("full_name", "email", "phone") if values.get(f)
    ]
    return ", ".join(shown)


PAIR_COLUMNS = ("kind", "contact_id", "field", "a_external_id", "a", "b_external_id", "b")


def reconcile_pair(config: LoadedConfig, store: Store, a: str, b: str, unmask: bool = False) -> dict[str, Any]:
    """Two tools compared through the store: the contacts one tool has and the other
    lacks, and fields both carry with different values. Records the store does not
    know are in each tool's own report (``hub reconcile A``). A contact the consent rule
    keeps off a tool hub writes to is not one it lacks: ``consent_held`` counts them by tool."""
    if a == b:
        raise UsageError("name two different connectors")
    sides: dict[str, dict[int, tuple[str, dict[str, Any]]]] = {}
    for name in (a, b):
        _records, tool, _unreadable = read_tool(config, store, name)
        with store.connect() as c:
            suppressed = Suppressed(c)
            links = _links(c, name)
            live = _live_contacts(c, sorted(set(links.values())))
        by_contact: dict[int, tuple[str, dict[str, Any]]] = {}
        for external_id, values in sorted(tool.items()):
            contact_id = links.get(external_id)
            if contact_id in live and not (suppressed and suppressed.match(values, (name, external_id))):
                by_contact.setdefault(contact_id, (external_id, values))
        sides[name] = by_contact
    fields = [f for f in _compared_fields(config, a) if f in _compared_fields(config, b)]
    report: dict[str, Any] = {"connectors": [a, b], f"only_in_{a}": [], f"only_in_{b}": [], "conflicts": [],
                              "consent_held": {a: 0, b: 0}}
    # a contact the consent rule keeps off a tool hub writes to is not one that tool lacks
    held: dict[str, set[int]] = {a: set(), b: set()}
    with store.connect() as c:
        for name, other in ((a, b), (b, a)):
            if config.model.connectors[other].writes:
                held[other] = _consent_held(config, c, other, sorted(set(sides[name]) - set(sides[other])))

    def shown(field_: str, value: Any) -> Any:
        return value if unmask or field_ not in MASKED_FIELDS else mask_value(field_, value)

    for name, other in ((a, b), (b, a)):
        for contact_id, (external_id, values) in sorted(sides[name].items()):
            if contact_id in held[other]:
                report["consent_held"][other] += 1
            elif contact_id not in sides[other]:
                row = {"kind": f"only_in_{name}", "contact_id": contact_id, "field": None,
                       "a_external_id": None, "a": None, "b_external_id": None, "b": None}
                side = "a" if name == a else "b"
                row[f"{side}_external_id"], row[side] = external_id, _summary(values, unmask)
                report[f"only_in_{name}"].append(row)
    for contact_id in sorted(set(sides[a]) & set(sides[b])):
        (id_a, values_a), (id_b, values_b) = sides[a][contact_id], sides[b][contact_id]
        for field_ in fields:
            left, right = _text(values_a.get(field_)), _text(values_b.get(field_))
            if left != right and left is not None and right is not None:
                report["conflicts"].append(
                    {"kind": "conflict", "contact_id": contact_id, "field": field_, "a_external_id": id_a,
                     "a": shown(field_, left), "b_external_id": id_b, "b": shown(field_, right)})
    report["counts"] = {k: len(report[k]) for k in (f"only_in_{a}", f"only_in_{b}", "conflicts")}
    return report


def pair_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    a, b = report["connectors"]
    return report[f"only_in_{a}"] + report[f"only_in_{b}"] + report["conflicts"]
