"""One worker process: a whole Edgecache whose proxy listener shares the port with its siblings.

Each worker runs its own event loop (uvloop when installed) and binds the proxy
port with SO_REUSEPORT, so the kernel spreads new connections over the workers.
Instead of the admin port, a worker serves the admin app on a Unix socket that
only the supervisor uses. It has four more routes. One returns the raw figures
the supervisor adds up, one applies inventory events and returns the SKU records
they left, one adopts such records decided by a sibling worker, and one purges
the memory store alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..admin import EDGECACHE_KEY, handle_purge, json_error, json_response
from ..admin_events import receive_events
from ..config import Settings
from ..log import workers_logger
from ..shared.invalidation import InventoryMessage, decode_message
from .figures import export_stats

FIGURES_PATH = "/internal/figures"
DECIDE_PATH = "/internal/events/inventory"
ADOPT_PATH = "/internal/inventory/adopt"
LOCAL_PURGE_PATH = "/internal/purge/local"
# Seconds between two checks that the supervisor still runs.
ORPHAN_CHECK_INTERVAL = 1.0


async def figures(request: web.Request) -> web.Response:
    edgecache = request.app[EDGECACHE_KEY]
    data: dict[str, Any] = {"stats": export_stats(edgecache.stats), "cache": edgecache.cache_figures(),
                            "shared": edgecache.shared_figures()}
    return json_response(data)


async def decide_events(request: web.Request) -> web.Response:
    return await receive_events(request, with_records=True)


async def adopt_records(request: web.Request) -> web.Response:
    """Apply the SKU records a sibling worker decided; without Redis this worker also refetches."""
    edgecache = request.app[EDGECACHE_KEY]
    try:
        _, message = decode_message(await request.read())
        if not isinstance(message, InventoryMessage):
            raise ValueError("the message is not of type inventory")
    except ValueError as exc:
        workers_logger.warning("worker %d: invalid inventory records from the supervisor: %s", os.getpid(), exc)
        return json_error(400, f"invalid inventory records: {exc}")
    result = edgecache.adopt_inventory(message.records, at=message.at, refetch=edgecache.shared is None)
    return json_response(result)


async def purge_local(request: web.Request) -> web.Response:
    return await handle_purge(request, shared=False)


def add_worker_routes(app: web.Application) -> None:
    app.router.add_get(FIGURES_PATH, figures)
    app.router.add_post(DECIDE_PATH, decide_events)
    app.router.add_post(ADOPT_PATH, adopt_records)
    app.router.add_post(LOCAL_PURGE_PATH, purge_local)


def run_worker(settings: Settings, index: int, socket_path: str,
               load_settings: Callable[[], Settings] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, reloading on SIGHUP; the target of each worker process."""
    from ..cli import configure_logging, run_async
    from ..server import Edgecache, serve_forever

    # A process group of its own keeps a terminal's Ctrl-C away from the worker: the
    # supervisor decides when workers stop, and sends them SIGTERM.
    os.setpgrp()
    configure_logging(settings.server.log_level)
    edgecache = Edgecache(settings, reuse_port=True, admin_socket=socket_path)
    add_worker_routes(edgecache.admin_app)

    async def serve() -> None:
        watchdog = asyncio.create_task(_stop_when_orphaned(os.getppid()))
        try:
            await serve_forever(edgecache, load_settings=load_settings)
        finally:
            watchdog.cancel()

    run_async(serve())


async def _stop_when_orphaned(parent: int) -> None:
    """Send this process SIGTERM when the supervisor is gone (for example killed with SIGKILL)."""
    while os.getppid() == parent:
        await asyncio.sleep(ORPHAN_CHECK_INTERVAL)
    workers_logger.warning("supervisor %d is gone; worker %d stopping", parent, os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)
