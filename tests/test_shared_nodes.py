"""Two edgecache nodes sharing one Redis: hits across nodes, purges everywhere, one origin fetch."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from edgecache.key import CacheKey
from edgecache.server import Edgecache
from edgecache.shared import PurgeRequest

from conftest import admin_url, proxy_url
from redis_process import redis_server, shared_settings, two_nodes  # noqa: F401

TOKEN = "secret"
# Seconds a purge or an inventory event may take to reach another node's memory store.
# Redis pub/sub delivers it with no timer in between, so this bound only catches a
# message that never arrives and is generous for a loaded 2-core machine.
PROPAGATION_LIMIT = 1.0


async def get(client: aiohttp.ClientSession, url: str) -> tuple[int, bytes, str]:
    async with client.get(url) as response:
        return response.status, await response.read(), response.headers["X-Cache"]


async def purge(client: aiohttp.ClientSession, node, body: dict) -> dict:
    async with client.post(admin_url(node, "/purge"), json=body,
                           headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
        return await response.json()


def purge_barrier(node: Edgecache) -> asyncio.Event:
    """Return an event set when the node has applied a purge published by another node."""
    assert node.shared is not None
    applied = asyncio.Event()
    apply = node.shared.listener.apply

    def apply_and_signal(request: PurgeRequest) -> None:
        apply(request)
        applied.set()

    node.shared.listener.apply = apply_and_signal
    return applied


async def test_page_fetched_by_a_is_hit_on_b(origin, two_nodes, client) -> None:
    node_a, node_b = two_nodes
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"}, body=b"shoe page")

    assert await get(client, proxy_url(node_a, "/shoe/p")) == (200, b"shoe page", "MISS")
    assert await get(client, proxy_url(node_b, "/shoe/p")) == (200, b"shoe page", "HIT")
    assert origin.count("/shoe/p") == 1
    assert node_b.shared.tier.figures["hits"] == 1
    assert len(node_b.store) == 1


async def test_vary_variant_shared(origin, two_nodes, client) -> None:
    node_a, node_b = two_nodes
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Vary": "Accept-Language"}, body=b"de")
    async with client.get(proxy_url(node_a, "/shoe/p"), headers={"Accept-Language": "de"}) as response:
        assert await response.read() == b"de"

    async with client.get(proxy_url(node_b, "/shoe/p"), headers={"Accept-Language": "de"}) as response:
        assert response.headers["X-Cache"] == "HIT"
    async with client.get(proxy_url(node_b, "/shoe/p"), headers={"Accept-Language": "fr"}) as response:
        assert response.headers["X-Cache"] == "MISS"
    assert origin.count("/shoe/p") == 2


async def test_purge_on_a_reaches_b(origin, redis_server, make_edgecache, client) -> None:
    raw = {**shared_settings(redis_server.url), "admin": {"token": TOKEN}}
    node_a = await make_edgecache(origin.url, raw)
    node_b = await make_edgecache(origin.url, raw)
    await get(client, proxy_url(node_a, "/shoe/p"))
    await get(client, proxy_url(node_b, "/shoe/p"))
    assert len(node_b.store) == 1
    applied = purge_barrier(node_b)

    started = time.monotonic()
    answer = await purge(client, node_a, {"paths": ["/shoe/p"]})
    await asyncio.wait_for(applied.wait(), PROPAGATION_LIMIT)

    assert time.monotonic() - started < PROPAGATION_LIMIT
    assert answer == {"purged": 1, "soft": False, "shared": "done"}
    assert len(node_b.store) == 0
    status, _, x_cache = await get(client, proxy_url(node_b, "/shoe/p"))
    assert (status, x_cache) == (200, "MISS")
    assert origin.count("/shoe/p") == 2


async def test_tag_purge_reaches_b(origin, redis_server, make_edgecache, client) -> None:
    raw = {**shared_settings(redis_server.url), "admin": {"token": TOKEN}}
    node_a = await make_edgecache(origin.url, raw)
    node_b = await make_edgecache(origin.url, raw)
    origin.script("/boot/p", headers={"Cache-Control": "max-age=60", "Surrogate-Key": "sku:7"}, body=b"boot")
    await get(client, proxy_url(node_b, "/boot/p"))
    await get(client, proxy_url(node_a, "/boot/p"))
    applied = purge_barrier(node_b)

    answer = await purge(client, node_a, {"tags": ["sku:7"]})
    await asyncio.wait_for(applied.wait(), PROPAGATION_LIMIT)

    assert answer["shared"] == "done"
    assert len(node_b.store) == 0
    assert await node_b.shared.tier.client.exists("edgecache:t:sku:7") == 0
    assert (await get(client, proxy_url(node_b, "/boot/p")))[2] == "MISS"


async def test_prefix_purge_clears_redis(origin, redis_server, make_edgecache, client) -> None:
    raw = {**shared_settings(redis_server.url), "admin": {"token": TOKEN}}
    node_a = await make_edgecache(origin.url, raw)
    node_b = await make_edgecache(origin.url, raw)
    for path in ("/c/shoes", "/c/shoes-sale", "/c/bags"):
        await get(client, proxy_url(node_a, path))

    await purge(client, node_a, {"prefixes": ["/c/shoes"]})

    assert (await get(client, proxy_url(node_b, "/c/bags")))[2] == "HIT"
    assert (await get(client, proxy_url(node_b, "/c/shoes")))[2] == "MISS"
    assert (await get(client, proxy_url(node_b, "/c/shoes-sale")))[2] == "MISS"


async def test_soft_purge_keeps_stale_copy(origin, redis_server, make_edgecache, client) -> None:
    raw = {**shared_settings(redis_server.url), "admin": {"token": TOKEN}}
    node_a = await make_edgecache(origin.url, raw)
    node_b = await make_edgecache(origin.url, raw)
    await get(client, proxy_url(node_a, "/shoe/p"))

    await purge(client, node_a, {"paths": ["/shoe/p"], "soft": True})

    entry = await node_b.shared.tier.lookup(CacheKey(node_a.settings.site_host, "/shoe/p"), {})
    assert entry is not None
    assert entry.is_fresh(time.time()) is False
    # As on the purging node: the page has no stale-while-revalidate window, so the
    # soft-purged copy is not served stale; the next request fetches it again.
    assert (await get(client, proxy_url(node_b, "/shoe/p")))[2] == "MISS"
    await node_b.proxy.close()
    assert origin.count("/shoe/p") == 2


async def test_cross_node_coalescing(origin, two_nodes, client) -> None:
    node_a, node_b = two_nodes
    reached = asyncio.Event()
    release = asyncio.Event()

    async def slow_page(request: web.Request) -> web.Response:
        reached.set()
        await release.wait()
        return web.Response(body=b"slow page", headers={"Cache-Control": "max-age=60"})

    origin.handler("/slow/p", slow_page)
    waiting = asyncio.Event()
    wait_for_entry = node_b.shared.lock._wait_for_entry

    async def signal_and_wait(*args: object) -> object:
        waiting.set()
        return await wait_for_entry(*args)

    node_b.shared.lock._wait_for_entry = signal_and_wait
    first = asyncio.create_task(get(client, proxy_url(node_a, "/slow/p")))
    await reached.wait()
    second = asyncio.create_task(get(client, proxy_url(node_b, "/slow/p")))
    await waiting.wait()
    release.set()

    assert await first == (200, b"slow page", "MISS")
    assert await second == (200, b"slow page", "HIT")
    assert origin.count("/slow/p") == 1
    assert node_b.shared.tier.figures["lock_waits"] == 1
    assert node_b.shared.tier.figures["lock_fallbacks"] == 0


async def test_lock_wait_bound_fetches_alone(origin, redis_server, make_edgecache, client) -> None:
    raw = shared_settings(redis_server.url, shared_lock_wait=0.05)
    node_a = await make_edgecache(origin.url, raw)
    node_b = await make_edgecache(origin.url, raw)
    reached = asyncio.Event()
    release = asyncio.Event()

    async def slow_once(request: web.Request) -> web.Response:
        if not reached.is_set():
            reached.set()
            await release.wait()
        return web.Response(body=b"page", headers={"Cache-Control": "max-age=60"})

    origin.handler("/slow/p", slow_once)
    first = asyncio.create_task(get(client, proxy_url(node_a, "/slow/p")))
    await reached.wait()

    assert await get(client, proxy_url(node_b, "/slow/p")) == (200, b"page", "MISS")
    assert node_b.shared.tier.figures["lock_fallbacks"] == 1
    release.set()
    await first
    assert origin.count("/slow/p") == 2


async def test_stats_and_health_show_shared(two_nodes, client) -> None:
    node_a, _ = two_nodes
    async with client.get(admin_url(node_a, "/health")) as response:
        assert (await response.json())["shared"] == "up"
    async with client.get(admin_url(node_a, "/stats")) as response:
        shared = (await response.json())["shared"]
    assert shared["state"] == "up"
    assert shared["subscribed"] is True


async def test_health_without_shared_tier(edgecache, client) -> None:
    async with client.get(admin_url(edgecache, "/health")) as response:
        assert (await response.json())["shared"] == "off"


async def test_metrics_show_shared(origin, two_nodes, client) -> None:
    node_a, node_b = two_nodes
    await get(client, proxy_url(node_a, "/shoe/p"))
    await get(client, proxy_url(node_b, "/shoe/p"))

    async with client.get(admin_url(node_b, "/metrics")) as response:
        lines = (await response.text()).splitlines()

    assert "edgecache_shared_up 1.0" in lines
    assert 'edgecache_shared_lookups_total{result="hit"} 1.0' in lines
    assert 'edgecache_shared_lookups_total{result="miss"} 0.0' in lines
    assert "edgecache_shared_stores_total 0.0" in lines
    assert "edgecache_shared_failures_total 0.0" in lines


async def test_metrics_without_shared_tier(edgecache, client) -> None:
    async with client.get(admin_url(edgecache, "/metrics")) as response:
        text = await response.text()
    assert "edgecache_shared_" not in text


async def test_failed_message_keeps_listener(origin, redis_server, make_edgecache, client, caplog) -> None:
    raw = {**shared_settings(redis_server.url), "admin": {"token": TOKEN}}
    node_a = await make_edgecache(origin.url, raw)
    node_b = await make_edgecache(origin.url, raw)
    await get(client, proxy_url(node_b, "/shoe/p"))
    apply = node_b.shared.listener.apply
    applied = asyncio.Event()

    def fail_once_then_apply(request: PurgeRequest) -> None:
        node_b.shared.listener.apply = apply_and_signal
        raise RuntimeError("purge failed")

    def apply_and_signal(request: PurgeRequest) -> None:
        apply(request)
        applied.set()

    node_b.shared.listener.apply = fail_once_then_apply
    await purge(client, node_a, {"paths": ["/other/p"]})
    await purge(client, node_a, {"paths": ["/shoe/p"]})
    await asyncio.wait_for(applied.wait(), PROPAGATION_LIMIT)

    assert len(node_b.store) == 0
    assert node_b.shared.listener.failed == 1
    assert "RuntimeError('purge failed')" in caplog.text
