"""Staleness benchmark: how often shoppers see the wrong availability, per caching mode.

Drives the demo storefront on loopback with stock changing at a set rate (sales,
sell-outs, restocks from `Inventory.step`) and Zipf-skewed shopper traffic on
product pages. Every page view is judged against the in-process Inventory (the
checkout truth) when its body has arrived: a view is wrong when its JSON-LD claims
the product available while it is sold out, or sold out while it can be ordered.

Modes: ttl (edgecache, TTL only), events (plus inventory events fed in-process),
reconcile (plus the reconciliation sampler), nginx (proxy_cache with the same TTL,
when nginx is installed). Each mode starts from an empty cache, the same catalog and
the same random seeds, runs for --duration seconds and stops by itself.

    .venv/bin/python bench/staleness.py --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from edgecache.commands import inventory_feed
from edgecache.config import build_settings
from edgecache.demo.app import STATE_KEY, create_app
from edgecache.demo.inventory import Inventory
from edgecache.server import Edgecache

HOST = "127.0.0.1"
NGINX_CONF = Path(__file__).with_name("nginx-staleness.conf")
JSON_LD = re.compile(rb'<script type="application/ld\+json">(.*?)</script>', re.S)
AVAILABLE = {"InStock", "LimitedAvailability", "BackOrder"}
CACHED_OUTCOMES = {"HIT", "STALE", "UPDATING", "REVALIDATED"}


@dataclass
class Tally:
    views: int = 0
    cached: int = 0
    wrong_available: int = 0
    wrong_unavailable: int = 0
    errors: int = 0
    # Wrong views by the cache's outcome header (HIT, STALE, MISS, ...), to tell their causes apart.
    wrong_by_outcome: dict[str, int] = field(default_factory=dict)
    origin_renders: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self, mode: str) -> str:
        views = max(1, self.views)
        return (f"{mode:<10} {self.views:>7} {self.cached / views:>8.2%} {self.origin_renders / self.seconds:>9.1f} "
                f"{(self.wrong_available + self.wrong_unavailable) / views:>8.3%} "
                f"{self.wrong_available / views:>10.3%} {self.wrong_unavailable / views:>11.3%} {self.errors:>6}")


def zipf_weights(count: int, exponent: float) -> list[float]:
    """Return cumulative Zipf weights over ranks 1..count."""
    cumulative, total = [], 0.0
    for rank in range(1, count + 1):
        total += 1.0 / rank ** exponent
        cumulative.append(total)
    return cumulative


def claimed_available(body: bytes) -> bool | None:
    match = JSON_LD.search(body)
    if match is None:
        return None
    availability = json.loads(match.group(1))["offers"]["availability"]
    return availability.rsplit("/", 1)[-1] in AVAILABLE


async def shopper(session: aiohttp.ClientSession, base: str, inventory: Inventory, slugs: list[str],
                  weights: list[float], rng: random.Random, rate: float, deadline: float, tally: Tally) -> None:
    """Request product pages at `rate` per second until the deadline; judge each view."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while loop.time() < deadline:
        slug = slugs[bisect.bisect_left(weights, rng.random() * weights[-1])]
        try:
            async with session.get(f"{base}/{slug}/p") as response:
                body = await response.read()
                outcome = response.headers.get("X-Cache-Status") or response.headers.get("X-Cache", "")
        except aiohttp.ClientError:
            tally.errors += 1
            continue
        product = inventory.product_by_slug(slug)
        assert product is not None
        truth = inventory.stock(product.sku).state.value != "out_of_stock"
        claimed = claimed_available(body)
        tally.views += 1
        tally.cached += outcome.upper() in CACHED_OUTCOMES
        if claimed is None:
            tally.errors += 1
        elif claimed != truth:
            if claimed:
                tally.wrong_available += 1
            else:
                tally.wrong_unavailable += 1
            tally.wrong_by_outcome[outcome.upper()] = tally.wrong_by_outcome.get(outcome.upper(), 0) + 1
        next_at += 1.0 / rate
        await asyncio.sleep(max(0.0, next_at - loop.time()))


async def stock_changes(inventory: Inventory, rate: float, seed: int, deadline: float) -> None:
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        inventory.step(rng)
        await asyncio.sleep(1.0 / rate)


def edgecache_settings(args: argparse.Namespace, mode: str, origin_port: int) -> Any:
    raw = {
        "server": {"listen": f"{HOST}:0", "admin_listen": f"{HOST}:0", "access_log": False,
                   "shutdown_timeout": 1.0},
        "origin": {"url": f"http://{HOST}:{origin_port}"},
        "rules": [{"name": "product", "match": "/*/p", "ttl": args.ttl, "stale_while_revalidate": 10}],
        "reconcile": {"requests_per_second": args.reconcile_rate if mode == "reconcile" else 0.0},
    }
    return build_settings(raw, environ={})


def free_port() -> int:
    """Return a loopback port that nothing listened on a moment ago, for nginx, which cannot report one."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_nginx(args: argparse.Namespace, prefix: Path, *, port: int, origin_port: int) -> subprocess.Popen[bytes]:
    conf = NGINX_CONF.read_text()
    for name, value in (("@PREFIX@", str(prefix)), ("@LISTEN@", f"{HOST}:{port}"),
                        ("@ORIGIN@", f"{HOST}:{origin_port}"), ("@TTL@", str(args.ttl))):
        conf = conf.replace(name, value)
    (prefix / "nginx.conf").write_text(conf)
    return subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_for_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout} s")


async def run_mode(args: argparse.Namespace, mode: str) -> Tally:
    inventory = Inventory(product_count=args.products, seed=args.seed)
    app = create_app(inventory, change_interval=None, seed=args.seed)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    origin_port = int(runner.addresses[0][1])
    edgecache: Edgecache | None = None
    nginx: subprocess.Popen[bytes] | None = None
    prefix = Path(tempfile.mkdtemp(prefix="edgecache-bench-nginx-"))
    unsubscribe = None
    try:
        if mode == "nginx":
            prefix.chmod(0o777)
            nginx_port = free_port()
            nginx = start_nginx(args, prefix, port=nginx_port, origin_port=origin_port)
            await wait_for_port(nginx_port)
            base = f"http://{HOST}:{nginx_port}"
        else:
            edgecache = Edgecache(edgecache_settings(args, mode, origin_port))
            await edgecache.start()
            if mode != "ttl":
                unsubscribe = inventory.subscribe(inventory_feed(edgecache))
            base = f"http://{HOST}:{edgecache.proxy_port}"
        tally = await drive(args, base, inventory)
        tally.origin_renders = app[STATE_KEY].rendered_count
        if edgecache is not None:
            snapshot = edgecache.snapshot()
            tally.extra = {"known_stale": snapshot["staleness"]["known_stale"], "reconcile": snapshot["reconcile"],
                           "inventory": snapshot["inventory"]}
        tally.extra["wrong_by_outcome"] = dict(sorted(tally.wrong_by_outcome.items()))
        return tally
    finally:
        if unsubscribe is not None:
            unsubscribe()
        if edgecache is not None:
            await edgecache.stop()
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        shutil.rmtree(prefix, ignore_errors=True)
        await runner.cleanup()


async def drive(args: argparse.Namespace, base: str, inventory: Inventory) -> Tally:
    tally = Tally()
    slugs = inventory.slugs()
    weights = zipf_weights(len(slugs), args.zipf)
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + args.duration
    connector = aiohttp.TCPConnector(limit=args.shoppers)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [shopper(session, base, inventory, slugs, weights, random.Random(args.seed * 1000 + number),
                         args.rate / args.shoppers, deadline, tally) for number in range(args.shoppers)]
        tasks.append(stock_changes(inventory, args.change_rate, args.seed, deadline))
        await asyncio.gather(*tasks)
    tally.seconds = loop.time() - started
    return tally


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per mode (default 20)")
    parser.add_argument("--rate", type=float, default=400.0, help="page views per second (default 400)")
    parser.add_argument("--shoppers", type=int, default=16, help="concurrent shoppers (default 16)")
    parser.add_argument("--change-rate", type=float, default=10.0, help="stock changes per second (default 10)")
    parser.add_argument("--products", type=int, default=200, help="catalog size (default 200)")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of product popularity (default 1.1)")
    parser.add_argument("--ttl", type=int, default=30, help="product page TTL in seconds, all modes (default 30)")
    parser.add_argument("--reconcile-rate", type=float, default=20.0,
                        help="origin requests/s of the sampler in the reconcile mode (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", default="ttl,events,reconcile,nginx",
                        help="comma-separated modes (default ttl,events,reconcile,nginx)")
    parser.add_argument("--json", action="store_true", help="print edgecache's own figures per mode too")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if "nginx" in modes and shutil.which("nginx") is None:
        print("nginx not found (apt-get install -y nginx); skipping the nginx mode", file=sys.stderr)
        modes.remove("nginx")
    print(f"{args.duration:.0f} s per mode, {args.rate:.0f} views/s by {args.shoppers} shoppers, "
          f"{args.change_rate:.0f} stock changes/s, {args.products} products, Zipf {args.zipf}, TTL {args.ttl} s")
    print(f"{'mode':<10} {'views':>7} {'hit':>8} {'origin/s':>9} {'wrong':>8} {'avail-oos':>10} "
          f"{'unavail-in':>11} {'errors':>6}")
    for mode in modes:
        tally = await run_mode(args, mode)
        print(tally.row(mode), flush=True)
        if args.json and tally.extra:
            print("           " + json.dumps(tally.extra, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
