"""Request coalescing: concurrent misses on one key make one origin request."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from conftest import proxy_url
from helpers import wait_until

FOLLOWERS = 9


async def get_all(client: aiohttp.ClientSession, url: str, count: int) -> list[tuple[int, str, bytes]]:
    async def get() -> tuple[int, str, bytes]:
        async with client.get(url) as response:
            return response.status, response.headers["X-Cache"], await response.read()

    return list(await asyncio.gather(*(get() for _ in range(count))))


async def start_behind_gate(origin, edgecache, client: aiohttp.ClientSession,
                            path: str = "/shoe/p") -> asyncio.Task[list[tuple[int, str, bytes]]]:
    """Start 1 + FOLLOWERS requests; return once the leader is at the origin and the rest wait."""
    origin.gate = asyncio.Event()
    task = asyncio.create_task(get_all(client, proxy_url(edgecache, path), 1 + FOLLOWERS))
    await wait_until(lambda: origin.count() == 1 and edgecache.stats.coalesced == FOLLOWERS)
    return task


async def test_concurrent_misses_one_origin_request(origin, edgecache, client) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"}, body=b"shoe page")
    task = await start_behind_gate(origin, edgecache, client)
    origin.gate.set()
    results = await task

    assert results == [(200, "MISS", b"shoe page")] * (1 + FOLLOWERS)
    assert origin.count() == 1
    assert edgecache.stats.coalesced == FOLLOWERS


async def test_unshareable_sends_followers_to_origin(origin, edgecache, client) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "private"}, body=b"mine")
    task = await start_behind_gate(origin, edgecache, client)
    origin.gate.set()
    results = await task

    assert results == [(200, "MISS", b"mine")] * (1 + FOLLOWERS)
    assert origin.count() == 1 + FOLLOWERS
    assert len(edgecache.store) == 0


async def test_leader_failure_releases_followers(origin, edgecache, client) -> None:
    async def reset(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    origin.handler("/shoe/p", reset)
    task = await start_behind_gate(origin, edgecache, client)
    origin.gate.set()
    results = await task

    assert [status for status, _, _ in results] == [502] * (1 + FOLLOWERS)
    # aiohttp's client retries an idempotent request once when the connection drops;
    # no follower went to the origin on its own.
    assert origin.count() == 2


async def test_leader_timeout_releases_followers(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url, {"origin": {"read_timeout": 0.2}})
    origin.gate = asyncio.Event()
    try:
        results = await get_all(client, proxy_url(edgecache, "/shoe/p"), 1 + FOLLOWERS)
    finally:
        origin.gate.set()

    assert [status for status, _, _ in results] == [504] * (1 + FOLLOWERS)
    assert origin.count() == 1
    assert edgecache.stats.coalesced == FOLLOWERS


async def test_follower_gives_up_after_timeout(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url, {"cache": {"coalesce_timeout": 0.1}})
    origin.gate = asyncio.Event()
    task = asyncio.create_task(get_all(client, proxy_url(edgecache, "/shoe/p"), 2))
    await wait_until(lambda: origin.count() == 2)
    origin.gate.set()
    results = await task

    assert [status for status, _, _ in results] == [200, 200]
    assert edgecache.stats.coalesced == 1


async def test_distinct_keys_not_coalesced(origin, edgecache, client) -> None:
    origin.gate = asyncio.Event()
    first = asyncio.create_task(get_all(client, proxy_url(edgecache, "/a/p"), 1))
    second = asyncio.create_task(get_all(client, proxy_url(edgecache, "/b/p"), 1))
    await wait_until(lambda: origin.count() == 2)
    origin.gate.set()
    await asyncio.gather(first, second)

    assert edgecache.stats.coalesced == 0
