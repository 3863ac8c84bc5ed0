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
from collections.abc import Callable
from typing import Any

from .outcomes import Outcome
from .rolling import RollingCounts
from .topn import TopCounter

# Upper bounds, in seconds, of the served-age and origin-latency histograms.
AGE_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 86400.0, math.inf)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
# Quantiles in /stats are computed over this many most recent observations.
QUANTILE_WINDOW = 10_000
# Fields of the rolling counts: one per outcome, then requests that consulted the cache.
ROLLING_FIELDS = (*(outcome.value for outcome in Outcome), "lookups")
_LOOKUPS_FIELD = len(ROLLING_FIELDS) - 1
_OUTCOME_FIELDS = {outcome: index for index, outcome in enumerate(Outcome)}
# Rolling windows reported in /stats, in seconds.
ROLLING_WINDOWS = {"1m": 60, "5m": 300}
# Entries in each top list by default (setting admin.top_size).
DEFAULT_TOP_SIZE = 20


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

    def counts_by_bound(self) -> list[dict[str, Any]]:
        """Return the count of each bucket on its own (not cumulative), with its upper bound."""
        return [{"le": "+Inf" if math.isinf(bound) else bound, "count": count}
                for bound, count in zip(self.bounds, self.counts)]

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

    def __init__(self, *, clock: Callable[[], float] = time.time, top_size: int = DEFAULT_TOP_SIZE) -> None:
        self.clock = clock
        self.top_size = top_size
        self.started_at = time.time()
        self.served_age = Histogram(AGE_BUCKETS)
        self.origin_seconds = Histogram(LATENCY_BUCKETS)
        self.inventory_lag = Histogram(AGE_BUCKETS)
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
        self.rolling = RollingCounts(ROLLING_FIELDS, since=self.clock())
        self.top_requested = TopCounter(self.top_size)
        self.top_bypassed = TopCounter(self.top_size)
        self.top_fetched = TopCounter(self.top_size)
        self.inventory_lag.reset()
        # Responses served from pages an inventory event had made wrong, by direction.
        self.known_stale: dict[str, int] = {}
        # Inventory events by result, and pages purged by them by kind (hard, soft, deferred).
        self.inventory_events: dict[str, int] = {}
        self.inventory_purges: dict[str, int] = {}
        self.fenced_fills = 0
        self.event_refreshes = 0
        self.reconcile_checks = 0
        self.reconcile_mismatches = 0
        self.reconcile_errors = 0

    def record(self, outcome: Outcome, rule: str, reason: str | None, response_bytes: int) -> None:
        key = (outcome.value, rule)
        self.requests[key] = self.requests.get(key, 0) + 1
        if reason:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self.response_bytes += response_bytes

    def record_recent(self, outcome: Outcome, key: str | None, raw_path: str) -> None:
        """Add a request to the rolling counts and the top lists.

        `key` is the cache key of a request that consulted the cache, else None. A
        bypassed request counts under its path without the query, so query bypasses
        group by path. The query is cut off only here, off the hit path.
        """
        now = self.clock()
        self.rolling.add(_OUTCOME_FIELDS[outcome], now)
        if key is not None:
            self.rolling.add(_LOOKUPS_FIELD, now)
            self.top_requested.add(key)
        elif outcome is Outcome.BYPASS:
            self.top_bypassed.add(raw_path.partition("?")[0])

    def record_fetch(self, key: str) -> None:
        """Count a cache fetch (miss, revalidation or background refresh) sent to the origin for a key."""
        self.top_fetched.add(key)

    def record_origin(self, seconds: float, error_reason: str | None = None) -> None:
        self.origin_requests += 1
        self.origin_seconds.observe(seconds)
        if error_reason:
            self.origin_errors[error_reason] = self.origin_errors.get(error_reason, 0) + 1

    def record_origin_body_error(self, reason: str) -> None:
        """Count an origin response whose body failed after its headers had arrived."""
        self.origin_errors[reason] = self.origin_errors.get(reason, 0) + 1

    def outcome_count(self, outcome: Outcome) -> int:
        return sum(count for (name, _), count in self.requests.items() if name == outcome.value)

    def hit_ratio(self) -> float | None:
        """Return (hit + stale) / lookups, or None without lookups, where the ratio is undefined."""
        if not self.lookups:
            return None
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
        ratio = self.hit_ratio()
        return {
            "requests": {"total": sum(requests.values()), **requests},
            "lookups": self.lookups,
            "hit_ratio": None if ratio is None else round(ratio, 6),
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
                    "buckets": age.counts_by_bound(),
                },
                "stale_served": self.stale_served,
                **self.inventory_staleness(),
            },
            "inventory": {
                "events": dict(sorted(self.inventory_events.items())),
                "purged_entries": dict(sorted(self.inventory_purges.items())),
                "fenced_fills": self.fenced_fills,
                "event_refreshes": self.event_refreshes,
            },
            "reconcile": {
                "checks": self.reconcile_checks,
                "mismatches": self.reconcile_mismatches,
                "errors": self.reconcile_errors,
            },
            "rolling": self.rolling_snapshot(),
            "top": {
                "requested": self.top_requested.top(),
                "bypassed": self.top_bypassed.top(),
                "origin_fetches": self.top_fetched.top(),
            },
            "response_bytes": self.response_bytes,
            "uptime_seconds": round(now - self.started_at, 3),
            "since_reset_seconds": round(now - self.reset_at, 3),
        }

    def inventory_staleness(self) -> dict[str, Any]:
        """Return the known-stale figures of /stats: lag quantiles and counts by direction."""
        lag = self.inventory_lag
        return {
            "inventory_lag_seconds": {
                "p50": lag.quantile(0.5),
                "p90": lag.quantile(0.9),
                "p99": lag.quantile(0.99),
                "max": lag.max,
            },
            "known_stale": {"total": sum(self.known_stale.values()), **dict(sorted(self.known_stale.items()))},
        }
    def rolling_snapshot(self) -> dict[str, Any]:
        """Return request rates and hit ratios of the last minutes, and the per-bucket series."""
        now = self.clock()
        windows: dict[str, Any] = {}
        for name, seconds in ROLLING_WINDOWS.items():
            counts, covered = self.rolling.window(seconds, now)
            lookups = counts.pop("lookups")
            hits = counts[Outcome.HIT.value] + counts[Outcome.STALE.value]
            total = sum(counts.values())
            windows[name] = {
                "seconds": round(covered, 3),
                "requests": total,
                "lookups": lookups,
                "requests_per_second": {
                    "total": _rate(total, covered),
                    **{outcome: _rate(count, covered) for outcome, count in counts.items()},
                },
                "hit_ratio": round(hits / lookups, 6) if lookups else None,
            }
        return {**windows, "series": self.rolling.series(now)}


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 3) if seconds > 0 else 0.0
