"""The origin client: one keep-alive pool to the configured origin, errors translated once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .config import OriginSettings
from .errors import OriginError, OriginTimeoutError
from .log import origin_logger
from .outcomes import Reason
from .storability import HOP_BY_HOP

# Client fields that never decide the stored response: edgecache fetches the full
# response it can store and applies the client's conditions and Range itself.
CONDITIONAL_FIELDS = frozenset({
    "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range", "range",
})
# Fields set by edgecache itself, or that a client could use to make the origin
# render something other than what the cache key says (cache poisoning).
PROXY_SET_FIELDS = frozenset({
    "host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-server",
    "x-forwarded-port", "x-host", "x-original-url", "x-rewrite-url", "x-http-method-override",
    "forwarded", "content-length",
})

READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ForwardContext:
    """What the origin should learn about the client connection."""

    client_ip: str
    scheme: str
    host: str


def forward_headers(
    client_headers: Mapping[str, str] | CIMultiDictProxy[str],
    context: ForwardContext,
    *,
    strip_conditionals: bool,
) -> CIMultiDict[str]:
    """Return the headers to send to the origin for a client request."""
    dropped = set(HOP_BY_HOP) | PROXY_SET_FIELDS
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

    def __repr__(self) -> str:
        return f"<OriginClient {self.base_url} max_connections={self.settings.max_connections}>"

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.settings.max_connections, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
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
        """Send a request and return the response with its headers read; the caller releases it."""
        assert self._session is not None, "call OriginClient.start() first"
        url = self.url_for(raw_path_qs)
        try:
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
