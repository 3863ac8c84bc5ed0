"""The path index in Redis: prefix purges and purge-all find entries without scanning the keyspace."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from edgecache.entry import store_key
from edgecache.key import CacheKey
from edgecache.server import Edgecache

from conftest import admin_url, proxy_url
from redis_process import redis_server, shared_settings  # noqa: F401

TOKEN = "secret"
# Seconds Redis gets to remove a key whose expiry was set to 1 ms.
EXPIRY_LIMIT = 5.0
PATHS = ("/c/bags", "/c/shoes", "/c/shoes-sale", "/c/shoes/red", "/d/shoes")


@pytest.fixture
async def nodes(origin, redis_server, make_edgecache) -> tuple[Edgecache, Edgecache]:
    raw = {**shared_settings(redis_server.url), "admin": {"token": TOKEN}}
    return await make_edgecache(origin.url, raw), await make_edgecache(origin.url, raw)


async def fill(client: aiohttp.ClientSession, node: Edgecache, paths: tuple[str, ...]) -> None:
    for path in paths:
        async with client.get(proxy_url(node, path)) as response:
            assert response.status == 200
            await response.read()


async def purge(client: aiohttp.ClientSession, node: Edgecache, body: dict) -> dict:
    async with client.post(admin_url(node, "/purge"), json=body,
                           headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
        return await response.json()


async def scan_calls(node: Edgecache) -> int:
    stats = await node.shared.tier.client.info("commandstats")
    return int(stats.get("cmdstat_scan", {}).get("calls", 0))


async def stored_in_redis(node: Edgecache, path: str) -> bool:
    tier = node.shared.tier
    full_key = store_key(CacheKey(node.settings.site_host, path), "")
    return await tier.client.exists(tier.entry_key(full_key)) == 1


async def indexed_paths(node: Edgecache) -> list[str]:
    tier = node.shared.tier
    return [member.decode() for member in await tier.client.zrange(tier.path_index, 0, -1)]


async def test_stores_add_paths_to_index(nodes, client) -> None:
    node_a, _ = nodes

    await fill(client, node_a, PATHS)

    assert await indexed_paths(node_a) == list(PATHS)
    assert await node_a.shared.tier.client.zscore(node_a.shared.tier.path_index, "/c/shoes") == 0


async def test_prefix_purge_touches_only_matches(nodes, client) -> None:
    node_a, _ = nodes
    await fill(client, node_a, PATHS)
    scans_before = await scan_calls(node_a)

    answer = await purge(client, node_a, {"prefixes": ["/c/shoes"]})

    assert answer == {"purged": 3, "soft": False, "shared": "done"}
    assert await scan_calls(node_a) == scans_before
    assert {path: await stored_in_redis(node_a, path) for path in PATHS} == {
        "/c/bags": True, "/c/shoes": False, "/c/shoes-sale": False, "/c/shoes/red": False, "/d/shoes": True}
    assert await indexed_paths(node_a) == ["/c/bags", "/d/shoes"]
    assert await node_a.shared.tier.client.exists("edgecache:p:/c/shoes", "edgecache:p:/c/shoes/red") == 0
    assert await node_a.shared.tier.client.exists("edgecache:p:/c/bags") == 1


async def test_prefix_purge_reaches_other_node(nodes, origin, client) -> None:
    node_a, node_b = nodes
    await fill(client, node_a, PATHS)

    await purge(client, node_a, {"prefixes": ["/c/shoes/"]})

    for path, x_cache in (("/c/shoes/red", "MISS"), ("/c/shoes", "HIT"), ("/d/shoes", "HIT")):
        async with client.get(proxy_url(node_b, path)) as response:
            assert (path, response.headers["X-Cache"]) == (path, x_cache)
    assert origin.count("/c/shoes/red") == 2
    assert origin.count("/c/shoes") == 1


async def test_purge_all_uses_index(nodes, client) -> None:
    node_a, _ = nodes
    await fill(client, node_a, PATHS)
    scans_before = await scan_calls(node_a)

    await purge(client, node_a, {"all": True})

    assert await scan_calls(node_a) == scans_before
    assert [path for path in PATHS if await stored_in_redis(node_a, path)] == []
    assert await indexed_paths(node_a) == []
    assert await node_a.shared.tier.client.zcard(node_a.shared.tier.path_expiry_index) == 0


async def test_soft_prefix_purge_keeps_index(nodes, client) -> None:
    node_a, _ = nodes
    await fill(client, node_a, PATHS)

    await purge(client, node_a, {"prefixes": ["/c/"], "soft": True})

    assert await indexed_paths(node_a) == list(PATHS)
    assert await stored_in_redis(node_a, "/c/shoes") is True


async def test_expired_path_pruned_by_purge(nodes, client) -> None:
    node_a, _ = nodes
    await fill(client, node_a, ("/c/bags", "/c/shoes"))
    tier = node_a.shared.tier
    full_key = store_key(CacheKey(node_a.settings.site_host, "/c/shoes"), "")
    for redis_key in (tier.entry_key(full_key), tier.path_key("/c/shoes")):
        await tier.client.pexpire(redis_key, 1)
    async with asyncio.timeout(EXPIRY_LIMIT):
        while await tier.client.exists(tier.path_key("/c/shoes")):
            await asyncio.sleep(0.001)
    assert await indexed_paths(node_a) == ["/c/bags", "/c/shoes"]

    await purge(client, node_a, {"prefixes": ["/c/s"], "soft": True})

    assert await indexed_paths(node_a) == ["/c/bags"]
    assert await tier.client.zrange(tier.path_expiry_index, 0, -1) == [b"/c/bags"]


async def test_tag_purge_removes_path(nodes, origin, client) -> None:
    node_a, _ = nodes
    origin.script("/c/shoes", headers={"Cache-Control": "max-age=60", "Surrogate-Key": "sku:7"}, body=b"shoes")
    await fill(client, node_a, ("/c/bags", "/c/shoes"))

    await purge(client, node_a, {"tags": ["sku:7"]})

    assert await indexed_paths(node_a) == ["/c/bags"]
    assert await node_a.shared.tier.client.exists(node_a.shared.tier.path_key("/c/shoes")) == 0


async def test_write_prunes_expired_path(nodes, client) -> None:
    node_a, _ = nodes
    await fill(client, node_a, ("/c/shoes",))
    tier = node_a.shared.tier
    full_key = store_key(CacheKey(node_a.settings.site_host, "/c/shoes"), "")
    # What the passing of its expiry leaves: the entry and path set gone, the expiry score in the past.
    await tier.client.zadd(tier.path_expiry_index, {"/c/shoes": 1})
    for redis_key in (tier.entry_key(full_key), tier.path_key("/c/shoes")):
        await tier.client.pexpire(redis_key, 1)
    async with asyncio.timeout(EXPIRY_LIMIT):
        while await tier.client.exists(tier.path_key("/c/shoes")):
            await asyncio.sleep(0.001)

    await fill(client, node_a, ("/c/bags",))

    assert await indexed_paths(node_a) == ["/c/bags"]
    expiries = await tier.client.zrange(tier.path_expiry_index, 0, -1, withscores=True)
    assert [member.decode() for member, _ in expiries] == ["/c/bags"]
    seconds, microseconds = await tier.client.time()
    assert expiries[0][1] > seconds * 1000 + microseconds // 1000


async def test_write_keeps_live_paths(nodes, client) -> None:
    node_a, _ = nodes
    await fill(client, node_a, ("/c/shoes",))

    await fill(client, node_a, ("/c/bags",))

    tier = node_a.shared.tier
    assert await indexed_paths(node_a) == ["/c/bags", "/c/shoes"]
    assert await tier.client.zcard(tier.path_expiry_index) == 2
