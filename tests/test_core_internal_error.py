"""A bug inside the request handler gives a counted, logged 500, and the next request is served."""

from __future__ import annotations

import logging
import re

import aiohttp
import pytest

from conftest import admin_url
from edgecache.proxy import Proxy
from helpers import raw_request


async def test_handler_bug_gives_counted_500(origin, make_edgecache, client: aiohttp.ClientSession,
                                             monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    # No loopback server can make the handler itself fail, so one method is replaced.
    edgecache = await make_edgecache(origin.url)
    lookup = Proxy._lookup

    async def broken_lookup(self, request, context):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(Proxy, "_lookup", broken_lookup)
    with caplog.at_level(logging.ERROR, logger="edgecache"):
        failed = await raw_request(edgecache.proxy_port, "/shoe/p")
    monkeypatch.setattr(Proxy, "_lookup", lookup)
    served = await raw_request(edgecache.proxy_port, "/shoe/p")

    assert failed.status == 500
    assert failed.body == b"internal error\n"
    assert failed.headers["Cache-Status"] == "edgecache; detail=internal-error"
    assert failed.headers["X-Cache"] == "MISS"
    assert [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR] == [
        "unexpected error serving GET /shoe/p"]
    assert served.status == 200
    async with client.get(admin_url(edgecache, "/stats")) as response:
        assert (await response.json())["requests"]["error"] == 1


async def test_handler_bug_reason_everywhere(origin, make_edgecache, client: aiohttp.ClientSession,
                                             monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """The reason table in test_semantics_explain drives a real origin, which cannot make the handler fail."""
    edgecache = await make_edgecache(origin.url)

    async def broken_lookup(self, request, context):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(Proxy, "_lookup", broken_lookup)
    caplog.set_level(logging.INFO, logger="edgecache.access")
    failed = await raw_request(edgecache.proxy_port, "/shoe/p")
    async with client.get(admin_url(edgecache, "/metrics")) as response:
        metrics = await response.text()

    assert failed.headers["Cache-Status"] == "edgecache; detail=internal-error"
    [record] = [record for record in caplog.records if record.name == "edgecache.access"]
    assert getattr(record, "reason") == "internal-error"
    assert re.findall(r"reason=(\S+)", record.getMessage()) == ["internal-error"]
    assert re.findall(r'^edgecache_cache_skips_total\{reason="([^"]+)"\} 1\.0$', metrics, re.M) == [
        "internal-error"]
