"""Caching semantics with the Redis tier: stale windows, revalidation and invalidation across nodes."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from edgecache.server import Edgecache

from conftest import EdgecacheFactory
from origin_double import RecordingOrigin
from redis_process import RedisProcess, redis_server, shared_settings  # noqa: F401
from semantics_support import FakeClock, background_done, get

PAGE = {"Cache-Control": "max-age=10, stale-while-revalidate=30", "ETag": '"v1"'}
# Maximum seconds an invalidation may take to reach another node's memory store on loopback.
PROPAGATION_LIMIT = 1.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def nodes(origin: RecordingOrigin, redis_server: RedisProcess, make_edgecache: EdgecacheFactory,
                clock: FakeClock) -> tuple[Edgecache, Edgecache]:
    """Two nodes sharing one Redis and one clock, with no stale windows from the settings."""
    raw = shared_settings(redis_server.url, stale_while_revalidate=0, stale_if_error=0)
    first = await make_edgecache(origin.url, raw, clock=clock)  # type: ignore[attr-defined]
    second = await make_edgecache(origin.url, raw, clock=clock)  # type: ignore[attr-defined]
    return first, second


async def wait_until_empty(node: Edgecache) -> None:
    started = time.monotonic()
    while len(node.store):
        assert time.monotonic() - started < PROPAGATION_LIMIT, f"{node!r} still holds entries"
        await asyncio.sleep(0.002)


async def test_shared_stale_served_while_refreshing(origin, nodes, client: aiohttp.ClientSession,
                                                    clock: FakeClock) -> None:
    node_a, node_b = nodes
    origin.script("/shoe/p", headers=PAGE, body=b"old")
    await get(client, node_a, "/shoe/p")
    clock.advance(15)
    origin.script("/shoe/p", headers={**PAGE, "ETag": '"v2"'}, body=b"new")
    origin.gate = asyncio.Event()

    stale = await get(client, node_b, "/shoe/p")
    origin.gate.set()
    await background_done(node_b)
    fresh = await get(client, node_b, "/shoe/p")

    assert (stale.body, stale.x_cache, stale.headers["Age"]) == (b"old", "STALE", "15")
    assert stale.cache_status == "edgecache; fwd=stale; ttl=-5"
    assert (fresh.body, fresh.x_cache) == (b"new", "HIT")
    assert origin.validators("/shoe/p") == [(None, None), ('"v1"', None)]


async def test_shared_stale_followers_one_refresh(origin, nodes, client: aiohttp.ClientSession,
                                                  clock: FakeClock) -> None:
    node_a, node_b = nodes
    origin.script("/shoe/p", headers=PAGE, body=b"old")
    await get(client, node_a, "/shoe/p")
    clock.advance(15)
    origin.gate = asyncio.Event()

    answers = await asyncio.gather(*(get(client, node_b, "/shoe/p") for _ in range(5)))
    origin.gate.set()
    await background_done(node_b)

    assert [(answer.body, answer.x_cache) for answer in answers] == [(b"old", "STALE")] * 5
    assert origin.count("/shoe/p") == 2


async def test_shared_stale_entry_revalidated(origin, nodes, client: aiohttp.ClientSession,
                                              clock: FakeClock) -> None:
    node_a, node_b = nodes
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10", "ETag": '"v1"'}, body=b"shoe")
    await get(client, node_a, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", status=304, headers={"Cache-Control": "max-age=30", "ETag": '"v1"'})

    revalidated = await get(client, node_b, "/shoe/p")
    from_shared = await get(client, node_a, "/shoe/p")

    assert (revalidated.status, revalidated.body, revalidated.x_cache) == (200, b"shoe", "HIT")
    assert revalidated.cache_status == "edgecache; fwd=stale; fwd-status=304; ttl=30; stored"
    assert (from_shared.body, from_shared.x_cache, from_shared.cache_status) == (
        b"shoe", "HIT", "edgecache; hit; ttl=30")
    assert origin.validators("/shoe/p") == [(None, None), ('"v1"', None)]


async def test_unsafe_method_invalidates_every_node(origin, nodes, client: aiohttp.ClientSession) -> None:
    node_a, node_b = nodes
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"}, body=b"shoe")
    origin.script("/cart", status=303, headers={"Location": "/shoe/p"})
    await get(client, node_a, "/shoe/p")
    await get(client, node_b, "/shoe/p")
    assert (len(node_a.store), len(node_b.store)) == (1, 1)

    posted = await get(client, node_a, "/cart", method="POST", data=b"sku=1")
    await wait_until_empty(node_b)
    again = await get(client, node_b, "/shoe/p")

    assert (posted.status, posted.cache_status) == (303, "edgecache; fwd=bypass; detail=method")
    assert len(node_a.store) == 0
    assert (again.x_cache, again.cache_status) == ("MISS", "edgecache; fwd=uri-miss; stored")
    assert origin.count("/shoe/p") == 2


async def test_only_if_cached_hit_from_shared(origin, nodes, client: aiohttp.ClientSession) -> None:
    node_a, node_b = nodes
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"}, body=b"shoe")
    await get(client, node_a, "/shoe/p")

    cached = await get(client, node_b, "/shoe/p", headers={"Cache-Control": "only-if-cached"})
    missing = await get(client, node_b, "/bag/p", headers={"Cache-Control": "only-if-cached"})

    assert (cached.status, cached.body, cached.cache_status) == (200, b"shoe", "edgecache; hit; ttl=60")
    assert (missing.status, missing.cache_status) == (504, "edgecache; detail=only-if-cached")
    assert origin.count() == 1


async def test_unstorable_replacement_leaves_shared_tier(origin, redis_server, make_edgecache,
                                                         client: aiohttp.ClientSession, clock: FakeClock) -> None:
    raw = shared_settings(redis_server.url, stale_while_revalidate=0, client_no_cache="revalidate")
    node_a = await make_edgecache(origin.url, raw, clock=clock)
    node_b = await make_edgecache(origin.url, raw, clock=clock)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, stale-while-revalidate=30"}, body=b"old")
    await get(client, node_a, "/shoe/p")
    clock.advance(15)
    origin.script("/shoe/p", headers={"Cache-Control": "no-store"}, body=b"private")

    replaced = await get(client, node_a, "/shoe/p", headers={"Cache-Control": "no-cache"})
    on_b = await get(client, node_b, "/shoe/p")

    assert (replaced.body, replaced.cache_status) == (b"private", "edgecache; fwd=request; detail=no-store")
    assert (on_b.body, on_b.x_cache) == (b"private", "MISS")
    assert origin.count("/shoe/p") == 3


async def test_head_hit_from_shared(origin, nodes, client: aiohttp.ClientSession) -> None:
    node_a, node_b = nodes
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"}, body=b"shoe")
    await get(client, node_a, "/shoe/p")

    head = await get(client, node_b, "/shoe/p", method="HEAD")

    assert (head.status, head.body, head.cache_status) == (200, b"", "edgecache; hit; ttl=60")
    assert head.headers["Content-Length"] == "4"
    assert origin.count() == 1
