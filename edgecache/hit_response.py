"""Plain cache hits written to the client connection in one write, past aiohttp's response machinery.

A 200 entry served to a GET or HEAD without conditions or a Range gets the fields
that web.Response would send for it. These are the stored fields, Content-Length, the
fields every edgecache response carries (Age, X-Cache, Cache-Status, Via), Server and
Content-Type when the origin sent none, and Connection as aiohttp 3.14 sets it. The
fields that stay the same from hit to hit are encoded once per entry. Under
`bench/profile_hits.sh 2k`, preparing a web.Response and serializing its fields took
about 10% of the event loop's samples. Every other response still goes through
web.Response.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import SERVER_SOFTWARE, HttpVersion10, HttpVersion11
from multidict import CIMultiDictProxy

# Stored fields that aiohttp would replace or that frame the message: an entry with
# one of them keeps the web.Response path, which handles them.
_FRAMING_FIELDS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
# Fields that every edgecache response sets itself, replacing any value the origin sent,
# as responses.decorate does on the web.Response path.
_REPLACED_FIELDS = frozenset({"age", "x-cache", "cache-status"})
_STATUS_LINES = {HttpVersion10: b"HTTP/1.0 200 OK\r\n", HttpVersion11: b"HTTP/1.1 200 OK\r\n"}


def encode_stored_fields(headers: CIMultiDictProxy[str], body_length: int, *, via: str) -> bytes | None:
    """Encode the fields of a 200 hit that stay the same from hit to hit, or return None.

    `via` is the Via value edgecache appends to the stored one. None means the entry
    must be served through web.Response. That is the case when it has no Date (aiohttp
    would add the current time), a framing field, a CR or LF inside a name or value, or
    bytes that are not UTF-8 (aiohttp's client keeps them as surrogate escapes).
    """
    if "date" not in headers:
        return None
    lines = []
    stored_via = None
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _FRAMING_FIELDS or "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            return None
        if lowered in _REPLACED_FIELDS:
            continue
        if lowered == "via":
            stored_via = value if stored_via is None else f"{stored_via}, {value}"
            continue
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {body_length}\r\n")
    lines.append(f"Via: {stored_via}, {via}\r\n" if stored_via else f"Via: {via}\r\n")
    if "server" not in headers:
        lines.append(f"Server: {SERVER_SOFTWARE}\r\n")
    if "content-type" not in headers and body_length:
        lines.append("Content-Type: application/octet-stream\r\n")
    try:
        return "".join(lines).encode("utf-8")
    except UnicodeEncodeError:
        return None


def is_plain_connection(request: web.BaseRequest) -> bool:
    """Return whether aiohttp's hooks cannot apply, so a hit may be written directly.

    A web.Request belongs to an Application, whose on_response_prepare signal must see
    the response. edgecache's proxy listener serves bare BaseRequests.
    """
    return type(request) is web.BaseRequest and request.version in _STATUS_LINES


class StoredHitResponse(web.StreamResponse):
    """A 200 hit whose status line, fields and body go to the client in one write on prepare."""

    def __init__(self, stored_fields: bytes, dynamic_fields: str, body: bytes) -> None:
        super().__init__(status=200)
        self._stored_fields = stored_fields
        self._dynamic_fields = dynamic_fields
        self._body_bytes = body
        self._sent_keep_alive: bool | None = None
        self._bytes_sent = 0
        self._written = False

    @property
    def prepared(self) -> bool:
        return self._written

    @property
    def keep_alive(self) -> bool | None:
        return self._sent_keep_alive

    @property
    def content_length(self) -> int | None:
        return len(self._body_bytes)

    @content_length.setter
    def content_length(self, value: int | None) -> None:
        raise RuntimeError("content_length cannot be set on a StoredHitResponse: it is the stored body's length")

    @property
    def body_length(self) -> int:
        """Bytes sent, the status line and fields included (as web.Response counts them)."""
        return self._bytes_sent

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Write the whole response; the Connection field follows aiohttp's rules for a message with a length."""
        if self._written:
            return None
        self._written = True
        version = request.version
        keep_alive = request.keep_alive
        self._sent_keep_alive = keep_alive
        if keep_alive:
            connection = "Connection: keep-alive\r\n" if version == HttpVersion10 else ""
        else:
            connection = "Connection: close\r\n" if version == HttpVersion11 else ""
        head = b"".join((_STATUS_LINES[version], self._stored_fields,
                         f"{self._dynamic_fields}{connection}\r\n".encode("utf-8")))
        data = head if request.method == "HEAD" else head + self._body_bytes
        writer = request.writer
        # write_eof sends `data` in one transport write, waits while the transport is paused,
        # and counts the bytes, so that on a later error aiohttp drops the connection instead
        # of sending a second response.
        await writer.write_eof(data)
        self._bytes_sent = len(data)
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        """Do nothing: prepare has written the whole response."""
