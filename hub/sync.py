"""One run: pull from sources, resolve identity, merge, log, push to destinations.

Each batch of records is one transaction holding the records, the contacts they
change, the change log entries, the outbox entries and the cursor that covers
them. A run killed at any point leaves the store as of its last batch; the next
run skips what was committed (by row hash) and converges to the same store.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import socket
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from hub import analytics, consent, segments
from hub import events as history
from hub.changes import CREATED
from hub.config import LoadedConfig
from hub.connector import Connector, ConnectorContext
from hub.errors import (
    FatalError,
    GuardError,
    HubError,
    RetriableError,
    SkippableRecord,
    StopRequested,
    UsageError,
)
from hub.identity import Candidate, ProbabilisticResolver, Profile, ReviewPair, keys_of, keys_version
from hub.identity import compare as identity_compare
from hub.identity import profile as identity_profile
from hub.identity.resolver import forget as forget_profiles
from hub.mapping import Mapping
from hub.merge import SourceValues, Survivorship
from hub.model import CONTACT_FIELDS, LIST_FIELDS, Checkpoint, OutboundItem, RawRecord, WriteResult
from hub.normalize import Normalizer, normalize_emails, normalize_phones
from hub.overrides import DELETED, apply_overrides, drop_overrides, load_overrides
from hub.prepare import PreparedBatch, Preparer, prepare, sync_collections
from hub.redact import redact, redact_secrets
from hub.store import (
    LockLostError,
    Store,
    allocate_ids,
    among,
    bulk_insert,
    bulk_update,
    live_records,
    set_setting,
    setting,
)
from hub.store.schema import (
    changes,
    contacts,
    cursors,
    events,
    identifiers,
    inbox,
    match_reviews,
    merge_moves,
    outbox,
    pending_names,
    quarantine,
    runs,
    source_records,
)
from hub.suppression import Suppressed

log = logging.getLogger("hub.sync")

BATCH_SIZE = 2000
RECORDS_STREAM = "records"
SAMPLE_SIZE = 20
_CHUNK = 500  # bound on IN (...) lists
#: ``store_settings``: the version of the identity keys the identifiers table holds.
KEYS_SETTING = "identity_keys"
#: ``store_settings``: the last change-log id whose category changes were queued for destinations.
CATEGORIES_QUEUED_KEY = "segments:queued"
#: ``store_settings``: the sources whose last pull ended with an error (a JSON list).
UNREAD_KEY = "sync:unread_sources"
#: ``store_settings`` key: the sources read to the end without an error at least once
#: (a source with a cursor counts too: one read before this key was kept, or a reader
#: that saves none while it has nothing to read, such as an empty inbox).
READ_KEY = "sync:read_sources"
#: ``store_settings`` key prefix: the columns a source without a mapping was read from
#: (``read_columns:NAME``, a JSON object field -> column).
READ_COLUMNS_KEY = "read_columns"
#: Payload key of ``OutboundItem.segment_names`` (taken out before the item is written).
SEGMENT_NAMES_KEY = "__segment_names__"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _keep_listed(payload: dict[str, Any], held: dict[str, Any], columns: dict[str, str]) -> None:
    """For a tool whose cells hub reads as lists (a sheet, a file): the ``phone`` and
    ``email`` columns get the contact's main value first, then the other values its row
    there held when read. A cell with two numbers keeps both (the main one first); a
    main number the cell did not have replaces its first; numbers the row never held
    are not added. Without it, the next read would take the second number away from
    the contact. ``columns``: list field (``phones``, ``emails``) -> the column its main
    value is written to."""
    for plural, column in columns.items():
        main = payload.get(column)
        values = [v for v in held.get(plural) or [] if v]
        rest = [v for v in (values if main in values else values[1:]) if v != main]
        if main and isinstance(main, str) and rest:
            payload[column] = ", ".join([main, *rest])


def _clear_emptied(payload: dict[str, Any], previous: Any, mapping: Mapping) -> None:
    """A column the tool was sent before, that the mapping still writes, and that the
    contact no longer has a value for is sent as ``""``: the tool clears it (a payload
    leaves out what a contact lacks, and what a payload leaves out the tool keeps). A
    column the mapping no longer writes is left to the tool."""
    if previous is None or not previous.payload:
        return
    for column, value in json.loads(previous.payload).items():
        if column in (consent.PAYLOAD_KEY, SEGMENT_NAMES_KEY) or value is None or mapping.field_of(column) is None:
            continue
        if payload.get(column) is None:
            payload[column] = ""


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _queued_mark(c: Connection) -> int:
    """The watermark ``segments:queued``: the contacts of every category change-log entry
    up to it are queued for the destinations."""
    value = setting(c, CATEGORIES_QUEUED_KEY)
    return int(value) if value is not None and str(value).isdigit() else 0


def record_hash(fingerprint: str, record: RawRecord) -> str:
    """A record's identity for "unchanged?": its cells in column-name order (so reordered
    columns do not count as a change), its flags and the connector's fingerprint."""
    values = record.values
    parts = [fingerprint, "d" if record.deleted else "", str(record.updated_at)]
    if record.consents or record.events:
        parts.append(repr((record.consents, record.events)))
    for key in sorted(values):
        parts.append(key)
        parts.append(repr(values[key]))
    payload = "\x1f".join(parts)
    return hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _unreadable_read(mapping: Mapping, record: RawRecord) -> str | None:
    """Why ``record`` cannot be used: the reasons of its unreadable cells that ``mapping``
    reads (a source without a mapping: the columns its headers name); ``None`` when the
    mapping reads none of them, and the record is read with those cells empty."""
    reads = mapping.columns
    if mapping.is_default:
        reads = reads | set(mapping.read_as(record.values).values())
    reasons = [why for column, why in record.unreadable if column in reads]
    return "; ".join(reasons) if reasons else None


def payload_hash(values: dict[str, Any]) -> str:
    payload = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def encode_value(value: Any) -> str | None:
    """How a field value is written to the change log: the registered secrets masked (data
    holding ``key=`` or ``token=`` is the customer's, and ``hub undo`` puts it back)."""
    if value is None:
        return None
    if isinstance(value, str):
        return redact_secrets(value)
    return redact_secrets(json.dumps(value, ensure_ascii=False, default=str))


@dataclass
class ConnectorCounts:
    read: int = 0
    unchanged: int = 0
    quarantined: int = 0
    created: int = 0
    updated: int = 0
    merged: int = 0
    removed: int = 0
    deleted: int = 0
    sent: int = 0
    rejected: int = 0
    retry: int = 0
    #: records of erased people (``hub forget``) skipped
    suppressed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class RunReport:
    run_id: int
    status: str = "running"
    dry_run: bool = False
    counts: dict[str, ConnectorCounts] = field(default_factory=dict)
    changes: int = 0
    pending: dict[str, int] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def counts_for(self, name: str) -> ConnectorCounts:
        return self.counts.setdefault(name, ConnectorCounts())

    def snapshot(self) -> tuple[dict[str, dict[str, int]], int, int]:
        """The counters as they are, for :meth:`restore` when a transaction fails."""
        return {name: counts.as_dict() for name, counts in self.counts.items()}, self.changes, len(self.sample)

    def restore(self, saved: tuple[dict[str, dict[str, int]], int, int]) -> None:
        """Counters back to a :meth:`snapshot`, in place (callers hold the count objects)."""
        counts, self.changes, sampled = saved
        for name, current in self.counts.items():
            current.__dict__.update(counts.get(name) or ConnectorCounts().as_dict())
        del self.sample[sampled:]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "changes": self.changes,
            "counts": {k: v.as_dict() for k, v in self.counts.items()},
            "pending": self.pending,
            "sample": self.sample,
            "errors": self.errors,
        }


@dataclass
class _Work:
    """A changed record on its way into the store."""

    record: RawRecord
    hash: str
    values: dict[str, Any]
    #: ``values`` as stored (JSON), encoded where the record was prepared.
    encoded: str
    linked_contact: int | None
    #: The values are the stored record's, unchanged (a row read again because its raw
    #: cells or the connector's settings changed): it keeps ``changed_at``.
    same_values: bool = False
    changed_at: dt.datetime | None = None
    #: The record now describes another person than before (a sheet row overwritten,
    #: rows numbered by position that moved): it is placed as a new record would be.
    another_person: bool = False
    #: ``values``' identity profile, made where the record was prepared.
    profile: Profile | None = None


def _another_person(before: str | None, after: dict[str, Any]) -> bool:
    """Whether a record's new values describe another person than its stored ones: the
    first name differs outright (not a short form, a spelling or a typo), with no e-mail,
    phone or personal number in common; or, where a phone or e-mail is shared (a family's
    rows swapped), a first name or gender that could never be one person's. A new surname,
    patronymic or address with the same first name is the same person changing."""
    if not before:
        return False
    old, new = identity_profile(json.loads(before)), identity_profile(after)
    result = identity_compare(old, new)
    if set(old.emails) & set(new.emails) or set(old.phones) & set(new.phones):
        return result.veto is not None and result.veto.startswith(("different first names", "one is a man"))
    if any(e.field.startswith("x_") and e.level == "same" for e in result.evidence):
        return False
    return any(e.field == "first_name" and e.level in ("different", "initial differs") for e in result.evidence)


@dataclass
class _Placed:
    """What placing a batch's records changed among the existing contacts."""

    #: contacts to derive again from their records
    affected: set[int]
    #: those of them whose only change is new records (these records' identifiers)
    grown: dict[int, set[tuple[str, str]]]


ProgressCallback = Callable[[str, int], None]


class Sync:
    """A sync run over the connectors of one config."""

    def __init__(
        self,
        config: LoadedConfig,
        store: Store,
        *,
        dry_run: bool = False,
        allow_mass_delete: bool = False,
        resolver: ProbabilisticResolver | None = None,
        progress: ProgressCallback | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ):
        self.config = config
        self.store = store
        self.dry_run = dry_run
        self.allow_mass_delete = allow_mass_delete
        identity = config.model.identity
        self.resolver = resolver or ProbabilisticResolver(identity.merge_at, identity.review_at, identity.match_on)
        self.progress = progress
        #: "Now" for categories that depend on time (temperature, recency); tests fix it.
        self.clock = clock or utcnow
        merge = config.model.merge
        self.survivorship = Survivorship(config.priority(), merge.default, merge.fields)
        self.normalizer = Normalizer(config.model.normalize.default_region, config.model.normalize.city_aliases)
        self.threshold = config.model.guards.mass_delete_threshold
        self.preparer = Preparer(config.path, config.mappings, self.normalizer)
        self._connectors: dict[str, Connector] = {}
        self._tx_connection: Connection | None = None
        self.report = RunReport(run_id=0, dry_run=dry_run)
        #: Set (by a signal handler) to stop the run at the next batch boundary.
        self.stop: threading.Event | None = None
        #: What the categories pass of this run did (``hub.segments.Refreshed``).
        self.categorized: segments.Refreshed | None = None

    # --- plumbing -----------------------------------------------------------------
    def connector(self, name: str) -> Connector:
        if name not in self._connectors:
            entry = self.config.model.connectors[name]
            cls = self.config.classes[entry.plugin]
            context = ConnectorContext(
                name=name, base_dir=self.config.base_dir, logger=log.getChild(name), dry_run=self.dry_run,
                store=self.store,
            )
            self._connectors[name] = cls(self.config.options[name], context)
        return self._connectors[name]

    @contextlib.contextmanager
    def _tx(self, begin: segments.Begin | None = None, write: bool = True) -> Iterator[Connection]:
        """A transaction: its own per batch (of ``begin``, one connection's, when given), or
        the one rolled-back transaction of a dry run. The run's counters count what it
        commits: a transaction that fails takes back its own."""
        saved = self.report.snapshot()
        try:
            if self._tx_connection is not None:
                with self._tx_connection.begin_nested():
                    yield self._tx_connection
            elif begin is not None:
                with begin(write) as connection:
                    yield connection
            else:
                with self.store.begin() as connection:
                    yield connection
        except BaseException:
            self.report.restore(saved)
            raise

    @contextlib.contextmanager
    def _transactions(self) -> Iterator[segments.Begin]:
        """``begin(write=True)``: successive transactions of one connection, each as ``_tx``
        (``write=False``: one that only reads, taking no lock), for work whose temporary
        table lasts across them (``Store.transactions``)."""
        if self._tx_connection is not None:
            yield lambda write=True: self._tx()
            return
        with self.store.transactions() as begin:
            yield lambda write=True: self._tx(begin, write)

    # --- the run ------------------------------------------------------------------
    def run(self, only: Sequence[str] = ()) -> RunReport:
        enabled = self.config.connectors
        unknown = [name for name in only if name not in self.config.model.connectors]
        if unknown:
            raise UsageError(
                f"no connector named {unknown[0]!r} in {self.config.path.name}",
                hint=f"connectors: {', '.join(self.config.model.connectors) or 'none'}",
            )
        selected = [name for name in enabled if not only or name in only]
        sources = [name for name in selected if enabled[name].reads]
        destinations = [name for name in selected if enabled[name].writes]
        with self.store.lock("sync"), sync_collections():
            if self.dry_run:
                with self.store.connect() as connection:
                    outer = connection.begin()
                    self._tx_connection = connection
                    try:
                        return self._run(sources, destinations)
                    finally:
                        self._tx_connection = None
                        outer.rollback()
            return self._run(sources, destinations)

    def _run(self, sources: list[str], destinations: list[str]) -> RunReport:
        started = utcnow()
        with self._tx() as c:
            c.execute(
                update(runs)
                .where(runs.c.status == "running")
                .values(status="interrupted", finished_at=started, error="the process stopped before the run ended")
            )
            run_id = c.execute(
                insert(runs).values(
                    kind="sync",
                    started_at=started,
                    status="running",
                    connectors=json.dumps(sources + [d for d in destinations if d not in sources]),
                    pid=os.getpid(),
                    host=socket.gethostname(),
                )
            ).inserted_primary_key[0]
        self.report.run_id = run_id
        self.started = started
        stop_error: BaseException | None = None
        try:
            if sources:
                self._rekey()
            for name in sources:
                self._note_read(name, self._guarded(name, self._pull))
            self._check_stop()
            forget_profiles()  # the pulls are done: their memory is the next passes'
            self._settle_names()
            self._categorize()
            for name in destinations:
                if self.dry_run:
                    self.report.pending[name] = self._count_pending(name)
                else:
                    self._guarded(name, self._push)
        except GuardError as error:
            self.report.errors.append(str(error))
            stop_error = error
        except HubError as error:
            if isinstance(error, StopRequested):
                self._finish("interrupted", f"{type(error).__name__}: {error}")
            else:  # the store failed (a full disk, a lock held too long, the lock lost): the run failed
                self._finish("failed", "\n".join([*self.report.errors, str(error)]),
                             check_lock=not isinstance(error, LockLostError))
            raise
        except BaseException as error:  # KeyboardInterrupt, SIGTERM: interrupted; a fault of the code: failed
            stopped = isinstance(error, (KeyboardInterrupt, SystemExit))
            self._finish("interrupted" if stopped else "failed", f"{type(error).__name__}: {error}")
            raise
        finally:
            self.preparer.close()
            for connector in self._connectors.values():
                with contextlib.suppress(Exception):
                    connector.close()
        status = "failed" if self.report.errors else "ok"
        if self.dry_run:
            status = "dry-run" if status == "ok" else status
        self._finish(status, "\n".join(self.report.errors) or None)
        if stop_error is not None:
            raise stop_error
        return self.report

    def _note_read(self, name: str, read: bool) -> None:
        """Remember whether the last pull of source ``name`` ended without an error."""
        with self._tx() as c:
            unread = set(json.loads(setting(c, UNREAD_KEY) or "[]"))
            if (name in unread) != (not read):
                unread ^= {name}
                set_setting(c, UNREAD_KEY, json.dumps(sorted(unread)) if unread else None)
            ever = set(json.loads(setting(c, READ_KEY) or "[]"))
            if read and name not in ever:
                set_setting(c, READ_KEY, json.dumps(sorted(ever | {name})))

    def _unread(self, c: Connection) -> list[str]:
        """The sources that may hold what tells namesakes apart and were not read: never
        read to the end (also when only other sources were synced so far), or whose last
        pull failed and whose records are in the store (a tool of history only, such as
        web analytics, brings none)."""
        sources = sorted(name for name, entry in self.config.connectors.items() if entry.reads)
        failed = set(json.loads(setting(c, UNREAD_KEY) or "[]"))
        ever = set(json.loads(setting(c, READ_KEY) or "[]"))
        waiting = []
        for name in sources:
            read_before = name in ever or c.execute(
                select(cursors.c.connector).where(cursors.c.connector == name).limit(1)).first() is not None
            if not read_before:
                waiting.append(name)
            elif name in failed and c.execute(select(source_records.c.connector)
                                              .where(source_records.c.connector == name).limit(1)).first():
                waiting.append(name)
        return waiting

    def _settle_names(self) -> None:
        """Make the joins that rest on a full name alone, found while the sources were read
        (this run's and an interrupted or failed one's): now every holder of each name is in
        the store, whatever order the records came in. Not while a source whose last pull
        failed may hold what tells namesakes apart. One transaction."""
        with self._tx() as c:
            pending = {row.value: row.connector for row in c.execute(select(pending_names))}
            if not pending:
                return
            waiting = self._unread(c)
            if waiting:
                log.warning("%d joins on a name alone wait until %s is read without an error",
                            len(pending), ", ".join(waiting))
                return
            now = utcnow()
            settled = self.resolver.settle(c, list(pending))
            by_connector: dict[str, list[tuple[int, list[int]]]] = defaultdict(list)
            for key, ids in settled.groups:
                by_connector[pending[key]].append((ids[0], ids[1:]))
            for name, merges in sorted(by_connector.items()):
                self.report.counts_for(name).merged += sum(len(losers) for _survivor, losers in merges)
                self._merge_contacts(c, merges, name, now)
                self._recompute(c, sorted(survivor for survivor, _losers in merges), name, now)
            self._reweigh_reviews(c, [ids[0] for _key, ids in settled.groups])
            if settled.reviews:
                record_reviews(c, settled.reviews, self.report.run_id, now)
            for chunk in _chunks(sorted(pending)):
                c.execute(delete(pending_names).where(among(c, pending_names.c.value, chunk)))

    def _rekey(self) -> None:
        """Rebuild every contact's identifiers when the stored ones were made by other key
        rules or name tables (an upgrade): a record must find its contact by the keys this
        release makes. One transaction: interrupted, it is done again on the next run."""
        version = keys_version()
        with self._tx() as c:
            stored = setting(c, KEYS_SETTING)
            if stored == version:
                return
            live = [row.id for row in c.execute(
                select(contacts.c.id).where(and_(contacts.c.merged_into.is_(None), contacts.c.deleted_at.is_(None)))
                .order_by(contacts.c.id)
            )]
            for chunk in _chunks(live):
                own: dict[int, list[SourceValues]] = defaultdict(list)
                for row in live_records(c, chunk, source_records.c.record_values):
                    own[row.contact_id].append(SourceValues("", "", json.loads(row.record_values or "{}"), None))
                c.execute(delete(identifiers).where(
                    and_(among(c, identifiers.c.contact_id, chunk), identifiers.c.kind.notin_(analytics.CLIENT_ID_KINDS))
                ))
                bulk_insert(c, identifiers, [
                    {"kind": kind, "value": value, "contact_id": contact_id}
                    for contact_id, records in own.items() for kind, value in _identifiers_of(records)
                ])
            set_setting(c, KEYS_SETTING, version)
        if stored is not None or live:
            log.info("identifiers rebuilt for %d contacts (identity keys %s -> %s)", len(live), stored, version)

    def _categorize(self) -> None:
        """Recompute the categories and segments of the contacts this run (or a killed one
        before it) changed, and of those whose time-driven values are due (docs/segments.md),
        in chunks of their own transactions, so that ``hub serve`` and other writers are let
        in between; each chunk's contacts whose categories changed are queued, in the chunk's
        transaction, for the destinations whose mapping writes them."""
        wanted = [name for name, entry in self.config.connectors.items()
                  if entry.writes and self.config.mappings[name].outbound]
        try:
            with self._transactions() as begin:
                now = self.clock()
                self._queue_categorized(begin, now, wanted)
                done = segments.refresh(begin, self.config, self.report.run_id, now,
                                        on_chunk=lambda c, part: self._queue_changed(c, part, now, wanted))
        except (RetriableError, FatalError) as error:
            self.report.errors.append(redact(f"categories: {error}"))
            return
        self.categorized = done

    def _queue_categorized(self, begin: segments.Begin, now: dt.datetime, wanted: list[str]) -> None:
        """Queue the contacts with category change-log entries after the watermark
        ``segments:queued``: those of a pass made outside a sync (``hub segments recompute``).
        A chunk of contacts a transaction; the watermark moves with the last (interrupted,
        they are queued again, which changes nothing)."""
        with begin(False) as c:
            top = c.execute(select(func.max(changes.c.id))).scalar() or 0
            mark = _queued_mark(c)
            ids: list[int] = []
            if wanted and top > mark:
                ids = sorted(c.execute(select(changes.c.contact_id).distinct().where(and_(
                    changes.c.id > mark, changes.c.id <= top, changes.c.reason == segments.REASON))).scalars())
        parts = [ids[i : i + segments._CHUNK] for i in range(0, len(ids), segments._CHUNK)] or [[]]
        for number, chunk in enumerate(parts):
            last = number == len(parts) - 1
            if not chunk and (not last or top == mark):
                continue
            with begin() as c:
                self._enqueue_contacts(c, chunk, now, wanted)
                if last and top != mark:
                    set_setting(c, CATEGORIES_QUEUED_KEY, str(top))

    def _queue_changed(self, c: Connection, part: segments.Refreshed, now: dt.datetime, wanted: list[str]) -> None:
        """In a write transaction of the categories pass: queue the contacts whose categories or
        segments it changed, and move the watermark ``segments:queued`` past its change-log
        entries (only holders of the sync lock write entries of categories)."""
        self.report.changes += part.logged
        if not part.changed:
            return
        self._enqueue_contacts(c, sorted(part.changed), now, wanted)
        top = c.execute(select(func.max(changes.c.id))).scalar() or 0
        if top != _queued_mark(c):
            set_setting(c, CATEGORIES_QUEUED_KEY, str(top))

    def _enqueue_contacts(self, c: Connection, ids: Sequence[int], now: dt.datetime, wanted: list[str]) -> None:
        if not wanted:
            return
        for chunk in _chunks(ids):
            values = {row.id: _contact_values(row) for row in c.execute(
                select(contacts).where(and_(among(c, contacts.c.id, chunk), contacts.c.deleted_at.is_(None),
                                            contacts.c.merged_into.is_(None))))}
            if values:
                self._enqueue(c, values, now, only=wanted)

    def _guarded(self, name: str, step: Callable[[str], None]) -> bool:
        """Run one connector's step; a failure of one tool does not stop the others.
        Whether the step ended without an error."""
        self._check_stop()
        try:
            step(name)
        except (RetriableError, FatalError, SkippableRecord) as error:
            message = redact(f"{name}: {error}")
            log.debug(message)
            self.report.errors.append(message)
            return False
        return True

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise StopRequested("stopped on request after the last committed batch")

    def _notify(self) -> None:
        """Tell plugins the run finished (``hub_run_finished``); a failing plugin never fails the run."""
        from hub.plugins import get_plugin_manager

        try:
            get_plugin_manager().hook.hub_run_finished(run=self.report.as_dict())
        except Exception as error:  # noqa: BLE001 - a notification must not change the run's outcome
            log.warning("a hub_run_finished hook failed: %s", redact(f"{type(error).__name__}: {error}"))

    def _finish(self, status: str, error: str | None, check_lock: bool = True) -> None:
        """Record the run's end; ``check_lock=False``: the run lost the store lock, and
        records only its own end."""
        self.report.status = status
        counts = json.dumps({k: v.as_dict() for k, v in self.report.counts.items()})
        with self._tx() if check_lock else self.store.begin(check_lock=False) as c:
            c.execute(
                update(runs)
                .where(runs.c.id == self.report.run_id)
                .values(status=status, finished_at=utcnow(), counts=counts, error=redact(error) if error else None)
            )
        self._notify()

    # --- pull -------------------------------------------------------------------------
    def _pull(self, name: str) -> None:
        connector = self.connector(name)
        mapping = self.config.mappings[name]
        fingerprint = self.config.fingerprint(name)
        columns = connector.columns()
        if columns is not None:
            mapping.check_columns(columns, where=f"the data of connector {name!r}")
        self._check_read_columns(name, mapping, columns)
        with self._tx() as c:
            row = c.execute(
                select(cursors.c.value, cursors.c.fingerprint).where(
                    and_(cursors.c.connector == name, cursors.c.stream == RECORDS_STREAM)
                )
            ).first()
            has_open_quarantine = bool(
                c.execute(
                    select(func.count())
                    .select_from(quarantine)
                    .where(and_(quarantine.c.connector == name, quarantine.c.status != "resolved"))
                ).scalar()
            )
        cursor = row.value if row is not None and row.fingerprint == fingerprint else None
        state = _PullState(
            name=name,
            mapping=mapping,
            fingerprint=fingerprint,
            initial=row is None,
            cursor_stale=row is None or row.fingerprint != fingerprint,
            has_open_quarantine=has_open_quarantine,
            saved_cursor=row.value if row is not None else None,
        )
        final: Checkpoint | None = None
        counts = self.report.counts_for(name)
        inflight: deque[tuple[_Screened, Future[PreparedBatch], Checkpoint | None]] = deque()

        def submit(batch: list[RawRecord], checkpoint: Checkpoint | None) -> None:
            """Screen a batch now, prepare it (maybe in the worker), store the one before."""
            screened = self._screen(state, batch)
            rows = [record.values for record, _digest in screened.candidates]
            inflight.append((screened, self.preparer.submit(name, rows), checkpoint))
            while len(inflight) > 1:
                self._apply_batch(state, *inflight.popleft())
            if self.stop is not None and self.stop.is_set():
                while inflight:  # finish the batches read so far, with their cursor
                    self._apply_batch(state, *inflight.popleft())
                self._check_stop()

        batch: list[RawRecord] = []
        for item in _from_connector(name, connector.read(cursor)):
            if isinstance(item, Checkpoint):
                if item.complete:
                    final = item
                    continue
                submit(batch, item)
                batch = []
                continue
            counts.read += 1
            batch.append(item)
            if len(batch) >= BATCH_SIZE:
                submit(batch, None)
                batch = []
                if self.progress:
                    self.progress(name, counts.read)
        if batch:
            submit(batch, None)
        while inflight:
            self._apply_batch(state, *inflight.popleft())
        if self.progress:
            self.progress(name, counts.read)
        if final is not None:
            self._apply_removals(state, final)

    def _screen(self, state: "_PullState", records: list[RawRecord]) -> "_Screened":
        """Sort a batch out before the expensive part: ids missing or repeated, rows
        unchanged since the last run (by hash), rows the tool marks deleted or broken."""
        name = state.name
        counts = self.report.counts_for(name)
        screened = _Screened()
        known: dict[str, Any] = {}
        with self._tx() as c:
            ids = list({r.external_id for r in records if r.external_id})
            for row in _records_of(c, name, ids, source_records.c.payload_hash, source_records.c.removed_at):
                known[row.external_id] = row
        for record in records:
            external_id = record.external_id
            if record.history_only:  # events of a record, not a state of it
                screened.history.append(record)
                continue
            if not external_id:
                screened.quarantine.append((record, "the record has no id (empty id column)"))
                continue
            if external_id in state.seen:
                screened.quarantine.append((record, f"duplicate id {external_id!r}: an earlier record has it"))
                continue
            state.seen.add(external_id)
            digest = record_hash(state.fingerprint, record)
            previous = known.get(external_id)
            if previous is not None and previous.payload_hash == digest and previous.removed_at is None:
                counts.unchanged += 1  # appended rows too: read again after an interrupted run
            elif record.appended and previous is not None and previous.removed_at is None:
                screened.quarantine.append((record, f"duplicate id {external_id!r}: an earlier record has it"))
            elif record.error:
                screened.quarantine.append((record, record.error))
            elif record.unreadable and (unread := _unreadable_read(state.mapping, record)):
                screened.quarantine.append((record, unread))
            elif record.deleted:
                if previous is not None and previous.removed_at is None:
                    screened.removed.append(external_id)
            else:
                screened.candidates.append((record, digest))
                if previous is not None:
                    screened.linked.append(external_id)
        return screened

    def _apply_batch(
        self, state: "_PullState", screened: "_Screened", prepared: Future[PreparedBatch], checkpoint: Checkpoint | None
    ) -> None:
        """Store one screened and prepared batch, with its cursor, in one transaction."""
        name = state.name
        results, profiles = prepared.result()
        now = utcnow()
        with self._tx() as c:
            # the contact a known record links to, read now: an earlier batch may have merged it
            stored = {
                row.external_id: row
                for row in _records_of(c, name, screened.linked, source_records.c.contact_id,
                                       source_records.c.record_values, source_records.c.changed_at,
                                       source_records.c.removed_at)
            }
            links = {external_id: row.contact_id for external_id, row in stored.items()}
            suppressed = Suppressed(c)
            erased: list[str] = []
            for record, reason in screened.quarantine:
                # an erased person's row is stored nowhere, not even as a duplicate or a broken row
                if suppressed and suppressed.match(prepare(state.mapping, self.normalizer, [record.values])[0][0],
                                                   (name, record.external_id)):
                    self.report.counts_for(name).suppressed += 1
                    erased.append(record.external_id)
                    continue
                self._quarantine(c, name, record, reason, "open")
            work: list[_Work] = []
            clean: list[str] = []
            kept: list[dict[str, Any]] = []
            for (record, digest), (values, problems, encoded), profile_ in zip(
                    screened.candidates, results, profiles, strict=True):
                if suppressed and suppressed.match(values, (name, record.external_id)):
                    self.report.counts_for(name).suppressed += 1  # an erased person: never imported again
                    erased.append(record.external_id)
                    continue
                if not _has_substance(values):
                    reason = "no e-mail, phone or name left after normalization"
                    self._quarantine(c, name, record, "; ".join(problems + [reason]), "open")
                    continue
                if problems:
                    self._quarantine(c, name, record, "; ".join(problems), "partial")
                else:
                    clean.append(record.external_id)
                before = stored.get(record.external_id)
                same = before is not None and before.removed_at is None and before.record_values == encoded
                if same and record.updated_at is None and not record.consents and not record.events:
                    # read again (its cells, the settings or hub's normalization changed) and
                    # normalized to the values stored: nothing to place; the next run skips it
                    kept.append({"connector": name, "external_id": record.external_id, "payload_hash": digest})
                    continue
                another = before is not None and not same and _another_person(before.record_values, values)
                work.append(_Work(record, digest, values, encoded, links.get(record.external_id), same,
                                  before.changed_at if same else None, another, profile_))
            bulk_update(c, source_records, ("connector", "external_id"), kept)
            self.report.counts_for(name).unchanged += len(kept)
            for chunk in _chunks(erased):
                # nor kept: a form they send to hub serve goes, as hub forget took the earlier ones
                c.execute(delete(inbox).where(and_(inbox.c.connector == name, inbox.c.delivery_id.in_(chunk))))
            if state.has_open_quarantine and clean:
                for chunk in _chunks(clean):
                    c.execute(
                        update(quarantine)
                        .where(
                            and_(
                                quarantine.c.connector == name,
                                quarantine.c.external_id.in_(chunk),
                                quarantine.c.status != "resolved",
                            )
                        )
                        .values(status="resolved")
                    )
            affected: set[int] = set()
            grown: dict[int, set[tuple[str, str]]] = {}
            if work:
                placed = self._place(c, state, work, now)
                affected |= placed.affected
                grown = placed.grown
            if screened.removed:
                removed_from = self._mark_removed(c, name, screened.removed, now)
                affected |= removed_from
                grown = {k: v for k, v in grown.items() if k not in removed_from}
            if affected:
                self._recompute(c, sorted(affected), name, now, grown=grown)
            if any(w.record.consents or w.record.events for w in work):
                self._record_consents(c, name, work, now)
            if screened.history:
                self._record_history(c, name, screened.history, now)
            if checkpoint is not None:
                self._save_cursor(c, state, checkpoint.cursor)

    def _record_consents(self, c: Connection, name: str, work: list[_Work], now: dt.datetime) -> None:
        """Store the consent and the history the records report; queue contacts whose
        consent changed."""
        reported = [w.record for w in work if w.record.consents or w.record.events]
        linked = {row.external_id: row.contact_id for row in _records_of(
            c, name, [r.external_id for r in reported], source_records.c.contact_id)}
        history.record(c, [(linked[r.external_id], name, event, r.external_id) for r in reported
                           if r.external_id in linked for event in r.events], self.report.run_id)
        self._refresh_web(c, analytics.link_client_ids(c, [(linked[r.external_id], event) for r in reported
                                                           if r.external_id in linked for event in r.events],
                                                       self.report.run_id, now, self._pending_days()), name, now)
        self._store_consents(c, name, [(linked[r.external_id], name, r.external_id, report)
                                       for r in reported if r.external_id in linked for report in r.consents], now)

    def _pending_days(self) -> dict[str, int]:
        """How long each connector's visits of unknown visitors wait for a form."""
        return {name: getattr(options, "pending_days", analytics.PENDING_DAYS)
                for name, options in self.config.options.items()}

    def _store_consents(self, c: Connection, name: str, reports: list[tuple[int, str, str, Any]],
                        now: dt.datetime) -> None:
        if not reports:
            return
        log_rows, changed = consent.record(c, reports, now)
        self._log(c, log_rows)
        if changed:
            rows = c.execute(select(contacts).where(and_(contacts.c.id.in_(sorted(changed)),
                                                         contacts.c.deleted_at.is_(None)))).all()
            self._enqueue(c, {row.id: _contact_values(row) for row in rows}, now)

    def _record_history(self, c: Connection, name: str, records: list[RawRecord], now: dt.datetime) -> None:
        """Store the events and consents of history-only records against the contact the
        record's id links to or, for an id hub has no record of, the one contact holding the
        e-mail or phone the record carries (a transactional e-mail's recipient, an SMS's
        number); those of persons hub does not have are dropped. Web analytics visits
        (``client_id``) go to the contact holding the client id, or wait for one."""
        visits = [(r.client_id, event) for r in records if r.client_id is not None for event in r.events]
        if visits:
            keep = self._pending_days()[name]
            self._refresh_web(c, analytics.attach_visits(c, name, visits, self.report.run_id, now, keep), name, now)
            records = [r for r in records if r.client_id is None]
        owners = {row.external_id: row.contact_id for row in _records_of(
            c, name, [r.external_id for r in records], source_records.c.contact_id)}
        owners.update(self._holders(c, [r for r in records if r.external_id not in owners]))
        history.record(c, [(owners[r.external_id], name, event, None) for r in records if r.external_id in owners
                           for event in r.events], self.report.run_id)
        self._store_consents(c, name, [(owners[r.external_id], name, r.external_id, report)
                                       for r in records if r.external_id in owners for report in r.consents], now)

    def _holders(self, c: Connection, records: list[RawRecord]) -> dict[str, int]:
        """Record id -> the one live contact holding the record's ``email`` or ``phone``."""
        wanted: dict[str, tuple[str, str]] = {}
        for record in records:
            email = normalize_emails(str(record.values.get("email") or ""))[0]
            phone = normalize_phones(str(record.values.get("phone") or ""), self.normalizer.default_region)[0]
            if email or phone:
                wanted[record.external_id] = ("email", email[0]) if email else ("phone", phone[0])
        holders: dict[tuple[str, str], set[int]] = defaultdict(set)
        for kind in ("email", "phone"):
            values = sorted({value for k, value in wanted.values() if k == kind})
            for chunk in _chunks(values):
                for row in c.execute(
                    select(identifiers.c.value, identifiers.c.contact_id)
                    .join(contacts, contacts.c.id == identifiers.c.contact_id)
                    .where(and_(identifiers.c.kind == kind, among(c, identifiers.c.value, chunk),
                                contacts.c.deleted_at.is_(None), contacts.c.merged_into.is_(None)))
                ):
                    holders[(kind, row.value)].add(row.contact_id)
        # a number a family shares names no one person: its events are dropped
        return {external_id: next(iter(holders[key])) for external_id, key in wanted.items()
                if len(holders.get(key, ())) == 1}

    def _place(self, c: Connection, state: "_PullState", work: list[_Work], now: dt.datetime) -> "_Placed":
        """Resolve identity for changed records, create or merge contacts, upsert the records.

        Returns the existing contacts whose records changed (to derive again), and among
        them those that only gained new records; contacts created here are complete already."""
        name = state.name
        counts = self.report.counts_for(name)
        candidates = [
            Candidate(i, None if w.another_person else w.linked_contact, w.values, f"{name}\0{w.record.external_id}",
                      w.encoded, w.profile)
            for i, w in enumerate(work)
        ]
        resolution = self.resolver.resolve(c, candidates)
        clusters = resolution.clusters
        keys: dict[int, set[tuple[str, str]]] = {}

        def keys_at(i: int) -> set[tuple[str, str]]:
            """The identifiers of ``work[i]``, from the profile the resolver made of it."""
            if i not in keys:
                keys[i] = keys_of(work[i].values, resolution.profiles.get(i))
            return keys[i]

        target: dict[int, int] = {}
        new_clusters = [cluster for cluster in clusters if not cluster.contacts]
        changed_at = None if state.initial else self.started
        created: set[int] = set()
        if new_clusters:
            ids = allocate_ids(c, contacts, len(new_clusters))
            fresh: dict[int, list[SourceValues]] = {}
            fresh_keys: dict[int, set[tuple[str, str]]] = {}
            for cluster, contact_id in zip(new_clusters, ids, strict=True):
                cluster.contacts = [contact_id]
                fresh[contact_id] = [
                    SourceValues(name, work[k].record.external_id, work[k].values,
                                 work[k].record.updated_at or changed_at)
                    for k in cluster.record_keys
                ]
                fresh_keys[contact_id] = set().union(*(keys_at(k) for k in cluster.record_keys))
            self._create_contacts(c, fresh, fresh_keys, name, now)
            created.update(fresh)
            counts.created += len(new_clusters)
        affected: set[int] = set()
        merged_into: dict[int, int] = {}
        merges: list[tuple[int, list[int]]] = []
        for cluster in clusters:
            survivor, losers = cluster.contacts[0], cluster.contacts[1:]
            for key in cluster.record_keys:
                target[key] = survivor
            if losers:
                merges.append((survivor, losers))
                counts.merged += len(losers)
                merged_into.update((loser, survivor) for loser in losers)
            if survivor not in created:
                affected.add(survivor)
        self._merge_contacts(c, merges, name, now)
        if resolution.reviews:
            self._ask_review(c, resolution.reviews, target, merged_into, now)
        if resolution.names:  # decided once all sources are read (_settle_names)
            for chunk in _chunks(sorted(resolution.names)):
                known = set(c.execute(select(pending_names.c.value).where(among(c, pending_names.c.value, chunk))).scalars())
                bulk_insert(c, pending_names, [{"value": v, "connector": name} for v in chunk if v not in known])
        rows = []
        moved_log: list[dict[str, Any]] = []
        for i, w in enumerate(work):
            rows.append(
                {
                    "connector": name,
                    "external_id": w.record.external_id,
                    "contact_id": target[i],
                    "origin": "read",
                    "payload_hash": w.hash,
                    "record_values": w.encoded,
                    # values read again unchanged keep their time: the tool's timestamp moved for
                    # something else (a status, hub's own write of a consent)
                    "changed_at": w.changed_at if w.same_values else (w.record.updated_at or changed_at),
                    "first_run": self.report.run_id,
                    "changed_run": self.report.run_id,
                    "removed_at": None,
                }
            )
            if w.linked_contact is not None and w.linked_contact != target[i]:
                affected.add(w.linked_contact)
                if w.another_person:  # explained in the log: the record now describes someone else
                    moved_log.append(_change(target[i], "record", str(w.linked_contact), str(target[i]), name,
                                             w.record.external_id, "sync", now))
        existing = {w.record.external_id for w in work if w.linked_contact is not None}
        fresh = [r for r in rows if r["external_id"] not in existing]
        known = [r for r in rows if r["external_id"] in existing]
        bulk_insert(c, source_records, fresh)
        for row in known:
            del row["first_run"]  # an update keeps when the record was first seen
        bulk_update(c, source_records, ("connector", "external_id"), known)
        self._log(c, moved_log)
        # contacts whose only change is records new to hub: their stored identifiers stand
        grown: dict[int, set[tuple[str, str]]] = defaultdict(set)
        rebuilt = {survivor for survivor, _losers in merges}
        for i, w in enumerate(work):
            if w.linked_contact is None:
                grown[target[i]] |= keys_at(i)
            else:  # a known record changed or moved: what it was found by may be gone
                rebuilt.update((w.linked_contact, target[i]))
        self._reweigh_reviews(c, affected)
        return _Placed(affected, {k: v for k, v in grown.items() if k in affected and k not in rebuilt})

    def _reweigh_reviews(self, c: Connection, contact_ids: Iterable[int]) -> None:
        """The pending review pairs of contacts that gained records (a later batch, a merge)
        weighed again with all their records: dropped when a veto or a disagreeing phone,
        mailbox or birthday now stands between the two, as a batch that held all those
        records would not have asked (:meth:`ProbabilisticResolver.reweigh`)."""
        ids = sorted(set(contact_ids))
        pending: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for chunk in _chunks(ids):
            for row in c.execute(
                select(match_reviews.c.contact_a, match_reviews.c.contact_b, match_reviews.c.evidence).where(and_(
                    match_reviews.c.status == "pending",
                    or_(among(c, match_reviews.c.contact_a, chunk), among(c, match_reviews.c.contact_b, chunk))))
            ):
                pending[(row.contact_a, row.contact_b)] = json.loads(row.evidence or "[]")
        if not pending:
            return
        for (a, b), comparison in sorted(self.resolver.reweigh(c, pending).items()):
            where = and_(match_reviews.c.contact_a == a, match_reviews.c.contact_b == b,
                         match_reviews.c.status == "pending")
            if comparison is None:
                c.execute(delete(match_reviews).where(where))
            else:
                c.execute(update(match_reviews).where(where).values(
                    probability=round(comparison.probability, 4),
                    evidence=json.dumps([e.as_dict() for e in comparison.evidence], ensure_ascii=False)))

    def _merge_contacts(
        self, c: Connection, merges: Sequence[tuple[int, list[int]]], name: str, now: dt.datetime
    ) -> None:
        """Fold each ``(survivor, losers)`` of ``merges``: move the losers' records and history
        to the survivor, log the merge. A batch's merges are done together, a few statements
        for all of them (a contact is in one of them at most).

        Links hub created in destinations stay with the losers until the queued delete
        has removed the loser from that tool. Each moved record is logged (field
        ``record``, old contact to new) so ``hub split`` can move it back."""
        owner = {loser: survivor for survivor, losers in merges for loser in losers}
        if not owner:
            return
        run_id = self.report.run_id
        everyone = sorted(owner)
        moved: list[Any] = []
        moves: list[dict[str, Any]] = []  # for hub split: what moves besides the records
        with_events: set[int] = set()
        with_client_ids: set[int] = set()
        for chunk in _chunks(everyone):
            moved.extend(c.execute(
                select(source_records.c.contact_id, source_records.c.connector, source_records.c.external_id)
                .where(and_(among(c, source_records.c.contact_id, chunk), source_records.c.origin == "read"))
            ))
            c.execute(
                update(source_records)
                .where(and_(among(c, source_records.c.contact_id, chunk), source_records.c.origin == "read"))
                .values(contact_id=case({k: owner[k] for k in chunk}, value=source_records.c.contact_id))
            )
            event_rows = c.execute(
                select(events.c.contact_id, events.c.id).where(among(c, events.c.contact_id, chunk))
                .order_by(events.c.id)
            ).all()
            if event_rows:
                moves.extend({"run_id": run_id, "survivor": owner[row.contact_id], "loser": row.contact_id,
                              "kind": "event", "item": str(row.id)} for row in event_rows)
                with_events.update(row.contact_id for row in event_rows)
                c.execute(
                    update(events).where(among(c, events.c.contact_id, chunk))
                    .values(contact_id=case({k: owner[k] for k in chunk}, value=events.c.contact_id))
                )
            with_client_ids.update(c.execute(
                select(identifiers.c.contact_id).where(and_(
                    among(c, identifiers.c.contact_id, chunk), identifiers.c.kind.in_(analytics.CLIENT_ID_KINDS)))
            ).scalars())
        held_consents = consent.current(c, everyone)
        with_consents = {loser for loser, _channel in held_consents}
        for survivor, losers in merges:
            if with_client_ids.intersection(losers):
                moves.extend(
                    {"run_id": run_id, "survivor": survivor, "loser": loser, "kind": "client_id",
                     "item": json.dumps([kind, value, added])}
                    for loser, kind, value, added in analytics.move_client_ids(c, survivor, losers)
                )
        moves.extend(
            {"run_id": run_id, "survivor": owner[loser], "loser": loser, "kind": "consent",
             "item": json.dumps(consent.as_item(row), ensure_ascii=False)}
            for (loser, _channel), row in sorted(held_consents.items())
        )
        # the survivor's values put back by hub undo: the merged records derive others, so
        # the derivation drops them; a split gives them back
        undone = load_overrides(c, sorted({survivor for survivor, _losers in merges}))
        moves.extend(
            {"run_id": run_id, "survivor": survivor, "loser": loser, "kind": "override",
             "item": json.dumps({"field": row.field, "value": row.value, "masked": row.masked,
                                 "run_id": row.run_id, "created_at": row.created_at}, ensure_ascii=False, default=str)}
            for survivor, losers in merges for loser in losers
            for field_, row in sorted(undone.get(survivor, {}).items()) if field_ != DELETED
        )
        bulk_insert(c, merge_moves, moves)
        for chunk in _chunks(everyone):
            c.execute(delete(identifiers).where(among(c, identifiers.c.contact_id, chunk)))
            c.execute(
                update(contacts)
                .where(among(c, contacts.c.id, chunk))
                .values(merged_into=case({k: owner[k] for k in chunk}, value=contacts.c.id), deleted_at=now,
                        updated_run=run_id, updated_at=now)
            )
            c.execute(
                update(outbox)
                .where(among(c, outbox.c.contact_id, chunk))
                .values(op="delete", status="pending", payload=None, payload_hash=None, updated_at=now)
            )
        moved.sort(key=lambda row: (owner[row.contact_id], row.connector, row.external_id))
        self._log(
            c,
            [_change(loser, "merged_into", None, str(survivor), name, None, "merge", now)
             for survivor, losers in merges for loser in losers]
            + [
                _change(owner[row.contact_id], "record", str(row.contact_id), str(owner[row.contact_id]),
                        row.connector, row.external_id, "merge", now)
                for row in moved
            ],
        )
        reviewed = set()
        for chunk in _chunks(everyone):
            for row in c.execute(select(match_reviews.c.contact_a, match_reviews.c.contact_b).where(
                    or_(among(c, match_reviews.c.contact_a, chunk), among(c, match_reviews.c.contact_b, chunk)))):
                reviewed.update((row.contact_a, row.contact_b))
        review_moves: list[dict[str, Any]] = []  # for hub split: the losers' pairs it gives back
        for survivor, losers in merges:
            if reviewed.intersection(losers):
                review_moves.extend(
                    {"run_id": run_id, "survivor": survivor, "loser": loser, "kind": "review",
                     "item": json.dumps(item, ensure_ascii=False, default=str)}
                    for loser, item in remap_reviews(c, survivor, losers)
                )
            if with_consents.intersection(losers):
                self._log(c, consent.merge(c, survivor, losers, name, now))
        bulk_insert(c, merge_moves, review_moves)
        # the losers' visits are the survivors' now
        self._refresh_web(c, sorted({owner[loser] for loser in with_events}), name, now)

    def _ask_review(
        self, c: Connection, reviews: list[ReviewPair], target: dict[int, int], merged_into: dict[int, int],
        now: dt.datetime,
    ) -> None:
        """Queue the pairs that may be one person for ``hub review``; decided pairs stay decided."""
        def contact_of(node: tuple[str, int]) -> int:
            contact_id = target[node[1]] if node[0] == "r" else node[1]
            return merged_into.get(contact_id, contact_id)

        best: dict[tuple[int, int], ReviewPair] = {}
        for review in reviews:
            a, b = contact_of(review.a), contact_of(review.b)
            if a == b:
                continue
            pair = (min(a, b), max(a, b))
            if pair not in best or review.comparison.weight > best[pair].comparison.weight:
                best[pair] = review
        if not best:
            return
        record_reviews(c, {pair: review.comparison for pair, review in best.items()}, self.report.run_id, now)

    def _mark_removed(self, c: Connection, name: str, external_ids: list[str], now: dt.datetime) -> set[int]:
        affected = {row.contact_id for row in _records_of(c, name, external_ids, source_records.c.contact_id)}
        for chunk in _chunks(external_ids):
            c.execute(
                update(source_records)
                .where(and_(source_records.c.connector == name, source_records.c.external_id.in_(chunk)))
                .values(removed_at=now, changed_run=self.report.run_id, payload_hash=None)
            )
        self.report.counts_for(name).removed += len(external_ids)
        return affected

    def _create_contacts(
        self, c: Connection, fresh: dict[int, list[SourceValues]], keys: dict[int, set[tuple[str, str]]],
        name: str, now: dt.datetime,
    ) -> None:
        """Insert new contacts derived from their records, found by ``keys`` (their
        identifiers), with one ``created`` entry each in the change log holding every value
        (later changes are logged per field)."""
        rows: list[dict[str, Any]] = []
        ident_rows: list[dict[str, Any]] = []
        log_rows: list[dict[str, Any]] = []
        queued: dict[int, dict[str, Any] | None] = {}
        run_id = self.report.run_id
        for contact_id, own in fresh.items():
            values = {f: survivor.value for f, survivor in self.survivorship.merge(own).items()}
            row = _contact_row(contact_id, values, run_id, now, deleted=False)
            row.update(created_run=run_id, created_at=now, merged_into=None)
            rows.append(row)
            ident_rows.extend(
                {"kind": kind, "value": value, "contact_id": contact_id} for kind, value in keys[contact_id]
            )
            first = own[0]
            everything = {f: values[f] for f in sorted(values, key=_field_order)}
            log_rows.append(_change(contact_id, CREATED, None, everything, first.connector, first.external_id, "sync", now))
            queued[contact_id] = values
        bulk_insert(c, contacts, rows)
        bulk_insert(c, identifiers, ident_rows)
        self._log(c, log_rows)
        self._enqueue(c, queued, now)

    def _recompute(
        self, c: Connection, contact_ids: list[int], name: str, now: dt.datetime, reason: str = "sync",
        grown: dict[int, set[tuple[str, str]]] | None = None,
    ) -> None:
        """Derive each contact from its records, log what changed, refresh identifiers and outbox.

        ``grown``: contacts whose only change is new records, with these records'
        identifiers; theirs are the stored ones and these (the stored ones are those of
        all their other records), not derived from every record again."""
        counts = self.report.counts_for(name)
        records: dict[int, list[SourceValues]] = defaultdict(list)
        current: dict[int, Any] = {}
        idents: dict[int, set[tuple[str, str]]] = defaultdict(set)
        for chunk in _chunks(contact_ids):
            for row in live_records(c, chunk, source_records.c.connector, source_records.c.external_id,
                                    source_records.c.record_values, source_records.c.changed_at):
                records[row.contact_id].append(
                    SourceValues(row.connector, row.external_id, json.loads(row.record_values), row.changed_at)
                )
            for row in c.execute(select(contacts).where(among(c, contacts.c.id, chunk))):
                current[row.id] = row
            for row in c.execute(select(identifiers).where(among(c, identifiers.c.contact_id, chunk))):
                idents[row.contact_id].add((row.kind, row.value))
        change_rows: list[dict[str, Any]] = []
        contact_updates: list[dict[str, Any]] = []
        ident_add: list[dict[str, Any]] = []
        ident_drop: list[tuple[int, str, str]] = []
        outbox_contacts: dict[int, dict[str, Any] | None] = {}
        held = load_overrides(c, contact_ids)  # values put back by `hub undo`
        stale: list[tuple[int, str]] = []
        for contact_id in contact_ids:
            row = current[contact_id]
            if row.merged_into is not None:
                continue
            old = _contact_values(row)
            own = records.get(contact_id, [])
            survivors = self.survivorship.merge(own) if own else {}
            new = apply_overrides(contact_id, {field_: s.value for field_, s in survivors.items()}, held, stale)
            if not own or new is None:
                if row.deleted_at is None:
                    contact_updates.append(_contact_row(contact_id, old, self.report.run_id, now, deleted=True))
                    change_rows.append(_change(contact_id, "deleted", None, "true", name, None, reason, now))
                    ident_drop.extend((contact_id, kind, value) for kind, value in idents[contact_id])
                    outbox_contacts[contact_id] = None
                    counts.deleted += 1
                continue
            for field_ in analytics.WEB_FIELDS:  # derived from visits, not records (_refresh_web)
                if field_ in old:
                    new[field_] = old[field_]
            diff = False
            for field_ in sorted(set(old) | set(new), key=_field_order):
                before, after = old.get(field_), new.get(field_)
                if before == after:
                    continue
                diff = True
                source = survivors.get(field_)
                change_rows.append(
                    _change(
                        contact_id, field_, before, after,
                        source.connector if source and source.connector else name,
                        source.external_id if source else None, reason, now,
                    )
                )
            added = grown.get(contact_id) if grown else None
            if row.deleted_at is not None:
                diff = True
                change_rows.append(_change(contact_id, "deleted", "true", None, name, None, reason, now))
                added = None  # its identifiers went when it was deleted
            if added is not None:
                wanted = idents[contact_id] | added
            else:
                wanted = _identifiers_of(own)
            ident_add.extend(
                {"kind": kind, "value": value, "contact_id": contact_id} for kind, value in wanted - idents[contact_id]
            )
            ident_drop.extend((contact_id, kind, value) for kind, value in idents[contact_id] - wanted
                              if kind not in analytics.CLIENT_ID_KINDS)  # from forms' events, not records
            if diff:
                contact_updates.append(_contact_row(contact_id, new, self.report.run_id, now, deleted=False))
                outbox_contacts[contact_id] = new
                counts.updated += 1
        bulk_update(c, contacts, ("id",), contact_updates)
        drop_overrides(c, stale)
        for contact_id, kind, value in ident_drop:
            c.execute(
                delete(identifiers).where(
                    and_(
                        identifiers.c.contact_id == contact_id,
                        identifiers.c.kind == kind,
                        identifiers.c.value == value,
                    )
                )
            )
        bulk_insert(c, identifiers, ident_add)
        self._log(c, change_rows)
        if outbox_contacts:
            self._enqueue(c, outbox_contacts, now)

    def _refresh_web(self, c: Connection, contact_ids: set[int] | list[int], name: str, now: dt.datetime) -> None:
        """Derive the web fields of contacts (attribution, device, region, visits) from
        their visits; log what changed and queue the contacts."""
        if not contact_ids:
            return
        ids = sorted(set(contact_ids))
        computed = analytics.attribution(c, ids)
        change_rows: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        queued: dict[int, dict[str, Any] | None] = {}
        for chunk in _chunks(ids):
            for row in c.execute(select(contacts).where(and_(among(c, contacts.c.id, chunk),
                                                             contacts.c.deleted_at.is_(None)))):
                old = _contact_values(row)
                new = {k: v for k, v in old.items() if k not in analytics.WEB_FIELDS}
                new.update(computed.get(row.id, {}))
                changed = [f for f in analytics.WEB_FIELDS if old.get(f) != new.get(f)]
                if not changed:
                    continue
                change_rows.extend(_change(row.id, f, old.get(f), new.get(f), name, None, analytics.REASON, now)
                                   for f in changed)
                updates.append(_contact_row(row.id, new, self.report.run_id, now, deleted=False))
                queued[row.id] = new
        bulk_update(c, contacts, ("id",), updates)
        self._log(c, change_rows)
        if queued:
            self._enqueue(c, queued, now)

    def _log(self, c: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        for row in rows:
            row["run_id"] = self.report.run_id
        bulk_insert(c, changes, rows)
        self.report.changes += len(rows)
        room = SAMPLE_SIZE - len(self.report.sample)
        if room > 0:
            self.report.sample.extend(
                {k: row[k] for k in ("contact_id", "field", "old_value", "new_value", "connector", "reason")}
                for row in rows[:room]
            )

    def queue(self, c: Connection, contact_ids: Sequence[int], only: Sequence[str]) -> None:
        """Queue the live contacts among ``contact_ids`` as they are for the destinations
        ``only``, by the consent rule, as a change would queue them: a destination added
        after they last changed has no outbox row for them."""
        values: dict[int, dict[str, Any] | None] = {}
        for chunk in _chunks(sorted(set(contact_ids))):
            for row in c.execute(select(contacts).where(and_(
                contacts.c.id.in_(chunk), contacts.c.deleted_at.is_(None), contacts.c.merged_into.is_(None),
            ))):
                values[row.id] = _contact_values(row)
        if values:
            self._enqueue(c, values, utcnow(), only=only)

    def _enqueue(self, c: Connection, contact_values: dict[int, dict[str, Any] | None], now: dt.datetime,
                 only: Sequence[str] | None = None) -> None:
        """Queue the merged truth for every destination (or those of ``only``); an unchanged
        payload is not queued. A mapping that writes categories or segments gets them too."""
        outbound: dict[int, dict[str, Any]] | None = None
        for destination, entry in self.config.connectors.items():
            if not entry.writes or (only is not None and destination not in only):
                continue
            mapping: Mapping = self.config.mappings[destination]
            ids = list(contact_values)
            names: list[str] | None = None
            if mapping.outbound:
                if outbound is None:
                    outbound = segments.outbound_values(c, [cid for cid, v in contact_values.items() if v is not None])
                if "segments" in mapping.outbound:
                    names = sorted(self.config.model.segments)
            # an email or SMS service: the contact's consent goes along and decides
            rule = consent.send_rule(c, self.config, destination, ids)
            channel = rule.channel
            state: dict[int, Any] = {}
            for chunk in _chunks(ids):
                for row in c.execute(
                    select(outbox.c.contact_id, outbox.c.sent_hash, outbox.c.status, outbox.c.payload).where(
                        and_(outbox.c.destination == destination, outbox.c.contact_id.in_(chunk))
                    )
                ):
                    state[row.contact_id] = row
            inserts, updates = [], []
            for contact_id, values in contact_values.items():
                if values is None:
                    if contact_id not in state:
                        continue  # never sent there: nothing to delete
                    op, payload, digest = "delete", None, None
                else:
                    if outbound is not None and mapping.outbound:
                        # an empty category is sent as "" so that the tool clears what it had
                        values = {**values, **{k: "" if v is None else v
                                               for k, v in outbound.get(contact_id, {}).items()}}
                    payload = mapping.reverse(values)
                    _clear_emptied(payload, state.get(contact_id), mapping)
                    if names is not None:
                        payload[SEGMENT_NAMES_KEY] = names
                    if channel:
                        payload[consent.PAYLOAD_KEY] = rule.status(contact_id)
                    op, digest = "upsert", payload_hash(payload)
                previous = state.get(contact_id)
                status = "sent" if previous is not None and op == "upsert" and previous.sent_hash == digest else "pending"
                if channel and op == "upsert" and not rule.allows(contact_id):
                    if previous is None:
                        continue  # no consent basis: never added to the list
                    status = "held"
                item = {
                    "op": op,
                    "payload": json.dumps(payload, ensure_ascii=False, default=str) if payload is not None else None,
                    "payload_hash": digest,
                    "status": status,
                    "run_id": self.report.run_id or None,  # none when queued outside a run
                    "updated_at": now,
                }
                if previous is None:
                    inserts.append({"destination": destination, "contact_id": contact_id, "attempts": 0, **item})
                else:
                    updates.append({"destination": destination, "contact_id": contact_id, **item})
            bulk_insert(c, outbox, inserts)
            bulk_update(c, outbox, ("destination", "contact_id"), updates)

    def _quarantine(self, c: Connection, name: str, record: RawRecord, reason: str, status: str) -> None:
        counts = self.report.counts_for(name)
        if status == "open":
            counts.quarantined += 1
        raw = json.dumps(
            {"external_id": record.external_id, "values": record.values}, ensure_ascii=False, default=str
        )
        digest = hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        exists = c.execute(
            select(quarantine.c.id).where(
                and_(
                    quarantine.c.connector == name,
                    quarantine.c.external_id == record.external_id,
                    quarantine.c.raw_hash == digest,
                )
            )
        ).first()
        values = {"reason": redact(reason), "status": status, "run_id": self.report.run_id, "at": utcnow()}
        if exists is None:
            c.execute(
                insert(quarantine).values(
                    connector=name, external_id=record.external_id, raw=redact(raw), raw_hash=digest, **values
                )
            )
        else:
            c.execute(update(quarantine).where(quarantine.c.id == exists.id).values(**values))

    def _save_cursor(self, c: Connection, state: "_PullState", value: str | None) -> None:
        if value == state.saved_cursor and not state.cursor_stale:
            return
        values = {"value": value, "fingerprint": state.fingerprint, "run_id": self.report.run_id, "updated_at": utcnow()}
        updated = c.execute(
            update(cursors)
            .where(and_(cursors.c.connector == state.name, cursors.c.stream == RECORDS_STREAM))
            .values(**values)
        ).rowcount
        if not updated:
            c.execute(insert(cursors).values(connector=state.name, stream=RECORDS_STREAM, **values))
        state.saved_cursor = value
        state.cursor_stale = False

    def _check_read_columns(self, name: str, mapping: Mapping, columns: list[str] | None) -> None:
        """A source without a mapping reads the columns its header names (ФИО, Телефон...);
        a column renamed or deleted since the last read would empty its field in every
        record at once. That stops the run like the mass-delete guard, and goes on with
        ``--allow-mass-delete``. The columns read are remembered for the next run."""
        key = f"{READ_COLUMNS_KEY}:{name}"
        with self._tx() as c:
            if not mapping.is_default:
                if setting(c, key) is not None:
                    set_setting(c, key, None)
                return
            if columns is None:  # no file yet, or an empty one
                return
            now = mapping.read_as(columns)
            before = json.loads(setting(c, key) or "{}")
            gone = {field_: column for field_, column in before.items() if field_ not in now}
            if gone and not self.allow_mass_delete:
                listed = ", ".join(f"{column!r} ({field_})" for field_, column in gone.items())
                raise GuardError(
                    f"{name}: the column{'s' if len(gone) > 1 else ''} {listed} read by the last sync "
                    f"{'are' if len(gone) > 1 else 'is'} not in the data any more: every record would lose "
                    f"{'these fields' if len(gone) > 1 else 'this field'}; the mass-delete guard stops the run",
                    hint="give the column its name back (a common header such as Телефон, E-mail, Город works "
                    "too), or write a mapping naming the column; if the column was removed on purpose, rerun "
                    "with --allow-mass-delete",
                )
            if now != before:
                set_setting(c, key, json.dumps(now, ensure_ascii=False, sort_keys=True))

    def _apply_removals(self, state: "_PullState", final: Checkpoint) -> None:
        """After a complete read: records the tool no longer has are removed, behind the guard."""
        name = state.name
        with self._tx() as c:
            active = c.execute(
                select(source_records.c.external_id).where(
                    and_(
                        source_records.c.connector == name,
                        source_records.c.removed_at.is_(None),
                        source_records.c.origin == "read",
                    )
                )
            )
            missing = [row.external_id for row in active if row.external_id not in state.seen]
            total = c.execute(
                select(func.count())
                .select_from(source_records)
                .where(
                    and_(
                        source_records.c.connector == name,
                        source_records.c.removed_at.is_(None),
                        source_records.c.origin == "read",
                    )
                )
            ).scalar()
            if missing and not self.allow_mass_delete and len(missing) > self.threshold * total:
                share = len(missing) / total
                raise GuardError(
                    f"{name}: {len(missing)} of {total} records ({share:.0%}) are gone from the tool; "
                    f"the mass-delete guard stops at {self.threshold:.0%}",
                    hint="check the source (a cleared sheet, a wrong file?); if the removal is intended, "
                    "rerun with --allow-mass-delete",
                )
            now = utcnow()
            if missing:
                affected = self._mark_removed(c, name, missing, now)
                self._recompute(c, sorted(affected), name, now)
            self._save_cursor(c, state, final.cursor)

    # --- push ----------------------------------------------------------------------------
    def _count_pending(self, name: str) -> int:
        with self._tx() as c:
            return c.execute(
                select(func.count())
                .select_from(outbox)
                .where(and_(outbox.c.destination == name, outbox.c.status.in_(("pending", "retry"))))
            ).scalar()

    def _push(self, name: str) -> None:
        connector = self.connector(name)
        counts = self.report.counts_for(name)
        size = connector.write_batch_size
        with self._tx() as c:
            pending = c.execute(
                select(
                    outbox.c.contact_id, outbox.c.op, outbox.c.payload, outbox.c.payload_hash, outbox.c.sent_hash,
                    outbox.c.attempts,
                )
                .where(and_(outbox.c.destination == name, outbox.c.status.in_(("pending", "retry"))))
                .order_by(outbox.c.contact_id)
            ).all()
            #: every record of the contact there (two addresses of a person, two contacts merged)
            links: dict[int, list[str]] = {}
            #: a tool whose cells hold lists, that hub reads too: the values hub read from the
            #: first of them, and the columns of the lists' main values
            held: dict[int, dict[str, Any]] = {}
            mapping = self.config.mappings[name]
            listed = ({plural: column for single, plural in (("phone", "phones"), ("email", "emails"))
                       if (column := mapping.column_of(single)) is not None}
                      if self.config.connectors[name].reads and type(connector).multi_value_cells else {})
            wanted = (source_records.c.origin, source_records.c.record_values) if listed else ()
            for chunk in _chunks([row.contact_id for row in pending]):
                for row in c.execute(
                    select(source_records.c.contact_id, source_records.c.external_id, *wanted)
                    .where(and_(source_records.c.connector == name, source_records.c.contact_id.in_(chunk)))
                    .order_by(source_records.c.external_id)
                ):
                    links.setdefault(row.contact_id, []).append(row.external_id)
                    if listed and row.origin == "read" and row.record_values and row.contact_id not in held:
                        held[row.contact_id] = json.loads(row.record_values)
        if not pending:
            return
        step = size or len(pending)
        for start in range(0, len(pending), step):
            if start:
                self._check_stop()
            chunk = pending[start : start + step]
            items = []
            for row in chunk:
                values = json.loads(row.payload) if row.payload else {}
                if row.contact_id in held:
                    _keep_listed(values, held[row.contact_id], listed)
                items.append(OutboundItem(
                    contact_id=row.contact_id,
                    op=row.op,
                    values=values,
                    external_id=(links.get(row.contact_id) or [None])[0],
                    consent=values.pop(consent.PAYLOAD_KEY, None),
                    segment_names=tuple(values.pop(SEGMENT_NAMES_KEY, None) or ()),
                ))
            waiting = self._over_messaged(name, items)
            if waiting:  # sent too many messages lately: they stay queued for a later run
                chunk = [row for row in chunk if row.contact_id not in waiting]
                items = [item for item in items if item.contact_id not in waiting]
            items = [item for item in items if item.op == "upsert" or item.external_id is not None]
            # ids the connector gives new contacts are linked first: should the run die
            # between the write and the bookkeeping below, the rows are known on the next read
            planned: dict[str, int] = {}
            for item in items:
                if item.op == "upsert" and item.external_id is None:
                    planned_id = connector.new_external_id(item)
                    if planned_id:
                        planned.setdefault(planned_id, item.contact_id)
            if planned:
                with self._tx() as c:
                    self._link(c, name, planned)  # leaves in ``planned`` the links it added
            planned_of = {contact_id: key for key, contact_id in planned.items()}
            with _connector_faults(name):
                results = connector.write(items) if items else []
            by_contact = {result.contact_id: result for result in results}
            self._delete_other_records(connector, name, items, links, by_contact)
            self._opt_out_other_records(connector, name, items, links, by_contact)
            now = utcnow()
            outcome: list[dict[str, Any]] = []
            new_links: dict[str, int] = {}
            unlinked: list[int] = []
            unplanned: list[str] = []  # linked before a write that was rejected: no such record
            conflicts: list[dict[str, Any]] = []
            for row in chunk:
                result = by_contact.get(row.contact_id)
                for column, (ours, theirs) in ((result.conflicts or {}) if result else {}).items():
                    field_ = mapping.field_of(column) or column
                    conflicts.append(_change(row.contact_id, field_, ours, theirs, name, result.external_id,
                                             "conflict", now))
                values = {"status": "sent", "sent_hash": row.payload_hash, "attempts": row.attempts, "last_error": None}
                if result is None and row.op == "delete":
                    values["sent_hash"] = None  # it was never in the tool
                elif result is None or result.status == "retriable":
                    error = "the connector returned no result for this item" if result is None else result.error
                    values.update(status="retry", sent_hash=row.sent_hash, attempts=row.attempts + 1,
                                  last_error=redact(error or ""))
                    counts.retry += 1
                elif result.status == "ok":
                    counts.sent += 1
                    if row.op == "delete":
                        unlinked.append(row.contact_id)
                    elif result.external_id:
                        new_links.setdefault(result.external_id, row.contact_id)
                else:
                    values.update(status="rejected", sent_hash=row.sent_hash, attempts=row.attempts + 1,
                                  last_error=redact(result.error or "rejected"))
                    counts.rejected += 1
                    if row.contact_id in planned_of:
                        unplanned.append(planned_of[row.contact_id])
                outcome.append({"destination": name, "contact_id": row.contact_id, "updated_at": now, **values})
            with self._tx() as c:
                bulk_update(c, outbox, ("destination", "contact_id"), outcome)
                self._log(c, conflicts)
                # links hub made: of contacts deleted there, and made before a write that was rejected
                for column, values_ in ((source_records.c.contact_id, unlinked),
                                        (source_records.c.external_id, unplanned)):
                    for ids in _chunks(values_):
                        c.execute(delete(source_records).where(and_(
                            source_records.c.connector == name, column.in_(ids), source_records.c.origin == "write")))
                self._link(c, name, new_links)
            if self.progress:
                self.progress(name, counts.sent)

    @staticmethod
    def _delete_other_records(connector: Connector, name: str, items: list[OutboundItem],
                              links: dict[int, list[str]], by_contact: dict[int, WriteResult]) -> None:
        """A delete reaches every record the contact has in the tool, not only the first:
        one call per further record, each only after the one before it succeeded. A
        contact's result is its first failure, or the last success; a delete sent again
        after a failure finds the records already deleted gone, which the tools accept."""
        for extra in itertools.count(1):
            more = [OutboundItem(contact_id=item.contact_id, op="delete", values={},
                                 external_id=links[item.contact_id][extra])
                    for item in items
                    if item.op == "delete" and len(links.get(item.contact_id) or ()) > extra
                    and getattr(by_contact.get(item.contact_id), "status", None) == "ok"]
            if not more:
                return
            with _connector_faults(name):
                for result in connector.write(more):
                    by_contact[result.contact_id] = result

    def _opt_out_other_records(self, connector: Connector, name: str, items: list[OutboundItem],
                               links: dict[int, list[str]], by_contact: dict[int, WriteResult]) -> None:
        """An opt-out reaches every record the contact has in an e-mail tool, not only the
        one at its current address: the tool keeps a member per address (an address
        changed, two contacts merged), and the others would go on getting campaigns.

        Once the contact's own item succeeded, each further record the tool still holds
        (as hub last read it) whose address is not the item's gets an item of its own:
        that address alone, the record's id, the same consent, ``consent_only``. One call
        per further record of a contact, each only after the one before it succeeded; a
        failure is the contact's result, so the whole is sent again on the next run. Only
        a withdrawal (``consent.WITHDRAWN``) travels: a bounce is of one address."""
        if connector.consent_channel != "email":
            return
        column = self.config.mappings[name].column_of("email")
        wanted = {item.contact_id: item for item in items
                  if item.op == "upsert" and item.consent in consent.WITHDRAWN
                  and len(links.get(item.contact_id) or ()) > 1
                  and getattr(by_contact.get(item.contact_id), "status", None) == "ok"}
        if column is None or not wanted:
            return
        others: dict[int, list[tuple[str, str]]] = {}
        seen = {contact_id: {str(item.values.get(column) or "").strip().casefold()}
                for contact_id, item in wanted.items()}
        with self._tx() as c:
            for chunk in _chunks(sorted(wanted)):
                for row in c.execute(
                    select(source_records.c.contact_id, source_records.c.external_id, source_records.c.record_values)
                    .where(and_(source_records.c.connector == name, source_records.c.contact_id.in_(chunk),
                                source_records.c.removed_at.is_(None)))
                    .order_by(source_records.c.external_id)
                ):
                    address = str(json.loads(row.record_values or "{}").get("email") or "").strip()
                    if address and address.casefold() not in seen[row.contact_id]:
                        seen[row.contact_id].add(address.casefold())
                        others.setdefault(row.contact_id, []).append((row.external_id, address))
        for extra in itertools.count():
            more = [OutboundItem(contact_id=contact_id, op="upsert", values={column: records[extra][1]},
                                 external_id=records[extra][0], consent=wanted[contact_id].consent, consent_only=True)
                    for contact_id, records in others.items()
                    if len(records) > extra and by_contact[contact_id].status == "ok"]
            if not more:
                return
            with _connector_faults(name):
                results = {result.contact_id: result for result in connector.write(more)}
            for item in more:  # a failure is the contact's result; its own (with its new id) stays otherwise
                result = results.get(item.contact_id)
                if result is None:
                    by_contact[item.contact_id] = WriteResult(
                        item.contact_id, "retriable", error="the connector returned no result for this item")
                elif result.status != "ok":
                    by_contact[item.contact_id] = result

    def _over_messaged(self, name: str, items: list[OutboundItem]) -> set[int]:
        """Contacts sent more messages in 30 days than the destination's ``max_messages_30d``.
        An opt-out is never held back."""
        limit = getattr(self.config.options[name], "max_messages_30d", None)
        if limit is None:
            return set()
        ids = [item.contact_id for item in items if item.op == "upsert" and item.consent not in consent.OPTED_OUT]
        with self._tx() as c:
            return history.over_limit(c, ids, limit, utcnow())

    def _link(self, c: Connection, name: str, links: dict[str, int]) -> None:
        """Remember the ids a destination gave its new contacts (external id -> contact)."""
        for row in _records_of(c, name, list(links)):
            links.pop(row.external_id, None)
        bulk_insert(
            c,
            source_records,
            [
                {"connector": name, "external_id": external_id, "contact_id": contact_id, "origin": "write",
                 "first_run": self.report.run_id, "changed_run": self.report.run_id}
                for external_id, contact_id in links.items()
            ],
        )


@dataclass
class _Screened:
    """A batch sorted out by ``Sync._screen``."""

    quarantine: list[tuple[RawRecord, str]] = field(default_factory=list)
    candidates: list[tuple[RawRecord, str]] = field(default_factory=list)
    #: Candidates the store knows already (they link to a contact).
    linked: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: History-only records: events for records of these ids.
    history: list[RawRecord] = field(default_factory=list)


@dataclass
class _PullState:
    name: str
    mapping: Mapping
    fingerprint: str
    initial: bool
    has_open_quarantine: bool
    saved_cursor: str | None
    #: The saved cursor row must be rewritten even if its value stays (new fingerprint).
    cursor_stale: bool = False
    seen: set[str] = field(default_factory=set)


def _from_connector(name: str, items: Iterable[Any]) -> Iterator[Any]:
    """The items of a connector's read, under :func:`_connector_faults`."""
    iterator = iter(items)
    while True:
        with _connector_faults(name):
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


@contextlib.contextmanager
def _connector_faults(name: str) -> Iterator[None]:
    """Around a call into a connector: an exception that is none of hub's own (a bug in
    the connector, an answer it does not understand) fails this connector's step with the
    exception named, as its own errors do; the other connectors go on."""
    try:
        yield
    except HubError:
        raise
    except Exception as error:  # noqa: BLE001 - the connector's fault: it fails this step only
        log.debug("connector %s failed", name, exc_info=error)
        raise FatalError(
            f"unexpected error in the connector: {type(error).__name__}: {str(error)[:300]}",
            hint="a fault of the connector (a bug, or an answer it does not understand): "
                 "`hub -v sync` shows where; please report it",
        ) from error


def _records_of(c: Connection, connector: str, external_ids: Sequence[str], *columns: Any) -> Iterator[Any]:
    """The stored records of ``connector`` with these ids: ``external_id`` and ``columns``."""
    for chunk in _chunks(external_ids):
        yield from c.execute(
            select(source_records.c.external_id, *columns).where(
                and_(source_records.c.connector == connector, among(c, source_records.c.external_id, chunk))
            )
        )


def _change(
    contact_id: int, field_: str, old: Any, new: Any, connector: str | None, external_id: str | None,
    reason: str, at: dt.datetime,
) -> dict[str, Any]:
    """One change-log row; values are encoded (and secrets masked) here."""
    return {
        "contact_id": contact_id, "field": field_, "old_value": encode_value(old), "new_value": encode_value(new),
        "connector": connector, "external_id": external_id, "reason": reason, "at": at,
    }


def record_reviews(c: Connection, pairs: dict[tuple[int, int], Any], run_id: int, now: dt.datetime) -> None:
    """Insert or refresh pending review pairs (smaller contact id first); decisions are kept."""
    keys = list(pairs)
    existing: dict[tuple[int, int], str] = {}
    for chunk in _chunks(sorted({a for a, _ in keys})):
        for row in c.execute(
            select(match_reviews.c.contact_a, match_reviews.c.contact_b, match_reviews.c.status).where(
                match_reviews.c.contact_a.in_(chunk)
            )
        ):
            existing[(row.contact_a, row.contact_b)] = row.status
    fresh, refreshed = [], []
    for pair, comparison in pairs.items():
        row = {
            "contact_a": pair[0], "contact_b": pair[1], "probability": round(comparison.probability, 4),
            "evidence": json.dumps([e.as_dict() for e in comparison.evidence], ensure_ascii=False),
            "run_id": run_id,
        }
        if pair not in existing:
            fresh.append({**row, "status": "pending", "created_at": now, "decided_at": None, "decided_by": None})
        elif existing[pair] == "pending":
            refreshed.append(row)
    bulk_insert(c, match_reviews, fresh)
    bulk_update(c, match_reviews, ("contact_a", "contact_b"), refreshed)


def remap_reviews(c: Connection, survivor: int, losers: list[int]) -> list[tuple[int, dict[str, Any]]]:
    """Move review pairs and decisions of merged-away contacts to the survivor.

    Returns, per loser, each of its pairs as it was (the row's values) and whether the
    survivor got it (``added``), so ``hub split`` can give the pairs back."""
    rows = c.execute(
        select(match_reviews).where(
            or_(match_reviews.c.contact_a.in_(losers), match_reviews.c.contact_b.in_(losers))
        )
    ).all()
    if not rows:
        return []
    c.execute(delete(match_reviews).where(match_reviews.c.id.in_([row.id for row in rows])))
    gone = set(losers)
    kept: dict[tuple[int, int], Any] = {}
    for row in rows:
        a = survivor if row.contact_a in gone else row.contact_a
        b = survivor if row.contact_b in gone else row.contact_b
        if a == b:
            continue
        pair = (min(a, b), max(a, b))
        if pair in kept and kept[pair].status != "pending":
            continue
        kept[pair] = row
    added: set[int] = set()  # ids of the rows the survivor got

    def moved() -> list[tuple[int, dict[str, Any]]]:
        return [(loser, {**{k: getattr(row, k) for k in row._fields if k != "id"}, "added": row.id in added})
                for row in rows for loser in sorted(gone.intersection((row.contact_a, row.contact_b)))]

    if not kept:
        return moved()
    present = {
        (row.contact_a, row.contact_b): row.status
        for row in c.execute(
            select(match_reviews.c.contact_a, match_reviews.c.contact_b, match_reviews.c.status).where(
                or_(match_reviews.c.contact_a == survivor, match_reviews.c.contact_b == survivor)
            )
        )
    }
    for pair, row in kept.items():
        if pair in present:
            if present[pair] == "pending" and row.status != "pending":
                c.execute(delete(match_reviews).where(and_(match_reviews.c.contact_a == pair[0], match_reviews.c.contact_b == pair[1])))
            else:
                continue
        values = {k: getattr(row, k) for k in row._fields if k != "id"}
        values.update(contact_a=pair[0], contact_b=pair[1])
        c.execute(insert(match_reviews).values(**values))
        added.add(row.id)
    return moved()


def _has_substance(values: dict[str, Any]) -> bool:
    return any(values.get(f) for f in ("email", "phone", "full_name", "first_name", "last_name"))


def _identifiers_of(records: Sequence[SourceValues]) -> set[tuple[str, str]]:
    """What a contact is found by: the e-mails, phones and blocking keys of all its records
    (every spelling of the name it was seen with blocks, not only the one that survived)."""
    found: set[tuple[str, str]] = set()
    for record in records:
        found |= keys_of(record.values)
    return found


_ORDER = {name: i for i, name in enumerate(CONTACT_FIELDS + LIST_FIELDS)}


def _field_order(name: str) -> tuple[int, str]:
    return (_ORDER.get(name, len(_ORDER)), name)


def _contact_values(row: Any) -> dict[str, Any]:
    values = {f: getattr(row, f) for f in CONTACT_FIELDS if getattr(row, f) is not None}
    if row.attributes:
        values.update(json.loads(row.attributes))
    return values


def _contact_row(contact_id: int, values: dict[str, Any], run_id: int, now: dt.datetime, *, deleted: bool) -> dict[str, Any]:
    attributes = {k: v for k, v in values.items() if k not in CONTACT_FIELDS}
    return {
        "id": contact_id,
        **{f: (str(values[f]) if values.get(f) is not None else None) for f in CONTACT_FIELDS},
        "attributes": json.dumps(attributes, ensure_ascii=False, sort_keys=True, default=str) if attributes else None,
        "updated_run": run_id,
        "updated_at": now,
        "deleted_at": now if deleted else None,
    }


__all__ = ["RunReport", "Sync"]
