"""`edgecache stats` and `edgecache purge` as subprocesses against a running admin listener."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from conftest import admin_url, proxy_url
from edgecache.inventory import InventoryEvent
from inventory_pages import TOKEN, Clock, html_headers, product_page

CLEAR_SCREEN = "\x1b[2J\x1b[H"
# Seconds a command may take before the test fails instead of hanging.
COMMAND_TIMEOUT = 30


def command_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("EDGECACHE_")}


async def run_command(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", *args, env=command_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=COMMAND_TIMEOUT)
    assert process.returncode is not None
    return process.returncode, stdout.decode()


async def get(client, edgecache, path: str) -> str:
    async with client.get(proxy_url(edgecache, path)) as response:
        await response.read()
        return response.headers["X-Cache"]


async def test_stats_shows_known_stale(origin, make_edgecache, client) -> None:
    clock = Clock()
    origin.script("/b/p", headers=html_headers("max-age=60, stale-while-revalidate=30"),
                  body=product_page("B", "OutOfStock"))
    edgecache = await make_edgecache(origin.url, {"inventory": {"refresh_on_event": False}}, clock=clock)
    assert await get(client, edgecache, "/b/p") == "MISS"
    clock.advance(1)
    edgecache.apply_inventory_events([InventoryEvent("B", state="in_stock", version=1)])
    clock.advance(2)
    assert await get(client, edgecache, "/b/p") == "STALE"

    code, output = await run_command("stats", "--admin", admin_url(edgecache, ""))
    assert code == 0
    lines = output.splitlines()
    assert ("inventory  known stale 1 (claimed unavailable in stock 1)  lag p50 2.0 s  p90 2.0 s  max 2.0 s  "
            "reconcile checks 0 mismatches 0") in lines
    assert lines[1] == "requests   total 2  hit 0  miss 1  bypass 0  stale 1  revalidated 0  error 0"


async def test_stats_without_lookups(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url)
    assert await get(client, edgecache, "/shoe/p?x=1") == "BYPASS"

    code, output = await run_command("stats", "--admin", admin_url(edgecache, ""))
    assert code == 0
    lines = output.splitlines()
    assert lines[0].endswith(" s   hit ratio -   lookups 0")
    rolling = [line for line in lines if line.startswith("last ")]
    assert len(rolling) == 2
    assert rolling[0].startswith("last 1m    ")
    assert "   hit ratio -   " in rolling[0]
    assert rolling[1].startswith("last 5m    ")
    assert "   hit ratio -   " in rolling[1]


async def test_stats_watch_redraws(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url)
    await get(client, edgecache, "/shoe/p")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", "stats", "--admin", admin_url(edgecache, ""), "--watch",
        env=command_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    output = ""
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            while output.count(CLEAR_SCREEN) < 2:
                chunk = await process.stdout.read(4096)
                assert chunk, f"stats --watch ended early: {output!r}"
                output += chunk.decode()
            await get(client, edgecache, "/shoe/p")
            while "requests   total 2  hit 1  miss 1  " not in output:
                chunk = await process.stdout.read(4096)
                assert chunk, f"stats --watch ended early: {output!r}"
                output += chunk.decode()
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), COMMAND_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0
    frames = [frame for frame in output.split(CLEAR_SCREEN) if frame]
    assert len(frames) >= 3
    assert "requests   total 1  hit 0  miss 1  " in frames[0]
    assert "requests   total 2  hit 1  miss 1  " in frames[-1]


async def test_purge_command_prefix_soft(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}})
    for path in ("/shoes/a", "/shoes/b", "/bags/c"):
        await get(client, edgecache, path)
    code, output = await run_command("purge", "--admin", admin_url(edgecache, ""), "--token", TOKEN,
                                     "--prefix", "/shoes/", "--soft")
    assert code == 0
    assert output == '{"purged": 2, "soft": true}\n'
    assert len(edgecache.store) == 3
    assert await get(client, edgecache, "/bags/c") == "HIT"


async def test_purge_command_all(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}})
    for path in ("/shoes/a", "/bags/c"):
        await get(client, edgecache, path)
    code, output = await run_command("purge", "--admin", admin_url(edgecache, ""), "--token", TOKEN, "--all")
    assert code == 0
    assert output == '{"purged": 2, "soft": false}\n'
    assert len(edgecache.store) == 0


async def test_purge_command_two_tags(origin, make_edgecache, client) -> None:
    origin.script("/shoes/a", headers={"Cache-Control": "max-age=60", "Surrogate-Key": "sku:1"})
    origin.script("/bags/c", headers={"Cache-Control": "max-age=60", "Surrogate-Key": "sku:2"})
    origin.script("/hats/d", headers={"Cache-Control": "max-age=60", "Surrogate-Key": "sku:3"})
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}})
    for path in ("/shoes/a", "/bags/c", "/hats/d"):
        await get(client, edgecache, path)
    code, output = await run_command("purge", "--admin", admin_url(edgecache, ""), "--token", TOKEN,
                                     "--tag", "sku:1", "--tag", "sku:2")
    assert code == 0
    assert output == '{"purged": 2, "soft": false}\n'
    assert await get(client, edgecache, "/hats/d") == "HIT"
