"""The error taxonomy.

Errors are raised where the problem is known and turned into a message and an
exit code in one place: ``hub.cli``. A user mistake never shows a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3


class HubError(Exception):
    """Base of every error hub raises on purpose."""

    exit_code = EXIT_RUN_FAILED

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(HubError):
    """A person's configuration is wrong: names the file, the key path and the fix."""

    exit_code = EXIT_USAGE

    def __init__(self, file: str, path: str, message: str, hint: str | None = None):
        location = f"{file}: {path}: " if path else f"{file}: "
        super().__init__(location + message, hint)
        self.file = file
        self.path = path


class UsageError(HubError):
    """A command was called with arguments that cannot work."""

    exit_code = EXIT_USAGE


class RetriableError(HubError):
    """A remote failure worth trying again later (rate limit, 5xx, timeout)."""

    def __init__(self, message: str, retry_after: float | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.retry_after = retry_after


class FatalError(HubError):
    """A failure that stops the run: bad credentials, a missing resource, a broken store."""


class GuardError(HubError):
    """A safety guard stopped the run before it did something drastic."""


class LockedError(HubError):
    """Another run holds the store lock."""

    exit_code = EXIT_LOCKED


class StopRequested(HubError):
    """A signal asked the run to stop: it stopped at a batch boundary, with every
    batch before it committed, and is recorded as interrupted."""

    exit_code = 130


class SkippableRecord(HubError):
    """One record cannot be used; it goes to quarantine with this reason and the run goes on."""
