"""The store stays within cache.max_bytes under key mixes beyond a flood of distinct paths."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

import fault_origin as faults
from conftest import proxy_url
from fault_origin import FaultOrigin
from hardening_checks import fetch
from helpers import FakeClock

MAX_BYTES = 100_000
LIMITS = {"max_bytes": MAX_BYTES, "max_object_bytes": 10_000}
LANGUAGES = ("en", "de", "fr", "es")


async def test_key_mix_within_max_bytes(fault_origin: FaultOrigin, make_edgecache: Any,
                                        client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url, {"cache": {**LIMITS, "max_variants": 4},
                                                    "key": {"cookies": ["channel"]}})
    for index in range(60):
        tags = " ".join(f"sku:{index:03d}-{tag}" for tag in range(20))
        fault_origin.faults[f"/mix/{index}/p"] = faults.ok(
            b"m" * 1000, headers={"Vary": "Accept-Language", "Surrogate-Key": tags})
    requests = [
        fetch(client, proxy_url(cache, f"/mix/{index}/p"),
              headers={"Cookie": f"channel=c{channel}", "Accept-Language": language})
        for index in range(60) for channel in range(3) for language in LANGUAGES
    ]
    for start in range(0, len(requests), 50):
        results = await asyncio.gather(*requests[start:start + 50])
        assert {status for status, _, _ in results} == {200}

    entries = list(cache.store._entries.values())
    assert cache.store.bytes <= MAX_BYTES
    assert cache.store.bytes == sum(entry.size for entry in entries)
    assert cache.store.evictions > 0
    assert len(fault_origin.requests) == 60 * 3 * len(LANGUAGES)
    assert len({entry.key.cookie_part for entry in entries}) > 1
    assert len({entry.variant for entry in entries}) > 1


async def test_freshen_stays_within_max_bytes(origin: Any, make_edgecache: Any,
                                              client: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    cache = await make_edgecache(origin.url, {"cache": {"max_bytes": 8000, "max_object_bytes": 2000}}, clock=clock)

    async def revalidated_with_padding(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"', "Cache-Control": "max-age=60",
                                                     "X-Padding": "p" * 5000})
        return web.Response(body=b"a" * 1000, headers={"ETag": '"v1"', "Cache-Control": "max-age=10"})

    origin.handler("/a/p", revalidated_with_padding)
    origin.script("/b/p", headers={"Cache-Control": "max-age=600"}, body=b"b" * 1000)
    await fetch(client, proxy_url(cache, "/a/p"))
    await fetch(client, proxy_url(cache, "/b/p"))
    assert len(cache.store) == 2

    clock.advance(20)
    status, body, headers = await fetch(client, proxy_url(cache, "/a/p"))

    assert status == 200
    assert body == b"a" * 1000
    assert headers["X-Padding"] == "p" * 5000
    assert [request.path_qs for request in origin.requests] == ["/a/p", "/b/p", "/a/p"]
    assert cache.store.bytes <= 8000
    assert [entry.key.path for entry in cache.store._entries.values()] == ["/a/p"]
    assert cache.store.evictions == 1
