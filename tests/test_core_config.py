"""Settings: validation messages, the environment and flag layers, and the default file."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from edgecache.cli import build_parser, settings_from_args
from edgecache.config import SECTIONS, ConfigError, Rule, build_settings, load_settings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "edgecache.toml"

INVALID = [
    ({"cache": {"max_byte": 1}}, "cache.max_byte: unknown setting; allowed: max_bytes, max_object_bytes,"),
    ({"cachex": {}}, "cachex: unknown section; allowed: server, origin,"),
    ({"cache": {"max_bytes": "big"}}, "cache.max_bytes: invalid value 'big'; expected a positive integer"),
    ({"cache": {"max_bytes": -1}}, "cache.max_bytes: invalid value -1; expected a positive integer"),
    ({"cache": {"max_bytes": 0}}, "cache.max_bytes: invalid value 0; expected a positive integer"),
    ({"origin": {"read_timeout": "soon"}}, "origin.read_timeout: invalid value 'soon'; expected a positive number"),
    ({"origin": {"read_timeout": -5}}, "origin.read_timeout: invalid value -5.0; expected a positive number"),
    ({"server": {"listen": 8080}}, "server.listen: invalid value 8080; expected HOST:PORT"),
    ({"key": {"fold_case": "yes"}}, "key.fold_case: invalid value 'yes'; expected true or false"),
    ({"origin": {"url": "ftp://x"}}, "origin.url: invalid value 'ftp://x'; expected an http:// or https:// URL"),
    ({"server": {"listen": "8080"}}, "server.listen: invalid value '8080'; expected HOST:PORT"),
    ({"origin": {"host_header": "x"}}, "origin.host_header: invalid value 'x'; expected one of site, client"),
    ({"rules": [{"name": "p", "match": "/*/p", "ttl": -3}]},
     "rules[0].ttl: invalid value -3; expected an integer >= 0"),
    ({"rules": [{"name": "p"}]}, "rules[0].match: missing"),
    ({"cache": {"max_bytes": 10, "max_object_bytes": 20}},
     "cache.max_object_bytes: invalid value 20; expected at most cache.max_bytes (10)"),
]


@pytest.mark.parametrize(("raw", "message"), INVALID, ids=[case[1].split(":")[0] for case in INVALID])
def test_invalid_setting_message(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_settings(raw, environ={})

    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_env_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "edgecache.toml"
    path.write_text('[cache]\nmax_bytes = 100000000\n[origin]\nread_timeout = 3.0\n')
    settings = load_settings(path, environ={"EDGECACHE_CACHE_MAX_BYTES": "200000000"})

    assert settings.cache.max_bytes == 200000000
    assert settings.origin.read_timeout == 3.0


def test_env_value_types() -> None:
    settings = build_settings({}, environ={
        "EDGECACHE_SERVER_ADMIN_LISTEN": "127.0.0.1:9999",
        "EDGECACHE_ORIGIN_READ_TIMEOUT": "1.5",
        "EDGECACHE_KEY_FOLD_CASE": "true",
        "EDGECACHE_SITE_ALLOWED_HOSTS": "a.example, b.example",
        "EDGECACHE_ADMIN_TOKEN": "s3cret",
    })

    assert settings.server.admin_listen == "127.0.0.1:9999"
    assert settings.origin.read_timeout == 1.5
    assert settings.key.fold_case is True
    assert settings.site.allowed_hosts == ("a.example", "b.example")
    assert settings.admin_token() == "s3cret"


def test_env_unknown_setting() -> None:
    with pytest.raises(ConfigError) as raised:
        build_settings({}, environ={"EDGECACHE_CACHE_MAXBYTES": "1"})

    assert str(raised.value).startswith("EDGECACHE_CACHE_MAXBYTES: unknown setting cache.maxbytes; allowed:")


def test_env_invalid_value() -> None:
    with pytest.raises(ConfigError) as raised:
        build_settings({}, environ={"EDGECACHE_CACHE_MAX_BYTES": "lots"})

    assert str(raised.value) == "EDGECACHE_CACHE_MAX_BYTES: invalid value 'lots'; expected a positive integer"


def test_flags_override_env(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "edgecache.toml"
    path.write_text('[server]\nlisten = "127.0.0.1:1111"\nadmin_listen = "127.0.0.1:2222"\n')
    monkeypatch.setenv("EDGECACHE_SERVER_LISTEN", "127.0.0.1:3333")
    monkeypatch.setenv("EDGECACHE_SERVER_ADMIN_LISTEN", "127.0.0.1:4444")
    monkeypatch.setenv("EDGECACHE_ORIGIN_URL", "http://127.0.0.1:5555")
    args = build_parser().parse_args(["serve", "--config", str(path), "--listen", "127.0.0.1:6666",
                                      "--origin", "http://127.0.0.1:7777"])
    settings = settings_from_args(args)

    assert settings.server.listen == "127.0.0.1:6666"
    assert settings.server.admin_listen == "127.0.0.1:4444"
    assert settings.origin.url == "http://127.0.0.1:7777"


def test_default_file_lists_every_setting() -> None:
    raw = tomllib.loads(DEFAULT_CONFIG.read_text())

    for name, cls in SECTIONS.items():
        assert set(raw[name]) == {field.name for field in dataclasses.fields(cls)}, name


def test_default_file_matches_defaults() -> None:
    raw = tomllib.loads(DEFAULT_CONFIG.read_text())
    settings = build_settings(raw, environ={})

    for name, cls in SECTIONS.items():
        assert getattr(settings, name) == cls(), name
    assert [rule.name for rule in settings.rules] == ["product", "category", "static"]


def test_default_file_comments_every_setting() -> None:
    text = DEFAULT_CONFIG.read_text()
    sections, _, _ = text.partition("[[rules]]")
    lines = sections.splitlines()
    uncommented = []
    for index, line in enumerate(lines):
        if not (line[:1].isalpha() and "=" in line):
            continue
        commented_inline = "#" in line.partition("=")[2]
        commented_above = index > 0 and lines[index - 1].startswith("#")
        if not (commented_inline or commented_above):
            uncommented.append(line.partition("=")[0].strip())

    assert uncommented == []


def test_default_file_describes_rule_fields() -> None:
    comments = [line for line in DEFAULT_CONFIG.read_text().splitlines() if line.startswith("#   ")]
    described = {line.split()[1] for line in comments}

    assert {field.name for field in dataclasses.fields(Rule)} <= described
