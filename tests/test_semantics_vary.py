"""Variants from Vary (RFC 9111 section 4.1): tables, then end to end."""

from __future__ import annotations

import aiohttp
import pytest
from multidict import CIMultiDict

from edgecache.inventory import InventoryEvent
from edgecache.vary import accept_encoding_bucket, variant_key, variant_request_fields, vary_names

from conftest import admin_url
from inventory_pages import TOKEN, html_headers, product_page
from semantics_support import FakeClock, get


@pytest.mark.parametrize(("value", "bucket"), [
    pytest.param("gzip, deflate, br, zstd", "br", id="edgecache-ae-chrome"),
    pytest.param("gzip, deflate, br", "br", id="edgecache-ae-firefox"),
    pytest.param("br;q=1.0, gzip;q=0.8, *;q=0.1", "br", id="edgecache-ae-weighted"),
    pytest.param("gzip, deflate", "gzip", id="edgecache-ae-gzip"),
    pytest.param("x-gzip", "gzip", id="9110-12.5.3-x-gzip"),
    pytest.param("br", "identity", id="edgecache-ae-br-without-gzip"),
    pytest.param("gzip;q=0, br", "identity", id="9110-12.5.3-q-zero-not-acceptable"),
    pytest.param("*", "br", id="9110-12.5.3-star"),
    pytest.param("*;q=0, gzip", "gzip", id="9110-12.5.3-star-excluded"),
    pytest.param("identity", "identity", id="edgecache-ae-identity"),
    pytest.param("", "identity", id="edgecache-ae-empty"),
    pytest.param(None, "identity", id="edgecache-ae-absent"),
    pytest.param("gzip;q=abc", "gzip", id="edgecache-ae-invalid-q-lenient"),
])
def test_accept_encoding_bucket(value: str | None, bucket: str) -> None:
    assert accept_encoding_bucket(value) == bucket


@pytest.mark.parametrize(("names", "request_fields", "expected"), [
    pytest.param((), [("Accept-Language", "de")], "", id="9111-4.1-no-vary"),
    pytest.param(("accept-language",), [("Accept-Language", "de-DE,  en;q=0.5")],
                 "accept-language=de-de, en;q=0.5", id="9111-4.1-whitespace-and-case-normalized"),
    pytest.param(("accept-language",), [], "accept-language=", id="9111-4.1-absent-field"),
    pytest.param(("x-device",), [("X-Device", "a"), ("X-Device", "b")], "x-device=a, b",
                 id="9111-4.1-field-lines-combined"),
    pytest.param(("accept-encoding", "x-device"), [("Accept-Encoding", "gzip, br"), ("X-Device", " m ")],
                 "accept-encoding=br\x1fx-device=m", id="9111-4.1-several-names"),
])
def test_variant_key(names: tuple[str, ...], request_fields: list[tuple[str, str]], expected: str) -> None:
    assert variant_key(names, CIMultiDict(request_fields)) == expected


def test_vary_names_sorted_lowercase() -> None:
    assert vary_names(["X-Device, Accept-Encoding", "accept-encoding"]) == ("accept-encoding", "x-device")


# End to end.

async def test_variants_per_language(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Vary": "Accept-Language"})

    await get(client, edgecache, "/shoe/p", headers={"Accept-Language": "de"})
    await get(client, edgecache, "/shoe/p", headers={"Accept-Language": "fr"})
    german = await get(client, edgecache, "/shoe/p", headers={"Accept-Language": "DE"})
    french = await get(client, edgecache, "/shoe/p", headers={"Accept-Language": "fr"})

    assert (german.x_cache, french.x_cache) == ("HIT", "HIT")
    assert origin.count("/shoe/p") == 2
    assert len(edgecache.store) == 2


@pytest.mark.parametrize(("variant", "fields"), [
    pytest.param("", {}, id="edgecache-no-vary"),
    pytest.param("accept-encoding=br", {"accept-encoding": "br, gzip"}, id="edgecache-bucket-value-br"),
    pytest.param("accept-encoding=identity", {"accept-encoding": "identity"}, id="edgecache-bucket-value-identity"),
    pytest.param("accept-encoding=gzip\x1faccept-language=de-de", {"accept-encoding": "gzip", "accept-language": "de-de"},
                 id="9111-4.1-two-fields"),
    pytest.param("accept-language=\x1fx-device=mobile", {"x-device": "mobile"}, id="9111-4.1-absent-field-left-out"),
])
def test_variant_request_fields(variant: str, fields: dict[str, str]) -> None:
    assert variant_request_fields(variant) == fields


@pytest.mark.parametrize("accept_encoding", ["gzip, deflate, br", "gzip", "identity"])
def test_variant_request_fields_round_trip(accept_encoding: str) -> None:
    variant = variant_key(("accept-encoding",), {"Accept-Encoding": accept_encoding})

    assert variant_key(("accept-encoding",), variant_request_fields(variant)) == variant


async def test_refetch_keeps_encoding_variant(origin, make_edgecache, client: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    origin.script("/a/p", headers=html_headers(Vary="Accept-Encoding"), body=product_page("A", "OutOfStock"))
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}}, clock=clock)
    await get(client, edgecache, "/a/p", headers={"Accept-Encoding": "gzip, deflate, br"})
    origin.script("/a/p", headers=html_headers(Vary="Accept-Encoding"), body=product_page("A", "InStock"))
    clock.advance(1)

    edgecache.apply_inventory_events([InventoryEvent("A", state="in_stock", version=2)])
    clock.advance(1)
    await edgecache.refetcher.close()
    answer = await get(client, edgecache, "/a/p", headers={"Accept-Encoding": "br, gzip"})

    assert [request.headers["Accept-Encoding"] for request in origin.requests] == ["br, gzip", "br, gzip"]
    assert (answer.x_cache, answer.body) == ("HIT", product_page("A", "InStock"))


async def test_browsers_share_an_encoding_bucket(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Vary": "Accept-Encoding"})

    first = await get(client, edgecache, "/shoe/p", headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    second = await get(client, edgecache, "/shoe/p", headers={"Accept-Encoding": "br;q=1.0, gzip;q=0.8"})
    plain = await get(client, edgecache, "/shoe/p", headers={"Accept-Encoding": "identity"})

    assert (first.x_cache, second.x_cache, plain.x_cache) == ("MISS", "HIT", "MISS")
    assert [r.headers["Accept-Encoding"] for r in origin.requests] == ["br, gzip", "identity"]


async def test_vary_star_never_stored(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Vary": "*"})

    first = await get(client, edgecache, "/shoe/p")
    await get(client, edgecache, "/shoe/p")

    assert first.cache_status == "edgecache; fwd=uri-miss; detail=vary-star"
    assert origin.count("/shoe/p") == 2


async def test_variant_cap_in_stats(origin, make_edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Vary": "Accept-Language"})
    edgecache = await make_edgecache(origin.url, {"cache": {"max_variants": 2}})

    for language in ("de", "fr", "it"):
        await get(client, edgecache, "/shoe/p", headers={"Accept-Language": language})
    oldest = await get(client, edgecache, "/shoe/p", headers={"Accept-Language": "de"})
    async with client.get(admin_url(edgecache, "/stats")) as response:
        cache = (await response.json())["cache"]

    assert oldest.x_cache == "MISS"
    assert (cache["max_variants"], cache["variant_evictions"], cache["entries"]) == (2, 2, 2)


async def test_vary_change_drops_old_variants(origin, make_edgecache, client: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    edgecache = await make_edgecache(origin.url, {"cache": {"stale_while_revalidate": 0}}, clock=clock)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10", "Vary": "Accept-Language"})
    await get(client, edgecache, "/shoe/p", headers={"Accept-Language": "de"})
    await get(client, edgecache, "/shoe/p", headers={"Accept-Language": "fr"})
    clock.advance(20)
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=10", "Vary": "X-Device"})

    await get(client, edgecache, "/shoe/p", headers={"Accept-Language": "de", "X-Device": "m"})
    hit = await get(client, edgecache, "/shoe/p", headers={"Accept-Language": "it", "X-Device": "m"})

    assert hit.x_cache == "HIT"
    assert len(edgecache.store) == 1
