"""Named loggers, one per subsystem."""

import logging
import time

access_logger = logging.getLogger("edgecache.access")
origin_logger = logging.getLogger("edgecache.origin")
cache_logger = logging.getLogger("edgecache.cache")
admin_logger = logging.getLogger("edgecache.admin")
server_logger = logging.getLogger("edgecache.server")
inventory_logger = logging.getLogger("edgecache.inventory")


class RateLimitedWarning:
    """Warnings on one logger, at most one per key every `interval` seconds.

    Suppressed lines are counted and the count goes into the next line logged for the
    same key, so an origin outage logs one line per second and reason, not one per request.
    """

    def __init__(self, logger: logging.Logger, *, interval: float = 1.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            self.logger.warning(message + " (%d similar lines suppressed)", *args, suppressed)
        else:
            self.logger.warning(message, *args)
