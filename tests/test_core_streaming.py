"""Responses that are not stored reach the client while the origin is still sending them."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

import fault_origin as faults
from fault_origin import FaultOrigin, FaultRequest, response_head
from hardening_checks import assert_healthy, bypass_followers
from helpers import parse_response, wait_until

FIRST_PART = b"x" * 4000
LAST_PART = b"y" * 4000
# Seconds the client waits for the first part; it arrives at once unless edgecache buffers it.
FIRST_PART_WAIT = 5.0


def split_body(headers: dict[str, str], sent_first: asyncio.Event, gate: asyncio.Event):
    """Send the head and FIRST_PART, set `sent_first`, wait for `gate`, then send LAST_PART."""
    fields = {**headers, "Content-Length": str(len(FIRST_PART) + len(LAST_PART))}

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(200, fields) + FIRST_PART)
        await writer.drain()
        sent_first.set()
        await gate.wait()
        writer.write(LAST_PART)
        await writer.drain()

    return fault


CASES = [
    ("query", "/shoe/p?visit=1", {"Cache-Control": "max-age=60"}, {}, "BYPASS"),
    ("no-store", "/shoe/p", {"Cache-Control": "no-store"}, {}, "MISS"),
    ("too-large", "/shoe/p", {"Cache-Control": "max-age=60"}, {"cache": {"max_object_bytes": 1000}}, "MISS"),
    ("no-freshness", "/shoe/p", {}, {}, "MISS"),
    ("set-cookie", "/shoe/p", {"Cache-Control": "max-age=60", "Set-Cookie": "session=1"}, {}, "MISS"),
    ("private", "/shoe/p", {"Cache-Control": "private, max-age=60"}, {}, "MISS"),
]


@pytest.mark.parametrize(("target", "headers", "raw", "x_cache"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
async def test_unstored_response_streamed(fault_origin: FaultOrigin, make_edgecache, target: str,
                                          headers: dict[str, str], raw: dict, x_cache: str) -> None:
    cache = await make_edgecache(fault_origin.url, raw)
    sent_first, gate = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/shoe/p"] = split_body(headers, sent_first, gate)
    reader, writer = await asyncio.open_connection("127.0.0.1", cache.proxy_port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()

    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), FIRST_PART_WAIT)
    received = b""
    async with asyncio.timeout(FIRST_PART_WAIT):
        while received.count(b"x") < len(FIRST_PART):
            chunk = await reader.read(65536)
            assert chunk, "edgecache closed the connection before the first part"
            received += chunk
    assert not gate.is_set()
    assert b"y" not in received

    gate.set()
    received += await asyncio.wait_for(reader.read(), FIRST_PART_WAIT)
    writer.close()
    response = parse_response(head + received)
    assert response.status == 200
    assert response.headers["X-Cache"] == x_cache
    assert response.body == FIRST_PART + LAST_PART
    assert len(cache.store) == 0
    assert fault_origin.count("/shoe/p") == 1


async def test_bypass_leader_streams_followers_share(fault_origin: FaultOrigin, edgecache_on_faults,
                                                     client) -> None:
    sent_first, gate = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/shoe/p"] = split_body({"Cache-Control": "max-age=60"}, sent_first, gate)
    url = f"http://127.0.0.1:{edgecache_on_faults.proxy_port}/shoe/p?utm=1"
    async with client.get(url) as leader:
        assert (await leader.content.readexactly(len(FIRST_PART))) == FIRST_PART
        followers = [asyncio.create_task(client.get(url)) for _ in range(3)]
        await wait_until(lambda: bypass_followers(edgecache_on_faults) == 3)
        gate.set()
        assert await leader.read() == LAST_PART

    for task in followers:
        async with await task as response:
            assert response.status == 200
            assert response.headers["X-Cache"] == "BYPASS"
            assert await response.read() == FIRST_PART + LAST_PART
    assert fault_origin.count("/shoe/p") == 1
    assert edgecache_on_faults.stats.bypass_coalesced == 3
    assert len(edgecache_on_faults.store) == 0


async def test_bypass_too_large_not_shared(fault_origin: FaultOrigin, make_edgecache, client) -> None:
    cache = await make_edgecache(fault_origin.url, {"cache": {"max_object_bytes": 1000}})
    sent_first, gate = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/shoe/p"] = split_body({"Cache-Control": "max-age=60"}, sent_first, gate)
    url = f"http://127.0.0.1:{cache.proxy_port}/shoe/p?utm=1"
    async with client.get(url) as leader:
        assert (await leader.content.readexactly(len(FIRST_PART))) == FIRST_PART
        followers = [asyncio.create_task(client.get(url)) for _ in range(2)]
        await wait_until(lambda: bypass_followers(cache) == 2)
        # Each follower fetches on its own once released, so the gate must let them through too.
        gate.set()
        assert await leader.read() == LAST_PART

    for task in followers:
        async with await task as response:
            assert await response.read() == FIRST_PART + LAST_PART
    assert fault_origin.count("/shoe/p") == 3
    assert cache.stats.bypass_coalesced == 0


async def test_bypass_reset_releases_followers(fault_origin: FaultOrigin, edgecache_on_faults, client) -> None:
    sent_first, gate = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/shoe/p"] = split_body({"Cache-Control": "max-age=60"}, sent_first, gate)
    url = f"http://127.0.0.1:{edgecache_on_faults.proxy_port}/shoe/p?utm=1"
    leader = await client.get(url)
    assert (await leader.content.readexactly(len(FIRST_PART))) == FIRST_PART
    followers = [asyncio.create_task(client.get(url)) for _ in range(2)]
    await wait_until(lambda: bypass_followers(edgecache_on_faults) == 2)
    fault_origin.faults["/shoe/p"] = faults.ok(b"second try")
    await fault_origin.restart()

    with pytest.raises(aiohttp.ClientPayloadError):
        await leader.read()
    leader.release()
    for task in followers:
        async with await task as response:
            assert response.status == 200
            assert await response.read() == b"second try"
    assert edgecache_on_faults.stats.bypass_coalesced == 0
    await assert_healthy(edgecache_on_faults, client)
