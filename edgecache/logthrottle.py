"""Rate limiting for repeated log messages, so an origin outage does not flood the log.

The first message of a kind is logged at once; repeats within `interval` seconds are
only counted, and the next message logged after the interval reports how many were
left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# Kinds of message tracked at once; past this, kinds idle for an interval are forgotten.
MAX_KINDS = 1000


class ThrottledLogger:
    """Logs each kind of message at most once per `interval` seconds, counting the repeats."""

    def __init__(self, logger: logging.Logger, *, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        # Per kind: when it was last logged and how many repeats were left out since.
        self._kinds: dict[str, tuple[float, int]] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> bool:
        """Log `message % args` unless a message of `kind` was logged within the interval.

        Returns whether the message was logged.
        """
        now = self.clock()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self.interval:
            self._kinds[kind] = (last[0], last[1] + 1)
            return False
        if last is None and len(self._kinds) >= MAX_KINDS:
            self._forget_idle(now)
        self._kinds[kind] = (now, 0)
        if last is not None and last[1]:
            message += " (%d similar messages left out in the last %.0f s)"
            args = (*args, last[1], now - last[0])
        self.logger.log(level, message, *args)
        return True

    def _forget_idle(self, now: float) -> None:
        self._kinds = {kind: last for kind, last in self._kinds.items() if now - last[0] < self.interval}
        if len(self._kinds) >= MAX_KINDS:
            self._kinds.clear()
