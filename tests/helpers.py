"""Test helpers: a raw-socket HTTP client, a fake clock, free ports and a bounded wait.

aiohttp's client rewrites `//shoe/p`, `/a/../shoe/p` and a bare `?` before sending,
so tests of the canonical path and of absolute-form targets send bytes themselves.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

from multidict import CIMultiDict


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: CIMultiDict[str]
    body: bytes


class FakeClock:
    """A settable clock in epoch seconds, for Edgecache(clock=...)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def free_port() -> int:
    """Return a loopback port that nothing listens on (closed right after binding)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Seconds a wait for a state gets when it only guards against a hang, generous for a loaded machine.
HANG_LIMIT = 30.0


async def wait_until(condition: Callable[[], bool], *, timeout: float = 5.0) -> None:
    """Yield to the loop until `condition()` holds; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


async def raw_request(port: int, target: str, *, method: str = "GET", host: str = "127.0.0.1",
                      headers: dict[str, str] | None = None, body: bytes = b"") -> RawResponse:
    """Send one request with `target` exactly as given and read the whole response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return parse_response(data, head_only=method == "HEAD")


def parse_response(data: bytes, *, head_only: bool = False) -> RawResponse:
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    if head_only:
        return RawResponse(int(status_line.split()[1]), headers, rest)
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    return RawResponse(int(status_line.split()[1]), headers, rest)


def _dechunk(data: bytes) -> bytes:
    body = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body += data[:size]
        data = data[size + 2:]
    return body
