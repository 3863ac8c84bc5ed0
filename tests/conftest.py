"""Fixtures: a recording origin, edgecache in front of it, and a client, all on loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer

from edgecache.config import build_settings
from edgecache.server import Edgecache

from fault_origin import FaultOrigin
from origin_double import RecordingOrigin

EdgecacheFactory = Callable[..., Awaitable[Edgecache]]


@pytest.fixture(autouse=True)
def restore_edgecache_log_level() -> Iterator[None]:
    """Undo the level that a settings reload sets on the edgecache logger, for the next test.

    Without it, a reload in one test leaves edgecache.access at INFO, and a later test
    that counts access records also counts lines logged before its caplog.at_level block.
    """
    logger = logging.getLogger("edgecache")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
async def origin(aiohttp_server: AiohttpServer) -> RecordingOrigin:
    double = RecordingOrigin()
    server = await aiohttp_server(double.app(), host="127.0.0.1")
    double.url = str(server.make_url(""))  # type: ignore[attr-defined]
    double.server = server  # type: ignore[attr-defined]
    return double


@pytest.fixture
async def make_edgecache() -> AsyncIterator[EdgecacheFactory]:
    """Start edgecache instances on free loopback ports; stop them at the end of the test."""
    started: list[Edgecache] = []

    async def start(origin_url: str, raw: dict[str, Any] | None = None, **options: Any) -> Edgecache:
        raw = dict(raw or {})
        server = dict(raw.pop("server", {}))
        server.setdefault("listen", "127.0.0.1:0")
        server.setdefault("admin_listen", "127.0.0.1:0")
        origin_section = dict(raw.pop("origin", {}))
        origin_section["url"] = origin_url
        settings = build_settings({**raw, "server": server, "origin": origin_section}, environ={})
        edgecache = Edgecache(settings, **options)
        await edgecache.start()
        started.append(edgecache)
        return edgecache

    yield start
    for edgecache in started:
        await edgecache.stop()


@pytest.fixture
async def edgecache(origin: RecordingOrigin, make_edgecache: EdgecacheFactory) -> Edgecache:
    return await make_edgecache(origin.url)  # type: ignore[attr-defined]


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


def proxy_url(edgecache: Edgecache, path: str) -> str:
    return f"http://127.0.0.1:{edgecache.proxy_port}{path}"


def admin_url(edgecache: Edgecache, path: str) -> str:
    return f"http://127.0.0.1:{edgecache.admin_port}{path}"


@pytest.fixture
async def fault_origin() -> AsyncIterator[FaultOrigin]:
    """A raw loopback origin whose misbehaviour a test scripts per path."""
    server = FaultOrigin()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def edgecache_on_faults(fault_origin: FaultOrigin, make_edgecache: EdgecacheFactory) -> Edgecache:
    """Edgecache with default settings in front of the fault-injection origin."""
    return await make_edgecache(fault_origin.url)
