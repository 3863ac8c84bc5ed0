"""Cache poisoning and deception, and forced-miss floods: what reaches the origin and what is stored."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

import fault_origin as faults
from conftest import admin_url, proxy_url
from fault_origin import FaultOrigin, FaultRequest
from hardening_checks import assert_healthy, bypass_followers, fetch
from helpers import HANG_LIMIT, wait_until

POISON = {
    "X-Forwarded-Host": "evil.example", "X-Host": "evil.example", "X-Forwarded-Server": "evil.example",
    "X-Original-URL": "/admin", "X-Rewrite-URL": "/admin", "X-HTTP-Method-Override": "DELETE",
    "X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6;host=evil.example",
}


def cookie_per_request() -> faults.Fault:
    """Respond to each request with its own Set-Cookie value, numbered from 1."""
    served = [0]

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        served[0] += 1
        await faults.ok(b"cart", headers={"Set-Cookie": f"session={served[0]}"})(request, writer)

    return fault


async def test_unkeyed_headers_dropped(fault_origin: FaultOrigin, edgecache_on_faults: Any,
                                       client: aiohttp.ClientSession) -> None:
    await fetch(client, proxy_url(edgecache_on_faults, "/shoe/p"), headers=POISON)
    received = fault_origin.requests[0].headers
    site = f"127.0.0.1:{fault_origin.port}"
    assert received["x-forwarded-host"] == site
    assert received["host"] == site
    assert received["x-forwarded-for"] == "127.0.0.1"
    for name in ("x-host", "x-forwarded-server", "x-original-url", "x-rewrite-url", "x-http-method-override",
                 "forwarded"):
        assert name not in received


async def test_unkeyed_headers_setting(fault_origin: FaultOrigin, make_edgecache: Any,
                                       client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url, {"origin": {"drop_request_headers": ["X-Device"]}})
    await fetch(client, proxy_url(cache, "/shoe/p"), headers={"X-Device": "mobile", "X-Host": "a.example"})
    received = fault_origin.requests[0].headers
    assert "x-device" not in received
    assert received["x-host"] == "a.example"


async def test_set_cookie_never_shared(fault_origin: FaultOrigin, edgecache_on_faults: Any,
                                       client: aiohttp.ClientSession) -> None:
    gate, arrived = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/cart/p"] = faults.gated(gate, cookie_per_request(), arrived=arrived)
    requests = [asyncio.create_task(fetch(client, proxy_url(edgecache_on_faults, "/cart/p"))) for _ in range(3)]
    await arrived.wait()
    await wait_until(lambda: edgecache_on_faults.stats.coalesced >= 2, timeout=HANG_LIMIT)
    gate.set()
    results = await asyncio.gather(*requests)
    assert sorted(headers["Set-Cookie"] for _, _, headers in results) == ["session=1", "session=2", "session=3"]
    assert fault_origin.count("/cart/p") == 3
    assert len(edgecache_on_faults.store) == 0


async def test_private_never_shared(fault_origin: FaultOrigin, edgecache_on_faults: Any,
                                    client: aiohttp.ClientSession) -> None:
    gate, arrived = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/account/p"] = faults.gated(
        gate, faults.ok(b"your account", headers={"Cache-Control": "private, max-age=60"}), arrived=arrived)
    requests = [asyncio.create_task(fetch(client, proxy_url(edgecache_on_faults, "/account/p"))) for _ in range(3)]
    await arrived.wait()
    await wait_until(lambda: edgecache_on_faults.stats.coalesced >= 2, timeout=HANG_LIMIT)
    gate.set()
    results = await asyncio.gather(*requests)
    assert [headers["Cache-Status"] for _, _, headers in results] == [
        "edgecache; fwd=uri-miss; detail=private"] * 3
    assert fault_origin.count("/account/p") == 3
    assert len(edgecache_on_faults.store) == 0


async def test_head_never_stores_empty(fault_origin: FaultOrigin, edgecache_on_faults: Any,
                                       client: aiohttp.ClientSession) -> None:
    async with client.head(proxy_url(edgecache_on_faults, "/shoe/p")) as response:
        assert response.status == 200
        assert await response.read() == b""
    assert len(edgecache_on_faults.store) == 0
    for expected in ("MISS", "HIT"):
        status, body, headers = await fetch(client, proxy_url(edgecache_on_faults, "/shoe/p"))
        assert (status, body, headers["X-Cache"]) == (200, b"page /shoe/p", expected)


async def test_deception_needs_content_type(fault_origin: FaultOrigin, make_edgecache: Any,
                                            client: aiohttp.ClientSession) -> None:
    rules = [{"name": "static", "match": "*.css", "ttl": 3600, "override_origin": True, "content_types": ["text/css"]}]
    cache = await make_edgecache(fault_origin.url, {"rules": rules})
    fault_origin.faults["/account/orders/x.css"] = faults.ok(b"<h1>your orders</h1>",
                                                             headers={"Content-Type": "text/html", "Cache-Control": ""})
    fault_origin.faults["/static/site.css"] = faults.ok(b"body{}", headers={"Content-Type": "text/css"})
    _, _, headers = await fetch(client, proxy_url(cache, "/account/orders/x.css"))
    assert headers["Cache-Status"] == "edgecache; fwd=uri-miss; detail=content-type"
    _, _, headers = await fetch(client, proxy_url(cache, "/static/site.css"))
    assert headers["Cache-Status"] == "edgecache; fwd=uri-miss; stored"
    assert len(cache.store) == 1


async def test_bypass_flood_shares_fetch(fault_origin: FaultOrigin, edgecache_on_faults: Any,
                                         client: aiohttp.ClientSession) -> None:
    gate, arrived = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/shoe/p"] = faults.gated(gate, faults.ok(b"shoe"), arrived=arrived)
    requests = [asyncio.create_task(fetch(client, proxy_url(edgecache_on_faults, "/shoe/p?utm=1")))
                for _ in range(5)]
    await arrived.wait()
    await wait_until(lambda: bypass_followers(edgecache_on_faults) == 4)
    gate.set()
    results = await asyncio.gather(*requests)
    assert [(status, body) for status, body, _ in results] == [(200, b"shoe")] * 5
    assert fault_origin.count("/shoe/p") == 1
    assert len(edgecache_on_faults.store) == 0
    async with client.get(admin_url(edgecache_on_faults, "/stats")) as response:
        assert (await response.json())["origin"]["bypass_coalesced"] == 4
    await assert_healthy(edgecache_on_faults, client)


async def test_bypass_private_not_shared(fault_origin: FaultOrigin, edgecache_on_faults: Any,
                                         client: aiohttp.ClientSession) -> None:
    gate, arrived = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/cart/p"] = faults.gated(gate, cookie_per_request(), arrived=arrived)
    requests = [asyncio.create_task(fetch(client, proxy_url(edgecache_on_faults, "/cart/p?step=2")))
                for _ in range(3)]
    await arrived.wait()
    await wait_until(lambda: bypass_followers(edgecache_on_faults) == 2)
    gate.set()
    results = await asyncio.gather(*requests)
    assert sorted(headers["Set-Cookie"] for _, _, headers in results) == ["session=1", "session=2", "session=3"]
    assert fault_origin.count("/cart/p") == 3


async def test_origin_busy_gives_503(fault_origin: FaultOrigin, make_edgecache: Any,
                                     client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url, {"origin": {"max_connections": 1, "queue_timeout": 0.1}})
    gate, arrived = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/slow/p"] = faults.gated(gate, faults.ok(), arrived=arrived)
    holder = asyncio.create_task(fetch(client, proxy_url(cache, "/slow/p")))
    await arrived.wait()
    status, _, headers = await fetch(client, proxy_url(cache, "/shoe/p?x=1"))
    assert status == 503
    assert headers["Cache-Status"] == "edgecache; fwd=bypass; detail=origin-busy"
    gate.set()
    assert (await holder)[0] == 200
    async with client.get(admin_url(cache, "/stats")) as response:
        assert (await response.json())["origin"]["busy_rejections"] == 1
    await assert_healthy(cache, client)


async def test_bypass_rate_limited(fault_origin: FaultOrigin, make_edgecache: Any,
                                   client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url, {"server": {"bypass_rate": 0.5, "bypass_burst": 2}})
    statuses = [(await fetch(client, proxy_url(cache, f"/shoe/p?n={index}")))[0] for index in range(2)]
    status, _, headers = await fetch(client, proxy_url(cache, "/shoe/p?n=3"))
    assert statuses == [200, 200]
    assert (status, headers["Retry-After"]) == (429, "2")
    async with client.get(admin_url(cache, "/stats")) as response:
        assert (await response.json())["rate_limited"] == 1
    await assert_healthy(cache, client)


async def test_bypass_followers_share_error(fault_origin: FaultOrigin, make_edgecache: Any,
                                            client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url, {"origin": {"read_timeout": 0.2}})
    release = asyncio.Event()
    fault_origin.faults["/shoe/p"] = faults.silence(release)
    results = await asyncio.gather(*(fetch(client, proxy_url(cache, "/shoe/p?utm=1")) for _ in range(4)))
    release.set()
    assert [status for status, _, _ in results] == [504] * 4
    assert [headers["Cache-Status"] for _, _, headers in results] == [
        "edgecache; fwd=bypass; detail=origin-timeout"] * 4
    assert fault_origin.count("/shoe/p") == 1
    assert cache.stats.bypass_coalesced == 3
    async with client.get(admin_url(cache, "/stats")) as response:
        assert (await response.json())["requests"]["error"] == 4
    await assert_healthy(cache, client)
