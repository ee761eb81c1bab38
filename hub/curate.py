"""Decisions people take about identity: review, explain, merge, split.

Each decision is a run of its own (kind ``merge``, ``split`` or ``review`` in
``hub runs``), taken under the store lock like a sync, and every effect is in the
change log: a merge logs ``merged_into`` on the merged-away contact and one
``record`` entry per record it moved; a split logs the reverse and restores the
fields of both contacts from their records. A split also records that the two are
different people, so no later sync merges them again; a merge can be split, a
split merged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, delete, desc, func, insert, select, update
from sqlalchemy.engine import Connection

from hub import analytics, consent
from hub import events as history
from hub.config import LoadedConfig
from hub.contacts import resolve_contact
from hub.errors import UsageError
from hub.identity import Comparison, Profile, profile
from hub.identity.compare import best, vetoed
from hub.identity.resolver import record_profiles, store_attribute_weights
from hub.store import Store, allocate_ids, bulk_insert
from hub.store.schema import (
    changes,
    contacts,
    events,
    identifiers,
    match_reviews,
    merge_moves,
    overrides,
    runs,
    source_records,
)
from hub.sync import Sync, _change, _chunks, _contact_row, utcnow

MANUAL = "manual"


def actor_name(given: str | None = None) -> str:
    if given:
        return given
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


class Curator(Sync):
    """Manual identity decisions on the store of one config."""

    def __init__(self, config: LoadedConfig, store: Store, actor: str | None = None):
        super().__init__(config, store)
        self.actor = actor_name(actor)

    @contextlib.contextmanager
    def _decision(self, kind: str) -> Iterator[Connection]:
        """One transaction under the store lock, recorded as a run of ``kind``."""
        with self.store.lock("sync"), self.store.begin() as c:
            now = utcnow()
            self.report.run_id = c.execute(
                insert(runs).values(
                    kind=kind, started_at=now, status="running", connectors=json.dumps([]),
                    counts=json.dumps({"actor": self.actor}), pid=os.getpid(), host=socket.gethostname(),
                )
            ).inserted_primary_key[0]
            yield c
            c.execute(
                update(runs).where(runs.c.id == self.report.run_id).values(status="ok", finished_at=utcnow())
            )
        self.report.counts.clear()

    # ------------------------------------------------------------------ merge
    def merge(self, first: str, second: str) -> dict[str, Any]:
        """Merge two contacts into the older one; returns the survivor and the merged-away id."""
        with self._decision("merge") as c:
            a, b = resolve_contact(c, first), resolve_contact(c, second)
            if a == b:
                raise UsageError(f"{first} and {second} are one contact already ({a})")
            for contact_id in (a, b):
                _require_live(c, contact_id)
            survivor, loser = min(a, b), max(a, b)
            now = utcnow()
            self._merge_contacts(c, [(survivor, [loser])], MANUAL, now)
            self._recompute(c, [survivor], MANUAL, now, reason="merge")
        return {"contact": survivor, "merged": loser, "run_id": self.report.run_id}

    # ------------------------------------------------------------------ split
    def split(self, ref: str, record: str | None = None) -> dict[str, Any]:
        """Undo the latest merge into a contact, or move one record out into a contact of its own."""
        with self._decision("split") as c:
            contact_id = resolve_contact(c, ref)
            # a merged-away contact named by its id: the merge to undo is its own
            merged = _merged_away(c, ref) if record is None else None
            if merged is not None and merged.merged_into != contact_id:
                raise UsageError(
                    f"contact {merged.id} was merged into {merged.merged_into}, which was merged into "
                    f"{contact_id} since", hint=f"hub split {contact_id} first")
            # a deleted contact's records derive it again once a split changes them, which
            # would bring back a contact hub undo or the tools deleted
            _require_live(c, contact_id, "split")
            now = utcnow()
            if record is not None:
                other = self._split_record(c, contact_id, record, now)
            else:
                other = self._undo_merge(c, contact_id, now, merged.id if merged is not None else None)
            self._recompute(c, [contact_id, other], MANUAL, now, reason="split")
            decide(c, contact_id, other, "rejected", self.actor, self.report.run_id, now)
        return {"contact": contact_id, "split_off": other, "run_id": self.report.run_id}

    def _split_record(self, c: Connection, contact_id: int, record: str, now: dt.datetime) -> int:
        source, sep, external_id = record.partition(":")
        if not sep:
            raise UsageError(f"--record {record!r}: expected SOURCE:ID", hint="e.g. --record sheet:17")
        row = c.execute(
            select(source_records.c.contact_id, source_records.c.origin, source_records.c.removed_at).where(
                and_(source_records.c.connector == source, source_records.c.external_id == external_id)
            )
        ).first()
        if row is None or row.contact_id != contact_id or row.origin != "read":
            raise UsageError(
                f"record {record} is not a source record of contact {contact_id}",
                hint=f"hub show {contact_id} lists its records",
            )
        if row.removed_at is not None:
            raise UsageError(f"record {record} is gone from {source}: nothing to split",
                             hint=f"hub show {contact_id} lists its records")
        left = c.execute(
            select(source_records.c.external_id).where(
                and_(
                    source_records.c.contact_id == contact_id,
                    source_records.c.origin == "read",
                    source_records.c.removed_at.is_(None),
                )
            )
        ).all()
        if len(left) < 2:
            raise UsageError(f"contact {contact_id} has only this record: nothing to split from")
        (new_id,) = allocate_ids(c, contacts, 1)
        blank = _contact_row(new_id, {}, self.report.run_id, now, deleted=False)
        blank.update(created_run=self.report.run_id, created_at=now, merged_into=None)
        bulk_insert(c, contacts, [blank])
        c.execute(
            update(source_records)
            .where(and_(source_records.c.connector == source, source_records.c.external_id == external_id))
            .values(contact_id=new_id)
        )
        self._log(c, [_change(new_id, "record", str(contact_id), str(new_id), source, external_id, "split", now)])
        # the events the record reported (a form sent, a purchase) are the new contact's history
        history.move_with_record(c, source, external_id, contact_id, new_id, now)
        self.report.counts_for(MANUAL).created += 1
        return new_id

    def _undo_merge(self, c: Connection, contact_id: int, now: dt.datetime, loser: int | None = None) -> int:
        """Undo the latest merge into a contact (of ``loser``, when given); returns the merged-away contact."""
        merged = c.execute(
            select(changes.c.contact_id, changes.c.run_id)
            .join(contacts, contacts.c.id == changes.c.contact_id)
            .where(
                and_(
                    changes.c.field == "merged_into",
                    changes.c.reason == "merge",
                    changes.c.new_value == str(contact_id),
                    contacts.c.merged_into == contact_id,
                    *([changes.c.contact_id == loser] if loser is not None else []),
                )
            )
            .order_by(desc(changes.c.id))
        ).first()
        if merged is None:
            raise UsageError(
                f"contact {contact_id} was not made by merging contacts",
                hint=f"to take one record out: hub split {contact_id} --record SOURCE:ID (hub show {contact_id} lists them)",
            )
        loser = merged.contact_id
        moved = c.execute(
            select(changes.c.connector, changes.c.external_id).where(
                and_(
                    changes.c.run_id == merged.run_id,
                    changes.c.contact_id == contact_id,
                    changes.c.field == "record",
                    changes.c.old_value == str(loser),
                )
            )
        ).all()
        # deleted_at stays until the contact is derived again: that logs it back and queues it
        c.execute(update(contacts).where(contacts.c.id == loser).values(merged_into=None))
        log_rows = [_change(loser, "merged_into", str(contact_id), None, MANUAL, None, "split", now)]
        for row in moved:
            done = c.execute(
                update(source_records)
                .where(
                    and_(
                        source_records.c.connector == row.connector,
                        source_records.c.external_id == row.external_id,
                        source_records.c.contact_id == contact_id,
                    )
                )
                .values(contact_id=loser)
            )
            if done.rowcount:
                log_rows.append(
                    _change(loser, "record", str(contact_id), str(loser), row.connector, row.external_id, "split", now)
                )
        log_rows += self._give_back(c, merged.run_id, contact_id, loser, now)
        self._log(c, log_rows)
        return loser

    def _give_back(
        self, c: Connection, run_id: int, survivor: int, loser: int, now: dt.datetime
    ) -> list[dict[str, Any]]:
        """What the merge moved besides records (``merge_moves``) goes back to the
        merged-away contact: its events still on the survivor, its client ids, its
        consents. Returns change-log rows; merges made before hub kept them move nothing."""
        where = and_(merge_moves.c.run_id == run_id, merge_moves.c.survivor == survivor, merge_moves.c.loser == loser)
        moves = c.execute(select(merge_moves.c.kind, merge_moves.c.item).where(where).order_by(merge_moves.c.id)).all()
        event_ids = [int(m.item) for m in moves if m.kind == "event"]
        for chunk in _chunks(event_ids):
            c.execute(
                update(events)
                .where(and_(events.c.id.in_(chunk), events.c.contact_id == survivor))
                .values(contact_id=loser)
            )
        client_ids = [json.loads(m.item) for m in moves if m.kind == "client_id"]
        held = {(r.kind, r.value) for r in c.execute(select(identifiers.c.kind, identifiers.c.value).where(and_(
            identifiers.c.contact_id == loser, identifiers.c.kind.in_(analytics.CLIENT_ID_KINDS))))}
        bulk_insert(c, identifiers, [{"kind": kind, "value": value, "contact_id": loser}
                                     for kind, value, _added in client_ids if (kind, value) not in held])
        for kind, value, added in client_ids:
            if added:  # the survivor had it only from the merge
                c.execute(delete(identifiers).where(and_(
                    identifiers.c.contact_id == survivor, identifiers.c.kind == kind, identifiers.c.value == value)))
        log_rows = consent.give_back(c, loser, [json.loads(m.item) for m in moves if m.kind == "consent"], MANUAL, now)
        _give_back_reviews(c, survivor, loser, [json.loads(m.item) for m in moves if m.kind == "review"])
        _give_back_overrides(c, survivor, [json.loads(m.item) for m in moves if m.kind == "override"])
        c.execute(delete(merge_moves).where(where))
        if event_ids:
            self._refresh_web(c, [survivor, loser], MANUAL, now)
        return log_rows

    # ----------------------------------------------------------------- review
    def decide_reviews(self, review_ids: list[int], accept: bool) -> list[dict[str, Any]]:
        """Accept or reject pairs of ``hub review``. Every pair is checked before any is
        decided, and each is read as it was listed: a merge of an earlier pair moves the
        pairs of its contacts to the survivor (``remap_reviews``), under other ids."""
        with self.store.connect() as c:
            rows = {row.id: row for row in c.execute(select(match_reviews).where(match_reviews.c.id.in_(review_ids)))}
            for review_id in review_ids:
                row = rows.get(review_id)
                if row is None:
                    raise UsageError(f"no review pair {review_id}", hint="hub review lists the pending pairs")
                if row.status != "pending":
                    raise UsageError(f"review pair {review_id} was decided already ({row.status})")
                if accept:
                    for contact_id in (row.contact_a, row.contact_b):
                        _require_live(c, contact_id)
        return [self._decide_review(rows[review_id], accept) for review_id in dict.fromkeys(review_ids)]

    def _decide_review(self, row: Any, accept: bool) -> dict[str, Any]:
        if accept:
            with self.store.connect() as c:
                a, b = resolve_contact(c, str(row.contact_a)), resolve_contact(c, str(row.contact_b))
            if a == b:  # an earlier pair of the same decision merged them
                return {"id": row.id, "decision": "accepted", "contact": a, "merged": None, "run_id": None}
            result = self.merge(str(a), str(b))
            return {"id": row.id, "decision": "accepted", **result}
        with self._decision("review") as c:
            decide(c, row.contact_a, row.contact_b, "rejected", self.actor, self.report.run_id, utcnow())
        return {"id": row.id, "decision": "rejected", "run_id": self.report.run_id}


def decide(c: Connection, a: int, b: int, status: str, actor: str, run_id: int, now: dt.datetime) -> None:
    """Remember that two contacts are (``accepted``) or are not (``rejected``) one person."""
    lo, hi = min(a, b), max(a, b)
    values = {"status": status, "decided_at": now, "decided_by": actor, "run_id": run_id}
    done = c.execute(
        update(match_reviews)
        .where(and_(match_reviews.c.contact_a == lo, match_reviews.c.contact_b == hi))
        .values(**values)
    )
    if not done.rowcount:
        c.execute(insert(match_reviews).values(contact_a=lo, contact_b=hi, created_at=now, **values))


def _give_back_reviews(c: Connection, survivor: int, loser: int, items: list[dict[str, Any]]) -> None:
    """A split: the review pairs and decisions the merge moved from ``loser`` to the
    survivor (``remap_reviews``) are the loser's again. A pair the survivor got only
    from the merge leaves it, unless decided since; the pair with the survivor itself
    is the split's own decision."""
    for item in items:
        other = item["contact_b"] if item["contact_a"] == loser else item["contact_a"]
        if other == survivor:
            continue
        gone = c.execute(select(contacts.c.merged_into).where(contacts.c.id == other)).scalar()
        if gone is not None:  # merged away since: its pairs went along
            continue
        if item["added"]:
            lo, hi = min(survivor, other), max(survivor, other)
            c.execute(delete(match_reviews).where(and_(
                match_reviews.c.contact_a == lo, match_reviews.c.contact_b == hi,
                match_reviews.c.status == item["status"])))
        lo, hi = min(loser, other), max(loser, other)
        if c.execute(select(match_reviews.c.id).where(
                and_(match_reviews.c.contact_a == lo, match_reviews.c.contact_b == hi))).first() is not None:
            continue
        row = {k: item[k] for k in ("probability", "evidence", "status", "run_id", "decided_by")}
        row.update({k: dt.datetime.fromisoformat(item[k]) if item[k] else None for k in ("created_at", "decided_at")})
        c.execute(insert(match_reviews).values(contact_a=lo, contact_b=hi, **row))


def _give_back_overrides(c: Connection, survivor: int, items: list[dict[str, Any]]) -> None:
    """A split: the values ``hub undo`` put back on the survivor, which the merged records
    made the derivation drop, are its own again; the derivation that follows keeps each
    while the survivor's records derive what it masks, as before the merge."""
    held = set(c.execute(select(overrides.c.field).where(overrides.c.contact_id == survivor)).scalars())
    bulk_insert(c, overrides, [
        {"contact_id": survivor, "field": item["field"], "value": item["value"], "masked": item["masked"],
         "run_id": item["run_id"],
         "created_at": dt.datetime.fromisoformat(item["created_at"]) if item["created_at"] else None}
        for item in items if item["field"] not in held
    ])


def _merged_away(c: Connection, ref: str) -> Any:
    """The contact a reference names by its id, when it was merged into another."""
    if not (ref.isascii() and ref.isdigit()):
        return None
    row = c.execute(select(contacts.c.id, contacts.c.merged_into).where(contacts.c.id == int(ref))).first()
    return row if row is not None and row.merged_into is not None else None


def _require_live(c: Connection, contact_id: int, what: str = "merge") -> None:
    row = c.execute(select(contacts.c.deleted_at).where(contacts.c.id == contact_id)).first()
    if row is None or row.deleted_at is not None:
        raise UsageError(f"contact {contact_id} is deleted: nothing to {what}")


# --------------------------------------------------------------------- reading


def pending_reviews(c: Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The pairs to decide, of live contacts: a pair of a contact deleted since (its records
    gone from the tools, its creation undone) waits until the contact comes back."""
    a, b = contacts.alias("a"), contacts.alias("b")
    rows = c.execute(
        select(match_reviews)
        .join(a, a.c.id == match_reviews.c.contact_a)
        .join(b, b.c.id == match_reviews.c.contact_b)
        .where(and_(match_reviews.c.status == "pending", a.c.deleted_at.is_(None), b.c.deleted_at.is_(None)))
        .order_by(desc(match_reviews.c.probability), match_reviews.c.id)
        .limit(limit)
    ).all()
    ids = {row.contact_a for row in rows} | {row.contact_b for row in rows}
    names = _summaries(c, ids)
    return [
        {
            "id": row.id,
            "a": row.contact_a,
            "b": row.contact_b,
            "a_summary": names.get(row.contact_a, ""),
            "b_summary": names.get(row.contact_b, ""),
            "probability": row.probability,
            "evidence": json.loads(row.evidence) if row.evidence else [],
        }
        for row in rows
    ]


def _summaries(c: Connection, ids: set[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    if not ids:
        return out
    for row in c.execute(
        select(contacts.c.id, contacts.c.full_name, contacts.c.email, contacts.c.phone).where(contacts.c.id.in_(ids))
    ):
        out[row.id] = ", ".join(v for v in (row.full_name, row.email, row.phone) if v)
    return out


def _profiles_of(c: Connection, ref: str) -> tuple[str, list[Profile], int]:
    """The records a reference stands for: SOURCE:ID is one record, anything else a
    contact's records; and the contact they are on."""
    source, sep, external_id = ref.partition(":")
    if sep and not ref.isdigit():
        row = c.execute(
            select(source_records.c.record_values, source_records.c.contact_id).where(
                and_(source_records.c.connector == source, source_records.c.external_id == external_id)
            )
        ).first()
        if row is not None:
            return ref, [profile(json.loads(row.record_values or "{}"))], resolve_contact(c, str(row.contact_id))
    contact_id = resolve_contact(c, ref)
    return f"contact {contact_id}", record_profiles(c, [contact_id]).get(contact_id, []), contact_id


def _decided_apart(c: Connection, a: int, b: int) -> str | None:
    """The decision (hub review reject, hub split) that the two contacts are two people."""
    row = c.execute(select(match_reviews.c.run_id, match_reviews.c.decided_by).where(and_(
        match_reviews.c.contact_a == min(a, b), match_reviews.c.contact_b == max(a, b),
        match_reviews.c.status == "rejected"))).first()
    if row is None:
        return None
    return f"decided by {row.decided_by} in run {row.run_id} (hub review reject or hub split)"


def explain(c: Connection, first: str, second: str, merge_at: float, review_at: float) -> dict[str, Any]:
    """The score breakdown between two contacts or records: the strongest pair of their records."""
    label_a, a, contact_a = _profiles_of(c, first)
    label_b, b, contact_b = _profiles_of(c, second)
    if not a or not b:
        raise UsageError("one side has no source records to compare")
    class StoreFrequencies:
        """Holders of a name or local part as the store has them now."""

        def holders(self, key: str) -> int | None:
            found = c.execute(
                select(func.count())
                .select_from(identifiers)
                .where(and_(identifiers.c.kind.in_(("name", "local")), identifiers.c.value == key))
            ).scalar()
            return int(found) if found else None

        def namesakes(self, last: str, first_key: str) -> float | None:
            return None

    weights = store_attribute_weights(c) if any(p.attributes for p in a) and any(p.attributes for p in b) else None
    comparison: Comparison = best(a, b, StoreFrequencies(), weights)
    veto = comparison.veto or vetoed(a, b) or _decided_apart(c, contact_a, contact_b)
    p = 0.0 if veto else comparison.probability
    verdict = "different people" if veto else comparison.verdict(merge_at, review_at)
    return {
        "a": label_a,
        "b": label_b,
        "evidence": [e.as_dict() for e in comparison.evidence],
        "weight": round(comparison.weight, 2),
        "probability": round(p, 4),
        "veto": veto,
        "verdict": verdict,
        "merge_at": merge_at,
        "review_at": review_at,
    }


__all__ = ["Curator", "decide", "explain", "pending_reviews"]
