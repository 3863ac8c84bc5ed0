"""/metrics parsed with prometheus_client's parser, and /stats rolling figures and top lists."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import admin_url, proxy_url

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def _get(client: aiohttp.ClientSession, url: str) -> int:
    async with client.get(url) as response:
        await response.read()
        return response.status


async def _drive(origin, make_edgecache, client, clock: Clock):
    """Send a known sequence: miss, hit at 5 s, hit at 12 s, two query bypasses, one 404 miss.

    The origin double responds by path, so every response body is 4 bytes long.
    """
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"}, body=b"shoe")
    origin.script("/gone/p", status=404, body=b"gone")
    edgecache = await make_edgecache(origin.url, {"rules": [{"name": "product", "match": "/*/p"}]}, clock=clock)
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    clock.now += 5
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    clock.now += 7
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    await _get(client, proxy_url(edgecache, "/shoe/p?color=red"))
    await _get(client, proxy_url(edgecache, "/shoe/p?color=blue"))
    await _get(client, proxy_url(edgecache, "/gone/p"))
    return edgecache


async def _samples(client: aiohttp.ClientSession, edgecache) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with client.get(admin_url(edgecache, "/metrics")) as response:
        assert response.status == 200
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_request_counters(origin, make_edgecache, client, clock) -> None:
    edgecache = await _drive(origin, make_edgecache, client, clock)
    samples = await _samples(client, edgecache)
    assert samples[("edgecache_requests_total", (("outcome", "miss"), ("rule", "product")))] == 2
    assert samples[("edgecache_requests_total", (("outcome", "hit"), ("rule", "product")))] == 2
    assert samples[("edgecache_requests_total", (("outcome", "bypass"), ("rule", "product")))] == 2
    assert samples[("edgecache_cache_skips_total", (("reason", "query"),))] == 2
    assert samples[("edgecache_cache_skips_total", (("reason", "no-freshness"),))] == 1
    assert samples[("edgecache_lookups_total", ())] == 4
    assert samples[("edgecache_origin_requests_total", ())] == 4
    assert samples[("edgecache_response_bytes_total", ())] == 6 * len(b"shoe")


async def test_metrics_served_age_histogram(origin, make_edgecache, client, clock) -> None:
    edgecache = await _drive(origin, make_edgecache, client, clock)
    samples = await _samples(client, edgecache)
    assert samples[("edgecache_served_age_seconds_count", ())] == 2
    assert samples[("edgecache_served_age_seconds_sum", ())] == 17
    assert samples[("edgecache_served_age_seconds_bucket", (("le", "2.0"),))] == 0
    assert samples[("edgecache_served_age_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("edgecache_served_age_seconds_bucket", (("le", "30.0"),))] == 2
    assert samples[("edgecache_served_age_seconds_bucket", (("le", "+Inf"),))] == 2


async def test_metrics_cache_gauges(origin, make_edgecache, client, clock) -> None:
    edgecache = await _drive(origin, make_edgecache, client, clock)
    samples = await _samples(client, edgecache)
    assert samples[("edgecache_cache_entries", ())] == 1
    assert samples[("edgecache_cache_bytes", ())] == edgecache.store.bytes
    assert samples[("edgecache_cache_max_bytes", ())] == 256 * 1024 * 1024
    assert samples[("edgecache_cache_evictions_total", ())] == 0
    assert samples[("edgecache_origin_fetch_seconds_count", ())] == 4


async def test_metrics_names_follow_conventions(origin, make_edgecache, client, clock) -> None:
    edgecache = await _drive(origin, make_edgecache, client, clock)
    async with client.get(admin_url(edgecache, "/metrics")) as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("edgecache_")
        if family.type == "counter":
            assert all(sample.name.endswith(("_total", "_created")) for sample in family.samples), family.name
        for sample in family.samples:
            assert "path" not in sample.labels
            assert set(sample.labels) <= {"outcome", "rule", "reason", "le"}, sample.name


async def test_stats_rolling_window(origin, make_edgecache, client, clock) -> None:
    edgecache = await _drive(origin, make_edgecache, client, clock)
    async with client.get(admin_url(edgecache, "/stats")) as response:
        stats = await response.json()
    window = stats["rolling"]["1m"]
    assert window["seconds"] == 12
    assert window["requests"] == 6
    assert window["lookups"] == 4
    assert window["hit_ratio"] == 0.5
    assert window["requests_per_second"]["bypass"] == round(2 / 12, 3)
    series = stats["rolling"]["series"]
    assert sum(series["counts"]["hit"]) == 2
    assert len(series["counts"]["hit"]) == 90


async def test_stats_top_lists(origin, make_edgecache, client, clock) -> None:
    edgecache = await _drive(origin, make_edgecache, client, clock)
    async with client.get(admin_url(edgecache, "/stats")) as response:
        top = (await response.json())["top"]
    site = edgecache.settings.site_host
    assert top["requested"][0] == {"key": f"{site}/shoe/p", "count": 3, "error": 0}
    assert top["bypassed"] == [{"key": "/shoe/p", "count": 2, "error": 0}]
    assert top["origin_fetches"] == [
        {"key": f"{site}/gone/p", "count": 1, "error": 0},
        {"key": f"{site}/shoe/p", "count": 1, "error": 0},
    ]


async def test_top_size_setting(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url, {"admin": {"top_size": 1}})
    for path in ("/a/p", "/b/p", "/b/p"):
        await _get(client, proxy_url(edgecache, path))
    async with client.get(admin_url(edgecache, "/stats")) as response:
        top = (await response.json())["top"]
    assert [item["key"] for item in top["requested"]] == [f"{edgecache.settings.site_host}/b/p"]


async def test_stats_reset_clears_rolling(origin, make_edgecache, client, clock) -> None:
    edgecache = await _drive(origin, make_edgecache, client, clock)
    async with client.post(admin_url(edgecache, "/stats/reset")) as response:
        assert response.status == 200
    async with client.get(admin_url(edgecache, "/stats")) as response:
        stats = await response.json()
    assert stats["rolling"]["1m"]["requests"] == 0
    assert stats["rolling"]["1m"]["hit_ratio"] is None
    assert stats["top"]["requested"] == []
