"""Tags from the origin's Surrogate-Key or Cache-Tag header, stripped or kept, purged by tag."""

from __future__ import annotations

import pytest

from conftest import admin_url, proxy_url
from edgecache.tags import parse_tag_header
from inventory_pages import TOKEN, bearer


@pytest.mark.parametrize(("name", "value", "tags"), [
    ("Surrogate-Key", "sku:1 category:bags", {"sku:1", "category:bags"}),
    ("Surrogate-Key", "  sku:1\tsku:2  ", {"sku:1", "sku:2"}),
    ("surrogate-key", "", set()),
    ("Surrogate-Key", None, set()),
    ("Cache-Tag", "sku:1, category:bags,,sku:2", {"sku:1", "category:bags", "sku:2"}),
    ("cache-tag", " a b ", {"a b"}),
])
def test_parse_tag_header_table(name: str, value: str | None, tags: set[str]) -> None:
    assert parse_tag_header(name, value) == frozenset(tags)


async def get(client, edgecache, path: str) -> tuple[str, dict[str, str]]:
    async with client.get(proxy_url(edgecache, path)) as response:
        await response.read()
        return response.headers["X-Cache"], dict(response.headers)


async def purge_tag(client, edgecache, tag: str) -> dict:
    async with client.post(admin_url(edgecache, "/purge"), json={"tags": [tag]}, headers=bearer()) as response:
        assert response.status == 200
        return await response.json()


async def test_cache_tag_header_purge(origin, make_edgecache, client) -> None:
    origin.script("/bags/p", headers={"Cache-Control": "max-age=60", "Cache-Tag": "sku:1, category:bags"})
    origin.script("/shoes/p", headers={"Cache-Control": "max-age=60", "Cache-Tag": "sku:2, category:shoes"})
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}, "tags": {"header": "Cache-Tag"}})
    outcome, headers = await get(client, edgecache, "/bags/p")
    assert outcome == "MISS"
    assert "Cache-Tag" not in headers
    await get(client, edgecache, "/shoes/p")
    assert await purge_tag(client, edgecache, "category:bags") == {"purged": 1, "soft": False}
    assert (await get(client, edgecache, "/bags/p"))[0] == "MISS"
    assert (await get(client, edgecache, "/shoes/p"))[0] == "HIT"


async def test_keep_header_passes_tags(origin, make_edgecache, client) -> None:
    origin.script("/bags/p", headers={"Cache-Control": "max-age=60", "Surrogate-Key": "sku:1 category:bags"})
    edgecache = await make_edgecache(origin.url, {"tags": {"keep_header": True}})
    for expected in ("MISS", "HIT"):
        outcome, headers = await get(client, edgecache, "/bags/p")
        assert outcome == expected
        assert headers["Surrogate-Key"] == "sku:1 category:bags"


async def test_surrogate_key_stripped_on_hit(origin, make_edgecache, client) -> None:
    origin.script("/bags/p", headers={"Cache-Control": "max-age=60", "Surrogate-Key": "sku:1"})
    edgecache = await make_edgecache(origin.url)
    for expected in ("MISS", "HIT"):
        outcome, headers = await get(client, edgecache, "/bags/p")
        assert outcome == expected
        assert "Surrogate-Key" not in headers
