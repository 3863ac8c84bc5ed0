"""Which origin responses are stored, and how rules set their lifetime."""

from __future__ import annotations

import pytest

from helpers import FakeClock, raw_request

PRODUCT_RULE = {"name": "product", "match": "/*/p", "ttl": 30}

NOT_STORABLE = [
    ("no-store", 200, {"Cache-Control": "no-store, max-age=60"}),
    ("private", 200, {"Cache-Control": "private, max-age=60"}),
    ("set-cookie", 200, {"Cache-Control": "max-age=60", "Set-Cookie": "session=1"}),
    ("vary-star", 200, {"Cache-Control": "max-age=60", "Vary": "Accept-Encoding, *"}),
    ("partial", 206, {"Cache-Control": "max-age=60", "Content-Range": "bytes 0-4/10"}),
    ("no-freshness", 200, {}),
    ("status", 500, {"Cache-Control": "max-age=60"}),
]


@pytest.mark.parametrize(("reason", "status", "headers"), NOT_STORABLE, ids=[case[0] for case in NOT_STORABLE])
async def test_response_not_stored(origin, edgecache, reason: str, status: int, headers: dict[str, str]) -> None:
    origin.script("/shoe/p", status=status, headers=headers, body=b"hello")
    first = await raw_request(edgecache.proxy_port, "/shoe/p")
    second = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert first.status == status
    assert first.body == b"hello"
    assert first.headers["Cache-Status"] == f"edgecache; fwd=uri-miss; detail={reason}"
    assert second.headers["X-Cache"] == "MISS"
    assert origin.count() == 2
    assert len(edgecache.store) == 0


async def test_set_cookie_reaches_client(origin, edgecache) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Set-Cookie": "session=1"})
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["Set-Cookie"] == "session=1"


async def test_authorization_not_stored(origin, edgecache) -> None:
    response = await raw_request(edgecache.proxy_port, "/shoe/p", headers={"Authorization": "Bearer a"})
    second = await raw_request(edgecache.proxy_port, "/shoe/p", headers={"Authorization": "Bearer a"})

    assert response.headers["Cache-Status"] == "edgecache; fwd=uri-miss; detail=authorization"
    assert second.headers["X-Cache"] == "MISS"
    assert len(edgecache.store) == 0


@pytest.mark.parametrize("cache_control", ["public, max-age=60", "s-maxage=60", "max-age=60, must-revalidate"])
async def test_authorization_stored_when_allowed(origin, edgecache, cache_control: str) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": cache_control})
    await raw_request(edgecache.proxy_port, "/shoe/p", headers={"Authorization": "Bearer a"})
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["X-Cache"] == "HIT"
    assert origin.count() == 1


async def test_s_maxage_before_max_age(origin, make_edgecache) -> None:
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, clock=clock)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10, s-maxage=100"})
    await raw_request(edgecache.proxy_port, "/shoe/p")
    clock.advance(50)
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["Cache-Status"] == "edgecache; hit; ttl=50"


async def test_max_age_before_expires(origin, make_edgecache) -> None:
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, clock=clock)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=100",
                                      "Expires": "Thu, 01 Jan 1970 00:00:00 GMT"})
    await raw_request(edgecache.proxy_port, "/shoe/p")
    clock.advance(50)
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["X-Cache"] == "HIT"


async def test_invalid_expires_is_stale(origin, edgecache) -> None:
    origin.script("/shoe/p", headers={"Expires": "soon"})
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["Cache-Status"] == "edgecache; fwd=uri-miss; detail=no-freshness"


async def test_rule_ttl_without_freshness(origin, make_edgecache) -> None:
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, {"rules": [PRODUCT_RULE]}, clock=clock)
    origin.script("/shoe/p", body=b"page")
    await raw_request(edgecache.proxy_port, "/shoe/p")
    clock.advance(29)
    hit = await raw_request(edgecache.proxy_port, "/shoe/p")
    clock.advance(2)
    expired = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert hit.headers["Cache-Status"] == "edgecache; hit; ttl=1"
    assert expired.headers["X-Cache"] == "MISS"
    assert origin.count() == 2


async def test_rule_glob_misses_other_paths(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"rules": [PRODUCT_RULE]})
    origin.script("/c/shoes", body=b"page")
    response = await raw_request(edgecache.proxy_port, "/c/shoes")

    assert response.headers["Cache-Status"] == "edgecache; fwd=uri-miss; detail=no-freshness"
    assert len(edgecache.store) == 0


async def test_rule_keeps_origin_max_age(origin, make_edgecache) -> None:
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, {"rules": [PRODUCT_RULE]}, clock=clock)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=5"})
    await raw_request(edgecache.proxy_port, "/shoe/p")
    clock.advance(10)
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["X-Cache"] == "MISS"


async def test_override_origin_applies_ttl(origin, make_edgecache) -> None:
    clock = FakeClock()
    rule = {**PRODUCT_RULE, "override_origin": True}
    edgecache = await make_edgecache(origin.url, {"rules": [rule]}, clock=clock)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=5, no-cache"})
    await raw_request(edgecache.proxy_port, "/shoe/p")
    clock.advance(10)
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["Cache-Status"] == "edgecache; hit; ttl=20"
    assert origin.count() == 1


@pytest.mark.parametrize(("reason", "headers"), [
    ("no-store", {"Cache-Control": "no-store"}),
    ("private", {"Cache-Control": "private"}),
    ("set-cookie", {"Set-Cookie": "session=1"}),
])
async def test_override_origin_loses(origin, make_edgecache, reason: str, headers: dict[str, str]) -> None:
    rule = {**PRODUCT_RULE, "override_origin": True}
    edgecache = await make_edgecache(origin.url, {"rules": [rule]})
    origin.script("/shoe/p", headers=headers)
    response = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert response.headers["Cache-Status"] == f"edgecache; fwd=uri-miss; detail={reason}"
    assert len(edgecache.store) == 0


async def test_rule_name_in_metrics_label(origin, make_edgecache) -> None:
    edgecache = await make_edgecache(origin.url, {"rules": [PRODUCT_RULE]})
    await raw_request(edgecache.proxy_port, "/shoe/p")
    await raw_request(edgecache.proxy_port, "/shoe/p")
    await raw_request(edgecache.proxy_port, "/about")

    assert edgecache.stats.requests == {("miss", "product"): 1, ("hit", "product"): 1, ("miss", "default"): 1}
