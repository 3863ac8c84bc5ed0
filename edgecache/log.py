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

    Lines held back are counted and the count goes into the next line logged for the
    same key, so an origin outage logs a few lines per second, not one per request.
    """

    def __init__(self, logger: logging.Logger, *, interval: float = 1.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            self.logger.warning(message + " (%d similar lines held back)", *args, held)
        else:
            self.logger.warning(message, *args)
