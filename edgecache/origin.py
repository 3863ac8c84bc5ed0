"""The origin client: one keep-alive pool to the configured origin, errors translated once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .config import OriginSettings
from .errors import OriginBusyError, OriginError, OriginTimeoutError
from .log import origin_logger
from .outcomes import Reason
from .storability import HOP_BY_HOP

# Client fields that never decide the stored response: edgecache fetches the full
# response it can store and applies the client's conditions and Range itself.
CONDITIONAL_FIELDS = frozenset({
    "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range", "range",
})
# Fields that edgecache sets itself; a client's values never reach the origin.
PROXY_SET_FIELDS = frozenset({
    "host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "content-length",
})

READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ForwardContext:
    """What the origin should learn about the client connection."""

    client_ip: str
    scheme: str
    host: str
    # Client fields dropped on top of PROXY_SET_FIELDS (origin.drop_request_headers), lower-case.
    dropped: frozenset[str] = frozenset()


def forward_headers(
    client_headers: Mapping[str, str] | CIMultiDictProxy[str],
    context: ForwardContext,
    *,
    strip_conditionals: bool,
) -> CIMultiDict[str]:
    """Return the headers to send to the origin for a client request."""
    dropped = set(HOP_BY_HOP) | PROXY_SET_FIELDS | context.dropped
    if strip_conditionals:
        dropped |= CONDITIONAL_FIELDS
    for value in client_headers.getall("connection", []) if hasattr(client_headers, "getall") else ():
        dropped.update(name.strip().lower() for name in value.split(","))
    headers = CIMultiDict((name, value) for name, value in client_headers.items() if name.lower() not in dropped)
    headers["Host"] = context.host
    headers["X-Forwarded-For"] = context.client_ip
    headers["X-Forwarded-Proto"] = context.scheme
    headers["X-Forwarded-Host"] = context.host
    return headers


def response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """Return an origin response's headers without hop-by-hop and framing fields."""
    dropped = set(HOP_BY_HOP) | {"content-length"}
    for value in headers.getall("connection", []):
        dropped.update(name.strip().lower() for name in value.split(","))
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in dropped)


class OriginClient:
    """Sends requests to the one configured origin over a bounded keep-alive pool."""

    def __init__(self, settings: OriginSettings) -> None:
        self.settings = settings
        self.base_url = URL(settings.url)
        self._session: aiohttp.ClientSession | None = None
        # One slot per origin connection; a request holds its slot until its response is released.
        self._slots: asyncio.Semaphore | None = None
        self.in_use = 0

    def __repr__(self) -> str:
        return (f"<OriginClient {self.base_url} in_use={self.in_use} "
                f"max_connections={self.settings.max_connections}>")

    async def start(self) -> None:
        self._slots = asyncio.Semaphore(self.settings.max_connections)
        connector = aiohttp.TCPConnector(limit=self.settings.max_connections, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            # Response header limits: a category page may list thousands of tags in one field.
            max_line_size=self.settings.max_header_bytes,
            max_field_size=self.settings.max_header_bytes,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.settings.connect_timeout, sock_read=self.settings.read_timeout
            ),
            # Clients' cookies are forwarded per request; the pool must never keep any.
            cookie_jar=aiohttp.DummyCookieJar(),
            # The client's Accept-Encoding decides the variant; aiohttp must not add its own.
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url_for(self, raw_path_qs: str) -> URL:
        """Return the origin URL for a request target; only its path and query are used.

        NOTE: yarl drops an empty query, so a bypassed `/p?` reaches the origin as `/p`.
        """
        return URL(str(self.base_url.with_path("").with_query(None)).rstrip("/") + raw_path_qs, encoded=True)

    async def request(
        self, method: str, raw_path_qs: str, headers: CIMultiDict[str], *, data: Any = None
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response with its headers read; the caller releases it.

        Waits at most origin.queue_timeout for a free connection slot, else raises
        OriginBusyError. The slot is held until the response is released or read to the end.
        """
        assert self._session is not None and self._slots is not None, "call OriginClient.start() first"
        await self._acquire_slot(method, raw_path_qs)
        try:
            response = await self._send(method, raw_path_qs, headers, data=data)
        except BaseException:
            self._release_slot()
            raise
        connection = response.connection
        if connection is None:
            self._release_slot()
        else:
            connection.add_callback(_once(self._release_slot))
        return response

    async def _acquire_slot(self, method: str, raw_path_qs: str) -> None:
        assert self._slots is not None
        try:
            await asyncio.wait_for(self._slots.acquire(), self.settings.queue_timeout)
        except TimeoutError:
            raise OriginBusyError(
                f"origin busy: all {self.settings.max_connections} connections in use for "
                f"{self.settings.queue_timeout:g} s ({method} {raw_path_qs.partition('?')[0]})",
                reason=Reason.ORIGIN_BUSY,
            ) from None
        self.in_use += 1

    def _release_slot(self) -> None:
        assert self._slots is not None
        self.in_use -= 1
        self._slots.release()

    async def _send(self, method: str, raw_path_qs: str, headers: CIMultiDict[str], *,
                    data: Any) -> aiohttp.ClientResponse:
        assert self._session is not None
        url = self.url_for(raw_path_qs)
        try:
            async with asyncio.timeout(self.settings.header_timeout):
                return await self._session.request(
                    method, url, headers=headers, data=data, allow_redirects=False, compress=None,
                )
        except asyncio.CancelledError:
            raise
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise OriginTimeoutError(f"origin timed out: {method} {url.path}", reason=Reason.ORIGIN_TIMEOUT) from exc
        except aiohttp.ClientConnectorError as exc:
            raise OriginError(f"origin unreachable: {exc.os_error}", reason=Reason.ORIGIN_UNREACHABLE) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise OriginError(f"origin closed the connection: {exc}", reason=Reason.ORIGIN_UNREACHABLE) from exc
        except aiohttp.ClientResponseError as exc:
            raise OriginError(f"origin sent an invalid response: {exc.message}", reason=Reason.ORIGIN_INVALID) from exc
        except aiohttp.ClientError as exc:
            raise OriginError(f"origin request failed: {exc}", reason=Reason.ORIGIN_INVALID) from exc


def _once(callback: Callable[[], None]) -> Callable[[], None]:
    """Wrap `callback` so that only its first call runs (aiohttp may notify release and close)."""
    called = False

    def wrapper() -> None:
        nonlocal called
        if not called:
            called = True
            callback()

    return wrapper


async def read_body(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Read a response body up to `limit` bytes; return the bytes and whether all were read.

    Raises OriginError when the body ends early (reset, or shorter than Content-Length),
    so a truncated body is never mistaken for a whole one.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = await response.content.read(READ_CHUNK_BYTES)
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
    except asyncio.CancelledError:
        raise
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise OriginTimeoutError("origin timed out while sending the body", reason=Reason.ORIGIN_TIMEOUT) from exc
    except (aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        origin_logger.warning("origin body ended early: %s", exc)
        raise OriginError("origin body ended early", reason=Reason.ORIGIN_INVALID) from exc
    return b"".join(chunks), False
