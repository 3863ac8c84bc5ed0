"""Byte ranges (RFC 9110 section 14, RFC 9111 section 3.3): a table, then end to end."""

from __future__ import annotations

from typing import Literal

import aiohttp
import pytest
from aiohttp import web

from edgecache.conditional import parse_single_range

from origin_double import RecordingOrigin
from semantics_support import get

BODY = b"0123456789"
PAGE = {"Cache-Control": "max-age=60", "ETag": '"v1"', "Content-Type": "application/octet-stream"}


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param("bytes=2-5", (2, 5), id="9110-14.1.2-first-last"),
    pytest.param("bytes=7-", (7, 9), id="9110-14.1.2-open-ended"),
    pytest.param("bytes=-3", (7, 9), id="9110-14.1.2-suffix"),
    pytest.param("bytes=-30", (0, 9), id="9110-14.1.2-suffix-longer-than-body"),
    pytest.param("bytes=5-99", (5, 9), id="9110-14.1.2-last-past-end-clipped"),
    pytest.param("BYTES = 1-1", (1, 1), id="9110-14.1-unit-case-insensitive"),
    pytest.param("bytes=10-", False, id="9110-14.1.2-first-past-end-unsatisfiable"),
    pytest.param("bytes=-0", False, id="9110-14.1.3-empty-suffix-unsatisfiable"),
    pytest.param("bytes=5-2", None, id="9110-14.1.2-last-before-first-invalid"),
    pytest.param("bytes=0-1,4-5", None, id="9110-14.2-several-ranges-ignored"),
    pytest.param("items=0-1", None, id="9110-14.1-other-unit-ignored"),
    pytest.param("bytes=a-b", None, id="9110-14.1.2-not-digits"),
    pytest.param("bytes=\u00b2-", None, id="9110-14.1.2-non-ascii-digit"),
    pytest.param("bytes=" + "9" * 5000 + "-", None, id="9110-14.1.2-huge-position"),
    pytest.param("bytes=-", None, id="9110-14.1.2-no-positions"),
    pytest.param(None, None, id="9110-14.2-no-range"),
])
def test_parse_single_range(value: str | None, expected: tuple[int, int] | None | Literal[False]) -> None:
    assert parse_single_range(value, len(BODY)) == expected


# End to end.

def serve_ranges(origin: RecordingOrigin, *, chunked: bool = False) -> None:
    """Script /video: the whole BODY, or the single range asked for as a 206."""

    async def video(request: web.Request) -> web.StreamResponse:
        byte_range = parse_single_range(request.headers.get("Range"), len(BODY))
        if byte_range:
            first, last = byte_range
            return web.Response(status=206, body=BODY[first:last + 1], headers={
                **PAGE, "Content-Range": f"bytes {first}-{last}/{len(BODY)}"})
        response = web.StreamResponse(headers=PAGE)
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(BODY)
        await response.prepare(request)
        await response.write(BODY)
        await response.write_eof()
        return response

    origin.handler("/video", video)


def ranges_received(origin: RecordingOrigin) -> list[str | None]:
    return [r.headers.get("Range") for r in origin.requests]


@pytest.mark.parametrize(("range_value", "status", "body", "content_range"), [
    pytest.param("bytes=2-5", 206, b"2345", "bytes 2-5/10", id="9110-14.1.2-206-from-cache"),
    pytest.param("bytes=-3", 206, b"789", "bytes 7-9/10", id="9110-14.1.2-suffix-from-cache"),
    pytest.param("bytes=20-", 416, b"", "bytes */10", id="9110-15.5.17-416-from-cache"),
    pytest.param("bytes=0-1,4-5", 200, BODY, None, id="9110-14.2-several-ranges-full-response"),
])
async def test_range_from_stored_response(origin, edgecache, client: aiohttp.ClientSession, range_value: str,
                                          status: int, body: bytes, content_range: str | None) -> None:
    serve_ranges(origin)
    await get(client, edgecache, "/video")

    answer = await get(client, edgecache, "/video", headers={"Range": range_value})

    assert (answer.status, answer.body, answer.headers.get("Content-Range")) == (status, body, content_range)
    assert answer.x_cache == "HIT"
    assert ("ETag" in answer.headers, "Cache-Control" in answer.headers) == (status != 416, status != 416)
    assert origin.count("/video") == 1


@pytest.mark.parametrize(("if_range", "status"), [
    pytest.param('"v1"', 206, id="9110-13.1.5-if-range-matches"),
    pytest.param('"v0"', 200, id="9110-13.1.5-if-range-differs-full-response"),
])
async def test_if_range(origin, edgecache, client: aiohttp.ClientSession, if_range: str, status: int) -> None:
    serve_ranges(origin)
    await get(client, edgecache, "/video")

    answer = await get(client, edgecache, "/video", headers={"Range": "bytes=0-0", "If-Range": if_range})

    assert answer.status == status


async def test_head_ignores_range(origin, edgecache, client: aiohttp.ClientSession) -> None:
    serve_ranges(origin)
    await get(client, edgecache, "/video")

    answer = await get(client, edgecache, "/video", method="HEAD", headers={"Range": "bytes=0-0"})

    assert (answer.status, answer.headers["Content-Length"]) == (200, "10")


async def test_range_miss_fetches_full_response(origin, edgecache, client: aiohttp.ClientSession) -> None:
    serve_ranges(origin)

    answer = await get(client, edgecache, "/video", headers={"Range": "bytes=2-5"})
    full = await get(client, edgecache, "/video")

    assert (answer.status, answer.body, answer.cache_status) == (206, b"2345", "edgecache; fwd=uri-miss; stored")
    assert (full.status, full.body, full.x_cache) == (200, BODY, "HIT")
    assert ranges_received(origin) == [None]


@pytest.mark.parametrize("chunked", [pytest.param(False, id="9110-14.2-too-large-by-content-length"),
                                     pytest.param(True, id="9110-14.2-too-large-while-reading")])
async def test_range_passed_through_when_too_large(origin, make_edgecache, client: aiohttp.ClientSession,
                                                   chunked: bool) -> None:
    serve_ranges(origin, chunked=chunked)
    edgecache = await make_edgecache(origin.url, {"cache": {"max_object_bytes": 4}})

    first = await get(client, edgecache, "/video", headers={"Range": "bytes=2-5"})
    second = await get(client, edgecache, "/video", headers={"Range": "bytes=6-7"})

    assert (first.status, first.body, first.cache_status) == (206, b"2345", "edgecache; fwd=uri-miss; detail=too-large")
    assert (second.status, second.body) == (206, b"67")
    assert ranges_received(origin) == [None, "bytes=2-5", "bytes=6-7"]
    assert len(edgecache.store) == 0


async def test_206_from_origin_never_stored(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/video", status=206, headers={**PAGE, "Content-Range": "bytes 0-9/100"}, body=BODY)

    first = await get(client, edgecache, "/video")
    await get(client, edgecache, "/video")

    assert first.cache_status == "edgecache; fwd=uri-miss; detail=partial"
    assert origin.count("/video") == 2
