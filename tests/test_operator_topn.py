"""Top lists: exact while they fit, bounded and within the error bound past that."""

import random
from collections import Counter

import pytest

from edgecache.topn import TopCounter


def test_exact_below_capacity() -> None:
    top = TopCounter(3)
    for key in ["/a", "/b", "/a", "/c", "/a", "/b"]:
        top.add(key)
    assert top.top() == [
        {"key": "/a", "count": 3, "error": 0},
        {"key": "/b", "count": 2, "error": 0},
        {"key": "/c", "count": 1, "error": 0},
    ]


def test_memory_bounded() -> None:
    top = TopCounter(5)
    for index in range(10_000):
        top.add(f"/unique-{index}")
    assert len(top.counts) <= 10


def test_heavy_hitters_found_in_long_tail() -> None:
    rng = random.Random(7)
    stream = [f"/hot-{index}" for index in range(3) for _ in range(500)]
    stream += [f"/tail-{index}" for index in range(5000)]
    rng.shuffle(stream)
    top = TopCounter(10)
    for key in stream:
        top.add(key)
    leaders = [item["key"] for item in top.top(3)]
    assert sorted(leaders) == ["/hot-0", "/hot-1", "/hot-2"]


def test_counts_overestimate_within_error() -> None:
    rng = random.Random(11)
    stream = [f"/p{min(int(rng.paretovariate(1.2)), 400)}" for _ in range(20_000)]
    top = TopCounter(20)
    for key in stream:
        top.add(key)
    truth = Counter(stream)
    for item in top.top():
        assert item["count"] >= truth[item["key"]]
        assert item["count"] - item["error"] <= truth[item["key"]]


def test_top_limit() -> None:
    top = TopCounter(5)
    for key in ["/a", "/b", "/c"]:
        top.add(key)
    assert [item["key"] for item in top.top(2)] == ["/a", "/b"]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be a positive integer, got 0"):
        TopCounter(0)
