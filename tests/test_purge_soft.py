"""Soft purges through the real proxy: one coalesced background refresh, or a revalidation."""

from __future__ import annotations

import asyncio

from aiohttp import web

from conftest import admin_url, proxy_url
from inventory_pages import TOKEN, Clock, bearer

# Without a default stale-while-revalidate window, a page without the directive may not be served stale.
NO_DEFAULT_STALE = {"admin": {"token": TOKEN}, "cache": {"stale_while_revalidate": 0}}


class VersionedOrigin:
    """A page whose body and ETag the test sets. While `gate` is set to an unset Event, responses wait for it."""

    def __init__(self, cache_control: str) -> None:
        self.cache_control = cache_control
        self.version = 1
        self.validators: list[str | None] = []
        self.arrived = asyncio.Event()
        self.gate: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.validators.append(request.headers.get("If-None-Match"))
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        etag = f'"v{self.version}"'
        headers = {"Cache-Control": self.cache_control, "ETag": etag}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=f"version {self.version}".encode(), headers=headers)


async def get(client, edgecache, path: str) -> tuple[str, str, bytes]:
    async with client.get(proxy_url(edgecache, path)) as response:
        return response.headers["X-Cache"], response.headers["Cache-Status"], await response.read()


async def soft_purge(client, edgecache, path: str) -> dict:
    async with client.post(admin_url(edgecache, "/purge"), json={"paths": [path], "soft": True},
                           headers=bearer()) as response:
        assert response.status == 200
        return await response.json()


async def test_soft_purge_one_refresh(origin, make_edgecache, client) -> None:
    page = VersionedOrigin("max-age=60, stale-while-revalidate=30")
    origin.handler("/a/p", page.handle)
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}}, clock=Clock())
    assert (await get(client, edgecache, "/a/p"))[0] == "MISS"
    page.version = 2
    page.arrived.clear()
    page.gate = asyncio.Event()
    assert await soft_purge(client, edgecache, "/a/p") == {"purged": 1, "soft": True}

    views = await asyncio.gather(*(get(client, edgecache, "/a/p") for _ in range(5)))
    assert [(outcome, body) for outcome, _, body in views] == [("STALE", b"version 1")] * 5
    await page.arrived.wait()
    assert page.validators == [None, '"v1"']
    page.gate.set()
    await edgecache.proxy.close()

    outcome, _, body = await get(client, edgecache, "/a/p")
    assert (outcome, body) == ("HIT", b"version 2")
    assert page.validators == [None, '"v1"']


async def test_soft_purge_revalidates_without_swr(origin, make_edgecache, client) -> None:
    page = VersionedOrigin("max-age=60")
    origin.handler("/a/p", page.handle)
    edgecache = await make_edgecache(origin.url, NO_DEFAULT_STALE, clock=Clock())
    assert (await get(client, edgecache, "/a/p"))[0] == "MISS"
    assert await soft_purge(client, edgecache, "/a/p") == {"purged": 1, "soft": True}

    outcome, cache_status, body = await get(client, edgecache, "/a/p")
    assert page.validators == [None, '"v1"']
    assert outcome == "HIT"
    assert "fwd-status=304" in cache_status
    assert body == b"version 1"
    assert (await get(client, edgecache, "/a/p"))[0] == "HIT"
    assert len(page.validators) == 2


async def test_soft_purge_changed_page_refetched(origin, make_edgecache, client) -> None:
    page = VersionedOrigin("max-age=60")
    origin.handler("/a/p", page.handle)
    edgecache = await make_edgecache(origin.url, NO_DEFAULT_STALE, clock=Clock())
    await get(client, edgecache, "/a/p")
    page.version = 2
    await soft_purge(client, edgecache, "/a/p")
    outcome, _, body = await get(client, edgecache, "/a/p")
    assert page.validators == [None, '"v1"']
    assert (outcome, body) == ("MISS", b"version 2")
