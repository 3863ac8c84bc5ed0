"""The admin listener: figures, health, purges and inventory events for operators.

Reading endpoints are open (the listener binds to loopback by default). Purges and
inventory events need the bearer token; with no token configured they return 403.
`POST /stats/reset` needs the token only when one is configured, so a load tester
on a default loopback setup can reset figures between runs.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .entry import Entry
from .explain import InventoryFacts, explain
from .key import build_key
from .log import admin_logger
from .logthrottle import ThrottledLogger
from .metrics import build_registry, render

if TYPE_CHECKING:
    from .server import Edgecache

EDGECACHE_KEY: web.AppKey["Edgecache"] = web.AppKey("edgecache")
# Rejected-token warnings, at most one a minute per client address, so a token-guessing client cannot flood the log.
REJECTIONS_KEY: web.AppKey[ThrottledLogger] = web.AppKey("rejections")
# The dashboard's page, script and style sheet; it needs nothing from the internet.
STATIC_DIR = Path(__file__).parent / "admin_static"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, indent=2, sort_keys=False) + "\n",
                        content_type="application/json")


def json_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


def check_token(request: web.Request, *, required: bool) -> web.Response | None:
    """Return an error response unless the request carries the admin token."""
    token = request.app[EDGECACHE_KEY].admin_token
    if not token:
        if not required:
            return None
        return json_error(403, "admin token not configured; set admin.token, admin.token_file "
                               "or the EDGECACHE_ADMIN_TOKEN environment variable to enable this endpoint")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
        request.app[REJECTIONS_KEY].log(logging.WARNING, f"token from {request.remote}",
                                        "rejected %s %s from %s: missing or wrong token", request.method,
                                        request.path, request.remote)
        return json_error(401, "missing or wrong bearer token")
    return None


async def read_json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, "body is not valid JSON")
    if not isinstance(body, (dict, list)):
        return json_error(400, "body must be a JSON object")
    return body  # type: ignore[return-value]


async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def open_fds() -> int | None:
    """Return how many file descriptors this process has open, or None where /proc is missing."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


async def health(request: web.Request) -> web.Response:
    """Report that the process serves, with the figures a soak run watches for leaks.

    `asyncio_tasks` includes the task that handles this request.
    """
    edgecache = request.app[EDGECACHE_KEY]
    return json_response({"status": "ok", "uptime_seconds": round(edgecache.uptime(), 3),
                          "entries": len(edgecache.store), "shared": edgecache.shared_state(),
                          "asyncio_tasks": len(asyncio.all_tasks()), "open_fds": open_fds()})


async def stats(request: web.Request) -> web.Response:
    return json_response(request.app[EDGECACHE_KEY].snapshot())


async def stats_reset(request: web.Request) -> web.Response:
    denied = check_token(request, required=False)
    if denied is not None:
        return denied
    request.app[EDGECACHE_KEY].stats.reset()
    admin_logger.info("figures reset by %s", request.remote)
    return json_response({"reset": True})


async def metrics(request: web.Request) -> web.Response:
    edgecache = request.app[EDGECACHE_KEY]
    assert edgecache.registry is not None, "create_admin_app builds the registry"
    body = render(edgecache.registry)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def entries(request: web.Request) -> web.Response:
    """Explain what is stored for `?path=` and what a GET of it would get (`host` and `cookie` optional)."""
    raw_path = request.query.get("path", "")
    if not raw_path:
        return json_error(400, "missing query parameter 'path', for example /entries?path=/summit-duffel-1/p")
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    cookies = dict(item.partition("=")[::2] for item in request.query.getall("cookie", []))
    edgecache = request.app[EDGECACHE_KEY]
    settings = edgecache.settings
    key = build_key(raw_path, request.query.get("host"), cookies, settings=settings.key,
                    default_site=settings.site_host,
                    allowed_hosts=tuple(host.lower() for host in settings.site.allowed_hosts))
    found = edgecache.store.variants_of(key)
    inventory = {entry.store_key: inventory_facts(edgecache, entry) for entry in found}
    document = explain(raw_path, str(key), found, edgecache.clock(), rule=settings.rule_for(key.path),
                       has_query="?" in raw_path, inventory=inventory)
    return json_response(document)


def inventory_facts(edgecache: Edgecache, entry: Entry) -> InventoryFacts:
    """Collect the latest event states of an entry's SKUs, its known-stale mark and any deferred purge."""
    latest: dict[str, str | None] = {sku: edgecache.tracker.state(sku) for sku, _ in entry.claims}
    for record in edgecache.tracker.records_for_tags(entry.tags):
        latest.setdefault(record.sku, record.state)
    pending = edgecache.invalidator.pending_purge(entry.store_key)
    return InventoryFacts(latest, known_stale_since=edgecache.staleness.known_stale_since(entry),
                          purge_due=pending.due if pending is not None else None)


PURGE_FIELDS = {"paths", "prefixes", "tags", "all", "soft"}


async def purge(request: web.Request) -> web.Response:
    return await handle_purge(request, shared=True)


async def handle_purge(request: web.Request, *, shared: bool) -> web.Response:
    """Check and apply a purge; `shared=False` leaves Redis and the other nodes alone."""
    denied = check_token(request, required=True)
    if denied is not None:
        return denied
    body = await read_json_object(request)
    if isinstance(body, web.Response):
        return body
    if not isinstance(body, dict):
        return json_error(400, "body must be a JSON object")
    unknown = sorted(set(body) - PURGE_FIELDS)
    if unknown:
        return json_error(400, f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(PURGE_FIELDS))}")
    for name in ("paths", "prefixes", "tags"):
        value = body.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            return json_error(400, f"field {name!r} must be a list of non-empty strings")
    for name in ("all", "soft"):
        if not isinstance(body.get(name, False), bool):
            return json_error(400, f"field {name!r} must be true or false")
    if not any(body.get(name) for name in ("paths", "prefixes", "tags", "all")):
        return json_error(400, "name what to purge: paths, prefixes, tags or all")
    edgecache = request.app[EDGECACHE_KEY]
    result = await edgecache.purge(paths=body.get("paths", []), prefixes=body.get("prefixes", []),
                             tags=body.get("tags", []), purge_all=body.get("all", False),
                             soft=body.get("soft", False), shared=shared)
    admin_logger.info("purge from %s: %s", request.remote, json.dumps(result))
    return json_response(result)


def create_admin_app(edgecache: Edgecache) -> web.Application:
    app = web.Application()
    app[EDGECACHE_KEY] = edgecache
    app[REJECTIONS_KEY] = ThrottledLogger(admin_logger)
    edgecache.registry = build_registry(edgecache.stats, edgecache.cache_figures, edgecache.shared_figures)
    app.router.add_get("/", dashboard)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats)
    app.router.add_post("/stats/reset", stats_reset)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/entries", entries)
    app.router.add_post("/purge", purge)
    return app
