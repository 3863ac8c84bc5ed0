"""Figures of several worker processes added up into one Stats, for the supervisor's admin listener.

A worker exports its Stats as JSON-safe data. The supervisor merges the exports
into a fresh Stats, so its own snapshot() and Prometheus collector report the
whole instance. The export walks the attributes of Stats by type (integer
counters, counter dicts, histograms), so counters added to Stats later are
summed without changes here.
"""

from __future__ import annotations

from typing import Any

from ..stats import Histogram, Stats

# Stats attributes that are start times: the merged value is the earliest one.
_TIMES = ("started_at", "reset_at")


def export_stats(stats: Stats) -> dict[str, Any]:
    """Return a worker's counters and histograms as JSON-safe data."""
    exported: dict[str, Any] = {}
    for name, value in vars(stats).items():
        if isinstance(value, Histogram):
            exported[name] = {"histogram": {"counts": value.counts, "sum": value.sum, "count": value.count,
                                            "max": value.max, "recent": list(value.recent)}}
        elif isinstance(value, dict):
            exported[name] = {"pairs": [[list(key) if isinstance(key, tuple) else key, count]
                                        for key, count in value.items()]}
        elif isinstance(value, (int, float)):
            exported[name] = value
    return exported


def merge_stats(exports: list[dict[str, Any]]) -> Stats:
    """Return one Stats holding the sum of several workers' exported figures."""
    merged = Stats()
    for name in _TIMES:
        times = [export[name] for export in exports if name in export]
        if times:
            setattr(merged, name, min(times))
    for export in exports:
        for name, value in export.items():
            if name in _TIMES or not hasattr(merged, name):
                continue
            _merge_value(merged, name, value)
    return merged


def _merge_value(merged: Stats, name: str, value: Any) -> None:
    current = getattr(merged, name)
    if isinstance(value, dict) and "histogram" in value and isinstance(current, Histogram):
        part = value["histogram"]
        current.counts = [a + b for a, b in zip(current.counts, part["counts"])]
        current.sum += part["sum"]
        current.count += part["count"]
        current.max = max(current.max, part["max"])
        current.recent.extend(part["recent"])
    elif isinstance(value, dict) and "pairs" in value and isinstance(current, dict):
        for key, count in value["pairs"]:
            key = tuple(key) if isinstance(key, list) else key
            current[key] = current.get(key, 0) + count
    elif isinstance(value, (int, float)) and isinstance(current, (int, float)):
        setattr(merged, name, current + value)


def sum_figures(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up numeric fields of several workers' figure dicts; other fields come from the first."""
    total: dict[str, Any] = {}
    for part in parts:
        for name, value in part.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                total.setdefault(name, value)
            else:
                total[name] = total.get(name, 0) + value
    return total
