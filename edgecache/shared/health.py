"""Whether Redis responds: failures counted, logged at most once per interval, retried later.

After a failure the shared tier is skipped for `retry_interval` seconds, so that a
Redis outage costs requests nothing beyond the one command that found it down.
The next command after that interval tries again; its success marks Redis up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import redacted_url
from ..log import shared_logger

# Seconds between two log lines about the same kind of repeated failure.
LOG_INTERVAL = 10.0


class RateLimitedLog:
    """Log a warning at most once per interval; count what was left out."""

    __slots__ = ("interval", "clock", "_next_at", "_suppressed")

    def __init__(self, *, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._next_at = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = self.clock()
        if now < self._next_at:
            self._suppressed += 1
            return
        if self._suppressed:
            message += " (%d similar failures not logged)"
            args = (*args, self._suppressed)
        shared_logger.warning(message, *args)
        self._next_at = now + self.interval
        self._suppressed = 0


class SharedHealth:
    """The up or down state of the shared tier, with failure counts."""

    def __init__(self, *, retry_interval: float, url: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_interval = retry_interval
        # The Redis URL for log lines, with any password masked.
        self.url = redacted_url(url) or "Redis"
        self.clock = clock
        self.up = True
        # Failed commands since start, and since the tier last went down.
        self.failures = 0
        self.failures_while_down = 0
        self._retry_at = 0.0
        self._log = RateLimitedLog(clock=clock)

    def __repr__(self) -> str:
        return f"<SharedHealth {self.state} failures={self.failures}>"

    @property
    def state(self) -> str:
        return "up" if self.up else "down"

    def available(self) -> bool:
        """Return whether a command should be sent to Redis now."""
        return self.up or self.clock() >= self._retry_at

    def failed(self, operation: str, error: BaseException) -> None:
        self.failures += 1
        self.failures_while_down += 1
        self._retry_at = self.clock() + self.retry_interval
        if self.up:
            self.up = False
            shared_logger.warning("shared tier down: %s on %s failed: %r; serving from memory and the origin, "
                                  "retrying every %.1f s", operation, self.url, error, self.retry_interval)
            return
        self._log.warning("shared tier still down: %s on %s failed: %r", operation, self.url, error)

    def succeeded(self) -> None:
        if not self.up:
            self.up = True
            count = self.failures_while_down
            shared_logger.info("shared tier up again on %s after %d failed %s", self.url, count,
                               "command" if count == 1 else "commands")
            self.failures_while_down = 0
