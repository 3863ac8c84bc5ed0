"""Operator figures after a known sequence: /stats, /metrics, reset, /health, access log."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import admin_url, proxy_url
from edgecache.outcomes import Outcome
from edgecache.stats import Stats
from edgecache.workers.figures import export_stats, merge_stats
from helpers import FakeClock, raw_request


@pytest.fixture
async def after_sequence(origin, make_edgecache):
    """Run miss, hit, hit at age 10, query bypass, no-store miss, POST; return edgecache."""
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, clock=clock)
    origin.script("/b/p", headers={"Cache-Control": "no-store"})
    port = edgecache.proxy_port
    await raw_request(port, "/a/p")
    await raw_request(port, "/a/p")
    clock.advance(10)
    await raw_request(port, "/a/p")
    await raw_request(port, "/a/p?x=1")
    await raw_request(port, "/b/p")
    await raw_request(port, "/c/p", method="POST", body=b"x")
    return edgecache


async def get_json(client: aiohttp.ClientSession, url: str) -> dict:
    async with client.get(url) as response:
        assert response.status == 200
        return await response.json()


async def test_stats_requests(after_sequence, client) -> None:
    stats = await get_json(client, admin_url(after_sequence, "/stats"))

    assert stats["requests"] == {"total": 6, "hit": 2, "miss": 2, "bypass": 2, "stale": 0,
                                 "revalidated": 0, "error": 0}
    assert stats["lookups"] == 4
    assert stats["hit_ratio"] == 0.5
    assert stats["reasons"] == {"method": 1, "no-store": 1, "query": 1}


async def test_stats_cache_and_origin(after_sequence, client) -> None:
    stats = await get_json(client, admin_url(after_sequence, "/stats"))

    assert stats["cache"]["entries"] == 1
    assert stats["cache"]["bytes"] == after_sequence.store.bytes
    assert stats["cache"]["max_bytes"] == 268435456
    assert stats["cache"]["evictions"] == 0
    assert stats["origin"]["requests"] == 4
    assert stats["origin"]["errors"] == 0
    assert stats["origin"]["timeouts"] == 0
    assert stats["origin"]["coalesced"] == 0


async def test_stats_staleness(after_sequence, client) -> None:
    stats = await get_json(client, admin_url(after_sequence, "/stats"))

    age = stats["staleness"]["served_age_seconds"]
    assert (age["p50"], age["p90"], age["p99"], age["max"]) == (0, 10, 10, 10)
    assert stats["staleness"]["stale_served"] == 0
    assert stats["uptime_seconds"] >= 0


async def metric_samples(client: aiohttp.ClientSession, url: str) -> dict[tuple[str, tuple], float]:
    async with client.get(url) as response:
        assert response.status == 200
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_requests(after_sequence, client) -> None:
    samples = await metric_samples(client, admin_url(after_sequence, "/metrics"))

    def requests(outcome: str) -> float:
        return samples[("edgecache_requests_total", (("outcome", outcome), ("rule", "default")))]

    assert requests("hit") == 2
    assert requests("miss") == 2
    assert requests("bypass") == 2
    assert samples[("edgecache_lookups_total", ())] == 4
    assert samples[("edgecache_cache_skips_total", (("reason", "no-store"),))] == 1
    assert samples[("edgecache_origin_requests_total", ())] == 4
    assert samples[("edgecache_coalesced_requests_total", ())] == 0
    assert samples[("edgecache_cache_entries", ())] == 1


async def test_metrics_served_age(after_sequence, client) -> None:
    samples = await metric_samples(client, admin_url(after_sequence, "/metrics"))

    assert samples[("edgecache_served_age_seconds_count", ())] == 2
    assert samples[("edgecache_served_age_seconds_sum", ())] == 10
    assert samples[("edgecache_served_age_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("edgecache_served_age_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("edgecache_served_age_seconds_bucket", (("le", "10.0"),))] == 2
    assert samples[("edgecache_served_age_seconds_bucket", (("le", "+Inf"),))] == 2


async def test_metrics_origin_fetch_seconds(after_sequence, client) -> None:
    samples = await metric_samples(client, admin_url(after_sequence, "/metrics"))

    assert samples[("edgecache_origin_fetch_seconds_count", ())] == 4
    assert samples[("edgecache_origin_fetch_seconds_bucket", (("le", "+Inf"),))] == 4


async def test_stats_reset(after_sequence, client) -> None:
    async with client.post(admin_url(after_sequence, "/stats/reset")) as response:
        assert response.status == 200
        assert await response.json() == {"reset": True}
    stats = await get_json(client, admin_url(after_sequence, "/stats"))

    assert stats["requests"]["total"] == 0
    assert stats["lookups"] == 0
    assert stats["hit_ratio"] is None
    assert stats["hit_ratio_formula"] == "(hit + stale) / lookups"
    assert stats["origin"]["requests"] == 0
    assert stats["staleness"]["served_age_seconds"]["max"] == 0
    assert stats["cache"]["entries"] == 1


async def test_stats_reset_with_token(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url, {"admin": {"token": "s3cret"}})
    async with client.post(admin_url(edgecache, "/stats/reset")) as denied:
        assert denied.status == 401
    async with client.post(admin_url(edgecache, "/stats/reset"),
                           headers={"Authorization": "Bearer s3cret"}) as allowed:
        assert allowed.status == 200


async def test_health(edgecache, client) -> None:
    health = await get_json(client, admin_url(edgecache, "/health"))

    assert health["status"] == "ok"
    assert health["entries"] == 0


async def test_health_process_figures(edgecache, client) -> None:
    health = await get_json(client, admin_url(edgecache, "/health"))

    # The test process runs the fixtures' tasks too, so only the task serving /health is certain.
    assert health["asyncio_tasks"] >= 1
    # At least the proxy and admin listeners and this request's connection.
    assert health["open_fds"] >= 3


async def test_admin_paths_not_on_proxy(origin, edgecache, client) -> None:
    async with client.get(proxy_url(edgecache, "/stats")) as response:
        body = await response.read()

    assert body == b"page /stats #1"
    assert origin.count("/stats") == 1


async def test_access_log_line(origin, make_edgecache, caplog) -> None:
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, clock=clock)
    origin.script("/a/p", headers={"Cache-Control": "max-age=60"}, body=b"twelve bytes")
    await raw_request(edgecache.proxy_port, "/a/p")
    clock.advance(7)
    with caplog.at_level(logging.INFO, logger="edgecache.access"):
        await raw_request(edgecache.proxy_port, "/a/p")

    records = [r for r in caplog.records if r.name == "edgecache.access"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert '"GET /a/p HTTP/1.1" 200 12 "-" "-" outcome=hit reason=- age=7 duration=' in message
    assert records[0].outcome == "hit"
    assert records[0].age == 7
    assert records[0].status == 200


async def test_access_log_off(origin, make_edgecache, caplog) -> None:
    edgecache = await make_edgecache(origin.url, {"server": {"access_log": False}})
    with caplog.at_level(logging.INFO, logger="edgecache.access"):
        await raw_request(edgecache.proxy_port, "/a/p")

    assert [r for r in caplog.records if r.name == "edgecache.access"] == []


async def test_stats_origin_failures(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url, {"origin": {"read_timeout": 0.2}})
    origin.gate = asyncio.Event()
    try:
        timed_out = await raw_request(edgecache.proxy_port, "/a/p")
    finally:
        origin.gate.set()
    origin.script("/b/p", status=503, headers={"Cache-Control": "max-age=60"})
    await raw_request(edgecache.proxy_port, "/b/p")
    stats = await get_json(client, admin_url(edgecache, "/stats"))

    assert timed_out.status == 504
    assert stats["requests"]["error"] == 1
    assert stats["requests"]["miss"] == 1
    assert stats["origin"]["requests"] == 2
    assert stats["origin"]["errors"] == 1
    assert stats["origin"]["timeouts"] == 1
    assert stats["reasons"] == {"origin-timeout": 1, "status": 1}
    assert stats["hit_ratio"] == 0


async def test_stats_stale_served(origin, make_edgecache, client) -> None:
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, clock=clock)
    await raw_request(edgecache.proxy_port, "/a/p")
    clock.advance(90)
    origin.script("/a/p", status=500)
    stale = await raw_request(edgecache.proxy_port, "/a/p")
    stats = await get_json(client, admin_url(edgecache, "/stats"))

    assert stale.headers["X-Cache"] == "STALE"
    assert stats["requests"]["stale"] == 1
    assert stats["hit_ratio"] == 0.5
    assert stats["staleness"]["stale_served"] == 1
    assert stats["staleness"]["served_age_seconds"]["max"] == 90


def test_hit_ratio_without_lookups() -> None:
    stats = Stats()
    stats.record(Outcome.BYPASS, "default", "query", 10)

    assert stats.hit_ratio() is None
    assert stats.snapshot(cache={})["hit_ratio"] is None


def test_merged_hit_ratio_from_sums() -> None:
    """The supervisor divides the summed counts instead of adding the workers' ratios."""
    hitting, missing, idle = Stats(), Stats(), Stats()
    hitting.lookups = 1
    hitting.record(Outcome.HIT, "default", None, 10)
    missing.lookups = 3
    for _ in range(3):
        missing.record(Outcome.MISS, "default", None, 10)

    merged = merge_stats([export_stats(hitting), export_stats(missing), export_stats(idle)])
    merged_idle = merge_stats([export_stats(idle), export_stats(Stats())])

    assert merged.snapshot(cache={})["hit_ratio"] == 0.25
    assert merged_idle.snapshot(cache={})["hit_ratio"] is None
