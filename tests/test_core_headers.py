"""Headers edgecache adds, removes and forwards, on requests and on responses."""

from __future__ import annotations

import pytest
from aiohttp import web

from helpers import FakeClock, raw_request

HOP_BY_HOP_REQUEST = {
    "Connection": "close, X-Hop-Named",
    "X-Hop-Named": "1",
    "Keep-Alive": "timeout=5",
    "TE": "trailers",
    "Trailer": "X-Checksum",
    "Proxy-Authorization": "Basic c2VjcmV0",
    "Proxy-Connection": "keep-alive",
}


async def test_hop_by_hop_request_headers_dropped(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoe/p", headers={**HOP_BY_HOP_REQUEST, "X-Kept": "yes"})

    received = origin.requests[0].headers
    for name in ("X-Hop-Named", "Keep-Alive", "TE", "Trailer", "Proxy-Authorization", "Proxy-Connection"):
        assert name not in received, name
    assert received["X-Kept"] == "yes"


async def test_forwarded_headers_set(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"site": {"host": "shop.example"}})
    await raw_request(edgecache.proxy_port, "/shoe/p", host="client.example", headers={
        "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})

    received = origin.requests[0].headers
    assert received.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert received.getall("X-Forwarded-Proto") == ["http"]
    assert received.getall("X-Forwarded-Host") == ["shop.example"]
    assert received["Host"] == "shop.example"


async def test_bypass_forwarded_headers_set(origin, edgecache) -> None:
    await raw_request(edgecache.proxy_port, "/shoe/p?x=1", headers={"X-Forwarded-For": "203.0.113.9"})

    assert origin.requests[0].headers.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert origin.requests[0].headers["X-Forwarded-Proto"] == "http"


async def hop_by_hop_origin(request: web.Request) -> web.Response:
    return web.Response(text="page", headers={
        "Cache-Control": "max-age=60", "Connection": "X-Origin-Hop", "X-Origin-Hop": "1",
        "Keep-Alive": "timeout=5", "Proxy-Authenticate": "Basic", "X-Kept": "yes"})


@pytest.mark.parametrize("target", ["/shoe/p", "/shoe/p?x=1"])
async def test_hop_by_hop_response_headers_dropped(origin, edgecache, target: str) -> None:
    origin.handler("/shoe/p", hop_by_hop_origin)
    first = await raw_request(edgecache.proxy_port, target)
    second = await raw_request(edgecache.proxy_port, target)

    for response in (first, second):
        for name in ("X-Origin-Hop", "Keep-Alive", "Proxy-Authenticate"):
            assert name not in response.headers, name
        assert response.headers["X-Kept"] == "yes"


async def test_miss_headers(origin, edgecache) -> None:
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["Age"] == "0"
    assert response.headers["X-Cache"] == "MISS"
    assert response.headers["Cache-Status"] == "edgecache; fwd=uri-miss; stored"
    assert response.headers["Via"] == "1.1 edgecache"


async def test_hit_age_and_ttl(origin, make_edgecache) -> None:
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, clock=clock)
    await raw_request(edgecache.proxy_port, "/shoe/p")
    clock.advance(19)
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["Age"] == "19"
    assert response.headers["X-Cache"] == "HIT"
    assert response.headers["Cache-Status"] == "edgecache; hit; ttl=41"
    assert response.headers["Via"] == "1.1 edgecache"


async def test_origin_age_counts(origin, make_edgecache) -> None:
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, clock=clock)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Age": "10"})
    miss = await raw_request(edgecache.proxy_port, "/shoe/p")
    clock.advance(5)
    hit = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert miss.headers["Age"] == "10"
    assert hit.headers["Age"] == "15"
    assert hit.headers["Cache-Status"] == "edgecache; hit; ttl=45"


async def test_bypass_headers(origin, edgecache) -> None:
    response = await raw_request(edgecache.proxy_port, "/shoe/p?x=1")

    assert response.headers["Age"] == "0"
    assert response.headers["X-Cache"] == "BYPASS"
    assert response.headers["Via"] == "1.1 edgecache"


async def test_via_appended(origin, edgecache) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Via": "1.1 cdn"})
    miss = await raw_request(edgecache.proxy_port, "/shoe/p")
    hit = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert miss.headers.getall("Via") == ["1.1 cdn, 1.1 edgecache"]
    assert hit.headers.getall("Via") == ["1.1 cdn, 1.1 edgecache"]


async def test_not_stored_miss_headers(origin, edgecache) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "no-store"})
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["Age"] == "0"
    assert response.headers["X-Cache"] == "MISS"
    assert response.headers["Cache-Status"] == "edgecache; fwd=uri-miss; detail=no-store"
    assert response.headers["Via"] == "1.1 edgecache"
