"""Serving stale entries: stale-while-revalidate and stale-if-error (RFC 5861, RFC 9111 section 4.2.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edgecache.server import Edgecache

from conftest import EdgecacheFactory
from origin_double import RecordingOrigin
from semantics_support import FakeClock, background_done, get, until

ETAG = '"v1"'


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def start(make_edgecache: EdgecacheFactory, origin: RecordingOrigin, clock: FakeClock,
                **cache: Any) -> Edgecache:
    """Start edgecache with no stale window from the settings unless `cache` gives one."""
    settings = {"cache": {"stale_while_revalidate": 0, "stale_if_error": 0, **cache}}
    return await make_edgecache(origin.url, settings, clock=clock)  # type: ignore[attr-defined]


# stale-while-revalidate

async def test_swr_serves_stale_at_once(origin, make_edgecache, client: aiohttp.ClientSession,
                                        clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-while-revalidate=30"}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(15)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-while-revalidate=30"}, body=b"new")
    origin.gate = asyncio.Event()

    stale = await get(client, edgecache, "/shoe/p")
    origin.gate.set()
    await background_done(edgecache)
    fresh = await get(client, edgecache, "/shoe/p")

    assert (stale.body, stale.x_cache, stale.headers["Age"]) == (b"old", "STALE", "15")
    assert stale.cache_status == "edgecache; fwd=stale; ttl=-5"
    assert (fresh.body, fresh.x_cache) == (b"new", "HIT")
    assert origin.count("/shoe/p") == 2


async def test_swr_one_background_refresh(origin, make_edgecache, client: aiohttp.ClientSession,
                                          clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-while-revalidate=30"}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(15)
    origin.gate = asyncio.Event()

    answers = await asyncio.gather(*(get(client, edgecache, "/shoe/p") for _ in range(5)))
    origin.gate.set()
    await background_done(edgecache)

    assert [answer.x_cache for answer in answers] == ["STALE"] * 5
    assert origin.count("/shoe/p") == 2


async def test_swr_refresh_coalesced_with_foreground_fetch(origin, make_edgecache, client: aiohttp.ClientSession,
                                                           clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-while-revalidate=30"}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock, client_no_cache="revalidate")
    await get(client, edgecache, "/shoe/p")
    clock.advance(15)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-while-revalidate=30"}, body=b"new")
    origin.gate = asyncio.Event()

    stale = await get(client, edgecache, "/shoe/p")
    forced = asyncio.create_task(get(client, edgecache, "/shoe/p", headers={"Cache-Control": "no-cache"}))
    await until(lambda: edgecache.stats.coalesced == 1)
    origin.gate.set()
    follower = await forced

    assert stale.x_cache == "STALE"
    assert (follower.body, follower.cache_status) == (b"new", "edgecache; fwd=request; collapsed")
    assert origin.count("/shoe/p") == 2


async def test_past_swr_window_waits(origin, make_edgecache, client: aiohttp.ClientSession,
                                     clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-while-revalidate=30"}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(41)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10"}, body=b"new")

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.body, answer.x_cache, answer.cache_status) == (b"new", "MISS", "edgecache; fwd=stale; stored")


async def test_swr_from_rule(origin, make_edgecache, client: aiohttp.ClientSession, clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={}, body=b"old")
    edgecache = await make_edgecache(origin.url, {"rules": [
        {"name": "product", "match": "/*/p", "ttl": 10, "stale_while_revalidate": 5}]}, clock=clock)
    await get(client, edgecache, "/shoe/p")

    clock.advance(14)
    within = await get(client, edgecache, "/shoe/p")
    await background_done(edgecache)
    clock.advance(16)
    past = await get(client, edgecache, "/shoe/p")

    assert (within.x_cache, past.x_cache) == ("STALE", "MISS")


async def test_no_swr_for_no_cache(origin, make_edgecache, client: aiohttp.ClientSession, clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "no-cache, stale-while-revalidate=30", "ETag": ETAG})
    edgecache = await start(make_edgecache, origin, clock)
    await get(client, edgecache, "/shoe/p")
    origin.script("/shoe/p", status=304, headers={"ETag": ETAG, "Cache-Control": "no-cache"})

    answer = await get(client, edgecache, "/shoe/p")

    assert answer.cache_status == "edgecache; fwd=stale; fwd-status=304; ttl=0; stored"


# stale-if-error

@pytest.mark.parametrize("status", [pytest.param(status, id=f"5861-4-{status}") for status in (500, 502, 503, 504)])
async def test_stale_if_error_on_status(origin, make_edgecache, client: aiohttp.ClientSession, clock: FakeClock,
                                        status: int) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-if-error=60"}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(30)
    origin.script("/shoe/p", status=status, body=b"broken")

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.body, answer.x_cache) == (200, b"old", "STALE")
    assert answer.cache_status == f"edgecache; fwd=stale; fwd-status={status}; ttl=-20; detail=status"
    assert len(edgecache.store) == 1


async def test_stale_if_error_past_window(origin, make_edgecache, client: aiohttp.ClientSession,
                                          clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-if-error=60"}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(71)
    origin.script("/shoe/p", status=503, body=b"broken")

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.body, answer.cache_status) == (503, b"broken",
                                                                 "edgecache; fwd=stale; detail=status")


async def test_stale_if_error_from_setting(origin, make_edgecache, client: aiohttp.ClientSession,
                                           clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10"}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock, stale_if_error=100)
    await get(client, edgecache, "/shoe/p")
    clock.advance(60)
    origin.script("/shoe/p", status=500)

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.body) == (200, b"old")


async def test_stale_beats_error_stored_by_rule(origin, make_edgecache, client: aiohttp.ClientSession,
                                                clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-if-error=60"}, body=b"old")
    edgecache = await make_edgecache(origin.url, {"rules": [
        {"name": "product", "match": "/*/p", "ttl": 5, "statuses": [503]}]}, clock=clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", status=503, body=b"maintenance")

    first = await get(client, edgecache, "/shoe/p")
    second = await get(client, edgecache, "/shoe/p")

    assert (first.body, second.body) == (b"old", b"old")


async def test_stale_if_error_when_origin_unreachable(origin, make_edgecache, client: aiohttp.ClientSession,
                                                      clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-if-error=60"}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(30)
    await origin.server.close()

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.body, answer.x_cache) == (200, b"old", "STALE")
    assert answer.cache_status == "edgecache; fwd=stale; ttl=-20; detail=origin-unreachable"


async def test_stale_if_error_on_timeout(origin, make_edgecache, client: aiohttp.ClientSession,
                                         clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-if-error=60"}, body=b"old")
    edgecache = await make_edgecache(origin.url, {"origin": {"read_timeout": 0.2}}, clock=clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(30)
    origin.script("/shoe/p", delay=1.0)

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.body) == (200, b"old")
    assert answer.cache_status == "edgecache; fwd=stale; ttl=-20; detail=origin-timeout"


@pytest.mark.parametrize("directive", [
    pytest.param("must-revalidate", id="9111-5.2.2.2-must-revalidate"),
    pytest.param("proxy-revalidate", id="9111-5.2.2.8-proxy-revalidate"),
    pytest.param("no-cache", id="9111-5.2.2.4-no-cache"),
])
async def test_no_stale_on_5xx_when_forbidden(origin, make_edgecache, client: aiohttp.ClientSession,
                                              clock: FakeClock, directive: str) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": f"max-age=10, {directive}, stale-if-error=60",
                                      "ETag": ETAG}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", status=503, body=b"broken")

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.body) == (503, b"broken")


@pytest.mark.parametrize("cache_control", [
    pytest.param("max-age=10, must-revalidate", id="9111-5.2.2.2-must-revalidate-504"),
    pytest.param("max-age=10, proxy-revalidate", id="9111-5.2.2.8-proxy-revalidate-504"),
    pytest.param("s-maxage=10", id="9111-5.2.2.10-s-maxage-504"),
])
async def test_504_when_unreachable_and_stale_forbidden(origin, make_edgecache, client: aiohttp.ClientSession,
                                                        clock: FakeClock, cache_control: str) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": cache_control}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock, stale_if_error=300)
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    await origin.server.close()

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.cache_status) == (504, "edgecache; fwd=uri-miss; detail=origin-unreachable")


async def test_followers_share_stale_on_5xx(origin, make_edgecache, client: aiohttp.ClientSession,
                                            clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-if-error=60"}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", status=503, body=b"broken")
    origin.gate = asyncio.Event()

    tasks = [asyncio.create_task(get(client, edgecache, "/shoe/p")) for _ in range(4)]
    await until(lambda: edgecache.stats.coalesced == 3)
    origin.gate.set()
    answers = await asyncio.gather(*tasks)

    assert [answer.body for answer in answers] == [b"old"] * 4
    assert origin.count("/shoe/p") == 2


async def test_background_refresh_error_keeps_entry(origin, make_edgecache, client: aiohttp.ClientSession,
                                                    clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-while-revalidate=30"}, body=b"old")
    edgecache = await start(make_edgecache, origin, clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(15)

    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=500)

    origin.handler("/shoe/p", failing)

    first = await get(client, edgecache, "/shoe/p")
    await background_done(edgecache)
    second = await get(client, edgecache, "/shoe/p")

    assert (first.x_cache, second.x_cache, second.body) == ("STALE", "STALE", b"old")
