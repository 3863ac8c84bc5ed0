"""The request handler: lookup, freshness decision, respond; misses go to the origin once.

The hit path is `handle` -> `_dispatch` -> `_lookup` -> `_serve`. Everything else
(forwarding, coalesced fetches, revalidation, background refreshes, storing) is one
named call. Requests that skip the cache are forwarded by `forward.Forwarder`, and
the miss path (`_fetch`, `_refresh_in_background`) is in `fill.FillMixin`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING

from aiohttp import web

from .access_log import log_access
from .cache_control import parse_cache_control
from .coalesce import Coalescer
from .config import Rule, Settings
from .entry import Entry, store_key
from .fetch import Fetcher
from .fill import FillMixin
from .forward import Forwarder
from .freshness import client_requires_revalidation
from .key import MEMO_MAX_PATH_CHARS, MEMO_PATHS, CacheKey, build_key, canonical_path, select_site
from .log import access_logger, cache_logger
from .origin import OriginClient
from .outcomes import Outcome, Reason
from .request_context import Lookup, RequestContext
from .responses import cache_status, from_entry, reject
from .shared.invalidation import PurgeRequest
from .stats import Stats
from .store import MemoryStore
from .target import REJECTED_METHODS, framing_problem, target_problem
from .unsafe import SAFE_METHODS, invalidated_paths

if TYPE_CHECKING:
    from .shared import SharedCache

NO_COOKIES: MappingProxyType[str, str] = MappingProxyType({})


class Proxy(FillMixin):
    """Serves client requests from the store or the origin."""

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
        self._json_log = settings.server.access_log_format == "json"
        # Called with each entry served from the cache and the time; measures inventory staleness.
        self.observe_served: Callable[[Entry, float], None] = lambda entry, now: None
        # fnmatch over every rule is a visible share of a hit, and rules never change.
        self._rule_memo = lru_cache(maxsize=MEMO_PATHS)(settings.rule_for)
        self.forwarder = Forwarder(settings, fetcher=self.fetcher, stats=stats)
        # The Redis tier under the memory store, when cache.shared_url is set.
        self.shared: SharedCache | None = None
        self._client_revalidates = settings.cache.client_no_cache == "revalidate"
        self._too_large: OrderedDict[str, None] = OrderedDict()

    async def close(self) -> None:
        """Wait for background refreshes to end (they are bounded by origin timeouts)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        context = RequestContext()
        try:
            response = await self._dispatch(request, context)
        except Exception:
            # A bug must not vanish into aiohttp's own 500, so it is logged, counted and returned as a 500.
            # NOTE: a bug raised after a streamed response was prepared also lands here. That
            # client gets a broken response, because its status line was already sent.
            cache_logger.exception("unexpected error serving %s %s", request.method, request.raw_path)
            response = reject(context, 500, Reason.INTERNAL_ERROR, "internal error")
        self._account(request, response, context)
        return response

    async def _dispatch(self, request: web.BaseRequest, context: RequestContext) -> web.StreamResponse:
        request, rejection = self._admit(request, context)
        if rejection is not None:
            response: web.StreamResponse = rejection
        elif request.method not in ("GET", "HEAD"):
            context.rule = self._rule_name(request.raw_path)
            response = await self._pass_through(request, context)
        elif "?" in request.raw_path:
            context.rule = self._rule_name(request.raw_path)
            response = await self.forwarder.bypass(request, context)
        elif "if-match" in request.headers or "if-unmodified-since" in request.headers:
            # RFC 9111 section 4.3.2: these preconditions are not for a cache to evaluate.
            context.rule = self._rule_name(request.raw_path)
            response = await self.forwarder.forward(request, context, Outcome.BYPASS, Reason.PRECONDITION)
        else:
            response = await self._lookup(request, context)
        return response

    def _admit(self, request: web.BaseRequest, context: RequestContext) -> tuple[web.BaseRequest, web.Response | None]:
        """Reject methods and targets that must not reach the origin; reduce absolute-form to a path.

        An absolute-form target (`GET http://other.example/x`) names a host, but edgecache
        has one origin, so only the target's path and query are used.
        """
        if request.method in REJECTED_METHODS:
            response = reject(context, 405, Reason.METHOD, f"method {request.method} is not allowed")
            response.headers["Allow"] = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"
            return request, response
        if request.raw_path.startswith(("http://", "https://")):
            request = request.clone(rel_url=request.rel_url)
        problem = target_problem(request.raw_path) or framing_problem(request.version, request.headers)
        if problem is not None:
            return request, reject(context, 400, Reason.BAD_REQUEST, problem)
        return request, None

    async def _lookup(self, request: web.BaseRequest, context: RequestContext) -> web.StreamResponse:
        # request.cookies parses the whole Cookie header: skip it unless a key cookie is configured.
        cookies = request.cookies if self.settings.key.cookies else NO_COOKIES
        key = build_key(request.raw_path, request.host, cookies, settings=self.settings.key,
                        default_site=self._site, allowed_hosts=self._allowed_hosts)
        rule = self._rule_for(key.path)
        if rule is not None:
            context.rule = rule.name
        context.key = str(key)
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
            hit = await self._shared_hit(request, key, context)
            if hit is not None:
                return hit
            return reject(context, 504, Reason.ONLY_IF_CACHED, "not in cache and only-if-cached was requested")
        if request.method == "HEAD" and entry is None:
            # A HEAD miss is forwarded as HEAD and never stored: it has no body to store.
            hit = await self._shared_hit(request, key, context)
            if hit is not None:
                return hit
            return await self.forwarder.forward(request, context, Outcome.MISS, Reason.METHOD)
        if entry is None and "range" in request.headers and store_key(key, "") in self._too_large:
            return await self.forwarder.forward(request, context, Outcome.MISS, Reason.TOO_LARGE)
        return await self._fetch(request, Lookup(key, rule, entry, forced), context)

    def _serve(self, request: web.BaseRequest, entry: Entry, now: float, outcome: Outcome,
               context: RequestContext, *, reason: str | None = None, fwd: str | None = None,
               fwd_status: int | None = None, stored: bool = False, collapsed: bool = False,
               extra_headers: list[tuple[str, str]] | None = None) -> web.StreamResponse:
        age = int(entry.age(now))
        context.outcome, context.age = outcome, age
        if reason:
            context.reason = reason
        if outcome is not Outcome.MISS:
            self.stats.served_age.observe(age)
            self.observe_served(entry, now)
        if outcome is Outcome.STALE:
            self.stats.stale_served += 1
        ttl = None if outcome is Outcome.MISS else entry.fresh_until - now
        status_value = cache_status(outcome, ttl=ttl, reason=reason, fwd=fwd, fwd_status=fwd_status,
                                    stored=stored, collapsed=collapsed)
        return from_entry(request, entry, age=age, outcome=outcome, status_value=status_value,
                          extra_headers=extra_headers)

    async def _shared_hit(self, request: web.BaseRequest, key: CacheKey,
                          context: RequestContext) -> web.StreamResponse | None:
        """Serve a fresh entry from Redis, or return None when there is none or no shared tier.

        Used where a memory miss must not reach the origin through the miss path: a HEAD
        and an only-if-cached request (RFC 9111 section 5.2.1.7).
        """
        if self.shared is None:
            return None
        entry = await self.shared.tier.lookup(key, request.headers)
        now = self.clock()
        if entry is None or not entry.is_fresh(now):
            return None
        self.store.put(entry)
        return self._serve(request, entry, now, Outcome.HIT, context)

    def _rule_for(self, path: str) -> Rule | None:
        if len(path) <= MEMO_MAX_PATH_CHARS:
            return self._rule_memo(path)
        return self.settings.rule_for(path)

    def _client_forbids(self, request: web.BaseRequest, entry: Entry, now: float) -> bool:
        """Return whether the client's no-cache, max-age or Pragma forbids using `entry` unvalidated.

        Consulted only when cache.client_no_cache is "revalidate".
        """
        headers = request.headers
        return client_requires_revalidation(headers.getall("cache-control", []), headers.get("pragma"),
                                            age=entry.age(now))

    async def _pass_through(self, request: web.BaseRequest, context: RequestContext) -> web.StreamResponse:
        """Forward another method. A 2xx or 3xx response to an unsafe one invalidates (RFC 9111 section 4.4).

        The target path and same-site Location and Content-Location paths are removed
        on every site, with all their variants, from the memory store and the shared tier.
        """
        response = await self.forwarder.forward(request, context, Outcome.BYPASS, Reason.METHOD)
        if request.method not in SAFE_METHODS and 200 <= response.status < 400:
            references = [value for name in ("Location", "Content-Location")
                          for value in response.headers.getall(name, ())]
            host = (request.host or "").lower()
            hosts = {host, select_site(host, self._site.lower(), self._allowed_hosts)}
            paths = {self._canonical(path) for path in invalidated_paths(request.raw_path, references, hosts=hosts)}
            now = self.clock()
            self.store.purge_paths(paths, soft=False, now=now)
            if self.shared is not None:
                await self.shared.tier.purge(PurgeRequest(paths=tuple(sorted(paths)), at=now))
        return response

    def _rule_name(self, raw_path: str) -> str:
        """Return the name of the rule for a request that skips the lookup, for its metrics label."""
        rule = self._rule_for(self._canonical(raw_path))
        return rule.name if rule is not None else "default"

    def _canonical(self, raw_path: str) -> str:
        return canonical_path(raw_path, fold_trailing_slash=self.settings.key.fold_trailing_slash,
                              fold_case=self.settings.key.fold_case)

    def _account(self, request: web.BaseRequest, response: web.StreamResponse, context: RequestContext) -> None:
        # A streamed response has been sent already and has its length; others have a Content-Length.
        size = response.content_length if response.content_length is not None else response.body_length
        self.stats.record(context.outcome, context.rule, context.reason, size)
        self.stats.record_recent(context.outcome, context.key, request.raw_path)
        if self._log_access and access_logger.isEnabledFor(logging.INFO):
            log_access(request, response.status, size, outcome=context.outcome.value, reason=context.reason,
                       age=context.age, duration=time.perf_counter() - context.started,
                       json_format=self._json_log)
