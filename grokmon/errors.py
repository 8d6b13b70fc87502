"""The one exception family: every error a user can cause is a GrokmonError with context.

The CLI prints these as a single line and exits 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GrokmonError(Exception):
    """A user-facing error: the message names the file, the key and what was expected."""


class ConfigError(GrokmonError):
    """A profile, override or run directory that does not describe a valid run."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        self.source = source
        self.key = key
        parts = [p for p in (source, key) if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
