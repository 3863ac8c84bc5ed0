"""One worker process: a whole Edgecache whose proxy listener shares the port with its siblings.

Each worker runs its own event loop (uvloop when installed) and binds the proxy
port with SO_REUSEPORT, so the kernel spreads new connections over the workers.
Instead of the admin port, a worker serves the admin app on a Unix socket that
only the supervisor uses, with one more route: the raw figures the supervisor adds up.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from aiohttp import web

from ..admin import EDGECACHE_KEY, json_response
from ..config import Settings
from ..log import workers_logger
from .figures import export_stats

FIGURES_PATH = "/internal/figures"
# Seconds between two checks that the supervisor still runs.
ORPHAN_CHECK_INTERVAL = 1.0


async def figures(request: web.Request) -> web.Response:
    edgecache = request.app[EDGECACHE_KEY]
    data: dict[str, Any] = {"stats": export_stats(edgecache.stats), "cache": edgecache.cache_figures(),
                            "shared": {"state": "off"} if edgecache.shared is None else edgecache.shared.snapshot()}
    return json_response(data)


def run_worker(settings: Settings, index: int, socket_path: str) -> None:
    """Serve until SIGTERM or SIGINT; the target of each worker process."""
    from ..cli import configure_logging, run_async
    from ..server import Edgecache, serve_forever

    # A process group of its own keeps a terminal's Ctrl-C away from the worker: the
    # supervisor decides when workers stop, and sends them SIGTERM.
    os.setpgrp()
    configure_logging(settings.server.log_level)
    edgecache = Edgecache(settings, reuse_port=True, admin_socket=socket_path)
    edgecache.admin_app.router.add_get(FIGURES_PATH, figures)

    async def serve() -> None:
        watchdog = asyncio.create_task(_stop_when_orphaned(os.getppid()))
        try:
            await serve_forever(edgecache)
        finally:
            watchdog.cancel()

    run_async(serve())


async def _stop_when_orphaned(parent: int) -> None:
    """Send this process SIGTERM when the supervisor is gone (for example killed with SIGKILL)."""
    while os.getppid() == parent:
        await asyncio.sleep(ORPHAN_CHECK_INTERVAL)
    workers_logger.warning("supervisor %d is gone; worker %d stopping", parent, os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)
