"""Identity resolution: which contact a record belongs to.

The deterministic resolver joins a record to a contact when they share a link
(the same record seen before) or an equal normalized identifier (e-mail, E.164
phone). Records and contacts joined through any chain of these form one cluster;
a cluster holding several existing contacts merges them into the oldest.
Clusters depend only on the set of records, not on the order they arrive in.

``Resolver`` is the slot a probabilistic resolver fills: it gets the same
candidates and returns the same clusters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from hub.store.schema import identifiers


@dataclass
class Candidate:
    """A record about to be placed: its link, if known, and its identifiers."""

    key: int
    linked_contact: int | None
    identifiers: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Cluster:
    """Records that are one person, and the existing contacts they join (oldest first)."""

    record_keys: list[int]
    contacts: list[int]


class Resolver(Protocol):
    def resolve(self, connection: Connection, candidates: Sequence[Candidate]) -> list[Cluster]: ...


class DeterministicResolver:
    def __init__(self, match_on: Iterable[str] = ("email", "phone")):
        self.match_on = tuple(match_on)

    def lookup(self, connection: Connection, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], set[int]]:
        """Contacts holding each identifier, one query per kind and chunk."""
        found: dict[tuple[str, str], set[int]] = defaultdict(set)
        by_kind: dict[str, list[str]] = defaultdict(list)
        for kind, value in wanted:
            by_kind[kind].append(value)
        for kind, values in by_kind.items():
            for start in range(0, len(values), 500):
                chunk = values[start : start + 500]
                rows = connection.execute(
                    select(identifiers.c.kind, identifiers.c.value, identifiers.c.contact_id).where(
                        and_(identifiers.c.kind == kind, identifiers.c.value.in_(chunk))
                    )
                )
                for kind_, value, contact_id in rows:
                    found[(kind_, value)].add(contact_id)
        return found

    def resolve(self, connection: Connection, candidates: Sequence[Candidate]) -> list[Cluster]:
        parent: dict[tuple[str, object], tuple[str, object]] = {}

        def find(node: tuple[str, object]) -> tuple[str, object]:
            parent.setdefault(node, node)
            root = node
            while parent[root] != root:
                root = parent[root]
            while parent[node] != root:
                parent[node], node = root, parent[node]
            return root

        def union(a: tuple[str, object], b: tuple[str, object]) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb

        usable = {
            c.key: {ident for ident in c.identifiers if ident[0] in self.match_on} for c in candidates
        }
        wanted = set().union(*usable.values()) if usable else set()
        existing = self.lookup(connection, wanted) if wanted else {}
        for candidate in candidates:
            node = ("r", candidate.key)
            find(node)
            if candidate.linked_contact is not None:
                union(node, ("c", candidate.linked_contact))
            for ident in usable[candidate.key]:
                union(node, ("i", ident))
                for contact_id in existing.get(ident, ()):
                    union(node, ("c", contact_id))
        groups: dict[tuple[str, object], Cluster] = {}
        for candidate in candidates:
            root = find(("r", candidate.key))
            groups.setdefault(root, Cluster([], [])).record_keys.append(candidate.key)
        contacts_of: dict[tuple[str, object], set[int]] = defaultdict(set)
        for node in list(parent):
            if node[0] == "c":
                contacts_of[find(node)].add(node[1])  # type: ignore[arg-type]
        for root, cluster in groups.items():
            cluster.contacts = sorted(contacts_of.get(root, ()))
        return list(groups.values())


__all__ = ["Candidate", "Cluster", "DeterministicResolver", "Resolver"]
