"""Rolling request counts: a ring of fixed-width time buckets, for recent rates and ratios.

Totals since start show little of the last few minutes, so the request path also
adds each request to the bucket of the current time slot. A bucket is reused once
its slot has left the ring, so memory is fixed: `buckets` lists of small integers.
Counts stay plain integers, so rings of several worker processes merge by adding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Width of one bucket, in seconds: the resolution of the dashboard's charts.
BUCKET_SECONDS = 10
# Buckets kept: 90 buckets of 10 s cover the 15 minutes the dashboard draws.
SERIES_BUCKETS = 90


class RollingCounts:
    """Counts of named fields per time slot, over the last `buckets * bucket_seconds` seconds."""

    __slots__ = ("fields", "bucket_seconds", "since", "_slots", "_counts")

    def __init__(self, fields: Sequence[str], *, since: float, bucket_seconds: int = BUCKET_SECONDS,
                 buckets: int = SERIES_BUCKETS) -> None:
        self.fields = tuple(fields)
        self.bucket_seconds = bucket_seconds
        # Counting started here (start or reset); windows never reach back before it.
        self.since = since
        self._slots: list[int] = [-1] * buckets
        self._counts: list[list[int]] = [[0] * len(self.fields) for _ in range(buckets)]

    def add(self, index: int, now: float) -> None:
        """Count one event of field `index` at time `now` (epoch seconds)."""
        slot = int(now // self.bucket_seconds)
        position = slot % len(self._slots)
        counts = self._counts[position]
        if self._slots[position] != slot:
            self._slots[position] = slot
            counts = self._counts[position] = [0] * len(self.fields)
        counts[index] += 1

    def _bucket(self, slot: int) -> list[int] | None:
        position = slot % len(self._slots)
        return self._counts[position] if self._slots[position] == slot else None

    def _covered(self, slot: int, now: float) -> float:
        """Return how many seconds of a slot lie between `since` and `now`."""
        start = max(slot * self.bucket_seconds, self.since)
        end = min((slot + 1) * self.bucket_seconds, now)
        return max(0.0, end - start)

    def window(self, seconds: int, now: float) -> tuple[dict[str, int], float]:
        """Return the counts of the last `seconds` (rounded up to whole buckets) and the seconds covered.

        The window ends at `now` and includes the current, partly elapsed bucket, so
        its length is up to one bucket shorter than `seconds` right after a bucket starts.
        """
        current = int(now // self.bucket_seconds)
        wanted = min(len(self._slots), max(1, -(-seconds // self.bucket_seconds)))
        totals = [0] * len(self.fields)
        covered = 0.0
        for slot in range(current - wanted + 1, current + 1):
            covered += self._covered(slot, now)
            counts = self._bucket(slot)
            if counts is not None:
                totals = [total + count for total, count in zip(totals, counts)]
        return dict(zip(self.fields, totals)), covered

    def series(self, now: float) -> dict[str, Any]:
        """Return per-bucket counts of every bucket in the ring, oldest first, ending with the current one."""
        current = int(now // self.bucket_seconds)
        slots = range(current - len(self._slots) + 1, current + 1)
        columns: dict[str, list[int]] = {name: [] for name in self.fields}
        covered: list[float] = []
        for slot in slots:
            counts = self._bucket(slot) or [0] * len(self.fields)
            for name, count in zip(self.fields, counts):
                columns[name].append(count)
            covered.append(round(self._covered(slot, now), 3))
        return {
            "bucket_seconds": self.bucket_seconds,
            "start": slots[0] * self.bucket_seconds,
            "covered_seconds": covered,
            "counts": columns,
        }
