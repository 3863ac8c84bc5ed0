"""Settings: one frozen dataclass per section of the TOML file, plus the caching rules.

Defaults live here with the units and limits they bound. config.py fills these from a
file, the environment and flags, and config_checks.py validates each value.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from yarl import URL

from .errors import ConfigError

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerSettings:
    listen: str = "127.0.0.1:8080"
    admin_listen: str = "127.0.0.1:8081"
    access_log: bool = True
    access_log_format: str = "combined"
    log_level: str = "info"
    # Seconds that in-flight requests get to finish after SIGTERM.
    shutdown_timeout: float = 10.0
    # Maximum request line and header field sizes in bytes; longer ones get 414 and 431.
    max_line_size: int = 8190
    max_field_size: int = 8190
    # Seconds a client connection may stay idle between requests before it is closed.
    idle_timeout: float = 75.0
    # Seconds a client gets to send a request's headers on a new connection (slowloris guard).
    header_timeout: float = 10.0
    # Forced misses (query strings) per second allowed per client address; 0 turns the limit off.
    bypass_rate: float = 0.0
    # Forced misses a client may send at once before bypass_rate applies.
    bypass_burst: int = 20


@dataclass(frozen=True, slots=True)
class OriginSettings:
    url: str = "http://127.0.0.1:9000"
    # "site" sends the site's configured host; "client" the client's Host when it is allowed.
    host_header: str = "site"
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    # Upper bound on concurrent connections to the origin.
    max_connections: int = 100
    # Seconds from sending a request until the origin's response headers are complete, however
    # steadily they trickle in (read_timeout bounds only the gap between two reads).
    header_timeout: float = 30.0
    # Seconds a request waits for a free origin connection before it gets 503.
    queue_timeout: float = 5.0
    # Maximum length of an origin response header field, in bytes (long tag lists need room).
    max_header_bytes: int = 131072
    # Client request fields never forwarded, because the cache key does not include them and
    # an origin may use them to render a different page (cache poisoning). Host and
    # X-Forwarded-For, -Proto and -Host are always replaced by edgecache's own values.
    drop_request_headers: tuple[str, ...] = (
        "X-Forwarded-Server", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Scheme", "X-Host",
        "X-Original-Host", "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override", "X-HTTP-Method",
        "X-Method-Override",
    )


@dataclass(frozen=True, slots=True)
class SiteSettings:
    # Host name of the default site; empty means the origin URL's host and port.
    host: str = ""
    # Client Host values that select a site of their own; any other Host maps to the default site.
    allowed_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeySettings:
    # Cookies whose values become part of the cache key (for example a sales channel).
    cookies: tuple[str, ...] = ()
    fold_trailing_slash: bool = False
    fold_case: bool = False


@dataclass(frozen=True, slots=True)
class CacheSettings:
    # Bound of the memory store, counting headers and bodies.
    max_bytes: int = 256 * MiB
    # Larger responses are streamed to the client and not stored.
    max_object_bytes: int = 8 * MiB
    # Seconds after expiry during which an entry may replace an origin error.
    stale_if_error: int = 300
    # Seconds after expiry during which an entry is served while one refresh runs.
    stale_while_revalidate: int = 0
    # Heuristic freshness: this fraction of the Last-Modified age, capped at heuristic_max seconds.
    heuristic_fraction: float = 0.1
    heuristic_max: int = 86400
    # Variants stored per path when the origin sends Vary.
    max_variants: int = 16
    # Seconds a follower waits for the leader's origin fetch before fetching on its own.
    coalesce_timeout: float = 10.0
    # "ignore" or "revalidate": what a client's no-cache, max-age=0 or Pragma: no-cache does.
    client_no_cache: str = "ignore"
    # Shared tier: a Redis (or Valkey) URL such as redis://127.0.0.1:6379/0; empty turns it off.
    shared_url: str = field(default="", repr=False)
    # Seconds one Redis command may take before the shared tier counts as down.
    shared_timeout: float = 0.25
    # Seconds the shared tier is skipped after a failure before edgecache tries Redis again.
    shared_retry_interval: float = 1.0
    # Largest serialized entry written to or read from Redis, in bytes (headers, metadata, body).
    shared_max_entry_bytes: int = 8 * MiB + 64 * 1024
    # Seconds a cross-node fetch lock lives at most, in case its holder dies.
    shared_lock_ttl: float = 15.0
    # Seconds a node waits for another node's origin fetch before fetching on its own.
    shared_lock_wait: float = 5.0
    # Prefix of every Redis key and of the invalidation channel; nodes sharing one cache use the same.
    shared_key_prefix: str = "edgecache:"


@dataclass(frozen=True, slots=True)
class AdminSettings:
    token: str = field(default="", repr=False)
    token_file: str = ""
    # Entries in each top list of /stats (most requested, bypassed, fetched); each list
    # keeps at most twice this many keys in memory.
    top_size: int = 20


@dataclass(frozen=True, slots=True)
class TagSettings:
    # Origin response header that lists an entry's tags: Surrogate-Key (space-separated)
    # or Cache-Tag (comma-separated).
    header: str = "Surrogate-Key"
    keep_header: bool = False
    extract_from_html: bool = True
    sku_template: str = "sku:{sku}"


@dataclass(frozen=True, slots=True)
class InventorySettings:
    # Quantities from 1 up to this value are low_stock; above it, in_stock.
    low_stock_threshold: int = 5
    # A page purged by an inventory event is purged and refreshed again at most once per
    # this many seconds; events inside the window are merged into one purge at its end.
    storm_interval: float = 1.0
    # Maximum purges of one page per storm window, the window's first included, for
    # events that make the page's claimed availability wrong: it offers a SKU that sold
    # out, or shows as sold out one that is back. Other events wait for the window's
    # end, and 1 makes these wait too.
    storm_flip_purges: int = 3
    # Refetch a purged page right after an event, so the next shopper gets a fresh copy.
    refresh_on_event: bool = True
    # Most events accepted in one POST /events/inventory batch.
    max_batch_events: int = 10000


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    # Origin requests per second spent checking hot entries; 0 turns the sampler off.
    requests_per_second: float = 0.0
    # The sampler checks, in turn, this many of the most recently used entries.
    hot_entries: int = 200


@dataclass(frozen=True, slots=True)
class Rule:
    """Caching policy for the paths that match a glob."""

    name: str
    match: str
    ttl: int | None = None
    override_origin: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    low_stock_ttl: int | None = None
    # When not empty, responses are stored only if their Content-Type is listed.
    content_types: tuple[str, ...] = ()
    # Statuses a rule may store beyond the default set (for example 404 or 503).
    statuses: tuple[int, ...] = ()

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.match)


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = ServerSettings()
    origin: OriginSettings = OriginSettings()
    site: SiteSettings = SiteSettings()
    key: KeySettings = KeySettings()
    cache: CacheSettings = CacheSettings()
    admin: AdminSettings = AdminSettings()
    tags: TagSettings = TagSettings()
    inventory: InventorySettings = InventorySettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    rules: tuple[Rule, ...] = ()

    @property
    def site_host(self) -> str:
        """Host of the default site: the setting, else the origin's host and port."""
        if self.site.host:
            return self.site.host
        url = URL(self.origin.url)
        return f"{url.host}:{url.port}" if url.port else str(url.host)

    def rule_for(self, path: str) -> Rule | None:
        for rule in self.rules:
            if rule.matches(path):
                return rule
        return None

    def admin_token(self) -> str:
        """Return the admin token from the setting or the token file, or ""."""
        if self.admin.token:
            return self.admin.token
        if self.admin.token_file:
            try:
                return Path(self.admin.token_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"admin.token_file: cannot read {self.admin.token_file!r} ({exc.strerror}); "
                                  "point it at a readable file holding the token") from None
        return ""


SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "origin": OriginSettings,
    "site": SiteSettings,
    "key": KeySettings,
    "cache": CacheSettings,
    "admin": AdminSettings,
    "tags": TagSettings,
    "inventory": InventorySettings,
    "reconcile": ReconcileSettings,
}
