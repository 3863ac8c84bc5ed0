"""Cache-Control parsing (RFC 9111 section 5.2), lenient toward origin input.

A malformed directive is ignored rather than raising, because the origin's
mistakes must not turn into errors for clients.
"""

from __future__ import annotations

from collections.abc import Iterable

# Delta-seconds above this are capped (RFC 9111 section 1.2.2 suggests 2**31).
MAX_DELTA_SECONDS = 2**31
_MAX_DELTA_DIGITS = len(str(MAX_DELTA_SECONDS))


def parse_cache_control(values: Iterable[str]) -> dict[str, str | None]:
    """Return the directives of one or more Cache-Control field values.

    Names are lower-cased; a directive without an argument maps to None. When a
    directive repeats, the first occurrence wins.
    """
    directives: dict[str, str | None] = {}
    for value in values:
        for part in _split_top_level(value):
            name, sep, argument = part.partition("=")
            name = name.strip().lower()
            if not name or name in directives:
                continue
            if not sep:
                directives[name] = None
                continue
            argument = argument.strip()
            if len(argument) >= 2 and argument[0] == argument[-1] == '"':
                argument = argument[1:-1]
            directives[name] = argument
    return directives


def _split_top_level(value: str) -> list[str]:
    """Split on commas outside quoted strings (no-cache="a, b" is one directive)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def parse_delta_seconds(text: str | None) -> int | None:
    """Return a delta-seconds value capped at MAX_DELTA_SECONDS, or None when invalid (RFC 9111 section 1.2.2).

    Only ASCII digits count ("\u00b2".isdigit() is true, but not a delta-seconds), and a
    long run of digits is capped before int() sees it, so no value can raise.
    """
    if not text or not text.isascii() or not text.isdigit():
        return None
    if len(text) > _MAX_DELTA_DIGITS:
        return MAX_DELTA_SECONDS
    return min(int(text), MAX_DELTA_SECONDS)


def delta_seconds(directives: dict[str, str | None], name: str) -> int | None:
    """Return a directive's delta-seconds, capped, or None when absent or invalid."""
    return parse_delta_seconds(directives.get(name))


def field_names(directives: dict[str, str | None], name: str) -> tuple[str, ...]:
    """Return the field names qualifying no-cache or private (lower-cased)."""
    argument = directives.get(name)
    if not argument:
        return ()
    return tuple(field.strip().lower() for field in argument.split(",") if field.strip())
