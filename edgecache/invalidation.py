"""Acting on inventory events: purge a SKU's pages, bound purge storms, refetch, mark staleness.

Storm bounding: a page purged by an event opens a window of
`inventory.storm_interval` seconds. Events for it inside that window are merged
into one purge at the window's end (hard when any of them was hard), so a category
page listing hundreds of busy SKUs is refreshed once per window, not once per event.
The exception is an event that makes the page's claimed availability wrong, such as
a restock of a SKU the page shows as sold out. It purges at once, up to
`inventory.storm_flip_purges` purges per page and window, because a product that sells
out and comes back within one window would otherwise show the wrong availability for
the rest of it. Beyond that cap, and for pages whose tags came without claims, a page
can stay wrong for up to one window. The staleness meter counts every response
served from it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .config import InventorySettings
from .entry import Entry
from .inventory import AVAILABLE_STATES, OUT_OF_STOCK, Action, Decision, EventResult, InventoryEvent, InventoryTracker
from .log import inventory_logger
from .refetch import Refetcher, can_refetch
from .staleness import StalenessMeter
from .stats import Stats
from .store import MemoryStore

# Storm windows kept before the ended ones are pruned.
MAX_STORM_WINDOWS = 100_000
# Shortest pause, in seconds, between two looks for deferred purges that are due.
MIN_FLUSH_PAUSE = 0.05


@dataclass(frozen=True, slots=True)
class PendingPurge:
    """A purge held back by a storm window."""

    hard: bool
    # Arrival of the first event it stands for: pages fetched after it are already right.
    first_event_at: float
    due: float
    # False when another node refetches the page, because that node received the event.
    refetch: bool = True


@dataclass(slots=True)
class StormWindow:
    """A page's current storm window: when its first purge happened, and how many purges it had."""

    started: float
    purges: int


def makes_claim_wrong(claimed: str | None, state: str) -> bool:
    """Return whether a page claiming `claimed` for a SKU is wrong about ordering it once the SKU is in `state`."""
    if claimed == OUT_OF_STOCK:
        return state in AVAILABLE_STATES
    return claimed in AVAILABLE_STATES and state == OUT_OF_STOCK


class InventoryInvalidator:
    """Applies inventory events to the tracker and their purges to the store."""

    def __init__(self, settings: InventorySettings, *, tracker: InventoryTracker, store: MemoryStore,
                 staleness: StalenessMeter, refetcher: Refetcher, stats: Stats) -> None:
        self.settings = settings
        self.tracker = tracker
        self.store = store
        self.staleness = staleness
        self.refetcher = refetcher
        self.stats = stats
        self._windows: dict[str, StormWindow] = {}
        self._pending: dict[str, PendingPurge] = {}

    def __repr__(self) -> str:
        return f"<InventoryInvalidator tracked={len(self.tracker)} pending={len(self._pending)}>"

    @property
    def pending(self) -> int:
        return len(self._pending)

    def pending_purge(self, full_key: str) -> PendingPurge | None:
        """Return the purge of a page that waits for its storm window to end, if there is one."""
        return self._pending.get(full_key)

    def apply(self, events: Sequence[InventoryEvent], now: float, *, count_events: bool = True,
              refetch: bool = True) -> dict[str, Any]:
        """Apply events in order; return what they did, for the API response.

        `count_events=False` leaves the per-result event counters alone, for records that
        another node or worker already counted; `refetch=False` purges without refetching.
        """
        self.flush_due(now)
        results = {result.value: 0 for result in EventResult}
        purged = deferred = 0
        for event in events:
            decision = self.tracker.apply(event, low_stock_threshold=self.settings.low_stock_threshold, now=now)
            results[decision.result] += 1
            if count_events:
                self.count(decision.result)
            if decision.action is Action.NONE:
                continue
            if inventory_logger.isEnabledFor(logging.DEBUG):
                inventory_logger.debug("event sku=%s version=%s result=%s previous=%s state=%s action=%s",
                                       event.sku, event.version, decision.result, decision.previous,
                                       decision.state, decision.action)
            now_purged, now_deferred = self._invalidate(event.sku, decision, now, refetch=refetch)
            purged += now_purged
            deferred += now_deferred
        return {"received": len(events), **results, "purged": purged, "deferred": deferred}

    def count(self, result: EventResult) -> None:
        self.stats.inventory_events[result] = self.stats.inventory_events.get(result, 0) + 1

    def records(self, skus: Sequence[str]) -> list[InventoryEvent]:
        """Return the latest state of each known SKU as an event, for other workers to adopt."""
        found = []
        for sku in dict.fromkeys(skus):
            record = self.tracker.record(sku)
            if record is not None:
                found.append(InventoryEvent(sku, state=record.state, version=record.version))
        return found

    def fence(self, tags: frozenset[str], request_time: float) -> bool:
        """Return whether a fill must be stored stale, counting the fills it fences."""
        fenced = self.tracker.is_fenced(tags, request_time)
        if fenced:
            self.stats.fenced_fills += 1
        return fenced

    def flush_due(self, now: float) -> int:
        """Apply the deferred purges whose storm window has ended; return how many pages they purged."""
        purged = 0
        for full_key, pending in list(self._pending.items()):
            if pending.due > now:
                continue
            del self._pending[full_key]
            entry = self.store.peek(full_key)
            if entry is not None and entry.request_time <= pending.first_event_at:
                self._purge([entry], hard=pending.hard, now=now, refetch=pending.refetch)
                purged += 1
        if len(self._windows) > MAX_STORM_WINDOWS:
            horizon = now - self.settings.storm_interval
            self._windows = {key: window for key, window in self._windows.items() if window.started > horizon}
        return purged

    async def run(self, clock: Callable[[], float]) -> None:
        """Apply deferred purges as their windows end, until cancelled."""
        pause = max(MIN_FLUSH_PAUSE, self.settings.storm_interval / 4)
        while True:
            await asyncio.sleep(pause)
            if self._pending:
                self.flush_due(clock())

    def _invalidate(self, sku: str, decision: Decision, now: float, *, refetch: bool) -> tuple[int, int]:
        """Purge or defer each page tagged with the SKU; return (purged, deferred)."""
        hard = decision.action is Action.HARD
        interval = self.settings.storm_interval
        due_now: list[Entry] = []
        deferred = 0
        for full_key in self.store.keys_for_tag(self.tracker.tag_for(sku)):
            entry = self.store.peek(full_key)
            if entry is None:
                continue
            claimed = dict(entry.claims).get(sku)
            if decision.result is EventResult.FIRST_SEEN and claimed == decision.state:
                continue  # No earlier state to compare with, but the page already shows this one.
            window = self._windows.get(full_key)
            if window is not None and now - window.started < interval and not (
                    window.purges < self.settings.storm_flip_purges and makes_claim_wrong(claimed, decision.state)):
                self._defer(full_key, hard=hard, now=now, due=window.started + interval, refetch=refetch)
                self.staleness.mark(entry, now)
                deferred += 1
            else:
                due_now.append(entry)
        self._purge(due_now, hard=hard, now=now, refetch=refetch)
        return len(due_now), deferred

    def _defer(self, full_key: str, *, hard: bool, now: float, due: float, refetch: bool) -> None:
        pending = self._pending.get(full_key)
        if pending is not None:
            hard = hard or pending.hard
            now = min(now, pending.first_event_at)
            refetch = refetch or pending.refetch
        self._pending[full_key] = PendingPurge(hard, now, due, refetch)
        self.stats.inventory_purges["deferred"] = self.stats.inventory_purges.get("deferred", 0) + 1

    def _purge(self, entries: list[Entry], *, hard: bool, now: float, refetch: bool = True) -> None:
        if not entries:
            return
        keys = [entry.store_key for entry in entries]
        self.store.purge_keys(keys, soft=not hard, now=now)
        kind = "hard" if hard else "soft"
        self.stats.inventory_purges[kind] = self.stats.inventory_purges.get(kind, 0) + len(entries)
        for entry in entries:
            window = self._windows.get(entry.store_key)
            if window is None or now - window.started >= self.settings.storm_interval:
                self._windows[entry.store_key] = StormWindow(now, 1)
            else:
                window.purges += 1
            if not hard:
                self.staleness.mark(entry, now)
            if refetch and self.settings.refresh_on_event and can_refetch(entry):
                # A soft-purged entry is still stored, so a 304 can freshen it; a removed one cannot.
                self.refetcher.refetch_in_background(entry, revalidate=not hard)
                self.stats.event_refreshes += 1
