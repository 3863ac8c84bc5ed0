"""Request Cache-Control and Pragma from clients (RFC 9111 sections 5.2.1 and 5.4), end to end.

The pure rule is tabled in test_semantics_freshness.py (test_client_requires_revalidation).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from edgecache.server import Edgecache

from conftest import EdgecacheFactory
from origin_double import RecordingOrigin
from semantics_support import FakeClock, get

PAGE = {"Cache-Control": "max-age=60", "ETag": '"v1"'}
REVALIDATE: dict[str, Any] = {"cache": {"client_no_cache": "revalidate"}}
RELOADS = [
    pytest.param({"Cache-Control": "no-cache"}, id="9111-5.2.1.4-no-cache"),
    pytest.param({"Cache-Control": "max-age=0"}, id="9111-5.2.1.1-max-age-zero"),
    pytest.param({"Pragma": "no-cache"}, id="9111-5.4-pragma-no-cache"),
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def edgecache(origin: RecordingOrigin, make_edgecache: EdgecacheFactory, clock: FakeClock) -> Edgecache:
    return await make_edgecache(origin.url, clock=clock)  # type: ignore[attr-defined]


@pytest.mark.parametrize("reload", RELOADS)
async def test_reload_ignored_by_default(origin, edgecache, client: aiohttp.ClientSession,
                                         reload: dict[str, str]) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"shoe")
    await get(client, edgecache, "/shoe/p")

    answer = await get(client, edgecache, "/shoe/p", headers=reload)

    assert (answer.x_cache, answer.cache_status) == ("HIT", "edgecache; hit; ttl=60")
    assert origin.count("/shoe/p") == 1


@pytest.mark.parametrize("reload", RELOADS)
async def test_reload_revalidates_when_set(origin, make_edgecache, client: aiohttp.ClientSession,
                                           clock: FakeClock, reload: dict[str, str]) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"shoe")
    edgecache = await make_edgecache(origin.url, REVALIDATE, clock=clock)
    await get(client, edgecache, "/shoe/p")
    origin.script("/shoe/p", status=304, headers=PAGE)

    answer = await get(client, edgecache, "/shoe/p", headers=reload)

    assert (answer.status, answer.body) == (200, b"shoe")
    assert answer.cache_status == "edgecache; fwd=request; fwd-status=304; ttl=60; stored; detail=client-no-cache"
    assert origin.validators("/shoe/p") == [(None, None), ('"v1"', None)]


async def test_reload_refetches_without_validators(origin, make_edgecache, client: aiohttp.ClientSession,
                                                   clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"}, body=b"old")
    edgecache = await make_edgecache(origin.url, REVALIDATE, clock=clock)
    await get(client, edgecache, "/shoe/p")
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"}, body=b"new")

    answer = await get(client, edgecache, "/shoe/p", headers={"Cache-Control": "no-cache"})

    assert (answer.body, answer.cache_status) == (b"new", "edgecache; fwd=request; stored; detail=client-no-cache")


async def test_client_max_age_honoured_when_set(origin, make_edgecache, client: aiohttp.ClientSession,
                                                clock: FakeClock) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"shoe")
    edgecache = await make_edgecache(origin.url, REVALIDATE, clock=clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", status=304, headers=PAGE)

    young_enough = await get(client, edgecache, "/shoe/p", headers={"Cache-Control": "max-age=30"})
    too_old = await get(client, edgecache, "/shoe/p", headers={"Cache-Control": "max-age=10"})

    assert (young_enough.x_cache, too_old.cache_status.split("; ")[1]) == ("HIT", "fwd=request")


async def test_only_if_cached_miss_504(origin, edgecache, client: aiohttp.ClientSession) -> None:
    answer = await get(client, edgecache, "/shoe/p", headers={"Cache-Control": "max-stale, only-if-cached"})

    assert (answer.status, answer.cache_status) == (504, "edgecache; detail=only-if-cached")
    assert origin.count() == 0


async def test_only_if_cached_hit(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"shoe")
    await get(client, edgecache, "/shoe/p")

    answer = await get(client, edgecache, "/shoe/p", headers={"Cache-Control": "only-if-cached"})

    assert (answer.status, answer.body, answer.x_cache) == (200, b"shoe", "HIT")


async def test_only_if_cached_stale_504(origin, make_edgecache, client: aiohttp.ClientSession,
                                        clock: FakeClock) -> None:
    origin.script("/shoe/p", headers=PAGE, body=b"shoe")
    settings: dict[str, Any] = {"cache": {"stale_while_revalidate": 0}}
    edgecache = await make_edgecache(origin.url, settings, clock=clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(61)

    answer = await get(client, edgecache, "/shoe/p", headers={"Cache-Control": "only-if-cached"})

    assert answer.status == 504
    assert origin.count("/shoe/p") == 1
