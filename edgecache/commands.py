"""The demo, demo-origin, purge and stats commands."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from yarl import URL

from .config import build_settings, read_toml
from .errors import ListenError
from .explain import format_explanation

if TYPE_CHECKING:
    from .demo.inventory import StockChange
    from .server import Edgecache

# The demo's settings: product pages for 30 s, category pages for 60 s, static files
# for an hour unless their Cache-Control sets a lifetime.
DEMO_SETTINGS: dict[str, Any] = {
    "rules": [
        {"name": "product", "match": "/*/p", "ttl": 30, "stale_while_revalidate": 10},
        {"name": "category", "match": "/c/*", "ttl": 60},
        {"name": "static", "match": "/static/*", "ttl": 3600,
         "content_types": ["text/css", "application/javascript", "text/javascript"]},
    ],
}


async def _start_demo_origin(listen: str, **options: Any) -> web.AppRunner:
    from .demo.app import create_app
    from .server import split_host_port

    runner = web.AppRunner(create_app(**options), access_log=None, handle_signals=False)
    await runner.setup()
    host, port = split_host_port(listen)
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(f"demo storefront: cannot listen on {listen} ({exc.strerror or exc}); "
                          "stop the process that uses it or choose another address") from exc
    return runner


async def _wait_for_stop(duration: float | None) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except TimeoutError:
        pass


def cmd_demo_origin(args: argparse.Namespace) -> int:
    from .cli import configure_logging, run_async

    configure_logging("info")

    async def run() -> None:
        runner = await _start_demo_origin(
            args.listen, page_bytes=args.page_bytes, cache_control=args.cache_control,
            change_interval=args.change_interval or None,
        )
        print(f"demo storefront on http://{_with_port(args.listen, _bound_port(runner))}/", flush=True)
        try:
            await _wait_for_stop(args.duration)
        finally:
            await runner.cleanup()

    run_async(run())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .cli import configure_logging, run_async
    from .server import Edgecache

    raw = read_toml(args.config) if args.config else dict(DEMO_SETTINGS)
    overrides = {"origin": {"url": f"http://{args.origin_listen}"}, "server": {}}
    if args.listen:
        overrides["server"]["listen"] = args.listen
    if args.admin_listen:
        overrides["server"]["admin_listen"] = args.admin_listen
    settings = build_settings(raw, overrides=overrides)
    configure_logging("warning")

    async def run() -> None:
        from .demo.inventory import Inventory

        inventory = Inventory()
        origin = await _start_demo_origin(args.origin_listen, inventory=inventory)
        # Port 0 in a listen flag picks a free port, so print and request the bound ones.
        origin_listen = _with_port(args.origin_listen, _bound_port(origin))
        origin_settings = dataclasses.replace(settings.origin, url=f"http://{origin_listen}")
        edgecache = Edgecache(dataclasses.replace(settings, origin=origin_settings))
        try:
            await edgecache.start()
        except ListenError:
            await origin.cleanup()
            raise
        unsubscribe = inventory.subscribe(inventory_feed(edgecache))
        try:
            await _show_demo(_with_port(settings.server.listen, edgecache.proxy_port),
                             _with_port(settings.server.admin_listen, edgecache.admin_port), origin_listen)
            await _wait_for_stop(args.duration)
        finally:
            unsubscribe()
            await edgecache.stop()
            await origin.cleanup()

    run_async(run())
    return 0


def _with_port(listen: str, port: int) -> str:
    """Return a HOST:PORT listen value with its port replaced by the bound one."""
    host = listen.rpartition(":")[0]
    return f"{host}:{port}"


def _bound_port(runner: web.AppRunner) -> int:
    """Return the TCP port a runner listens on."""
    return next(int(address[1]) for address in runner.addresses if isinstance(address, tuple))


def inventory_feed(edgecache: Edgecache) -> Callable[[StockChange], None]:
    """Return a demo Inventory listener that hands every stock change to edgecache as an event."""
    from .inventory import InventoryEvent

    def feed(change: StockChange) -> None:
        event = InventoryEvent(sku=change.sku, state=change.state.value, available_quantity=None,
                               version=change.version, timestamp=change.timestamp)
        edgecache.apply_inventory_events([event])

    return feed


async def _show_demo(listen: str, admin_listen: str, origin_listen: str) -> None:
    """Print where to look, and show one miss and one hit."""
    page = "/summit-duffel-1/p"
    print(f"demo storefront (origin): http://{origin_listen}/")
    print(f"edgecache (shoppers):     http://{listen}/")
    print(f"dashboard (operators):    http://{admin_listen}/")
    print(f"admin figures:            http://{admin_listen}/stats  and /metrics")
    print("stock changes every 2 s reach edgecache as inventory events, so pages follow the stock")
    async with aiohttp.ClientSession() as session:
        for attempt in ("first", "second"):
            async with session.get(f"http://{listen}{page}") as response:
                await response.read()
                print(f"GET {page} ({attempt}): {response.status} X-Cache: {response.headers.get('X-Cache')}"
                      f"  Cache-Status: {response.headers.get('Cache-Status')}")
    print(f"try: curl -sI http://{listen}{page}   (add ?anything to force a fresh page)")
    print("press Ctrl-C to stop", flush=True)


def _admin_request(method: str, url: str, *, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    async def send() -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as session:
            async with session.request(method, url, json=body, headers=headers) as response:
                text = await response.text()
                try:
                    return response.status, json.loads(text)
                except ValueError:
                    return response.status, text

    return asyncio.run(send())


def path_of(value: str) -> str:
    """Return the path of an http(s) URL, such as a proxy URL copied from a browser; return other values as given.

    The query string is dropped because requests with one are never stored.
    """
    try:
        url = URL(value)
    except ValueError:
        return value
    if url.scheme in ("http", "https") and url.is_absolute():
        return url.raw_path or "/"
    return value


def cmd_purge(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("EDGECACHE_ADMIN_TOKEN")
    body: dict[str, Any] = {"soft": args.soft}
    if args.all:
        body["all"] = True
    if args.path:
        body["paths"] = [path_of(value) for value in args.path]
    if args.prefix:
        body["prefixes"] = [path_of(value) for value in args.prefix]
    if args.tag:
        body["tags"] = args.tag
    try:
        status, answer = _admin_request("POST", args.admin.rstrip("/") + "/purge", token=token, body=body)
    except aiohttp.ClientError as exc:
        print(f"edgecache: cannot reach the admin listener at {args.admin}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer) if not isinstance(answer, str) else answer)
    return 0 if status == 200 else 1


def format_stats(data: dict[str, Any]) -> str:
    requests = data["requests"]
    age = data["staleness"]["served_age_seconds"]
    cache = data["cache"]
    origin = data["origin"]
    lines = [
        f"uptime {data['uptime_seconds']:.0f} s   hit ratio {_format_ratio(data['hit_ratio'])}   "
        f"lookups {data['lookups']}",
        "requests   " + "  ".join(f"{name} {requests[name]}" for name in requests),
        f"cache      entries {cache['entries']}  bytes {cache['bytes']} / {cache['max_bytes']}  "
        f"evictions {cache['evictions']}",
        f"origin     requests {origin['requests']}  errors {origin['errors']}  timeouts {origin['timeouts']}  "
        f"coalesced {origin['coalesced']}",
        f"served age p50 {age['p50']:.0f} s  p90 {age['p90']:.0f} s  p99 {age['p99']:.0f} s  max {age['max']:.0f} s  "
        f"stale served {data['staleness']['stale_served']}",
        _format_inventory(data),
    ]
    lines += _format_rolling(data.get("rolling", {}))
    for title, name in (("bypassed", "bypassed"), ("fetched", "origin_fetches")):
        items = data.get("top", {}).get(name, [])[:TOP_LINES]
        if items:
            lines.append(f"{title:<11}" + "  ".join(f"{item['key']} {item['count']}" for item in items))
    return "\n".join(lines)


def _format_inventory(data: dict[str, Any]) -> str:
    """Return the line of known-stale responses by direction, inventory lag and reconciliation checks."""
    staleness = data["staleness"]
    known = dict(staleness["known_stale"])
    total = known.pop("total")
    directions = ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in known.items())
    lag = staleness["inventory_lag_seconds"]
    reconcile = data["reconcile"]
    return (f"inventory  known stale {total}" + (f" ({directions})" if directions else "")
            + f"  lag p50 {lag['p50']:.1f} s  p90 {lag['p90']:.1f} s  max {lag['max']:.1f} s  "
            f"reconcile checks {reconcile['checks']} mismatches {reconcile['mismatches']}")


# Keys shown per top list in the terminal; /stats has the whole list.
TOP_LINES = 3


def _format_ratio(ratio: float | None) -> str:
    """Format a hit ratio as a percentage, or as "-" when it is null because there were no lookups."""
    return "-" if ratio is None else f"{ratio * 100:.1f} %"


def _format_rolling(rolling: dict[str, Any]) -> list[str]:
    lines = []
    for name in ("1m", "5m"):
        window = rolling.get(name)
        if window is None:
            continue
        rates = window["requests_per_second"]
        lines.append(f"last {name:<6}{rates['total']:.1f} req/s   hit ratio {_format_ratio(window['hit_ratio'])}   "
                     + "  ".join(f"{outcome} {rate:.1f}/s" for outcome, rate in rates.items() if outcome != "total"))
    return lines


def cmd_stats(args: argparse.Namespace) -> int:
    url = args.admin.rstrip("/") + "/stats"
    try:
        while True:
            status, data = _admin_request("GET", url)
            if status != 200:
                print(f"edgecache: {url} returned status {status}", file=sys.stderr)
                return 1
            if args.watch:
                print("\x1b[2J\x1b[H", end="")
            print(format_stats(data), flush=True)
            if not args.watch:
                return 0
            time.sleep(1)
    except aiohttp.ClientError as exc:
        print(f"edgecache: cannot reach the admin listener at {args.admin}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def explain_query(url: str) -> dict[str, str]:
    """Return the /entries query for a proxy URL or a bare path."""
    parsed = URL(url)
    if not parsed.is_absolute():
        return {"path": url if url.startswith("/") else "/" + url}
    query = {"path": parsed.raw_path_qs}
    if parsed.raw_host:
        query["host"] = parsed.raw_host if parsed.explicit_port is None else f"{parsed.raw_host}:{parsed.explicit_port}"
    return query


def cmd_explain(args: argparse.Namespace) -> int:
    url = URL(args.admin.rstrip("/") + "/entries").with_query(explain_query(args.url))
    try:
        status, document = _admin_request("GET", str(url))
    except aiohttp.ClientError as exc:
        print(f"edgecache: cannot reach the admin listener at {args.admin}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"edgecache: {url} returned status {status}: {document}", file=sys.stderr)
        return 1
    print(json.dumps(document, indent=2) if args.json else format_explanation(document))
    return 0
