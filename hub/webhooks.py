"""What ``hub serve`` hands a webhook connector, and what the connector answers.

A connector that receives webhooks declares the ``webhook`` capability and has a
``receive(request)`` method and a ``max_body`` attribute. The server stores an
``Accepted`` delivery in the inbox before it answers 200; a ``Probe`` (a sender
checking the URL) is answered 200 and stored nowhere; a ``Rejected`` request gets its
status and is logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WEBHOOK = "webhook"


@dataclass(frozen=True)
class WebhookRequest:
    body: bytes
    #: Lower-case header names.
    headers: dict[str, str] = field(default_factory=dict)
    #: Query parameters of the URL (the last of repeated ones).
    query: dict[str, str] = field(default_factory=dict)
    #: The media type of ``Content-Type``, lower case, without parameters.
    media_type: str = ""
    #: The ``charset`` parameter of ``Content-Type``, lower case; empty when not given.
    charset: str = ""
    #: The ``boundary`` parameter of ``Content-Type`` (``multipart/form-data``), as sent.
    boundary: str = ""
    remote_addr: str | None = None


@dataclass(frozen=True)
class Accepted:
    #: The sender's id of the delivery, or a hash of the body: a second delivery with it is a duplicate.
    delivery_id: str
    #: The submitted fields as text.
    fields: dict[str, str]
    #: The body of the 200 answer when the sender expects its own word back (SMS.ru: ``100``),
    #: sent as text/plain; ``None``: hub's JSON answer.
    reply: str | None = None
    #: A signed request: a key of what its signature covers (timestamp and body), and for how
    #: many seconds a replay of it could pass the signature check. ``delivery_id`` may come
    #: from a header the signature does not cover: within that time the same signed request
    #: under another delivery id is a duplicate too.
    replay_key: str | None = None
    replay_ttl: int = 0


@dataclass(frozen=True)
class Probe:
    """A sender's test of the URL (Tilda's ``test=test``): answered 200, not stored."""

    #: As ``Accepted.reply``.
    reply: str | None = None


@dataclass(frozen=True)
class Rejected:
    status: int
    reason: str
