"""Consent: may hub put a person on a marketing list, on which channel?

Email and SMS services report a status per person and channel (``ConsentReport``,
translated by the connector into ``CONSENT_STATUSES``). The store keeps one status
per contact and channel in ``consents`` and logs each change (field
``consent_<channel>``). The rules:

* An opt-out (``unsubscribed``, ``complained``, ``bounced``) from any tool wins over
  a subscription from any other tool, whenever it happened: a list that still says
  ``subscribed`` simply has not heard of it yet.
* ``complained`` outranks ``unsubscribed``, which outranks ``bounced``.
* A blocklist that does not say why (``ConsentReport.blocklist``: Brevo's
  ``emailBlacklisted``) is an opt-out only where none is known: it does not rewrite the
  one hub knows. A bounce hub imported into Brevo blacklisted reads back blacklisted,
  and stays a bounce rather than becoming the person's own unsubscribe.
* An opted-out contact becomes ``subscribed`` (or ``pending``) again only when the
  tool that recorded the opt-out later reports the new status itself: the person
  signed up there again, which providers allow only the person to do.
* Destinations of a channel receive the status with each contact
  (``OutboundItem.consent``): an opted-out contact is updated as unsubscribed where
  it already is and never added anywhere; with ``require_consent`` (the default) a
  contact without a ``subscribed`` status is not added to a list at all. A withdrawal
  reaches every record the contact has in an e-mail tool (the person's other addresses
  there), each with the status alone (``OutboundItem.consent_only``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, select
from sqlalchemy.engine import Connection

from hub.model import ConsentReport
from hub.redact import redact
from hub.store import bulk_insert, bulk_update
from hub.store.schema import consents, outbox, source_records

if TYPE_CHECKING:
    from hub.config import LoadedConfig

OPTED_OUT = frozenset({"unsubscribed", "complained", "bounced"})
#: Statuses that stop messages everywhere on the channel (not only in the tool that saw them).
WITHDRAWN = frozenset({"unsubscribed", "complained"})
#: The key of a consent's proof that marks a blocklist's report (``ConsentReport.blocklist``).
_BLOCKLIST_PROOF = "blocklist"
_OPT_OUT_RANK = {"bounced": 1, "unsubscribed": 2, "complained": 3}
#: Which status a merged contact keeps: the most restrictive.
_MERGE_RANK = {"pending": 0, "subscribed": 1, "bounced": 2, "unsubscribed": 3, "complained": 4}

#: The key under which the outbox payload carries the consent status to the connector.
PAYLOAD_KEY = "__consent__"

_CHUNK = 500


def field_name(channel: str) -> str:
    """The change log's field for a channel's consent."""
    return f"consent_{channel}"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def accepts(current: Any | None, status: str, source: str, at: dt.datetime | None, *,
            blocklist: bool = False) -> bool:
    """Whether a report of ``status`` by ``source`` at ``at`` replaces ``current``
    (a row with ``status``, ``source``, ``at``; ``None`` when nothing is known).
    ``blocklist``: the report is a blocklist that does not say why (``ConsentReport.blocklist``)."""
    if current is None:
        return True
    if status == current.status:
        return False
    if status in OPTED_OUT:
        if blocklist and current.status in OPTED_OUT:
            return False  # the opt-out hub knows says more than a blocklist
        if current.status not in OPTED_OUT:
            return True
        if from_blocklist(current):
            return True  # says why the person is on the blocklist (a bounce a tool blacklisted)
        return _OPT_OUT_RANK[status] > _OPT_OUT_RANK[current.status]
    if current.status in OPTED_OUT:
        # only the tool that saw the opt-out can tell that the person signed up again
        before, after = _aware(current.at), _aware(at)
        return source == current.source and before is not None and after is not None and after > before
    # subscribed over pending; a pending report does not demote a subscription
    return status == "subscribed"


def agrees(status: str | None, report: ConsentReport) -> bool:
    """Whether a tool's report says what hub holds (``status``): the same status, or a
    blocklist for an opt-out hub knows, or a weaker opt-out than the one hub holds (a
    complaint hub wrote to a tool that can only mark an unsubscribe): the tool sends
    nothing either way, and nothing hub can write would change what it says."""
    if report.status == status:
        return True
    if report.status in OPTED_OUT and status in OPTED_OUT:
        return report.blocklist or _OPT_OUT_RANK[report.status] <= _OPT_OUT_RANK[status]
    return False


def proof_text(report: ConsentReport, external_id: str) -> str:
    proof = dict(report.proof)
    proof.setdefault("record", external_id)
    if report.blocklist:
        proof[_BLOCKLIST_PROOF] = "yes"
    return redact(json.dumps(proof, ensure_ascii=False, sort_keys=True))


def from_blocklist(row: Any) -> bool:
    """Whether a stored consent (a row with ``proof``) came from a blocklist that does not
    say why: an opt-out a tool reports with its reason replaces it."""
    try:
        proof = json.loads(getattr(row, "proof", None) or "{}")
    except (TypeError, ValueError):
        return False
    return isinstance(proof, dict) and proof.get(_BLOCKLIST_PROOF) == "yes"


def current(c: Connection, contact_ids: Iterable[int], channel: str | None = None) -> dict[tuple[int, str], Any]:
    """Stored consent rows by (contact, channel)."""
    ids = sorted(set(contact_ids))
    found: dict[tuple[int, str], Any] = {}
    for start in range(0, len(ids), _CHUNK):
        query = select(consents).where(consents.c.contact_id.in_(ids[start : start + _CHUNK]))
        if channel is not None:
            query = query.where(consents.c.channel == channel)
        for row in c.execute(query):
            found[(row.contact_id, row.channel)] = row
    return found


def record(
    c: Connection, reports: Sequence[tuple[int, str, str, ConsentReport]], now: dt.datetime
) -> tuple[list[dict[str, Any]], set[int]]:
    """Store reports ``(contact_id, connector, external_id, report)``.

    Returns change-log rows (without ``run_id``) and the contacts whose consent changed."""
    known = current(c, (contact_id for contact_id, *_ in reports))
    inserts: dict[tuple[int, str], dict[str, Any]] = {}
    updates: dict[tuple[int, str], dict[str, Any]] = {}
    log_rows: list[dict[str, Any]] = []
    changed: set[int] = set()
    for contact_id, connector, external_id, report in reports:
        key = (contact_id, report.channel)
        row = known.get(key)
        at = _aware(report.at) or now
        if not accepts(row, report.status, connector, at, blocklist=report.blocklist):
            continue
        values = {"contact_id": contact_id, "channel": report.channel, "status": report.status,
                  "source": connector, "at": at, "proof": proof_text(report, external_id)}
        log_rows.append({
            "contact_id": contact_id, "field": field_name(report.channel),
            "old_value": row.status if row is not None else None, "new_value": report.status,
            "connector": connector, "external_id": external_id, "reason": "sync", "at": now,
        })
        if key in inserts or (row is None and key not in updates):
            inserts[key] = values
        else:
            updates[key] = values
        known[key] = _Row(report.status, connector, at, values["proof"])
        changed.add(contact_id)
    bulk_insert(c, consents, list(inserts.values()))
    bulk_update(c, consents, ("contact_id", "channel"), list(updates.values()))
    return log_rows, changed


class _Row:
    __slots__ = ("at", "proof", "source", "status")

    def __init__(self, status: str, source: str, at: dt.datetime | None, proof: str):
        self.status, self.source, self.at, self.proof = status, source, at, proof


def merge(c: Connection, survivor: int, losers: Sequence[int], connector: str | None,
          now: dt.datetime) -> list[dict[str, Any]]:
    """Fold the losers' consents into the survivor's: the most restrictive status stays.

    Returns change-log rows for the survivor's channels that changed."""
    rows = current(c, [survivor, *losers])
    if not any(contact_id != survivor for contact_id, _ in rows):
        return []
    log_rows: list[dict[str, Any]] = []
    for channel in sorted({channel for _, channel in rows}):
        mine = rows.get((survivor, channel))
        best = max((row for (contact_id, ch), row in rows.items() if ch == channel),
                   key=lambda row: (_MERGE_RANK.get(row.status, 0), _aware(row.at) or now))
        if mine is None or best.status != mine.status:
            values = {"contact_id": survivor, "channel": channel, "status": best.status, "source": best.source,
                      "at": best.at, "proof": best.proof}
            if mine is None:
                bulk_insert(c, consents, [values])
            else:
                bulk_update(c, consents, ("contact_id", "channel"), [values])
            log_rows.append({
                "contact_id": survivor, "field": field_name(channel),
                "old_value": mine.status if mine is not None else None, "new_value": best.status,
                "connector": connector, "external_id": None, "reason": "merge", "at": now,
            })
    c.execute(delete(consents).where(consents.c.contact_id.in_(list(losers))))
    return log_rows


def as_item(row: Any) -> dict[str, Any]:
    """A consent row as kept in ``merge_moves`` (JSON) for :func:`give_back`."""
    at = _aware(row.at)
    return {"channel": row.channel, "status": row.status, "source": row.source,
            "at": at.isoformat() if at is not None else None, "proof": row.proof}


def give_back(c: Connection, contact_id: int, items: Sequence[dict[str, Any]], connector: str | None,
              now: dt.datetime) -> list[dict[str, Any]]:
    """A split: the consents a merge took from ``contact_id`` (:func:`as_item`) are its
    own again, where it has none of its own for the channel since. The contact it was
    merged into keeps its status: the strictest of both, the safe side.

    Returns change-log rows for the channels given back."""
    have = current(c, [contact_id])
    rows: list[dict[str, Any]] = []
    for item in items:
        if (contact_id, item["channel"]) in have:
            continue
        at = item.get("at")
        rows.append({"contact_id": contact_id, "channel": item["channel"], "status": item["status"],
                     "source": item.get("source"), "at": dt.datetime.fromisoformat(at) if at else None,
                     "proof": item.get("proof")})
    bulk_insert(c, consents, rows)
    return [{"contact_id": contact_id, "field": field_name(row["channel"]), "old_value": None,
             "new_value": row["status"], "connector": connector, "external_id": None, "reason": "split", "at": now}
            for row in rows]


def present_in(c: Connection, destination: str, contact_ids: Sequence[int]) -> set[int]:
    """Contacts the destination already holds: read from it, or sent to it by hub."""
    found: set[int] = set()
    ids = list(contact_ids)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found.update(row.contact_id for row in c.execute(
            select(source_records.c.contact_id).where(and_(
                source_records.c.connector == destination, source_records.c.contact_id.in_(chunk),
                source_records.c.removed_at.is_(None),
            ))
        ))
        found.update(row.contact_id for row in c.execute(
            select(outbox.c.contact_id).where(and_(
                outbox.c.destination == destination, outbox.c.contact_id.in_(chunk), outbox.c.sent_hash.is_not(None),
            ))
        ))
    return found


#: Why the consent rule keeps a contact off a destination (:func:`refusal`).
NO_CONSENT = "no_consent"  # no status known, and the destination requires one
PENDING = "pending"  # a subscription not confirmed yet, and the contact is not there
OPTED_OUT_THERE = "opted_out"  # opted out, and the contact is not there to update
NOT_WITHDRAWN = "not_withdrawn"  # a suppression list takes only contacts who withdrew


def refusal(status: str | None, *, require_consent: bool, present: bool, suppression: bool = False) -> str | None:
    """Why a contact with this consent status does not go to a destination of the
    channel (one of the reasons above), or ``None`` when it goes.

    A suppression list (an SMS stop list) receives the opted-out contacts and nothing else."""
    if suppression:
        return None if status in WITHDRAWN else NOT_WITHDRAWN
    if status == "subscribed" or present:
        return None  # an opted-out or pending contact is updated where it is (as unsubscribed, or fields only)
    if status in OPTED_OUT:
        return OPTED_OUT_THERE  # never added
    if status == "pending":
        return PENDING
    return NO_CONSENT if require_consent else None


class SendRule:
    """May hub send each contact of a batch to one destination, and if not, why: the
    consent rule of an e-mail or SMS service, with the statuses and the contacts already
    there looked up once for the batch (:func:`send_rule`). A destination with no consent
    channel takes every contact."""

    __slots__ = ("channel", "present", "require_consent", "statuses", "suppression")

    def __init__(self, channel: str | None, statuses: dict[int, str], present: set[int], *,
                 require_consent: bool = True, suppression: bool = False):
        self.channel, self.statuses, self.present = channel, statuses, present
        self.require_consent, self.suppression = require_consent, suppression

    def status(self, contact_id: int) -> str | None:
        """The contact's consent status on the destination's channel (``None``: none known)."""
        return self.statuses.get(contact_id)

    def refusal(self, contact_id: int) -> str | None:
        """Why hub does not send the contact there, or ``None`` when it does."""
        if self.channel is None:
            return None
        return refusal(self.statuses.get(contact_id), require_consent=self.require_consent,
                       present=contact_id in self.present, suppression=self.suppression)

    def allows(self, contact_id: int) -> bool:
        return self.refusal(contact_id) is None


def send_rule(c: Connection, config: LoadedConfig, destination: str, contact_ids: Sequence[int]) -> SendRule:
    """The :class:`SendRule` of ``destination`` for ``contact_ids``: two batch lookups
    (their statuses, and which of them the destination already holds) for an e-mail or
    SMS service, none for another tool."""
    cls = config.classes[config.model.connectors[destination].plugin]
    channel = cls.consent_channel
    if not channel:
        return SendRule(None, {}, set())
    ids = list(contact_ids)
    statuses = {contact_id: row.status for (contact_id, _), row in current(c, ids, channel).items()}
    return SendRule(channel, statuses, present_in(c, destination, ids),
                    require_consent=getattr(config.options[destination], "require_consent", True),
                    suppression=cls.suppression_list)


__all__ = ["OPTED_OUT", "PAYLOAD_KEY", "WITHDRAWN", "SendRule", "accepts", "agrees", "current", "field_name",
           "merge", "present_in", "record", "refusal", "send_rule"]
