"""Soak test: a bounded mixed workload against edgecache in front of the demo storefront.

Starts the demo storefront (with a fault layer under /fault/) in this process and
`edgecache serve` as a subprocess, both on loopback, then runs a fixed number of
client workers for --duration seconds. The mix: hits on a hot set of product pages,
misses on a flood of distinct paths (4 KB pages, stored until eviction),
forced misses with query strings, purges through the admin API, and origin faults
(500, timeouts and resets). It reports throughput, errors by kind, edgecache's
resident memory (VmRSS) sampled through the run, and its open file descriptors and
asyncio tasks at the start, at the end with the load's connections still open, and
after they closed. It stops after --duration seconds or --max-requests requests.

    .venv/bin/python bench/soak.py --duration 600 --output soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from edgecache.demo.app import INVENTORY_KEY, create_app

TOKEN = "soak-token"
# Share of requests of each kind; the rest are hits.
MIX = {"miss": 0.15, "bypass": 0.10, "purge": 0.02, "fault": 0.05}
HOT_PAGES = 50
# Seconds edgecache waits for origin bytes; the slow fault sleeps longer than this.
READ_TIMEOUT = 0.5
# Body of each distinct /flood/ page: stored, so the flood fills the store and forces evictions.
FLOOD_BODY = b"<p>flood</p>" * 340


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@web.middleware
async def fault_layer(request: web.Request, handler: Any) -> web.StreamResponse:
    """Serve the fault named by /fault/500, /fault/slow or /fault/reset, and a stored page for /flood/*."""
    if request.path.startswith("/flood/"):
        return web.Response(body=FLOOD_BODY, content_type="text/html", headers={"Cache-Control": "max-age=600"})
    if not request.path.startswith("/fault/"):
        return await handler(request)
    kind = request.path.rsplit("/", 1)[-1]
    if kind == "slow":
        await asyncio.sleep(READ_TIMEOUT * 2)
    elif kind == "reset" and request.transport is not None:
        request.transport.abort()
    return web.Response(status=500, text="origin fault")


def write_config(directory: Path, origin_port: int, proxy_port: int, admin_port: int, max_bytes: int) -> Path:
    path = directory / "soak.toml"
    path.write_text(f"""
[server]
listen = "127.0.0.1:{proxy_port}"
admin_listen = "127.0.0.1:{admin_port}"
access_log = false
log_level = "warning"
[origin]
url = "http://127.0.0.1:{origin_port}"
read_timeout = {READ_TIMEOUT}
connect_timeout = 0.5
[cache]
max_bytes = {max_bytes}
[admin]
token = "{TOKEN}"
[[rules]]
name = "product"
match = "/*/p"
ttl = 30
stale_while_revalidate = 10
[[rules]]
name = "category"
match = "/c/*"
ttl = 60
""")
    return path


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Tally:
    def __init__(self) -> None:
        self.requests: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()

    def record(self, kind: str, status: int | None, error: str | None = None) -> None:
        self.requests[kind] += 1
        if error is not None:
            self.errors[f"{kind}:{error}"] += 1
        elif status is not None and status >= 500 and kind != "fault":
            self.errors[f"{kind}:status-{status}"] += 1
        elif kind == "fault" and status not in (500, 502, 504):
            self.errors[f"fault:unexpected-{status}"] += 1


async def worker(session: aiohttp.ClientSession, proxy: str, admin: str, slugs: list[str], deadline: float,
                 tally: Tally, rng: random.Random, counter: list[int], max_requests: int) -> None:
    while time.monotonic() < deadline and sum(tally.requests.values()) < max_requests:
        draw = rng.random()
        kind, method, url, body = "hit", "GET", f"{proxy}/{rng.choice(slugs[:HOT_PAGES])}/p", None
        if draw < MIX["miss"]:
            counter[0] += 1
            kind, url = "miss", f"{proxy}/flood/{counter[0]}"
        elif draw < MIX["miss"] + MIX["bypass"]:
            kind, url = "bypass", f"{proxy}/{rng.choice(slugs)}/p?ref={rng.randrange(1000)}"
        elif draw < MIX["miss"] + MIX["bypass"] + MIX["purge"]:
            kind, method, url = "purge", "POST", f"{admin}/purge"
            body = {"paths": [f"/{rng.choice(slugs[:HOT_PAGES])}/p"]}
        elif draw < sum(MIX.values()):
            kind, url = "fault", f"{proxy}/fault/{rng.choice(['500', 'slow', 'reset'])}"
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"} if kind == "purge" else None
            async with session.request(method, url, json=body, headers=headers) as response:
                await response.read()
                tally.record(kind, response.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            tally.record(kind, None, type(exc).__name__)


def descriptor_kinds(pid: int, origin_port: int) -> dict[str, int]:
    """Count the process's open file descriptors by kind, telling origin connections apart.

    Kinds: "origin" (TCP connections to the origin's port), "listening", "tcp-other"
    (other TCP connections, clients among them), "socket-other" (Unix and non-TCP
    sockets) and "other" (files, pipes, epoll and event descriptors).
    """
    sockets: dict[str, str] = {}
    counts = {"origin": 0, "listening": 0, "tcp-other": 0, "socket-other": 0, "other": 0}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            sockets[target[len("socket:["):-1]] = "socket-other"
        else:
            counts["other"] += 1
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            # proc(5): remote address "HEXIP:HEXPORT" is field 2, the state field 3, the inode field 9.
            if fields[9] not in sockets:
                continue
            if fields[3] == "0A":
                sockets[fields[9]] = "listening"
            elif int(fields[2].rpartition(":")[2], 16) == origin_port:
                sockets[fields[9]] = "origin"
            else:
                sockets[fields[9]] = "tcp-other"
    for kind in sockets.values():
        counts[kind] += 1
    return counts


async def process_figures(admin: str, pid: int, origin_port: int) -> dict[str, Any]:
    """Return edgecache's resident memory, open file descriptors and asyncio tasks.

    The request goes over a connection of its own, closed before returning, so the
    figures count only the connections of the load. The task count comes from /health
    and includes the task that handles that request.
    """
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.get(f"{admin}/health") as response:
            health = await response.json()
    return {"rss_mib": round(resident_bytes(pid) / 2**20, 1), "open_fds": len(os.listdir(f"/proc/{pid}/fd")),
            "descriptors": descriptor_kinds(pid, origin_port), "asyncio_tasks": health["asyncio_tasks"]}


async def wait_ready(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    origin_app = create_app(change_interval=1.0)
    origin_app.middlewares.append(fault_layer)
    slugs = origin_app[INVENTORY_KEY].slugs()
    runner = web.AppRunner(origin_app, access_log=None)
    await runner.setup()
    origin_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", origin_port).start()
    with tempfile.TemporaryDirectory() as directory:
        config = write_config(Path(directory), origin_port, proxy_port, admin_port, args.max_bytes)
        process = subprocess.Popen([sys.executable, "-m", "edgecache", "serve", "--config", str(config)])
        try:
            await wait_ready(f"http://127.0.0.1:{admin_port}/health")
            return await drive(args, process.pid, slugs, origin_port, proxy_port, admin_port)
        finally:
            process.terminate()
            process.wait(timeout=30)
            await runner.cleanup()


async def drive(args: argparse.Namespace, pid: int, slugs: list[str], origin_port: int, proxy_port: int,
                admin_port: int) -> dict[str, Any]:
    proxy, admin = f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{admin_port}"
    tally = Tally()
    rng = random.Random(args.seed)
    started = time.monotonic()
    deadline = started + args.duration
    samples: list[tuple[float, int]] = [(0.0, resident_bytes(pid))]
    connector = aiohttp.TCPConnector(limit=args.workers)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        process_start = await process_figures(admin, pid, origin_port)
        counter = [0]
        workers = [asyncio.create_task(worker(session, proxy, admin, slugs, deadline, tally,
                                              random.Random(rng.random()), counter, args.max_requests))
                   for _ in range(args.workers)]
        running = asyncio.gather(*workers)
        while time.monotonic() < deadline and not running.done():
            await asyncio.wait([running], timeout=min(args.duration / 20, deadline - time.monotonic()))
            samples.append((round(time.monotonic() - started, 1), resident_bytes(pid)))
        await running
        elapsed = time.monotonic() - started
        # Requests that timed out on the client side may still be ending in edgecache.
        await asyncio.sleep(2 * READ_TIMEOUT)
        # The load's keep-alive connections are still open, and each uses a descriptor and a task.
        process_loaded = await process_figures(admin, pid, origin_port)
        async with session.get(f"{admin}/stats") as response:
            stats = await response.json()
    # The session is closed, so edgecache has closed its client connections too. Anything
    # beyond the start figures is an idle origin connection or a leak.
    await asyncio.sleep(1)
    process_end = await process_figures(admin, pid, origin_port)
    total = sum(tally.requests.values())
    return {
        "duration_seconds": round(elapsed, 1),
        "workers": args.workers,
        "requests": dict(tally.requests),
        "throughput_rps": round(total / elapsed, 1),
        "errors": dict(tally.errors),
        "rss_mib": {
            "start": round(samples[min(1, len(samples) - 1)][1] / 2**20, 1),
            "middle": round(samples[len(samples) // 2][1] / 2**20, 1),
            "end": round(samples[-1][1] / 2**20, 1),
        },
        "rss_samples_mib": [(at, round(rss / 2**20, 1)) for at, rss in samples],
        "process": {"start": process_start, "end_clients_connected": process_loaded,
                    "end_clients_closed": process_end},
        "edgecache": {"hit_ratio": stats["hit_ratio"], "cache": stats["cache"],
                      "origin_errors": stats["origin"]["errors_by_reason"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--workers", type=int, default=32, help="concurrent client connections (default 32)")
    parser.add_argument("--max-requests", type=int, default=5_000_000,
                        help="stop once this many requests were sent, even before --duration (default 5,000,000)")
    parser.add_argument("--max-bytes", type=int, default=32 * 2**20,
                        help="edgecache cache.max_bytes in bytes (default 32 MiB)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", help="also write the report as JSON to this file")
    args = parser.parse_args()
    report = asyncio.run(soak(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
