"""Origin faults: each gives a clear 502, 504 or a stale entry, stores nothing, and leaves edgecache healthy."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

import fault_origin as faults
from conftest import proxy_url
from edgecache.entry import TAG_OVERHEAD_BYTES
from fault_origin import FaultOrigin
from hardening_checks import FakeClock, assert_healthy, fetch
from helpers import HANG_LIMIT, wait_until

FAST = {"origin": {"connect_timeout": 0.2, "read_timeout": 0.2}}


@pytest.fixture
async def cache(fault_origin: FaultOrigin, make_edgecache: Any) -> Any:
    return await make_edgecache(fault_origin.url, FAST)


async def expect_failure(client: aiohttp.ClientSession, cache: Any, path: str, status: int, reason: str) -> None:
    code, body, headers = await fetch(client, proxy_url(cache, path))
    assert code == status
    assert headers["Cache-Status"] == f"edgecache; fwd=uri-miss; detail={reason}"
    assert headers["Cache-Control"] == "no-store"
    assert body.endswith(b"\n")
    assert len(cache.store) == 0


async def test_refused_gives_502(fault_origin: FaultOrigin, cache: Any, client: aiohttp.ClientSession) -> None:
    await fault_origin.stop()
    await expect_failure(client, cache, "/shoe/p", 502, "origin-unreachable")
    await fault_origin.start()
    await assert_healthy(cache, client)


async def test_silence_gives_504(fault_origin: FaultOrigin, cache: Any, client: aiohttp.ClientSession) -> None:
    release = asyncio.Event()
    fault_origin.faults["/shoe/p"] = faults.silence(release)
    await expect_failure(client, cache, "/shoe/p", 504, "origin-timeout")
    release.set()
    await assert_healthy(cache, client)


async def test_silence_releases_followers(fault_origin: FaultOrigin, cache: Any,
                                          client: aiohttp.ClientSession) -> None:
    release = asyncio.Event()
    fault_origin.faults["/shoe/p"] = faults.silence(release)
    results = await asyncio.gather(*(fetch(client, proxy_url(cache, "/shoe/p")) for _ in range(4)))
    release.set()
    assert [status for status, _, _ in results] == [504, 504, 504, 504]
    assert fault_origin.count("/shoe/p") == 1
    assert cache.stats.coalesced == 3
    await assert_healthy(cache, client)


async def test_slow_headers_gives_504(fault_origin: FaultOrigin, cache: Any, client: aiohttp.ClientSession) -> None:
    fault_origin.faults["/shoe/p"] = faults.slow_headers(0.5)
    await expect_failure(client, cache, "/shoe/p", 504, "origin-timeout")
    await assert_healthy(cache, client)


async def test_slow_body_gives_504(fault_origin: FaultOrigin, cache: Any, client: aiohttp.ClientSession) -> None:
    fault_origin.faults["/shoe/p"] = faults.slow_body(0.5)
    await expect_failure(client, cache, "/shoe/p", 504, "origin-timeout")
    await assert_healthy(cache, client)


async def test_reset_mid_body_gives_502(fault_origin: FaultOrigin, cache: Any,
                                        client: aiohttp.ClientSession) -> None:
    fault_origin.faults["/shoe/p"] = faults.reset_mid_body()
    await expect_failure(client, cache, "/shoe/p", 502, "origin-invalid")
    await assert_healthy(cache, client)


async def test_short_body_gives_502(fault_origin: FaultOrigin, cache: Any, client: aiohttp.ClientSession) -> None:
    fault_origin.faults["/shoe/p"] = faults.short_body()
    await expect_failure(client, cache, "/shoe/p", 502, "origin-invalid")
    await assert_healthy(cache, client)


async def test_invalid_http_gives_502(fault_origin: FaultOrigin, cache: Any, client: aiohttp.ClientSession) -> None:
    fault_origin.faults["/shoe/p"] = faults.raw_bytes(b"HTTP/1.1 banana\r\n\r\n")
    await expect_failure(client, cache, "/shoe/p", 502, "origin-invalid")
    await assert_healthy(cache, client)


async def test_length_with_chunked_gives_502(fault_origin: FaultOrigin, cache: Any,
                                             client: aiohttp.ClientSession) -> None:
    fault_origin.faults["/shoe/p"] = faults.content_length_and_chunked()
    await expect_failure(client, cache, "/shoe/p", 502, "origin-invalid")
    await assert_healthy(cache, client)


async def test_gzip_body_passed_unchanged(fault_origin: FaultOrigin, cache: Any,
                                          client: aiohttp.ClientSession) -> None:
    fault_origin.faults["/shoe/p"] = faults.gzip_body()
    for expected in ("MISS", "HIT"):
        status, body, headers = await fetch(client, proxy_url(cache, "/shoe/p"),
                                            headers={"Accept-Encoding": "gzip"})
        assert status == 200
        assert headers["X-Cache"] == expected
        assert headers["Content-Encoding"] == "gzip"
        assert body == faults.GZIP_BODY
    assert fault_origin.count("/shoe/p") == 1
    await assert_healthy(cache, client)


async def test_large_headers_stored_with_tags(fault_origin: FaultOrigin, cache: Any,
                                              client: aiohttp.ClientSession) -> None:
    fault_origin.faults["/c/shoes"] = faults.large_headers(6000)
    for expected in ("MISS", "HIT"):
        status, body, headers = await fetch(client, proxy_url(cache, "/c/shoes"))
        assert status == 200
        assert headers["X-Cache"] == expected
        assert "Surrogate-Key" not in headers
        assert body == b"category"
    assert cache.store.bytes >= 6000 * TAG_OVERHEAD_BYTES
    assert await cache.purge(paths=[], prefixes=[], tags=["sku:005999"], purge_all=False, soft=False) == {
        "purged": 1, "soft": False}
    await assert_healthy(cache, client)


async def test_error_burst_serves_stale(fault_origin: FaultOrigin, make_edgecache: Any,
                                        client: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    cache = await make_edgecache(fault_origin.url, FAST, clock=clock)
    fault_origin.faults["/shoe/p"] = faults.ok(b"shoe", headers={"Cache-Control": "max-age=10"})
    assert (await fetch(client, proxy_url(cache, "/shoe/p")))[1] == b"shoe"
    clock.now += 20
    fault_origin.faults["/shoe/p"] = faults.statuses([503, 500, 502], faults.ok(b"shoe v2"))
    for fwd_status in (503, 500, 502):
        status, body, headers = await fetch(client, proxy_url(cache, "/shoe/p"))
        assert status == 200
        assert body == b"shoe"
        assert headers["Cache-Status"] == f"edgecache; fwd=stale; fwd-status={fwd_status}; ttl=-10; detail=status"
    status, body, headers = await fetch(client, proxy_url(cache, "/shoe/p"))
    assert body == b"shoe v2"
    assert headers["X-Cache"] == "MISS"
    assert fault_origin.count("/shoe/p") == 5
    await assert_healthy(cache, client)


async def test_error_burst_without_entry(fault_origin: FaultOrigin, cache: Any,
                                         client: aiohttp.ClientSession) -> None:
    fault_origin.faults["/shoe/p"] = faults.statuses([503, 503], faults.ok(b"shoe"))
    for _ in range(2):
        status, body, _ = await fetch(client, proxy_url(cache, "/shoe/p"))
        assert status == 503
        assert body == b"origin error 503"
    assert len(cache.store) == 0
    status, body, _ = await fetch(client, proxy_url(cache, "/shoe/p"))
    assert (status, body) == (200, b"shoe")
    await assert_healthy(cache, client)


async def test_restart_in_flight_retried(fault_origin: FaultOrigin, cache: Any,
                                         client: aiohttp.ClientSession) -> None:
    await assert_healthy(cache, client, "/warm-pool")
    arrived = asyncio.Event()
    fault_origin.faults["/shoe/p"] = faults.gated(asyncio.Event(), faults.ok(), arrived=arrived)
    requests = [asyncio.create_task(fetch(client, proxy_url(cache, "/shoe/p"))) for _ in range(3)]
    await arrived.wait()
    fault_origin.faults["/shoe/p"] = faults.ok(b"after restart")
    await fault_origin.restart()
    results = await asyncio.gather(*requests)
    assert [(status, body) for status, body, _ in results] == [(200, b"after restart")] * 3
    assert fault_origin.count("/shoe/p") == 2
    await assert_healthy(cache, client)
    await assert_healthy(cache, client, "/warm-pool")


async def test_crash_in_flight_gives_502(fault_origin: FaultOrigin, cache: Any,
                                         client: aiohttp.ClientSession) -> None:
    arrived = asyncio.Event()
    fault_origin.faults["/shoe/p"] = faults.gated(asyncio.Event(), faults.ok(), arrived=arrived)
    requests = [asyncio.create_task(fetch(client, proxy_url(cache, "/shoe/p"))) for _ in range(3)]
    await arrived.wait()
    await fault_origin.stop()
    results = await asyncio.gather(*requests)
    assert [status for status, _, _ in results] == [502, 502, 502]
    assert len(cache.store) == 0
    fault_origin.faults.clear()
    await fault_origin.start()
    await assert_healthy(cache, client)


@pytest.mark.parametrize("fault, status", [
    (faults.reset_mid_body(), 502),
    (faults.short_body(), 502),
    (faults.raw_bytes(b"not http at all\r\n\r\n"), 502),
    (faults.slow_body(0.5), 504),
], ids=["reset", "short", "invalid", "slow-body"])
async def test_fault_releases_followers(fault: faults.Fault, status: int, fault_origin: FaultOrigin, cache: Any,
                                        client: aiohttp.ClientSession) -> None:
    gate, arrived = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/shoe/p"] = faults.gated(gate, fault, arrived=arrived)
    requests = [asyncio.create_task(fetch(client, proxy_url(cache, "/shoe/p"))) for _ in range(3)]
    await arrived.wait()
    await wait_until(lambda: cache.stats.coalesced >= 2, timeout=HANG_LIMIT)
    gate.set()
    results = await asyncio.gather(*requests)
    assert [code for code, _, _ in results] == [status] * 3
    assert fault_origin.count("/shoe/p") == 1
    assert len(cache.store) == 0
    await assert_healthy(cache, client)


async def test_trickling_headers_give_504(fault_origin: FaultOrigin, make_edgecache: Any,
                                          client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url, {"origin": {"read_timeout": 0.2, "header_timeout": 0.3}})
    fault_origin.faults["/shoe/p"] = faults.trickle_headers(0.02)
    await expect_failure(client, cache, "/shoe/p", 504, "origin-timeout")
    await assert_healthy(cache, client)
