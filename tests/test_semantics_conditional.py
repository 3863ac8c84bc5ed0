"""Conditional requests from clients (RFC 9110 section 13, RFC 9111 section 4.3.2): tables, then end to end."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from edgecache.conditional import (
    etag_matches_weakly,
    freshen_headers,
    if_range_matches,
    is_not_modified,
    not_modified_selects,
)

from semantics_support import FakeClock, background_done, get, until

MODIFIED = "Tue, 14 Nov 2023 22:00:00 GMT"
EARLIER = "Tue, 14 Nov 2023 21:00:00 GMT"
LATER = "Tue, 14 Nov 2023 23:00:00 GMT"


@pytest.mark.parametrize(("if_none_match", "etag", "expected"), [
    pytest.param('"v1"', '"v1"', True, id="9110-13.1.2-same-tag"),
    pytest.param('"v1"', '"v2"', False, id="9110-13.1.2-other-tag"),
    pytest.param('W/"v1"', '"v1"', True, id="9110-8.8.3.2-weak-comparison-client-weak"),
    pytest.param('"v1"', 'W/"v1"', True, id="9110-8.8.3.2-weak-comparison-stored-weak"),
    pytest.param('"v0", "v1"', '"v1"', True, id="9110-13.1.2-list"),
    pytest.param('"a,b"', '"a,b"', True, id="9110-8.8.3-comma-inside-tag"),
    pytest.param('"a", "b"', '"a,b"', False, id="9110-8.8.3-comma-inside-tag-not-split"),
    pytest.param("*", '"v1"', True, id="9110-13.1.2-star"),
    pytest.param("*", None, True, id="9110-13.1.2-star-matches-without-etag"),
    pytest.param('"v1"', None, False, id="9110-13.1.2-no-stored-etag"),
])
def test_if_none_match(if_none_match: str, etag: str | None, expected: bool) -> None:
    assert etag_matches_weakly(if_none_match, etag) is expected


def stored(**fields: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict((name.replace("_", "-"), value) for name, value in fields.items()))


@pytest.mark.parametrize(("request_fields", "entry_fields", "status", "expected"), [
    pytest.param({"If-None-Match": '"v1"'}, stored(etag='"v1"'), 200, True, id="9110-13.2.2-if-none-match"),
    pytest.param({"If-None-Match": '"v2"', "If-Modified-Since": LATER}, stored(etag='"v1"', last_modified=MODIFIED),
                 200, False, id="9110-13.2.2-if-none-match-precedence"),
    pytest.param({"If-Modified-Since": MODIFIED}, stored(last_modified=MODIFIED), 200, True,
                 id="9110-13.1.3-same-date"),
    pytest.param({"If-Modified-Since": LATER}, stored(last_modified=MODIFIED), 200, True,
                 id="9110-13.1.3-later-date"),
    pytest.param({"If-Modified-Since": EARLIER}, stored(last_modified=MODIFIED), 200, False,
                 id="9110-13.1.3-modified-since"),
    pytest.param({"If-Modified-Since": "not a date"}, stored(last_modified=MODIFIED), 200, False,
                 id="9110-13.1.3-invalid-date-ignored"),
    pytest.param({"If-Modified-Since": LATER}, stored(date=MODIFIED), 200, True, id="9111-4.3.2-date-fallback"),
    pytest.param({"If-Modified-Since": LATER}, stored(etag='"v1"'), 404, False, id="9110-13.2.1-only-2xx"),
    pytest.param({}, stored(etag='"v1"'), 200, False, id="9110-13.2.2-no-condition"),
])
def test_is_not_modified(request_fields: dict[str, str], entry_fields: CIMultiDictProxy[str], status: int,
                         expected: bool) -> None:
    assert is_not_modified(CIMultiDict(request_fields), entry_fields, status) is expected


def test_if_modified_since_falls_back_to_arrival() -> None:
    since = CIMultiDict({"If-Modified-Since": MODIFIED})

    assert is_not_modified(since, stored(), 200, received=1_699_999_000.0) is True  # 21:56:40, before it
    assert is_not_modified(since, stored(), 200, received=1_700_000_000.0) is False  # 22:13:20, after it


@pytest.mark.parametrize(("if_range", "entry_fields", "expected"), [
    pytest.param('"v1"', stored(etag='"v1"'), True, id="9110-13.1.5-strong-etag"),
    pytest.param('"v2"', stored(etag='"v1"'), False, id="9110-13.1.5-other-etag"),
    pytest.param('W/"v1"', stored(etag='W/"v1"'), False, id="9110-13.1.5-weak-never-matches"),
    pytest.param(MODIFIED, stored(last_modified=MODIFIED, date=LATER), True, id="9110-13.1.5-strong-date"),
    pytest.param(MODIFIED, stored(last_modified=MODIFIED, date=MODIFIED), False, id="9110-8.8.2.2-weak-date"),
    pytest.param(LATER, stored(last_modified=MODIFIED, date=LATER), False, id="9110-13.1.5-date-not-equal"),
])
def test_if_range(if_range: str, entry_fields: CIMultiDictProxy[str], expected: bool) -> None:
    assert if_range_matches(if_range, entry_fields) is expected


@pytest.mark.parametrize(("not_modified", "expected"), [
    pytest.param({"ETag": '"v1"'}, True, id="9111-4.3.4-same-etag"),
    pytest.param({"ETag": '"v2"'}, False, id="9111-4.3.4-other-etag"),
    pytest.param({"Last-Modified": MODIFIED}, True, id="9111-4.3.4-same-last-modified"),
    pytest.param({"Last-Modified": LATER}, False, id="9111-4.3.4-other-last-modified"),
    pytest.param({}, True, id="9111-4.3.4-no-validator-selects-revalidated-entry"),
])
def test_not_modified_selects(not_modified: dict[str, str], expected: bool) -> None:
    assert not_modified_selects(stored(etag='"v1"', last_modified=MODIFIED), CIMultiDict(not_modified)) is expected


def test_freshen_headers() -> None:
    entry_headers = stored(content_type="text/html", content_encoding="gzip", etag='"v1"',
                           cache_control="max-age=10", x_kept="yes")
    not_modified = CIMultiDictProxy(CIMultiDict([
        ("Cache-Control", "max-age=60"), ("Content-Type", "text/plain"), ("Content-Encoding", "br"),
        ("Content-Length", "0"), ("X-New", "1"), ("ETag", '"v1"'),
    ]))

    updated = freshen_headers(entry_headers, not_modified)

    assert sorted(updated.items()) == sorted([
        ("content-type", "text/html"), ("content-encoding", "gzip"), ("x-kept", "yes"),
        ("Cache-Control", "max-age=60"), ("X-New", "1"), ("ETag", '"v1"'),
    ])


# End to end.

PAGE_HEADERS = {
    "Cache-Control": "max-age=60", "ETag": '"v1"', "Last-Modified": MODIFIED, "Expires": LATER,
    "Vary": "Accept-Encoding", "Content-Location": "/shoe/p.html", "Content-Type": "text/html",
    "X-Served-By": "origin-1",
}


async def test_if_none_match_304_from_cache(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers=PAGE_HEADERS, body=b"shoe")
    await get(client, edgecache, "/shoe/p")

    answer = await get(client, edgecache, "/shoe/p", headers={"If-None-Match": 'W/"v0", W/"v1"'})

    assert (answer.status, answer.body, answer.x_cache) == (304, b"", "HIT")
    assert {name: answer.headers.get(name) for name in ("ETag", "Cache-Control", "Expires", "Vary",
                                                        "Content-Location", "Last-Modified")} == {
        "ETag": '"v1"', "Cache-Control": "max-age=60", "Expires": LATER, "Vary": "Accept-Encoding",
        "Content-Location": "/shoe/p.html", "Last-Modified": MODIFIED}
    assert "Date" in answer.headers
    assert "X-Served-By" not in answer.headers
    assert origin.count("/shoe/p") == 1


async def test_if_modified_since_304_from_cache(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers=PAGE_HEADERS, body=b"shoe")
    await get(client, edgecache, "/shoe/p")

    not_modified = await get(client, edgecache, "/shoe/p", headers={"If-Modified-Since": MODIFIED})
    modified = await get(client, edgecache, "/shoe/p", headers={"If-Modified-Since": EARLIER})

    assert not_modified.status == 304
    assert (modified.status, modified.body) == (200, b"shoe")


async def test_if_none_match_precedence(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers=PAGE_HEADERS, body=b"shoe")
    await get(client, edgecache, "/shoe/p")

    answer = await get(client, edgecache, "/shoe/p", headers={"If-None-Match": '"v2"', "If-Modified-Since": LATER})

    assert (answer.status, answer.body) == (200, b"shoe")


async def test_miss_answers_client_condition(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers=PAGE_HEADERS, body=b"shoe")

    answer = await get(client, edgecache, "/shoe/p", headers={"If-None-Match": '"v1"'})

    assert (answer.status, answer.cache_status) == (304, "edgecache; fwd=uri-miss; stored")
    assert origin.validators("/shoe/p") == [(None, None)]


async def test_follower_without_condition_gets_200(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers=PAGE_HEADERS, body=b"shoe")
    origin.gate = asyncio.Event()

    leader = asyncio.create_task(get(client, edgecache, "/shoe/p", headers={"If-None-Match": '"v1"'}))
    await until(lambda: origin.count("/shoe/p") == 1)
    follower = asyncio.create_task(get(client, edgecache, "/shoe/p"))
    await until(lambda: edgecache.stats.coalesced == 1)
    origin.gate.set()
    conditional, plain = await leader, await follower

    assert (conditional.status, conditional.body) == (304, b"")
    assert (plain.status, plain.body) == (200, b"shoe")
    assert plain.cache_status == "edgecache; fwd=uri-miss; collapsed"
    assert origin.count("/shoe/p") == 1


async def test_no_condition_never_304_during_background_revalidation(
        origin, make_edgecache, client: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    origin.script("/shoe/p", headers={**PAGE_HEADERS, "Cache-Control": "max-age=10, stale-while-revalidate=60"},
                  body=b"shoe")
    edgecache = await make_edgecache(origin.url, clock=clock)
    await get(client, edgecache, "/shoe/p")
    clock.advance(20)
    origin.script("/shoe/p", status=304, headers={"ETag": '"v1"', "Cache-Control": "max-age=10"})
    origin.gate = asyncio.Event()

    during = await get(client, edgecache, "/shoe/p")
    origin.gate.set()
    await background_done(edgecache)
    after = await get(client, edgecache, "/shoe/p")

    assert (during.status, during.x_cache, during.body) == (200, "STALE", b"shoe")
    assert (after.status, after.x_cache, after.body) == (200, "HIT", b"shoe")
    assert origin.validators("/shoe/p") == [(None, None), ('"v1"', MODIFIED)]


async def test_origin_304_to_unconditional_request_is_an_error(origin, edgecache,
                                                               client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", status=304, headers={"ETag": '"v1"'})

    answer = await get(client, edgecache, "/shoe/p")

    assert (answer.status, answer.cache_status) == (502, "edgecache; fwd=uri-miss; detail=origin-invalid")


@pytest.mark.parametrize("field", [
    pytest.param(("If-Match", '"v1"'), id="9111-4.3.2-if-match-forwarded"),
    pytest.param(("If-Unmodified-Since", MODIFIED), id="9111-4.3.2-if-unmodified-since-forwarded"),
])
async def test_preconditions_for_origin(origin, edgecache, client: aiohttp.ClientSession,
                                        field: tuple[str, str]) -> None:
    origin.script("/shoe/p", headers=PAGE_HEADERS, body=b"shoe")
    await get(client, edgecache, "/shoe/p")
    origin.script("/shoe/p", status=412, body=b"")

    answer = await get(client, edgecache, "/shoe/p", headers=[field])

    assert (answer.status, answer.cache_status) == (412, "edgecache; fwd=bypass; detail=precondition")
    assert origin.requests[-1].headers[field[0]] == field[1]
