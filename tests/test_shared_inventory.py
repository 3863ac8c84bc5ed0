"""Inventory events with a shared tier: one decision in Redis, purges on every node, fenced fills."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from edgecache.inventory import InventoryEvent
from edgecache.key import CacheKey
from edgecache.server import Edgecache
from edgecache.shared import InventoryMessage

from conftest import admin_url, proxy_url
from inventory_pages import TOKEN, Clock, bearer, html_headers, product_page
from redis_process import redis_server, shared_settings  # noqa: F401

SWR = "max-age=60, stale-while-revalidate=30"
NODE = {"admin": {"token": TOKEN}, "inventory": {"refresh_on_event": False, "storm_interval": 0.0}}
# Seconds a purge or an inventory event may take to reach another node's memory store.
# Redis pub/sub delivers it with no timer in between, so this bound only catches a
# message that never arrives and is generous for a loaded 2-core machine.
PROPAGATION_LIMIT = 1.0


class Adoptions:
    """The inventory records a node adopted from other nodes, with a barrier to wait for one."""

    def __init__(self, node: Edgecache) -> None:
        assert node.shared is not None
        self.records: list[InventoryEvent] = []
        self._arrived = asyncio.Event()
        self._adopt = node.shared.listener.adopt
        node.shared.listener.adopt = self._record

    def _record(self, message: InventoryMessage) -> None:
        self._adopt(message)
        self.records.extend(message.records)
        self._arrived.set()

    async def wait(self, record: InventoryEvent, limit: float) -> None:
        async with asyncio.timeout(limit):
            while record not in self.records:
                self._arrived.clear()
                await self._arrived.wait()


def answer(**counts: int | str) -> dict[str, int | str]:
    base: dict[str, int | str] = {"received": 1, "changed": 0, "unchanged": 0, "old-version": 0, "first-seen": 0,
                                  "purged": 0, "deferred": 0, "shared_purged": 0, "shared": "done"}
    return {**base, **counts}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def raw(redis_server) -> dict:
    return {**shared_settings(redis_server.url), **NODE}


@pytest.fixture
async def nodes(origin, raw, make_edgecache, clock) -> tuple[Edgecache, Edgecache]:
    origin.script("/a/p", headers=html_headers(SWR), body=product_page("A", "InStock"))
    return await make_edgecache(origin.url, raw, clock=clock), await make_edgecache(origin.url, raw, clock=clock)


async def get(client, node: Edgecache, path: str) -> str:
    async with client.get(proxy_url(node, path)) as response:
        assert response.status == 200
        await response.read()
        return response.headers["X-Cache"]


async def send(client, node: Edgecache, body) -> dict:
    async with client.post(admin_url(node, "/events/inventory"), json=body, headers=bearer()) as response:
        assert response.status == 200
        return await response.json()


async def entry_keys(node: Edgecache) -> list[bytes]:
    assert node.shared is not None
    return [key async for key in node.shared.tier.client.scan_iter(match="edgecache:e:*")]


async def test_sell_out_on_a_purges_b(origin, nodes, client) -> None:
    node_a, node_b = nodes
    assert await get(client, node_a, "/a/p") == "MISS"
    assert await get(client, node_b, "/a/p") == "HIT"
    adoptions = Adoptions(node_b)
    assert await send(client, node_a, {"sku": "A", "state": "in_stock", "version": 1}) == \
        answer(**{"first-seen": 1})

    started = time.monotonic()
    body = await send(client, node_a, {"sku": "A", "state": "out_of_stock", "version": 2})
    await adoptions.wait(InventoryEvent("A", state="out_of_stock", version=2), PROPAGATION_LIMIT)

    assert time.monotonic() - started < PROPAGATION_LIMIT
    assert body == answer(changed=1, purged=1, shared_purged=1)
    assert len(node_b.store) == 0
    assert await entry_keys(node_b) == []
    assert await get(client, node_b, "/a/p") == "MISS"
    assert origin.count("/a/p") == 2


async def test_duplicate_on_b_acts_nowhere(origin, nodes, client, clock) -> None:
    node_a, node_b = nodes
    adoptions = Adoptions(node_b)
    await send(client, node_a, [{"sku": "A", "state": "in_stock", "version": 1},
                                {"sku": "A", "state": "out_of_stock", "version": 2}])
    await adoptions.wait(InventoryEvent("A", state="out_of_stock", version=2), PROPAGATION_LIMIT)
    clock.advance(1)  # Fills that start at the time of the change are fenced.
    origin.script("/a/p", headers=html_headers(SWR), body=product_page("A", "OutOfStock"))
    assert await get(client, node_b, "/a/p") == "MISS"

    body = await send(client, node_b, {"sku": "A", "state": "out_of_stock", "version": 2})

    assert body == answer(**{"old-version": 1})
    assert await get(client, node_b, "/a/p") == "HIT"
    assert await get(client, node_a, "/a/p") == "HIT"
    assert origin.count("/a/p") == 1
    assert node_a.stats.inventory_events == {"first-seen": 1, "changed": 1}
    assert node_b.stats.inventory_events == {"old-version": 1}


async def test_older_version_on_b_ignored(origin, nodes, client) -> None:
    node_a, node_b = nodes
    await get(client, node_a, "/a/p")
    await send(client, node_a, {"sku": "A", "state": "in_stock", "version": 5})

    body = await send(client, node_b, {"sku": "A", "state": "out_of_stock", "version": 4})

    assert body == answer(**{"old-version": 1})
    assert await get(client, node_b, "/a/p") == "HIT"
    assert origin.count("/a/p") == 1
    record = await node_b.shared.tier.client.hgetall("edgecache:i:sku:A")
    assert record[b"state"] == b"in_stock"
    assert record[b"version"] == b"5"


async def test_concurrent_duplicates_act_once(origin, nodes, client) -> None:
    node_a, node_b = nodes
    event = {"sku": "A", "state": "out_of_stock", "version": 1}

    bodies = await asyncio.gather(*(send(client, node, event) for node in (node_a, node_b) for _ in range(4)))

    assert sum(body["first-seen"] for body in bodies) == 1
    assert sum(body["old-version"] for body in bodies) == 7
    assert node_a.stats.inventory_events.get("first-seen", 0) + node_b.stats.inventory_events.get("first-seen", 0) == 1


async def test_new_node_reads_recorded_version(origin, nodes, raw, make_edgecache, client, clock) -> None:
    node_a, _ = nodes
    await send(client, node_a, {"sku": "A", "state": "in_stock", "version": 3})
    node_c = await make_edgecache(origin.url, raw, clock=clock)

    body = await send(client, node_c, {"sku": "A", "state": "in_stock", "version": 3})

    assert body == answer(**{"old-version": 1})
    assert node_c.tracker.state("A") == "in_stock"


async def test_restock_marks_redis_stale(origin, nodes, client, clock) -> None:
    node_a, node_b = nodes
    origin.script("/a/p", headers=html_headers(SWR), body=product_page("A", "OutOfStock"))
    await get(client, node_a, "/a/p")
    await get(client, node_b, "/a/p")
    await send(client, node_a, {"sku": "A", "state": "out_of_stock", "version": 1})
    clock.advance(1)
    adoptions = Adoptions(node_b)

    body = await send(client, node_a, {"sku": "A", "state": "in_stock", "version": 2})
    await adoptions.wait(InventoryEvent("A", state="in_stock", version=2), PROPAGATION_LIMIT)

    assert body == answer(changed=1, purged=1, shared_purged=1)
    entry = await node_b.shared.tier.lookup(CacheKey(node_b.settings.site_host, "/a/p"), {})
    assert entry is not None
    assert entry.is_fresh(clock()) is False
    assert await get(client, node_b, "/a/p") == "STALE"


async def test_fill_before_change_not_shared(origin, nodes, client, clock) -> None:
    node_a, node_b = nodes
    reached = asyncio.Event()
    release = asyncio.Event()

    async def slow_page(request: web.Request) -> web.Response:
        reached.set()
        await release.wait()
        return web.Response(body=product_page("A", "InStock"), headers=html_headers(SWR))

    origin.handler("/a/p", slow_page)
    # Node A must not hear of the change, so only the check in Redis can keep its fill out.
    node_a.shared.listener.adopt = lambda message: None
    fill = asyncio.create_task(get(client, node_a, "/a/p"))
    await reached.wait()
    clock.advance(1)

    assert await send(client, node_b, {"sku": "A", "state": "out_of_stock", "version": 1}) == \
        answer(**{"first-seen": 1})
    release.set()

    assert await fill == "MISS"
    assert node_a.shared.tier.figures["fenced"] == 1
    assert node_a.shared.tier.figures["stores"] == 0
    assert await entry_keys(node_a) == []


async def test_fill_racing_record_purged(origin, nodes, client, clock) -> None:
    node_a, node_b = nodes
    await get(client, node_a, "/a/p")
    old_fill = node_a.store.lookup(CacheKey(node_a.settings.site_host, "/a/p"), {})
    assert old_fill is not None
    clock.advance(1)
    written: list[bool] = []
    purge_tag = node_b.shared.tier.purge_tag

    async def purge_then_write_old_fill(*args, **options) -> int:
        purged = await purge_tag(*args, **options)
        if not written:
            # Another node writes a fill that started before the change, before the record exists.
            written.append(await node_a.shared.tier.put(old_fill))
        return purged

    node_b.shared.tier.purge_tag = purge_then_write_old_fill

    body = await send(client, node_b, {"sku": "A", "state": "out_of_stock", "version": 1})

    assert written == [True]
    assert body == answer(**{"first-seen": 1, "shared_purged": 2})
    assert await entry_keys(node_b) == []


async def test_fill_after_change_is_shared(origin, nodes, client, clock) -> None:
    node_a, node_b = nodes
    await send(client, node_b, {"sku": "A", "state": "in_stock", "version": 1})
    clock.advance(1)

    assert await get(client, node_a, "/a/p") == "MISS"

    assert node_a.shared.tier.figures["fenced"] == 0
    assert node_a.shared.tier.figures["stores"] == 1
    assert await get(client, node_b, "/a/p") == "HIT"


async def test_event_while_redis_down(nodes, redis_server, client) -> None:
    node_a, _ = nodes
    await get(client, node_a, "/a/p")
    redis_server.stop()

    body = await send(client, node_a, {"sku": "A", "state": "out_of_stock", "version": 1})

    assert body == {"received": 1, "changed": 0, "unchanged": 0, "old-version": 0, "first-seen": 1, "purged": 1,
                    "deferred": 0, "shared": "failed: Redis is down; other nodes keep their copies"}
    assert len(node_a.store) == 0
    assert node_a.tracker.state("A") == "out_of_stock"


async def test_invalid_record_counts_as_absent(nodes, client) -> None:
    node_a, _ = nodes
    redis = node_a.shared.tier.client
    await redis.hset("edgecache:i:sku:A", mapping={"sku": "A", "state": "sold", "version": "9", "changes": ""})

    body = await send(client, node_a, {"sku": "A", "state": "in_stock", "version": 1})

    assert body == answer(**{"first-seen": 1})
    assert node_a.shared.tier.figures["corrupt"] == 1
    assert (await redis.hgetall("edgecache:i:sku:A"))[b"version"] == b"1"
