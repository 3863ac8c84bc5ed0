"""Storm windows: many events for one page make one refresh, but availability flips purge at once."""

from __future__ import annotations

import pytest
from aiohttp import web

from conftest import admin_url, proxy_url
from edgecache.invalidation import makes_claim_wrong
from inventory_pages import TOKEN, Clock, bearer, html_headers, product_page

SWR = "max-age=60, stale-while-revalidate=30"


class ProductOrigin:
    """One product page whose schema.org availability the test sets."""

    def __init__(self, sku: str, availability: str) -> None:
        self.sku = sku
        self.availability = availability

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(body=product_page(self.sku, self.availability), headers=html_headers(SWR))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def settings(**inventory: object) -> dict[str, object]:
    return {"admin": {"token": TOKEN},
            "inventory": {"refresh_on_event": False, "storm_interval": 10.0, **inventory}}


async def get(client, edgecache, path: str) -> tuple[str, bytes]:
    async with client.get(proxy_url(edgecache, path)) as response:
        return response.headers["X-Cache"], await response.read()


async def send(client, edgecache, body) -> dict:
    async with client.post(admin_url(edgecache, "/events/inventory"), json=body, headers=bearer()) as response:
        assert response.status == 200
        return await response.json()


@pytest.mark.parametrize(("claimed", "state", "wrong"), [
    ("in_stock", "out_of_stock", True),
    ("low_stock", "out_of_stock", True),
    ("backorder", "out_of_stock", True),
    ("out_of_stock", "in_stock", True),
    ("out_of_stock", "low_stock", True),
    ("out_of_stock", "backorder", True),
    ("in_stock", "low_stock", False),
    ("low_stock", "in_stock", False),
    ("out_of_stock", "out_of_stock", False),
    ("unknown", "out_of_stock", False),
    (None, "out_of_stock", False),
])
def test_makes_claim_wrong_table(claimed: str | None, state: str, wrong: bool) -> None:
    assert makes_claim_wrong(claimed, state) is wrong


async def test_restock_inside_window_purges_at_once(origin, make_edgecache, client, clock) -> None:
    product = ProductOrigin("A", "InStock")
    origin.handler("/a/p", product.handle)
    edgecache = await make_edgecache(origin.url, settings(), clock=clock)
    await get(client, edgecache, "/a/p")
    await send(client, edgecache, {"sku": "A", "state": "in_stock", "version": 1})

    product.availability = "OutOfStock"
    sold_out = await send(client, edgecache, {"sku": "A", "state": "out_of_stock", "version": 2})
    assert sold_out["purged"] == 1
    clock.advance(1)
    assert await get(client, edgecache, "/a/p") == ("MISS", product_page("A", "OutOfStock"))

    product.availability = "InStock"
    clock.advance(1)
    restocked = await send(client, edgecache, {"sku": "A", "state": "in_stock", "version": 3})
    assert restocked["purged"] == 1
    assert restocked["deferred"] == 0
    assert edgecache.invalidator.pending == 0
    assert edgecache.stats.inventory_purges == {"hard": 1, "soft": 1}


async def test_non_flip_inside_window_waits(origin, make_edgecache, client, clock) -> None:
    product = ProductOrigin("A", "InStock")
    origin.handler("/a/p", product.handle)
    edgecache = await make_edgecache(origin.url, settings(), clock=clock)
    await get(client, edgecache, "/a/p")
    await send(client, edgecache, {"sku": "A", "state": "out_of_stock", "version": 1})
    clock.advance(1)
    product.availability = "OutOfStock"
    await get(client, edgecache, "/a/p")

    clock.advance(1)
    body = await send(client, edgecache, {"sku": "A", "state": "out_of_stock", "version": 2})
    assert body["unchanged"] == 1
    body = await send(client, edgecache, {"sku": "A", "state": "low_stock", "version": 3})
    assert body["purged"] == 1  # The page claims sold out: a flip.
    clock.advance(1)
    await edgecache.proxy.close()
    product.availability = "LimitedAvailability"
    await get(client, edgecache, "/a/p")
    await edgecache.proxy.close()
    body = await send(client, edgecache, {"sku": "A", "state": "in_stock", "version": 4})
    assert body["purged"] == 0
    assert body["deferred"] == 1  # low_stock to in_stock leaves the page's availability right.


async def test_flip_purges_capped_per_window(origin, make_edgecache, client, clock) -> None:
    product = ProductOrigin("A", "InStock")
    origin.handler("/a/p", product.handle)
    edgecache = await make_edgecache(origin.url, settings(storm_flip_purges=2), clock=clock)
    await get(client, edgecache, "/a/p")
    await send(client, edgecache, {"sku": "A", "state": "in_stock", "version": 1})

    answers = []
    for version, (state, availability) in enumerate([("out_of_stock", "OutOfStock"), ("in_stock", "InStock"),
                                                     ("out_of_stock", "OutOfStock")], start=2):
        clock.advance(1)
        await get(client, edgecache, "/a/p")
        await edgecache.proxy.close()
        product.availability = availability
        body = await send(client, edgecache, {"sku": "A", "state": state, "version": version})
        answers.append((body["purged"], body["deferred"]))

    assert answers == [(1, 0), (1, 0), (0, 1)]
    assert edgecache.invalidator.pending == 1
    clock.advance(10)
    assert edgecache.invalidator.flush_due(clock()) == 1


async def test_many_events_one_refresh(origin, make_edgecache, client, clock) -> None:
    skus = [f"SKU-{number:05d}" for number in range(400)]
    surrogate_key = " ".join(["category:bags", *(f"sku:{sku}" for sku in skus)])
    assert len(surrogate_key) > 4000
    origin.script("/c/bags", headers=html_headers(SWR, **{"Surrogate-Key": surrogate_key}), body=b"<ul>bags</ul>")
    edgecache = await make_edgecache(origin.url, settings(refresh_on_event=True), clock=clock)
    async with client.get(proxy_url(edgecache, "/c/bags")) as response:
        assert response.headers["X-Cache"] == "MISS"
        assert "Surrogate-Key" not in response.headers
        await response.read()
    assert len(edgecache.store.most_recent(1)[0].tags) == 401

    body = await send(client, edgecache, [{"sku": sku, "state": "in_stock", "version": 1} for sku in skus])
    assert (body["first-seen"], body["purged"], body["deferred"]) == (400, 1, 399)
    await edgecache.refetcher.close()
    assert origin.count("/c/bags") == 2
    clock.advance(10)
    assert edgecache.invalidator.flush_due(clock()) == 1
    await edgecache.refetcher.close()
    assert origin.count("/c/bags") == 3

    clock.advance(1)
    body = await send(client, edgecache, [{"sku": sku, "state": "out_of_stock", "version": 2} for sku in skus])
    assert (body["changed"], body["purged"], body["deferred"]) == (400, 0, 400)
    assert edgecache.invalidator.pending == 1
    assert origin.count("/c/bags") == 3
    assert edgecache.stats.event_refreshes == 2
