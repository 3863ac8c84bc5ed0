"""GET /entries and `edgecache explain`: stored facts and the decision for one path."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import pytest

from edgecache.cli import main

from conftest import admin_url, proxy_url

T0 = 1_700_000_000.0
ETAG = '"v1"'


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def _get(client: aiohttp.ClientSession, url: str) -> None:
    async with client.get(url) as response:
        await response.read()


async def _entries(client: aiohttp.ClientSession, edgecache, path: str) -> dict:
    async with client.get(admin_url(edgecache, "/entries"), params={"path": path}) as response:
        assert response.status == 200
        return await response.json()


async def test_entries_not_stored(origin, edgecache, client) -> None:
    document = await _entries(client, edgecache, "/shoe/p")
    assert document["stored"] is False
    assert document["entries"] == []
    assert document["decision"]["outcome"] == "miss"


async def test_entries_fresh_hit(origin, make_edgecache, client, clock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60, stale-while-revalidate=30", "ETag": ETAG,
                                      "Surrogate-Key": "sku:A sku:B"})
    edgecache = await make_edgecache(origin.url, clock=clock)
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    clock.now += 20
    document = await _entries(client, edgecache, "//shoe/p")
    assert document["stored"] is True
    assert document["key"] == f"{edgecache.settings.site_host}/shoe/p"
    entry = document["entries"][0]
    assert entry["age_seconds"] == 20
    assert entry["freshness_lifetime_seconds"] == 60
    assert entry["ttl_seconds"] == 40
    assert entry["stale_while_revalidate_seconds"] == 70
    assert entry["validators"] == {"etag": ETAG, "last_modified": None}
    assert entry["tags"] == ["sku:A", "sku:B"]
    assert document["decision"] == {"outcome": "hit", "explanation": "the entry is fresh for 40 s more"}


async def test_entries_stale_while_revalidate(origin, make_edgecache, client, clock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60, stale-while-revalidate=30"})
    edgecache = await make_edgecache(origin.url, clock=clock)
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    clock.now += 70
    document = await _entries(client, edgecache, "/shoe/p")
    assert document["decision"]["outcome"] == "stale"


async def test_entries_revalidate_with_validators(origin, make_edgecache, client, clock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "ETag": ETAG})
    edgecache = await make_edgecache(origin.url, {"cache": {"stale_if_error": 0}}, clock=clock)
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    clock.now += 61
    document = await _entries(client, edgecache, "/shoe/p")
    assert document["decision"]["outcome"] == "revalidated"
    assert document["entries"][0]["ttl_seconds"] == -1


async def test_entries_query_bypass(origin, edgecache, client) -> None:
    document = await _entries(client, edgecache, "/shoe/p?color=red")
    assert document["decision"]["outcome"] == "bypass"


async def test_entries_claims(origin, make_edgecache, client) -> None:
    page = b'<html><body><button class="buy" data-sku="SKU-1" data-availability="in_stock">Buy</button></body></html>'
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "Content-Type": "text/html"}, body=page)
    edgecache = await make_edgecache(origin.url)
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    document = await _entries(client, edgecache, "/shoe/p")
    assert document["entries"][0]["tags"] == ["sku:SKU-1"]
    assert document["entries"][0]["claims"] == [{"sku": "SKU-1", "availability": "in_stock"}]


async def test_entries_path_required(edgecache, client) -> None:
    async with client.get(admin_url(edgecache, "/entries")) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"].startswith("missing query parameter 'path'")


async def test_explain_command_text(origin, make_edgecache, client, clock,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60", "ETag": ETAG})
    edgecache = await make_edgecache(origin.url, clock=clock)
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    code = await asyncio.to_thread(main, ["explain", proxy_url(edgecache, "/shoe/p"),
                                          "--admin", admin_url(edgecache, "")])
    assert code == 0
    output = capsys.readouterr().out
    assert "stored    yes" in output
    assert f"etag      {ETAG}" in output
    assert "decision  hit: the entry is fresh for 60 s more" in output


async def test_stats_command_rolling(origin, make_edgecache, client, clock,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    edgecache = await make_edgecache(origin.url, clock=clock)
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    await _get(client, proxy_url(edgecache, "/shoe/p?color=red"))
    clock.now += 10
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    code = await asyncio.to_thread(main, ["stats", "--admin", admin_url(edgecache, "")])
    assert code == 0
    output = capsys.readouterr().out
    assert "last 1m    0.3 req/s   hit ratio 50.0 %   hit 0.1/s  miss 0.1/s  bypass 0.1/s" in output
    assert "bypassed   /shoe/p 1" in output
    assert f"fetched    {edgecache.settings.site_host}/shoe/p 1" in output


async def test_explain_subprocess_query_bypass(origin, make_edgecache, client, clock) -> None:
    origin.script("/shoe/p", headers={"Cache-Control": "max-age=60"})
    edgecache = await make_edgecache(origin.url, clock=clock)
    await _get(client, proxy_url(edgecache, "/shoe/p"))
    clock.now += 56
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", "explain", proxy_url(edgecache, "/shoe/p?x=1"),
        "--admin", admin_url(edgecache, ""), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert lines[:7] == [
        "path      /shoe/p?x=1",
        f"key       {edgecache.settings.site_host}/shoe/p",
        "rule      default",
        "stored    yes",
        "decision  bypass: the request has a query string, so it is forwarded and never stored",
        "",
        "stored for /shoe/p, which a request without the query string would get:",
    ]
    assert lines[-1] == "entry     hit: the entry is fresh for 4 s more"
    assert sum(line.startswith("decision") for line in lines) == 1
