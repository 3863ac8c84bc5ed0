"""Prometheus exposition of Stats, through prometheus_client with a registry of our own.

The collector reads the plain counters at scrape time, so the request path pays
nothing for metrics beyond integer increments. Labels are bounded: outcome, rule
name and reason word, never the path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .stats import Histogram, Stats


class StatsCollector(Collector):
    def __init__(self, stats: Stats, cache_figures: Callable[[], dict[str, Any]],
                 shared_figures: Callable[[], dict[str, Any]] | None = None) -> None:
        self.stats = stats
        self.cache_figures = cache_figures
        # The shared tier's snapshot (`SharedCache.snapshot`); {"state": "off"} without one.
        self.shared_figures = shared_figures

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        requests = CounterMetricFamily("edgecache_requests", "Client requests by outcome and rule.",
                                       labels=["outcome", "rule"])
        for (outcome, rule), count in sorted(stats.requests.items()):
            requests.add_metric([outcome, rule], count)
        yield requests
        reasons = CounterMetricFamily(
            "edgecache_cache_skips", "Requests not served from the cache or responses not stored, by reason.",
            labels=["reason"])
        for reason, count in sorted(stats.reasons.items()):
            reasons.add_metric([reason], count)
        yield reasons
        yield CounterMetricFamily("edgecache_lookups", "Requests that consulted the cache.", value=stats.lookups)
        yield CounterMetricFamily("edgecache_origin_requests", "Requests sent to the origin.",
                                  value=stats.origin_requests)
        errors = CounterMetricFamily("edgecache_origin_errors", "Origin requests that failed, by reason.",
                                     labels=["reason"])
        for reason, count in sorted(stats.origin_errors.items()):
            errors.add_metric([reason], count)
        yield errors
        yield CounterMetricFamily("edgecache_coalesced_requests", "Requests that waited for another's origin fetch.",
                                  value=stats.coalesced)
        yield CounterMetricFamily("edgecache_bypass_coalesced_requests",
                                  "Forced misses answered with an identical request's origin response.",
                                  value=stats.bypass_coalesced)
        yield CounterMetricFamily("edgecache_stale_served", "Responses served from a stale entry.",
                                  value=stats.stale_served)
        yield CounterMetricFamily("edgecache_response_bytes", "Body bytes sent to clients.",
                                  value=stats.response_bytes)
        yield _histogram("edgecache_served_age_seconds", "Age of entries served from the cache.", stats.served_age)
        yield from _inventory_metrics(stats)
        yield _histogram("edgecache_origin_fetch_seconds", "Time until the origin's response headers arrived.",
                         stats.origin_seconds)
        cache = self.cache_figures()
        yield GaugeMetricFamily("edgecache_cache_entries", "Entries in the memory store.", value=cache["entries"])
        yield GaugeMetricFamily("edgecache_cache_bytes", "Bytes held by the memory store.", value=cache["bytes"])
        yield GaugeMetricFamily("edgecache_cache_max_bytes", "Configured bound of the memory store.",
                                value=cache["max_bytes"])
        yield CounterMetricFamily("edgecache_cache_evictions", "Entries evicted to stay within cache.max_bytes.",
                                  value=cache["evictions"])
        yield CounterMetricFamily("edgecache_cache_variant_evictions",
                                  "Variants evicted to stay within cache.max_variants per path.",
                                  value=cache["variant_evictions"])
        yield GaugeMetricFamily("edgecache_start_time_seconds", "Start time of the process since the epoch.",
                                value=stats.started_at)
        if self.shared_figures is not None:
            yield from _shared_metrics(self.shared_figures())


def _shared_metrics(shared: dict[str, Any]) -> Iterator[Metric]:
    """Yield the shared tier's figures; nothing when the tier is off."""
    if shared.get("state", "off") == "off":
        return
    yield GaugeMetricFamily("edgecache_shared_up",
                            "1 when Redis responds and other nodes' purges arrive, else 0.",
                            value=1 if shared["state"] == "up" else 0)
    yield CounterMetricFamily("edgecache_shared_failures", "Redis commands that failed or timed out.",
                              value=shared["failures"])
    lookups = CounterMetricFamily("edgecache_shared_lookups", "Lookups in Redis after a memory miss, by result.",
                                  labels=["result"])
    lookups.add_metric(["hit"], shared["hits"])
    lookups.add_metric(["miss"], shared["misses"])
    yield lookups
    yield CounterMetricFamily("edgecache_shared_stores", "Entries written to Redis.", value=shared["stores"])
    skipped = CounterMetricFamily("edgecache_shared_skipped_stores", "Entries not written to Redis, by reason.",
                                  labels=["reason"])
    skipped.add_metric(["too-large"], shared["too_large"])
    skipped.add_metric(["fenced"], shared["fenced"])
    yield skipped
    yield CounterMetricFamily("edgecache_shared_invalid_values", "Values in Redis ignored as invalid or too large.",
                              value=shared["corrupt"])
    yield CounterMetricFamily("edgecache_shared_lock_waits", "Fetches that waited for another node's fetch lock.",
                              value=shared["lock_waits"])
    yield CounterMetricFamily("edgecache_shared_lock_fallbacks",
                              "Lock waits that ended without the entry, so this node fetched on its own.",
                              value=shared["lock_fallbacks"])
    yield CounterMetricFamily("edgecache_shared_invalidations_received",
                              "Purges, replaced entries and inventory changes received from other nodes.",
                              value=shared["invalidations_received"])


def _inventory_metrics(stats: Stats) -> Iterator[Metric]:
    yield _histogram("edgecache_served_inventory_lag_seconds",
                     "Seconds from the first inventory state change newer than a served page to serving it.",
                     stats.inventory_lag)
    yield _labelled("edgecache_known_stale_responses",
                    "Responses served from pages an inventory event had made wrong, by direction.",
                    "direction", stats.known_stale)
    yield _labelled("edgecache_inventory_events", "Inventory events received, by result.", "result",
                    stats.inventory_events)
    yield _labelled("edgecache_inventory_purged_entries", "Entries purged by inventory events, by kind.", "kind",
                    stats.inventory_purges)
    yield CounterMetricFamily("edgecache_inventory_fenced_fills",
                              "Origin fills stored stale because a state change arrived while they ran.",
                              value=stats.fenced_fills)
    yield CounterMetricFamily("edgecache_inventory_refreshes", "Pages refetched right after an inventory event.",
                              value=stats.event_refreshes)
    yield CounterMetricFamily("edgecache_reconcile_checks", "Hot entries checked against the origin.",
                              value=stats.reconcile_checks)
    yield CounterMetricFamily("edgecache_reconcile_mismatches",
                              "Checked entries whose claimed availability differed from the origin's.",
                              value=stats.reconcile_mismatches)
    yield CounterMetricFamily("edgecache_reconcile_errors", "Checks that failed at the origin.",
                              value=stats.reconcile_errors)


def _labelled(name: str, documentation: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, documentation, buckets=histogram.cumulative(), sum_value=histogram.sum)


def build_registry(stats: Stats, cache_figures: Callable[[], dict[str, Any]],
                   shared_figures: Callable[[], dict[str, Any]] | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(stats, cache_figures, shared_figures))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
