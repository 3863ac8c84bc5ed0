"""Counters and histograms of what the cache did, kept as plain numbers.

The request path only increments integers; /stats and /metrics read them. The
hit ratio is (hit + stale) / lookups, where a lookup is a GET or HEAD without a
query string that consulted the cache. Bypassed requests are not lookups, so they
do not dilute the ratio; a revalidated response counts as a lookup but not a hit.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from typing import Any

from .outcomes import Outcome

# Upper bounds, in seconds, of the served-age and origin-latency histograms.
AGE_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 86400.0, math.inf)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
# Quantiles in /stats are computed over this many most recent observations.
QUANTILE_WINDOW = 10_000


class Histogram:
    """Cumulative-bucket histogram plus a window of recent values for exact quantiles."""

    __slots__ = ("bounds", "counts", "sum", "count", "max", "recent")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.recent: deque[float] = deque(maxlen=QUANTILE_WINDOW)
        self.reset()

    def reset(self) -> None:
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self.count = 0
        self.max = 0.0
        self.recent.clear()

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1
        if value > self.max:
            self.max = value
        self.recent.append(value)

    def quantile(self, q: float) -> float:
        """Return the nearest-rank quantile of the recent window (0 when empty)."""
        if not self.recent:
            return 0.0
        ordered = sorted(self.recent)
        rank = max(1, math.ceil(q * len(ordered)))
        return ordered[rank - 1]

    def cumulative(self) -> list[tuple[str, int]]:
        """Return Prometheus buckets: (upper bound as text, cumulative count)."""
        total = 0
        buckets = []
        for bound, count in zip(self.bounds, self.counts):
            total += count
            buckets.append(("+Inf" if math.isinf(bound) else repr(bound), total))
        return buckets


class Stats:
    """Everything /stats and /metrics report, since start or the last reset."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self.served_age = Histogram(AGE_BUCKETS)
        self.origin_seconds = Histogram(LATENCY_BUCKETS)
        self.reset()

    def reset(self) -> None:
        self.reset_at = time.time()
        self.requests: dict[tuple[str, str], int] = {}
        self.reasons: dict[str, int] = {}
        self.lookups = 0
        self.origin_requests = 0
        self.origin_errors: dict[str, int] = {}
        self.coalesced = 0
        # Forced misses answered with another identical request's origin response.
        self.bypass_coalesced = 0
        self.stale_served = 0
        self.response_bytes = 0
        self.served_age.reset()
        self.origin_seconds.reset()

    def record(self, outcome: Outcome, rule: str, reason: str | None, response_bytes: int) -> None:
        key = (outcome.value, rule)
        self.requests[key] = self.requests.get(key, 0) + 1
        if reason:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self.response_bytes += response_bytes

    def record_origin(self, seconds: float, error_reason: str | None = None) -> None:
        self.origin_requests += 1
        self.origin_seconds.observe(seconds)
        if error_reason:
            self.origin_errors[error_reason] = self.origin_errors.get(error_reason, 0) + 1

    def outcome_count(self, outcome: Outcome) -> int:
        return sum(count for (name, _), count in self.requests.items() if name == outcome.value)

    def hit_ratio(self) -> float:
        if not self.lookups:
            return 0.0
        hits = self.outcome_count(Outcome.HIT) + self.outcome_count(Outcome.STALE)
        return hits / self.lookups

    def snapshot(self, *, cache: dict[str, Any]) -> dict[str, Any]:
        """Return the /stats document."""
        now = time.time()
        requests = {outcome.value: self.outcome_count(outcome) for outcome in Outcome}
        by_rule: dict[str, dict[str, int]] = {}
        for (outcome, rule), count in sorted(self.requests.items()):
            by_rule.setdefault(rule, {})[outcome] = count
        age = self.served_age
        return {
            "requests": {"total": sum(requests.values()), **requests},
            "lookups": self.lookups,
            "hit_ratio": round(self.hit_ratio(), 6),
            "hit_ratio_formula": "(hit + stale) / lookups",
            "by_rule": by_rule,
            "reasons": dict(sorted(self.reasons.items())),
            "rate_limited": self.reasons.get("rate-limited", 0),
            "cache": cache,
            "origin": {
                "requests": self.origin_requests,
                "errors": sum(self.origin_errors.values()),
                "timeouts": self.origin_errors.get("origin-timeout", 0),
                "errors_by_reason": dict(sorted(self.origin_errors.items())),
                "coalesced": self.coalesced,
                "bypass_coalesced": self.bypass_coalesced,
                "busy_rejections": self.origin_errors.get("origin-busy", 0),
                "fetch_seconds": {
                    "p50": self.origin_seconds.quantile(0.5),
                    "p90": self.origin_seconds.quantile(0.9),
                    "p99": self.origin_seconds.quantile(0.99),
                },
            },
            "staleness": {
                "served_age_seconds": {
                    "p50": age.quantile(0.5),
                    "p90": age.quantile(0.9),
                    "p99": age.quantile(0.99),
                    "max": age.max,
                },
                "stale_served": self.stale_served,
            },
            "response_bytes": self.response_bytes,
            "uptime_seconds": round(now - self.started_at, 3),
            "since_reset_seconds": round(now - self.reset_at, 3),
        }
