"""Cache keys end to end: canonical paths, folding settings, sites and key cookies."""

from __future__ import annotations

import aiohttp
import pytest

from conftest import proxy_url
from helpers import raw_request

VARIANTS = ["/shoe/p", "//shoe/p", "/a/../shoe/p", "/%73hoe/p", "/./shoe/p", "/shoe//p"]


@pytest.mark.parametrize("target", VARIANTS[1:])
async def test_path_variant_hits_canonical_entry(origin, edgecache, target: str) -> None:
    first = await raw_request(edgecache.proxy_port, "/shoe/p")
    second = await raw_request(edgecache.proxy_port, target)

    assert first.headers["X-Cache"] == "MISS"
    assert second.headers["X-Cache"] == "HIT"
    assert second.body == first.body
    assert origin.count() == 1


async def test_path_variants_share_one_entry(origin, edgecache) -> None:
    for target in VARIANTS:
        await raw_request(edgecache.proxy_port, target)

    assert origin.count() == 1
    assert len(edgecache.store) == 1


async def test_variant_first_is_forwarded_canonically(origin, edgecache) -> None:
    response = await raw_request(edgecache.proxy_port, "/a/../%73hoe//p")

    assert response.status == 200
    assert response.headers["X-Cache"] == "MISS"
    assert [r.path_qs for r in origin.requests] == ["/shoe/p"]


async def test_trailing_slash_distinct_by_default(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoes")
    response = await raw_request(edgecache.proxy_port, "/shoes/")

    assert response.headers["X-Cache"] == "MISS"
    assert origin.count() == 2


async def test_trailing_slash_folded_when_set(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"key": {"fold_trailing_slash": True}})
    await raw_request(edgecache.proxy_port, "/shoes")
    response = await raw_request(edgecache.proxy_port, "/shoes/")

    assert response.headers["X-Cache"] == "HIT"
    assert origin.count() == 1


async def test_case_distinct_by_default(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoe/p")
    response = await raw_request(edgecache.proxy_port, "/Shoe/P")

    assert response.headers["X-Cache"] == "MISS"
    assert origin.count() == 2


async def test_case_folded_when_set(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"key": {"fold_case": True}})
    await raw_request(edgecache.proxy_port, "/shoe/p")
    response = await raw_request(edgecache.proxy_port, "/Shoe/P")

    assert response.headers["X-Cache"] == "HIT"
    assert origin.count() == 1


async def test_encoded_slash_not_a_separator(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/a/b")
    response = await raw_request(edgecache.proxy_port, "/a%2fb")

    assert response.headers["X-Cache"] == "MISS"
    assert origin.count() == 2


async def test_unlisted_host_uses_default_site(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoe/p", host="shop.example")
    response = await raw_request(edgecache.proxy_port, "/shoe/p", host="other.example")

    assert response.headers["X-Cache"] == "HIT"
    assert origin.count() == 1


async def test_allowed_host_selects_own_site(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"site": {"allowed_hosts": ["de.shop.example"]}})
    await raw_request(edgecache.proxy_port, "/shoe/p", host="other.example")
    own = await raw_request(edgecache.proxy_port, "/shoe/p", host="de.shop.example")
    again = await raw_request(edgecache.proxy_port, "/shoe/p", host="DE.shop.example")

    assert own.headers["X-Cache"] == "MISS"
    assert again.headers["X-Cache"] == "HIT"
    assert origin.count() == 2


async def test_allowed_host_contacts_same_origin(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"site": {"allowed_hosts": ["de.shop.example"]}})
    response = await raw_request(edgecache.proxy_port, "/shoe/p", host="de.shop.example")

    assert response.status == 200
    assert origin.count() == 1


async def test_origin_gets_site_host_by_default(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"site": {"host": "shop.example",
                                                           "allowed_hosts": ["de.shop.example"]}})
    await raw_request(edgecache.proxy_port, "/shoe/p", host="de.shop.example")

    assert origin.requests[0].headers["Host"] == "shop.example"


async def test_origin_gets_allowed_client_host(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"site": {"host": "shop.example",
                                                           "allowed_hosts": ["de.shop.example"]},
                                                  "origin": {"host_header": "client"}})
    await raw_request(edgecache.proxy_port, "/a/p", host="de.shop.example")
    await raw_request(edgecache.proxy_port, "/b/p", host="evil.example")

    assert origin.requests[0].headers["Host"] == "de.shop.example"
    assert origin.requests[1].headers["Host"] == "shop.example"


async def test_absolute_form_target_keeps_origin(origin, edgecache) -> None:
    response = await raw_request(edgecache.proxy_port, "http://evil.example/shoe/p", host="evil.example")

    assert response.status == 200
    assert [r.path_qs for r in origin.requests] == ["/shoe/p"]
    assert origin.requests[0].headers["Host"] == edgecache.settings.site_host


async def test_absolute_form_target_shares_entry(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoe/p")
    response = await raw_request(edgecache.proxy_port, "http://evil.example/shoe/p")

    assert response.headers["X-Cache"] == "HIT"
    assert origin.count() == 1


async def test_key_cookie_separates_entries(origin, make_edgecache, client: aiohttp.ClientSession) -> None:
    edgecache = await make_edgecache(origin.url, {"key": {"cookies": ["channel"]}})
    url = proxy_url(edgecache, "/shoe/p")
    async with client.get(url, headers={"Cookie": "channel=b2b"}) as b2b:
        b2b_body = await b2b.read()
    async with client.get(url, headers={"Cookie": "channel=retail"}) as retail:
        retail_body = await retail.read()
    async with client.get(url, headers={"Cookie": "channel=b2b; session=42"}) as again:
        again_body = await again.read()

    assert retail.headers["X-Cache"] == "MISS"
    assert retail_body != b2b_body
    assert again.headers["X-Cache"] == "HIT"
    assert again_body == b2b_body
    assert origin.count() == 2


async def test_other_cookies_not_in_key(origin, edgecache, client: aiohttp.ClientSession) -> None:
    url = proxy_url(edgecache, "/shoe/p")
    async with client.get(url, headers={"Cookie": "session=1"}) as first:
        await first.read()
    async with client.get(url, headers={"Cookie": "session=2"}) as second:
        await second.read()

    assert second.headers["X-Cache"] == "HIT"
    assert origin.count() == 1


async def test_cookies_forwarded_to_origin(origin, edgecache, client: aiohttp.ClientSession) -> None:
    async with client.get(proxy_url(edgecache, "/shoe/p"), headers={"Cookie": "session=1; channel=b2b"}) as r:
        await r.read()

    assert origin.requests[0].headers["Cookie"] == "session=1; channel=b2b"


@pytest.mark.parametrize(("first", "second", "forwarded"), [
    ("/a%2Fb", "/a%2fb", "/a%2Fb"),
    ("/%E2%82%AC/p", "/%e2%82%ac/p", "/%E2%82%AC/p"),
    ("/~shoe/p", "/%7Eshoe/p", "/~shoe/p"),
    ("/shoe-1/p", "/shoe%2D1/p", "/shoe-1/p"),
])
async def test_escape_forms_share_one_entry(origin, edgecache, first: str, second: str, forwarded: str) -> None:
    await raw_request(edgecache.proxy_port, first)
    response = await raw_request(edgecache.proxy_port, second)

    assert response.headers["X-Cache"] == "HIT"
    assert [r.path_qs for r in origin.requests] == [forwarded]
    assert len(edgecache.store) == 1
