"""``hub undo RUN``: revert every change of a run as new change-log entries.

An undo is a run of its own (kind ``undo``), taken under the store lock like a sync.
It puts each field the run changed back to its value before the run, as an override
(``hub.overrides``) the derivation of contacts respects, then derives the touched
contacts again: the change log gets one entry per field with reason ``undo`` and the
outbox queues the restored contacts for every destination (sent by the next sync).

* a field change: the old value comes back;
* a contact the run created: deleted again (and deleted from destinations);
* a contact the run deleted because its records were gone: its records come back;
* a record the run moved because it now describes another person (a ``record`` entry
  of reason ``sync``): it goes back to the contact it had, whose values before the run
  are kept over what the record gives now, and the contact the run created for it
  goes with the move (a contact it joined gets its values back);
* merges and splits are undone with ``hub split`` and ``hub merge``; they are listed,
  not reverted, and so are the values of the contacts whose records they moved (those
  values are what the records give now). An undo of a run that only merged or split
  (``hub merge``, ``hub split``, ``hub review accept``) is refused with the command that
  reverses it;
* a review rejection (``hub review reject``) goes back to pending: ``hub review`` asks
  the pair again;
* consent changes stay (an opt-out is the person's word); they are listed;
* an erasure (``hub forget``) cannot be undone;
* a field whose old value the change log holds masked (a secret in it, masked as
  ``***`` like everywhere, ``hub.redact``) keeps its current value: the masked text is
  not the value, and writing it would send it to every destination. It is listed.

When a later run changed one of the same fields (or the same contact, for a creation
or a deletion), the undo refuses and lists those changes; ``--force`` reverts anyway.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection

from hub import analytics
from hub import events as history
from hub.curate import MANUAL, Curator, decide
from hub.errors import UsageError
from hub.merge import SourceValues
from hub.model import CONTACT_FIELDS, LIST_FIELDS
from hub.overrides import DELETED, dump
from hub.redact import MASK
from hub.store.schema import (
    changes,
    contacts,
    match_reviews,
    overrides,
    runs,
    source_records,
)
from hub.sync import _change, _contact_values, encode_value, utcnow

log = logging.getLogger("hub.undo")

#: Change-log fields that are not contact values.
STRUCTURAL = {"created", "deleted", "merged_into", "record", "erased"}
#: Entries that record no change of the store (a person's edit a write left alone), and
#: categories and segments, derived from the contacts and recomputed by the next sync,
#: and the web fields, derived from the contact's visits (``hub.analytics``).
NOT_CHANGES = {"conflict", "category", "analytics"}
#: Reasons of the entries a merge or a split wrote: ``hub split`` and ``hub merge`` reverse them.
IDENTITY = {"merge", "split"}
#: Kinds of run that only merge or split contacts: nothing in them is for an undo.
DECISION_RUNS = {"merge", "split"}


def decode(field_: str, encoded: str | None) -> Any:
    """A change-log value back to the contact's value."""
    if encoded is None:
        return None
    if field_ in LIST_FIELDS or (field_.startswith("x_") and encoded[:1] in "[{"):
        try:
            return json.loads(encoded)
        except ValueError:
            return encoded
    return encoded


class Undoer(Curator):
    """Reverts one run of the store of a config."""

    def undo(self, run_id: int, force: bool = False) -> dict[str, Any]:
        with self._decision("undo") as c:
            target = c.execute(select(runs).where(runs.c.id == run_id)).first()
            if target is None or target.id == self.report.run_id:
                raise UsageError(f"no run {run_id}", hint="hub runs lists them")
            if target.kind == "forget":
                raise UsageError(f"run {run_id} erased a person: an erasure cannot be undone")
            if target.status == "running":
                raise UsageError(f"run {run_id} is still running")
            earlier = _undone_by(c, run_id)
            if earlier is not None:
                raise UsageError(f"run {run_id} was undone already by run {earlier}",
                                 hint=f"to revert that undo: hub undo {earlier}")
            now = utcnow()
            reviews = self._reviews(c, target, now)
            entries = [
                row for row in c.execute(
                    select(changes).where(changes.c.run_id == run_id).order_by(changes.c.id)
                ) if row.reason not in NOT_CHANGES
            ]
            plan = _plan(entries)
            if target.kind in DECISION_RUNS and not any(_reverts(steps) for steps in plan.values()):
                notes = [note for steps in plan.values() for note in steps.get("notes", [])]
                commands = list(dict.fromkeys(cmd for steps in plan.values() for cmd in steps.get("reverse", [])))
                raise UsageError(
                    f"run {run_id} ({target.kind}) only moved records between contacts: an undo does not "
                    "reverse merges and splits" + "".join(f"\n    {note}" for note in notes),
                    hint=f"to reverse it: {'; '.join(commands)}" if commands else None,
                )
            if reviews["notes"] and not reviews["set"] and not any(_reverts(steps) for steps in plan.values()):
                raise UsageError(f"nothing of run {run_id} to undo:" + "".join(f"\n    {n}" for n in reviews["notes"]),
                                 hint="hub review lists the pending pairs")
            later = _later_changes(c, run_id, plan)
            if later and not force:
                listed = "\n".join(
                    f"    run {e['run_id']}: contact {e['contact_id']} {e['field']}: {e['old']!r} -> {e['new']!r}"
                    for e in later[:20]
                ) + (f"\n    ... and {len(later) - 20} more" if len(later) > 20 else "")
                raise UsageError(
                    f"later runs changed {len(later)} of the same fields:\n{listed}",
                    hint=f"hub undo {run_id} --force reverts them anyway (hub log --run N shows a run)",
                )
            touched, skipped = self._apply(c, run_id, plan, now)
            if touched:
                self._recompute(c, sorted(touched), MANUAL, now, reason="undo")
            c.execute(
                # a record moved back keeps its name, so an undo of this undo can move it again
                update(changes).where(and_(changes.c.run_id == self.report.run_id, changes.c.field != "record"))
                .values(connector=MANUAL, external_id=None)
            )
            counts = {"actor": self.actor, "undoes": run_id, "contacts": len(touched), "changes": self.report.changes}
            if reviews["set"]:
                counts["reviews"] = [[r["a"], r["b"], r["status"], r["was"]] for r in reviews["set"]]
            c.execute(update(runs).where(runs.c.id == self.report.run_id).values(counts=json.dumps(counts)))
        return {
            "run_id": self.report.run_id, "undid": run_id, "contacts": len(touched), "changes": self.report.changes,
            "forced_over": later, "not_undone": reviews["notes"] + skipped, "reviews": reviews["set"],
        }

    def _reviews(self, c: Connection, target: Any, now: Any) -> dict[str, list[Any]]:
        """Put back the review decisions of the run: a rejection (``hub review reject``) goes
        back to pending, and an undo of such an undo rejects the pair again. Returns the
        pairs set (``set``) and the ones a later decision changed (``notes``)."""
        done: dict[str, list[Any]] = {"set": [], "notes": []}
        if target.kind == "review":
            decided = c.execute(
                select(match_reviews).where(and_(match_reviews.c.run_id == target.id,
                                                 match_reviews.c.status == "rejected"))
            ).all()
            if not decided:
                raise UsageError(
                    f"the review decision of run {target.id} is no longer in the store: the pair was decided "
                    "again, merged or erased since; nothing to undo",
                    hint="hub review lists the pending pairs; hub merge A B joins two contacts",
                )
            wanted = [(row.contact_a, row.contact_b, "rejected", "pending") for row in decided]
        elif target.kind == "undo":
            counts = json.loads(target.counts) if target.counts else {}
            wanted = [tuple(pair) for pair in counts.get("reviews", [])]  # [a, b, what it set, what was]
        else:
            return done
        for a, b, status, was in wanted:
            row = c.execute(select(match_reviews).where(
                and_(match_reviews.c.contact_a == a, match_reviews.c.contact_b == b))).first()
            if row is None or row.status != status:
                done["notes"].append(f"review of contacts {a} and {b}: decided again, merged or erased since; "
                                     "it stays")
                continue
            if was == "pending":
                c.execute(
                    update(match_reviews).where(match_reviews.c.id == row.id)
                    .values(status="pending", decided_at=None, decided_by=None, run_id=self.report.run_id)
                )
            else:
                decide(c, a, b, was, self.actor, self.report.run_id, now)
            done["set"].append({"id": row.id, "a": a, "b": b, "status": was, "was": status})
        return done

    def _apply(
        self, c: Connection, run_id: int, plan: dict[int, dict[str, Any]], now: Any
    ) -> tuple[set[int], list[str]]:
        """Write the overrides and restore the records; returns the contacts to derive again."""
        moved, skipped = self._move_back(c, plan, now)
        touched = set(moved)
        for contact_id, steps in sorted(plan.items()):
            row = c.execute(select(contacts).where(contacts.c.id == contact_id)).first()
            if row is None:
                continue
            if not _reverts(steps):
                skipped.extend(steps.get("notes", []))
                continue
            erased = c.execute(
                select(changes.c.id).where(and_(changes.c.contact_id == contact_id, changes.c.field == "erased"))
            ).first()
            if erased is not None:
                skipped.append(f"contact {contact_id} was erased (hub forget): nothing to put back")
                continue
            if row.merged_into is not None:
                skipped.append(f"contact {contact_id} was merged into {row.merged_into} since; "
                               f"hub split {row.merged_into} first")
                continue
            skipped.extend(steps.get("notes", []))
            derived = self._derived(c, contact_id)
            if contact_id in moved and not derived:
                continue  # its records went back to their contacts: derived again, it goes
            current = _contact_values(row)
            held = {
                r.field: r for r in c.execute(select(overrides).where(overrides.c.contact_id == contact_id))
            }
            if steps.get("created"):
                # the run made this contact: it goes (its records stay linked to it)
                if row.deleted_at is None:
                    _put(c, contact_id, DELETED, True, dump(derived), self.report.run_id, now)
                    touched.add(contact_id)
                continue
            if "deleted" in steps:
                was_deleted = steps["deleted"] is not None
                if was_deleted and row.deleted_at is None:
                    _put(c, contact_id, DELETED, True, dump(derived), self.report.run_id, now)
                elif not was_deleted:
                    if DELETED in held:
                        c.execute(delete(overrides).where(
                            and_(overrides.c.contact_id == contact_id, overrides.c.field == DELETED)))
                    c.execute(
                        update(source_records)
                        .where(and_(source_records.c.contact_id == contact_id,
                                    source_records.c.changed_run == run_id,
                                    source_records.c.removed_at.is_not(None)))
                        .values(removed_at=None)
                    )
                touched.add(contact_id)
            masked = steps.get("masked", {})
            wanted = dict(steps.get("fields", {}))
            # records came or went: every value goes back to the one the contact had before
            # the run (the one stored, unless the run logged a change) over what they derive now
            compared = derived if contact_id in moved else current
            if contact_id in moved:
                before = {f: v for f, v in current.items() if f not in analytics.WEB_FIELDS}
                wanted.update((f, before.get(f)) for f in sorted(set(before) | set(derived)) if f not in wanted)
            for field_, old in wanted.items():
                if dump(old) == dump(compared.get(field_)):
                    continue
                if field_ in masked:
                    if encode_value(current.get(field_)) == masked[field_]:
                        continue  # the current value is the one the change log shows masked
                    skipped.append(f"contact {contact_id} {field_}: the change log holds the old value masked "
                                   f"({masked[field_]}); the current value stays")
                    log.warning("undo of run %d: contact %d %s keeps its current value: the change log holds "
                                "the old value masked", run_id, contact_id, field_)
                    continue
                _put(c, contact_id, field_, old, dump(derived.get(field_)), self.report.run_id, now)
                touched.add(contact_id)
        return touched, skipped

    def _move_back(
        self, c: Connection, plan: dict[int, dict[str, Any]], now: Any
    ) -> tuple[set[int], list[str]]:
        """Link each record the run moved to another person's contact back to the contact
        it had, logged as a ``record`` change. Returns the contacts whose records changed
        and the moves not made."""
        moved: set[int] = set()
        skipped: list[str] = []
        log_rows: list[dict[str, Any]] = []
        for contact_id, steps in sorted(plan.items()):
            for connector, external_id, taken_to in steps.get("records", []):
                name = f"{connector}:{external_id}"
                gone = [
                    f"contact {other} was erased (hub forget)" for other in (contact_id, taken_to)
                    if c.execute(select(changes.c.id).where(
                        and_(changes.c.contact_id == other, changes.c.field == "erased"))).first() is not None
                ]
                row = c.execute(select(contacts.c.merged_into).where(contacts.c.id == contact_id)).first()
                if row is not None and row.merged_into is not None:
                    gone.append(f"contact {contact_id} was merged into {row.merged_into} since")
                if gone:
                    skipped.append(f"record {name} stays on contact {taken_to}: {'; '.join(gone)}")
                    continue
                done = c.execute(
                    update(source_records)
                    .where(and_(source_records.c.connector == connector, source_records.c.external_id == external_id,
                                source_records.c.contact_id == taken_to, source_records.c.origin == "read"))
                    .values(contact_id=contact_id)
                ).rowcount
                if not done:
                    skipped.append(f"record {name} is no longer on contact {taken_to}: it stays where it is")
                    continue
                moved.update((contact_id, taken_to))
                history.move_with_record(c, connector, external_id, taken_to, contact_id, now)
                log_rows.append(_change(contact_id, "record", str(taken_to), str(contact_id), connector, external_id,
                                        "undo", now))
        self._log(c, log_rows)
        return moved, skipped

    def _derived(self, c: Connection, contact_id: int) -> dict[str, Any]:
        """What the contact's live records derive, overrides aside."""
        own = [
            SourceValues(r.connector, r.external_id, json.loads(r.record_values or "{}"), r.changed_at)
            for r in c.execute(
                select(source_records).where(
                    and_(source_records.c.contact_id == contact_id, source_records.c.removed_at.is_(None),
                         source_records.c.origin == "read")
                )
            )
        ]
        return {f: s.value for f, s in self.survivorship.merge(own).items()}


def _put(c: Connection, contact_id: int, field_: str, value: Any, masked: str, run_id: int, now: Any) -> None:
    c.execute(delete(overrides).where(and_(overrides.c.contact_id == contact_id, overrides.c.field == field_)))
    c.execute(insert(overrides).values(
        contact_id=contact_id, field=field_, value=None if value is None else dump(value), masked=masked,
        run_id=run_id, created_at=now,
    ))


def _plan(entries: list[Any]) -> dict[int, dict[str, Any]]:
    """What to revert per contact: fields to their first old value, creation, deletion.

    Merges and splits are not reverted: each is a note with the command that reverses it
    (``reverse``). Nor is anything else the run changed on a contact whose records a merge
    or a split of the run moved: its values are what its records give now, and an
    override would blank or keep values of records it no longer holds."""
    plan: dict[int, dict[str, Any]] = defaultdict(dict)
    moved: set[int] = set()
    for row in entries:
        moves = _moves(row)
        if moves is None:
            continue
        note, command, both = moves
        steps = plan[row.contact_id]
        if note not in steps.get("notes", []):
            steps.setdefault("notes", []).append(note)
            steps.setdefault("reverse", []).append(command)
        moved.update(both)
    kept: dict[int, list[str]] = defaultdict(list)
    for row in entries:
        if row.contact_id in moved:
            # a sync logs what a merge changed on the survivor with reason sync
            if row.reason not in IDENTITY and row.field not in ("merged_into", "record"):
                if row.field not in kept[row.contact_id]:
                    kept[row.contact_id].append(row.field)
            continue
        steps = plan[row.contact_id]
        if row.field == "created":
            steps["created"] = True
        elif row.field == "deleted":
            steps.setdefault("deleted", row.old_value)
        elif row.field == "record" and row.reason not in IDENTITY and row.old_value and row.new_value:
            # a sync placed a record that now describes another person anew: back to its contact
            plan[int(row.old_value)].setdefault("records", []).append(
                (row.connector, row.external_id, int(row.new_value)))
        elif row.field in CONTACT_FIELDS or row.field in LIST_FIELDS or row.field.startswith("x_"):
            fields = steps.setdefault("fields", {})
            if row.field not in fields:
                fields[row.field] = decode(row.field, row.old_value)
                if row.old_value is not None and MASK in row.old_value:
                    # a secret in the value was masked when it was logged: the text is not the value
                    steps.setdefault("masked", {})[row.field] = row.old_value
        elif row.field.startswith("consent_"):
            # a consent is the person's word in a tool: hub does not put an opt-out back to a yes
            steps.setdefault("notes", []).append(
                f"contact {row.contact_id} {row.field}: {row.old_value} -> {row.new_value} stays (consent)")
        elif row.field not in STRUCTURAL:
            steps.setdefault("notes", []).append(f"contact {row.contact_id} {row.field}: not a contact value")
    for contact_id, fields in kept.items():
        plan[contact_id].setdefault("notes", []).append(
            f"contact {contact_id} {', '.join(fields)}: changed in the run that merged its records; "
            "left as the records give them")
    return dict(plan)


def _moves(row: Any) -> tuple[str, str, tuple[int, int]] | None:
    """A merge or a split in a change-log entry: the note, the command that reverses it,
    and the two contacts whose records it moved; None for any other entry."""
    if row.field == "merged_into" and row.new_value:
        survivor, loser = int(row.new_value), row.contact_id
        return (f"run merged contact {loser} into {survivor}: hub split {survivor}",
                f"hub split {survivor}", (survivor, loser))
    if row.field == "merged_into" and row.old_value:
        whole, part = int(row.old_value), row.contact_id
    elif row.field == "record" and row.reason == "split" and row.old_value:
        whole, part = int(row.old_value), row.contact_id  # hub split --record: the record's new contact
    else:
        return None
    return (f"run split contact {part} off {whole}: hub merge {whole} {part}",
            f"hub merge {whole} {part}", (whole, part))


def _reverts(steps: dict[str, Any]) -> bool:
    """Whether the undo has anything to put back for a contact (beyond notes)."""
    return bool(steps.get("created") or "deleted" in steps or steps.get("fields") or steps.get("records"))


def _later_changes(c: Connection, run_id: int, plan: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Changes of later runs to the fields (or, for creations, deletions and records moved back,
    the contacts) the undo reverts."""
    found: list[dict[str, Any]] = []
    ids = sorted(plan)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for row in c.execute(
            select(changes)
            .where(and_(changes.c.contact_id.in_(chunk), changes.c.run_id > run_id))
            .order_by(changes.c.id)
        ):
            if row.reason in NOT_CHANGES:
                continue
            steps = plan[row.contact_id]
            if not _reverts(steps):
                continue
            whole = steps.get("created") or "deleted" in steps or steps.get("records")
            if whole or row.field in steps.get("fields", {}) or row.field in ("merged_into", "deleted", "erased"):
                found.append({
                    "run_id": row.run_id, "contact_id": row.contact_id, "field": row.field,
                    "old": row.old_value, "new": row.new_value, "reason": row.reason,
                })
    return found


def _undone_by(c: Connection, run_id: int) -> int | None:
    for row in c.execute(select(runs.c.id, runs.c.counts).where(and_(runs.c.kind == "undo", runs.c.status == "ok"))):
        counts = json.loads(row.counts) if row.counts else {}
        if counts.get("undoes") == run_id:
            return row.id
    return None


__all__ = ["Undoer"]
