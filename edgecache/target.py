"""Checks on client request targets, as pure functions, before any key is built.

aiohttp already rejects request lines with control characters, CR/LF in header
values and Content-Length together with Transfer-Encoding. These checks cover what
its parser accepts but a cache must not. They reject targets that are not a path,
invalid percent-encoding and encoded control characters. They also reject dot
segments hidden behind an encoded slash or backslash (`/static/..%2f..%2faccount`),
because an origin may resolve those to another resource than the one the key names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import HttpVersion10

# Methods a reverse proxy for one site never forwards: CONNECT would open a tunnel,
# and TRACE echoes the request (including cookies) back to the client.
REJECTED_METHODS = frozenset({"CONNECT", "TRACE"})

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Percent-escapes of C0 controls and DEL.
_CONTROL_ESCAPE = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
_ENCODED_SEPARATOR = re.compile(r"%(?:2[Ff]|5[Cc])")


def target_problem(raw_target: str) -> str | None:
    """Return why an origin-form request target (path and query) is invalid, or None."""
    if not raw_target.startswith("/"):
        return "request target must be a path starting with /"
    path = raw_target.partition("?")[0]
    if _BAD_ESCAPE.search(raw_target):
        return "invalid percent-encoding in request target"
    if _CONTROL_ESCAPE.search(path):
        return "encoded control character in request path"
    if "\\" in path:
        return "backslash in request path"
    if _ENCODED_SEPARATOR.search(path):
        segments = _ENCODED_SEPARATOR.sub("/", path).split("/")
        if any(segment.lower() in ("..", ".", "%2e%2e", "%2e", ".%2e", "%2e.") for segment in segments):
            return "dot segment behind an encoded slash in request path"
    return None


def framing_problem(version: tuple[int, int], headers: Mapping[str, str]) -> str | None:
    """Return why a request's message framing is unsafe to forward, or None.

    An HTTP/1.0 request with Transfer-Encoding has faulty framing (RFC 9112 section 6.1):
    an HTTP/1.0 hop in front of edgecache may have read its body differently, so it is
    a request-smuggling shape. aiohttp's parser accepts it and decodes the chunks.
    """
    if version <= HttpVersion10 and "Transfer-Encoding" in headers:
        return "Transfer-Encoding in an HTTP/1.0 request"
    return None
