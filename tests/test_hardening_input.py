"""Hostile and malformed client input through raw sockets: rejected cleanly, never forwarded astray."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from conftest import proxy_url
from edgecache.target import framing_problem, target_problem
from fault_origin import FaultOrigin
from hardening_checks import assert_healthy, fetch
from helpers import HANG_LIMIT, wait_until

LIMITS = {"server": {"max_line_size": 200, "max_field_size": 200, "header_timeout": 0.2, "idle_timeout": 0.3}}


@pytest.fixture
async def cache(fault_origin: FaultOrigin, make_edgecache: Any) -> Any:
    return await make_edgecache(fault_origin.url, LIMITS)


async def send_raw(cache: Any, data: bytes) -> bytes:
    """Send raw bytes to the proxy listener and return everything it sends back before closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", cache.proxy_port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), HANG_LIMIT)
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /shoe/p HTTP/9.9\r\nHost: a\r\n\r\n",
    b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\rtwo\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A one\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"POST /cart HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /cart HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"POST /cart HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"POST /cart HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\ntwo\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\nX-A: one\n\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: o\x00ne\r\n\r\n",
    b"GET /shoe/p HTTP/1.1\r\n\r\n",
    b"POST /cart HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
    b"POST /cart HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
    b"POST /cart HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    b"POST /cart HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"POST /cart HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"POST /cart HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    b"POST /cart HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
], ids=["garbage", "no-target", "version", "nul", "control", "space", "cr-in-value", "no-colon",
        "two-hosts", "cl-and-te", "two-lengths", "te-list", "te-space", "lf-in-value", "bare-lf-lines",
        "obs-fold", "nul-in-value", "no-host", "cl-sign", "cl-list", "te-unknown", "te-tab-with-cl",
        "bad-chunk-size", "chunk-size-lf", "te-in-http10"])
async def test_malformed_request_gets_400(request_bytes: bytes, fault_origin: FaultOrigin, cache: Any,
                                          client: aiohttp.ClientSession) -> None:
    response = await send_raw(cache, request_bytes)
    assert status_of(response) == 400
    assert fault_origin.requests == []
    await assert_healthy(cache, client)


@pytest.mark.parametrize("target, problem", [
    ("/a%zz", "invalid percent-encoding in request target"),
    ("/a%2", "invalid percent-encoding in request target"),
    ("/a?q=%g1", "invalid percent-encoding in request target"),
    ("/a%00b", "encoded control character in request path"),
    ("/a%0d%0aSet-Cookie:x", "encoded control character in request path"),
    ("/static/..%2f..%2faccount", "dot segment behind an encoded slash in request path"),
    ("/static/%2e%2e%2Faccount", "dot segment behind an encoded slash in request path"),
    ("/static/..%5caccount", "dot segment behind an encoded slash in request path"),
])
async def test_bad_target_gets_400(target: str, problem: str, fault_origin: FaultOrigin, cache: Any,
                                   client: aiohttp.ClientSession) -> None:
    response = await send_raw(cache, f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert status_of(response) == 400
    assert response.endswith(problem.encode() + b"\n")
    assert fault_origin.requests == []
    assert len(cache.store) == 0
    await assert_healthy(cache, client)


def test_target_problem_accepts_paths() -> None:
    for target in ("/", "/shoe/p", "/a%2Fb", "/c/shoes?page=2", "/%E2%82%AC", "/a/..b/c"):
        assert target_problem(target) is None


@pytest.mark.parametrize("version, headers, problem", [
    ((1, 1), {"Transfer-Encoding": "chunked"}, None),
    ((1, 0), {"Content-Length": "5"}, None),
    ((1, 0), {"Transfer-Encoding": "chunked"}, "Transfer-Encoding in an HTTP/1.0 request"),
    ((0, 9), {"Transfer-Encoding": "gzip"}, "Transfer-Encoding in an HTTP/1.0 request"),
])
def test_framing_problem_table(version: tuple[int, int], headers: dict[str, str], problem: str | None) -> None:
    assert framing_problem(version, CIMultiDict(headers)) == problem


async def test_long_request_line_gets_414(fault_origin: FaultOrigin, cache: Any,
                                          client: aiohttp.ClientSession) -> None:
    response = await send_raw(cache, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(response) == 414
    assert fault_origin.requests == []
    await assert_healthy(cache, client)


async def test_long_header_gets_431(fault_origin: FaultOrigin, cache: Any, client: aiohttp.ClientSession) -> None:
    response = await send_raw(cache, b"GET / HTTP/1.1\r\nHost: a\r\nCookie: " + b"c" * 300 + b"\r\n\r\n")
    assert status_of(response) == 431
    assert fault_origin.requests == []
    await assert_healthy(cache, client)


@pytest.mark.parametrize("method", ["CONNECT", "TRACE"])
async def test_tunnel_methods_get_405(method: str, fault_origin: FaultOrigin, cache: Any,
                                      client: aiohttp.ClientSession) -> None:
    target = "evil.example:443" if method == "CONNECT" else "/shoe/p"
    response = await send_raw(cache, f"{method} {target} HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())
    assert status_of(response) == 405
    assert fault_origin.requests == []
    await assert_healthy(cache, client)


async def test_absolute_form_uses_path_only(fault_origin: FaultOrigin, cache: Any,
                                            client: aiohttp.ClientSession) -> None:
    response = await send_raw(cache, b"GET http://evil.example/shoe/p HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert status_of(response) == 200
    assert response.endswith(b"page /shoe/p")
    assert [request.target for request in fault_origin.requests] == ["/shoe/p"]
    assert fault_origin.requests[0].headers["host"] == f"127.0.0.1:{fault_origin.port}"
    status, body, headers = await fetch(client, proxy_url(cache, "/shoe/p"))
    assert (status, body, headers["X-Cache"]) == (200, b"page /shoe/p", "HIT")


async def test_other_host_maps_to_site(fault_origin: FaultOrigin, cache: Any, client: aiohttp.ClientSession) -> None:
    await fetch(client, proxy_url(cache, "/shoe/p"), headers={"Host": "evil.example"})
    assert fault_origin.requests[0].headers["host"] == f"127.0.0.1:{fault_origin.port}"
    assert fault_origin.requests[0].headers["x-forwarded-host"] == f"127.0.0.1:{fault_origin.port}"
    status, _, headers = await fetch(client, proxy_url(cache, "/shoe/p"))
    assert (status, headers["X-Cache"]) == (200, "HIT")


async def test_dot_segments_fetch_canonical(fault_origin: FaultOrigin, cache: Any,
                                            client: aiohttp.ClientSession) -> None:
    response = await send_raw(cache, b"GET /x/%2e%2e//shoe/./p HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(response) == 200
    assert [request.target for request in fault_origin.requests] == ["/shoe/p"]


async def test_slow_headers_closed(fault_origin: FaultOrigin, cache: Any, client: aiohttp.ClientSession) -> None:
    connections = [await asyncio.open_connection("127.0.0.1", cache.proxy_port) for _ in range(20)]
    for _, writer in connections:
        writer.write(b"GET /shoe/p HTTP/1.1\r\nHost: a\r\n")
    await assert_healthy(cache, client)
    for reader, writer in connections:
        assert await asyncio.wait_for(reader.read(), HANG_LIMIT) == b""
        writer.close()
    assert fault_origin.count("/shoe/p") == 0


async def test_idle_connection_closed(cache: Any) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", cache.proxy_port)
    writer.write(b"GET /shoe/p HTTP/1.1\r\nHost: a\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    await reader.readexactly(len(b"page /shoe/p"))
    assert await asyncio.wait_for(reader.read(), HANG_LIMIT) == b""
    writer.close()


async def test_disconnect_while_filling(fault_origin: FaultOrigin, cache: Any, client: aiohttp.ClientSession) -> None:
    from fault_origin import gated, ok

    gate, arrived = asyncio.Event(), asyncio.Event()
    body = b"b" * 200_000
    fault_origin.faults["/shoe/p"] = gated(gate, ok(body), arrived=arrived)
    reader, writer = await asyncio.open_connection("127.0.0.1", cache.proxy_port)
    writer.write(b"GET /shoe/p HTTP/1.1\r\nHost: a\r\n\r\n")
    await arrived.wait()
    writer.close()
    gate.set()
    await wait_until(lambda: len(cache.store) > 0, timeout=HANG_LIMIT)
    status, received, headers = await fetch(client, proxy_url(cache, "/shoe/p"))
    assert (status, headers["X-Cache"], received) == (200, "HIT", body)
    await assert_healthy(cache, client)


async def test_disconnect_mid_stream(fault_origin: FaultOrigin, make_edgecache: Any,
                                     client: aiohttp.ClientSession) -> None:
    from fault_origin import ok

    cache = await make_edgecache(fault_origin.url, {"cache": {"max_object_bytes": 1000}})
    fault_origin.faults["/big"] = ok(b"z" * 4_000_000)
    reader, writer = await asyncio.open_connection("127.0.0.1", cache.proxy_port)
    writer.write(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.transport.abort()
    await wait_until(lambda: cache.origin.in_use == 0, timeout=HANG_LIMIT)
    assert len(cache.store) == 0
    await assert_healthy(cache, client)


@pytest.mark.parametrize("target, received", [
    ("//evil.example/shoe/p", "/evil.example/shoe/p"),
    ("//evil.example/shoe/p?x=1", "//evil.example/shoe/p?x=1"),
    ("/@evil.example/p", "/@evil.example/p"),
])
async def test_authority_like_path_stays_path(target: str, received: str, fault_origin: FaultOrigin, cache: Any,
                                              client: aiohttp.ClientSession) -> None:
    response = await send_raw(cache, f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert status_of(response) == 200
    assert [request.target for request in fault_origin.requests] == [received]
    assert fault_origin.requests[0].headers["host"] == f"127.0.0.1:{fault_origin.port}"
