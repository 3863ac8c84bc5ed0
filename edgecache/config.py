"""Settings: a TOML file, then EDGECACHE_<SECTION>_<KEY> variables, then flags.

Each layer overrides the one before it. Every value is checked once, here, so the
rest of the program can trust its settings. An invalid value raises ConfigError with
a single line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

# Checks beyond the type: each returns the allowed values as text when the value is invalid.
Check = Callable[[Any], str | None]


def _positive(value: Any) -> str | None:
    return None if value > 0 else "a positive number"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "a number >= 0"


def _one_of(*choices: str) -> Check:
    return lambda value: None if value in choices else "one of " + ", ".join(choices)


def _host_port(value: Any) -> str | None:
    host, sep, port = value.rpartition(":")
    if sep and host and port.isdigit() and 0 <= int(port) < 65536:
        return None
    return "HOST:PORT with a port from 0 to 65535 (0 picks a free port)"


def _http_url(value: Any) -> str | None:
    try:
        url = URL(value)
    except ValueError:
        url = None
    if url is not None and url.scheme in ("http", "https") and url.host:
        return None
    return "an http:// or https:// URL with a host"


def _redis_url(value: Any) -> str | None:
    if value == "":
        return None
    try:
        url = URL(value)
    except ValueError:
        url = None
    if url is not None and url.scheme in ("redis", "rediss", "unix"):
        return None
    return "empty (no shared tier) or a redis://, rediss:// or unix:// URL"


def _fraction(value: Any) -> str | None:
    return None if 0 <= value <= 1 else "a number from 0 to 1"


def _tag_header(value: Any) -> str | None:
    return None if value.lower() in ("surrogate-key", "cache-tag") else "Surrogate-Key or Cache-Tag"


CHECKS: dict[str, Check] = {
    "server.listen": _host_port,
    "server.admin_listen": _host_port,
    "server.access_log_format": _one_of("combined", "json"),
    "server.log_level": _one_of("debug", "info", "warning", "error"),
    "server.shutdown_timeout": _non_negative,
    "server.max_line_size": _positive,
    "server.max_field_size": _positive,
    "origin.url": _http_url,
    "origin.host_header": _one_of("site", "client"),
    "origin.connect_timeout": _positive,
    "origin.read_timeout": _positive,
    "origin.max_connections": _positive,
    "admin.top_size": _positive,
    "origin.queue_timeout": _positive,
    "origin.header_timeout": _positive,
    "origin.max_header_bytes": _positive,
    "server.idle_timeout": _positive,
    "server.header_timeout": _positive,
    "server.bypass_rate": _non_negative,
    "server.bypass_burst": _positive,
    "cache.max_bytes": _positive,
    "cache.max_object_bytes": _positive,
    "cache.stale_if_error": _non_negative,
    "cache.stale_while_revalidate": _non_negative,
    "cache.heuristic_fraction": _fraction,
    "cache.heuristic_max": _non_negative,
    "cache.max_variants": _positive,
    "cache.coalesce_timeout": _positive,
    "cache.client_no_cache": _one_of("ignore", "revalidate"),
    "cache.shared_url": _redis_url,
    "cache.shared_timeout": _positive,
    "cache.shared_retry_interval": _positive,
    "cache.shared_max_entry_bytes": _positive,
    "cache.shared_lock_ttl": _positive,
    "cache.shared_lock_wait": _non_negative,
    "tags.header": _tag_header,
    "inventory.low_stock_threshold": _non_negative,
    "inventory.storm_interval": _non_negative,
    "inventory.storm_flip_purges": _positive,
    "inventory.max_batch_events": _positive,
    "reconcile.requests_per_second": _non_negative,
    "reconcile.hot_entries": _positive,
    "rules.ttl": _non_negative,
    "rules.stale_while_revalidate": _non_negative,
    "rules.stale_if_error": _non_negative,
    "rules.low_stock_ttl": _non_negative,
}


def _type_name(annotation: str) -> str:
    return {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "int | None": "an integer",
        "tuple[str, ...]": "a list of strings",
        "tuple[int, ...]": "a list of integers",
    }[annotation]


def _coerce(key: str, annotation: str, value: Any) -> Any:
    """Check a TOML value against a field's type; return it in the field's type."""
    ok: bool
    if annotation == "bool":
        ok = isinstance(value, bool)
    elif annotation in ("int", "int | None"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif annotation == "str":
        ok = isinstance(value, str)
    elif annotation == "tuple[str, ...]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        value = tuple(value) if ok else value
    if not ok:
        raise ConfigError(f"{key}: invalid value {value!r}; expected {_type_name(annotation)}")
    check = CHECKS.get(key) or CHECKS.get("rules." + key.rpartition(".")[2] if key.startswith("rules[") else "")
    problem = check(value) if check else None
    if problem:
        raise ConfigError(f"{key}: invalid value {value!r}; expected {problem}")
    return value


def _build(cls: type, prefix: str, values: Mapping[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown setting; allowed: {', '.join(fields)}")
    kwargs = {name: _coerce(f"{prefix}.{name}", str(fields[name].type), value) for name, value in values.items()}
    return cls(**kwargs)


def _build_rules(raw: Any) -> tuple[Rule, ...]:
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise ConfigError(f"rules: invalid value {raw!r}; expected an array of tables [[rules]]")
    rules = []
    for index, table in enumerate(raw):
        for required in ("name", "match"):
            if required not in table:
                raise ConfigError(f"rules[{index}].{required}: missing; every rule needs a name and a match glob")
        rules.append(_build(Rule, f"rules[{index}]", table))
    names = [rule.name for rule in rules]
    duplicated = next((name for name in names if names.count(name) > 1), None)
    if duplicated:
        raise ConfigError(f"rules.name: duplicate value {duplicated!r}; rule names must be unique")
    return tuple(rules)


def _parse_env_value(key: str, annotation: str, text: str) -> Any:
    """Turn an environment variable's text into the TOML value it stands for."""
    if annotation == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: invalid value {text!r}; expected true or false")
    if annotation in ("int", "int | None", "float"):
        try:
            return int(text) if annotation != "float" else float(text)
        except ValueError:
            raise ConfigError(f"{key}: invalid value {text!r}; expected {_type_name(annotation)}") from None
    if annotation.startswith("tuple"):
        items = [item.strip() for item in text.split(",") if item.strip()]
        if annotation == "tuple[int, ...]":
            return [int(item) for item in items if item.isdigit()]
        return items
    return text


def _env_layer(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for name, text in environ.items():
        if not name.startswith("EDGECACHE_"):
            continue
        section, _, key = name[len("EDGECACHE_"):].lower().partition("_")
        cls = SECTIONS.get(section)
        if cls is None or not key:
            continue
        fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        if key not in fields:
            raise ConfigError(f"{name}: unknown setting {section}.{key}; allowed: {', '.join(fields)}")
        layer.setdefault(section, {})[key] = _parse_env_value(name, fields[key], text)
    return layer


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r}: invalid TOML: {exc}") from None


def build_settings(
    raw: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build validated Settings from a parsed TOML document, the environment and flags."""
    unknown = sorted(set(raw) - set(SECTIONS) - {"rules"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; allowed: {', '.join([*SECTIONS, 'rules'])}")
    merged: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: invalid value {table!r}; expected a table [{name}]")
        merged[name] = dict(table)
    for layer in (_env_layer(os.environ if environ is None else environ), overrides or {}):
        for name, values in layer.items():
            merged[name].update(values)
    sections = {name: _build(cls, name, merged[name]) for name, cls in SECTIONS.items()}
    settings = Settings(**sections, rules=_build_rules(raw.get("rules", [])))
    if settings.cache.max_object_bytes > settings.cache.max_bytes:
        raise ConfigError(
            f"cache.max_object_bytes: invalid value {settings.cache.max_object_bytes}; "
            f"expected at most cache.max_bytes ({settings.cache.max_bytes})"
        )
    return settings


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    raw = read_toml(path) if path else {}
    return build_settings(raw, environ=environ, overrides=overrides)


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    """Return the effective settings as plain data, with the admin token masked."""
    data = dataclasses.asdict(settings)
    if data["admin"]["token"]:
        data["admin"]["token"] = "********"
    data["cache"]["shared_url"] = redacted_url(settings.cache.shared_url)
    return data


def redacted_url(url: str) -> str:
    """Return a URL with its password masked, for logs and printed settings."""
    if not url or URL(url).password is None:
        return url
    return str(URL(url).with_password("********"))
