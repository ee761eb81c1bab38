"""Problems found in the data: what a quarantine reason says is wrong, by kind of value.

A record's quarantine reason lists its problems as ``field: problem`` joined by ``; ``
(``hub.prepare``, ``hub.normalize``). ``hub report`` counts them by kind; ``hub clean``
lists the phones and e-mails to fix.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from hub.store.schema import consents, contacts, quarantine, source_records

#: A problem starts with its field; its value usually follows, quoted as Python quotes it
#: (consumed here, so a value holding "; email: " is not taken for a problem of its own).
_PROBLEM = re.compile(r"""(?:^|; )([a-z_]+): (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")?""")
#: Problem fields by kind of value.
PROBLEM_KINDS = {"phone": "phone", "phones": "phone", "email": "email", "emails": "email", "birthday": "birthday",
                 "full_name": "name", "last_name": "name", "first_name": "name", "middle_name": "name"}
#: The kinds that identify a person: what ``hub clean`` asks to fix.
IDENTIFIER_KINDS = ("phone", "email")


def split_problems(reason: str) -> list[tuple[str, str]]:
    """``(kind, text)`` per problem of a quarantine reason; kind ``other`` when no field is named."""
    starts = list(_PROBLEM.finditer(reason))
    if not starts:
        return [("other", reason)]
    found = []
    if starts[0].start() > 0:
        found.append(("other", reason[: starts[0].start()]))
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(reason)
        found.append((PROBLEM_KINDS.get(match.group(1), "other"), reason[match.start() : end].removeprefix("; ")))
    return found


def problem_kinds(reason: str) -> set[str]:
    """The kinds of value (phone, email, birthday, name, other) a quarantine reason complains about."""
    return {kind for kind, _ in split_problems(reason)}


def invalid_identifiers(c: Connection) -> list[dict[str, Any]]:
    """Phones and e-mails to fix, and where: records whose phone or e-mail could not be used,
    still in quarantine (``status`` open: the record was not imported; partial: imported
    without the bad value, ``contact_id`` is its contact), then contacts whose e-mail a
    mailing service reports as bouncing (``status`` bounced)."""
    rows = c.execute(
        select(quarantine.c.id, quarantine.c.connector, quarantine.c.external_id, quarantine.c.status,
               quarantine.c.reason, source_records.c.contact_id)
        .outerjoin(source_records, and_(source_records.c.connector == quarantine.c.connector,
                                        source_records.c.external_id == quarantine.c.external_id))
        .where(quarantine.c.status != "resolved")
        .order_by(quarantine.c.connector, quarantine.c.id)
    )
    found = []
    for row in rows:
        problems = [text for kind, text in split_problems(row.reason) if kind in IDENTIFIER_KINDS]
        if problems:
            found.append({"quarantine_id": row.id, "connector": row.connector, "external_id": row.external_id,
                          "status": row.status, "contact_id": row.contact_id, "problems": problems})
    # addresses a mailing service reports undeliverable (a hard bounce)
    for row in c.execute(
        select(consents.c.contact_id, consents.c.source, contacts.c.email)
        .join(contacts, contacts.c.id == consents.c.contact_id)
        .where(and_(consents.c.channel == "email", consents.c.status == "bounced",
                    contacts.c.deleted_at.is_(None), contacts.c.merged_into.is_(None)))
        .order_by(consents.c.contact_id)
    ):
        where = row.source or "a mailing service"
        found.append({"quarantine_id": None, "connector": row.source, "external_id": None, "status": "bounced",
                      "contact_id": row.contact_id,
                      "problems": [f"email: {row.email!r} bounced: {where} cannot deliver to it"]})
    return found


__all__ = ["IDENTIFIER_KINDS", "invalid_identifiers", "problem_kinds", "split_problems"]
