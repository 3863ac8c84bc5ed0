"""`edgecache demo` and `edgecache demo-origin` run as a user runs them, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp

from edgecache.cli import EXIT_START_FAILED
from edgecache.demo.pages import SCHEMA_AVAILABILITY
from helpers import free_port

from test_core_cli import clean_env, run_cli

PAGE = "/summit-duffel-1/p"
# Seconds a demo process gets to start, print its last line, or exit after SIGTERM.
PROCESS_WAIT = 20.0
# Sets of free ports tried in turn when another program takes one before the demo binds it.
START_ATTEMPTS = 3
JSON_LD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)


@asynccontextmanager
async def running(*args: str, last_line: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """Start `python -m edgecache ARGS`, read stdout up to `last_line`, stop it with SIGTERM at the end."""
    process, lines = await start(*args, last_line=last_line)
    assert process.returncode is None, f"process exited early: {lines!r}"
    try:
        yield process, lines
    finally:
        await stop(process)


@asynccontextmanager
async def running_on_free_ports(make_args: Callable[[list[int]], tuple[str, ...]], ports: int,
                                last_line: Callable[[list[int]], str]
                                ) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str], list[int]]]:
    """Like running(), with `ports` fixed ports from free_port() in the arguments.

    Another program can take a port between free_port() and the bind. The process then
    exits with a start-up failure before its last line, so the start is retried on new ports.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        chosen = [free_port() for _ in range(ports)]
        process, lines = await start(*make_args(chosen), last_line=last_line(chosen))
        if process.returncode is None:
            break
        assert process.returncode == EXIT_START_FAILED, f"process exited early with code {process.returncode}: {lines!r}"
        assert attempt < START_ATTEMPTS, f"ports in use on all {START_ATTEMPTS} attempts: {lines!r}"
    try:
        yield process, lines, chosen
    finally:
        await stop(process)


async def start(*args: str, last_line: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """Start `python -m edgecache ARGS` and read stdout up to `last_line` or until the process exits."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", *args, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(PROCESS_WAIT):
            while not lines or lines[-1] != last_line:
                line = await process.stdout.readline()
                if not line:
                    await process.wait()
                    break
                lines.append(line.decode().rstrip("\n"))
    except BaseException:
        await stop(process)
        raise
    return process, lines


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), PROCESS_WAIT)


def product_json_ld(html: str) -> dict:
    match = JSON_LD.search(html)
    assert match is not None
    return json.loads(match.group(1))


async def test_demo_shows_miss_then_hit() -> None:
    def demo_args(ports: list[int]) -> tuple[str, ...]:
        return ("demo", "--listen", f"127.0.0.1:{ports[0]}", "--admin-listen", f"127.0.0.1:{ports[1]}",
                "--origin-listen", f"127.0.0.1:{ports[2]}")

    async with running_on_free_ports(demo_args, 3, lambda _: "press Ctrl-C to stop") as (process, lines, ports):
        proxy, admin, origin = ports
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
    def origin_args(ports: list[int]) -> tuple[str, ...]:
        return ("demo-origin", "--listen", f"127.0.0.1:{ports[0]}", "--change-interval", "0")

    def origin_line(ports: list[int]) -> str:
        return f"demo storefront on http://127.0.0.1:{ports[0]}/"

    async with running_on_free_ports(origin_args, 1, origin_line) as (process, _, (port,)):
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
        # Log lines, such as the start of the inventory changes, may come before the printed line.
        async with asyncio.timeout(PROCESS_WAIT):
            line = ""
            while not line.startswith("demo storefront on "):
                read = await process.stdout.readline()
                assert read, f"demo-origin exited before printing its address; last line {line!r}"
                line = read.decode()
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
