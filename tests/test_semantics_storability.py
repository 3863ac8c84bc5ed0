"""Whether a response is stored (RFC 9111 section 3): tables, then end to end."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from edgecache.config import CacheSettings, Rule
from edgecache.freshness import compute_freshness
from edgecache.outcomes import Reason
from edgecache.storability import headers_to_store, refuse_for_freshness, refuse_to_store, unstored_fields

from semantics_support import FakeClock, get

NEGATIVE = Rule(name="neg", match="*", ttl=10, statuses=(404, 410))
ERRORS = Rule(name="err", match="*", ttl=3, statuses=(503,))
STATIC = Rule(name="static", match="/static/*", ttl=60, content_types=("text/css",))


def refuse(status: int = 200, *, method: str = "GET", rule: Rule | None = None, authorization: bool = False,
           **fields: str) -> Reason | None:
    """Return refuse_to_store's answer for a response with `fields` (underscores for dashes)."""
    response_headers = CIMultiDict((name.replace("_", "-"), value) for name, value in fields.items())
    return refuse_to_store(method=method, status=status, headers=response_headers, rule=rule,
                           request_has_authorization=authorization)


@pytest.mark.parametrize(("kwargs", "expected"), [
    pytest.param({"cache_control": "max-age=60"}, None, id="9111-3-storable"),
    pytest.param({"method": "HEAD"}, Reason.METHOD, id="9111-3-method-not-get"),
    pytest.param({"status": 206}, Reason.PARTIAL, id="9111-3.3-206-never-stored"),
    pytest.param({"status": 500, "cache_control": "max-age=60"}, Reason.STATUS, id="edgecache-500-not-by-default"),
    pytest.param({"status": 501, "cache_control": "max-age=60"}, Reason.STATUS, id="edgecache-501-not-by-default"),
    pytest.param({"status": 503, "rule": ERRORS}, None, id="edgecache-503-stored-by-rule"),
    pytest.param({"status": 404}, None, id="9110-15.1-404-understood"),
    pytest.param({"status": 418}, Reason.STATUS, id="9111-3-unknown-status"),
    pytest.param({"cache_control": "no-store, max-age=60"}, Reason.NO_STORE, id="9111-5.2.2.5-no-store"),
    pytest.param({"cache_control": "no-store, must-understand"}, None, id="9111-5.2.2.3-must-understand"),
    pytest.param({"status": 418, "cache_control": "no-store, must-understand"}, Reason.STATUS,
                 id="9111-5.2.2.3-must-understand-unknown-status"),
    pytest.param({"cache_control": "private, max-age=60"}, Reason.PRIVATE, id="9111-5.2.2.7-private"),
    pytest.param({"cache_control": 'private="x-user", max-age=60'}, None, id="9111-5.2.2.7-qualified-private"),
    pytest.param({"set_cookie": "a=1"}, Reason.SET_COOKIE, id="edgecache-set-cookie"),
    pytest.param({"set_cookie": "a=1", "cache_control": 'no-cache="Set-Cookie", max-age=60'}, None,
                 id="9111-5.2.2.4-set-cookie-named-by-no-cache"),
    pytest.param({"set_cookie": "a=1", "cache_control": 'private="set-cookie", max-age=60'}, None,
                 id="9111-5.2.2.7-set-cookie-named-by-private"),
    pytest.param({"vary": "Accept-Encoding, *"}, Reason.VARY_STAR, id="9111-4.1-vary-star"),
    pytest.param({"authorization": True, "cache_control": "max-age=60"}, Reason.AUTHORIZATION,
                 id="9111-3.5-authorization"),
    pytest.param({"authorization": True, "cache_control": "public, max-age=60"}, None,
                 id="9111-3.5-authorization-public"),
    pytest.param({"authorization": True, "cache_control": "s-maxage=60"}, None, id="9111-3.5-authorization-s-maxage"),
    pytest.param({"authorization": True, "cache_control": "must-revalidate"}, None,
                 id="9111-3.5-authorization-must-revalidate"),
    pytest.param({"rule": STATIC, "content_type": "text/html"}, Reason.CONTENT_TYPE,
                 id="edgecache-content-type-guard"),
    pytest.param({"rule": STATIC, "content_type": "text/css; charset=utf-8"}, None,
                 id="edgecache-content-type-allowed"),
    pytest.param({"cache_control": "no-store, private", "set_cookie": "a=1"}, Reason.NO_STORE,
                 id="edgecache-first-reason-only"),
])
def test_refuse_to_store(kwargs: dict[str, Any], expected: Reason | None) -> None:
    assert refuse(**kwargs) is expected


@pytest.mark.parametrize(("fields", "expected"), [
    pytest.param({"cache-control": "max-age=60"}, None, id="9111-3-explicit-lifetime"),
    pytest.param({}, Reason.NO_FRESHNESS, id="9111-3-no-lifetime-not-stored"),
    pytest.param({"cache-control": "no-cache", "etag": '"v1"'}, None, id="9111-5.2.2.4-no-cache-with-validator"),
    pytest.param({"cache-control": "no-cache"}, Reason.NO_FRESHNESS, id="9111-5.2.2.4-no-cache-without-validator"),
    pytest.param({"cache-control": "max-age=0", "etag": '"v1"'}, Reason.NO_FRESHNESS,
                 id="edgecache-max-age-zero-not-stored"),
])
def test_refuse_for_freshness(fields: dict[str, str], expected: Reason | None) -> None:
    response_headers = CIMultiDict(fields)
    result = compute_freshness(200, response_headers, request_time=0.0, response_time=0.0, rule=None,
                               settings=CacheSettings())

    assert refuse_for_freshness(result, response_headers) is expected


def test_qualified_fields_dropped_from_stored_headers() -> None:
    response_headers = CIMultiDict([
        ("Cache-Control", 'max-age=60, no-cache="Set-Cookie", private="X-User"'), ("Set-Cookie", "s=1"),
        ("X-User", "ann"), ("ETag", '"v1"'), ("Age", "3"), ("Connection", "x-hop"), ("X-Hop", "1"),
        ("Surrogate-Key", "sku:1"),
    ])

    stored = headers_to_store(response_headers, tag_header="Surrogate-Key")

    assert list(stored.items()) == [("Cache-Control", 'max-age=60, no-cache="Set-Cookie", private="X-User"'),
                                    ("ETag", '"v1"')]
    assert unstored_fields(response_headers) == [("Set-Cookie", "s=1"), ("X-User", "ann")]


# End to end.

@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_404_cached_by_rule(origin, make_edgecache, client: aiohttp.ClientSession, clock: FakeClock) -> None:
    origin.script("/gone/p", status=404, body=b"no such product")
    edgecache = await make_edgecache(origin.url, {"rules": [
        {"name": "product", "match": "/*/p", "ttl": 10, "statuses": [404, 410]}]}, clock=clock)

    first = await get(client, edgecache, "/gone/p")
    second = await get(client, edgecache, "/gone/p")
    clock.advance(11)
    third = await get(client, edgecache, "/gone/p")

    assert (first.status, first.cache_status) == (404, "edgecache; fwd=uri-miss; stored")
    assert (second.status, second.cache_status, second.body) == (404, "edgecache; hit; ttl=10", b"no such product")
    assert third.x_cache == "MISS"
    assert origin.count("/gone/p") == 2


async def test_404_not_cached_without_rule(origin, make_edgecache, client: aiohttp.ClientSession,
                                           clock: FakeClock) -> None:
    origin.script("/gone/p", status=404, body=b"no such product")
    edgecache = await make_edgecache(origin.url, {"rules": [{"name": "product", "match": "/*/p", "ttl": 10}]},
                                     clock=clock)

    first = await get(client, edgecache, "/gone/p")
    await get(client, edgecache, "/gone/p")

    assert (first.status, first.cache_status) == (404, "edgecache; fwd=uri-miss; detail=no-freshness")
    assert origin.count("/gone/p") == 2


@pytest.mark.parametrize("status", [pytest.param(status, id=f"edgecache-{status}-never-stored")
                                    for status in (500, 501, 502, 503, 504)])
async def test_5xx_not_stored(origin, make_edgecache, client: aiohttp.ClientSession, status: int) -> None:
    origin.script("/shoe/p", status=status, headers={"Cache-Control": "max-age=60"}, body=b"broken")
    edgecache = await make_edgecache(origin.url)

    first = await get(client, edgecache, "/shoe/p")
    await get(client, edgecache, "/shoe/p")

    assert (first.status, first.cache_status) == (status, "edgecache; fwd=uri-miss; detail=status")
    assert origin.count("/shoe/p") == 2


async def test_503_stored_by_rule(origin, make_edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", status=503, body=b"maintenance")
    edgecache = await make_edgecache(origin.url, {"rules": [
        {"name": "product", "match": "/*/p", "ttl": 5, "statuses": [503]}]})

    await get(client, edgecache, "/shoe/p")
    second = await get(client, edgecache, "/shoe/p")

    assert (second.status, second.x_cache, second.body) == (503, "HIT", b"maintenance")
    assert origin.count("/shoe/p") == 1


async def test_qualified_private_set_cookie(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": 'max-age=60, private="Set-Cookie"',
                                      "Set-Cookie": "visitor=42"}, body=b"shoe")

    first = await get(client, edgecache, "/shoe/p")
    second = await get(client, edgecache, "/shoe/p")

    assert first.headers.getall("Set-Cookie") == ["visitor=42"]
    assert first.cache_status == "edgecache; fwd=uri-miss; stored"
    assert "Set-Cookie" not in second.headers
    assert (second.x_cache, second.body) == ("HIT", b"shoe")
    assert origin.count("/shoe/p") == 1


async def test_set_cookie_not_stored(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Set-Cookie": "visitor=42"})

    first = await get(client, edgecache, "/shoe/p")
    second = await get(client, edgecache, "/shoe/p")

    assert first.cache_status == second.cache_status == "edgecache; fwd=uri-miss; detail=set-cookie"
    assert second.headers["Set-Cookie"] == "visitor=42"
    assert origin.count("/shoe/p") == 2


async def test_must_understand_stores(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60, no-store, must-understand"})

    await get(client, edgecache, "/shoe/p")
    second = await get(client, edgecache, "/shoe/p")

    assert second.x_cache == "HIT"
    assert origin.count("/shoe/p") == 1


async def test_invalid_date_replaced(origin, make_edgecache, client: aiohttp.ClientSession,
                                     clock: FakeClock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Date": "yesterday"})
    edgecache = await make_edgecache(origin.url, clock=clock)
    stored_at = clock.http_date()

    await get(client, edgecache, "/shoe/p")
    clock.advance(7)
    hit = await get(client, edgecache, "/shoe/p")

    assert (hit.headers["Date"], hit.headers["Age"], hit.x_cache) == (stored_at, "7", "HIT")
