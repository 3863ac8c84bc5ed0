"""Wiring: the store, the origin client, the proxy and admin listeners, start and stop."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from .admin import create_admin_app
from .admin_events import add_routes as add_event_routes
from .config import Settings, redacted_url
from .errors import ListenError
from .inventory import InventoryEvent, InventoryTracker
from .invalidation import InventoryInvalidator
from .key import canonical_path
from .log import server_logger
from .origin import OriginClient
from .protocol import GuardedServer
from .proxy import Proxy
from .reconcile import Reconciler
from .refetch import Refetcher
from .reload import install_signal_handlers
from .shared import InventoryMessage, SharedCache
from .shared.invalidation import DiscardMessage, PurgeRequest
from .shared.inventory import counted
from .staleness import StalenessMeter
from .stats import Stats
from .store import MemoryStore


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback(host: str) -> bool:
    """Return whether a listener host accepts connections from this machine only (127.0.0.0/8, ::1)."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        self.stats = Stats(clock=clock, top_size=settings.admin.top_size)
        self.store = MemoryStore(max_bytes=settings.cache.max_bytes, max_variants=settings.cache.max_variants)
        self.origin = OriginClient(settings.origin)
        self.proxy = Proxy(settings, store=self.store, origin=self.origin, stats=self.stats, clock=clock)
        self.shared: SharedCache | None = None
        if settings.cache.shared_url:
            self.shared = SharedCache(settings.cache, apply=self.purge_local, adopt=self._adopt_published,
                                      discard=self._discard_published, drop_all=self._drop_memory, sku_template=settings.tags.sku_template,
                                      low_stock_threshold=settings.inventory.low_stock_threshold, clock=clock)
        self._wire_inventory()
        # Handlers replaced by a reload; their background refreshes are awaited at stop.
        self.retired_proxies: list[Proxy] = []
        self.registry: CollectorRegistry | None = None
        # A worker process shares the proxy port with its siblings (SO_REUSEPORT) and serves
        # the admin app on a Unix socket for its supervisor instead of server.admin_listen.
        self.reuse_port = reuse_port
        self.admin_socket = admin_socket
        self.admin_app = create_admin_app(self)
        add_event_routes(self.admin_app)
        self._runners: list[web.BaseRunner] = []
        # Whether start() finished, so that stop() logs a stop only after a logged start.
        self._started = False
        self.proxy_port = 0
        self.admin_port = 0

    def _wire_inventory(self) -> None:
        """Connect inventory events, fencing, staleness and reconciliation to the proxy."""
        self.tracker = InventoryTracker(sku_template=self.settings.tags.sku_template)
        self.staleness = StalenessMeter(self.tracker, self.stats)
        self.refetcher = Refetcher(self.proxy)
        self.invalidator = InventoryInvalidator(self.settings.inventory, tracker=self.tracker, store=self.store,
                                                staleness=self.staleness, refetcher=self.refetcher,
                                                stats=self.stats)
        self.reconciler = Reconciler(self.settings.reconcile, store=self.store, refetcher=self.refetcher,
                                     stats=self.stats)
        self.attach(self.proxy)
        self._tasks: list[asyncio.Task[None]] = []

    def attach(self, proxy: Proxy) -> None:
        """Connect a request handler to the inventory components; a reload calls this for its new handler."""
        proxy.fetcher.is_fenced = self.invalidator.fence
        proxy.fetcher.has_low_stock = self.tracker.has_low_stock
        proxy.observe_served = self.staleness.observe
        self.refetcher.proxy = proxy
        if self.shared is not None:
            proxy.shared = self.shared
            proxy.fetcher.shared = self.shared.tier

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

    def shared_figures(self) -> dict[str, Any]:
        return {"state": "off"} if self.shared is None else self.shared.snapshot()

    def snapshot(self) -> dict[str, Any]:
        snapshot = self.stats.snapshot(cache=self.cache_figures())
        snapshot["shared"] = self.shared_figures()
        return snapshot

    async def purge(self, *, paths: list[str], prefixes: list[str], tags: list[str], purge_all: bool,
                    soft: bool, forbid_stale: bool = False, shared: bool = True) -> dict[str, Any]:
        """Purge entries here, in Redis and on every node sharing it.

        Paths and prefixes are canonicalized as request paths are. Admin purges go
        through here so that they reach the other nodes, and `shared=False` applies one
        to this process's memory store only. Inventory events reach the other nodes
        through `receive_inventory_events` instead.
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

    def _discard_published(self, message: DiscardMessage) -> None:
        # Another node replaced these entries; the next request here reads its copy from Redis.
        for full_key in message.keys:
            self.store.discard(full_key)

    def _drop_memory(self) -> int:
        return self.store.purge_all(soft=False, now=self.clock())

    def apply_inventory_events(self, events: list[InventoryEvent]) -> dict[str, Any]:
        """Apply inventory events to this process only: purge, fence and refetch the pages of changed SKUs."""
        return self.invalidator.apply(events, self.clock())

    async def receive_inventory_events(self, events: list[InventoryEvent]) -> tuple[dict[str, Any], list[InventoryEvent]]:
        """Apply inventory events here, in Redis and, through pub/sub, on every node sharing it.

        With a shared tier, the records in Redis decide what each event does, so an
        event sent again to any node acts nowhere, and this process adopts the records
        that result. Returns the API response and the SKU records after the events,
        which sibling workers adopt (`adopt_inventory`).
        """
        now = self.clock()
        skus = [event.sku for event in events]
        if self.shared is None:
            return self.invalidator.apply(events, now), self.invalidator.records(skus)
        decided = await self.shared.inventory.decide(events, now=now)
        if decided is None:
            result = self.invalidator.apply(events, now)
            result["shared"] = "failed: Redis is down; other nodes keep their copies"
            return result, self.invalidator.records(skus)
        for decision in decided.decisions:
            self.invalidator.count(decision.result)
        local = self.invalidator.apply(decided.records, now, count_events=False)
        result = {"received": len(events), **counted(decided.decisions), "purged": local["purged"],
                  "deferred": local["deferred"], "shared_purged": decided.purged, "shared": "done"}
        return result, list(decided.records)

    def adopt_inventory(self, records: tuple[InventoryEvent, ...], *, at: float, refetch: bool) -> dict[str, Any]:
        """Apply SKU records that another node or worker decided; purges this process's memory copies."""
        return self.invalidator.apply(records, min(at, self.clock()), count_events=False, refetch=refetch)

    def _adopt_published(self, message: InventoryMessage) -> None:
        # The publishing node refetches the pages, and this node then finds them in Redis.
        self.adopt_inventory(message.records, at=message.at, refetch=False)

    async def start(self) -> None:
        """Open the origin pool and both listeners; ports of 0 pick free ones."""
        await self.origin.start()
        if self.shared is not None:
            await self.shared.start()
        server = GuardedServer(
            # Looked up per request, so a reload's new handler serves the next request.
            lambda request: self.proxy.handle(request),
            header_timeout=self.settings.server.header_timeout,
            max_line_size=self.settings.server.max_line_size,
            max_field_size=self.settings.server.max_field_size,
            keepalive_timeout=self.settings.server.idle_timeout,
            access_log=None,
        )
        shutdown_timeout = self.settings.server.shutdown_timeout
        proxy_runner = web.ServerRunner(server, handle_signals=False, access_log=None,
                                        shutdown_timeout=shutdown_timeout)
        admin_runner = web.AppRunner(self.admin_app, handle_signals=False, access_log=None,
                                     shutdown_timeout=shutdown_timeout)
        for runner, listen in ((proxy_runner, self.settings.server.listen),
                               (admin_runner, self.settings.server.admin_listen)):
            await runner.setup()
            self._runners.append(runner)
            site: web.BaseSite
            if runner is admin_runner and self.admin_socket:
                site = web.UnixSite(runner, self.admin_socket)
            else:
                host, port = split_host_port(listen)
                site = web.TCPSite(runner, host, port, reuse_address=True, reuse_port=self.reuse_port or None)
            try:
                await site.start()
            except OSError as exc:
                await self.stop()
                setting = "server.admin_listen" if runner is admin_runner else "server.listen"
                address = self.admin_socket if isinstance(site, web.UnixSite) else listen
                raise ListenError(f"{setting}: cannot listen on {address} ({exc.strerror or exc}); "
                                  "stop the process that uses it or choose another address") from exc
        if self.settings.inventory.storm_interval > 0:
            self._tasks.append(asyncio.create_task(self.invalidator.run(self.clock), name="edgecache-storm-flush"))
        if self.reconciler.enabled:
            self._tasks.append(asyncio.create_task(self.reconciler.run(), name="edgecache-reconcile"))
        self.proxy_port = _bound_port(proxy_runner)
        self.admin_port = _bound_port(admin_runner)
        self._started = True
        server_logger.info("edgecache listening on %s:%d (admin %s), origin %s, shared tier %s",
                           split_host_port(self.settings.server.listen)[0], self.proxy_port,
                           self.admin_socket or f"{split_host_port(self.settings.server.admin_listen)[0]}:{self.admin_port}",
                           self.settings.origin.url, redacted_url(self.settings.cache.shared_url) or "off")
        if not self.admin_socket:
            warn_if_admin_exposed(self.settings.server.admin_listen, self.admin_token)

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.refetcher.close()
        for proxy in (*self.retired_proxies, self.proxy):
            await proxy.close()
        await self.origin.close()
        if self.shared is not None:
            await self.shared.close()
        if self._started:
            self._started = False
            server_logger.info("edgecache stopped")


def _bound_port(runner: web.BaseRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return 0


def warn_if_admin_exposed(admin_listen: str, token: str) -> None:
    """Warn when the admin listener accepts connections from other hosts and has no token."""
    host, _ = split_host_port(admin_listen)
    if not token and not is_loopback(host):
        server_logger.warning("admin listener on %s is reachable from other hosts and has no token: anyone "
                              "there can read figures; set admin.token or bind it to 127.0.0.1", admin_listen)


async def serve_forever(edgecache: Edgecache, *, duration: float | None = None,
                        load_settings: Callable[[], Settings] | None = None) -> None:
    """Run until SIGTERM or SIGINT (or `duration` seconds), then stop gracefully.

    SIGHUP calls `load_settings` and applies the result (see reload.py).
    """
    stop = asyncio.Event()
    install_signal_handlers(edgecache, stop, load_settings)
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
