"""Fetching from the origin on behalf of the cache: revalidate, read, decide, store.

`Fetcher.fetch` is the one place where an origin response becomes an entry. It
returns a `Fetched` whose `release()` the caller must call, because a response that
is not stored is still open for streaming to the client.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from .conditional import freshen_headers, validators_for
from .config import Rule, Settings
from .entry import Entry
from .errors import OriginError
from .extract import extract_claims
from .freshness import compute_freshness
from .key import CacheKey
from .log import cache_logger, origin_logger
from .logthrottle import ThrottledLogger
from .origin import OriginClient, read_body
from .outcomes import Reason
from .stats import Stats
from .storability import headers_to_store, refuse_for_freshness, refuse_to_store
from .store import MemoryStore
from .tags import parse_tag_header
from .vary import variant_key, vary_names

if TYPE_CHECKING:
    from .shared.tier import SharedTier


class FetchKind(Enum):
    STORED = "stored"
    REVALIDATED = "revalidated"
    NOT_STORED = "not-stored"


@dataclass(slots=True)
class Fetched:
    """The result of one origin fetch. Call `release()` when done with it."""

    kind: FetchKind
    entry: Entry | None = None
    upstream: aiohttp.ClientResponse | None = None
    # The whole body when it was read, else None and the rest is streamed after `prefix`.
    body: bytes | None = None
    prefix: bytes = b""
    reason: str | None = None
    strip_headers: tuple[str, ...] = ()

    def release(self) -> None:
        if self.upstream is not None:
            self.upstream.release()


class Fetcher:
    def __init__(self, settings: Settings, *, store: MemoryStore, origin: OriginClient, stats: Stats,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.origin = origin
        self.stats = stats
        self.clock = clock
        self.tag_header = settings.tags.header
        self._strip = () if settings.tags.keep_header else (settings.tags.header,)
        # Called with an entry's tags and its request time; True refuses to store it as fresh.
        self.is_fenced: Callable[[frozenset[str], float], bool] = lambda tags, request_time: False
        # One warning per failure reason per minute, however many requests fail.
        self._origin_warnings = ThrottledLogger(origin_logger)
        # Called with an entry's tags; True when an inventory event says one of its SKUs is low_stock.
        self.has_low_stock: Callable[[frozenset[str]], bool] = lambda tags: False
        # The Redis tier every stored entry is also written to, when cache.shared_url is set.
        self.shared: SharedTier | None = None

    async def send(self, method: str, raw_path: str, headers: CIMultiDict[str], *,
                   data: object = None) -> aiohttp.ClientResponse:
        """Send one request to the origin, counting it and its latency."""
        started = time.perf_counter()
        try:
            upstream = await self.origin.request(method, raw_path, headers, data=data)
        except OriginError as exc:
            self.stats.record_origin(time.perf_counter() - started, exc.reason)
            self._origin_warnings.log(logging.WARNING, exc.reason, "%s %s failed: %s", method, raw_path, exc)
            raise
        self.stats.record_origin(time.perf_counter() - started)
        return upstream

    async def fetch(self, raw_path: str, headers: CIMultiDict[str], *, rule: Rule | None, key: CacheKey,
                    entry: Entry | None, authorization: bool) -> Fetched:
        """GET a resource for the cache, revalidating `entry` when it has validators."""
        self.stats.record_fetch(str(key))
        if entry is not None and entry.has_validators:
            headers = CIMultiDict(headers)
            headers.update(validators_for(entry.headers))
        request_time = self.clock()
        upstream = await self.send("GET", raw_path, headers)
        try:
            if upstream.status == 304 and entry is not None:
                fetched = self._freshen(entry, upstream, rule, request_time)
            else:
                fetched = await self._receive(upstream, headers, rule=rule, key=key, request_time=request_time,
                                              authorization=authorization)
        except BaseException:
            upstream.release()
            raise
        if fetched.entry is not None and self.shared is not None:
            # Written before the caller releases its fetch lock, so waiting nodes find it.
            await self.shared.put(fetched.entry)
        return fetched

    def _freshen(self, entry: Entry, upstream: aiohttp.ClientResponse, rule: Rule | None,
                 request_time: float) -> Fetched:
        """Update a stored entry from a 304 (RFC 9111 section 4.3.4); the body is kept."""
        headers = CIMultiDictProxy(freshen_headers(entry.headers, headers_to_store(upstream.headers, tag_header=None)))
        response_time = self.clock()
        freshness = compute_freshness(entry.status, headers, request_time=request_time, response_time=response_time,
                                      rule=rule, settings=self.settings.cache,
                                      low_stock=_claims_low_stock(entry.claims) or self.has_low_stock(entry.tags))
        fresh_until = freshness.fresh_until
        if self.is_fenced(entry.tags, request_time):
            # A soft purge landed while this revalidation ran: the 304 must not undo it.
            fresh_until = min(fresh_until, response_time)
        fresh = dataclasses.replace(
            entry, headers=headers, request_time=request_time, response_time=response_time,
            initial_age=freshness.initial_age, lifetime=freshness.lifetime, fresh_until=fresh_until,
            stale_while_revalidate_until=freshness.stale_while_revalidate_until,
            stale_if_error_until=freshness.stale_if_error_until, must_revalidate=freshness.must_revalidate,
            no_cache=freshness.no_cache, forbid_stale=fresh_until < freshness.fresh_until, size=0,
        )
        self.store.replace(fresh)
        upstream.release()
        return Fetched(FetchKind.REVALIDATED, entry=fresh)

    async def _receive(self, upstream: aiohttp.ClientResponse, request_headers: CIMultiDict[str], *,
                       rule: Rule | None, key: CacheKey, request_time: float, authorization: bool) -> Fetched:
        """Read a response and store it when allowed; otherwise hand it back for the client."""
        reason = refuse_to_store(method="GET", status=upstream.status, headers=upstream.headers, rule=rule,
                                 request_has_authorization=authorization)
        limit = self.settings.cache.max_object_bytes
        if reason is None and upstream.content_length is not None and upstream.content_length > limit:
            reason = Reason.TOO_LARGE
        if reason is None:
            # Decide from the headers whether the response has a lifetime, so a response that
            # is not stored streams to the client. A low-stock claim in the body only
            # shortens the lifetime, so it cannot turn this refusal around.
            headers_only = compute_freshness(upstream.status, upstream.headers, request_time=request_time,
                                             response_time=self.clock(), rule=rule, settings=self.settings.cache)
            reason = refuse_for_freshness(headers_only, upstream.headers)
        if reason is not None:
            return Fetched(FetchKind.NOT_STORED, upstream=upstream, reason=reason, strip_headers=self._strip)
        try:
            body, complete = await read_body(upstream, limit)
        except OriginError as exc:
            self.stats.record_origin_body_error(exc.reason)
            raise
        if not complete:
            return Fetched(FetchKind.NOT_STORED, upstream=upstream, prefix=body, reason=Reason.TOO_LARGE,
                           strip_headers=self._strip)
        entry, reason = self._build_entry(upstream, body, request_headers, rule=rule, key=key,
                                          request_time=request_time)
        if entry is None:
            return Fetched(FetchKind.NOT_STORED, upstream=upstream, body=body, reason=reason,
                           strip_headers=self._strip)
        self.store.put(entry)
        upstream.release()
        return Fetched(FetchKind.STORED, entry=entry)

    def _build_entry(self, upstream: aiohttp.ClientResponse, body: bytes, request_headers: CIMultiDict[str], *,
                     rule: Rule | None, key: CacheKey, request_time: float) -> tuple[Entry | None, str | None]:
        response_time = self.clock()
        tags = parse_tag_header(self.tag_header, upstream.headers.get(self.tag_header))
        claims: tuple[tuple[str, str], ...] = ()
        if self.settings.tags.extract_from_html and "html" in upstream.headers.get("content-type", ""):
            claims = tuple(extract_claims(body))
            if not tags:
                tags = frozenset(self.settings.tags.sku_template.format(sku=sku) for sku, _ in claims)
        freshness = compute_freshness(upstream.status, upstream.headers, request_time=request_time,
                                      response_time=response_time, rule=rule, settings=self.settings.cache,
                                      low_stock=_claims_low_stock(claims) or self.has_low_stock(tags))
        if cache_logger.isEnabledFor(logging.DEBUG):
            _log_freshness(key, upstream, rule, response_time, freshness)
        reason = refuse_for_freshness(freshness, upstream.headers)
        if reason is not None:
            return None, reason
        fresh_until = freshness.fresh_until
        if self.is_fenced(tags, request_time):
            # An inventory event arrived while this page was being rendered: keep it only as stale.
            fresh_until = min(fresh_until, response_time)
        names = vary_names(upstream.headers.getall("vary", []))
        stored_headers = headers_to_store(upstream.headers, tag_header=None if self.settings.tags.keep_header
                                          else self.tag_header)
        entry = Entry(
            key=key, variant=variant_key(names, request_headers), vary=names, status=upstream.status,
            headers=CIMultiDictProxy(stored_headers), body=body, request_time=request_time,
            response_time=response_time, initial_age=freshness.initial_age, lifetime=freshness.lifetime,
            fresh_until=fresh_until, stale_while_revalidate_until=freshness.stale_while_revalidate_until,
            stale_if_error_until=freshness.stale_if_error_until, must_revalidate=freshness.must_revalidate,
            no_cache=freshness.no_cache, rule=rule.name if rule else "default", tags=tags, claims=claims,
            forbid_stale=fresh_until < freshness.fresh_until,
        )
        return entry, None


def _claims_low_stock(claims: tuple[tuple[str, str], ...]) -> bool:
    return any(state == "low_stock" for _, state in claims)


def _log_freshness(key: CacheKey, upstream: aiohttp.ClientResponse, rule: Rule | None, now: float,
                   freshness: object) -> None:
    headers = upstream.headers
    cache_logger.debug(
        "freshness key=%s status=%d date=%r expires=%r cache_control=%r age=%r last_modified=%r rule=%s now=%.3f "
        "result=%r",
        key, upstream.status, headers.get("date"), headers.get("expires"), headers.get("cache-control"),
        headers.get("age"), headers.get("last-modified"), rule.name if rule else "default", now, freshness,
    )
