"""Revalidation with the origin (RFC 9111 sections 3.2, 4.3.1, 4.3.3 and 4.3.4), end to end."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from edgecache.outcomes import Outcome
from edgecache.server import Edgecache

from semantics_support import FakeClock, get

MODIFIED = "Tue, 14 Nov 2023 22:00:00 GMT"
PAGE = {"Cache-Control": "max-age=10", "ETag": '"v1"', "Last-Modified": MODIFIED, "Content-Type": "text/html"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def edgecache(origin, make_edgecache, clock: FakeClock) -> Edgecache:
    return await make_edgecache(origin.url, {"cache": {"stale_while_revalidate": 0}}, clock=clock)


async def test_stale_entry_revalidated(origin, edgecache, client: aiohttp.ClientSession, clock: FakeClock) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"shoe")
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", status=304, headers={"Cache-Control": "max-age=30", "ETag": '"v1"',
                                                  "X-Fresh": "yes", "Content-Type": "text/plain"})

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.body, answer.x_cache) == (200, b"shoe", "HIT")
    assert answer.cache_status == "edgecache; fwd=stale; fwd-status=304; ttl=30; stored"
    assert (answer.headers["Cache-Control"], answer.headers["X-Fresh"], answer.headers["Content-Type"]) == (
        "max-age=30", "yes", "text/html")
    assert origin.validators("/shoe/p") == [(None, None), ('"v1"', MODIFIED)]
    assert edgecache.stats.outcome_count(Outcome.REVALIDATED) == 1


async def test_freshened_entry_is_fresh(origin, edgecache, client: aiohttp.ClientSession, clock: FakeClock) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"shoe")
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", status=304, headers={"Cache-Control": "max-age=30", "ETag": '"v1"'})
    await get(client, edgecache, "/shoe/p")
    clock.advance(29)

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.x_cache, answer.headers["Age"], answer.body) == ("HIT", "29", b"shoe")
    assert origin.count("/shoe/p") == 2


async def test_full_response_replaces_entry(origin, edgecache, client: aiohttp.ClientSession,
                                            clock: FakeClock) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"old")
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", headers={**PAGE, "ETag": '"v2"'}, body=b"new")

    replaced = await get(client, edgecache, "/shoe/p")
    hit = await get(client, edgecache, "/shoe/p")

    assert (replaced.body, replaced.cache_status) == (b"new", "edgecache; fwd=stale; stored")
    assert (hit.body, hit.x_cache, hit.headers["ETag"]) == (b"new", "HIT", '"v2"')


async def test_client_conditions_not_forwarded(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"shoe")

    await get(client, edgecache, "/shoe/p", headers={
        "If-None-Match": '"v0"', "If-Modified-Since": MODIFIED, "Range": "bytes=0-1", "If-Range": '"v0"'})

    received = origin.requests[0].headers
    assert [name for name in ("If-None-Match", "If-Modified-Since", "Range", "If-Range") if name in received] == []


async def test_304_for_other_representation_refetches(origin, edgecache, client: aiohttp.ClientSession,
                                                      clock: FakeClock) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"old")
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)

    async def changed(request: web.Request) -> web.Response:
        if "If-None-Match" in request.headers:
            return web.Response(status=304, headers={"ETag": '"v2"'})
        return web.Response(body=b"new", headers={**PAGE, "ETag": '"v2"'})

    origin.handler("/shoe/p", changed)

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.body, answer.headers["ETag"]) == (200, b"new", '"v2"')
    assert origin.validators("/shoe/p") == [(None, None), ('"v1"', MODIFIED), (None, None)]


async def test_304_with_set_cookie_not_kept(origin, edgecache, client: aiohttp.ClientSession,
                                            clock: FakeClock) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"shoe")
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", status=304, headers={"ETag": '"v1"', "Set-Cookie": "session=ann"})

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.body, answer.headers["Set-Cookie"]) == (200, b"shoe", "session=ann")
    assert answer.cache_status == "edgecache; fwd=stale; fwd-status=304; ttl=10; detail=set-cookie"
    assert len(edgecache.store) == 0


async def test_no_cache_revalidated_on_every_use(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers={**PAGE, "Cache-Control": "no-cache, max-age=600"}, body=b"shoe")
    first = await get(client, edgecache, "/shoe/p")
    origin.script("/shoe/p", status=304, headers={"ETag": '"v1"', "Cache-Control": "no-cache, max-age=600"})

    second = await get(client, edgecache, "/shoe/p")
    third = await get(client, edgecache, "/shoe/p")

    assert first.cache_status == "edgecache; fwd=uri-miss; stored"
    assert second.body == third.body == b"shoe"
    assert second.cache_status == third.cache_status == "edgecache; fwd=stale; fwd-status=304; ttl=0; stored"
    assert origin.validators("/shoe/p") == [(None, None), ('"v1"', MODIFIED), ('"v1"', MODIFIED)]


async def test_unstorable_full_response_removes_entry(origin, edgecache, client: aiohttp.ClientSession,
                                                      clock: FakeClock) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"old")
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", headers={"Cache-Control": "no-store"}, body=b"new")

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.body, answer.cache_status) == (b"new", "edgecache; fwd=stale; detail=no-store")
    assert len(edgecache.store) == 0


async def test_tag_header_from_304_not_sent(origin, edgecache, client: aiohttp.ClientSession,
                                            clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={**PAGE, "Surrogate-Key": "sku:1"}, body=b"shoe")
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", status=304, headers={"ETag": '"v1"', "Surrogate-Key": "sku:1 sku:2"})

    answer = await get(client, edgecache, "/shoe/p")

    assert "Surrogate-Key" not in answer.headers
    assert edgecache.store.keys_for_tag("sku:2") != []
