"""The binary format of entries in Redis: a versioned, length-prefixed record.

Layout, integers big-endian:

    magic "ECE" | version (1 byte) | metadata length (u32) | body length (u32)
    | metadata (UTF-8 JSON object) | body

Reading only parses JSON and copies bytes, so a value written by anyone who can
reach Redis cannot make edgecache run code (unlike pickle). Every field is
type-checked when read; anything unexpected raises CorruptEntryError, which the
caller treats as a miss.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from ..entry import Entry
from ..errors import CorruptEntryError
from ..key import CacheKey

MAGIC = b"ECE"
VERSION = 1
_PREFIX = struct.Struct(">3sBII")

_FLOAT_FIELDS = ("request_time", "response_time", "initial_age", "lifetime", "fresh_until",
                 "stale_while_revalidate_until", "stale_if_error_until")
_BOOL_FIELDS = ("must_revalidate", "no_cache", "forbid_stale")


def encode_entry(entry: Entry) -> bytes:
    """Serialize an entry; the caller checks the result against its size limit."""
    metadata: dict[str, Any] = {
        "key": [entry.key.site, entry.key.path, entry.key.cookie_part],
        "variant": entry.variant,
        "vary": list(entry.vary),
        "status": entry.status,
        "headers": [[name, value] for name, value in entry.headers.items()],
        "rule": entry.rule,
        "tags": sorted(entry.tags),
        "claims": [[sku, state] for sku, state in entry.claims],
    }
    for name in (*_FLOAT_FIELDS, *_BOOL_FIELDS):
        metadata[name] = getattr(entry, name)
    encoded = json.dumps(metadata, separators=(",", ":"), allow_nan=False).encode()
    return _PREFIX.pack(MAGIC, VERSION, len(encoded), len(entry.body)) + encoded + entry.body


def decode_entry(data: bytes, *, max_bytes: int) -> Entry:
    """Parse a serialized entry, rejecting anything larger than `max_bytes`."""
    if len(data) > max_bytes:
        raise CorruptEntryError(f"entry of {len(data)} bytes is over the limit of {max_bytes} bytes")
    if len(data) < _PREFIX.size:
        raise CorruptEntryError(f"entry of {len(data)} bytes is shorter than its {_PREFIX.size}-byte prefix")
    magic, version, metadata_length, body_length = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CorruptEntryError(f"entry starts with {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise CorruptEntryError(f"entry format version {version} is not supported (expected {VERSION})")
    if _PREFIX.size + metadata_length + body_length != len(data):
        raise CorruptEntryError(f"entry lengths {metadata_length} + {body_length} do not match its size {len(data)}")
    start = _PREFIX.size
    try:
        metadata = json.loads(data[start:start + metadata_length])
    except ValueError as exc:
        raise CorruptEntryError(f"entry metadata is not valid JSON: {exc}") from None
    body = data[start + metadata_length:]
    try:
        return _build_entry(metadata, body)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptEntryError(f"entry metadata is invalid: {exc!r}") from None


def _build_entry(metadata: Any, body: bytes) -> Entry:
    site, path, cookie_part = _strings(metadata["key"], 3)
    headers: CIMultiDict[str] = CIMultiDict()
    for pair in metadata["headers"]:
        name, value = _strings(pair, 2)
        headers.add(name, value)
    times = {name: _number(metadata[name]) for name in _FLOAT_FIELDS}
    flags = {name: _flag(metadata[name]) for name in _BOOL_FIELDS}
    status = metadata["status"]
    if type(status) is not int or not 100 <= status <= 999:
        raise ValueError(f"status {status!r}")
    return Entry(
        key=CacheKey(site, path, cookie_part), variant=_string(metadata["variant"]),
        vary=tuple(_string(name) for name in metadata["vary"]), status=status,
        headers=CIMultiDictProxy(headers), body=body, rule=_string(metadata["rule"]),
        tags=frozenset(_string(tag) for tag in metadata["tags"]),
        claims=tuple((sku, state) for sku, state in (_strings(pair, 2) for pair in metadata["claims"])),
        **times, **flags,  # type: ignore[arg-type]
    )


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strings(value: Any, count: int) -> list[str]:
    if not isinstance(value, list) or len(value) != count:
        raise ValueError(f"expected a list of {count} strings, got {value!r:.80}")
    return [_string(item) for item in value]


def _number(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r:.80}")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r:.80}")
    return value
