"""Access log formats and rate-limited repeated errors."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from edgecache.logthrottle import ThrottledLogger

from conftest import proxy_url


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_throttle_logs_first_message(caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLogger(logging.getLogger("edgecache.test"), interval=60, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="edgecache.test"):
        assert throttled.log(logging.WARNING, "origin-timeout", "fetch %s failed", "/a") is True
    assert [record.getMessage() for record in caplog.records] == ["fetch /a failed"]


def test_throttle_counts_repeats(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttled = ThrottledLogger(logging.getLogger("edgecache.test"), interval=60, clock=clock)
    with caplog.at_level(logging.WARNING, logger="edgecache.test"):
        throttled.log(logging.WARNING, "origin-timeout", "fetch %s failed", "/a")
        clock.now += 1
        assert throttled.log(logging.WARNING, "origin-timeout", "fetch %s failed", "/b") is False
        throttled.log(logging.WARNING, "origin-timeout", "fetch %s failed", "/c")
        clock.now += 60
        throttled.log(logging.WARNING, "origin-timeout", "fetch %s failed", "/d")
    assert [record.getMessage() for record in caplog.records] == [
        "fetch /a failed",
        "fetch /d failed (2 similar messages left out in the last 61 s)",
    ]


def test_throttle_kinds_independent(caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLogger(logging.getLogger("edgecache.test"), interval=60, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="edgecache.test"):
        throttled.log(logging.WARNING, "origin-timeout", "timeout")
        throttled.log(logging.WARNING, "origin-unreachable", "unreachable")
    assert len(caplog.records) == 2


async def test_access_log_json(origin, make_edgecache, client: aiohttp.ClientSession,
                               caplog: pytest.LogCaptureFixture) -> None:
    edgecache = await make_edgecache(origin.url, {"server": {"access_log_format": "json"}})
    with caplog.at_level(logging.INFO, logger="edgecache.access"):
        async with client.get(proxy_url(edgecache, "/shoe/p?color=red"), headers={"User-Agent": "t/1"}) as response:
            await response.read()
    line = json.loads(caplog.records[-1].getMessage())
    assert line["method"] == "GET"
    assert line["target"] == "/shoe/p?color=red"
    assert line["status"] == 200
    assert line["outcome"] == "bypass"
    assert line["reason"] == "query"
    assert line["user_agent"] == "t/1"
    assert line["bytes"] == len(b"page /shoe/p?color=red #1")
    assert line["age"] == 0


async def test_access_log_combined(origin, edgecache, client: aiohttp.ClientSession,
                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="edgecache.access"):
        async with client.get(proxy_url(edgecache, "/shoe/p"), headers={"User-Agent": "t/1"}) as response:
            await response.read()
    message = caplog.records[-1].getMessage()
    assert message.startswith("127.0.0.1 - - [")
    assert '] "GET /shoe/p HTTP/1.1" 200 15 "-" "t/1" outcome=miss reason=- age=0 duration=' in message


async def test_origin_errors_logged_once(make_edgecache, client: aiohttp.ClientSession,
                                         caplog: pytest.LogCaptureFixture, unused_tcp_port: int) -> None:
    edgecache = await make_edgecache(f"http://127.0.0.1:{unused_tcp_port}")
    with caplog.at_level(logging.WARNING, logger="edgecache.origin"):
        for path in ("/a/p", "/b/p", "/c/p"):
            async with client.get(proxy_url(edgecache, path)) as response:
                assert response.status == 502
    warnings = [record for record in caplog.records if record.name == "edgecache.origin"]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("GET /a/p failed: origin unreachable")
