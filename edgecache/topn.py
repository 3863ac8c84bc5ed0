"""Heavy hitters in bounded memory: the Space-Saving algorithm with batched eviction.

Metwally, Agrawal and El Abbadi, "Efficient Computation of Frequent and Top-k
Elements in Data Streams" (ICDT 2005) keep k counters and give a new key the
smallest counter plus one. Finding that smallest counter on every new key costs a
scan or a sorted structure, so this variant lets the table grow to twice its
capacity and then keeps the `capacity` largest counters in one sort. Every key
outside the table has a true count of at most `floor` (the largest count dropped),
so a new key starts at `floor + 1` and its error is at most `floor`. Counting a key
already in the table is one dict update.
"""

from __future__ import annotations

from typing import Any


class TopCounter:
    """Approximate counts of the most frequent keys, holding at most `2 * capacity` keys."""

    __slots__ = ("capacity", "counts", "errors", "floor")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity}")
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        # Overestimate bound of keys that entered after an eviction; absent means exact.
        self.errors: dict[str, int] = {}
        self.floor = 0

    def __repr__(self) -> str:
        return f"<TopCounter keys={len(self.counts)} capacity={self.capacity} floor={self.floor}>"

    def add(self, key: str) -> None:
        count = self.counts.get(key)
        if count is not None:
            self.counts[key] = count + 1
            return
        if len(self.counts) >= 2 * self.capacity:
            self._compact()
        self.counts[key] = self.floor + 1
        if self.floor:
            self.errors[key] = self.floor

    def _compact(self) -> None:
        """Keep the `capacity` largest counters and raise `floor` to the largest one dropped."""
        ranked = sorted(self.counts.items(), key=lambda item: item[1], reverse=True)
        self.floor = max(self.floor, ranked[self.capacity][1])
        self.counts = dict(ranked[:self.capacity])
        self.errors = {key: error for key, error in self.errors.items() if key in self.counts}

    def top(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Return the largest counters, largest first: key, count and its maximum overestimate."""
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        return [{"key": key, "count": count, "error": self.errors.get(key, 0)}
                for key, count in ranked[:limit or self.capacity]]
