"""The suppression list: salted hashes of the e-mails, phones and record ids of erased
people.

``hub forget`` adds them; every sync checks each record before placing it, and a
record carrying a suppressed identifier is skipped (counted as ``suppressed``), so no
connector imports the person again. The salt is made once per store and kept in it:
the list alone does not tell whose identifiers these are, yet a known address can be
checked against it.

An e-mail or phone the erased person shared with someone hub keeps (a family's home
phone) is suppressed only together with the erased person's first name: a record with
it and that name, or with no name, is skipped; a relative's record is not. The ids of
the person's records are suppressed too, so a record that holds neither (a name and a
city) does not come back either; ids made of row numbers (``row:N``) are not, another
person takes the row when the rows move.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from hub.store import set_setting, setting
from hub.store.schema import suppression

SALT = "suppression_salt"


def salt(c: Connection, create: bool = False) -> str | None:
    value = setting(c, SALT)
    if value is None and create:
        value = secrets.token_hex(16)
        set_setting(c, SALT, value)
    return value


def identifier_hash(salt_value: str, kind: str, value: str) -> str:
    return hashlib.blake2b(f"{kind}:{value}".encode(), key=salt_value.encode()[:64], digest_size=20).hexdigest()


def identifiers_of(values: dict[str, Any]) -> set[tuple[str, str]]:
    """The e-mails and phones of normalized record or contact values."""
    found: set[tuple[str, str]] = set()
    for kind, one, many in (("email", "email", "emails"), ("phone", "phone", "phones")):
        items = [values.get(one)] + list(values.get(many) or [])
        for item in items:
            if isinstance(item, str) and item.strip():
                found.add((kind, item.strip().lower() if kind == "email" else item.strip()))
    return found


SHARED = "shared-"  # an identifier someone else holds too: see NAMED
NAMED = "named-"  # that identifier with a first-name key of the erased person
RECORD = "record"


def record_entry(connector: str, external_id: str) -> tuple[str, str] | None:
    """The list entry of a source record's id; None for an id that is a row number."""
    return None if external_id.startswith("row:") else (RECORD, f"{connector}\0{external_id}")


def shared_entries(kind: str, value: str, first_keys: Iterable[str]) -> set[tuple[str, str]]:
    """The entries of an identifier the erased person shared with someone hub keeps."""
    return {(SHARED + kind, value)} | {(NAMED + kind, f"{value}|{key}") for key in first_keys}


def first_name_keys(values: dict[str, Any], own_gender: bool = False) -> set[str]:
    """The first-name keys of normalized values (every spelling and short form of the
    name gives the same ones); empty when the values hold no first name. ``own_gender``:
    only the full names of the gender the rest of the name tells (Петрова Женя: Евгения,
    not her son's Евгений)."""
    from hub import names
    from hub.identity import profile

    found = profile(values)
    keys = set(found.first_keys) | ({found.first} if found.first else set())
    if own_gender and found.gender:
        keys = {key for key in keys if names.first_name_gender(key) in (None, found.gender)}
    return keys


class Suppressed:
    """The list as read at the start of a batch; empty (and free) when nobody was erased."""

    def __init__(self, c: Connection):
        self.salt = salt(c)
        self.hashes: set[str] = set()
        if self.salt is not None:
            self.hashes = {row.hash for row in c.execute(select(suppression.c.hash))}

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def holds(self, kind: str, value: str) -> bool:
        """One identifier (an analytics client id, say) is on the list."""
        return self.salt is not None and identifier_hash(self.salt, kind, value) in self.hashes

    def match(self, values: dict[str, Any], record: tuple[str, str] | None = None) -> bool:
        """Whether a record (normalized values; ``(connector, external id)``) is an erased
        person's."""
        if not self.hashes or self.salt is None:
            return False
        entry = record_entry(*record) if record is not None else None
        if entry is not None and self.holds(*entry):
            return True
        held = identifiers_of(values)
        if any(self.holds(kind, value) for kind, value in held):
            return True
        shared = [(kind, value) for kind, value in held if self.holds(SHARED + kind, value)]
        if not shared:
            return False
        keys = first_name_keys(values)
        if not keys:  # no name to tell the erased person from whoever shares the number
            return True
        return any(self.holds(NAMED + kind, f"{value}|{key}") for kind, value in shared for key in keys)


def suppress(c: Connection, pairs: Iterable[tuple[str, str]], run_id: int, now: Any) -> int:
    """Add identifiers to the list; returns how many were new."""
    key = salt(c, create=True)
    assert key is not None
    added = 0
    for kind, value in sorted(set(pairs)):
        digest = identifier_hash(key, kind, value)
        if c.execute(select(suppression.c.hash).where(suppression.c.hash == digest)).first() is None:
            c.execute(insert(suppression).values(hash=digest, kind=kind, run_id=run_id, created_at=now))
            added += 1
    return added
