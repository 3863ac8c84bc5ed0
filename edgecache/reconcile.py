"""The reconciliation sampler: re-checks hot entries against the origin at a bounded rate.

Inventory events can be lost (a stock write that skipped its hook, a dropped
connection). The sampler catches what they miss: it revalidates, in turn, the most
recently used entries that claim an availability, with their validators, so an
unchanged page costs the origin a 304. A page whose claimed availability changed is
stored fresh and counted as a mismatch. It sends at most
`reconcile.requests_per_second` requests per second, one at a time, and is off at 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .config import ReconcileSettings
from .entry import Entry
from .errors import OriginError
from .log import inventory_logger
from .refetch import Refetcher, can_refetch
from .stats import Stats
from .store import MemoryStore


def availability_differs(stored: Entry, fetched: Entry) -> bool:
    """Return whether two copies of a page claim a different state for any SKU."""
    return dict(stored.claims) != dict(fetched.claims)


class Reconciler:
    """Checks hot entries one after another against the origin."""

    def __init__(self, settings: ReconcileSettings, *, store: MemoryStore, refetcher: Refetcher,
                 stats: Stats) -> None:
        self.settings = settings
        self.store = store
        self.refetcher = refetcher
        self.stats = stats
        self._turn = 0

    def __repr__(self) -> str:
        return f"<Reconciler requests_per_second={self.settings.requests_per_second} turn={self._turn}>"

    @property
    def enabled(self) -> bool:
        return self.settings.requests_per_second > 0

    async def run(self, *, clock: Callable[[], float] | None = None,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Check one entry per period until cancelled; the check's own time counts toward the period.

        `clock` (seconds, the event loop's clock by default) and `sleep` are replaceable for tests.
        """
        period = 1.0 / self.settings.requests_per_second
        clock = clock or asyncio.get_running_loop().time
        while True:
            started = clock()
            await self.check_next()
            await sleep(max(0.0, period - (clock() - started)))

    def next_candidate(self) -> Entry | None:
        """Return the next hot entry to check, taking the hot entries in turn."""
        hot = [entry for entry in self.store.most_recent(self.settings.hot_entries)
               if entry.claims and can_refetch(entry)]
        if not hot:
            return None
        entry = hot[self._turn % len(hot)]
        self._turn += 1
        return entry

    async def check_next(self) -> bool:
        """Revalidate one hot entry; return whether a check reached the origin."""
        entry = self.next_candidate()
        if entry is None:
            return False
        try:
            fetched = await self.refetcher.refetch(entry, revalidate=True)
        except OriginError as exc:
            self.stats.reconcile_errors += 1
            inventory_logger.debug("reconcile check of %s failed: %s", entry.key, exc)
            return True
        if fetched is None:
            return False  # A client's fetch of the page is running; it refreshes the page anyway.
        self.stats.reconcile_checks += 1
        if availability_differs(entry, fetched):
            self.stats.reconcile_mismatches += 1
            inventory_logger.info("reconcile: %s claimed %s, origin now shows %s", entry.key,
                                  dict(entry.claims), dict(fetched.claims))
        return True
