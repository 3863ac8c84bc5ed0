"""Cache keys: the site, the canonical path and the configured key cookies.

The Vary part of a key is added by the store (see vary.py), because it depends on
the stored response, not only on the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from yarl import URL

from .config import KeySettings

_REPEATED_SLASHES = re.compile(r"/{2,}")
# Canonical forms of this many recent raw paths are remembered, because building a yarl
# URL is most of the cost of a cache hit's key. Only paths up to MEMO_MAX_PATH_CHARS
# are remembered, so the memo holds at most about 2 MiB whatever clients send.
MEMO_PATHS = 4096
MEMO_MAX_PATH_CHARS = 512


def canonical_path(raw_path: str, *, fold_trailing_slash: bool = False, fold_case: bool = False) -> str:
    """Return the canonical form of a request path (without its query), remembering recent ones."""
    if len(raw_path) <= MEMO_MAX_PATH_CHARS:
        return _canonical_path_memo(raw_path, fold_trailing_slash, fold_case)
    return _canonical_path(raw_path, fold_trailing_slash, fold_case)


def _canonical_path(raw_path: str, fold_trailing_slash: bool, fold_case: bool) -> str:
    """Return the canonical form of a request path (without its query).

    Percent-escapes of unreserved characters are decoded and the remaining ones
    upper-cased, dot segments are removed (RFC 3986 section 5.2.4) and repeated
    slashes collapsed, so `/shoe/p`, `//shoe/p`, `/a/../shoe/p` and `/%73hoe/p` are
    one path. An encoded slash (%2F) stays encoded and never acts as a separator.
    """
    path = raw_path.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):
        path = "/" + path
    path = _REPEATED_SLASHES.sub("/", path)
    # yarl normalizes escapes and removes dot segments for absolute URLs only.
    path = URL("http://canonical.invalid" + path).raw_path or "/"
    if fold_trailing_slash and len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    if fold_case:
        path = path.lower()
    return path


def origin_form(target: str) -> str:
    """Return the path and query of a request target, dropping an absolute-form's scheme and host.

    The host named in an absolute-form target (`GET http://other.example/p`) never
    selects the origin or the site (RFC 9112 section 3.2.2 lets a server ignore it).
    """
    if target.startswith("/"):
        return target
    scheme, separator, rest = target.partition("://")
    if not separator or "/" in scheme:
        return "/" + target
    authority_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    path = rest[authority_end:]
    return path if path.startswith("/") else "/" + path
_canonical_path_memo = lru_cache(maxsize=MEMO_PATHS)(_canonical_path)


@dataclass(frozen=True, slots=True)
class CacheKey:
    """The identity of a cached resource before its Vary part."""

    site: str
    path: str
    cookie_part: str = ""

    def __str__(self) -> str:
        if self.cookie_part:
            return f"{self.site}{self.path} [{self.cookie_part}]"
        return f"{self.site}{self.path}"


def select_site(host_header: str | None, default_site: str, allowed_hosts: tuple[str, ...]) -> str:
    """Return the client's Host when it is allowed, else the default site."""
    if host_header:
        host = host_header.strip().lower()
        if host in allowed_hosts:
            return host
    return default_site


def cookie_part(cookies: Mapping[str, str], names: tuple[str, ...]) -> str:
    """Return the key cookies' values in a stable order; absent cookies are empty."""
    if not names:
        return ""
    return "&".join(f"{name}={cookies.get(name, '')}" for name in names)


def build_key(
    raw_path: str,
    host_header: str | None,
    cookies: Mapping[str, str],
    *,
    settings: KeySettings,
    default_site: str,
    allowed_hosts: tuple[str, ...],
) -> CacheKey:
    return CacheKey(
        site=select_site(host_header, default_site, allowed_hosts),
        path=canonical_path(
            raw_path,
            fold_trailing_slash=settings.fold_trailing_slash,
            fold_case=settings.fold_case,
        ),
        cookie_part=cookie_part(cookies, settings.cookies),
    )
