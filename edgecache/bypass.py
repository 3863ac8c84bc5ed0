"""Sharing one origin fetch among identical forced misses in flight at the same time.

A query string forces a miss, so a flood of `/shoe/p?x=1` would otherwise send every
request to the origin. Requests whose forwarded headers are identical (apart from
X-Forwarded-For) join the first one's fetch. Only a public response is shared: no
Set-Cookie, no private or no-store, a complete body within cache.max_object_bytes.
The leader streams the body to its client as it arrives and keeps a copy for the
followers, who get it whole once the body has ended. The leader's 502, 503 or 504 is
shared too, so a failing origin is not hit once per follower. Anything else,
including a body that fails midway, releases the followers to fetch on their own.

NOTE: sharing ignores X-Forwarded-For, so an origin that renders per client address
would hand one address's page to another among requests in flight at the same moment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from .cache_control import parse_cache_control
from .outcomes import Outcome
from .responses import start_stream, stream_headers, write_stream_body


@dataclass(frozen=True, slots=True)
class SharedResponse:
    """A complete origin response that identical requests in flight may all receive."""

    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes
    # The origin failure behind an error response, so followers account it as the leader did.
    error_reason: str | None = None


def flight_key(method: str, raw_target: str, forwarded: CIMultiDict[str]) -> str:
    """Return the identity of a forwarded request: method, target and headers but the client address."""
    fields = sorted((name.lower(), value) for name, value in forwarded.items() if name.lower() != "x-forwarded-for")
    return "\n".join([method, raw_target, *(f"{name}: {value}" for name, value in fields)])


def is_shareable(headers: CIMultiDictProxy[str]) -> bool:
    """Return whether a response may be handed to other clients' identical requests."""
    if "set-cookie" in headers:
        return False
    directives = parse_cache_control(headers.getall("cache-control", []))
    return "private" not in directives and "no-store" not in directives


class BypassFlights:
    """Forced misses in flight, by flight key; the leader resolves each with a response or None."""

    def __init__(self, *, follower_timeout: float) -> None:
        self.follower_timeout = follower_timeout
        self._flights: dict[str, asyncio.Future[SharedResponse | None]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def acquire(self, key: str) -> tuple[asyncio.Future[SharedResponse | None], bool]:
        """Return the flight for `key` and whether the caller leads it."""
        future = self._flights.get(key)
        if future is not None:
            return future, False
        future = asyncio.get_running_loop().create_future()
        self._flights[key] = future
        return future, True

    def release(self, key: str, future: asyncio.Future[SharedResponse | None],
                shared: SharedResponse | None) -> None:
        """End a flight; followers get `shared`, or None to fetch on their own."""
        if self._flights.get(key) is future:
            del self._flights[key]
        if not future.done():
            future.set_result(shared)

    async def wait(self, future: asyncio.Future[SharedResponse | None]) -> SharedResponse | None:
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.follower_timeout)
        except TimeoutError:
            return None


async def stream_shareable(request: web.BaseRequest, upstream: aiohttp.ClientResponse, *, limit: int,
                           status_value: str) -> tuple[web.StreamResponse, SharedResponse | None]:
    """Stream a shareable forced miss to the leader's client and keep a copy for followers.

    Returns the response and the copy, or None when the body exceeded `limit` bytes or
    ended early. As in responses.stream_response, an origin failure after the headers
    were sent aborts the client connection, because no error response can follow.
    """
    headers = stream_headers(upstream, outcome=Outcome.BYPASS, status_value=status_value)
    response = await start_stream(request, upstream, headers)
    body = await write_stream_body(request, upstream, response, keep_limit=limit)
    if body is None:
        return response, None
    return response, SharedResponse(response.status, response.reason, CIMultiDictProxy(headers), body)
