"""Conditional requests, revalidation and Range, as pure functions.

Covers the client's If-None-Match, If-Modified-Since and If-Range against a stored
entry (RFC 9110 section 13), the validators edgecache sends when it revalidates, how
a 304 freshens a stored entry (RFC 9111 sections 3.2 and 4.3.4), and single byte
ranges served from a stored full response (RFC 9110 section 14).

If-Match and If-Unmodified-Since are not evaluated here: RFC 9111 section 4.3.2 states
that they do not apply to a cache, so the request handler forwards such requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from multidict import CIMultiDict, CIMultiDictProxy

from .httpdate import parse_http_date

# Fields a 304 must carry when the 200 would have (RFC 9110 section 15.4.5); Last-Modified
# helps caches downstream that validate by date.
NOT_MODIFIED_FIELDS = ("cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified")
# Fields a 304 from the origin must not overwrite in the stored entry: Content-Length by
# RFC 9111 section 3.2, and the fields that describe the stored body's bytes, which the
# 304 cannot change (the exception that section allows "to assure integrity").
FRESHEN_KEEP_FIELDS = frozenset({"content-length", "content-encoding", "content-type", "content-range"})
# Longest byte position accepted in a Range; longer ones are invalid (and int() is never
# handed thousands of digits).
_MAX_POSITION_DIGITS = 18
_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')


def _entity_tags(field_value: str) -> list[str]:
    """Return the entity-tags of a list, quotes included; commas inside quotes do not split.

    Lenient: a list without any quoted tag is split on commas, so an unquoted tag still compares.
    """
    tags = _ENTITY_TAG.findall(field_value)
    if tags:
        return tags
    return [part.strip() for part in field_value.split(",") if part.strip()]


def _opaque_tag(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def etag_matches_weakly(if_none_match: str, etag: str | None) -> bool:
    """Return whether an If-None-Match value matches a stored entry (RFC 9110 section 13.1.2).

    `*` matches any stored representation, with or without an ETag.
    """
    if if_none_match.strip() == "*":
        return True
    if etag is None:
        return False
    wanted = _opaque_tag(etag)
    return any(_opaque_tag(candidate) == wanted for candidate in _entity_tags(if_none_match))


def etag_matches_strongly(tag: str, etag: str | None) -> bool:
    """Return whether two entity-tags are equal and neither is weak (RFC 9110 section 8.8.3.2)."""
    tag = tag.strip()
    return etag is not None and not tag.startswith("W/") and tag == etag.strip()


def is_not_modified(request_headers: Mapping[str, str], entry_headers: Mapping[str, str], status: int,
                    *, received: float | None = None) -> bool:
    """Return whether a client's conditions let the cache answer 304 (RFC 9110 section 13.2.2).

    Only a 2xx entry is compared. If-None-Match takes precedence; If-Modified-Since is
    evaluated only without it, against Last-Modified, else Date, else `received`, the
    time the entry arrived (RFC 9111 section 4.3.2).
    """
    if not 200 <= status < 300:
        return False
    if_none_match = request_headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches_weakly(if_none_match, entry_headers.get("etag"))
    since = parse_http_date(request_headers.get("if-modified-since"))
    if since is None:
        return False
    modified = parse_http_date(entry_headers.get("last-modified")) or parse_http_date(entry_headers.get("date"))
    if modified is None:
        modified = received
    return modified is not None and modified <= since


def if_range_matches(if_range: str, entry_headers: Mapping[str, str]) -> bool:
    """Return whether an If-Range lets a Range apply to the stored entry (RFC 9110 section 13.1.5).

    An entity-tag must match strongly. A date must equal Last-Modified, and that
    Last-Modified must be strong: at least one second before the entry's Date.
    """
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return etag_matches_strongly(if_range, entry_headers.get("etag"))
    since = parse_http_date(if_range)
    last_modified = parse_http_date(entry_headers.get("last-modified"))
    date_value = parse_http_date(entry_headers.get("date"))
    return (since is not None and last_modified == since
            and date_value is not None and date_value - last_modified >= 1)


def not_modified_headers(entry_headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """Return the stored fields a 304 from the cache carries."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name in NOT_MODIFIED_FIELDS:
        for value in entry_headers.getall(name, ()):
            headers.add(name.title(), value)
    return headers


def validators_for(entry_headers: Mapping[str, str]) -> dict[str, str]:
    """Return the conditional fields to revalidate an entry with the origin (RFC 9111 section 4.3.1)."""
    validators = {}
    if "etag" in entry_headers:
        validators["If-None-Match"] = entry_headers["etag"]
    if "last-modified" in entry_headers:
        validators["If-Modified-Since"] = entry_headers["last-modified"]
    return validators


def not_modified_selects(stored: Mapping[str, str], not_modified: Mapping[str, str]) -> bool:
    """Return whether a 304 applies to the stored entry it revalidated (RFC 9111 section 4.3.4).

    An ETag in the 304 must equal the stored one; without an ETag, a Last-Modified
    must equal the stored one. A 304 without validators is taken for the entry whose
    validators were sent (the only stored response it can refer to).
    """
    etag = not_modified.get("etag")
    if etag is not None:
        stored_etag = stored.get("etag")
        return stored_etag is not None and etag.strip() == stored_etag.strip()
    last_modified = not_modified.get("last-modified")
    if last_modified is not None:
        stored_date = parse_http_date(stored.get("last-modified"))
        return stored_date is not None and parse_http_date(last_modified) == stored_date
    return True


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


def parse_single_range(value: str | None, length: int) -> tuple[int, int] | None | Literal[False]:
    """Return (first, last) of a single satisfiable byte range (RFC 9110 section 14.1.2).

    Returns None when the header is absent, invalid or names several ranges (the
    full response is sent then), and False when the range is unsatisfiable (416).
    """
    if not value:
        return None
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    if not dash or not _is_position(first_text, optional=True) or not _is_position(last_text, optional=True):
        return None
    if not first_text:
        if not last_text:
            return None
        suffix = min(int(last_text), length)
        return (length - suffix, length - 1) if suffix else False
    first = int(first_text)
    last = min(int(last_text), length - 1) if last_text else length - 1
    if first >= length:
        return False
    if last < first:
        return None
    return first, last


def _is_position(text: str, *, optional: bool) -> bool:
    if not text:
        return optional
    return text.isascii() and text.isdigit() and len(text) <= _MAX_POSITION_DIGITS


def requested_range(request_headers: Mapping[str, str], entry_headers: Mapping[str, str],
                    length: int) -> tuple[int, int] | None | Literal[False]:
    """Return the byte range to serve from a stored full response, as `parse_single_range` does.

    A Range whose If-Range does not match is ignored: the full response is sent.
    """
    if_range = request_headers.get("if-range")
    if if_range is not None and not if_range_matches(if_range, entry_headers):
        return None
    return parse_single_range(request_headers.get("range"), length)
