"""The miss path: fetch a missing or stale entry from the origin once per key.

One request leads the flight for a key, and its followers wait for the leader's result
(see `coalesce`). With a shared tier, Redis is consulted before the origin, and a
cross-node lock lets one node fetch. Background refreshes for stale-while-revalidate
lead a flight too.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .coalesce import Coalescer, Flight, FlightResult, FlightStatus
from .entry import Entry, store_key
from .errors import OriginError
from .fetch import Fetched, FetchKind, Fetcher
from .forward import Forwarder
from .freshness import STALE_IF_ERROR_STATUSES
from .log import cache_logger
from .origin import forward_headers
from .outcomes import Outcome, Reason
from .request_context import Lookup, RequestContext
from .responses import buffered_response, cache_status, error_status, fail, stream_response
from .stats import Stats
from .store import MemoryStore
from .vary import variant_key

if TYPE_CHECKING:
    from .shared import SharedCache

# Keys whose full response was too large to store, remembered so that a Range request
# for one is passed through at once instead of first fetching the whole response.
TOO_LARGE_MEMORY = 1024


class FillMixin:
    """The miss, revalidation and background-refresh methods of `proxy.Proxy`.

    `Proxy.__init__` sets the attributes below, and `Proxy._serve` writes the responses.
    """

    store: MemoryStore
    stats: Stats
    clock: Callable[[], float]
    coalescer: Coalescer
    fetcher: Fetcher
    forwarder: Forwarder
    shared: SharedCache | None
    _background: set[asyncio.Task[None]]
    _too_large: OrderedDict[str, None]

    if TYPE_CHECKING:
        def _serve(self, request: web.BaseRequest, entry: Entry, now: float, outcome: Outcome,
                   context: RequestContext, *, reason: str | None = None, fwd: str | None = None,
                   fwd_status: int | None = None, stored: bool = False, collapsed: bool = False,
                   extra_headers: list[tuple[str, str]] | None = None) -> web.StreamResponse: ...

    async def _fetch(self, request: web.BaseRequest, lookup: Lookup, context: RequestContext) -> web.StreamResponse:
        """Fetch a missing or stale entry once per key; concurrent requests follow the leader."""
        flight: Flight | None
        flight, leader = self.coalescer.acquire(store_key(lookup.key, ""))
        if not leader:
            self.stats.coalesced += 1
            result = await self.coalescer.wait(flight)
            shared = result.entry
            if result.status is FlightStatus.DONE and shared is not None \
                    and shared.variant == variant_key(shared.vary, request.headers):
                return self._serve(request, shared, self.clock(), Outcome.MISS, context, fwd=lookup.fwd,
                                   collapsed=True)
            if result.status is FlightStatus.ERROR and result.error is not None:
                return self._origin_failed(request, lookup.entry, result.error, context)
            flight = None
        if self.shared is not None and not lookup.forced:
            # A client that forced revalidation must not get the shared tier's copy either.
            return await self._fetch_through_shared(request, lookup, context, flight)
        return await self._fetch_as_leader(request, lookup, context, flight)

    async def _fetch_through_shared(self, request: web.BaseRequest, lookup: Lookup, context: RequestContext,
                                    flight: Flight | None) -> web.StreamResponse:
        """Look in Redis before the origin; on a miss there too, fetch under the cross-node lock."""
        assert self.shared is not None
        try:
            entry = await self.shared.tier.lookup(lookup.key, request.headers)
            now = self.clock()
            if entry is not None and not entry.is_fresh(now) and entry.may_serve_while_revalidating(now) \
                    and not entry.no_cache:
                return self._serve_shared_stale(request, Lookup(lookup.key, lookup.rule, entry), context, flight)
            if entry is None or not entry.is_fresh(now):
                if entry is not None and lookup.entry is None:
                    # A stale shared entry still gives validators and a stale-if-error fallback.
                    lookup = Lookup(lookup.key, lookup.rule, entry)
                locked = await self.shared.lock.acquire_or_wait(lookup.key, request.headers)
                entry = locked.entry
                if entry is None:
                    try:
                        return await self._fetch_as_leader(request, lookup, context, flight)
                    finally:
                        await self.shared.lock.release(lookup.key, locked.token)
            self.store.put(entry)
            if flight is not None:
                self.coalescer.release(flight, FlightResult(FlightStatus.DONE, entry=entry))
            return self._serve(request, entry, self.clock(), Outcome.HIT, context)
        finally:
            # Does nothing when the flight was already released with its real result.
            if flight is not None:
                self.coalescer.release(flight, FlightResult(FlightStatus.UNSHAREABLE))

    def _serve_shared_stale(self, request: web.BaseRequest, lookup: Lookup, context: RequestContext,
                            flight: Flight | None) -> web.StreamResponse:
        """Serve a shared entry within its stale-while-revalidate window and refresh it in the background.

        The flight is released first so that the refresh can take it. Released followers
        then read the same stale entry from Redis, and they start no second refresh.
        """
        assert lookup.entry is not None
        self.store.put(lookup.entry)
        if flight is not None:
            self.coalescer.release(flight, FlightResult(FlightStatus.UNSHAREABLE))
        self._refresh_in_background(request, lookup)
        return self._serve(request, lookup.entry, self.clock(), Outcome.STALE, context)

    async def _fetch_as_leader(self, request: web.BaseRequest, lookup: Lookup, context: RequestContext,
                               flight: Flight | None) -> web.StreamResponse:
        result = FlightResult(FlightStatus.UNSHAREABLE)
        headers = forward_headers(request.headers, self.forwarder.forward_context(request), strip_conditionals=True)
        try:
            try:
                # The origin gets the canonical path, so the entry is what the key names.
                fetched = await self.fetcher.fetch(
                    lookup.key.path, headers, rule=lookup.rule, key=lookup.key, entry=lookup.entry,
                    authorization="authorization" in request.headers,
                )
            except OriginError as exc:
                result = FlightResult(FlightStatus.ERROR, error=exc)
                return self._origin_failed(request, lookup.entry, exc, context)
            result = self._flight_result(lookup, fetched)
        finally:
            # Followers are released before the client is written to, whatever happened.
            if flight is not None:
                self.coalescer.release(flight, result)
        try:
            return await self._respond_fetched(request, lookup, fetched, context)
        finally:
            fetched.release()

    def _flight_result(self, lookup: Lookup, fetched: Fetched) -> FlightResult:
        """Return what followers get: the entry, or an error when the leader serves stale for a 5xx."""
        if fetched.shareable:
            return FlightResult(FlightStatus.DONE, entry=fetched.entry)
        upstream = fetched.upstream
        if upstream is not None and upstream.status in STALE_IF_ERROR_STATUSES and lookup.entry is not None \
                and lookup.entry.may_serve_on_error(self.clock()):
            # Followers serve their stale entry too, instead of each asking the failing origin.
            return FlightResult(FlightStatus.ERROR, error=OriginError(
                f"origin responded with status {upstream.status}", reason=Reason.STATUS))
        return FlightResult(FlightStatus.UNSHAREABLE)

    async def _respond_fetched(self, request: web.BaseRequest, lookup: Lookup, fetched: Fetched,
                               context: RequestContext) -> web.StreamResponse:
        now = self.clock()
        forced_reason = Reason.CLIENT_NO_CACHE if lookup.forced else None
        if fetched.kind is FetchKind.REVALIDATED and fetched.entry is not None:
            return self._serve(request, fetched.entry, now, Outcome.REVALIDATED, context,
                               reason=fetched.reason or forced_reason, fwd=lookup.fwd, fwd_status=304,
                               stored=fetched.reason is None, extra_headers=fetched.unstored)
        if fetched.kind is FetchKind.STORED and fetched.entry is not None:
            self._too_large.pop(store_key(lookup.key, ""), None)
            return self._serve(request, fetched.entry, now, Outcome.MISS, context, reason=forced_reason,
                               fwd=lookup.fwd, stored=True, extra_headers=fetched.unstored)
        upstream = fetched.upstream
        assert upstream is not None
        stale = lookup.entry
        if upstream.status in STALE_IF_ERROR_STATUSES and stale is not None and stale.may_serve_on_error(now):
            return self._serve(request, stale, now, Outcome.STALE, context, reason=Reason.STATUS,
                               fwd_status=upstream.status)
        if fetched.reason is Reason.TOO_LARGE and request.method == "GET" and "range" in request.headers:
            # Too large to store: the origin serves the range itself, now and next time.
            self._remember_too_large(store_key(lookup.key, ""))
            fetched.release()
            return await self.forwarder.forward(request, context, Outcome.MISS, Reason.TOO_LARGE)
        context.outcome, context.reason = Outcome.MISS, fetched.reason
        status_value = cache_status(Outcome.MISS, reason=fetched.reason, fwd=lookup.fwd)
        strip = fetched.strip_headers
        if fetched.body is not None:
            return buffered_response(upstream, fetched.body, outcome=Outcome.MISS, status_value=status_value,
                                     strip=strip)
        return await stream_response(request, upstream, outcome=Outcome.MISS, status_value=status_value,
                                     prefix=fetched.prefix, strip=strip)

    def _origin_failed(self, request: web.BaseRequest, stale: Entry | None, error: OriginError,
                       context: RequestContext) -> web.StreamResponse:
        """Serve a stale entry within its stale-if-error window, else 502 or 504."""
        now = self.clock()
        if stale is not None and stale.may_serve_on_error(now):
            return self._serve(request, stale, now, Outcome.STALE, context, reason=error.reason)
        if isinstance(error, TimeoutError) or (stale is not None and stale.must_revalidate):
            return fail(context, 504, error.reason)
        return fail(context, error_status(error), error.reason)

    def _remember_too_large(self, flight_key: str) -> None:
        self._too_large[flight_key] = None
        self._too_large.move_to_end(flight_key)
        if len(self._too_large) > TOO_LARGE_MEMORY:
            self._too_large.popitem(last=False)

    def _refresh_in_background(self, request: web.BaseRequest, lookup: Lookup) -> None:
        """Start one refresh for a key unless a fetch for it is already running."""
        flight_key = store_key(lookup.key, "")
        if self.coalescer.in_flight(flight_key):
            return
        flight, _ = self.coalescer.acquire(flight_key)
        headers = forward_headers(request.headers, self.forwarder.forward_context(request), strip_conditionals=True)
        task = asyncio.create_task(self._refresh(flight, lookup.key.path, headers, lookup,
                                                 "authorization" in request.headers))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(self, flight: Flight, raw_path: str, headers: object, lookup: Lookup,
                       authorization: bool) -> None:
        result = FlightResult(FlightStatus.UNSHAREABLE)
        try:
            fetched = await self.fetcher.fetch(raw_path, headers, rule=lookup.rule, key=lookup.key,  # type: ignore[arg-type]
                                               entry=lookup.entry, authorization=authorization)
            fetched.release()
            result = self._flight_result(lookup, fetched)
            cache_logger.debug("refresh key=%s result=%s reason=%s", lookup.key, fetched.kind.value,
                               fetched.reason or "-")
        except OriginError as exc:
            result = FlightResult(FlightStatus.ERROR, error=exc)
            cache_logger.debug("refresh key=%s result=error reason=%s", lookup.key, exc.reason)
        finally:
            self.coalescer.release(flight, result)
