"""Client responses: from a stored entry, from the origin, or for an error."""

from __future__ import annotations

import asyncio
from functools import lru_cache

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from .conditional import is_not_modified, not_modified_headers, requested_range
from .entry import Entry
from .errors import OriginBusyError, OriginError
from .hit_response import StoredHitResponse, encode_stored_fields, is_plain_connection
from .log import origin_logger
from .origin import READ_CHUNK_BYTES, response_headers
from .outcomes import X_CACHE, Outcome, Reason
from .request_context import RequestContext

VIA = "1.1 edgecache"
# The cache name that starts each Cache-Status value (RFC 9211 section 2).
CACHE_NAME = "edgecache"
# The RFC 9211 fwd value of an outcome when the caller names none.
_FWD = {Outcome.STALE: "stale", Outcome.REVALIDATED: "stale", Outcome.MISS: "uri-miss", Outcome.ERROR: "uri-miss"}
# Maximum whole-second ttl values whose plain HIT Cache-Status value is memoized.
# Past it the least recently used value is built again, which is all a miss of the memo costs.
HIT_STATUS_MEMO = 4096


def cache_status(outcome: Outcome, *, reason: str | None = None, ttl: float | None = None,
                 stored: bool = False, fwd: str | None = None, fwd_status: int | None = None,
                 collapsed: bool = False) -> str:
    """Return an RFC 9211 Cache-Status value for one response.

    `fwd` says why the request went forward (uri-miss, stale, request, ...); without
    it, the outcome's usual one is given. `reason` becomes the single detail.
    `collapsed` marks a request that waited for another request's origin fetch.
    """
    if outcome is Outcome.HIT and ttl is not None and not (reason or fwd or fwd_status is not None
                                                           or stored or collapsed):
        return _hit_status(int(ttl))
    parts = [CACHE_NAME]
    if outcome is Outcome.HIT:
        parts.append("hit")
    elif outcome is Outcome.BYPASS:
        parts.append("fwd=bypass")
    else:
        parts.append(f"fwd={fwd or _FWD[outcome]}")
    if fwd_status is not None:
        parts.append(f"fwd-status={fwd_status}")
    if ttl is not None:
        parts.append(f"ttl={int(ttl)}")
    if stored:
        parts.append("stored")
    if collapsed:
        parts.append("collapsed")
    if reason:
        parts.append(f"detail={reason}")
    return "; ".join(parts)


@lru_cache(maxsize=HIT_STATUS_MEMO)
def _hit_status(ttl: int) -> str:
    """Return the Cache-Status value of a plain hit, which changes from hit to hit only in its ttl."""
    return f"{CACHE_NAME}; hit; ttl={ttl}"


def decorate(headers: CIMultiDict[str], *, outcome: Outcome, status_value: str, age: int) -> None:
    """Add the headers every edgecache response carries."""
    headers["Age"] = str(age)
    headers["X-Cache"] = X_CACHE[outcome]
    headers["Cache-Status"] = status_value
    via = headers.get("Via")
    headers["Via"] = f"{via}, {VIA}" if via else VIA


def from_entry(request: web.BaseRequest, entry: Entry, *, age: int, outcome: Outcome, status_value: str,
               extra_headers: list[tuple[str, str]] | None = None) -> web.StreamResponse:
    """Build the response for a request served from a stored entry.

    Applies the client's conditions (304) and a single byte range on GET (206, or 416).
    A plain request pays only for the membership tests, and a plain 200 is written by
    StoredHitResponse. `extra_headers` are fields that were not stored but belong to
    this client's response (see `unstored_fields`).
    """
    request_headers = request.headers
    if ("if-none-match" in request_headers or "if-modified-since" in request_headers) and is_not_modified(
            request_headers, entry.headers, entry.status, received=entry.response_time):
        headers = not_modified_headers(entry.headers)
        if extra_headers:
            headers.extend(extra_headers)
        decorate(headers, outcome=outcome, status_value=status_value, age=age)
        return web.Response(status=304, headers=headers)
    ranged = "range" in request_headers and request.method == "GET"
    if entry.status == 200 and not extra_headers and not ranged and is_plain_connection(request):
        stored_fields = _hit_fields(entry)
        if stored_fields:
            dynamic_fields = f"Age: {age}\r\nX-Cache: {X_CACHE[outcome]}\r\nCache-Status: {status_value}\r\n"
            return StoredHitResponse(stored_fields, dynamic_fields, entry.body)
    headers = CIMultiDict(entry.headers)
    if extra_headers:
        headers.extend(extra_headers)
    decorate(headers, outcome=outcome, status_value=status_value, age=age)
    body = entry.body
    if ranged and entry.status == 200:
        byte_range = requested_range(request_headers, entry.headers, len(body))
        if byte_range is False:
            # Only the length (RFC 9110 section 15.5.17): the entry's Cache-Control must not
            # make a cache downstream keep the 416.
            unsatisfiable: CIMultiDict[str] = CIMultiDict({"Content-Range": f"bytes */{len(body)}"})
            decorate(unsatisfiable, outcome=outcome, status_value=status_value, age=age)
            return web.Response(status=416, headers=unsatisfiable)
        if byte_range:
            first, last = byte_range
            headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
            return web.Response(status=206, headers=headers, body=body[first:last + 1])
    return web.Response(status=entry.status, headers=headers, body=body)


def _hit_fields(entry: Entry) -> bytes:
    """Return the entry's encoded hit fields, encoding them on its first plain hit; b"" if it has none."""
    encoded = entry.hit_fields
    if encoded is None:
        encoded = encode_stored_fields(entry.headers, len(entry.body), via=VIA) or b""
        entry.keep_hit_fields(encoded)
    return encoded


def error_status(error: OriginError) -> int:
    """Return the client status for an origin failure: 503 busy, 504 timed out, else 502."""
    if isinstance(error, OriginBusyError):
        return 503
    return 504 if isinstance(error, TimeoutError) else 502


# Bodies of the error responses for origin failures. They name the failure only: the
# origin's address and the low-level error go to the log, never to the public client.
_ORIGIN_FAILURE_MESSAGES = {
    Reason.ORIGIN_UNREACHABLE: "origin unreachable",
    Reason.ORIGIN_TIMEOUT: "origin timed out",
    Reason.ORIGIN_INVALID: "origin sent an invalid response",
    Reason.ORIGIN_BUSY: "origin busy; try again later",
}


def fail(context: RequestContext, status: int, reason: str, *,
         forwarded: Outcome = Outcome.ERROR) -> web.Response:
    """Build the error response for an origin failure.

    `forwarded` is why the request went to the origin (Cache-Status fwd).
    """
    context.outcome, context.reason = Outcome.ERROR, reason
    status_value = cache_status(forwarded, reason=reason)
    message = _ORIGIN_FAILURE_MESSAGES.get(reason, "origin request failed")
    # A failed forced miss keeps X-Cache: BYPASS, matching fwd=bypass in its Cache-Status.
    x_cache_outcome = Outcome.BYPASS if forwarded is Outcome.BYPASS else Outcome.ERROR
    return error_response(status, message, outcome=x_cache_outcome, status_value=status_value)


def reject(context: RequestContext, status: int, reason: str, message: str) -> web.Response:
    """Build an error response for a request that edgecache rejects without contacting the origin.

    Its Cache-Status has no fwd parameter, because nothing went forward (RFC 9211 section 2.2).
    """
    context.outcome, context.reason = Outcome.ERROR, reason
    return error_response(status, message, outcome=Outcome.ERROR, status_value=f"{CACHE_NAME}; detail={reason}")


def error_response(status: int, message: str, *, outcome: Outcome, status_value: str) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})
    decorate(headers, outcome=outcome, status_value=status_value, age=0)
    return web.Response(status=status, headers=headers, text=message + "\n")


def buffered_response(upstream: aiohttp.ClientResponse, body: bytes, *, outcome: Outcome,
                      status_value: str, strip: tuple[str, ...] = ()) -> web.Response:
    headers = response_headers(upstream.headers)
    for name in strip:
        headers.popall(name, None)
    headers.popall("Age", None)
    decorate(headers, outcome=outcome, status_value=status_value, age=0)
    return web.Response(status=upstream.status, reason=upstream.reason, headers=headers, body=body)


async def stream_response(request: web.BaseRequest, upstream: aiohttp.ClientResponse, *, outcome: Outcome,
                          status_value: str, prefix: bytes = b"", strip: tuple[str, ...] = ()) -> web.StreamResponse:
    """Stream an origin response to the client without buffering it whole."""
    headers = stream_headers(upstream, outcome=outcome, status_value=status_value, strip=strip)
    response = await start_stream(request, upstream, headers)
    await write_stream_body(request, upstream, response, prefix=prefix)
    return response


def stream_headers(upstream: aiohttp.ClientResponse, *, outcome: Outcome, status_value: str,
                   strip: tuple[str, ...] = ()) -> CIMultiDict[str]:
    """Return the client's fields for a streamed origin response, the origin's Age kept."""
    headers = response_headers(upstream.headers)
    for name in strip:
        headers.popall(name, None)
    age = upstream.headers.get("Age", "0")
    decorate(headers, outcome=outcome, status_value=status_value, age=int(age) if age.isdigit() else 0)
    return headers


async def start_stream(request: web.BaseRequest, upstream: aiohttp.ClientResponse,
                       headers: CIMultiDict[str]) -> web.StreamResponse:
    """Send the status line and `headers` of a streamed response; aiohttp copies `headers`."""
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    await response.prepare(request)
    return response


async def write_stream_body(request: web.BaseRequest, upstream: aiohttp.ClientResponse,
                            response: web.StreamResponse, *, prefix: bytes = b"",
                            keep_limit: int | None = None) -> bytes | None:
    """Write `prefix` and the rest of the origin body to a prepared response.

    With `keep_limit`, return the whole body when it arrived complete and within that
    many bytes, else None. Once the headers are sent, an origin failure cannot become an
    error response, so the client connection is aborted and the client sees a truncated
    transfer.
    """
    kept: list[bytes] | None = [prefix] if keep_limit is not None and len(prefix) <= keep_limit else None
    size = len(prefix)
    try:
        if prefix:
            await response.write(prefix)
        async for chunk in upstream.content.iter_chunked(READ_CHUNK_BYTES):
            await response.write(chunk)
            size += len(chunk)
            if kept is not None and keep_limit is not None and size <= keep_limit:
                kept.append(chunk)
            else:
                kept = None
        await response.write_eof()
    except asyncio.CancelledError:
        raise
    except (aiohttp.ClientPayloadError, aiohttp.ClientOSError, aiohttp.ServerDisconnectedError,
            asyncio.TimeoutError) as exc:
        origin_logger.warning("origin failed mid-body for %s: %r; aborting the client connection", request.path, exc)
        if request.transport is not None:
            request.transport.abort()
        return None
    except ConnectionResetError:
        return None  # The client went away, so the rest of the body was not read.
    return b"".join(kept) if kept is not None else None
