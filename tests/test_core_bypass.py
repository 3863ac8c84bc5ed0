"""Requests that skip the cache: query strings, unsafe methods, and HEAD."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from conftest import proxy_url
from helpers import raw_request


async def test_query_bypasses_cache(origin, edgecache) -> None:
    response = await raw_request(edgecache.proxy_port, "/shoe/p?color=red")

    assert response.status == 200
    assert response.headers["X-Cache"] == "BYPASS"
    assert response.headers["Cache-Status"] == "edgecache; fwd=bypass; detail=query"
    assert response.body == b"page /shoe/p?color=red #1"
    assert len(edgecache.store) == 0


async def test_query_reaches_origin_intact(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoe/p?b=2&a=%20x&a=1")

    assert [r.path_qs for r in origin.requests] == ["/shoe/p?b=2&a=%20x&a=1"]


async def test_query_leaves_canonical_entry(origin, edgecache) -> None:
    first = await raw_request(edgecache.proxy_port, "/shoe/p")
    entry = edgecache.store.peek(next(iter(edgecache.store._entries)))
    bypass = await raw_request(edgecache.proxy_port, "/shoe/p?fresh=1")
    after = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert bypass.body == b"page /shoe/p?fresh=1 #2"
    assert after.headers["X-Cache"] == "HIT"
    assert after.body == first.body
    assert edgecache.store.peek(entry.store_key) is entry
    assert origin.count() == 2


async def test_bare_question_mark_bypasses(origin, edgecache) -> None:
    targets: list[str] = []

    async def record(request: web.Request) -> web.Response:
        targets.append(request.raw_path)
        return web.Response(text="fresh", headers={"Cache-Control": "max-age=60"})

    origin.handler("/shoe/p", record)
    await raw_request(edgecache.proxy_port, "/shoe/p")
    response = await raw_request(edgecache.proxy_port, "/shoe/p?")

    assert response.headers["X-Cache"] == "BYPASS"
    assert response.headers["Cache-Status"] == "edgecache; fwd=bypass; detail=query"
    assert origin.count() == 2
    assert len(edgecache.store) == 1
    # yarl drops an empty query, so the origin receives the path without the "?".
    assert targets == ["/shoe/p", "/shoe/p"]


async def test_query_response_never_stored(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoe/p?x=1")
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["X-Cache"] == "MISS"
    assert origin.count() == 2


async def test_post_passes_through(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/cart", status=201, body=b"added")
    async with client.post(proxy_url(edgecache, "/cart"), data=b"sku=SKU-1") as response:
        body = await response.read()

    assert response.status == 201
    assert body == b"added"
    assert response.headers["X-Cache"] == "BYPASS"
    assert response.headers["Cache-Status"] == "edgecache; fwd=bypass; detail=method"
    assert origin.requests[0].method == "POST"
    assert origin.requests[0].body == b"sku=SKU-1"
    assert len(edgecache.store) == 0


async def test_post_invalidates_path(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoe/p")
    await raw_request(edgecache.proxy_port, "//shoe/p", method="POST", body=b"x")
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["X-Cache"] == "MISS"
    assert [r.method for r in origin.requests] == ["GET", "POST", "GET"]


async def test_unsafe_methods_invalidate(origin, edgecache) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        await raw_request(edgecache.proxy_port, "/shoe/p")
        await raw_request(edgecache.proxy_port, "/shoe/p", method=method, body=b"x")

        assert len(edgecache.store) == 0, method


async def test_failed_post_keeps_entry(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoe/p")
    origin.script("/shoe/p", status=409, body=b"conflict")
    post = await raw_request(edgecache.proxy_port, "/shoe/p", method="POST", body=b"x")
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert post.status == 409
    assert response.headers["X-Cache"] == "HIT"


async def test_post_invalidates_location(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/cart/view")
    origin.script("/cart", status=303, headers={"Location": "/cart/view"}, body=b"")
    await raw_request(edgecache.proxy_port, "/cart", method="POST", body=b"x")

    assert len(edgecache.store) == 0


async def test_head_hit_from_get_entry(origin, edgecache) -> None:
    get = await raw_request(edgecache.proxy_port, "/shoe/p")
    head = await raw_request(edgecache.proxy_port, "/shoe/p", method="HEAD")

    assert head.status == 200
    assert head.headers["X-Cache"] == "HIT"
    assert head.headers["Content-Length"] == str(len(get.body))
    assert head.body == b""
    assert origin.count() == 1


async def test_head_miss_forwards_head(origin, edgecache) -> None:
    head = await raw_request(edgecache.proxy_port, "/shoe/p", method="HEAD")

    assert head.status == 200
    assert head.body == b""
    assert head.headers["X-Cache"] == "MISS"
    assert [r.method for r in origin.requests] == ["HEAD"]


async def test_head_miss_never_stores(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoe/p", method="HEAD")
    get = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert len(edgecache.store) == 1
    assert get.headers["X-Cache"] == "MISS"
    assert [r.method for r in origin.requests] == ["HEAD", "GET"]
