"""``hub clean``: the weekly clean-up of the base.

1. Spam form submissions older than ``clean.spam_after`` leave the inbox
   (``hub.leads.clean_spam``, a run of kind ``leads-clean``), when a webhook connector
   has ``leads:`` rules.
2. Contacts with no activity for ``clean.inactive_after`` are flagged (the attribute
   ``x_inactive_since``: the day of their last activity) or, with ``inactive: delete``,
   removed from the base and from the destinations, behind the mass-delete guard. A
   flagged contact that is active again loses the flag.
3. Phones and e-mails that could not be used (still in quarantine) are listed, with
   where to fix them.

Step 2 is a run of its own (kind ``clean``) under the store lock, every change in the
change log with reason ``clean``; ``hub undo RUN`` reverts it. The flag and the removal
are overrides (``hub.overrides``) over what the contact's records derive: they hold while
the records say the same, so a source that brings a new value for the person (new
activity) ends a removal, as it ends an undo.

Activity is the latest of: the contact's creation, a change of its values a tool brought
(a ``sync`` entry of the change log), and an event the person made (a form, a visit, a purchase, an e-mail opened or
clicked, an SMS received...). Messages sent to the person and their delivery reports are
not their activity (``PASSIVE_SUFFIXES``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from hub.curate import Curator
from hub.errors import GuardError
from hub.merge import SourceValues
from hub.overrides import DELETED, dump
from hub.quality import invalid_identifiers
from hub.segments.config import duration_text
from hub.store import live_records
from hub.store.schema import changes, contacts, events, overrides, runs, source_records
from hub.sync import utcnow

#: The attribute of a flagged contact: the day of its last activity.
INACTIVE_FIELD = "x_inactive_since"
#: The change log's reason and connector for what ``hub clean`` does.
CLEAN = "clean"
#: Event types ending so are things done to the person, not by them.
PASSIVE_SUFFIXES = ("_sent", "_delivered", "_bounce", "_failed", "_deferred", "_queued", "_blocked")
_CHUNK = 500


def is_activity(event_type: str) -> bool:
    return not event_type.endswith(PASSIVE_SUFFIXES)


def last_activity(c: Connection) -> dict[int, dt.datetime]:
    """The latest activity of every live contact (see the module's docstring)."""
    live = and_(contacts.c.deleted_at.is_(None), contacts.c.merged_into.is_(None))
    latest: dict[int, dt.datetime] = {}

    def seen(contact_id: int, at: dt.datetime | None) -> None:
        if at is None:
            return
        at = _aware(at)
        if contact_id not in latest or at > latest[contact_id]:
            latest[contact_id] = at

    for row in c.execute(select(contacts.c.id, contacts.c.created_at).where(live)):
        latest[row.id] = _aware(row.created_at) if row.created_at else dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    # a value a tool brought that changed the contact (a re-read of the same values changes nothing)
    for row in c.execute(
        select(changes.c.contact_id, func.max(changes.c.at)).where(changes.c.reason == "sync")
        .group_by(changes.c.contact_id)
    ):
        if row[0] in latest:
            seen(row[0], row[1])
    types = [t for (t,) in c.execute(select(events.c.type).distinct()) if is_activity(t)]
    if types:
        for row in c.execute(
            select(events.c.contact_id, func.max(events.c.at)).where(events.c.type.in_(types))
            .group_by(events.c.contact_id)
        ):
            if row[0] in latest:
                seen(row[0], row[1])
    return latest


class Cleaner(Curator):
    """The clean-up of the store of one config."""

    def clean(self, *, dry_run: bool = False, allow_mass_delete: bool = False,
              now: dt.datetime | None = None) -> dict[str, Any]:
        settings = self.config.model.clean
        now = now or utcnow()
        result: dict[str, Any] = {"dry_run": dry_run, "spam": None, "run_id": None, "inactive_after": None,
                                  "action": settings.inactive, "flagged": [], "unflagged": [], "deleted": [],
                                  "invalid_identifiers": [], "changes": 0}
        from hub.leads import clean_spam, rules_of

        if settings.spam_after is not None and any(rules is not None for rules in rules_of(self.config).values()):
            result["spam"] = clean_spam(self.config, self.store, settings.spam_after, dry_run=dry_run,
                                        actor=self.actor, now=now)
        with self.store.connect() as c:
            plan = self._plan(c, now) if settings.inactive_after is not None else {}
            result["invalid_identifiers"] = invalid_identifiers(c)
            live = c.execute(select(func.count()).select_from(contacts).where(
                and_(contacts.c.deleted_at.is_(None), contacts.c.merged_into.is_(None)))).scalar() or 0
        if settings.inactive_after is not None:
            result["inactive_after"] = duration_text(settings.inactive_after)
        for key in ("flagged", "unflagged", "deleted"):
            result[key] = sorted(plan.get(key, {}))
        doomed = len(result["deleted"])
        threshold = self.threshold
        result["guard"] = None
        if doomed and not allow_mass_delete and doomed > threshold * live:
            error = GuardError(
                f"hub clean would delete {doomed} of {live} contacts ({doomed / live:.0%}) for inactivity; "
                f"the mass-delete guard stops at {threshold:.0%}",
                hint="check clean.inactive_after in hub.yaml (hub clean --dry-run lists them); if the removal is "
                "intended, rerun with --allow-mass-delete",
            )
            if not dry_run:
                raise error
            result["guard"] = str(error)
        if dry_run:
            return result
        with self._decision(CLEAN) as c:
            touched = self._apply(c, plan, now)
            if touched:
                self._recompute(c, sorted(touched), CLEAN, now, reason=CLEAN)
            counts = {"actor": self.actor, "flagged": len(result["flagged"]), "unflagged": len(result["unflagged"]),
                      "deleted": len(result["deleted"]), "changes": self.report.changes}
            c.execute(update(runs).where(runs.c.id == self.report.run_id).values(counts=json.dumps(counts)))
        result["run_id"] = self.report.run_id
        result["changes"] = self.report.changes
        return result

    def _plan(self, c: Connection, now: dt.datetime) -> dict[str, dict[int, str | None]]:
        """Who gets flagged (with the day), unflagged, deleted."""
        settings = self.config.model.clean
        assert settings.inactive_after is not None
        cutoff = now - settings.inactive_after
        flags = {row.contact_id: (json.loads(row.value) if row.value else None)
                 for row in c.execute(select(overrides.c.contact_id, overrides.c.value)
                                      .where(overrides.c.field == INACTIVE_FIELD))}
        plan: dict[str, dict[int, str | None]] = {"flagged": {}, "unflagged": {}, "deleted": {}}
        for contact_id, at in last_activity(c).items():
            inactive = at < cutoff
            day = at.date().isoformat() if at.year > 1 else None
            if inactive and settings.inactive == "delete":
                plan["deleted"][contact_id] = day
            elif inactive and flags.get(contact_id, "") != day:
                plan["flagged"][contact_id] = day
            elif not inactive and contact_id in flags:
                plan["unflagged"][contact_id] = None
        return plan

    def _apply(self, c: Connection, plan: dict[str, dict[int, str | None]], now: dt.datetime) -> set[int]:
        """Write the overrides the recompute then applies and logs."""
        touched: set[int] = set()
        ids = sorted(set(plan["flagged"]) | set(plan["deleted"]) | set(plan["unflagged"]))
        derived = self._derived(c, ids)
        for contact_id, day in plan["flagged"].items():
            _put(c, contact_id, INACTIVE_FIELD, day, dump(derived.get(contact_id, {}).get(INACTIVE_FIELD)),
                 self.report.run_id, now)
            touched.add(contact_id)
        for contact_id in plan["deleted"]:
            _put(c, contact_id, DELETED, True, dump(derived.get(contact_id, {})), self.report.run_id, now)
            touched.add(contact_id)
        for contact_id in plan["unflagged"]:
            c.execute(delete(overrides).where(
                and_(overrides.c.contact_id == contact_id, overrides.c.field == INACTIVE_FIELD)))
            touched.add(contact_id)
        return touched

    def _derived(self, c: Connection, contact_ids: list[int]) -> dict[int, dict[str, Any]]:
        """What the contacts' live records derive, overrides aside (as ``_recompute`` derives it)."""
        own: dict[int, list[SourceValues]] = defaultdict(list)
        for r in live_records(c, contact_ids, source_records.c.connector, source_records.c.external_id,
                              source_records.c.record_values, source_records.c.changed_at, chunk=_CHUNK):
            own[r.contact_id].append(
                SourceValues(r.connector, r.external_id, json.loads(r.record_values or "{}"), r.changed_at))
        return {cid: {f: s.value for f, s in self.survivorship.merge(records).items()} for cid, records in own.items()}


def _put(c: Connection, contact_id: int, field_: str, value: Any, masked: str, run_id: int, now: Any) -> None:
    c.execute(delete(overrides).where(and_(overrides.c.contact_id == contact_id, overrides.c.field == field_)))
    c.execute(insert(overrides).values(
        contact_id=contact_id, field=field_, value=None if value is None else dump(value), masked=masked,
        run_id=run_id, created_at=now,
    ))


def _aware(at: dt.datetime) -> dt.datetime:
    """SQLite gives times back without a zone: they are UTC."""
    return at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)


__all__ = ["INACTIVE_FIELD", "Cleaner", "is_activity", "last_activity"]
