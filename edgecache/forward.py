"""Requests that skip the cache: forwarded unchanged, or shared among identical forced misses.

A request that cannot be served from the store and must not be stored (another
method, a query string, a precondition for the origin, a HEAD miss) goes through
`Forwarder.forward`. A GET with a query string goes through `Forwarder.bypass`, which
adds the client's rate limit and shares one origin fetch among identical requests.
"""

from __future__ import annotations

import time

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from .bypass import BypassFlights, SharedResponse, flight_key, is_shareable, stream_shareable
from .config import Settings
from .errors import OriginError
from .fetch import Fetcher
from .origin import ForwardContext, forward_headers
from .outcomes import Outcome, Reason
from .ratelimit import RateLimiter, retry_after
from .request_context import RequestContext
from .responses import cache_status, error_status, fail, reject, stream_response
from .stats import Stats


class Forwarder:
    """Sends requests that skip the cache to the origin and streams the responses back."""

    def __init__(self, settings: Settings, *, fetcher: Fetcher, stats: Stats) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.stats = stats
        self._site = settings.site_host
        self._allowed_hosts = tuple(host.lower() for host in settings.site.allowed_hosts)
        self._dropped = frozenset(name.lower() for name in settings.origin.drop_request_headers)
        self.bypass_flights = BypassFlights(follower_timeout=settings.cache.coalesce_timeout)
        self.bypass_limiter = RateLimiter(rate=settings.server.bypass_rate, burst=settings.server.bypass_burst,
                                          clock=time.monotonic)

    def __repr__(self) -> str:
        return f"<Forwarder bypass_flights={len(self.bypass_flights)}>"

    def forward_context(self, request: web.BaseRequest) -> ForwardContext:
        host = self._site
        if self.settings.origin.host_header == "client" and request.host and request.host.lower() in self._allowed_hosts:
            host = request.host
        return ForwardContext(client_ip=request.remote or "", scheme=request.scheme, host=host,
                              dropped=self._dropped)

    async def forward(self, request: web.BaseRequest, context: RequestContext, outcome: Outcome,
                       reason: Reason) -> web.StreamResponse:
        """Send a request to the origin unchanged and stream the response back, bypassing the cache."""
        context.outcome, context.reason = outcome, reason
        headers = forward_headers(request.headers, self.forward_context(request), strip_conditionals=False)
        data = request.content if request.body_exists else None
        try:
            upstream = await self.fetcher.send(request.method, request.raw_path, headers, data=data)
        except OriginError as exc:
            return fail(context, error_status(exc), exc.reason, forwarded=outcome)
        try:
            status_value = cache_status(outcome, reason=reason)
            return await stream_response(request, upstream, outcome=outcome, status_value=status_value)
        finally:
            upstream.release()

    async def bypass(self, request: web.BaseRequest, context: RequestContext) -> web.StreamResponse:
        """Forward a forced miss within the client's rate limit, sharing a public response in flight."""
        wait = self.bypass_limiter.acquire(request.remote or "")
        if wait > 0:
            limited = reject(context, 429, Reason.RATE_LIMITED, "too many requests with a query string")
            limited.headers["Retry-After"] = retry_after(wait)
            return limited
        if request.method != "GET" or request.body_exists:
            return await self.forward(request, context, Outcome.BYPASS, Reason.QUERY)
        headers = forward_headers(request.headers, self.forward_context(request), strip_conditionals=False)
        key = flight_key(request.method, request.raw_path, headers)
        future, leader = self.bypass_flights.acquire(key)
        if not leader:
            shared = await self.bypass_flights.wait(future)
            if shared is not None:
                self.stats.bypass_coalesced += 1
                context.outcome, context.reason = Outcome.BYPASS, Reason.QUERY
                if shared.error_reason is not None:
                    context.outcome, context.reason = Outcome.ERROR, shared.error_reason
                return web.Response(status=shared.status, reason=shared.reason, headers=shared.headers,
                                    body=shared.body)
            return await self.forward(request, context, Outcome.BYPASS, Reason.QUERY)
        shared = None
        try:
            response, shared = await self._forward_shareable(request, context, headers)
            return response
        finally:
            self.bypass_flights.release(key, future, shared)

    async def _forward_shareable(self, request: web.BaseRequest, context: RequestContext,
                                 headers: object) -> tuple[web.StreamResponse, SharedResponse | None]:
        """Forward a GET forced miss as a leader; return the response and what followers may share."""
        context.outcome, context.reason = Outcome.BYPASS, Reason.QUERY
        status_value = cache_status(Outcome.BYPASS, reason=Reason.QUERY)
        try:
            upstream = await self.fetcher.send("GET", request.raw_path, headers)  # type: ignore[arg-type]
        except OriginError as exc:
            return self._shared_failure(context, exc)
        try:
            if not is_shareable(upstream.headers):
                return await stream_response(request, upstream, outcome=Outcome.BYPASS,
                                             status_value=status_value), None
            return await stream_shareable(request, upstream, limit=self.settings.cache.max_object_bytes,
                                          status_value=status_value)
        finally:
            upstream.release()

    def _shared_failure(self, context: RequestContext,
                        error: OriginError) -> tuple[web.StreamResponse, SharedResponse | None]:
        """Return a forced miss's error response and the same response for its followers."""
        response = fail(context, error_status(error), error.reason, forwarded=Outcome.BYPASS)
        assert isinstance(response.body, bytes)
        shared = SharedResponse(response.status, response.reason, CIMultiDictProxy(CIMultiDict(response.headers)),
                                response.body, error_reason=error.reason)
        return response, shared
