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

from hub.store.schema import quarantine, source_records

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
    """Records with a phone or e-mail that could not be used, still in quarantine: where to fix what.

    ``status`` open: the record was not imported; partial: imported without the bad value
    (``contact_id`` is its contact)."""
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
    return found


__all__ = ["IDENTIFIER_KINDS", "invalid_identifiers", "problem_kinds", "split_problems"]
