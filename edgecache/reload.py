"""Signals for a running edgecache: SIGHUP reloads the settings, SIGTERM and SIGINT stop it.

A reload builds the new settings first. An invalid file is logged and the old
settings stay in force. A valid one replaces the request handler's settings for
requests that start afterwards, while open connections and requests in flight
continue. The store is kept unless the key rules changed, because entries stored
under the old rules would be served for keys they do not belong to. Settings
bound when a listener or the origin pool opens need a restart; a reload logs
each such change and keeps the running value.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from .config import Settings
from .errors import ConfigError
from .log import server_logger
from .proxy import Proxy

if TYPE_CHECKING:
    from .server import Edgecache

# Settings read only when a listener or the origin pool opens.
RESTART_ONLY = {
    "server": ("listen", "admin_listen", "max_line_size", "max_field_size", "header_timeout", "idle_timeout",
               "shutdown_timeout"),
    "origin": ("url", "connect_timeout", "read_timeout", "header_timeout", "max_connections", "queue_timeout",
               "max_header_bytes"),
    # The shared tier's clients, lock and listener are built once, at start.
    "cache": ("shared_url", "shared_timeout", "shared_retry_interval", "shared_max_entry_bytes", "shared_lock_ttl",
              "shared_lock_wait", "shared_key_prefix"),
}


def keep_restart_only(old: Settings, new: Settings) -> Settings:
    """Return `new` with the restart-only settings of `old`, logging each one that differed."""
    sections = {}
    for section, names in RESTART_ONLY.items():
        old_section, new_section = getattr(old, section), getattr(new, section)
        restored = {}
        for name in names:
            if getattr(old_section, name) != getattr(new_section, name):
                server_logger.warning("reload: %s.%s changed to %r; restart edgecache to apply it, keeping %r",
                                      section, name, getattr(new_section, name), getattr(old_section, name))
                restored[name] = getattr(old_section, name)
        sections[section] = dataclasses.replace(new_section, **restored)
    return dataclasses.replace(new, **sections)


def apply_settings(edgecache: Edgecache, new: Settings) -> None:
    """Put valid new settings into effect for requests that start from now on."""
    old = edgecache.settings
    new = keep_restart_only(old, new)
    old_proxy = edgecache.proxy
    proxy = Proxy(new, store=edgecache.store, origin=edgecache.origin, stats=edgecache.stats, clock=edgecache.clock)
    edgecache.attach(proxy)
    edgecache.retired_proxies.append(old_proxy)
    edgecache.proxy = proxy
    edgecache.settings = new
    edgecache.admin_token = new.admin_token()
    edgecache.store.max_bytes = new.cache.max_bytes
    edgecache.store.max_variants = new.cache.max_variants
    logging.getLogger("edgecache").setLevel(new.server.log_level.upper())
    if (old.key, old.site, old.origin.host_header) != (new.key, new.site, new.origin.host_header):
        purged = edgecache.store.purge_all(soft=False, now=edgecache.clock())
        server_logger.warning("reload: key settings changed; removed %d entries", purged)
    server_logger.info("reload: settings applied (%d rules)", len(new.rules))


def reload_settings(edgecache: Edgecache, load: Callable[[], Settings]) -> bool:
    """Load and apply the settings; on an invalid file log the error and keep the old ones."""
    try:
        new = load()
    except (ConfigError, OSError) as exc:
        server_logger.error("reload failed, keeping the running settings: %s", exc)
        return False
    apply_settings(edgecache, new)
    return True


def install_signal_handlers(edgecache: Edgecache, stop: asyncio.Event,
                            load: Callable[[], Settings] | None) -> None:
    """Route SIGTERM and SIGINT to `stop`, and SIGHUP to a reload when a loader is given."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if load is not None:
        loop.add_signal_handler(signal.SIGHUP, reload_settings, edgecache, load)
