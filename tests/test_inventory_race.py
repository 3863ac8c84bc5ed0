"""Fills that race an inventory event, made deterministic with barriers on the origin."""

from __future__ import annotations

import asyncio

from aiohttp import web

from conftest import admin_url, proxy_url
from edgecache.inventory import InventoryEvent
from inventory_pages import TOKEN, Clock, bearer, html_headers, product_page

SETTINGS = {"admin": {"token": TOKEN}, "inventory": {"refresh_on_event": False, "storm_interval": 0.0}}


async def test_fill_after_purge_not_fresh(origin, make_edgecache, client) -> None:
    clock = Clock()
    arrived, gate = asyncio.Event(), asyncio.Event()

    async def render_old_state(request: web.Request) -> web.Response:
        arrived.set()
        await gate.wait()
        return web.Response(body=product_page("A", "InStock"), headers=html_headers())

    origin.handler("/a/p", render_old_state)
    edgecache = await make_edgecache(origin.url, SETTINGS, clock=clock)
    fill = asyncio.create_task(client.get(proxy_url(edgecache, "/a/p")))
    await arrived.wait()
    clock.advance(1)
    async with client.post(admin_url(edgecache, "/events/inventory"), headers=bearer(),
                           json={"sku": "A", "state": "out_of_stock", "version": 2}) as response:
        assert response.status == 200
    gate.set()
    async with await fill as response:
        await response.read()
        assert response.headers["X-Cache"] == "MISS"
    entry = edgecache.store.most_recent(1)[0]
    assert entry.fresh_until == clock.now
    assert entry.forbid_stale is True
    assert edgecache.stats.fenced_fills == 1
    async with client.get(proxy_url(edgecache, "/a/p")) as response:
        await response.read()
        assert response.headers["X-Cache"] == "MISS"
    assert origin.count("/a/p") == 2


async def test_fill_after_event_is_fresh(origin, make_edgecache, client) -> None:
    clock = Clock()
    origin.script("/a/p", headers=html_headers(), body=product_page("A", "OutOfStock"))
    edgecache = await make_edgecache(origin.url, SETTINGS, clock=clock)
    async with client.post(admin_url(edgecache, "/events/inventory"), headers=bearer(),
                           json={"sku": "A", "state": "out_of_stock", "version": 2}) as response:
        assert response.status == 200
    clock.advance(1)
    for expected in ("MISS", "HIT"):
        async with client.get(proxy_url(edgecache, "/a/p")) as response:
            await response.read()
            assert response.headers["X-Cache"] == expected
    assert edgecache.stats.fenced_fills == 0


async def test_revalidation_after_soft_purge_stays_stale(origin, make_edgecache, client) -> None:
    clock = Clock()
    arrived, gate = asyncio.Event(), asyncio.Event()
    origin.script("/a/p", headers=html_headers("max-age=60", ETag='"v1"'), body=product_page("A", "OutOfStock"))
    edgecache = await make_edgecache(origin.url, SETTINGS, clock=clock)
    async with client.get(proxy_url(edgecache, "/a/p")) as response:
        await response.read()

    async def not_modified(request: web.Request) -> web.Response:
        arrived.set()
        await gate.wait()
        return web.Response(status=304, headers={"ETag": '"v1"', "Cache-Control": "max-age=60"})

    origin.handler("/a/p", not_modified)
    clock.advance(61)
    revalidation = asyncio.create_task(client.get(proxy_url(edgecache, "/a/p")))
    await arrived.wait()
    clock.advance(1)
    result = edgecache.apply_inventory_events([InventoryEvent("A", state="in_stock", version=2)])
    assert result["purged"] == 1
    gate.set()
    async with await revalidation as response:
        await response.read()
        assert response.headers["X-Cache"] == "HIT"
    entry = edgecache.store.most_recent(1)[0]
    assert entry.fresh_until == clock.now
    assert edgecache.stats.fenced_fills == 1
