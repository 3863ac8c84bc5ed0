"""A rule's low_stock_ttl: pages that claim or are tagged with a low-stock SKU expire sooner."""

from __future__ import annotations

import pytest

from conftest import proxy_url
from edgecache.inventory import InventoryEvent
from inventory_pages import TOKEN, Clock, html_headers, product_page

SETTINGS = {
    "admin": {"token": TOKEN},
    "inventory": {"refresh_on_event": False},
    "rules": [{"name": "product", "match": "/*/p", "ttl": 60, "low_stock_ttl": 5}],
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def get(client, edgecache, path: str) -> str:
    async with client.get(proxy_url(edgecache, path)) as response:
        await response.read()
        return response.headers["X-Cache"]


async def test_low_stock_claim_short_ttl(origin, make_edgecache, client, clock) -> None:
    origin.script("/a/p", headers=html_headers("max-age=60"), body=product_page("A", "LimitedAvailability"))
    edgecache = await make_edgecache(origin.url, SETTINGS, clock=clock)
    assert await get(client, edgecache, "/a/p") == "MISS"
    entry = edgecache.store.most_recent(1)[0]
    assert entry.claims == (("A", "low_stock"),)
    assert entry.lifetime == 5.0
    assert entry.fresh_until == clock.now + 5
    clock.advance(4)
    assert await get(client, edgecache, "/a/p") == "HIT"
    clock.advance(2)
    assert await get(client, edgecache, "/a/p") == "MISS"
    assert origin.count("/a/p") == 2


async def test_in_stock_claim_full_ttl(origin, make_edgecache, client, clock) -> None:
    origin.script("/a/p", headers=html_headers("max-age=60"), body=product_page("A", "InStock"))
    edgecache = await make_edgecache(origin.url, SETTINGS, clock=clock)
    assert await get(client, edgecache, "/a/p") == "MISS"
    assert edgecache.store.most_recent(1)[0].lifetime == 60.0
    clock.advance(59)
    assert await get(client, edgecache, "/a/p") == "HIT"


async def test_low_stock_event_tag_short_ttl(origin, make_edgecache, client, clock) -> None:
    origin.script("/b/p", headers=html_headers("max-age=60", **{"Surrogate-Key": "sku:B"}), body=b"<p>B</p>")
    edgecache = await make_edgecache(origin.url, SETTINGS, clock=clock)
    edgecache.apply_inventory_events([InventoryEvent("B", available_quantity=2, version=1)])
    assert edgecache.tracker.state("B") == "low_stock"
    assert await get(client, edgecache, "/b/p") == "MISS"
    entry = edgecache.store.most_recent(1)[0]
    assert entry.claims == ()
    assert entry.lifetime == 5.0


async def test_low_stock_ttl_other_rule_unaffected(origin, make_edgecache, client, clock) -> None:
    origin.script("/c/bags", headers=html_headers("max-age=60"), body=product_page("A", "LimitedAvailability"))
    edgecache = await make_edgecache(origin.url, SETTINGS, clock=clock)
    assert await get(client, edgecache, "/c/bags") == "MISS"
    assert edgecache.store.most_recent(1)[0].lifetime == 60.0
