"""Secondary keys from Vary (RFC 9111 section 4.1), as pure functions."""

from __future__ import annotations

from collections.abc import Mapping


def vary_names(values: list[str]) -> tuple[str, ...]:
    """Return the lower-cased, sorted field names of the Vary header values."""
    names = {part.strip().lower() for value in values for part in value.split(",") if part.strip()}
    return tuple(sorted(names))


def accept_encoding_bucket(value: str | None) -> str:
    """Return br, gzip or identity for an Accept-Encoding value.

    Browsers send many spellings of the same preference; bucketing them keeps one
    copy per encoding the origin is likely to produce instead of one per browser.
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
    for coding in ("br", "gzip"):
        if codings.get(coding, codings.get("*", 0.0)) > 0:
            return coding
    return "identity"


def normalize_value(name: str, value: str | None) -> str:
    if name == "accept-encoding":
        return accept_encoding_bucket(value)
    if value is None:
        return ""
    return " ".join(value.split()).lower() if name.startswith("accept") else value.strip()


def variant_key(names: tuple[str, ...], request_headers: Mapping[str, str]) -> str:
    """Return the secondary key for a request, given the stored response's Vary names."""
    if not names:
        return ""
    return "\x1f".join(f"{name}={normalize_value(name, request_headers.get(name))}" for name in names)
