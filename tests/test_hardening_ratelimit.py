"""The per-client token bucket, driven by an injected clock."""

from __future__ import annotations

from edgecache.ratelimit import RateLimiter, retry_after
from hardening_checks import FakeClock


def test_burst_then_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.acquire("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("10.0.0.1") == 0.5
    clock.now += 0.5
    assert limiter.acquire("10.0.0.1") == 0.0


def test_clients_counted_apart() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=FakeClock())
    assert limiter.acquire("10.0.0.1") == 0.0
    assert limiter.acquire("10.0.0.2") == 0.0
    assert limiter.acquire("10.0.0.1") == 1.0


def test_refill_capped_at_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock)
    limiter.acquire("10.0.0.1")
    clock.now += 3600
    assert [limiter.acquire("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 1.0]


def test_table_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=FakeClock(), max_clients=100)
    for index in range(1000):
        limiter.acquire(f"10.0.{index // 256}.{index % 256}")
    assert len(limiter) == 100


def test_disabled_allows_all() -> None:
    limiter = RateLimiter(rate=0.0, burst=1, clock=FakeClock())
    assert [limiter.acquire("10.0.0.1") for _ in range(100)] == [0.0] * 100
    assert len(limiter) == 0


def test_retry_after_whole_seconds() -> None:
    assert [retry_after(seconds) for seconds in (0.001, 1.0, 1.2, 30.0)] == ["1", "1", "2", "30"]
