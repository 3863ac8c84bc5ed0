"""Measured staleness: how often the cache served a page that an inventory event had made wrong.

When a state change arrives for a SKU, every stored page tagged with it that stays in
the store (soft-purged, or waiting out a storm window) is marked with the change's
arrival time. Serving a marked page whose origin request started before the mark is
a known-stale response: its lag is the time from the mark to the serving, and its
direction compares what the page claims with the SKU's latest state. The hit path
pays one dict lookup per response for this.
"""

from __future__ import annotations

from enum import StrEnum

from .entry import Entry
from .inventory import AVAILABLE_STATES, OUT_OF_STOCK, InventoryTracker
from .key import CacheKey
from .stats import Stats

# Marks kept at most; the oldest are dropped first (they belong to pages long refreshed or evicted).
MAX_MARKS = 100_000
KNOWN_CLAIMS = AVAILABLE_STATES | {OUT_OF_STOCK}


class Direction(StrEnum):
    """How a known-stale page was wrong."""

    # The page offers a product that is sold out: an oversell.
    CLAIMED_AVAILABLE_OUT_OF_STOCK = "claimed_available_out_of_stock"
    # The page shows a product as sold out that can be ordered again: a lost sale.
    CLAIMED_UNAVAILABLE_IN_STOCK = "claimed_unavailable_in_stock"
    # The state changed, but within the available or the unavailable side (in_stock to low_stock).
    SAME_AVAILABILITY = "same_availability"
    # The page claimed nothing readable for the changed SKU (tags from the origin header).
    UNKNOWN = "unknown"


class StalenessMeter:
    """Marks pages made wrong by inventory events and counts the responses served from them."""

    def __init__(self, tracker: InventoryTracker, stats: Stats) -> None:
        self.tracker = tracker
        self.stats = stats
        # Arrival time of the first state change newer than the stored page, per key.
        self._marks: dict[CacheKey, float] = {}

    def __len__(self) -> int:
        return len(self._marks)

    def mark(self, entry: Entry, changed_at: float) -> None:
        """Record that a state change arrived at `changed_at` for one of the entry's SKUs."""
        current = self._marks.get(entry.key)
        if current is not None and current > entry.request_time:
            return  # An earlier change already made this copy wrong; the lag counts from it.
        self._marks.pop(entry.key, None)
        self._marks[entry.key] = changed_at
        if len(self._marks) > MAX_MARKS:
            del self._marks[next(iter(self._marks))]

    def known_stale_since(self, entry: Entry) -> float | None:
        """Return when the first state change newer than the entry arrived, or None if none did."""
        marked_at = self._marks.get(entry.key)
        if marked_at is None or marked_at <= entry.request_time:
            return None
        return marked_at

    def observe(self, entry: Entry, now: float) -> None:
        """Count a response served from `entry` when an event made it known stale."""
        marked_at = self._marks.get(entry.key)
        if marked_at is None:
            return
        if marked_at <= entry.request_time:
            # The page was fetched again after the change.
            # NOTE: variants of one path share a mark, so a refetched variant clears it for the others.
            del self._marks[entry.key]
            return
        self.stats.inventory_lag.observe(max(0.0, now - marked_at))
        direction = self.direction(entry)
        self.stats.known_stale[direction] = self.stats.known_stale.get(direction, 0) + 1

    def direction(self, entry: Entry) -> Direction:
        """Compare the page's claims with the latest states; an oversell outranks a lost sale."""
        found = Direction.UNKNOWN
        for sku, claimed in entry.claims:
            latest = self.tracker.state(sku)
            if latest is None or claimed not in KNOWN_CLAIMS:
                continue
            if claimed in AVAILABLE_STATES and latest == OUT_OF_STOCK:
                return Direction.CLAIMED_AVAILABLE_OUT_OF_STOCK
            if claimed == OUT_OF_STOCK and latest in AVAILABLE_STATES:
                found = Direction.CLAIMED_UNAVAILABLE_IN_STOCK
            elif found is Direction.UNKNOWN:
                found = Direction.SAME_AVAILABILITY
        return found
