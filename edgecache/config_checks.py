"""Validation of single setting values: the type a field declares, then its allowed range.

Each failure raises ConfigError with one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yarl import URL

from .errors import ConfigError

@dataclass(frozen=True, slots=True)
class Check:
    """A check beyond a field's type: which values it allows, and how a message names them."""

    allows: Callable[[Any], bool]
    # The allowed values as text for a field of the given annotation, such as "int".
    expected: Callable[[str], str]


def _by_type(integer: str, number: str) -> Callable[[str], str]:
    return lambda annotation: integer if annotation.startswith("int") else number


_positive = Check(lambda value: value > 0, _by_type("a positive integer", "a positive number"))
_non_negative = Check(lambda value: value >= 0, _by_type("an integer >= 0", "a number >= 0"))


def _described(text: str) -> Callable[[str], str]:
    return lambda annotation: text


def _one_of(*choices: str) -> Check:
    return Check(lambda value: value in choices, _described("one of " + ", ".join(choices)))


def _is_host_port(value: Any) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 <= int(port) < 65536)


def _is_http_url(value: Any) -> bool:
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def _is_redis_url(value: Any) -> bool:
    if value == "":
        return True
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.scheme in ("redis", "rediss", "unix")


_host_port = Check(_is_host_port, _described("HOST:PORT with a port from 0 to 65535 (0 picks a free port)"))
_http_url = Check(_is_http_url, _described("an http:// or https:// URL with a host"))
_redis_url = Check(_is_redis_url, _described("empty (no shared tier) or a redis://, rediss:// or unix:// URL"))
_fraction = Check(lambda value: 0 <= value <= 1, _described("a number from 0 to 1"))
_tag_header = Check(lambda value: value.lower() in ("surrogate-key", "cache-tag"),
                    _described("Surrogate-Key or Cache-Tag"))


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


def type_name(annotation: str) -> str:
    return {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "int | None": "an integer",
        "tuple[str, ...]": "a list of strings",
        "tuple[int, ...]": "a list of integers",
    }[annotation]


def expected_value(key: str, annotation: str) -> str:
    """Return what a setting allows, as text for an error message: its range check's words, else its type's."""
    check = CHECKS.get(key) or CHECKS.get("rules." + key.rpartition(".")[2] if key.startswith("rules[") else "")
    return check.expected(annotation) if check else type_name(annotation)


def coerce_value(key: str, annotation: str, value: Any) -> Any:
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
    check = CHECKS.get(key) or CHECKS.get("rules." + key.rpartition(".")[2] if key.startswith("rules[") else "")
    # A value of the wrong type and one out of range get the same message.
    if not ok or (check and not check.allows(value)):
        raise ConfigError(f"{key}: invalid value {value!r}; expected {expected_value(key, annotation)}")
    return value
