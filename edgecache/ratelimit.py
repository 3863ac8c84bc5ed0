"""Per-client token buckets that bound how many forced misses one address may send."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

# Client addresses tracked at once; the least recently seen is forgotten beyond this,
# which bounds memory under a flood from many addresses.
MAX_TRACKED_CLIENTS = 65_536


class RateLimiter:
    """A token bucket per client: `rate` tokens per second, at most `burst` saved up."""

    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float],
                 max_clients: int = MAX_TRACKED_CLIENTS) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        # Client address -> (tokens, time of the last update).
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def __repr__(self) -> str:
        return f"<RateLimiter rate={self.rate:g}/s burst={self.burst} clients={len(self._buckets)}>"

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, client: str) -> float:
        """Take one token for `client`; return 0 when allowed, else the seconds until a token is due."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        tokens, updated = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.rate)
        if tokens >= 1:
            self._remember(client, tokens - 1, now)
            return 0.0
        self._remember(client, tokens, now)
        return (1 - tokens) / self.rate

    def _remember(self, client: str, tokens: float, now: float) -> None:
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)


def retry_after(seconds: float) -> str:
    """Return a Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
