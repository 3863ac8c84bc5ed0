"""Tags on entries, from the origin's tag header."""

from __future__ import annotations


def parse_tag_header(header_name: str, value: str | None) -> frozenset[str]:
    """Return the tags of a Surrogate-Key (space-separated) or Cache-Tag (comma-separated) value."""
    if not value:
        return frozenset()
    if header_name.lower() == "cache-tag":
        return frozenset(tag.strip() for tag in value.split(",") if tag.strip())
    return frozenset(value.split())
