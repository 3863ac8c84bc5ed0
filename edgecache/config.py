"""Settings: a TOML file, then EDGECACHE_<SECTION>_<KEY> variables, then flags.

Each layer overrides the one before it. Every value is checked once, while the
settings are built, so the rest of the program can trust them. An invalid value raises
ConfigError with a single line naming the key, the value and what is allowed. The
dataclasses live in settings.py and the per-value checks in config_checks.py. This
module re-exports both, so callers import everything from edgecache.config.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from typing import Any

from yarl import URL

from .config_checks import CHECKS, coerce_value, expected_value
from .errors import ConfigError
from .settings import (
    SECTIONS,
    AdminSettings,
    CacheSettings,
    InventorySettings,
    KeySettings,
    MiB,
    OriginSettings,
    ReconcileSettings,
    Rule,
    ServerSettings,
    Settings,
    SiteSettings,
    TagSettings,
)

__all__ = [
    "CHECKS",
    "SECTIONS",
    "AdminSettings",
    "CacheSettings",
    "ConfigError",
    "InventorySettings",
    "KeySettings",
    "MiB",
    "OriginSettings",
    "ReconcileSettings",
    "Rule",
    "ServerSettings",
    "Settings",
    "SiteSettings",
    "TagSettings",
    "build_settings",
    "load_settings",
    "read_toml",
    "redacted_url",
    "settings_as_dict",
]


def _build(cls: type, prefix: str, values: Mapping[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown setting; allowed: {', '.join(fields)}")
    kwargs = {name: coerce_value(f"{prefix}.{name}", str(fields[name].type), value) for name, value in values.items()}
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


def _parse_env_value(key: str, annotation: str, text: str, *, expected: str) -> Any:
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
            raise ConfigError(f"{key}: invalid value {text!r}; expected {expected}") from None
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
        layer.setdefault(section, {})[key] = _parse_env_value(name, fields[key], text,
                                                              expected=expected_value(f"{section}.{key}", fields[key]))
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
