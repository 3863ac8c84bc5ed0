"""Origin failures: unreachable, timed out, truncated bodies, and stale-if-error."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from conftest import proxy_url
from helpers import FakeClock, raw_request


@pytest.fixture
def unreachable_origin() -> Iterator[str]:
    """The URL of a loopback port that refuses connections.

    The port stays bound without listening until the test ends, so no other server
    can take it while the test expects refused connections.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def truncating_origin() -> AsyncIterator[str]:
    """A raw origin that promises 100 bytes, sends 11 and closes the connection."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: max-age=60\r\n"
                     b"Content-Type: text/html\r\n\r\npartial bod")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


async def test_origin_down_502(unreachable_origin, make_edgecache, caplog) -> None:
    edgecache = await make_edgecache(unreachable_origin)
    with caplog.at_level(logging.WARNING, logger="edgecache.origin"):
        response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.status == 502
    assert response.body == b"origin unreachable\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Cache"] == "MISS"
    assert response.headers["Cache-Status"] == "edgecache; fwd=uri-miss; detail=origin-unreachable"
    assert len([r for r in caplog.records if r.name == "edgecache.origin"]) == 1


async def test_origin_down_bypass_502(unreachable_origin, make_edgecache) -> None:
    edgecache = await make_edgecache(unreachable_origin)
    response = await raw_request(edgecache.proxy_port, "/shoe/p?x=1")

    assert response.status == 502
    assert response.headers["Cache-Status"] == "edgecache; fwd=bypass; detail=origin-unreachable"
    assert response.headers["X-Cache"] == "BYPASS"
    assert response.body == b"origin unreachable\n"


async def test_origin_timeout_504(origin, make_edgecache, caplog) -> None:
    edgecache = await make_edgecache(origin.url, {"origin": {"read_timeout": 0.2}})
    origin.gate = asyncio.Event()
    try:
        with caplog.at_level(logging.WARNING, logger="edgecache.origin"):
            response = await raw_request(edgecache.proxy_port, "/shoe/p")
    finally:
        origin.gate.set()

    assert response.status == 504
    assert response.body == b"origin timed out\n"
    assert response.headers["Cache-Status"] == "edgecache; fwd=uri-miss; detail=origin-timeout"
    assert len([r for r in caplog.records if r.name == "edgecache.origin"]) == 1


async def test_truncated_body_not_stored(truncating_origin: str, make_edgecache) -> None:
    edgecache = await make_edgecache(truncating_origin)
    first = await raw_request(edgecache.proxy_port, "/shoe/p")
    second = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert first.status == 502
    assert second.status == 502
    assert len(edgecache.store) == 0


async def test_truncated_stream_aborts_client(truncating_origin: str, make_edgecache,
                                              client: aiohttp.ClientSession) -> None:
    edgecache = await make_edgecache(truncating_origin, {"cache": {"max_object_bytes": 10}})
    with pytest.raises(aiohttp.ClientPayloadError):
        async with client.get(proxy_url(edgecache, "/shoe/p")) as response:
            await response.read()

    assert len(edgecache.store) == 0


async def expired_entry(origin, make_edgecache, raw: dict | None = None):
    """Store /shoe/p (max-age=60), then move the clock 100 s on, past its freshness."""
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, raw, clock=clock)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"}, body=b"old page")
    await raw_request(edgecache.proxy_port, "/shoe/p")
    clock.advance(100)
    return edgecache, clock


async def test_stale_if_error_on_5xx(origin, make_edgecache) -> None:
    edgecache, _ = await expired_entry(origin, make_edgecache)
    origin.script("/shoe/p", status=503, body=b"down")
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.status == 200
    assert response.body == b"old page"
    assert response.headers["X-Cache"] == "STALE"
    assert response.headers["Age"] == "100"
    assert response.headers["Cache-Status"] == "edgecache; fwd=stale; fwd-status=503; ttl=-40; detail=status"
    assert edgecache.stats.stale_served == 1


async def test_stale_if_error_on_timeout(origin, make_edgecache) -> None:
    edgecache, _ = await expired_entry(origin, make_edgecache, {"origin": {"read_timeout": 0.2}})
    origin.gate = asyncio.Event()
    try:
        response = await raw_request(edgecache.proxy_port, "/shoe/p")
    finally:
        origin.gate.set()

    assert response.body == b"old page"
    assert response.headers["X-Cache"] == "STALE"
    assert response.headers["Cache-Status"] == "edgecache; fwd=stale; ttl=-40; detail=origin-timeout"


async def test_stale_if_error_on_origin_down(origin, make_edgecache) -> None:
    edgecache, _ = await expired_entry(origin, make_edgecache)
    await origin.server.close()
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.body == b"old page"
    assert response.headers["X-Cache"] == "STALE"


async def test_stale_if_error_window_ends(origin, make_edgecache) -> None:
    edgecache, clock = await expired_entry(origin, make_edgecache)
    clock.advance(300)
    origin.script("/shoe/p", status=503, body=b"down")
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.status == 503
    assert response.body == b"down"
    assert response.headers["X-Cache"] == "MISS"


async def test_stale_if_error_setting(origin, make_edgecache) -> None:
    edgecache, _ = await expired_entry(origin, make_edgecache, {"cache": {"stale_if_error": 30}})
    origin.script("/shoe/p", status=503, body=b"down")
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.status == 503


async def test_repeated_failures_log_once(unreachable_origin, make_edgecache, caplog) -> None:
    edgecache = await make_edgecache(unreachable_origin)
    with caplog.at_level(logging.WARNING, logger="edgecache.origin"):
        for _ in range(5):
            response = await raw_request(edgecache.proxy_port, "/shoe/p")
            assert response.status == 502

    assert len([r for r in caplog.records if r.name == "edgecache.origin"]) == 1
    assert edgecache.stats.origin_errors == {"origin-unreachable": 5}
