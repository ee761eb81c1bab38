"""The canonical data model shared by the core and every connector."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

#: Canonical contact fields, in display order. A mapping targets these names;
#: ``phones`` and ``emails`` hold every normalized identifier of a record while
#: ``phone`` and ``email`` hold the primary one.
CONTACT_FIELDS: tuple[str, ...] = (
    "full_name",
    "last_name",
    "first_name",
    "middle_name",
    "email",
    "phone",
    "city",
    "birthday",
    "company",
)
LIST_FIELDS: tuple[str, ...] = ("emails", "phones")
CANONICAL_FIELDS: tuple[str, ...] = CONTACT_FIELDS + LIST_FIELDS
#: Categories and segments a destination's mapping may write (docs/segments.md): they
#: are computed by hub, so a mapping only writes them and never reads them from a source.
#: ``segments`` is a list (the contact's segment names, sorted); the others are text.
OUTBOUND_FIELDS: tuple[str, ...] = ("stage", "temperature", "rfm", "rfm_segment", "abc", "region", "activity",
                                   "segments")

#: Columns a file connector uses when no mapping is given: each maps to itself.
DEFAULT_COLUMNS: tuple[str, ...] = (
    "id",
    "full_name",
    "first_name",
    "last_name",
    "middle_name",
    "phone",
    "email",
    "city",
    "birthday",
)

IdentifierKind = Literal["email", "phone"]

#: Channels a person can consent to be messaged on, and the statuses of that consent.
CONSENT_CHANNELS: tuple[str, ...] = ("email", "sms", "messenger")
CONSENT_STATUSES: tuple[str, ...] = ("subscribed", "unsubscribed", "bounced", "complained", "pending")
Role = Literal["source", "destination", "both"]

#: Lead qualification of site-form submissions (``hub.leads``), best first: a contact's
#: ``x_lead_status`` is the best status of its submissions.
LEAD_STATUSES: tuple[str, ...] = ("target", "non-target", "spam")
LEAD_FIELD = "x_lead_status"
#: Attributes hub sets itself from what a record is rather than who it is about: never
#: identity evidence (a shared lead status says nothing about two people being one).
NOT_IDENTITY_ATTRIBUTES: frozenset[str] = frozenset({LEAD_FIELD})


@dataclass(frozen=True)
class ConsentReport:
    """What a tool says about a person's consent on one channel, in hub's words.

    A connector translates its tool's statuses (Mailchimp ``cleaned``, Brevo
    ``emailBlacklisted``, an SMS ``STOP``) into one of ``CONSENT_STATUSES``."""

    channel: str
    status: str
    #: When the tool says the status was set, if it knows.
    at: dt.datetime | None = None
    #: Evidence: how and where consent was given or withdrawn (form, ip, text, reason).
    proof: tuple[tuple[str, str], ...] = ()
    #: The opt-out is a blocklist that does not say why (Brevo's ``emailBlacklisted``: an
    #: unsubscribe, a complaint, a hard bounce, a block by hand, or hub's own import of an
    #: opted-out contact). It stands for ``status`` where hub knows no opt-out and leaves
    #: one hub knows as it is (``hub.consent.accepts``). Not in the repr, of which record
    #: hashes are made: the status and proof it goes with are.
    blocklist: bool = field(default=False, repr=False)


#: Event types that count as a message sent to the person (``messages_30d``).
MESSAGE_EVENTS: tuple[str, ...] = ("email_sent", "sms_sent")
#: An order paid (order id as the event's ``external_id``, ``amount``, ``currency``).
PURCHASE_EVENT = "purchase"
#: Manual funnel events (docs/segments.md): a decision maker found, they agreed to consider
#: an offer, agreed to receive the newsletter, made a request, refused.
STAGE_EVENTS: tuple[str, ...] = ("decision_maker", "offer_considered", "newsletter_agreed", "request", "refused")


@dataclass(frozen=True)
class EventReport:
    """Something that happened to the person in the tool: a campaign sent, opened or
    clicked, an SMS sent or delivered, a reply. Stored once per (connector, type, id)."""

    type: str
    #: The tool's id of the event (a message SID, a campaign id with the address).
    external_id: str
    at: dt.datetime
    #: What the tool says about it (status, campaign, error code), as text pairs.
    payload: tuple[tuple[str, str], ...] = ()
    #: A ``purchase``'s amount and ISO 4217 currency (``None``: the base currency of
    #: ``categories.currency``); other events leave them empty. See docs/segments.md.
    amount: float | None = None
    currency: str | None = None


@dataclass(frozen=True)
class RawRecord:
    """One record as a connector read it: its stable id in that tool and its raw columns."""

    external_id: str
    values: dict[str, Any]
    #: When the tool says the record last changed, if it knows.
    updated_at: dt.datetime | None = None
    #: The tool reports this record as deleted (incremental readers).
    deleted: bool = False
    #: The connector could not parse the record: the core quarantines it with this reason.
    error: str | None = None
    #: ``(column, why)`` for cells the connector could not read (an XLSX formula saved
    #: without its value), carried as empty in ``values``: the core quarantines the record
    #: with the reasons when its mapping reads one of these columns.
    unreadable: tuple[tuple[str, str], ...] = ()
    #: The record was read after every record of the last complete read (a row appended
    #: to a file read from where it ended): an id the store already holds from this
    #: connector belongs to an earlier record, so this one is a duplicate.
    appended: bool = False
    #: Consent per channel as the tool reports it (email and SMS services).
    consents: tuple[ConsentReport, ...] = ()
    #: The person's history in the tool (messages sent, delivered, opened), newest included.
    events: tuple[EventReport, ...] = ()
    #: The record carries only ``events`` for a record of this id read now or before (a
    #: campaign's opens, say): its values are not a new state of the record.
    history_only: bool = False
    #: A web analytics visit (``history_only``): its events belong to the contact holding
    #: this analytics client id ``(kind, value)`` (``hub.analytics.CLIENT_ID_KINDS``), not to
    #: a record of the connector; no contact holds it yet: they wait for one. Never creates
    #: or changes a contact by itself.
    client_id: tuple[str, str] | None = None


@dataclass(frozen=True)
class Checkpoint:
    """Yielded by ``Connector.read`` after the records it covers.

    ``cursor`` is saved in the same transaction as those records. ``complete``
    says the read delivered everything the tool holds, so records not seen are
    gone from the tool (this enables deletion handling and the mass-delete guard).
    """

    cursor: str | None
    complete: bool = False


@dataclass(frozen=True)
class OutboundItem:
    """One contact to write to a destination."""

    contact_id: int
    op: Literal["upsert", "delete"]
    #: Destination columns after the mapping is applied in reverse.
    values: dict[str, Any]
    #: The contact's id in that tool, when a link is known.
    external_id: str | None = None
    #: The contact's consent on the destination's channel (``Connector.consent_channel``):
    #: one of ``CONSENT_STATUSES``, or ``None`` when nothing is known.
    consent: str | None = None
    #: When the mapping writes ``segments``: every segment hub.yaml defines, so that a
    #: destination keeping them as tags can remove those the contact no longer has (a name
    #: here and not in the item's tag column is a segment the contact left, or never joined).
    segment_names: tuple[str, ...] = ()
    #: The item carries only ``consent`` (an opt-out) to a further record the contact has
    #: in the tool: the person's other address there (an address changed, two contacts
    #: merged). ``values`` hold that record's address alone, in the column the mapping
    #: writes ``email`` to, and ``external_id`` its id. Set that record's status and
    #: change nothing else on it (no fields, no tags). A connector that does not read
    #: this flag writes the address with the status and no other value, which an upsert
    #: keyed by the address also leaves otherwise as it was.
    consent_only: bool = False


@dataclass(frozen=True)
class WriteResult:
    """What the destination did with one ``OutboundItem``."""

    contact_id: int
    status: Literal["ok", "retriable", "rejected"]
    external_id: str | None = None
    error: str | None = None
    #: Columns the tool's user changed after the connector read them, which the write
    #: therefore left alone: column -> (value hub meant to write, the user's value).
    #: The core logs each as a change with reason ``conflict``.
    conflicts: dict[str, tuple[Any, Any]] | None = None


@dataclass
class Contact:
    """A canonical contact as the store holds it."""

    id: int
    values: dict[str, Any] = field(default_factory=dict)
