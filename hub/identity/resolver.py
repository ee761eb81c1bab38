"""Which contact each record of a batch belongs to.

For a batch of changed records the resolver

1. looks up candidate contacts in the store through the blocking keys (identifiers
   table: phone, e-mail, distinctive e-mail local part, surname + first-name key),
   skipping keys so common that they say nothing (a shared office phone);
2. compares each record with the records of those contacts and with the other
   records of the batch that share a key (:mod:`hub.identity.compare`);
3. joins the pairs from the most to the least likely, down to ``merge_at``, unless a
   veto stands between any record of one side and any of the other, or someone
   decided in ``hub review`` / ``hub split`` that the two contacts are different
   people. Joining a record to two existing contacts merges them.
4. returns, besides the clusters, the pairs between ``review_at`` and ``merge_at``
   that ended up apart: candidates for ``hub review``; and the full names of the
   pairs that would join on the name alone. Those are not joined here: whether a name
   is one person's depends on who else holds it, which a batch cannot know (a namesake
   may come in a later batch or source). :meth:`ProbabilisticResolver.settle` decides
   them once a sync has read all its sources.

The order in which pairs are joined depends only on their scores and on the
records' content, not on the order the records arrived in.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from hub.identity.compare import (
    PRIOR,
    UNIQUE_NAME,
    W_ATTRIBUTE_ID_MAX,
    W_ATTRIBUTE_MAX,
    Comparison,
    Evidence,
    Profile,
    Side,
    across,
    best,
    blocking_keys,
    clear_profiles,
    closest,
    id_like,
    profile,
    vetoed,
)
from hub.names import latin_key
from hub.store import among, live_records
from hub.store.schema import identifiers, match_reviews, source_records

#: A key shared by more contacts than this is too common to block on: a shared office
#: phone; a surname or birthday held by many says nothing about who is who.
BLOCK_CAP = 40
#: Keys a record with a phone or an e-mail address does not need to be found by.
_WEAK = frozenset({"surname", "birthday"})
_CAPS = {"name": 12, "surname": 8, "birthday": 8, "local": 8, "attribute": 8}
_COUNTED = frozenset({"name", "surname", "birthday", "local", "attribute"})
_CHUNK = 500
#: Stored records' profiles kept between batches (about 1 KB each with their keys).
STORED_PROFILES = 65_536

Node = tuple[str, int]  # ("r", record key) or ("c", contact id)


@dataclass
class Candidate:
    """A record about to be placed."""

    key: int
    linked_contact: int | None
    values: dict[str, Any]
    #: a stable, content-derived order for ties (e.g. "connector\0external id")
    sort_key: str = ""
    #: ``values`` as the store will keep them (JSON), when known: the record's profile is
    #: then kept for the batches that meet it as a stored record (:func:`record_profiles`)
    encoded: str | None = None
    #: ``profile(values)``, when made already (by the worker that prepared the record)
    profile: Profile | None = None


@dataclass
class Cluster:
    """Records that are one person, and the existing contacts they join (oldest first)."""

    record_keys: list[int]
    contacts: list[int]


@dataclass
class ReviewPair:
    """Two sides that may be one person: a record (``"r"``) or a contact (``"c"``) each."""

    a: Node
    b: Node
    comparison: Comparison


@dataclass
class Resolution:
    clusters: list[Cluster]
    reviews: list[ReviewPair] = field(default_factory=list)
    #: full-name keys of pairs that would join on the name alone (for :meth:`settle`)
    names: set[str] = field(default_factory=set)
    #: each candidate's profile, by its key (for :func:`keys_of`)
    profiles: dict[int, Profile] = field(default_factory=dict)


@dataclass
class Settlement:
    """What :meth:`ProbabilisticResolver.settle` decided."""

    #: contacts that are one person: (the name key that joined them, contact ids, oldest first)
    groups: list[tuple[str, list[int]]]
    #: pairs of contacts (smaller id first) a name alone cannot decide: for ``hub review``
    reviews: dict[tuple[int, int], Comparison]


class ProbabilisticResolver:
    def __init__(self, merge_at: float = 0.9, review_at: float = 0.7, match_on: Iterable[str] = ("email", "phone")):
        self.merge_at = merge_at
        self.review_at = min(review_at, merge_at)
        self.match_on = set(match_on)

    # ------------------------------------------------------------------ lookups
    def _keys(self, p: Profile) -> set[tuple[str, str]]:
        keys = blocking_keys(p)
        if p.phones or p.emails:  # found through those; the weak keys only cost comparisons
            keys = {k for k in keys if k[0] not in _WEAK}
        if "email" not in self.match_on:
            keys = {k for k in keys if k[0] not in ("email", "local")}
        if "phone" not in self.match_on:
            keys = {k for k in keys if k[0] != "phone"}
        return keys

    def _lookup(
        self, c: Connection, wanted: set[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], list[int]], dict[tuple[str, str], int]]:
        """Contacts under each key, common keys left out; and how many contacts hold each
        key of the kinds that can be common, by (kind, value)."""
        found: dict[tuple[str, str], list[int]] = defaultdict(list)
        counts: dict[tuple[str, str], int] = {}
        by_kind: dict[str, list[str]] = defaultdict(list)
        for kind, value in wanted:
            by_kind[kind].append(value)
        for kind, values in by_kind.items():
            for start in range(0, len(values), _CHUNK):
                chunk = values[start : start + _CHUNK]
                if kind in _COUNTED:  # these can be common: count before fetching
                    counted = c.execute(
                        select(identifiers.c.value, func.count())
                        .where(and_(identifiers.c.kind == kind, among(c, identifiers.c.value, chunk)))
                        .group_by(identifiers.c.value)
                    )
                    counts.update(((kind, value), int(n)) for value, n in counted)
                    chunk = [value for value in chunk if 0 < counts.get((kind, value), 0) <= _cap(kind)]
                    if not chunk:
                        continue
                rows = c.execute(
                    select(identifiers.c.value, identifiers.c.contact_id)
                    .where(and_(identifiers.c.kind == kind, among(c, identifiers.c.value, chunk)))
                    .order_by(identifiers.c.value, identifiers.c.contact_id)
                )
                for value, contact_id in rows:
                    found[(kind, value)].append(contact_id)
        return {key: ids for key, ids in found.items() if len(ids) <= _cap(key[0])}, counts

    def _rejected(self, c: Connection, contact_ids: Sequence[int]) -> set[tuple[int, int]]:
        pairs: set[tuple[int, int]] = set()
        ordered = sorted(contact_ids)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            rows = c.execute(
                select(match_reviews.c.contact_a, match_reviews.c.contact_b).where(
                    and_(
                        match_reviews.c.status == "rejected",
                        or_(match_reviews.c.contact_a.in_(chunk), match_reviews.c.contact_b.in_(chunk)),
                    )
                )
            )
            pairs.update((a, b) for a, b in rows)
        return pairs

    def _frequencies(self, c: Connection, profiles: dict[int, Profile], holders: dict[str, int]) -> _Frequencies:
        """Name statistics for this batch: surname holders from the store and the batch,
        first-name shares from the batch (a sample of the source)."""
        by_surname: dict[str, list[Profile]] = defaultdict(list)
        firsts: Counter[str] = Counter()
        for p in profiles.values():
            if p.last:
                by_surname[p.last].append(p)
            firsts.update(p.first_keys)
        surnames: dict[str, int] = {s: _people(ps) for s, ps in by_surname.items()}
        values = sorted(surnames)
        for start in range(0, len(values), _CHUNK):
            for value, n in c.execute(
                select(identifiers.c.value, func.count())
                .where(and_(identifiers.c.kind == "surname", among(c, identifiers.c.value, values[start : start + _CHUNK])))
                .group_by(identifiers.c.value)
            ):
                surnames[value] += int(n)
        return _Frequencies(holders, surnames, firsts, max(len(profiles), _SAMPLE_FLOOR))

    # ------------------------------------------------------------------ resolve
    def resolve(self, c: Connection, candidates: Sequence[Candidate]) -> Resolution:
        profiles = {cand.key: cand.profile if cand.profile is not None else profile(cand.values) for cand in candidates}
        for cand in candidates:
            if cand.encoded:
                _stored.put(_digest(cand.encoded), profiles[cand.key])
        keys = {cand.key: self._keys(profiles[cand.key]) for cand in candidates}
        wanted = set().union(*keys.values()) if keys else set()
        in_store, stored_counts = self._lookup(c, wanted) if wanted else ({}, {})
        contact_ids = {cid for ids in in_store.values() for cid in ids}
        contact_ids.update(cand.linked_contact for cand in candidates if cand.linked_contact is not None)
        stored = record_profiles(c, list(contact_ids)) if contact_ids else {}
        rejected = self._rejected(c, list(contact_ids)) if contact_ids else set()

        sort_key: dict[Node, str] = {("r", cand.key): cand.sort_key or f"r{cand.key:012d}" for cand in candidates}
        sort_key.update({("c", cid): f"c{cid:012d}" for cid in contact_ids})
        members: dict[Node, list[Profile]] = {("r", k): [p] for k, p in profiles.items()}
        for cid in contact_ids:
            members[("c", cid)] = stored.get(cid, [])

        # how many people hold each name key: contacts in the store, and the records of
        # the batch counted once per person (records sharing a phone or mailbox are one;
        # a record whose phone or mailbox is a stored holder's is that holder)
        name_counts: dict[str, int] = defaultdict(
            int, {value: n for (kind, value), n in stored_counts.items() if kind in ("name", "local")}
        )
        batch_by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
        for cand in candidates:
            for key in keys[cand.key]:
                batch_by_key[key].append(cand.key)
        known_as: dict[int, set[int]] = {
            cand.key: {cid for key in keys[cand.key] if key[0] in ("phone", "email") for cid in in_store.get(key, ())}
            | ({cand.linked_contact} if cand.linked_contact is not None else set())
            for cand in candidates
        }
        for key, ks in batch_by_key.items():
            if key[0] in ("name", "local"):
                holders = in_store.get(key)
                fresh = [k for k in ks if not holders or known_as[k].isdisjoint(holders)]
                name_counts[key[1]] += _people([profiles[k] for k in fresh])
        frequencies = self._frequencies(c, profiles, name_counts)

        # candidate pairs
        pairs: set[tuple[Node, Node]] = set()
        for key, ks in batch_by_key.items():
            ordered = sorted(ks, key=lambda k: sort_key[("r", k)])
            if len(ordered) > _cap(key[0]) and key[0] in _COUNTED:
                continue  # a common value says nothing about who is who
            if len(ordered) <= BLOCK_CAP:
                for i, x in enumerate(ordered):
                    for y in ordered[:i]:
                        pairs.add(_pair(("r", x), ("r", y), sort_key))
            else:  # a crowded key: compare everyone with the first few only
                for x in ordered:
                    for y in ordered[:BLOCK_CAP]:
                        if x != y:
                            pairs.add(_pair(("r", x), ("r", y), sort_key))
            for cid in in_store.get(key, ()):
                for x in ordered:
                    pairs.add(_pair(("r", x), ("c", cid), sort_key))

        attribute_weight = _attribute_weights(profiles.values())
        # the identifiers of each side's records (contacts have several), built once
        member_sides: dict[Node, Side] = {}

        def side_of(node: Node) -> Side:
            if node not in member_sides:
                member_sides[node] = Side.of(members[node])
            return member_sides[node]

        veto_seen: dict[tuple[int, int], str | None] = {}
        edges: list[tuple[float, str, str, Node, Node, Comparison]] = []
        for a, b in pairs:
            if not members[a] or not members[b]:
                continue
            comparison = closest(members[a], members[b], frequencies, attribute_weight, veto_seen, quick=True)
            if comparison.probability < self.review_at:
                continue  # what the other records say only ever weighs against
            if len(members[a]) > 1 or len(members[b]) > 1:
                comparison = across(side_of(a), side_of(b), comparison)
            p = comparison.probability
            if p >= self.review_at:
                edges.append((-p, sort_key[a], sort_key[b], a, b, comparison))
        edges.sort(key=lambda e: e[:3])

        # clustering
        parent: dict[Node, Node] = {}
        group: dict[Node, list[Profile]] = {}
        sides: dict[Node, Side] = {}
        contacts_in: dict[Node, set[int]] = {}

        def find(node: Node) -> Node:
            if node not in parent:
                parent[node] = node
                group[node] = list(members.get(node, []))
                contacts_in[node] = {node[1]} if node[0] == "c" else set()
            root = node
            while parent[root] != root:
                root = parent[root]
            while parent[node] != root:
                parent[node], node = root, parent[node]
            return root

        def side(root: Node) -> Side:
            """The identifiers of all the records joined under ``root`` so far."""
            if root not in sides:  # not joined yet: its own records' (grows from here on)
                sides[root] = member_sides.pop(root, None) or Side.of(group[root])
            return sides[root]

        def union(a: Node, b: Node) -> None:
            ra, rb = find(a), find(b)
            if ra == rb:
                return
            if sort_key[ra] > sort_key[rb]:
                ra, rb = rb, ra
            side(ra).absorb(side(rb))
            parent[rb] = ra
            group[ra].extend(group.pop(rb))
            sides.pop(rb)
            contacts_in[ra] |= contacts_in.pop(rb)

        def blocked(a: Node, b: Node) -> bool:
            ra, rb = find(a), find(b)
            for x in contacts_in[ra]:
                for y in contacts_in[rb]:
                    if (min(x, y), max(x, y)) in rejected:
                        return True
            return vetoed(group[ra], group[rb], veto_seen) is not None

        for cand in candidates:
            find(("r", cand.key))
            if cand.linked_contact is not None:
                union(("r", cand.key), ("c", cand.linked_contact))
        reviews: list[ReviewPair] = []
        names: set[str] = set()
        for _neg_p, _ka, _kb, a, b, comparison in edges:
            ra, rb = find(a), find(b)
            if ra == rb:
                continue
            if (len(group[ra]) > len(members[a]) or len(group[rb]) > len(members[b])) and (
                    not comparison.strong or comparison.probability < self.merge_at):
                # the groups grew since the pair was weighed: their closest two records may
                # be others (a birthday on a record the pair was not found through), as when
                # a record meets a stored contact with all its records
                regrouped = closest(group[ra], group[rb], frequencies, attribute_weight, veto_seen, quick=True)
                if regrouped.veto is None and regrouped.weight > comparison.weight:
                    comparison = regrouped
            # the records joined so far may hold identifiers that disagree
            comparison = across(side(ra), side(rb), comparison)
            verdict = comparison.verdict(self.merge_at, self.review_at)
            if comparison.name_only:  # decided when every holder of the name is in
                names |= _name_keys(group[ra]) & _name_keys(group[rb])
            if verdict == "merge":
                if not comparison.by_name and not blocked(a, b):
                    union(a, b)
            elif comparison.probability >= self.review_at:
                reviews.append(ReviewPair(a, b, comparison))
        reviews = [r for r in reviews if find(r.a) != find(r.b) and not blocked(r.a, r.b)]

        clusters: dict[Node, Cluster] = {}
        for cand in candidates:
            root = find(("r", cand.key))
            clusters.setdefault(root, Cluster([], sorted(contacts_in[root]))).record_keys.append(cand.key)
        return Resolution(list(clusters.values()), reviews, names, profiles)

    # ------------------------------------------------------------------ reviews
    def reweigh(
        self, c: Connection, pairs: dict[tuple[int, int], list[dict[str, Any]]]
    ) -> dict[tuple[int, int], Comparison | None]:
        """Pending review pairs (contact ids -> their evidence as recorded) weighed again
        with all the records each contact holds now: a pair is asked with the records its
        two sides had when it was found, and a side that gained records since (a later
        batch, a merge) may hold a phone, mailbox or birthday that disagrees with the
        other's, or a veto. That is what a batch checks before it asks (:func:`across`,
        the vetoes between all the records), so the queue does not depend on which batch
        the records came in. Returns each pair's comparison now, ``None`` when it is no
        longer a question (vetoed, or below ``review_at``); pairs it leaves as they were
        are not returned."""
        ids = sorted({x for pair in pairs for x in pair})
        stored = record_profiles(c, ids) if ids else {}
        out: dict[tuple[int, int], Comparison | None] = {}
        for (a, b), recorded in pairs.items():
            mine, others = stored.get(a, []), stored.get(b, [])
            if not mine or not others:
                continue
            if vetoed(mine, others) is not None:
                out[(a, b)] = None
                continue
            evidence = [Evidence(e["field"], e["level"], float(e["weight"]), e.get("detail") or "") for e in recorded]
            before = Comparison(PRIOR + sum(e.weight for e in evidence), evidence)
            now = across(Side.of(mine), Side.of(others), before)
            if now is not before:
                out[(a, b)] = now if now.probability >= self.review_at else None
        return out

    # ------------------------------------------------------------------ settle
    def settle(self, c: Connection, keys: Iterable[str]) -> Settlement:
        """Decide the joins on a full name alone, with every holder of each name in the
        store: the holders of a name are one person when any two of them could be
        (nothing disagrees between them, no veto, no decision against; the name alone
        would join them if no one else held it) and none lives in another city than the
        others, and then they are joined. When two of them differ (two phones: two
        people), the name alone cannot tell to which one a third record belongs, and two
        cities may be two people: the pairs that could be one person go to review. Keys
        are taken in order, so the result depends on what is stored, not on the order
        it came in."""
        parent: dict[int, int] = {}
        members: dict[int, list[int]] = {}

        def find(x: int) -> int:
            if x not in parent:
                parent[x] = x
                members[x] = [x]
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        joined: dict[int, str] = {}  # root -> the first key that joined it
        maybe: list[tuple[int, int, Comparison]] = []
        ordered = sorted(set(keys))
        for start in range(0, len(ordered), _CHUNK):
            found, _counts = self._lookup(c, {("name", key) for key in ordered[start : start + _CHUNK]})
            holders = {key: set(ids) for (_kind, key), ids in found.items() if 2 <= len(ids) <= _SETTLE_CAP}
            wanted = {m for ids in holders.values() for x in ids for m in members.get(find(x), [x])}
            stored = record_profiles(c, sorted(wanted)) if wanted else {}
            rejected = self._rejected(c, sorted(wanted)) if wanted else set()
            counts = _Holders({key: len({find(x) for x in ids}) for key, ids in holders.items()})
            # how common each custom value is among these records, as a batch weighs it
            attribute_weight = _attribute_weights(p for profiles in stored.values() for p in profiles)
            seen: dict[tuple[int, int], str | None] = {}  # vetoes, by the profiles of this chunk

            def records(root: int) -> list[Profile]:
                return [p for m in members[root] for p in stored.get(m, [])]

            def possible(x: int, y: int) -> bool:
                """Whether the name alone would join them were it theirs only."""
                mine, others = records(x), records(y)
                if not mine or not others:
                    return False
                if any((min(i, j), max(i, j)) in rejected for i in members[x] for j in members[y]):
                    return False
                if best(mine, others, _UNIQUE, attribute_weight, seen).verdict(self.merge_at, self.review_at) != "merge":
                    return False
                return vetoed(mine, others, seen) is None

            def far_apart(x: int, y: int) -> bool:
                """Whether they live in different cities (Tver and Тверь are one): a name
                alone does not join those; a person asks (people move, and write the city of
                a delivery)."""
                cities_x = {latin_key(p.city) for p in records(x) if p.city}
                cities_y = {latin_key(p.city) for p in records(y) if p.city}
                return bool(cities_x and cities_y and cities_x.isdisjoint(cities_y))

            for key in sorted(holders):
                roots = sorted({find(x) for x in holders[key]})
                if len(roots) < 2:
                    continue
                pairs = [(x, y) for i, x in enumerate(roots) for y in roots[i + 1 :]]
                fits = [(x, y) for x, y in pairs if possible(x, y)]
                if len(fits) == len(pairs) and not any(far_apart(x, y) for x, y in fits):
                    keep = roots[0]
                    joined[keep] = min([key] + [joined.pop(r) for r in roots if r in joined])
                    for other in roots[1:]:
                        parent[other] = keep
                        members[keep].extend(members.pop(other))
                    continue
                for x, y in fits:
                    comparison = best(records(x), records(y), counts, attribute_weight)
                    if comparison.probability >= self.review_at:
                        maybe.append((x, y, comparison))
        groups = [(joined[root], sorted(ids)) for root, ids in members.items() if len(ids) > 1]
        reviews: dict[tuple[int, int], Comparison] = {}
        for x, y, comparison in maybe:
            a, b = find(x), find(y)
            if a != b:
                pair = (min(a, b), max(a, b))
                if pair not in reviews or comparison.weight > reviews[pair].weight:
                    reviews[pair] = comparison
        return Settlement(sorted(groups, key=lambda g: g[1]), reviews)


#: Shares of first names are taken from the batch; a small batch counts as this many.
_SAMPLE_FLOOR = 200


@dataclass
class _Frequencies:
    people: dict[str, int]
    surnames: dict[str, int]
    firsts: Counter[str]
    sample: int

    def holders(self, key: str) -> int | None:
        return self.people.get(key) or None

    def namesakes(self, last: str, first_key: str) -> float | None:
        holders = self.surnames.get(last)
        if not holders:
            return None
        return holders * self.firsts.get(first_key, 1) / self.sample


#: A full name held by more contacts than this is not one person's: not settled.
_SETTLE_CAP = 6


def _name_keys(profiles: Iterable[Profile]) -> set[str]:
    """The full-name keys (surname|first-name key) of these records."""
    return {value for p in profiles for kind, value in blocking_keys(p) if kind == "name"}


class _Holders:
    """Name frequencies as :meth:`ProbabilisticResolver.settle` counts them: people
    (joined contacts) holding each of its keys."""

    def __init__(self, people: dict[str, int], default: int | None = None):
        self.people = people
        self.default = default

    def holders(self, key: str) -> int | None:
        return self.people.get(key, self.default)

    def namesakes(self, last: str, first_key: str) -> float | None:
        return None


#: ... and as if every name were held by the two sides compared only.
_UNIQUE = _Holders({}, default=UNIQUE_NAME)


def _cap(kind: str) -> int:
    return _CAPS.get(kind, BLOCK_CAP)


def _people(records: list[Profile]) -> int:
    """How many people these records (of one name) are at least: records that share a
    phone or a mailbox are one; records with neither cannot be told apart (one)."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    anonymous = 0
    for i, p in enumerate(records):
        ids = p.phones + p.emails
        if not ids:
            anonymous += 1
        for ident in ids:
            if ident in owner:
                parent[find(i)] = find(owner[ident])
            else:
                owner[ident] = i
    groups = {find(i) for i, p in enumerate(records) if p.phones or p.emails}
    return len(groups) or (1 if anonymous else 0)


def _attribute_weights(batch: Iterable[Profile]) -> Callable[[str, str], float]:
    """Agreement weight of each custom attribute value, log2(m/u), with u estimated as the
    chance that two records of the batch agree on that value (its share among them)."""
    counts: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    for p in batch:
        for key, value in p.attributes:
            counts[(key, value)] += 1
            totals[key] += 1

    def weight(key: str, value: str) -> float:
        total = totals.get(key, 0)
        share = (counts.get((key, value), 0) + 1) / (total + 1) if total else 0.5
        cap = W_ATTRIBUTE_ID_MAX if id_like(value) else W_ATTRIBUTE_MAX
        return max(0.0, min(cap, math.log2(0.95 / share)))

    return weight


def store_attribute_weights(c: Connection, sample: int = 5000) -> Callable[[str, str], float]:
    """The weights of custom values as a batch gives them (:func:`_attribute_weights`), from
    the first ``sample`` stored records that hold custom values: for comparisons made
    outside a batch (``hub explain``), so that a value most records share (a mailing
    status) weighs as little there as in a sync."""
    rows = c.execute(
        select(source_records.c.record_values)
        .where(and_(source_records.c.origin == "read", source_records.c.record_values.like('%"x\\_%', escape="\\")))
        .order_by(source_records.c.connector, source_records.c.external_id)
        .limit(sample)
    ).scalars()
    return _attribute_weights(profile(json.loads(encoded)) for encoded in rows if encoded)


def _pair(a: Node, b: Node, sort_key: dict[Node, str]) -> tuple[Node, Node]:
    return (a, b) if sort_key[a] <= sort_key[b] else (b, a)


def record_profiles(c: Connection, contact_ids: Sequence[int]) -> dict[int, list[Profile]]:
    """The profiles of the records each contact is derived from (read, not removed)."""
    out: dict[int, list[Profile]] = defaultdict(list)
    for contact_id, encoded in live_records(c, sorted(contact_ids), source_records.c.record_values, chunk=_CHUNK):
        if encoded:
            key = _digest(encoded)
            found = _stored.get(key)
            if found is None:
                found = _stored.put(key, profile(json.loads(encoded)))
            out[contact_id].append(found)
    return out


def _digest(encoded: str) -> bytes:
    return hashlib.blake2b(encoded.encode(), digest_size=16).digest()


class _Recent:
    """The profiles of the stored records compared most recently, by a digest of their
    encoded values; at most ``size``: a base of millions of records keeps its memory."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[Any, Profile] = OrderedDict()

    def get(self, key: Any) -> Profile | None:
        found = self.items.get(key)
        if found is not None:
            self.items.move_to_end(key)
        return found

    def put(self, key: Any, value: Profile) -> Profile:
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


_stored = _Recent(STORED_PROFILES)


def forget() -> None:
    """Drop the profiles kept between batches (after a sync's pulls: the memory is the
    categories pass's then)."""
    _stored.items.clear()
    clear_profiles()


__all__ = [
    "Candidate", "Cluster", "ProbabilisticResolver", "Resolution", "ReviewPair", "Settlement", "forget",
    "record_profiles", "store_attribute_weights",
]
