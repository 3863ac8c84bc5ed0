"""Helpers shared by the test_semantics_* modules: an injected clock and one-call requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from edgecache.httpdate import format_http_date
from edgecache.server import Edgecache

from conftest import proxy_url

# Far from the real time on purpose: a Date that aiohttp adds on its own is then in the
# future of the clock, so it never adds apparent age.
START = 1_700_000_000.0


class FakeClock:
    """A clock that moves only when a test moves it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def http_date(self, offset: float = 0.0) -> str:
        return format_http_date(self.now + offset)


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def x_cache(self) -> str:
        return self.headers.get("X-Cache", "")

    @property
    def cache_status(self) -> str:
        return self.headers.get("Cache-Status", "")


async def get(client: aiohttp.ClientSession, edgecache: Edgecache, path: str, *, method: str = "GET",
              headers: dict[str, str] | list[tuple[str, str]] | None = None, data: Any = None) -> Answer:
    async with client.request(method, proxy_url(edgecache, path), headers=headers, data=data,
                              allow_redirects=False) as response:
        body = await response.read()
        return Answer(response.status, response.headers, body)


async def background_done(edgecache: Edgecache) -> None:
    """Wait until every background refresh has finished."""
    await asyncio.gather(*edgecache.proxy._background, return_exceptions=True)


async def until(predicate: Callable[[], bool], *, timeout: float = 5.0) -> None:
    """Yield to the event loop until `predicate()` holds; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0)
