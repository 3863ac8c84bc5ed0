"""Explainability: one reason word per response, in Cache-Status (RFC 9211), the access log and the metrics."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from yarl import URL

import fault_origin as faults
from conftest import admin_url, proxy_url
from fault_origin import Fault, FaultOrigin
from semantics_support import Answer, FakeClock, get

# A path on the fault-injection origin that a request keeps busy until its gate opens.
HELD_PATH = "/held/p"


@dataclass
class Case:
    reason: str
    path: str = "/shoe/p"
    status: int = 200
    response_headers: dict[str, str] = field(default_factory=lambda: {"Cache-Control": "max-age=60"})
    body: bytes = b"shoe"
    method: str = "GET"
    request_headers: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    prime: bool = False  # request the path once before the request under test
    origin_url: str | None = None
    # Serve the path from the fault-injection origin with this fault instead of the script.
    fault: Fault | None = None
    # Keep one origin connection busy with a request for HELD_PATH during the request under test.
    hold_connection: bool = False

    @property
    def uses_fault_origin(self) -> bool:
        return self.fault is not None or self.hold_connection


CASES = [
    Case("no-store", response_headers={"Cache-Control": "no-store"}),
    Case("private", response_headers={"Cache-Control": "private, max-age=60"}),
    Case("set-cookie", response_headers={"Cache-Control": "max-age=60", "Set-Cookie": "a=1"}),
    Case("vary-star", response_headers={"Cache-Control": "max-age=60", "Vary": "*"}),
    Case("too-large", body=b"x" * 100, settings={"cache": {"max_object_bytes": 10}}),
    Case("status", status=500),
    Case("partial", status=206, response_headers={"Content-Range": "bytes 0-3/10"}),
    Case("no-freshness", response_headers={}),
    Case("authorization", request_headers={"Authorization": "Bearer t"}),
    Case("content-type", path="/static/app.js", response_headers={"Content-Type": "text/html"},
         settings={"rules": [{"name": "static", "match": "/static/*", "ttl": 60, "content_types": ["text/css"]}]}),
    Case("query", path="/shoe/p?color=red"),
    Case("method", method="POST"),
    Case("precondition", request_headers={"If-Match": '"v1"'}),
    Case("only-if-cached", request_headers={"Cache-Control": "only-if-cached"}),
    Case("client-no-cache", request_headers={"Cache-Control": "no-cache"}, prime=True,
         settings={"cache": {"client_no_cache": "revalidate"}}),
    Case("origin-unreachable", origin_url="http://127.0.0.1:1"),
    Case("origin-invalid", fault=faults.raw_bytes(b"HTTP/1.1 banana\r\n\r\n")),
    Case("origin-busy", hold_connection=True, settings={"origin": {"max_connections": 1, "queue_timeout": 0.1}}),
]
# internal-error takes a bug in the handler, not an origin or a request, so test_core_internal_error checks it.


async def hold_origin_connection(client: aiohttp.ClientSession, edgecache: Any, fault_origin: FaultOrigin,
                                 gate: asyncio.Event) -> asyncio.Task[Answer]:
    """Start a request for HELD_PATH and return its task once the origin has it. It ends after `gate` is set."""
    arrived = asyncio.Event()
    fault_origin.faults[HELD_PATH] = faults.gated(gate, faults.ok(), arrived=arrived)
    holder = asyncio.create_task(get(client, edgecache, HELD_PATH))
    await arrived.wait()
    return holder


@pytest.mark.parametrize("case", [pytest.param(case, id=f"9211-2.8-detail-{case.reason}") for case in CASES])
async def test_one_reason_everywhere(origin, fault_origin: FaultOrigin, make_edgecache,
                                     client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
                                     case: Case) -> None:
    path = case.path.partition("?")[0]
    origin.script(path, status=case.status, headers=case.response_headers, body=case.body)
    if case.fault is not None:
        fault_origin.faults[path] = case.fault
    origin_url = fault_origin.url if case.uses_fault_origin else case.origin_url or origin.url
    edgecache = await make_edgecache(origin_url, case.settings)
    if case.prime:
        await get(client, edgecache, case.path)
    caplog.set_level(logging.INFO, logger="edgecache.access")
    caplog.clear()
    gate = asyncio.Event()
    holder = await hold_origin_connection(client, edgecache, fault_origin, gate) if case.hold_connection else None

    answer = await get(client, edgecache, case.path, method=case.method, headers=case.request_headers)
    gate.set()
    if holder is not None:
        assert (await holder).status == 200
    async with client.get(admin_url(edgecache, "/metrics")) as response:
        metrics = await response.text()

    assert re.findall(r"detail=([^;]+)", answer.cache_status) == [case.reason]
    [record] = [r for r in caplog.records if r.name == "edgecache.access" and getattr(r, "path") != HELD_PATH]
    assert getattr(record, "reason") == case.reason
    assert re.findall(r"reason=(\S+)", record.getMessage()) == [case.reason]
    assert re.findall(r'^edgecache_cache_skips_total\{reason="([^"]+)"\} 1\.0$', metrics, re.M) == [case.reason]


async def test_hit_and_stored_miss_carry_no_detail(origin, edgecache, client: aiohttp.ClientSession) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"})

    miss = await get(client, edgecache, "/shoe/p")
    hit = await get(client, edgecache, "/shoe/p")

    assert "detail=" not in miss.cache_status + hit.cache_status


async def test_freshness_decision_logged(origin, make_edgecache, client: aiohttp.ClientSession,
                                         caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    origin.script("/shoe/p", headers={
        "Date": clock.http_date(-5), "Expires": clock.http_date(600), "Age": "3",
        "Cache-Control": "max-age=60, s-maxage=30", "Last-Modified": clock.http_date(-1000)})
    edgecache = await make_edgecache(origin.url, {"rules": [{"name": "product", "match": "/*/p", "ttl": 10}]},
                                     clock=clock)
    caplog.set_level(logging.DEBUG, logger="edgecache.cache")

    await get(client, edgecache, "/shoe/p")

    [record] = [r for r in caplog.records if r.getMessage().startswith("freshness ")]
    fields = dict(re.findall(r"(\w+)=('[^']*'|\S+)", record.getMessage()))
    assert fields == {
        "key": f"{edgecache.settings.site_host}/shoe/p", "status": "200",
        "date": repr(clock.http_date(-5)), "expires": repr(clock.http_date(600)), "max_age": "'60'",
        "s_maxage": "'30'", "age": "'3'", "last_modified": repr(clock.http_date(-1000)), "no_cache": "False",
        "must_revalidate": "True", "rule": "product", "request_time": "1700000000.000", "now": "1700000000.000",
        "lifetime": "30.000", "source": "s-maxage", "initial_age": "5.000", "fresh_until": "1700000025.000",
        "stale_while_revalidate_until": "1700000025.000", "stale_if_error_until": "1700000025.000",
    }


async def test_rejections_carry_one_reason(origin, make_edgecache, client: aiohttp.ClientSession,
                                           caplog: pytest.LogCaptureFixture) -> None:
    edgecache = await make_edgecache(origin.url, {"server": {"bypass_rate": 0.001, "bypass_burst": 1}})
    await get(client, edgecache, "/shoe/p?color=red")
    caplog.set_level(logging.INFO, logger="edgecache.access")
    caplog.clear()

    limited = await get(client, edgecache, "/shoe/p?color=blue")
    async with client.get(URL(proxy_url(edgecache, "/shoe/%zz"), encoded=True)) as response:
        invalid = (response.status, response.headers["Cache-Status"])
    async with client.get(admin_url(edgecache, "/metrics")) as response:
        metrics = await response.text()

    assert (limited.status, limited.cache_status) == (429, "edgecache; detail=rate-limited")
    assert invalid == (400, "edgecache; detail=bad-request")
    assert [getattr(record, "reason") for record in caplog.records if record.name == "edgecache.access"] == [
        "rate-limited", "bad-request"]
    for reason in ("rate-limited", "bad-request"):
        assert f'edgecache_cache_skips_total{{reason="{reason}"}} 1.0' in metrics.splitlines()
    assert origin.count() == 1
