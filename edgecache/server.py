"""Wiring: the store, the origin client, the proxy and admin listeners, start and stop."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from .admin import create_admin_app
from .config import Settings, redacted_url
from .key import canonical_path
from .log import server_logger
from .origin import OriginClient
from .proxy import Proxy
from .shared import SharedCache
from .shared.invalidation import PurgeRequest
from .stats import Stats
from .store import MemoryStore


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class Edgecache:
    """One edgecache instance: a proxy listener and an admin listener sharing one store."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time, reuse_port: bool = False,
                 admin_socket: str | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.admin_token = settings.admin_token()
        self.stats = Stats()
        self.store = MemoryStore(max_bytes=settings.cache.max_bytes, max_variants=settings.cache.max_variants)
        self.origin = OriginClient(settings.origin)
        self.proxy = Proxy(settings, store=self.store, origin=self.origin, stats=self.stats, clock=clock)
        self.shared: SharedCache | None = None
        if settings.cache.shared_url:
            self.shared = SharedCache(settings.cache, apply=self.purge_local, drop_all=self._drop_memory, clock=clock)
            self.proxy.shared = self.shared
            self.proxy.fetcher.shared = self.shared.tier
        self.registry: CollectorRegistry | None = None
        # A worker process shares the proxy port with its siblings (SO_REUSEPORT) and serves
        # the admin app on a Unix socket for its supervisor instead of server.admin_listen.
        self.reuse_port = reuse_port
        self.admin_socket = admin_socket
        self.admin_app = create_admin_app(self)
        self._runners: list[web.BaseRunner] = []
        self.proxy_port = 0
        self.admin_port = 0

    def __repr__(self) -> str:
        return f"<Edgecache origin={self.settings.origin.url} proxy_port={self.proxy_port} store={self.store!r}>"

    def uptime(self) -> float:
        return time.time() - self.stats.started_at

    def cache_figures(self) -> dict[str, Any]:
        return {
            "entries": len(self.store),
            "bytes": self.store.bytes,
            "max_bytes": self.store.max_bytes,
            "evictions": self.store.evictions,
            "variant_evictions": self.store.variant_evictions,
            "max_variants": self.store.max_variants,
        }

    def shared_state(self) -> str:
        """Return "off" without a shared tier, else "up" or "down"."""
        return "off" if self.shared is None else self.shared.state

    def snapshot(self) -> dict[str, Any]:
        snapshot = self.stats.snapshot(cache=self.cache_figures())
        snapshot["shared"] = {"state": "off"} if self.shared is None else self.shared.snapshot()
        return snapshot

    async def purge(self, *, paths: list[str], prefixes: list[str], tags: list[str], purge_all: bool,
                    soft: bool, forbid_stale: bool = False, shared: bool = True) -> dict[str, Any]:
        """Purge entries here, in Redis and on every node sharing it.

        Paths and prefixes are canonicalized as request paths are. Every purge (admin
        requests, inventory events) goes through here so that it reaches the other
        nodes; `shared=False` applies it to this process's memory store only.
        """
        key_settings = self.settings.key
        canonical = [canonical_path(path, fold_trailing_slash=key_settings.fold_trailing_slash,
                                    fold_case=key_settings.fold_case) for path in paths]
        # A prefix keeps its trailing slash, so "/shoes/" does not also purge "/shoes-sale".
        canonical_prefixes = [canonical_path(prefix, fold_case=key_settings.fold_case) for prefix in prefixes]
        request = PurgeRequest(paths=tuple(canonical), prefixes=tuple(canonical_prefixes), tags=tuple(tags),
                               purge_all=purge_all, soft=soft, forbid_stale=forbid_stale, at=self.clock())
        result: dict[str, Any] = {"purged": self.purge_local(request), "soft": soft}
        if self.shared is not None and shared:
            done = await self.shared.tier.purge(request)
            result["shared"] = "done" if done else "failed: Redis is down; other nodes keep their copies"
        return result

    def purge_local(self, request: PurgeRequest) -> int:
        """Apply a purge to this process's memory store; return how many entries it touched."""
        store, soft, now = self.store, request.soft, request.at
        if request.purge_all:
            return store.purge_all(soft=soft, now=now)
        return (store.purge_paths(request.paths, soft=soft, now=now, forbid_stale=request.forbid_stale)
                + store.purge_prefixes(request.prefixes, soft=soft, now=now)
                + store.purge_tags(request.tags, soft=soft, now=now, forbid_stale=request.forbid_stale))

    def _drop_memory(self) -> int:
        return self.store.purge_all(soft=False, now=self.clock())

    async def start(self) -> None:
        """Open the origin pool and both listeners; ports of 0 pick free ones."""
        await self.origin.start()
        if self.shared is not None:
            await self.shared.start()
        server = web.Server(
            self.proxy.handle,
            max_line_size=self.settings.server.max_line_size,
            max_field_size=self.settings.server.max_field_size,
            access_log=None,
        )
        proxy_runner = web.ServerRunner(server, handle_signals=False, access_log=None)
        admin_runner = web.AppRunner(self.admin_app, handle_signals=False, access_log=None)
        shutdown_timeout = self.settings.server.shutdown_timeout
        for runner, listen in ((proxy_runner, self.settings.server.listen),
                               (admin_runner, self.settings.server.admin_listen)):
            await runner.setup()
            site: web.BaseSite
            if runner is admin_runner and self.admin_socket:
                site = web.UnixSite(runner, self.admin_socket, shutdown_timeout=shutdown_timeout)
            else:
                host, port = split_host_port(listen)
                site = web.TCPSite(runner, host, port, reuse_address=True, shutdown_timeout=shutdown_timeout,
                                   reuse_port=self.reuse_port or None)
            await site.start()
            self._runners.append(runner)
        self.proxy_port = _bound_port(proxy_runner)
        self.admin_port = _bound_port(admin_runner)
        server_logger.info("edgecache listening on %s (admin %s), origin %s, shared tier %s",
                           self.settings.server.listen, self.admin_socket or self.settings.server.admin_listen,
                           self.settings.origin.url,
                           redacted_url(self.settings.cache.shared_url) or "off")

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.proxy.close()
        await self.origin.close()
        if self.shared is not None:
            await self.shared.close()
        server_logger.info("edgecache stopped")


def _bound_port(runner: web.BaseRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return 0


async def serve_forever(edgecache: Edgecache, *, duration: float | None = None) -> None:
    """Run until SIGTERM or SIGINT (or `duration` seconds), then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await edgecache.start()
    try:
        if duration is None:
            await stop.wait()
        else:
            await asyncio.wait_for(stop.wait(), duration)
    except TimeoutError:
        pass
    finally:
        server_logger.info("stopping: finishing in-flight requests (up to %.0f s)",
                           edgecache.settings.server.shutdown_timeout)
        await edgecache.stop()
