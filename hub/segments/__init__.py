"""Categories and segments of contacts, kept current by every sync (docs/segments.md).

``refresh`` recomputes, set by set, the contacts the store changed since the last
pass and those whose ``next_at`` has passed; a full pass (the first, a changed
config, ``categories.refresh`` elapsed, ``hub segments recompute``) also recomputes
the base's statistics (quantiles, ABC thresholds). Every change of a category or a
segment membership goes to the change log with the run's id.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    null,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from hub.errors import HubError
from hub.model import CONTACT_FIELDS, OUTBOUND_FIELDS, PURCHASE_EVENT
from hub.redact import redact
from hub.segments.config import CategoriesConfig, SegmentConfig
from hub.segments.rules import (
    CATEGORY_COLUMNS,
    DAY,
    Context,
    Facts,
    Rules,
    Stats,
    abc_thresholds,
    from_days,
    quantile_edges,
    span_days,
    to_days,
)
from hub.store import among, bulk_insert, bulk_update, set_setting, setting
from hub.store.schema import (
    categories,
    changes,
    consents,
    contacts,
    events,
    segment_members,
)

#: Keys ``outbound_values`` gives destinations: ``hub.model.OUTBOUND_FIELDS``, mapping targets.
#: ``changes.reason`` of category and segment changes.
REASON = "category"
STATE_KEY = "segments:state"
#: A pass over more than this share of the base is made a full pass.
FULL_SHARE = 0.2
#: Contacts computed together, and written in one transaction by a pass of many transactions.
_CHUNK = 2000
#: Set in the state while a full pass of many transactions is under way: a pass after it
#: was interrupted is a full one too (its statistics for every contact).
_FULL_PENDING = "full_pending"

#: ``begin(write=True)`` of ``Store.transactions``: a transaction of the pass's connection;
#: ``write=False``: one that only reads, taking no lock.
Begin = Callable[..., contextlib.AbstractContextManager[Connection]]


@dataclass
class Refreshed:
    """What a pass did."""

    full: bool = False
    #: Contacts computed.
    contacts: int = 0
    #: Contacts whose categories or segments changed (to queue for destinations).
    changed: set[int] = field(default_factory=set)
    #: Change-log entries written.
    logged: int = 0

    def add(self, part: Refreshed) -> None:
        self.contacts += part.contacts
        self.changed |= part.changed
        self.logged += part.logged


#: Called in each write transaction of a pass with what the transaction wrote (a
#: ``Refreshed`` of its chunk): to queue the contacts that changed with their change.
OnChunk = Callable[[Connection, Refreshed], None]


def fingerprint(categories_config: CategoriesConfig, segments: dict[str, SegmentConfig]) -> str:
    data = {"categories": categories_config.model_dump(mode="json"),
            "segments": {name: s.model_dump(mode="json") for name, s in segments.items()}}
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _days(c: Connection, column: Any) -> Any:
    """A timestamp column as days since the epoch (a float), computed by the database."""
    if c.dialect.name == "postgresql":
        return cast(func.extract("epoch", column), Float) / DAY
    return func.julianday(column) - 2440587.5


def _load_state(c: Connection) -> dict[str, Any]:
    value = setting(c, STATE_KEY)
    try:
        return json.loads(value) if value else {}
    except ValueError:
        return {}


def _save_state(c: Connection, state: dict[str, Any]) -> None:
    set_setting(c, STATE_KEY, json.dumps(state, sort_keys=True))


def _within(c: Connection) -> Begin:
    """``begin`` of a pass made in the caller's transaction on ``c``."""
    return lambda write=True: contextlib.nullcontext(c)


def refresh(transactions: Connection | Begin, config: Any, run_id: int, now: dt.datetime, *, full: bool = False,
            on_chunk: OnChunk | None = None) -> Refreshed:
    """Recompute categories and segments (``config``: a ``LoadedConfig`` or a ``HubConfig``).

    ``transactions``: a connection in a transaction, which the whole pass is made in; or
    ``begin`` of ``Store.transactions``: then each chunk of contacts is read and computed
    in a transaction that only reads, and what differs is written in a short transaction
    of its own, so that other writers (``hub serve`` storing a form) never wait for the
    whole pass. ``on_chunk(c, part)`` is called in each write transaction with what it
    wrote.

    Only holders of the store's sync lock change what a pass reads and writes (contacts,
    events, consents, categories), so a chunk computed before its write transaction is
    still current in it. A pass interrupted between its transactions is done again by
    the next: its state (the watermarks, the statistics) is saved with its last chunk; a
    contact done again has the row and memberships it would be given, so nothing is
    written or logged twice; and a full pass marks the state at its start, so that the
    pass after it was interrupted is a full one too."""
    begin = _within(transactions) if isinstance(transactions, Connection) else transactions
    model = getattr(config, "model", config)
    rules = Rules(model.categories, model.segments)
    print_ = fingerprint(model.categories, model.segments)
    source: Table | None = None
    try:
        with begin(False) as c:
            state = _load_state(c)
            full_at = dt.datetime.fromisoformat(state["full_at"]) if state.get("full_at") else None
            full = (full or not state or state.get("fingerprint") != print_ or full_at is None
                    or now - full_at >= model.categories.refresh or bool(state.get(_FULL_PENDING)))
            # everything committed up to here is covered by this pass
            top_change = c.execute(select(func.max(changes.c.id))).scalar() or 0
            top_event = c.execute(select(func.max(events.c.id))).scalar() or 0
            ids: list[int] = []
            if not full:
                touched: set[int] = set()
                touched.update(c.execute(select(changes.c.contact_id).where(and_(
                    changes.c.id > state.get("changes", 0), changes.c.id <= top_change,
                    changes.c.reason != REASON))).scalars())
                touched.update(c.execute(select(events.c.contact_id).where(and_(
                    events.c.id > state.get("events", 0), events.c.id <= top_event))).scalars())
                touched.update(c.execute(select(categories.c.contact_id).where(categories.c.next_at <= now))
                               .scalars())
                if len(touched) > 1000:  # most of the base changed: one pass over all is cheaper
                    live = c.execute(select(func.count()).select_from(contacts)
                                     .where(contacts.c.deleted_at.is_(None))).scalar() or 0
                    full = len(touched) > FULL_SHARE * live
                if not full:
                    ids = sorted(touched)
            if full:
                # one grouped pass over every event the rules read, kept for the pass (on the
                # connection, across its transactions): the base's statistics and each
                # chunk's facts are read from it instead of from the events
                source = _aggregate(c, rules, model.categories)
                stats = compute_stats(c, model.categories, source)
                ids = _live_ids(c)
            else:
                stats = Stats.from_dict(state.get("stats") or {})
        result = Refreshed(full=full)
        done = {"fingerprint": print_, "full_at": (now if full else full_at or now).isoformat(),
                "stats": stats.as_dict(), "changes": top_change, "events": top_event}
        if full:
            with begin() as c:
                _save_state(c, {**state, _FULL_PENDING: True})
                _forget_gone(c, rules)
        chunks = [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)] or [[]]
        for number, chunk in enumerate(chunks):
            last = number == len(chunks) - 1
            with begin(False) as c:
                writes = _compute(c, rules, stats, chunk, run_id, now, contiguous=full, source=source)
            part = Refreshed(full=full, contacts=writes.contacts, changed=writes.changed, logged=len(writes.log))
            if writes or last:
                with begin() as c:
                    _write(c, writes)
                    if last:
                        _save_state(c, done)
                    if on_chunk is not None:
                        on_chunk(c, part)
            result.add(part)
    finally:
        if source is not None:
            # interrupted, the table goes with the connection or with the next pass's
            with contextlib.suppress(SQLAlchemyError, HubError), begin(False) as c:
                source.drop(c)
    return result


def _forget_gone(c: Connection, rules: Rules) -> None:
    """A full pass's start: no categories or memberships of deleted contacts, none of segments
    no longer defined."""
    gone = select(contacts.c.id).where(contacts.c.deleted_at.is_not(None)).scalar_subquery()
    c.execute(delete(categories).where(categories.c.contact_id.in_(gone)))
    c.execute(delete(segment_members).where(segment_members.c.contact_id.in_(gone)))
    known = set(rules.segment_names)
    c.execute(delete(segment_members).where(segment_members.c.segment.not_in(known)) if known
              else delete(segment_members))


def _live_ids(c: Connection) -> list[int]:
    """Ids of live contacts, in order (read up front: the pass writes meanwhile)."""
    return list(c.execute(select(contacts.c.id).where(contacts.c.deleted_at.is_(None)).order_by(contacts.c.id))
                .scalars())


def _amount(categories_config: CategoriesConfig) -> Any:
    """The amount of a purchase in the base currency (``NULL`` for a currency without a rate)."""
    base = categories_config.currency
    whens = [(events.c.currency.is_(None), events.c.amount), (events.c.currency == base, events.c.amount)]
    whens += [(events.c.currency == code, events.c.amount * rate) for code, rate in categories_config.rates.items()]
    return case(*whens, else_=null())


def _aggregate(c: Connection, rules: Rules, categories_config: CategoriesConfig) -> Table:
    """A temporary table of every contact's events of the types the rules read, per type:
    count, revenue (purchases), first and last time in days; indexed by contact."""
    table = Table(
        "segments_pass", MetaData(),
        Column("contact_id", Integer, nullable=False), Column("type", String(32), nullable=False),
        Column("n", Integer, nullable=False), Column("revenue", Float), Column("first", Float),
        Column("last", Float), prefixes=["TEMPORARY"],
    )
    table.drop(c, checkfirst=True)
    table.create(c)
    c.execute(insert(table).from_select(
        ["contact_id", "type", "n", "revenue", "first", "last"],
        select(events.c.contact_id, events.c.type, func.count(), func.sum(_amount(categories_config)),
               _days(c, func.min(events.c.at)), _days(c, func.max(events.c.at)))
        .where(events.c.type.in_(sorted(rules.event_types)))
        .group_by(events.c.contact_id, events.c.type)))
    c.exec_driver_sql("CREATE INDEX segments_pass_contact ON segments_pass (contact_id)")
    return table


def compute_stats(c: Connection, categories_config: CategoriesConfig, source: Table | None = None) -> Stats:
    """Quantile edges and ABC thresholds over every live buyer (one pass over purchases,
    or over ``source``, the table ``_aggregate`` made)."""
    if source is not None:
        per_contact = (
            select(source.c.contact_id, source.c.n.label("orders"),
                   func.coalesce(source.c.revenue, 0.0).label("revenue"))
            .where(source.c.type == PURCHASE_EVENT)
            .subquery()
        )
    else:
        per_contact = (
            select(events.c.contact_id, func.count().label("orders"),
                   func.coalesce(func.sum(_amount(categories_config)), 0.0).label("revenue"))
            .where(events.c.type == PURCHASE_EVENT)
            .group_by(events.c.contact_id)
            .subquery()
        )
    rows = c.execute(
        select(per_contact.c.orders, per_contact.c.revenue)
        .join_from(per_contact, contacts, contacts.c.id == per_contact.c.contact_id)
        .where(contacts.c.deleted_at.is_(None))
    )
    orders: list[float] = []
    revenues: list[float] = []
    for row in rows:
        orders.append(float(row.orders))
        revenues.append(float(row.revenue or 0.0))
    stats = Stats()
    rfm = categories_config.rfm
    if rfm.frequency == "quantiles":
        stats.frequency = quantile_edges(orders)
    if rfm.monetary == "quantiles":
        stats.monetary = quantile_edges(revenues)
    stats.abc_a, stats.abc_b = abc_thresholds(revenues, categories_config.abc.a, categories_config.abc.b)
    return stats


def _in(c: Connection, column: Any, chunk: Sequence[int], contiguous: bool) -> Any:
    if contiguous:
        return column.between(chunk[0], chunk[-1])
    return among(c, column, chunk)


def load_facts(c: Connection, rules: Rules, categories_config: CategoriesConfig, chunk: Sequence[int],
               *, contiguous: bool = False, source: Table | None = None) -> dict[int, Facts]:
    """Facts of the live contacts among ``chunk`` (sorted ids), three set queries (events
    read from ``source``, the table ``_aggregate`` made, when given)."""
    wanted = set(chunk)
    fields = sorted(rules.fields & set(CONTACT_FIELDS))
    custom = bool(rules.fields - set(CONTACT_FIELDS))
    facts: dict[int, Facts] = {}
    columns = [contacts.c.id, *(contacts.c[f] for f in fields)] + ([contacts.c.attributes] if custom else [])
    for row in c.execute(select(*columns).where(and_(_in(c, contacts.c.id, chunk, contiguous),
                                                     contacts.c.deleted_at.is_(None)))):
        if row.id not in wanted:
            continue
        values = {f: getattr(row, f) for f in fields if getattr(row, f) is not None}
        if custom and row.attributes:
            attributes = json.loads(row.attributes)
            values.update((k, attributes[k]) for k in rules.fields if k in attributes)
        facts[row.id] = Facts(row.id, fields=values)
    if not facts:
        return facts
    # one pass over the chunk's events: per type its count, first and last time, and for
    # purchases the revenue
    types = sorted(rules.event_types)
    if source is not None:
        query = select(source.c.contact_id, source.c.type, source.c.n, source.c.revenue, source.c["first"],
                       source.c["last"]).where(_in(c, source.c.contact_id, chunk, contiguous))
    else:
        query = (
            select(events.c.contact_id, events.c.type, func.count().label("n"),
                   func.sum(_amount(categories_config)).label("revenue"),
                   _days(c, func.min(events.c.at)).label("first"), _days(c, func.max(events.c.at)).label("last"))
            .where(and_(_in(c, events.c.contact_id, chunk, contiguous), events.c.type.in_(types)))
            .group_by(events.c.contact_id, events.c.type)
        )
    for row in c.execute(query):
        f = facts.get(row.contact_id)
        if f is None:
            continue
        last = float(row.last)
        f.types[row.type] = last
        if row.type == PURCHASE_EVENT:
            f.orders, f.revenue = row.n, float(row.revenue or 0.0)
            f.first_order_at, f.last_order_at = float(row.first), last
    funnel, activity = rules.funnel, rules.activity_types
    for f in facts.values():
        latest: tuple[float, str] | None = None
        for kind, at in f.types.items():
            if kind in activity and (f.last_activity_at is None or at > f.last_activity_at):
                f.last_activity_at = at
            if kind in funnel and (latest is None or (at, kind) > latest):
                latest = (at, kind)
        f.latest_funnel = latest[1] if latest else None
    if rules.consents:
        for row in c.execute(
            select(consents.c.contact_id, consents.c.channel, consents.c.status)
            .where(and_(_in(c, consents.c.contact_id, chunk, contiguous),
                        consents.c.channel.in_(sorted(rules.consents))))
        ):
            f = facts.get(row.contact_id)
            if f is not None:
                f.consents[row.channel] = row.status
    return facts


_TIMES = ("first_order_at", "last_order_at", "last_activity_at", "next_at")
_N_CATEGORIES = len(CATEGORY_COLUMNS)
_NONE: frozenset[str] = frozenset()


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < 1e-6  # about 0.1 s


@dataclass
class _Writes:
    """What differs in a chunk of contacts: the rows to write, with their change-log entries."""

    #: Contacts computed.
    contacts: int = 0
    #: Contacts whose categories or segments changed.
    changed: set[int] = field(default_factory=set)
    #: Contacts no longer live that still have categories or memberships.
    gone: list[int] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    fact_updates: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    joins: list[dict[str, Any]] = field(default_factory=list)
    leaves: list[tuple[int, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.gone or self.inserts or self.updates or self.fact_updates or self.log or self.joins
                    or self.leaves)


def _compute(c: Connection, rules: Rules, stats: Stats, chunk: Sequence[int], run_id: int, now: dt.datetime,
             *, contiguous: bool, source: Table | None = None) -> _Writes:
    """Compute a chunk of contacts (sorted ids) and what differs from the store (reads only)."""
    out = _Writes()
    if not chunk:
        return out
    facts = load_facts(c, rules, rules.config, chunk, contiguous=contiguous, source=source)
    old: dict[int, Any] = {row.contact_id: row for row in c.execute(
        select(categories.c.contact_id, *(categories.c[k] for k in CATEGORY_COLUMNS), categories.c.orders,
               categories.c.revenue, *(_days(c, categories.c[k]).label(k) for k in _TIMES))
        .where(_in(c, categories.c.contact_id, chunk, contiguous)))}
    membership: dict[int, set[str]] = defaultdict(set)
    for row in c.execute(select(segment_members.c.contact_id, segment_members.c.segment)
                         .where(_in(c, segment_members.c.contact_id, chunk, contiguous))):
        membership[row.contact_id].add(row.segment)
    stopped = span_days(rules.config.stage.stopped_after)
    today = to_days(now)
    inserts, updates, fact_updates = out.inserts, out.updates, out.fact_updates
    log, joins, leaves = out.log, out.joins, out.leaves
    out.gone = [cid for cid in chunk if cid not in facts and (cid in old or membership.get(cid))]
    for contact_id, f in facts.items():
        x = Context(now=today, stopped=stopped)
        values = rules.compute(f, stats, x)
        segments_now = rules.members(f, x)
        future = [b for b in x.boundaries if b > today]
        next_at = min(future) if future else None
        revenue = round(f.revenue, 6)
        before = old.get(contact_id)
        had = membership.get(contact_id, _NONE)
        out.contacts += 1
        if before is None:
            differs, facts_differ = True, True
            everything = {k: v for k, v in values.items() if v is not None}
            if segments_now:
                everything["segments"] = sorted(segments_now)
            log.append(_entry(contact_id, "categories", None, everything, now))
        else:
            stored = before[1:_N_CATEGORIES + 1]
            differs = stored != tuple(values.values())
            if differs:
                for name, was in zip(CATEGORY_COLUMNS, stored, strict=True):
                    if was != values[name]:
                        log.append(_entry(contact_id, f"category:{name}", was, values[name], now))
            facts_differ = not (
                before.orders == f.orders and abs(before.revenue - revenue) < 1e-6
                and _same(before.first_order_at, f.first_order_at) and _same(before.last_order_at, f.last_order_at)
                and _same(before.last_activity_at, f.last_activity_at) and _same(before.next_at, next_at))
            if had:
                for name in sorted(had - segments_now):
                    log.append(_entry(contact_id, f"segment:{name}", True, None, now))
        if differs or facts_differ:
            row = {"contact_id": contact_id, "orders": f.orders, "revenue": revenue,
                   "first_order_at": from_days(f.first_order_at), "last_order_at": from_days(f.last_order_at),
                   "last_activity_at": from_days(f.last_activity_at), "next_at": from_days(next_at)}
            if before is None:
                inserts.append({**row, **values, "run_id": run_id, "updated_at": now})
            elif differs:
                updates.append({**row, **values, "run_id": run_id, "updated_at": now})
            else:
                fact_updates.append(row)
            if differs:
                out.changed.add(contact_id)
        if had != segments_now:
            for name in sorted(segments_now - had):
                joins.append({"segment": name, "contact_id": contact_id, "since": now, "run_id": run_id})
                if before is not None:
                    log.append(_entry(contact_id, f"segment:{name}", None, True, now))
            leaves.extend((contact_id, name) for name in had - segments_now)
            out.changed.add(contact_id)
    for entry in log:
        entry["run_id"] = run_id
    return out


def _write(c: Connection, writes: _Writes) -> None:
    """Write what ``_compute`` found to differ, with its change-log entries."""
    if writes.gone:
        c.execute(delete(categories).where(categories.c.contact_id.in_(writes.gone)))
        c.execute(delete(segment_members).where(segment_members.c.contact_id.in_(writes.gone)))
    bulk_insert(c, categories, writes.inserts)
    bulk_update(c, categories, ("contact_id",), writes.updates)
    bulk_update(c, categories, ("contact_id",), writes.fact_updates)
    for contact_id, name in writes.leaves:
        c.execute(delete(segment_members).where(and_(segment_members.c.contact_id == contact_id,
                                                     segment_members.c.segment == name)))
    bulk_insert(c, segment_members, writes.joins)
    bulk_insert(c, changes, writes.log)


def _encode(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return redact(value)
    return redact(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def _entry(contact_id: int, field_: str, old: Any, new: Any, now: dt.datetime) -> dict[str, Any]:
    return {"contact_id": contact_id, "field": field_, "old_value": _encode(old), "new_value": _encode(new),
            "connector": None, "external_id": None, "reason": REASON, "at": now}


# --- reading ------------------------------------------------------------------------------

def categories_of(c: Connection, contact_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Category values (empty ones left out) and ``segments`` of each contact that has them."""
    out: dict[int, dict[str, Any]] = {}
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for row in c.execute(select(categories).where(among(c, categories.c.contact_id, chunk))):
            out[row.contact_id] = {k: getattr(row, k) for k in CATEGORY_COLUMNS if getattr(row, k) is not None}
        for row in c.execute(select(segment_members.c.contact_id, segment_members.c.segment)
                             .where(among(c, segment_members.c.contact_id, chunk))
                             .order_by(segment_members.c.segment)):
            out.setdefault(row.contact_id, {}).setdefault("segments", []).append(row.segment)
    return out


def outbound_values(c: Connection, contact_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """``OUTBOUND_FIELDS`` of each contact, every key present (``None``/``[]`` when empty)."""
    found = categories_of(c, contact_ids)
    out: dict[int, dict[str, Any]] = {}
    for contact_id in contact_ids:
        values = found.get(contact_id, {})
        out[contact_id] = {k: values.get(k) for k in OUTBOUND_FIELDS if k != "segments"}
        out[contact_id]["segments"] = values.get("segments", [])
    return out


def counts(c: Connection) -> dict[str, dict[str, int]]:
    """How many live contacts hold each value of each category, and each segment's size."""
    out: dict[str, dict[str, int]] = {}
    for name in CATEGORY_COLUMNS:
        column = categories.c[name]
        out[name] = {str(value): n for value, n in c.execute(
            select(column, func.count()).where(column.is_not(None)).group_by(column).order_by(column))}
    out["segments"] = {segment: n for segment, n in c.execute(
        select(segment_members.c.segment, func.count()).group_by(segment_members.c.segment)
        .order_by(segment_members.c.segment))}
    return out


def members(c: Connection, segment: str, limit: int | None = None) -> list[int]:
    query = (select(segment_members.c.contact_id).where(segment_members.c.segment == segment)
             .order_by(segment_members.c.contact_id))
    if limit is not None:
        query = query.limit(limit)
    return list(c.execute(query).scalars())


def in_category(c: Connection, name: str, value: str, limit: int | None = None) -> list[int]:
    """Contacts whose category ``name`` is ``value``."""
    column = categories.c[name]
    query = select(categories.c.contact_id).where(column == (int(value) if name in ("rfm_r", "rfm_f", "rfm_m")
                                                            else value)).order_by(categories.c.contact_id)
    if limit is not None:
        query = query.limit(limit)
    return list(c.execute(query).scalars())


def explain(c: Connection, config: Any, contact_id: int, now: dt.datetime) -> dict[str, Any]:
    """Why a contact has its categories and segments: its facts and every test, as of ``now``."""
    model = getattr(config, "model", config)
    rules = Rules(model.categories, model.segments)
    state = _load_state(c)
    stats = Stats.from_dict(state["stats"]) if state.get("stats") else compute_stats(c, model.categories)
    facts = load_facts(c, rules, model.categories, [contact_id]).get(contact_id)
    if facts is None:
        return {"contact_id": contact_id, "live": False}
    x = Context(now=to_days(now), stopped=span_days(model.categories.stage.stopped_after), trace=[])
    values = rules.compute(facts, stats, x)
    stage_trace = x.trace or []
    x.trace = []
    segments_now = rules.members(facts, x)
    stored = categories_of(c, [contact_id]).get(contact_id, {})
    return {
        "contact_id": contact_id,
        "live": True,
        "now": now.isoformat(),
        "facts": {
            "orders": facts.orders, "revenue": round(facts.revenue, 2), "currency": model.categories.currency,
            "first_order_at": _iso(facts.first_order_at), "last_order_at": _iso(facts.last_order_at),
            "last_activity_at": _iso(facts.last_activity_at), "latest_funnel_event": facts.latest_funnel,
            "events": {k: _iso(v) for k, v in sorted(facts.types.items())},
            "consents": facts.consents,
        },
        "stats": stats.as_dict(),
        "categories": {k: v for k, v in values.items() if v is not None},
        "segments": sorted(segments_now),
        "stored": stored,
        "stage_trace": [_step(step) for step in stage_trace],
        "segment_trace": [_step(step) for step in x.trace],
    }


def _iso(value: float | None) -> str | None:
    moment = from_days(value)
    return moment.isoformat(timespec="seconds") if moment is not None else None


def _step(step: tuple[str, Any, bool]) -> dict[str, Any]:
    label, actual, ok = step
    if isinstance(actual, dt.datetime):
        actual = actual.isoformat()
    elif isinstance(actual, list):
        actual = ", ".join(map(str, actual))
    return {"test": label, "value": actual, "ok": ok}


__all__ = ["OUTBOUND_FIELDS", "Refreshed", "categories_of", "counts", "explain", "in_category", "members",
           "outbound_values", "refresh"]
