"""Settings of HTML extraction through the real proxy: on or off, and the SKU tag template."""

from __future__ import annotations

from conftest import proxy_url
from edgecache.inventory import InventoryEvent
from inventory_pages import html_headers, page, product_json_ld, product_page


async def fill(client, edgecache, path: str) -> None:
    async with client.get(proxy_url(edgecache, path)) as response:
        assert response.headers["X-Cache"] == "MISS"
        await response.read()


async def test_extraction_on_by_default(origin, make_edgecache, client) -> None:
    origin.script("/c/bags", headers=html_headers(),
                  body=page(product_json_ld("A", "InStock"), product_json_ld("B", "OutOfStock")))
    edgecache = await make_edgecache(origin.url)
    await fill(client, edgecache, "/c/bags")
    entry = edgecache.store.most_recent(1)[0]
    assert entry.tags == frozenset({"sku:A", "sku:B"})
    assert entry.claims == (("A", "in_stock"), ("B", "out_of_stock"))


async def test_extraction_off(origin, make_edgecache, client) -> None:
    origin.script("/a/p", headers=html_headers(), body=product_page("A", "InStock"))
    edgecache = await make_edgecache(origin.url, {"tags": {"extract_from_html": False}})
    await fill(client, edgecache, "/a/p")
    entry = edgecache.store.most_recent(1)[0]
    assert entry.tags == frozenset()
    assert entry.claims == ()


async def test_sku_template_names_tags(origin, make_edgecache, client) -> None:
    origin.script("/a/p", headers=html_headers(), body=product_page("A", "InStock"))
    edgecache = await make_edgecache(origin.url, {"tags": {"sku_template": "product-{sku}"},
                                                  "inventory": {"refresh_on_event": False}})
    await fill(client, edgecache, "/a/p")
    assert edgecache.store.most_recent(1)[0].tags == frozenset({"product-A"})
    result = edgecache.apply_inventory_events([InventoryEvent("A", state="out_of_stock", version=1)])
    assert result["purged"] == 1
    assert len(edgecache.store) == 0


async def test_header_tags_keep_html_claims(origin, make_edgecache, client) -> None:
    origin.script("/a/p", headers=html_headers(**{"Surrogate-Key": "product:a"}), body=product_page("A", "InStock"))
    edgecache = await make_edgecache(origin.url)
    await fill(client, edgecache, "/a/p")
    entry = edgecache.store.most_recent(1)[0]
    assert entry.tags == frozenset({"product:a"})
    assert entry.claims == (("A", "in_stock"),)


async def test_non_html_not_extracted(origin, make_edgecache, client) -> None:
    origin.script("/a.json", headers={"Cache-Control": "max-age=60", "Content-Type": "application/json"},
                  body=product_page("A", "InStock"))
    edgecache = await make_edgecache(origin.url)
    await fill(client, edgecache, "/a.json")
    entry = edgecache.store.most_recent(1)[0]
    assert entry.tags == frozenset()
    assert entry.claims == ()
