"""Conditional requests, revalidation and Range, as pure functions.

Covers the client's If-None-Match and If-Modified-Since against a stored entry
(RFC 9110 section 13), the validators edgecache sends when it revalidates, how a
304 freshens a stored entry (RFC 9111 sections 3.2 and 4.3.4), and single byte
ranges served from a stored full response (RFC 9110 section 14).
"""

from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy

from .httpdate import parse_http_date

# Fields a 304 must carry when the 200 would have (RFC 9110 section 15.4.5).
NOT_MODIFIED_FIELDS = ("cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified")
# Fields a 304 from the origin must not overwrite in the stored entry.
FRESHEN_KEEP_FIELDS = frozenset({"content-length", "content-encoding", "content-type", "content-range"})


def _opaque_tag(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def etag_matches_weakly(if_none_match: str, etag: str | None) -> bool:
    """Return whether an If-None-Match list matches an ETag by weak comparison."""
    if if_none_match.strip() == "*":
        return etag is not None
    if etag is None:
        return False
    wanted = _opaque_tag(etag)
    return any(_opaque_tag(candidate) == wanted for candidate in if_none_match.split(","))


def is_not_modified(request_headers: Mapping[str, str], entry_headers: Mapping[str, str], status: int) -> bool:
    """Return whether a client's conditions let the cache answer 304 (RFC 9110 section 13.2.2).

    If-None-Match takes precedence; If-Modified-Since is evaluated only without it.
    """
    if status != 200:
        return False
    if_none_match = request_headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches_weakly(if_none_match, entry_headers.get("etag"))
    since = parse_http_date(request_headers.get("if-modified-since"))
    if since is None:
        return False
    last_modified = parse_http_date(entry_headers.get("last-modified") or entry_headers.get("date"))
    return last_modified is not None and last_modified <= since


def not_modified_headers(entry_headers: Mapping[str, str]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name in NOT_MODIFIED_FIELDS:
        for value in entry_headers.getall(name, []) if hasattr(entry_headers, "getall") else ():
            headers.add(name.title(), value)
    return headers


def validators_for(entry_headers: Mapping[str, str]) -> dict[str, str]:
    """Return the conditional fields to revalidate an entry with the origin."""
    validators = {}
    if "etag" in entry_headers:
        validators["If-None-Match"] = entry_headers["etag"]
    if "last-modified" in entry_headers:
        validators["If-Modified-Since"] = entry_headers["last-modified"]
    return validators


def freshen_headers(stored: CIMultiDictProxy[str], not_modified: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """Return stored headers updated by a 304's headers (RFC 9111 section 3.2)."""
    updated_names = {
        name.lower() for name in not_modified if name.lower() not in FRESHEN_KEEP_FIELDS
    }
    headers = CIMultiDict((name, value) for name, value in stored.items() if name.lower() not in updated_names)
    for name, value in not_modified.items():
        if name.lower() in updated_names:
            headers.add(name, value)
    return headers


def parse_single_range(value: str | None, length: int) -> tuple[int, int] | None | bool:
    """Return (first, last) of a single satisfiable byte range.

    Returns None when the header is absent, invalid or names several ranges (the
    full response is sent then), and False when the range is unsatisfiable (416).
    """
    if not value:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    first_text, last_text = first_text.strip(), last_text.strip()
    if not first_text:
        if not last_text.isdigit() or int(last_text) == 0:
            return None if not last_text.isdigit() else False
        suffix = min(int(last_text), length)
        return (length - suffix, length - 1) if length else False
    if not first_text.isdigit() or (last_text and not last_text.isdigit()):
        return None
    first = int(first_text)
    last = min(int(last_text), length - 1) if last_text else length - 1
    if first >= length:
        return False
    if last < first:
        return None
    return first, last
