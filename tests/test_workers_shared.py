"""`edgecache serve --workers 2` with Redis: workers share entries, events reach Redis and both workers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as redis

from inventory_pages import html_headers, product_page
from redis_process import RedisProcess, redis_server  # noqa: F401
from worker_instance import NO_REFRESH, TOKEN, Instance, running, send_events

# New connections sent until both workers hold the page; see test_workers.py for the odds.
CONNECTIONS = 40


@pytest.fixture
async def instance(origin, redis_server: RedisProcess, client) -> AsyncIterator[Instance]:
    env = {"EDGECACHE_ADMIN_TOKEN": TOKEN, "EDGECACHE_CACHE_SHARED_URL": redis_server.url,
           "EDGECACHE_CACHE_SHARED_RETRY_INTERVAL": "0.05", **NO_REFRESH}
    async with running(origin, client, env=env) as started:
        yield started


async def stats(client: aiohttp.ClientSession, instance: Instance) -> dict:
    async with client.get(instance.admin + "/stats") as response:
        return await response.json()


async def health(client: aiohttp.ClientSession, instance: Instance) -> dict:
    async with client.get(instance.admin + "/health") as response:
        return await response.json()


async def fill_both_workers(client: aiohttp.ClientSession, instance: Instance, path: str) -> int:
    """Send requests on new connections until both workers hold the page in memory; return how many."""
    for sent in range(1, CONNECTIONS + 1):
        async with client.get(instance.proxy + path, headers={"Connection": "close"}) as response:
            assert response.status == 200
            await response.read()
        if (await stats(client, instance))["cache"]["entries"] == 2:
            return sent
    pytest.fail(f"one worker got all {CONNECTIONS} connections")


async def entry_keys(redis_server: RedisProcess) -> list[bytes]:
    async with redis.Redis.from_url(redis_server.url) as connection:
        return [key async for key in connection.scan_iter(match="edgecache:e:*")]


async def test_page_from_one_worker_hits_other(instance, origin, client) -> None:
    sent = await fill_both_workers(client, instance, "/shoe/p")

    figures = await stats(client, instance)
    assert origin.count("/shoe/p") == 1
    assert figures["requests"]["miss"] == 1
    assert figures["requests"]["hit"] == sent - 1
    assert figures["shared"]["hits"] == 1
    assert figures["shared"]["stores"] == 1
    async with client.get(instance.admin + "/metrics") as response:
        lines = (await response.text()).splitlines()
    assert 'edgecache_shared_lookups_total{result="hit"} 1.0' in lines
    assert "edgecache_shared_stores_total 1.0" in lines
    assert "edgecache_shared_up 1.0" in lines


async def test_event_reaches_workers_and_redis(instance, origin, redis_server, client) -> None:
    origin.script("/a/p", headers=html_headers(), body=product_page("A", "InStock"))
    await fill_both_workers(client, instance, "/a/p")
    await send_events(client, instance, {"sku": "A", "state": "in_stock", "version": 1})

    body = await send_events(client, instance, {"sku": "A", "state": "out_of_stock", "version": 2})

    # The second worker's copy goes either through the supervisor or, first, through
    # pub/sub, which the response does not count; /stats counts both.
    assert body["purged"] in (1, 2)
    assert {name: body[name] for name in body if name != "purged"} == {
        "received": 1, "changed": 1, "unchanged": 0, "old-version": 0, "first-seen": 0, "deferred": 0,
        "shared_purged": 1, "shared": "done", "workers": 2}
    figures = await stats(client, instance)
    assert figures["cache"]["entries"] == 0
    assert figures["inventory"]["events"] == {"changed": 1, "first-seen": 1}
    assert figures["inventory"]["purged_entries"] == {"hard": 2}
    assert await entry_keys(redis_server) == []


async def test_duplicate_event_acts_nowhere(instance, origin, client) -> None:
    origin.script("/a/p", headers=html_headers(), body=product_page("A", "InStock"))
    await send_events(client, instance, {"sku": "A", "state": "in_stock", "version": 1})
    await fill_both_workers(client, instance, "/a/p")

    body = await send_events(client, instance, {"sku": "A", "state": "out_of_stock", "version": 1})

    assert body["old-version"] == 1
    assert body["purged"] == 0
    assert (await stats(client, instance))["cache"]["entries"] == 2


async def test_redis_down_and_back(instance, origin, redis_server, client) -> None:
    assert (await health(client, instance))["shared"] == "up"

    redis_server.stop()
    await instance.output.wait_for("invalidation channel 'edgecache:invalidate' lost", count=2)

    assert (await health(client, instance))["shared"] == "down"
    assert (await stats(client, instance))["shared"]["state"] == "down"
    async with client.get(instance.proxy + "/while/down/p") as response:
        assert response.status == 200
    redis_server.start()
    await instance.output.wait_for("subscribed again", count=2)
    assert (await health(client, instance))["shared"] == "up"


async def test_purge_reaches_workers_and_redis(instance, redis_server, client) -> None:
    await fill_both_workers(client, instance, "/shoe/p")

    async with client.post(instance.admin + "/purge", json={"paths": ["/shoe/p"]},
                           headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
        body = await response.json()

    # As with inventory events, the second worker's copy may go through pub/sub first.
    assert body["purged"] in (1, 2)
    assert {name: body[name] for name in body if name != "purged"} == {"soft": False, "shared": "done",
                                                                       "workers": 2}
    assert (await stats(client, instance))["cache"]["entries"] == 0
    assert await entry_keys(redis_server) == []
