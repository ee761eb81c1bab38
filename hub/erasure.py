"""``hub forget``: erase a person (152-FZ, GDPR) and keep them from coming back.

One run of kind ``forget`` under the store lock:

* the contact (and contacts merged into it) keeps its id but loses every value;
  its source records lose their values; identifiers, events, consents, overrides,
  categories, segment memberships, review pairs, quarantined rows of those records and
  the site-form submissions they came from (the inbox) are deleted;
* salted hashes of every e-mail and phone the person had go to the suppression list,
  so a sync skips any record that carries one (``hub.suppression``); one that someone
  hub keeps also holds (a family's home phone) goes there with the person's first name
  only, so the relative's records still come in; so do the ids of the person's records
  and their analytics client ids, whose visits are then dropped (``hub.analytics``);
* each destination hub wrote the person to gets a queued delete (sent by the next
  sync); tools hub only reads from cannot be told to delete, and are reported with
  the record ids to delete there by hand;
* the change log keeps its entries (what happened, when) with every value of the
  person replaced by ``[erased]``.

An erasure cannot be undone.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.engine import Connection

from hub.analytics import CLIENT_ID_KINDS
from hub.contacts import resolve_contact
from hub.curate import MANUAL, Curator
from hub.errors import UsageError
from hub.model import CONTACT_FIELDS
from hub.normalize import normalize_emails, normalize_phones
from hub.store import among
from hub.store.schema import (
    categories,
    changes,
    consents,
    contacts,
    events,
    identifiers,
    inbox,
    match_reviews,
    merge_moves,
    outbox,
    overrides,
    quarantine,
    runs,
    segment_members,
    source_records,
)
from hub.prepare import prepare
from hub.suppression import Suppressed, first_name_keys, identifiers_of, record_entry, shared_entries, suppress
from hub.sync import _change, _chunks, _contact_values, utcnow

ERASED = "[erased]"
#: In text of any shape (a form's fields, an SMS log): what may be an address or a number.
_ADDRESS_RE = re.compile(r"[^\s\"'<>,;:\[\]{}()]+@[^\s\"'<>,;:\[\]{}()]+")
_NUMBER_RE = re.compile(r"\+?\d[\d\s().-]{5,22}\d")


class Eraser(Curator):
    """Erases people from the store of one config."""

    def forget(self, email: str | None = None, phone: str | None = None, ref: str | None = None) -> dict[str, Any]:
        given: set[tuple[str, str]] = set()
        if email is not None:
            found, problems = normalize_emails(email)
            if not found:
                raise UsageError(f"--email {email!r} is not an e-mail address" + (f": {problems[0]}" if problems else ""))
            given.update(("email", e) for e in found)
        if phone is not None:
            found, problems = normalize_phones(phone, self.config.model.normalize.default_region)
            if not found:
                raise UsageError(f"--phone {phone!r} is not a phone number" + (f": {problems[0]}" if problems else ""))
            given.update(("phone", p) for p in found)
        if not given and not ref:
            raise UsageError("name the person: --email X, --phone Y or a CONTACT")
        with self._decision("forget") as c:
            now = utcnow()
            people = self._contacts_of(c, given, ref)
            ids = _with_merged(c, people)
            idents = set(given) | self._identifiers(c, ids)
            entries = self._entries(c, ids, idents)
            added = suppress(c, entries, self.report.run_id, now)
            queued, by_hand = self._request_deletion(c, ids, now)
            self._erase(c, ids, now)
            self._drop_quarantined(c)
            # their own numbers and addresses, not those someone hub keeps shares
            self._drop_inbox(c, {entry for entry in entries if entry in idents and entry[0] in ("email", "phone")})
            counts = {"actor": self.actor, "contacts": len(people), "suppressed": len(idents)}
            c.execute(update(runs).where(runs.c.id == self.report.run_id).values(counts=json.dumps(counts)))
        return {
            "run_id": self.report.run_id, "contacts": sorted(people), "identifiers_suppressed": len(idents),
            "newly_suppressed": added, "deletion_queued": queued, "delete_by_hand": by_hand,
        }

    def _contacts_of(self, c: Connection, given: set[tuple[str, str]], ref: str | None) -> set[int]:
        people: set[int] = set()
        if ref:
            people.add(resolve_contact(c, ref))
        for kind, value in sorted(given):
            for row in c.execute(
                select(identifiers.c.contact_id).where(and_(identifiers.c.kind == kind, identifiers.c.value == value))
            ):
                people.add(resolve_contact(c, str(row.contact_id)))
            # a deleted contact (its records gone from the tools) keeps its values, not its identifiers
            column = contacts.c.email if kind == "email" else contacts.c.phone
            for row in c.execute(select(contacts).where(and_(
                    contacts.c.deleted_at.is_not(None), contacts.c.merged_into.is_(None),
                    or_(column == value, contacts.c.attributes.contains(json.dumps(value), autoescape=True))))):
                if (kind, value) in identifiers_of(_contact_values(row)):
                    people.add(row.id)
        return people

    def _identifiers(self, c: Connection, ids: list[int]) -> set[tuple[str, str]]:
        """Every e-mail and phone of these contacts: their values, index entries and records."""
        found: set[tuple[str, str]] = set()
        if not ids:
            return found
        for row in c.execute(select(contacts).where(contacts.c.id.in_(ids))):
            found |= identifiers_of(_contact_values(row))
        for row in c.execute(
            select(identifiers.c.kind, identifiers.c.value).where(
                and_(identifiers.c.contact_id.in_(ids),
                     identifiers.c.kind.in_(("email", "phone", *CLIENT_ID_KINDS)))  # visits of the id: dropped
            )
        ):
            found.add((row.kind, row.value))
        for row in c.execute(select(source_records.c.record_values).where(source_records.c.contact_id.in_(ids))):
            if row.record_values:
                found |= identifiers_of(json.loads(row.record_values))
        return found

    def _entries(self, c: Connection, ids: list[int], idents: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """The suppression entries of the person: their identifiers; with their first name
        those someone hub keeps holds too; the ids of their records."""
        shared: set[tuple[str, str]] = set()
        for kind in ("email", "phone"):
            for chunk in _chunks(sorted(value for k, value in idents if k == kind)):
                shared.update((kind, row.value) for row in c.execute(
                    select(identifiers.c.value)
                    .join(contacts, contacts.c.id == identifiers.c.contact_id)
                    .where(and_(identifiers.c.kind == kind, among(c, identifiers.c.value, chunk),
                                identifiers.c.contact_id.not_in(ids or [0]), contacts.c.deleted_at.is_(None),
                                contacts.c.merged_into.is_(None)))
                ))
        keys: set[str] = set()
        entries = idents - shared
        # a record keyed by a shared mailbox or number (a mailing list by e-mail) is the
        # family's too: its id is not suppressed, the identifier with the name is
        shared_ids = {value.lower() for _kind, value in shared} | {re.sub(r"\D", "", value) for kind, value in shared
                                                                 if kind == "phone"}
        for row in c.execute(select(source_records.c.connector, source_records.c.external_id,
                                    source_records.c.record_values).where(source_records.c.contact_id.in_(ids or [0]))):
            if row.record_values:
                keys |= first_name_keys(json.loads(row.record_values), own_gender=True)
            entry = record_entry(row.connector, row.external_id)
            if entry is not None and row.external_id.strip().lower() not in shared_ids \
                    and re.sub(r"\D", "", row.external_id) not in shared_ids:
                entries.add(entry)
        for row in c.execute(select(contacts).where(contacts.c.id.in_(ids or [0]))):
            keys |= first_name_keys(_contact_values(row), own_gender=True)
        for kind, value in shared:
            entries |= shared_entries(kind, value, keys)
        return entries

    def _request_deletion(self, c: Connection, ids: list[int], now: Any) -> tuple[list[str], list[dict[str, Any]]]:
        """Queue a delete wherever hub wrote the person; list the tools that cannot delete."""
        if not ids:
            return [], []
        self._enqueue(c, {contact_id: None for contact_id in ids}, now)
        c.execute(update(outbox).where(outbox.c.contact_id.in_(ids)).values(payload=None))
        queued = sorted({
            row.destination for row in c.execute(
                select(outbox.c.destination).where(
                    and_(outbox.c.contact_id.in_(ids), outbox.c.op == "delete", outbox.c.status == "pending")
                )
            )
        })
        writers = {name for name, entry in self.config.connectors.items() if entry.writes}
        by_hand: dict[str, list[str]] = {}
        for row in c.execute(
            select(source_records.c.connector, source_records.c.external_id)
            .where(source_records.c.contact_id.in_(ids))
            .order_by(source_records.c.connector, source_records.c.external_id)
        ):
            if row.connector not in writers:
                by_hand.setdefault(row.connector, []).append(row.external_id)
        return queued, [{"connector": name, "external_ids": found} for name, found in by_hand.items()]

    def _drop_quarantined(self, c: Connection) -> None:
        """Quarantined rows of erased people that no contact's record stands for (a
        repeated id, a broken row, a row of someone not in the store yet): those the
        suppression list matches, as a sync would skip them now."""
        suppressed = Suppressed(c)
        gone: list[int] = []
        for row in c.execute(select(quarantine.c.id, quarantine.c.connector, quarantine.c.external_id,
                                    quarantine.c.raw)):
            mapping = self.config.mappings.get(row.connector)
            if mapping is None or not row.raw:  # a connector gone from hub.yaml: hub quarantine drop
                continue
            raw = json.loads(row.raw).get("values") or {}
            values = prepare(mapping, self.normalizer, [raw])[0][0]
            if suppressed.match(values, (row.connector, row.external_id)):
                gone.append(row.id)
        for chunk in _chunks(gone):
            c.execute(delete(quarantine).where(quarantine.c.id.in_(chunk)))

    def _drop_inbox(self, c: Connection, own: set[tuple[str, str]]) -> None:
        """What ``hub serve`` stored that carries one of ``own`` (the person's e-mails and
        phones no one else hub keeps holds), in any field and any connector's format: an
        SMS log's recipients, a form a sync has not read yet or never links to a record."""
        if not own:
            return
        region = self.config.model.normalize.default_region
        gone: list[int] = []
        last = 0
        while True:
            rows = c.execute(select(inbox.c.id, inbox.c.fields).where(inbox.c.id > last)
                             .order_by(inbox.c.id).limit(1000)).all()
            if not rows:
                break
            last = rows[-1].id
            for row in rows:
                text = row.fields or ""
                found = {("email", e) for m in _ADDRESS_RE.findall(text) for e in normalize_emails(m)[0]}
                found |= {("phone", p) for m in _NUMBER_RE.findall(text) for p in normalize_phones(m, region)[0]}
                if found & own:
                    gone.append(row.id)
        for chunk in _chunks(gone):
            c.execute(delete(inbox).where(inbox.c.id.in_(chunk)))

    def _erase(self, c: Connection, ids: list[int], now: Any) -> None:
        if not ids:
            return
        run_id = self.report.run_id
        _scrub_former_holders(c, ids)
        blank = {f: None for f in CONTACT_FIELDS}
        c.execute(update(contacts).where(contacts.c.id.in_(ids)).values(
            **blank, attributes=None, updated_run=run_id, updated_at=now))
        c.execute(update(contacts).where(and_(contacts.c.id.in_(ids), contacts.c.deleted_at.is_(None))).values(
            deleted_at=now))
        records = c.execute(
            select(source_records.c.connector, source_records.c.external_id).where(source_records.c.contact_id.in_(ids))
        ).all()
        for row in records:
            c.execute(delete(quarantine).where(
                and_(quarantine.c.connector == row.connector, quarantine.c.external_id == row.external_id)))
            # a site form's submission as hub serve stored it (hub leads would show it)
            c.execute(delete(inbox).where(
                and_(inbox.c.connector == row.connector, inbox.c.delivery_id == row.external_id)))
        # a destination's link stays (without values) until its queued delete is sent,
        # marked as hub's own so the push drops it then (its id may be an e-mail);
        # links to tools hub cannot delete from go now
        pending = [
            row.destination for row in c.execute(
                select(outbox.c.destination).where(and_(outbox.c.contact_id.in_(ids), outbox.c.op == "delete"))
            )
        ]
        c.execute(
            update(source_records).where(source_records.c.contact_id.in_(ids)).values(
                record_values=None, payload_hash=None, changed_at=None, removed_at=now, changed_run=run_id,
                origin="write")
        )
        c.execute(delete(source_records).where(
            and_(source_records.c.contact_id.in_(ids), source_records.c.connector.not_in(pending or [""]))))
        c.execute(delete(identifiers).where(identifiers.c.contact_id.in_(ids)))
        c.execute(delete(events).where(events.c.contact_id.in_(ids)))
        c.execute(delete(consents).where(consents.c.contact_id.in_(ids)))
        c.execute(delete(overrides).where(overrides.c.contact_id.in_(ids)))
        c.execute(delete(categories).where(categories.c.contact_id.in_(ids)))
        c.execute(delete(segment_members).where(segment_members.c.contact_id.in_(ids)))
        c.execute(delete(match_reviews).where(
            or_(match_reviews.c.contact_a.in_(ids), match_reviews.c.contact_b.in_(ids))))
        c.execute(delete(merge_moves).where(or_(merge_moves.c.survivor.in_(ids), merge_moves.c.loser.in_(ids))))
        # a review pair of theirs a merge of two other contacts keeps for hub split
        pairs = [row.id for row in c.execute(select(merge_moves.c.id, merge_moves.c.item).where(
            merge_moves.c.kind == "review"))
            if set(ids) & {json.loads(row.item)[k] for k in ("contact_a", "contact_b")}]
        for chunk in _chunks(pairs):
            c.execute(delete(merge_moves).where(merge_moves.c.id.in_(chunk)))
        for column in (changes.c.old_value, changes.c.new_value, changes.c.external_id):
            c.execute(
                update(changes)
                .where(and_(changes.c.contact_id.in_(ids), column.is_not(None)))
                .values({column.name: ERASED})
            )
        self._log(c, [_change(contact_id, "erased", None, None, MANUAL, None, "erasure", now) for contact_id in ids])


def _scrub_former_holders(c: Connection, ids: list[int]) -> None:
    """The person's values in the change log of contacts that held their records for a
    while (a merge split again, a record split off, a record placed anew) become
    ``[erased]``: those contacts' entries up to the run that took the last record away,
    except the values the contacts hold themselves, or their own records do (a family's
    phone)."""
    theirs: dict[tuple[str, str], dict[str, Any]] = {
        (row.connector, row.external_id): json.loads(row.record_values) if row.record_values else {}
        for row in c.execute(select(source_records.c.connector, source_records.c.external_id,
                                    source_records.c.record_values).where(source_records.c.contact_id.in_(ids)))
    }
    until: dict[int, int] = {}  # a former holder: the last run that moved one of the records
    for chunk in _chunks(sorted({external_id for _connector, external_id in theirs})):
        for row in c.execute(select(changes.c.run_id, changes.c.contact_id, changes.c.old_value, changes.c.new_value,
                                    changes.c.connector, changes.c.external_id)
                             .where(and_(changes.c.field == "record", changes.c.external_id.in_(chunk)))):
            if (row.connector, row.external_id) not in theirs:
                continue
            for held in (row.contact_id, row.old_value, row.new_value):
                if held is not None and str(held).isdigit() and int(held) not in ids:
                    until[int(held)] = max(until.get(int(held), 0), row.run_id)
    if not until:
        return
    values = {text for record in theirs.values() for text in _texts(record)}
    for contact_id, last_run in sorted(until.items()):
        own = {text for row in c.execute(select(source_records.c.record_values).where(and_(
            source_records.c.contact_id == contact_id, source_records.c.origin == "read",
            source_records.c.removed_at.is_(None)))) for text in _texts(json.loads(row.record_values or "{}"))}
        for row in c.execute(select(contacts).where(contacts.c.id == contact_id)):
            own |= _texts(_contact_values(row))
        erased = values - own
        for row in c.execute(select(changes).where(and_(changes.c.contact_id == contact_id,
                                                        changes.c.run_id <= last_run))).all():
            scrubbed = {}
            if row.field not in ("record", "merged_into", "deleted"):
                for column in ("old_value", "new_value"):
                    value = _scrub(getattr(row, column), erased, whole=row.field == "created")
                    if value != getattr(row, column):
                        scrubbed[column] = value
            if (row.connector, row.external_id) in theirs:
                scrubbed["external_id"] = ERASED
            if scrubbed:
                c.execute(update(changes).where(changes.c.id == row.id).values(**scrubbed))


def _texts(values: dict[str, Any]) -> set[str]:
    """A record's values as the change log writes them, list items one by one."""
    found: set[str] = set()
    for value in values.values():
        for item in value if isinstance(value, list) else [value]:
            if item not in (None, ""):
                found.add(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False, default=str))
    return found


def _scrub(encoded: str | None, erased: set[str], whole: bool = False) -> str | None:
    """A change-log value with the ``erased`` values in it replaced by ``[erased]``: the
    value itself, items of a list, values of a creation's object (``whole``)."""
    if encoded is None or not erased:
        return encoded
    if encoded in erased:
        return ERASED
    if not whole and encoded[:1] != "[":
        return encoded
    try:
        value = json.loads(encoded)
    except ValueError:
        return encoded

    def scrub(item: Any) -> Any:
        if isinstance(item, list):
            return [scrub(x) for x in item]
        text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False, default=str)
        return ERASED if text in erased else item

    if isinstance(value, dict):
        done: Any = {k: scrub(v) for k, v in value.items()}
    elif isinstance(value, list):
        done = scrub(value)
    else:
        return encoded
    return encoded if done == value else json.dumps(done, ensure_ascii=False, default=str)


def _with_merged(c: Connection, people: set[int]) -> list[int]:
    """The contacts and every contact merged into them, at any depth."""
    found = set(people)
    frontier = set(people)
    while frontier:
        rows = c.execute(select(contacts.c.id).where(contacts.c.merged_into.in_(sorted(frontier)))).all()
        frontier = {row.id for row in rows} - found
        found |= frontier
    return sorted(found)


__all__ = ["Eraser"]
