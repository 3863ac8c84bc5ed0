"""Secondary keys from Vary (RFC 9111 section 4.1), as pure functions.

Accept-Encoding is normalized to three buckets so that browsers, which each spell
their preferences differently, share one copy per encoding. A bucket is safe only
when whatever the origin sends for it is acceptable to every client in it. So
edgecache sends the origin the bucket's own Accept-Encoding value (see
`BUCKET_ACCEPT_ENCODING`), not the first client's, as Varnish setups commonly do.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

# The Accept-Encoding value sent to the origin for each bucket. "identity" is sent explicitly,
# because without any Accept-Encoding every coding would be acceptable (RFC 9110 section 12.5.3).
BUCKET_ACCEPT_ENCODING = {"br": "br, gzip", "gzip": "gzip", "identity": "identity"}
# Separates the name=value parts of a variant key. RFC 9110 section 5.5 allows no control
# characters in field values, so a value cannot contain it.
_VARIANT_SEPARATOR = "\x1f"
# Distinct Accept-Encoding values whose bucket is remembered; browsers send a handful.
_BUCKET_CACHE_SIZE = 256


def vary_names(values: list[str]) -> tuple[str, ...]:
    """Return the lower-cased, sorted field names of the Vary header values."""
    names = {part.strip().lower() for value in values for part in value.split(",") if part.strip()}
    return tuple(sorted(names))


@lru_cache(maxsize=_BUCKET_CACHE_SIZE)
def accept_encoding_bucket(value: str | None) -> str:
    """Return br, gzip or identity for an Accept-Encoding value.

    br means both br and gzip are acceptable (nearly every browser), gzip means gzip
    is, identity covers the rest. A coding with q=0 is not acceptable; `*` stands
    for codings not named.
    """
    if not value:
        return "identity"
    codings = {}
    for part in value.lower().split(","):
        coding, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 1.0
        codings[coding.strip()] = quality
    default = codings.get("*", 0.0)
    gzip = codings.get("gzip", codings.get("x-gzip", default)) > 0
    if gzip and codings.get("br", default) > 0:
        return "br"
    return "gzip" if gzip else "identity"


def normalize_value(name: str, value: str | None) -> str:
    if name == "accept-encoding":
        return accept_encoding_bucket(value)
    if value is None:
        return ""
    return " ".join(value.split()).lower() if name.startswith("accept") else value.strip()


def request_value(request_headers: Mapping[str, str], name: str) -> str | None:
    """Return a request field's value, its lines joined with ", " (RFC 9110 section 5.3)."""
    getall = getattr(request_headers, "getall", None)
    if getall is None:
        return request_headers.get(name)
    values = getall(name, ())
    if len(values) < 2:
        return values[0] if values else None
    return ", ".join(values)


def variant_key(names: tuple[str, ...], request_headers: Mapping[str, str]) -> str:
    """Return the secondary key for a request, given the stored response's Vary names."""
    if not names:
        return ""
    return _VARIANT_SEPARATOR.join(f"{name}={normalize_value(name, request_value(request_headers, name))}"
                                   for name in names)


def variant_request_fields(variant: str) -> dict[str, str]:
    """Return request fields that select a stored variant again, for a fetch edgecache makes itself.

    Accept-Encoding gets its bucket's value (see `BUCKET_ACCEPT_ENCODING`). An empty value
    stands for a field the variant's request did not have, so it is left out.
    """
    fields: dict[str, str] = {}
    if not variant:
        return fields
    for part in variant.split(_VARIANT_SEPARATOR):
        name, _, value = part.partition("=")
        if value:
            fields[name] = BUCKET_ACCEPT_ENCODING.get(value, value) if name == "accept-encoding" else value
    return fields
