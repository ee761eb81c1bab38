"""Secrets never appear in logs, errors, run reports or the change log.

Every value substituted from ``$VAR`` in hub.yaml is registered here; ``redact``
replaces each with ``***``. A logging filter applies it to every log record.
"""

from __future__ import annotations

import logging
import re

#: What ``redact`` puts in place of a secret.
MASK = "***"

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

#: Query parameters that carry keys in URLs of some APIs.
_KEY_PARAMS = re.compile(r"(?i)\b(api_key|api_id|apikey|access_token|token|key|password|secret)=([^&\s\"']+)")
MIN_SECRET_LENGTH = 4
#: The password of a URL (``postgresql+psycopg://user:PASSWORD@host/db``).
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*:)([^\s/@]+)@")


def register_secret(value: str) -> None:
    global _pattern
    if len(value) >= MIN_SECRET_LENGTH and value not in _secrets:
        _secrets.add(value)
        _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))


def redact(text: str) -> str:
    if _pattern is not None:
        text = _pattern.sub(MASK, text)
    if "://" in text:  # a password written into a URL (store: in hub.yaml), not taken from $VAR
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    if "=" not in text:  # the common case, and a hot path: values of the change log
        return text
    return _KEY_PARAMS.sub(lambda m: f"{m.group(1)}={MASK}", text)


def redact_secrets(text: str) -> str:
    """``text`` with the registered secrets masked, and nothing else: for data (the change
    log), where ``key=`` or ``token=`` in a value is the customer's, not a key of hub's."""
    return _pattern.sub(MASK, text) if _pattern is not None else text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
