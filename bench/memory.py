"""Measure edgecache's resident memory per stored entry, and under a flood of distinct paths.

Starts a loopback origin in this process, serving `/page/<n>` with a body of
--body-bytes and `Cache-Control: public, max-age=3600`, and `edgecache serve` as a
subprocess in front of it. It then requests --pages distinct pages once each (every
one a miss that is stored until evicted), with --concurrency requests at a time. It
reports edgecache's resident memory (VmRSS) before and after, the store's own count
of entries and bytes from /stats, and the resident growth per stored entry.

With --max-bytes smaller than the pages sent, the run is a flood. The store must
evict, and the report shows how far resident growth went past cache.max_bytes.

    .venv/bin/python bench/memory.py --body-bytes 2048 --pages 10000
    .venv/bin/python bench/memory.py --body-bytes 100 --pages 60000 --max-bytes 16777216 --path-chars 200

Everything listens on 127.0.0.1; the run stops after --pages requests or --timeout
seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from soak import free_port, resident_bytes, wait_ready


def create_origin(body_bytes: int) -> web.Application:
    body = (b"<p>page</p>" * (body_bytes // 11 + 1))[:body_bytes]

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html",
                            headers={"Cache-Control": "public, max-age=3600"})

    app = web.Application()
    app.router.add_get("/page/{name}", page)
    return app


def write_config(directory: Path, origin_port: int, proxy_port: int, admin_port: int, max_bytes: int) -> Path:
    path = directory / "memory.toml"
    path.write_text(f"""
[server]
listen = "127.0.0.1:{proxy_port}"
admin_listen = "127.0.0.1:{admin_port}"
access_log = false
log_level = "warning"
[origin]
url = "http://127.0.0.1:{origin_port}"
[cache]
max_bytes = {max_bytes}
""")
    return path


async def fetch_pages(proxy: str, pages: int, concurrency: int, path_chars: int, deadline: float) -> dict[str, int]:
    """Request each of `pages` distinct paths once; return counts of statuses and errors."""
    counts: dict[str, int] = {}
    queue = iter(range(pages))
    # Padding makes every path --path-chars long, to include the key's own size.
    prefix = f"{proxy}/page/"

    async def client(session: aiohttp.ClientSession) -> None:
        for number in queue:
            if time.monotonic() > deadline:
                return
            name = str(number).rjust(max(1, path_chars - len("/page/")), "x")
            try:
                async with session.get(prefix + name) as response:
                    await response.read()
                    label = str(response.status)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                label = type(exc).__name__
            counts[label] = counts.get(label, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return counts


async def cache_figures(admin: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{admin}/stats") as response:
            stats = await response.json()
    return dict(stats["cache"])


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    runner = web.AppRunner(create_origin(args.body_bytes), access_log=None)
    await runner.setup()
    origin_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", origin_port).start()
    with tempfile.TemporaryDirectory() as directory:
        config = write_config(Path(directory), origin_port, proxy_port, admin_port, args.max_bytes)
        process = subprocess.Popen([sys.executable, "-m", "edgecache", "serve", "--config", str(config),
                                    "--duration", str(args.timeout + 30)])
        try:
            admin = f"http://127.0.0.1:{admin_port}"
            await wait_ready(f"{admin}/health")
            # One warm-up page: the first request loads code paths and the origin pool.
            await fetch_pages(f"http://127.0.0.1:{proxy_port}", 1, 1, 8, time.monotonic() + 10)
            rss_before = resident_bytes(process.pid)
            started = time.monotonic()
            statuses = await fetch_pages(f"http://127.0.0.1:{proxy_port}", args.pages, args.concurrency,
                                         args.path_chars, started + args.timeout)
            elapsed = time.monotonic() - started
            rss_after = resident_bytes(process.pid)
            cache = await cache_figures(admin)
        finally:
            process.terminate()
            process.wait(timeout=30)
            await runner.cleanup()
    growth = rss_after - rss_before
    entries = cache["entries"]
    return {
        "body_bytes": args.body_bytes,
        "path_chars": args.path_chars,
        "pages_requested": sum(statuses.values()),
        "statuses": statuses,
        "seconds": round(elapsed, 1),
        "max_bytes": args.max_bytes,
        "cache": cache,
        "rss_mib": {"before": round(rss_before / 2**20, 1), "after": round(rss_after / 2**20, 1),
                    "growth": round(growth / 2**20, 1)},
        "counted_bytes_per_entry": round(cache["bytes"] / entries) if entries else None,
        "rss_growth_bytes_per_entry": round(growth / entries) if entries else None,
        "rss_growth_over_counted": round(growth / cache["bytes"], 2) if cache["bytes"] else None,
        "rss_growth_over_max_bytes": round(growth / args.max_bytes, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body-bytes", type=int, default=2048, help="body size of every page in bytes (default 2048)")
    parser.add_argument("--pages", type=int, default=10_000, help="distinct pages requested, once each (default 10,000)")
    parser.add_argument("--max-bytes", type=int, default=512 * 2**20,
                        help="edgecache cache.max_bytes in bytes (default 512 MiB)")
    parser.add_argument("--path-chars", type=int, default=16, help="length of each request path (default 16)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at once (default 16)")
    parser.add_argument("--timeout", type=float, default=300.0, help="stop sending after this many seconds (default 300)")
    parser.add_argument("--output", help="also write the report as JSON to this file")
    args = parser.parse_args()
    report = asyncio.run(measure(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
