"""Refetching after events, and the reconciliation sampler, against a loopback origin."""

from __future__ import annotations

from aiohttp import web

from conftest import proxy_url
from edgecache.inventory import InventoryEvent
from inventory_pages import TOKEN, Clock, html_headers, product_page


class ProductOrigin:
    """A product page whose availability the test sets; answers If-None-Match with 304."""

    def __init__(self, sku: str, availability: str) -> None:
        self.sku = sku
        self.availability = availability
        self.conditional = 0

    async def handle(self, request: web.Request) -> web.Response:
        etag = f'"{self.availability}"'
        if request.headers.get("If-None-Match") == etag:
            self.conditional += 1
            return web.Response(status=304, headers={"ETag": etag, "Cache-Control": "max-age=60"})
        return web.Response(body=product_page(self.sku, self.availability), headers=html_headers(ETag=etag))


async def get(client, edgecache, path: str) -> tuple[str, bytes]:
    async with client.get(proxy_url(edgecache, path)) as response:
        return response.headers["X-Cache"], await response.read()


async def test_restock_refetches_page(origin, make_edgecache, client) -> None:
    clock = Clock()
    product = ProductOrigin("A", "OutOfStock")
    origin.handler("/a/p", product.handle)
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}}, clock=clock)
    await get(client, edgecache, "/a/p")
    product.availability = "InStock"
    clock.advance(1)
    edgecache.apply_inventory_events([InventoryEvent("A", state="in_stock", version=2)])
    clock.advance(1)
    await edgecache.refetcher.close()
    outcome, body = await get(client, edgecache, "/a/p")
    assert outcome == "HIT"
    assert body == product_page("A", "InStock")
    assert origin.count("/a/p") == 2
    assert edgecache.stats.event_refreshes == 1


async def test_reconcile_unchanged_costs_304(origin, make_edgecache, client) -> None:
    product = ProductOrigin("A", "InStock")
    origin.handler("/a/p", product.handle)
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}})
    await get(client, edgecache, "/a/p")
    assert await edgecache.reconciler.check_next() is True
    assert product.conditional == 1
    assert edgecache.stats.reconcile_checks == 1
    assert edgecache.stats.reconcile_mismatches == 0


async def test_reconcile_mismatch_refreshes(origin, make_edgecache, client) -> None:
    product = ProductOrigin("A", "InStock")
    origin.handler("/a/p", product.handle)
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}})
    await get(client, edgecache, "/a/p")
    product.availability = "OutOfStock"
    assert await edgecache.reconciler.check_next() is True
    assert edgecache.stats.reconcile_mismatches == 1
    outcome, body = await get(client, edgecache, "/a/p")
    assert outcome == "HIT"
    assert body == product_page("A", "OutOfStock")


async def test_reconcile_skips_pages_without_claims(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url)
    await get(client, edgecache, "/plain")
    assert await edgecache.reconciler.check_next() is False
    assert origin.count() == 1


async def test_reconcile_off_by_default(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url)
    assert edgecache.reconciler.enabled is False
    assert [task.get_name() for task in edgecache._tasks] == ["edgecache-storm-flush"]
