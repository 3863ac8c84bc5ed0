"""The request handler: lookup, freshness decision, respond; misses go to the origin once.

The hit path is `handle` -> `_lookup` -> `_serve`. Everything else (forwarding,
coalesced fetches, revalidation, background refreshes, storing) is one named call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from .cache_control import parse_cache_control
from .coalesce import Coalescer, Flight, FlightResult, FlightStatus
from .config import Rule, Settings
from .entry import Entry, store_key
from .errors import OriginError
from .fetch import Fetched, FetchKind, Fetcher
from .freshness import STALE_IF_ERROR_STATUSES, client_requires_revalidation
from .invalidation import SAFE_METHODS, invalidated_paths
from .key import CacheKey, build_key, canonical_path, select_site
from .log import access_logger, cache_logger
from .origin import ForwardContext, OriginClient, forward_headers
from .outcomes import Outcome, Reason
from .responses import cache_status, error_response, from_entry, stream_response, buffered_response
from .stats import Stats
from .store import MemoryStore
from .vary import variant_key

# Keys whose full response was too large to store, remembered so that a Range request
# for one is passed through at once instead of first fetching the whole response.
TOO_LARGE_MEMORY = 1024


class RequestContext:
    """Per-request facts gathered for the access log and the metrics."""

    __slots__ = ("started", "outcome", "reason", "rule", "age")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.outcome = Outcome.MISS
        self.reason: str | None = None
        self.rule = "default"
        self.age = 0


@dataclass(frozen=True, slots=True)
class Lookup:
    key: CacheKey
    rule: Rule | None
    entry: Entry | None
    # The client's request directives forbade using `entry` without revalidating it.
    forced: bool = False

    @property
    def fwd(self) -> str:
        """Why the request goes forward, as RFC 9211 names it."""
        if self.forced:
            return "request"
        return "uri-miss" if self.entry is None else "stale"


class Proxy:
    """Answers client requests from the store or the origin."""

    def __init__(self, settings: Settings, *, store: MemoryStore, origin: OriginClient, stats: Stats,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.origin = origin
        self.stats = stats
        self.clock = clock
        self.coalescer = Coalescer(follower_timeout=settings.cache.coalesce_timeout)
        self.fetcher = Fetcher(settings, store=store, origin=origin, stats=stats, clock=clock)
        self._site = settings.site_host
        self._allowed_hosts = tuple(host.lower() for host in settings.site.allowed_hosts)
        self._background: set[asyncio.Task[None]] = set()
        self._log_access = settings.server.access_log
        self._client_revalidates = settings.cache.client_no_cache == "revalidate"
        self._too_large: OrderedDict[str, None] = OrderedDict()

    async def close(self) -> None:
        """Wait for background refreshes to end (they are bounded by origin timeouts)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        context = RequestContext()
        if request.method not in ("GET", "HEAD"):
            response = await self._pass_through(request, context)
        elif "?" in request.raw_path:
            response = await self._forward(request, context, Outcome.BYPASS, Reason.QUERY)
        elif "if-match" in request.headers or "if-unmodified-since" in request.headers:
            # RFC 9111 section 4.3.2: these preconditions are not for a cache to evaluate.
            response = await self._forward(request, context, Outcome.BYPASS, Reason.PRECONDITION)
        else:
            response = await self._lookup(request, context)
        self._account(request, response, context)
        return response

    async def _lookup(self, request: web.BaseRequest, context: RequestContext) -> web.StreamResponse:
        key = build_key(request.raw_path, request.host, request.cookies, settings=self.settings.key,
                        default_site=self._site, allowed_hosts=self._allowed_hosts)
        rule = self.settings.rule_for(key.path)
        if rule is not None:
            context.rule = rule.name
        self.stats.lookups += 1
        now = self.clock()
        entry = self.store.lookup(key, request.headers)
        forced = entry is not None and self._client_revalidates and self._client_forbids(request, entry, now)
        if entry is not None and not forced:
            if entry.is_fresh(now):
                return self._serve(request, entry, now, Outcome.HIT, context)
            if entry.may_serve_while_revalidating(now) and not entry.no_cache:
                self._refresh_in_background(request, Lookup(key, rule, entry))
                return self._serve(request, entry, now, Outcome.STALE, context)
        if "cache-control" in request.headers and "only-if-cached" in parse_cache_control(
                request.headers.getall("cache-control")):
            return self._fail(context, 504, Reason.ONLY_IF_CACHED, "not in cache and only-if-cached was requested")
        if request.method == "HEAD" and entry is None:
            # A HEAD miss is forwarded as HEAD and never stored: it has no body to store.
            return await self._forward(request, context, Outcome.MISS, Reason.METHOD)
        if entry is None and "range" in request.headers and store_key(key, "") in self._too_large:
            return await self._forward(request, context, Outcome.MISS, Reason.TOO_LARGE)
        return await self._fetch(request, Lookup(key, rule, entry, forced), context)

    def _serve(self, request: web.BaseRequest, entry: Entry, now: float, outcome: Outcome,
               context: RequestContext, *, reason: str | None = None, fwd: str | None = None,
               fwd_status: int | None = None, stored: bool = False, collapsed: bool = False,
               extra_headers: list[tuple[str, str]] | None = None) -> web.Response:
        age = int(entry.age(now))
        context.outcome, context.age = outcome, age
        if reason:
            context.reason = reason
        if outcome is not Outcome.MISS:
            self.stats.served_age.observe(age)
        if outcome is Outcome.STALE:
            self.stats.stale_served += 1
        ttl = None if outcome is Outcome.MISS else entry.fresh_until - now
        status_value = cache_status(outcome, ttl=ttl, reason=reason, fwd=fwd, fwd_status=fwd_status,
                                    stored=stored, collapsed=collapsed)
        return from_entry(request, entry, age=age, outcome=outcome, status_value=status_value,
                          extra_headers=extra_headers)

    def _client_forbids(self, request: web.BaseRequest, entry: Entry, now: float) -> bool:
        """Return whether the client's no-cache, max-age or Pragma forbids using `entry` unvalidated.

        Consulted only when cache.client_no_cache is "revalidate".
        """
        headers = request.headers
        return client_requires_revalidation(headers.getall("cache-control", []), headers.get("pragma"),
                                            age=entry.age(now))

    def _forward_context(self, request: web.BaseRequest) -> ForwardContext:
        host = self._site
        if self.settings.origin.host_header == "client" and request.host and request.host.lower() in self._allowed_hosts:
            host = request.host
        return ForwardContext(client_ip=request.remote or "", scheme=request.scheme, host=host)

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
        return await self._fetch_as_leader(request, lookup, context, flight)

    async def _fetch_as_leader(self, request: web.BaseRequest, lookup: Lookup, context: RequestContext,
                               flight: Flight | None) -> web.StreamResponse:
        result = FlightResult(FlightStatus.UNSHAREABLE)
        headers = forward_headers(request.headers, self._forward_context(request), strip_conditionals=True)
        try:
            try:
                fetched = await self.fetcher.fetch(
                    request.raw_path, headers, rule=lookup.rule, key=lookup.key, entry=lookup.entry,
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
                f"origin answered {upstream.status}", reason=Reason.STATUS))
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
            return await self._forward(request, context, Outcome.MISS, Reason.TOO_LARGE)
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
            return self._fail(context, 504, error.reason, str(error))
        return self._fail(context, 502, error.reason, str(error))

    def _remember_too_large(self, flight_key: str) -> None:
        self._too_large[flight_key] = None
        self._too_large.move_to_end(flight_key)
        if len(self._too_large) > TOO_LARGE_MEMORY:
            self._too_large.popitem(last=False)

    def _fail(self, context: RequestContext, status: int, reason: str, message: str) -> web.Response:
        context.outcome, context.reason = Outcome.ERROR, reason
        status_value = cache_status(Outcome.ERROR, reason=reason)
        return error_response(status, message, outcome=Outcome.ERROR, status_value=status_value)

    def _refresh_in_background(self, request: web.BaseRequest, lookup: Lookup) -> None:
        """Start one refresh for a key unless a fetch for it is already running."""
        flight_key = store_key(lookup.key, "")
        if self.coalescer.in_flight(flight_key):
            return
        flight, _ = self.coalescer.acquire(flight_key)
        headers = forward_headers(request.headers, self._forward_context(request), strip_conditionals=True)
        task = asyncio.create_task(self._refresh(flight, request.raw_path, headers, lookup,
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

    async def _forward(self, request: web.BaseRequest, context: RequestContext, outcome: Outcome,
                       reason: Reason) -> web.StreamResponse:
        """Send a request to the origin as it is and stream the answer; the cache is not touched."""
        context.outcome, context.reason = outcome, reason
        headers = forward_headers(request.headers, self._forward_context(request), strip_conditionals=False)
        data = request.content if request.body_exists else None
        try:
            upstream = await self.fetcher.send(request.method, request.raw_path, headers, data=data)
        except OriginError as exc:
            status = 504 if isinstance(exc, TimeoutError) else 502
            return self._fail(context, status, exc.reason, str(exc))
        try:
            status_value = cache_status(outcome, reason=reason)
            return await stream_response(request, upstream, outcome=outcome, status_value=status_value)
        finally:
            upstream.release()

    async def _pass_through(self, request: web.BaseRequest, context: RequestContext) -> web.StreamResponse:
        """Forward another method; a 2xx or 3xx answer to an unsafe one invalidates (RFC 9111 section 4.4).

        The target path and same-site Location and Content-Location paths are removed
        on every site, with all their variants.
        """
        response = await self._forward(request, context, Outcome.BYPASS, Reason.METHOD)
        if request.method not in SAFE_METHODS and 200 <= response.status < 400:
            references = [value for name in ("Location", "Content-Location")
                          for value in response.headers.getall(name, ())]
            host = (request.host or "").lower()
            hosts = {host, select_site(host, self._site.lower(), self._allowed_hosts)}
            paths = {self._canonical(path) for path in invalidated_paths(request.raw_path, references, hosts=hosts)}
            self.store.purge_paths(paths, soft=False, now=self.clock())
        return response

    def _canonical(self, raw_path: str) -> str:
        return canonical_path(raw_path, fold_trailing_slash=self.settings.key.fold_trailing_slash,
                              fold_case=self.settings.key.fold_case)

    def _account(self, request: web.BaseRequest, response: web.StreamResponse, context: RequestContext) -> None:
        size = response.content_length or 0
        self.stats.record(context.outcome, context.rule, context.reason, size)
        if self._log_access and access_logger.isEnabledFor(logging.INFO):
            duration = time.perf_counter() - context.started
            access_logger.info(
                '%s - - "%s %s HTTP/%d.%d" %d %d outcome=%s reason=%s age=%d duration=%.6f',
                request.remote, request.method, request.raw_path, request.version.major, request.version.minor,
                response.status, size, context.outcome.value, context.reason or "-", context.age, duration,
                extra={"outcome": context.outcome.value, "reason": context.reason, "age": context.age,
                       "path": request.path, "status": response.status, "duration": duration},
            )
