"""Invalidation by unsafe methods (RFC 9111 section 4.4): a table, then end to end."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from edgecache.unsafe import invalidated_paths
from edgecache.server import Edgecache

from origin_double import RecordingOrigin
from semantics_support import get

HOSTS = {"shop.example", "127.0.0.1:9000"}


@pytest.mark.parametrize(("target", "references", "expected"), [
    pytest.param("/cart?add=1", [], ["/cart"], id="9111-4.4-target-without-query"),
    pytest.param("/cart", ["/order/7"], ["/cart", "/order/7"], id="9111-4.4-location-path"),
    pytest.param("/a/b/cart", ["../order/7"], ["/a/b/cart", "/a/order/7"], id="9110-10.2.2-relative-reference"),
    pytest.param("/cart", ["http://shop.example/order/7?x"], ["/cart", "/order/7"], id="9111-4.4-same-host"),
    pytest.param("/cart", ["https://SHOP.example:443/o"], ["/cart", "/o"], id="9111-4.4-default-port-same-host"),
    pytest.param("/cart", ["http://127.0.0.1:9000/o"], ["/cart", "/o"], id="9111-4.4-host-with-port"),
    pytest.param("/cart", ["http://shop.example"], ["/cart", "/"], id="9111-4.4-host-without-path"),
    pytest.param("/cart", ["http://other.example/o"], ["/cart"], id="9111-4.4-other-host-not-invalidated"),
    pytest.param("/cart", ["//other.example/o"], ["/cart"], id="9111-4.4-network-path-other-host"),
    pytest.param("/cart", ["http://127.0.0.1:9001/o"], ["/cart"], id="9111-4.4-other-port-not-invalidated"),
    pytest.param("/cart", ["mailto:a@shop.example", "http://[::1"], ["/cart"], id="9111-4.4-unusable-references"),
])
def test_invalidated_paths(target: str, references: list[str], expected: list[str]) -> None:
    assert invalidated_paths(target, references, hosts=HOSTS) == expected


# End to end.

PATHS = ("/cart", "/order/7", "/cart/7", "/other")


def answer_unsafe(origin: RecordingOrigin, status: int, headers: dict[str, str]) -> None:
    """Script /cart: GET gives a cacheable page, any other method `status` with `headers`."""

    async def cart(request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.Response(text="cart", headers={"Cache-Control": "max-age=60"})
        return web.Response(status=status, headers=headers)

    origin.handler("/cart", cart)


async def x_cache(client: aiohttp.ClientSession, edgecache: Edgecache, paths: tuple[str, ...]) -> dict[str, str]:
    return {path: (await get(client, edgecache, path)).x_cache for path in paths}


@pytest.mark.parametrize("method", [
    pytest.param(method, id=f"9111-4.4-{method.lower()}")
    for method in ("POST", "PUT", "DELETE", "PATCH", "PROPPATCH")])
async def test_unsafe_method_invalidates(origin, edgecache, client: aiohttp.ClientSession, method: str) -> None:
    answer_unsafe(origin, 201, {"Location": "/order/7",
                                "Content-Location": f"http://{edgecache.settings.site_host}/cart/7"})
    await x_cache(client, edgecache, PATHS)

    answer = await get(client, edgecache, "/cart", method=method, data=b"x")

    assert answer.cache_status == "edgecache; fwd=bypass; detail=method"
    assert await x_cache(client, edgecache, PATHS) == {"/cart": "MISS", "/order/7": "MISS", "/cart/7": "MISS",
                                                       "/other": "HIT"}


async def test_other_site_location_kept(origin, edgecache, client: aiohttp.ClientSession) -> None:
    answer_unsafe(origin, 303, {"Location": "http://elsewhere.example/order/7"})
    await x_cache(client, edgecache, ("/cart", "/order/7"))

    await get(client, edgecache, "/cart", method="POST", data=b"x")

    assert await x_cache(client, edgecache, ("/cart", "/order/7")) == {"/cart": "MISS", "/order/7": "HIT"}


@pytest.mark.parametrize("status", [pytest.param(400, id="9111-4.4-4xx-no-invalidation"),
                                    pytest.param(500, id="9111-4.4-5xx-no-invalidation")])
async def test_error_answer_does_not_invalidate(origin, edgecache, client: aiohttp.ClientSession,
                                                status: int) -> None:
    answer_unsafe(origin, status, {})
    await get(client, edgecache, "/cart")

    await get(client, edgecache, "/cart", method="POST", data=b"x")

    assert (await get(client, edgecache, "/cart")).x_cache == "HIT"


async def test_safe_method_does_not_invalidate(origin, edgecache, client: aiohttp.ClientSession) -> None:
    answer_unsafe(origin, 200, {})
    await get(client, edgecache, "/cart")

    await get(client, edgecache, "/cart", method="OPTIONS")

    assert (await get(client, edgecache, "/cart")).x_cache == "HIT"
