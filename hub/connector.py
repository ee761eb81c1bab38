"""The base class every connector extends.

A connector knows one tool. It reads raw records from it and writes outbound
items to it; it does nothing else. Mapping, normalization, identity, retries
of whole runs, quarantine, cursors and the change log belong to the core.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from hub.model import Checkpoint, OutboundItem, RawRecord, WriteResult


def check_timezone(value: str) -> str:
    """An IANA time zone name as given; ``ValueError`` for one that is not known."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name like UTC or Europe/Moscow") from None
    return value

READ = "read"
WRITE = "write"


class ConnectorOptions(BaseModel):
    """Base of a connector's options model: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class MessagingOptions(ConnectorOptions):
    """Options every email and SMS service connector has (``consent_channel`` set)."""

    require_consent: bool = Field(
        True,
        description="Push only contacts with a consent basis (subscribed) on the connector's channel; "
        "opted-out contacts are only ever updated as unsubscribed where they already are.",
    )
    max_messages_30d: int | None = Field(
        None, ge=0,
        description="Hold back contacts sent more messages than this in the last 30 days (email and SMS "
        "sends the tools report); they stay queued until they are under it. Opt-outs always go.",
    )


@dataclass(frozen=True)
class ConnectorContext:
    """What the core hands a connector when it builds one."""

    #: The connector's name in hub.yaml (not the plugin name).
    name: str
    #: Folder of hub.yaml: relative paths in options resolve against it.
    base_dir: Path
    logger: logging.Logger
    #: The run writes nothing (``hub sync --dry-run``): a connector that would write to
    #: its tool while reading (to give rows keys, say) must not.
    dry_run: bool = False
    #: The canonical store (``hub.store.Store``), for connectors whose tool is hub itself:
    #: the webhook connector reads the requests ``hub serve`` stored in its inbox.
    store: Any = None

    def resolve_path(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.base_dir / path


class Connector:
    """Subclass this, set the class attributes and implement what you declare.

    * ``plugin``: the name used as ``plugin:`` in hub.yaml.
    * ``Options``: a ``ConnectorOptions`` subclass with the connector's own keys.
    * ``capabilities``: ``{"read"}``, ``{"write"}`` or both.
    * ``write_batch_size``: how many items ``write`` takes at once; ``None`` means all
      pending items in one call (files that are rewritten whole).
    """

    plugin: ClassVar[str]
    Options: ClassVar[type[ConnectorOptions]] = ConnectorOptions
    capabilities: ClassVar[frozenset[str]] = frozenset()
    write_batch_size: ClassVar[int | None] = 500
    #: One line for ``hub plugins``.
    description: ClassVar[str] = ""
    #: The messaging channel whose consent the tool holds (``email``, ``sms``), or ``None``.
    #: Such a connector reports ``RawRecord.consents``, gets ``OutboundItem.consent`` and
    #: has ``MessagingOptions``: the core holds back contacts without a consent basis.
    consent_channel: ClassVar[str | None] = None
    #: The tool is a suppression list of the channel (an SMS stop list): the core sends it
    #: only contacts who opted out there or anywhere else.
    suppression_list: ClassVar[bool] = False
    #: A cell is free text that the connector's own read splits (a sheet, a CSV file): when
    #: it also reads, the core writes into the ``phone`` and ``email`` columns the main
    #: value followed by the others the row held, joined with ", ", so a cell holding two
    #: numbers keeps both.
    multi_value_cells: ClassVar[bool] = False
    #: Canonical field -> raw column the connector fills itself (the webhook connector's
    #: lead status): added to the connector's mapping unless the mapping maps that field.
    implied_fields: ClassVar[dict[str, str]] = {}

    def __init__(self, options: ConnectorOptions, context: ConnectorContext):
        self.options = options
        self.context = context

    def read(self, cursor: str | None) -> Iterable[RawRecord | Checkpoint]:
        """Yield records changed since ``cursor`` (all of them when ``None``),
        each ``Checkpoint`` after the records it covers. Raise ``RetriableError`` or
        ``FatalError`` for failures of the tool; raise nothing for a bad row: yield
        it, the core quarantines it."""
        raise NotImplementedError(f"{type(self).__name__} cannot read")

    def columns(self) -> list[str] | None:
        """The columns the tool has now, so the core can check the mapping before a
        run; ``None`` when the tool has no fixed columns."""
        return None

    def write(self, items: Sequence[OutboundItem]) -> list[WriteResult]:
        """Upsert or delete ``items`` in the tool; return one result per item.

        Must be idempotent: the core may send an item again after a crash."""
        raise NotImplementedError(f"{type(self).__name__} cannot write")

    def new_external_id(self, item: OutboundItem) -> str | None:
        """The id the tool will know a new contact by, when the connector chooses it
        itself (a key it writes into the row), else ``None``. The core links the contact
        to that id before ``write``: a run killed after the write but before its results
        are stored then reads the row back as that contact, not as someone new."""
        return None

    def close(self) -> None:
        """Release what the connector holds (sessions, files)."""
