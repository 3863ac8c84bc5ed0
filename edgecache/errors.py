"""Exceptions raised by edgecache, under one root."""


class EdgecacheError(Exception):
    """Root of every exception edgecache raises on purpose."""


class ConfigError(EdgecacheError, ValueError):
    """An invalid setting; the message names the key, the value and what is allowed."""


class ListenError(EdgecacheError, OSError):
    """A listener could not be opened; the message names the setting and the address."""


class OriginError(EdgecacheError, ConnectionError):
    """The origin could not be reached or sent an invalid response."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class OriginTimeoutError(OriginError, TimeoutError):
    """The origin did not respond within the configured timeout."""


class OriginBusyError(OriginError):
    """Every origin connection stayed in use for origin.queue_timeout seconds."""
class SharedTierError(EdgecacheError, ConnectionError):
    """Redis, the shared tier, failed or timed out; edgecache carries on without it."""


class CorruptEntryError(EdgecacheError, ValueError):
    """A value read from the shared tier is not a valid serialized entry, or is too large."""
