"""The memory bound: LRU eviction by bytes, and large responses streamed without storing."""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from edgecache.entry import ENTRY_OVERHEAD_BYTES, KEY_COPIES, Entry
from edgecache.key import CacheKey
from helpers import raw_request

BODY = b"x" * 1000


async def test_lru_evicts_least_recent(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"cache": {"max_bytes": 7000, "max_object_bytes": 2000}})
    for path in ("/a/p", "/b/p", "/c/p"):
        origin.script(path, headers={"Cache-Control": "max-age=60"}, body=BODY)
    await raw_request(edgecache.proxy_port, "/a/p")
    await raw_request(edgecache.proxy_port, "/b/p")
    await raw_request(edgecache.proxy_port, "/a/p")
    await raw_request(edgecache.proxy_port, "/c/p")

    assert edgecache.store.evictions == 1
    assert edgecache.store.bytes <= 7000
    assert (await raw_request(edgecache.proxy_port, "/a/p")).headers["X-Cache"] == "HIT"
    assert (await raw_request(edgecache.proxy_port, "/c/p")).headers["X-Cache"] == "HIT"
    assert (await raw_request(edgecache.proxy_port, "/b/p")).headers["X-Cache"] == "MISS"


async def test_store_bytes_count_headers(origin, edgecache) -> None:
    origin.script("/a/p", headers={"Cache-Control": "max-age=60", "X-Padding": "p" * 500}, body=BODY)
    await raw_request(edgecache.proxy_port, "/a/p")

    assert edgecache.store.bytes > len(BODY) + 500


async def test_large_response_streamed_not_stored(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"cache": {"max_object_bytes": 1000}})
    large = bytes(range(256)) * 40
    origin.script("/big/p", headers={"Cache-Control": "max-age=60"}, body=large)
    first = await raw_request(edgecache.proxy_port, "/big/p")
    second = await raw_request(edgecache.proxy_port, "/big/p")

    assert first.body == large
    assert first.headers["Cache-Status"] == "edgecache; fwd=uri-miss; detail=too-large"
    assert second.headers["X-Cache"] == "MISS"
    assert len(edgecache.store) == 0


async def test_large_chunked_response_not_stored(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"cache": {"max_object_bytes": 1000}})
    chunks = [bytes([n]) * 700 for n in range(5)]

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response

    origin.handler("/big/p", chunked)
    response = await raw_request(edgecache.proxy_port, "/big/p")

    assert response.status == 200
    assert response.body == b"".join(chunks)
    assert response.headers["Cache-Status"] == "edgecache; fwd=uri-miss; detail=too-large"
    assert len(edgecache.store) == 0


async def test_object_at_limit_stored(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"cache": {"max_object_bytes": 1000}})
    origin.script("/a/p", headers={"Cache-Control": "max-age=60"}, body=BODY)
    await raw_request(edgecache.proxy_port, "/a/p")
    response = await raw_request(edgecache.proxy_port, "/a/p")

    assert response.headers["X-Cache"] == "HIT"
    assert response.body == BODY


async def test_small_chunked_response_stored(origin, edgecache) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"first ")
        await response.write(b"second")
        await response.write_eof()
        return response

    origin.handler("/a/p", chunked)
    miss = await raw_request(edgecache.proxy_port, "/a/p")
    hit = await raw_request(edgecache.proxy_port, "/a/p")

    assert miss.body == b"first second"
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["Content-Length"] == "12"
    assert hit.body == b"first second"


def entry_for(path: str) -> Entry:
    headers = CIMultiDictProxy(CIMultiDict({"Cache-Control": "max-age=60"}))
    return Entry(key=CacheKey("shop.example", path), variant="", vary=(), status=200, headers=headers, body=BODY,
                 request_time=0.0, response_time=0.0, initial_age=0.0, lifetime=60.0, fresh_until=60.0,
                 stale_while_revalidate_until=60.0, stale_if_error_until=360.0)


def test_entry_size_counts_key_text() -> None:
    short, long = entry_for("/a/p"), entry_for("/a/p" + "x" * 200)
    assert long.size - short.size == KEY_COPIES * 200
    assert short.size == len(BODY) + len("Cache-Control") + len("max-age=60") + 4 \
        + KEY_COPIES * len("shop.example/a/p") + ENTRY_OVERHEAD_BYTES
