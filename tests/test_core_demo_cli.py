"""`edgecache demo` and `edgecache demo-origin` run as a user runs them, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from edgecache.demo.pages import SCHEMA_AVAILABILITY
from helpers import free_port

from test_core_cli import clean_env, run_cli

PAGE = "/summit-duffel-1/p"
# Seconds a demo process gets to start, print its last line, or exit after SIGTERM.
PROCESS_WAIT = 20.0
JSON_LD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)


@asynccontextmanager
async def running(*args: str, last_line: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """Start `python -m edgecache ARGS`, read stdout up to `last_line`, stop it with SIGTERM at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", *args, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(PROCESS_WAIT):
            while not lines or lines[-1] != last_line:
                line = await process.stdout.readline()
                assert line, f"process exited early: {lines!r}"
                lines.append(line.decode().rstrip("\n"))
        yield process, lines
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), PROCESS_WAIT)


def product_json_ld(html: str) -> dict:
    match = JSON_LD.search(html)
    assert match is not None
    return json.loads(match.group(1))


async def test_demo_shows_miss_then_hit() -> None:
    proxy, admin, origin = free_port(), free_port(), free_port()
    args = ("demo", "--listen", f"127.0.0.1:{proxy}", "--admin-listen", f"127.0.0.1:{admin}",
            "--origin-listen", f"127.0.0.1:{origin}")
    async with running(*args, last_line="press Ctrl-C to stop") as (process, lines):
        assert lines[:4] == [
            f"demo storefront (origin): http://127.0.0.1:{origin}/",
            f"edgecache (shoppers):     http://127.0.0.1:{proxy}/",
            f"dashboard (operators):    http://127.0.0.1:{admin}/",
            f"admin figures:            http://127.0.0.1:{admin}/stats  and /metrics",
        ]
        assert f"GET {PAGE} (first): 200 X-Cache: MISS  Cache-Status: edgecache; fwd=uri-miss; stored" in lines
        assert any(line.startswith(f"GET {PAGE} (second): 200 X-Cache: HIT  Cache-Status: edgecache; hit; ttl=")
                   for line in lines)

        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{proxy}{PAGE}") as response:
                assert response.status == 200
                product = product_json_ld(await response.text())
            async with session.get(f"http://127.0.0.1:{origin}/api/sku/{product['sku']}") as response:
                assert response.status == 200
                truth = await response.json()
            async with session.get(f"http://127.0.0.1:{admin}/health") as response:
                assert response.status == 200

        assert product["@type"] == "Product"
        assert product["offers"]["availability"] in SCHEMA_AVAILABILITY.values()
        assert truth["sku"] == product["sku"]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), PROCESS_WAIT) == 0


async def test_demo_origin_serves_storefront() -> None:
    port = free_port()
    args = ("demo-origin", "--listen", f"127.0.0.1:{port}", "--change-interval", "0")
    async with running(*args, last_line=f"demo storefront on http://127.0.0.1:{port}/") as (process, _):
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}{PAGE}") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/html")
                product = product_json_ld(await response.text())
            async with session.get(f"http://127.0.0.1:{port}/api/sku/{product['sku']}") as response:
                truth = await response.json()

        assert truth["state"] in {state.value for state in SCHEMA_AVAILABILITY}
        assert product["offers"]["availability"] == SCHEMA_AVAILABILITY[
            next(state for state in SCHEMA_AVAILABILITY if state.value == truth["state"])]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), PROCESS_WAIT) == 0


async def test_demo_port_zero_prints_bound_ports() -> None:
    args = ("demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--origin-listen", "127.0.0.1:0")
    async with running(*args, last_line="press Ctrl-C to stop") as (process, lines):
        urls = [line.split("http://", 1)[1].split("/", 1)[0] for line in lines[:3]]
        assert lines[3].startswith(f"admin figures:            http://{urls[2]}/stats")
        ports = [int(url.rpartition(":")[2]) for url in urls]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{urls[1]}{PAGE}") as response:
                x_cache = response.headers["X-Cache"]
            async with session.get(f"http://{urls[2]}/health") as response:
                health_status = response.status

        assert 0 not in ports
        assert f"GET {PAGE} (first): 200 X-Cache: MISS  Cache-Status: edgecache; fwd=uri-miss; stored" in lines
        assert x_cache == "HIT"
        assert health_status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), PROCESS_WAIT) == 0


async def test_demo_origin_port_zero_prints_bound_port() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", "demo-origin", "--listen", "127.0.0.1:0", "--duration", "30",
        env=clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), PROCESS_WAIT)).decode()
        port = int(line.rpartition(":")[2].rstrip("/\n"))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}{PAGE}") as response:
                status = response.status
    finally:
        process.send_signal(signal.SIGTERM)
        exit_status = await asyncio.wait_for(process.wait(), PROCESS_WAIT)

    assert line.startswith("demo storefront on http://127.0.0.1:")
    assert port != 0
    assert status == 200
    assert exit_status == 0


async def test_demo_port_in_use_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flag, name in (("--origin-listen", "demo storefront"), ("--listen", "server.listen")):
            others = [arg for other in ("--origin-listen", "--listen", "--admin-listen") if other != flag
                      for arg in (other, "127.0.0.1:0")]
            status, _, stderr = await run_cli("demo", flag, f"127.0.0.1:{port}", *others, "--duration", "5")

            assert status == 1
            assert stderr.startswith(f"edgecache: start-up failed: {name}: cannot listen on 127.0.0.1:{port} (")
            assert stderr.count("\n") == 1
