"""Measured staleness: exact figures after a known sequence of events and requests."""

from __future__ import annotations

import pytest

from conftest import admin_url, proxy_url
from edgecache.inventory import InventoryEvent
from inventory_pages import TOKEN, Clock, html_headers, product_page

SWR = "max-age=60, stale-while-revalidate=30"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cache(origin, make_edgecache, clock):
    origin.script("/b/p", headers=html_headers(SWR), body=product_page("B", "OutOfStock"))
    origin.script("/c/p", headers=html_headers(SWR), body=product_page("C", "InStock"))
    return await make_edgecache(origin.url, {"admin": {"token": TOKEN},
                                             "inventory": {"refresh_on_event": False, "storm_interval": 10.0,
                                                           "storm_flip_purges": 1}},
                                clock=clock)


async def get(client, edgecache, path: str) -> str:
    async with client.get(proxy_url(edgecache, path)) as response:
        await response.read()
        await edgecache.proxy.close()  # Let a background refresh finish before the next step.
        return response.headers["X-Cache"]


async def play_sequence(edgecache, client, clock: Clock) -> None:
    assert await get(client, edgecache, "/b/p") == "MISS"
    assert await get(client, edgecache, "/c/p") == "MISS"
    clock.advance(1)
    edgecache.apply_inventory_events([InventoryEvent("B", state="in_stock", version=1),
                                      InventoryEvent("C", state="in_stock", version=1)])
    clock.advance(2)
    assert await get(client, edgecache, "/b/p") == "STALE"  # Shows B sold out: a lost sale, 2 s late.
    clock.advance(1)
    assert await get(client, edgecache, "/b/p") == "HIT"  # Refreshed after the event: right.
    clock.advance(1)
    edgecache.apply_inventory_events([InventoryEvent("C", state="low_stock", version=2)])
    clock.advance(1)
    edgecache.apply_inventory_events([InventoryEvent("C", state="out_of_stock", version=3)])  # Deferred.
    clock.advance(1)
    assert await get(client, edgecache, "/c/p") == "STALE"  # Offers sold-out C: an oversell, 2 s late.


async def test_staleness_stats_exact(cache, client, clock) -> None:
    await play_sequence(cache, client, clock)
    async with client.get(admin_url(cache, "/stats")) as response:
        stats = await response.json()
    assert stats["staleness"]["known_stale"] == {
        "total": 2, "claimed_available_out_of_stock": 1, "claimed_unavailable_in_stock": 1}
    assert stats["staleness"]["inventory_lag_seconds"] == {"p50": 2.0, "p90": 2.0, "p99": 2.0, "max": 2.0}
    assert stats["inventory"] == {
        "events": {"changed": 2, "first-seen": 2},
        "purged_entries": {"deferred": 1, "soft": 2},
        "fenced_fills": 0,
        "event_refreshes": 0,
    }


async def test_staleness_metrics_exact(cache, client, clock) -> None:
    await play_sequence(cache, client, clock)
    async with client.get(admin_url(cache, "/metrics")) as response:
        text = await response.text()
    lines = set(text.splitlines())
    assert 'edgecache_known_stale_responses_total{direction="claimed_available_out_of_stock"} 1.0' in lines
    assert 'edgecache_known_stale_responses_total{direction="claimed_unavailable_in_stock"} 1.0' in lines
    assert 'edgecache_served_inventory_lag_seconds_bucket{le="1.0"} 0.0' in lines
    assert 'edgecache_served_inventory_lag_seconds_bucket{le="2.0"} 2.0' in lines
    assert "edgecache_served_inventory_lag_seconds_count 2.0" in lines
    assert "edgecache_served_inventory_lag_seconds_sum 4.0" in lines
    assert 'edgecache_inventory_events_total{result="changed"} 2.0' in lines
    assert 'edgecache_inventory_purged_entries_total{kind="deferred"} 1.0' in lines


async def test_hits_before_events_not_stale(cache, client, clock) -> None:
    await get(client, cache, "/c/p")
    await get(client, cache, "/c/p")
    assert cache.stats.known_stale == {}
    assert cache.stats.inventory_lag.count == 0


async def test_stats_reset_clears_staleness(cache, client, clock) -> None:
    await play_sequence(cache, client, clock)
    cache.stats.reset()
    assert cache.stats.known_stale == {}
    assert cache.stats.inventory_lag.count == 0
