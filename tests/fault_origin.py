"""A fault-injection origin: a raw asyncio server on loopback that misbehaves per path.

Each path is scripted with a `Fault`, an async function that gets the parsed request
and the stream writer and writes whatever bytes it likes, however slowly, or none.
Unscripted paths get 200 with a small cacheable body. The server counts the
requests it received and the connections still open, so tests can check for leaks.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Seconds the server waits for a request's headers before it drops the connection.
REQUEST_READ_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class FaultRequest:
    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


Fault = Callable[[FaultRequest, asyncio.StreamWriter], Awaitable[None]]


def response_head(status: int, headers: dict[str, str] | list[tuple[str, str]]) -> bytes:
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"HTTP/1.1 {status} X"] + [f"{name}: {value}" for name, value in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def ok(body: bytes = b"fine", *, status: int = 200, headers: dict[str, str] | None = None) -> Fault:
    """Respond normally, with Content-Length."""
    fields = {"Cache-Control": "max-age=60", **(headers or {}), "Content-Length": str(len(body))}

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(status, fields) + (b"" if request.method == "HEAD" else body))
        await writer.drain()

    return fault


def silence(release: asyncio.Event) -> Fault:
    """Read the request, then send nothing until `release` is set."""

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        await release.wait()

    return fault


def slow_headers(delay: float) -> Fault:
    """Send the status line, then wait `delay` seconds before the rest of the headers."""

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        await writer.drain()
        await asyncio.sleep(delay)
        writer.write(b"Content-Length: 4\r\nCache-Control: max-age=60\r\n\r\nlate")
        await writer.drain()

    return fault


def trickle_headers(interval: float) -> Fault:
    """Send one header field every `interval` seconds and never end the header block."""

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for index in range(10_000):
            await writer.drain()
            await asyncio.sleep(interval)
            writer.write(f"X-Trickle-{index}: x\r\n".encode())

    return fault


def slow_body(delay: float, *, body: bytes = b"0123456789") -> Fault:
    """Send the headers and half of the body, then wait `delay` seconds before the rest."""

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        half = len(body) // 2
        writer.write(response_head(200, {"Cache-Control": "max-age=60", "Content-Length": str(len(body))}))
        writer.write(body[:half])
        await writer.drain()
        await asyncio.sleep(delay)
        writer.write(body[half:])
        await writer.drain()

    return fault


def reset_mid_body(*, length: int = 20_000) -> Fault:
    """Send the headers and half of the body, then reset the connection (RST)."""

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(200, {"Cache-Control": "max-age=60", "Content-Length": str(length)}))
        writer.write(b"x" * (length // 2))
        await writer.drain()
        abort_with_reset(writer)

    return fault


def short_body(*, declared: int = 100, sent: int = 40) -> Fault:
    """Declare `declared` bytes in Content-Length, send `sent`, then close cleanly."""

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(response_head(200, {"Cache-Control": "max-age=60", "Content-Length": str(declared)}))
        writer.write(b"s" * sent)
        await writer.drain()
        writer.close()

    return fault


def raw_bytes(data: bytes) -> Fault:
    """Send `data` as the whole response, then close."""

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        writer.close()

    return fault


def content_length_and_chunked() -> Fault:
    """Send a response framed both by Content-Length and by chunked Transfer-Encoding."""
    head = response_head(200, {"Cache-Control": "max-age=60", "Content-Length": "3",
                               "Transfer-Encoding": "chunked"})
    return raw_bytes(head + b"5\r\nhello\r\n0\r\n\r\n")


GZIP_PLAIN = b"<html>" + b"compressible product page " * 200 + b"</html>"
GZIP_BODY = gzip.compress(GZIP_PLAIN, mtime=0)


def gzip_body() -> Fault:
    return ok(GZIP_BODY, headers={"Content-Encoding": "gzip", "Content-Type": "text/html",
                                  "Vary": "Accept-Encoding"})


def large_headers(tag_count: int, *, body: bytes = b"category") -> Fault:
    """Respond with a Surrogate-Key header listing `tag_count` tags (about 10 bytes each)."""
    tags = " ".join(f"sku:{index:06d}" for index in range(tag_count))
    return ok(body, headers={"Surrogate-Key": tags})


def statuses(sequence: list[int], then: Fault) -> Fault:
    """Answer the given statuses in order (with no-store bodies), then behave as `then`."""
    remaining = list(sequence)

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        if not remaining:
            await then(request, writer)
            return
        status = remaining.pop(0)
        body = f"origin error {status}".encode()
        writer.write(response_head(status, {"Content-Length": str(len(body))}) + body)
        await writer.drain()

    return fault


def gated(gate: asyncio.Event, then: Fault, *, arrived: asyncio.Event | None = None) -> Fault:
    """Wait for `gate` (setting `arrived` first), then behave as `then`."""

    async def fault(request: FaultRequest, writer: asyncio.StreamWriter) -> None:
        if arrived is not None:
            arrived.set()
        await gate.wait()
        await then(request, writer)

    return fault


def abort_with_reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with RST instead of FIN (SO_LINGER with a zero timeout)."""
    if writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.fileno() != -1:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultOrigin:
    """A loopback origin whose behaviour tests script per path."""

    def __init__(self) -> None:
        self.faults: dict[str, Fault] = {}
        self.requests: list[FaultRequest] = []
        self.open_connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, path: str) -> int:
        return sum(1 for request in self.requests if request.path == path)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and reset every open connection, as a crashing origin does."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            abort_with_reset(writer)
        await self._server.wait_closed()
        self._server = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self._writers.add(writer)
        try:
            while not writer.is_closing():
                request = await self._read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                fault = self.faults.get(request.path) or ok(f"page {request.target}".encode())
                await fault(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            self.open_connections -= 1
            if not writer.is_closing():
                writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> FaultRequest | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_READ_TIMEOUT)
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length:
            await reader.readexactly(length)
        return FaultRequest(method, target, headers)
