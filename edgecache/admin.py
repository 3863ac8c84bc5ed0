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
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from yarl import URL

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
# The address of the client that sent an admin request to the supervisor of `serve --workers`.
# The supervisor sets it when it passes the request on, and a worker reads it only on its Unix socket.
CLIENT_HEADER = "X-Edgecache-Client"
# Values of each purge selector named in the purge log line; the count covers the rest.
LOGGED_PURGE_VALUES = 3
# The dashboard's page, script and style sheet; it needs nothing from the internet.
STATIC_DIR = Path(__file__).parent / "admin_static"


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, indent=2, sort_keys=False) + "\n",
                        content_type="application/json")


def json_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


def client_address(request: web.Request) -> str:
    """Return the address of the client that sent an admin request, for log lines.

    On a worker's Unix socket the peer is the supervisor, so the address is the one
    the supervisor forwarded in CLIENT_HEADER. A TCP client cannot set it.
    """
    peer = request.transport.get_extra_info("socket") if request.transport is not None else None
    if peer is not None and peer.family == socket.AF_UNIX:
        return request.headers.get(CLIENT_HEADER, "the supervisor")
    return request.remote or "an unknown address"


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
        client = client_address(request)
        request.app[REJECTIONS_KEY].log(logging.WARNING, f"token from {client}",
                                        "rejected %s %s from %s: missing or wrong token", request.method,
                                        request.path, client)
        return json_error(401, "missing or wrong bearer token")
    return None


async def read_json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, "body is not valid JSON")
    if not isinstance(body, (dict, list)):
        return json_error(400, f"body: invalid value {json.dumps(body)[:80]}; expected a JSON object")
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
    admin_logger.info("figures reset by %s", client_address(request))
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


PURGE_FIELDS = ("all", "paths", "prefixes", "soft", "tags")
PURGE_LISTS = ("paths", "prefixes", "tags")
SINGULAR = {"paths": "path", "prefixes": "prefix", "tags": "tag"}


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
        return json_error(400, f"body: invalid value {json.dumps(body)[:80]}; expected a JSON object")
    problem = check_purge_body(body)
    if problem:
        return json_error(400, problem)
    edgecache = request.app[EDGECACHE_KEY]
    result = await edgecache.purge(paths=body.get("paths", []), prefixes=body.get("prefixes", []),
                                   tags=body.get("tags", []), purge_all=body.get("all", False),
                                   soft=body.get("soft", False), shared=shared)
    admin_logger.info("purge from %s of %s: %s", client_address(request), describe_purge(body), json.dumps(result))
    return json_response(result)


def check_purge_body(body: dict[str, Any]) -> str | None:
    """Return what is wrong with a purge request body, in `<field>: <problem>; expected <allowed>` form."""
    unknown = sorted(set(body) - set(PURGE_FIELDS))
    if unknown:
        return f"{unknown[0]}: unknown field; expected one of {', '.join(PURGE_FIELDS)}"
    for name in PURGE_LISTS:
        value = body.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            return f"{name}: invalid value {json.dumps(value)[:80]}; expected a list of non-empty strings"
    for name in ("paths", "prefixes"):
        for index, item in enumerate(body.get(name, [])):
            if not item.startswith("/"):
                return (f"{name}[{index}]: invalid value {json.dumps(item)}; expected a path that starts "
                        f'with "/", such as {json.dumps(suggested_path(item))}')
    for name in ("all", "soft"):
        if not isinstance(body.get(name, False), bool):
            return f"{name}: invalid value {json.dumps(body[name])[:80]}; expected true or false"
    named = [name for name in PURGE_LISTS if body.get(name)]
    if body.get("all") and named:
        return (f"all: ambiguous together with {', '.join(named)}; expected either \"all\": true alone "
                "or paths, prefixes and tags without it")
    if not body.get("all") and not named:
        return "body: nothing to purge; expected at least one of paths, prefixes, tags or \"all\": true"
    return None


def suggested_path(value: str) -> str:
    """Return the path a client probably meant: a URL's path, or the value with a leading "/"."""
    try:
        url = URL(value)
    except ValueError:
        url = None
    if url is not None and url.is_absolute():
        return url.raw_path or "/"
    return "/" + value


def describe_purge(body: dict[str, Any]) -> str:
    """Return what a purge request names, for the log: counts and the first few values, never the token."""
    if body.get("all"):
        parts = ["everything"]
    else:
        parts = []
        for name in PURGE_LISTS:
            values = body.get(name, [])
            if values:
                shown = json.dumps(values[:LOGGED_PURGE_VALUES])
                more = f" and {len(values) - LOGGED_PURGE_VALUES} more" if len(values) > LOGGED_PURGE_VALUES else ""
                noun = name if len(values) > 1 else SINGULAR[name]
                parts.append(f"{len(values)} {noun} {shown}{more}")
    return ", ".join(parts) + (" (soft)" if body.get("soft") else " (hard)")


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
