"""Checks shared by the hardening tests: edgecache is healthy and leaves nothing open."""

from __future__ import annotations

import asyncio

import aiohttp

from edgecache.server import Edgecache

from conftest import admin_url, proxy_url


class FakeClock:
    """A settable clock in epoch seconds."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def assert_healthy(edgecache: Edgecache, client: aiohttp.ClientSession, path: str = "/after-fault") -> None:
    """Check /health, a normal request through the proxy, and that nothing was left in flight."""
    async with client.get(admin_url(edgecache, "/health")) as health:
        assert health.status == 200
    async with client.get(proxy_url(edgecache, path)) as response:
        assert response.status == 200
        assert await response.read() == f"page {path}".encode()
    await asyncio.sleep(0)
    assert edgecache.origin.in_use == 0
    assert len(edgecache.proxy.coalescer) == 0
    assert len(edgecache.proxy.forwarder.bypass_flights) == 0
    assert not edgecache.proxy._background
    assert edgecache_tasks() == []


def edgecache_tasks() -> list[str]:
    """Return the names of per-request tasks whose top coroutine is edgecache's own code.

    Long-lived service tasks, named "edgecache-..." by the server, are left out.
    """
    names = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if task.get_name().startswith("edgecache-"):
            continue
        if code is not None and "/edgecache/" in code.co_filename:
            names.append(code.co_qualname)
    return names


async def fetch(client: aiohttp.ClientSession, url: str, **kwargs: object) -> tuple[int, bytes, dict[str, str]]:
    async with client.get(url, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.read(), dict(response.headers)
