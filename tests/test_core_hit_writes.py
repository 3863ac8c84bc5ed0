"""Plain hits written in one write (StoredHitResponse): HTTP/1.x framing through real sockets."""

from __future__ import annotations

import asyncio
from email.utils import formatdate

import pytest
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict, CIMultiDictProxy

import fault_origin as faults
from edgecache.hit_response import encode_stored_fields
from fault_origin import FaultOrigin
from helpers import FakeClock, RawResponse, raw_request

PAGE = b"<html>" + b"x" * 2000 + b"</html>"
PAGE_HEADERS = {"Cache-Control": "max-age=60", "Content-Type": "text/html", "ETag": '"v1"'}


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> tuple[str, RawResponse]:
    """Read one response framed by Content-Length; return its status line and the response."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    body = b"" if head_only else await reader.readexactly(int(headers["Content-Length"]))
    return status_line, RawResponse(int(status_line.split()[1]), headers, body)


async def send(writer: asyncio.StreamWriter, target: str, *, method: str = "GET", version: str = "1.1",
               connection: str | None = None) -> None:
    lines = [f"{method} {target} HTTP/{version}", "Host: 127.0.0.1"]
    if connection is not None:
        lines.append(f"Connection: {connection}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()


@pytest.fixture
async def stored_page(origin, make_edgecache):
    """An edgecache on a fake clock with /shoe/p stored; the origin has seen one request."""
    origin.script("/shoe/p", headers=PAGE_HEADERS, body=PAGE)
    edgecache = await make_edgecache(origin.url, clock=FakeClock())
    miss = await raw_request(edgecache.proxy_port, "/shoe/p")
    assert miss.headers["X-Cache"] == "MISS"
    return edgecache


async def test_hit_fields_exact(origin, stored_page) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stored_page.proxy_port)
    await send(writer, "/shoe/p")
    status_line, hit = await read_response(reader)
    writer.close()

    assert status_line == "HTTP/1.1 200 OK"
    assert hit.body == PAGE
    assert hit.headers["Content-Length"] == str(len(PAGE))
    assert hit.headers["Content-Type"] == "text/html"
    assert hit.headers["ETag"] == '"v1"'
    assert hit.headers["Age"] == "0"
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["Cache-Status"] == "edgecache; hit; ttl=60"
    assert hit.headers.getall("Via") == ["1.1 edgecache"]
    assert "Date" in hit.headers
    assert "Transfer-Encoding" not in hit.headers
    assert "Connection" not in hit.headers
    assert origin.count("/shoe/p") == 1


async def test_hit_keep_alive_pipelined(origin, stored_page) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stored_page.proxy_port)
    writer.write(b"GET /shoe/p HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 3)
    await writer.drain()
    for _ in range(3):
        status_line, hit = await read_response(reader)
        assert status_line == "HTTP/1.1 200 OK"
        assert hit.body == PAGE
        assert hit.headers["X-Cache"] == "HIT"
    writer.close()

    assert origin.count("/shoe/p") == 1


async def test_hit_connection_close(stored_page) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stored_page.proxy_port)
    await send(writer, "/shoe/p", connection="close")
    _, hit = await read_response(reader)

    assert hit.headers["Connection"] == "close"
    assert hit.body == PAGE
    assert await reader.read() == b""
    writer.close()


async def test_hit_http10_closes(stored_page) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stored_page.proxy_port)
    await send(writer, "/shoe/p", version="1.0")
    status_line, hit = await read_response(reader)

    assert status_line == "HTTP/1.0 200 OK"
    assert "Connection" not in hit.headers
    assert hit.body == PAGE
    assert await reader.read() == b""
    writer.close()


async def test_hit_http10_keep_alive(stored_page) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stored_page.proxy_port)
    for _ in range(2):
        await send(writer, "/shoe/p", version="1.0", connection="keep-alive")
        status_line, hit = await read_response(reader)
        assert status_line == "HTTP/1.0 200 OK"
        assert hit.headers["Connection"] == "keep-alive"
        assert hit.body == PAGE
    writer.close()


async def test_head_hit_no_body(stored_page) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stored_page.proxy_port)
    await send(writer, "/shoe/p", method="HEAD")
    _, head = await read_response(reader, head_only=True)
    # A GET on the same connection must start right after the HEAD's fields.
    await send(writer, "/shoe/p")
    status_line, hit = await read_response(reader)
    writer.close()

    assert head.headers["Content-Length"] == str(len(PAGE))
    assert head.headers["X-Cache"] == "HIT"
    assert status_line == "HTTP/1.1 200 OK"
    assert hit.body == PAGE


async def test_hit_of_chunked_origin(origin, make_edgecache) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"part one, ")
        await response.write(b"part two")
        await response.write_eof()
        return response

    origin.handler("/shoe/p", chunked)
    edgecache = await make_edgecache(origin.url)
    await raw_request(edgecache.proxy_port, "/shoe/p")
    hit = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["Content-Length"] == str(len(b"part one, part two"))
    assert "Transfer-Encoding" not in hit.headers
    assert hit.body == b"part one, part two"


async def test_hit_appends_origin_via(origin, make_edgecache) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Via": "1.1 upstream"}, body=PAGE)
    edgecache = await make_edgecache(origin.url)
    await raw_request(edgecache.proxy_port, "/shoe/p")
    hit = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers.getall("Via") == ["1.1 upstream, 1.1 edgecache"]


async def test_upstream_cache_fields_replaced(origin, make_edgecache) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "X-Cache": "HIT",
                                      "Cache-Status": "upstreamcdn; hit"}, body=PAGE)
    edgecache = await make_edgecache(origin.url, clock=FakeClock())
    miss = await raw_request(edgecache.proxy_port, "/shoe/p")
    hit = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert miss.headers.getall("X-Cache") == ["MISS"]
    assert miss.headers.getall("Cache-Status") == ["edgecache; fwd=uri-miss; stored"]
    assert hit.headers.getall("X-Cache") == ["HIT"]
    assert hit.headers.getall("Cache-Status") == ["edgecache; hit; ttl=60"]
    assert hit.body == PAGE


async def test_hit_of_non_utf8_field(fault_origin: FaultOrigin, make_edgecache) -> None:
    # "\xe9" goes out as the single byte 0xE9 (obs-text), which is not UTF-8.
    fault_origin.faults["/shoe/p"] = faults.ok(PAGE, headers={"Date": formatdate(usegmt=True),
                                                              "X-Name": "caf\xe9"})
    edgecache = await make_edgecache(fault_origin.url)
    miss = await raw_request(edgecache.proxy_port, "/shoe/p")
    hit = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert (miss.status, miss.headers["X-Cache"], miss.body) == (200, "MISS", PAGE)
    assert (hit.status, hit.headers["X-Cache"], hit.body) == (200, "HIT", PAGE)
    assert fault_origin.count("/shoe/p") == 1


async def test_hit_range_still_partial(stored_page) -> None:
    partial = await raw_request(stored_page.proxy_port, "/shoe/p", headers={"Range": "bytes=0-5"})

    assert partial.status == 206
    assert partial.body == PAGE[:6]
    assert partial.headers["Content-Range"] == f"bytes 0-5/{len(PAGE)}"


@pytest.mark.parametrize(("fields", "expected"), [
    ({"Date": "Fri, 04 Dec 2026 20:00:00 GMT", "Server": "origin", "Content-Type": "text/html"},
     b"Date: Fri, 04 Dec 2026 20:00:00 GMT\r\nServer: origin\r\nContent-Type: text/html\r\n"
     b"Content-Length: 3\r\nVia: 1.1 edgecache\r\n"),
    ({"Date": "Fri, 04 Dec 2026 20:00:00 GMT", "Server": "origin"},
     b"Date: Fri, 04 Dec 2026 20:00:00 GMT\r\nServer: origin\r\nContent-Length: 3\r\nVia: 1.1 edgecache\r\n"
     b"Content-Type: application/octet-stream\r\n"),
    ({"Server": "origin"}, None),
    ({"Date": "Fri, 04 Dec 2026 20:00:00 GMT", "Connection": "close"}, None),
    ({"Date": "Fri, 04 Dec 2026 20:00:00 GMT", "X-Bad": "a\r\nSet-Cookie: b"}, None),
    ({"Date": "Fri, 04 Dec 2026 20:00:00 GMT", "X-Name": "caf\udce9"}, None),
    ({"Date": "Fri, 04 Dec 2026 20:00:00 GMT", "X-Cache": "HIT", "Cache-Status": "cdn; hit", "Age": "5"},
     b"Date: Fri, 04 Dec 2026 20:00:00 GMT\r\nContent-Length: 3\r\nVia: 1.1 edgecache\r\n"
     b"Server: " + SERVER_SOFTWARE.encode() + b"\r\nContent-Type: application/octet-stream\r\n"),
])
def test_encode_stored_fields_table(fields: dict[str, str], expected: bytes | None) -> None:
    headers = CIMultiDictProxy(CIMultiDict(fields))

    assert encode_stored_fields(headers, 3, via="1.1 edgecache") == expected
