"""Tables of the canonical store (SQLAlchemy Core). Migrations live in ``migrations/``."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Timestamp = DateTime(timezone=True)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp),
    Column("status", String(16), nullable=False),
    Column("connectors", Text),
    Column("counts", Text),
    Column("error", Text),
    Column("pid", Integer),
    Column("host", String(255)),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("full_name", Text),
    Column("last_name", Text),
    Column("first_name", Text),
    Column("middle_name", Text),
    Column("email", String(320)),
    Column("phone", String(32)),
    Column("city", Text),
    Column("birthday", String(10)),
    Column("company", Text),
    #: JSON object: phones and emails lists and custom ``x_`` attributes.
    Column("attributes", Text),
    Column("created_run", Integer),
    Column("updated_run", Integer),
    Column("created_at", Timestamp),
    Column("updated_at", Timestamp),
    Column("deleted_at", Timestamp),
    Column("merged_into", Integer),
)

identifiers = Table(
    "identifiers",
    metadata,
    Column("kind", String(16), nullable=False),
    Column("value", String(320), nullable=False),
    Column("contact_id", Integer, ForeignKey("contacts.id"), nullable=False),
    PrimaryKeyConstraint("kind", "value", "contact_id"),
    Index(None, "contact_id"),
)

source_records = Table(
    "source_records",
    metadata,
    Column("connector", String(100), nullable=False),
    Column("external_id", String(512), nullable=False),
    Column("contact_id", Integer, ForeignKey("contacts.id"), nullable=False),
    #: read: the record came from the tool; write: hub created it in the tool.
    Column("origin", String(8), nullable=False),
    Column("payload_hash", String(32)),
    #: JSON: the record's normalized canonical values (what it contributes to the contact).
    Column("record_values", Text),
    #: When the value last changed: the tool's timestamp, else when hub saw the change;
    #: NULL for a connector's initial load (ranked by source priority alone).
    Column("changed_at", Timestamp),
    Column("first_run", Integer),
    Column("changed_run", Integer),
    Column("removed_at", Timestamp),
    PrimaryKeyConstraint("connector", "external_id"),
    Index(None, "contact_id"),
)

changes = Table(
    "changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("contact_id", Integer, nullable=False),
    Column("field", String(64), nullable=False),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("connector", String(100)),
    Column("external_id", String(512)),
    Column("reason", String(16), nullable=False),
    Column("at", Timestamp, nullable=False),
    Index(None, "contact_id"),
    Index(None, "run_id"),
)

cursors = Table(
    "cursors",
    metadata,
    Column("connector", String(100), nullable=False),
    Column("stream", String(100), nullable=False),
    Column("value", Text),
    #: Fingerprint of the connector's options and mapping when the cursor was saved.
    Column("fingerprint", String(32)),
    Column("run_id", Integer),
    Column("updated_at", Timestamp),
    PrimaryKeyConstraint("connector", "stream"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("destination", String(100), nullable=False),
    Column("contact_id", Integer, nullable=False),
    Column("op", String(8), nullable=False),
    Column("payload", Text),
    Column("payload_hash", String(32)),
    #: pending, sent, retry, rejected
    Column("status", String(16), nullable=False),
    Column("sent_hash", String(32)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("run_id", Integer),
    Column("updated_at", Timestamp),
    PrimaryKeyConstraint("destination", "contact_id"),
    Index(None, "destination", "status"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connector", String(100), nullable=False),
    Column("external_id", String(512), nullable=False),
    Column("raw", Text),
    Column("raw_hash", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    #: open (record not imported), partial (imported without the bad values), resolved
    Column("status", String(16), nullable=False),
    Column("run_id", Integer),
    Column("at", Timestamp),
    UniqueConstraint("connector", "external_id", "raw_hash"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("contact_id", Integer, nullable=False),
    Column("type", String(32), nullable=False),
    Column("connector", String(100), nullable=False),
    Column("external_id", String(512), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("payload", Text),
    Column("run_id", Integer),
    #: A purchase's amount and ISO currency (``EventReport.amount``/``currency``).
    Column("amount", Float),
    Column("currency", String(3)),
    #: the source record (its id at ``connector``) that reported the event, if a record did:
    #: ``hub split --record`` takes its events along (history-only events have none)
    Column("record", String(512)),
    UniqueConstraint("connector", "type", "external_id"),
    Index(None, "contact_id"),
    #: covering: the categories pass reads purchases from the index alone
    Index(None, "contact_id", "type", "at", "amount", "currency"),
)

consents = Table(
    "consents",
    metadata,
    Column("contact_id", Integer, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("source", String(100)),
    Column("at", Timestamp),
    Column("proof", Text),
    PrimaryKeyConstraint("contact_id", "channel"),
)

match_reviews = Table(
    "match_reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: the pair, smaller contact id first
    Column("contact_a", Integer, nullable=False),
    Column("contact_b", Integer, nullable=False),
    Column("probability", Float),
    #: JSON list of per-field evidence: field, level, weight, detail
    Column("evidence", Text),
    #: pending (asked in ``hub review``), accepted (one person), rejected (two people)
    Column("status", String(16), nullable=False),
    Column("run_id", Integer),
    Column("created_at", Timestamp),
    Column("decided_at", Timestamp),
    Column("decided_by", String(100)),
    UniqueConstraint("contact_a", "contact_b"),
    Index(None, "contact_b"),
    Index(None, "status"),
)

#: What a merge moved from a merged-away contact besides its records (those are in the
#: change log): its events, web client ids and consents, so ``hub split`` can give them
#: back. One row per item: ``event`` (item: the event id), ``client_id`` (item: JSON
#: ``[kind, value, added]``, added: the survivor did not hold it before), ``consent``
#: (item: JSON of the merged-away contact's consent row), ``review`` (item: JSON of a
#: review pair of the merged-away contact as it was, and ``added``: the survivor got it),
#: ``override`` (item: JSON of an ``overrides`` row of the survivor, which the merge drops).
merge_moves = Table(
    "merge_moves",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("survivor", Integer, nullable=False),
    Column("loser", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("item", Text, nullable=False),
    Index(None, "survivor", "loser"),
    Index(None, "loser"),
)

#: Full names that joined two sides on the name alone while a sync read its sources:
#: those joins are made after all the sources are read (``Sync._settle_names``), when
#: every holder of the name is in, so they do not depend on the order records came in.
#: A row is written with the batch that found the join and removed when it is decided.
pending_names = Table(
    "pending_names",
    metadata,
    #: the ``name`` identifier (surname|first-name key)
    Column("value", String(320), primary_key=True),
    #: the connector whose record found it (the merge is logged under it)
    Column("connector", String(100), nullable=False),
)

#: Values an undo put back over what the contact's records derive (``hub undo``).
#: An override holds while the records still derive ``masked``; once a source brings a
#: new value for the field, the source wins again and the override is dropped.
#: Field ``deleted`` (an undone creation) masks the whole derived contact.
overrides = Table(
    "overrides",
    metadata,
    Column("contact_id", Integer, nullable=False),
    Column("field", String(64), nullable=False),
    #: JSON: the value the contact keeps (null: the field is empty)
    Column("value", Text),
    #: JSON: the derived value this override replaces
    Column("masked", Text),
    Column("run_id", Integer, nullable=False),
    Column("created_at", Timestamp),
    PrimaryKeyConstraint("contact_id", "field"),
)

#: Salted hashes of erased people's identifiers (``hub forget``): a record carrying one
#: is skipped by every sync, so no connector imports the person again.
suppression = Table(
    "suppression",
    metadata,
    Column("hash", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("run_id", Integer),
    Column("created_at", Timestamp),
    PrimaryKeyConstraint("hash"),
)

#: Store-wide settings hub keeps for itself (the suppression salt).
store_settings = Table(
    "store_settings",
    metadata,
    Column("name", String(64), nullable=False),
    Column("value", Text),
    PrimaryKeyConstraint("name"),
)

#: Who read or exported how many contacts, and whether unmasked (``hub audit``).
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(100), nullable=False),
    #: export, show, reconcile ...
    Column("action", String(32), nullable=False),
    #: what was read: contacts, links, a contact id, a connector
    Column("target", Text),
    Column("rows", Integer),
    Column("unmasked", Integer, nullable=False, default=0),
    Column("host", String(255)),
    Index(None, "at"),
)

#: Requests ``hub serve`` accepted, stored before the sender got its 200; the webhook
#: connector reads them into the sync by ``id``. One row per (connector, delivery). Rows
#: of connector ``NAME#signed`` (a name hub.yaml cannot have) hold no fields: each keeps
#: the digest of a signed request's signature for twice the replay window, so the same
#: signed request under another delivery header is a duplicate (``hub.serve``).
inbox = Table(
    "inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connector", String(100), nullable=False),
    #: The sender's id of the delivery (Tilda's tranid, a delivery header) or a body hash.
    Column("delivery_id", String(200), nullable=False),
    Column("received_at", Timestamp, nullable=False),
    Column("content_type", String(100)),
    #: JSON object: the submitted fields as text (secrets of the sender removed).
    Column("fields", Text, nullable=False),
    Column("remote_addr", String(64)),
    UniqueConstraint("connector", "delivery_id"),
    # an id is never given twice: a webhook connector's cursor is the last id it read, and
    # the newest row may be deleted (hub forget, hub leads clean)
    sqlite_autoincrement=True,
)

#: A contact's categories (``hub.segments``, docs/segments.md): one row per live contact,
#: recomputed for the contacts each sync touches. ``orders`` … ``last_activity_at`` are the
#: facts they were computed from; ``next_at`` is the earliest time a value can change by the
#: clock alone (temperature, recency, a stopped client), so time-driven updates are cheap.
categories = Table(
    "categories",
    metadata,
    Column("contact_id", Integer, nullable=False),
    Column("stage", String(32)),
    Column("temperature", String(16)),
    Column("rfm_r", Integer),
    Column("rfm_f", Integer),
    Column("rfm_m", Integer),
    Column("rfm", String(3)),
    Column("rfm_segment", String(32)),
    Column("abc", String(1)),
    Column("region", Text),
    Column("activity", Text),
    Column("orders", Integer, nullable=False),
    Column("revenue", Float, nullable=False),
    Column("first_order_at", Timestamp),
    Column("last_order_at", Timestamp),
    Column("last_activity_at", Timestamp),
    Column("next_at", Timestamp),
    Column("run_id", Integer),
    Column("updated_at", Timestamp),
    PrimaryKeyConstraint("contact_id"),
    Index(None, "next_at"),
)

#: Members of each segment defined under ``segments:`` in hub.yaml.
segment_members = Table(
    "segment_members",
    metadata,
    Column("segment", String(64), nullable=False),
    Column("contact_id", Integer, nullable=False),
    Column("since", Timestamp),
    Column("run_id", Integer),
    PrimaryKeyConstraint("segment", "contact_id"),
    Index(None, "contact_id"),
)

#: Visits read by a web analytics connector whose client id no contact holds yet
#: (``hub.analytics``): they become that contact's ``visit`` events when a form with the
#: client id arrives. One row per (connector, the tool's visit id).
pending_visits = Table(
    "pending_visits",
    metadata,
    Column("connector", String(100), nullable=False),
    Column("external_id", String(512), nullable=False),
    #: identifier kind of the client id (ym_client_id, ga_client_id, ga_user_id) and its value
    Column("kind", String(16), nullable=False),
    Column("value", String(320), nullable=False),
    Column("at", Timestamp, nullable=False),
    #: JSON object: the visit event's payload
    Column("payload", Text),
    Column("run_id", Integer),
    PrimaryKeyConstraint("connector", "external_id"),
    Index(None, "kind", "value"),
    Index(None, "at"),
)
