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

from .cache_control import parse_cache_control
from .conditional import freshen_headers, not_modified_selects, validators_for
from .config import Rule, Settings
from .entry import Entry
from .errors import OriginError
from .extract import extract_claims
from .freshness import STALE_IF_ERROR_STATUSES, Freshness, compute_freshness
from .httpdate import format_http_date, parse_http_date
from .key import CacheKey
from .log import cache_logger, origin_logger
from .logthrottle import ThrottledLogger
from .origin import OriginClient, read_body
from .outcomes import Reason
from .stats import Stats
from .storability import headers_to_store, refuse_for_freshness, refuse_to_store, unstored_fields
from .store import MemoryStore
from .tags import parse_tag_header
from .vary import BUCKET_ACCEPT_ENCODING, accept_encoding_bucket, request_value, variant_key, vary_names

if TYPE_CHECKING:
    from .shared.tier import SharedTier


class FetchKind(Enum):
    STORED = "stored"
    REVALIDATED = "revalidated"
    NOT_STORED = "not-stored"


@dataclass(slots=True)
class Fetched:
    """The result of one origin fetch. Call `release()` when done with it.

    STORED and REVALIDATED carry the entry to serve. A REVALIDATED entry with a
    `reason` was freshened by a 304 that made it unfit to keep (a Set-Cookie, say):
    it serves this client only and is no longer in the store.
    """

    kind: FetchKind
    entry: Entry | None = None
    upstream: aiohttp.ClientResponse | None = None
    # The whole body when it was read, else None and the rest is streamed after `prefix`.
    body: bytes | None = None
    prefix: bytes = b""
    reason: str | None = None
    strip_headers: tuple[str, ...] = ()
    # Fields named by a qualified no-cache or private: not stored, but this client's.
    unstored: list[tuple[str, str]] | None = None
    # The store key of the entry this fetch replaced but could not keep, so it was removed.
    discarded: str | None = None
    # The store key of the entry a STORED response replaced.
    replaced: str | None = None

    @property
    def shareable(self) -> bool:
        """Whether coalesced followers may be served this result's entry."""
        return self.entry is not None and self.reason is None

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
        # The tag header as headers_to_store wants it: None keeps it in stored headers.
        self._stored_tag_header = None if settings.tags.keep_header else settings.tags.header
        # Called with an entry's tags and its request time; True refuses to store it as fresh.
        self.is_fenced: Callable[[frozenset[str], float], bool] = lambda tags, request_time: False
        # One warning per failure reason per minute, however many requests fail.
        self._origin_warnings = ThrottledLogger(origin_logger)
        # Called with an entry's tags; True when the latest inventory event for one of its SKUs is low_stock.
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
        """GET a resource for the cache, revalidating `entry` when it has validators.

        `entry` is the stored variant this fetch replaces, if any. The client's
        Accept-Encoding is replaced by its bucket's (see vary.py), so that what is
        stored suits every client of the bucket.
        """
        self.stats.record_fetch(str(key))
        headers = CIMultiDict(headers)
        headers["Accept-Encoding"] = BUCKET_ACCEPT_ENCODING[
            accept_encoding_bucket(request_value(headers, "accept-encoding"))]
        validated = entry if entry is not None and entry.has_validators else None
        request_time = self.clock()
        upstream = await self.send("GET", raw_path, _with_validators(headers, validated))
        if upstream.status == 304 and validated is not None \
                and not not_modified_selects(validated.headers, upstream.headers):
            # The 304 names another representation than the stored one: ask for the full response.
            upstream.release()
            cache_logger.debug("revalidate key=%s result=304-for-other-validator etag=%r", key,
                               upstream.headers.get("etag"))
            validated = None
            request_time = self.clock()
            upstream = await self.send("GET", raw_path, headers)
        try:
            if upstream.status == 304:
                if validated is None:
                    # A client must never get a 304 it did not ask for, and edgecache sent no condition.
                    raise OriginError("origin sent 304 to a request without conditions",
                                      reason=Reason.ORIGIN_INVALID)
                fetched = self._freshen(validated, upstream, rule, request_time, authorization)
            else:
                fetched = await self._receive(upstream, headers, rule=rule, key=key, entry=entry,
                                              request_time=request_time, authorization=authorization)
        except BaseException:
            upstream.release()
            raise
        if self.shared is not None:
            # Written before the caller releases its fetch lock, so waiting nodes find it.
            await self._mirror_to_shared(self.shared, fetched)
        return fetched

    async def _mirror_to_shared(self, shared: SharedTier, fetched: Fetched) -> None:
        """Store a fetched entry in Redis too, or delete the copy there that the fetch removed here.

        A replaced or removed entry is then published, so other nodes drop their memory
        copies of it. The new entry is in Redis first, so their next lookup finds it.
        """
        if fetched.shareable:
            assert fetched.entry is not None
            stored = await shared.put(fetched.entry)
            if fetched.replaced is not None:
                # The Redis copy of the replaced entry stays only when the new one was written over it.
                overwritten = stored and fetched.replaced == fetched.entry.store_key
                await shared.discard(fetched.replaced, unlink=not overwritten)
        elif fetched.discarded is not None:
            await shared.discard(fetched.discarded)

    def _freshen(self, entry: Entry, upstream: aiohttp.ClientResponse, rule: Rule | None,
                 request_time: float, authorization: bool) -> Fetched:
        """Update a stored entry from a 304 (RFC 9111 section 4.3.4); the body is kept.

        The updated headers are checked as a new response's would be: a 304 that adds
        Set-Cookie or no-store leaves an entry that is served to this client only.
        """
        merged = freshen_headers(entry.headers, upstream.headers)
        reason: str | None = refuse_to_store(method="GET", status=entry.status, headers=merged, rule=rule,
                                             request_has_authorization=authorization)
        response_time = self.clock()
        # Decided on the merged headers, which hold the 304's Age, because a cache upstream may have sent it.
        tags = parse_tag_header(self.tag_header, upstream.headers.get(self.tag_header)) or entry.tags
        freshness = compute_freshness(entry.status, merged, request_time=request_time, response_time=response_time,
                                      rule=rule, settings=self.settings.cache,
                                      low_stock=_claims_low_stock(entry.claims) or self.has_low_stock(tags))
        if cache_logger.isEnabledFor(logging.DEBUG):
            _log_freshness(entry.key, entry.status, merged, rule, request_time, response_time, freshness)
        if reason is None:
            reason = refuse_for_freshness(freshness, merged)
        headers = CIMultiDictProxy(headers_to_store(merged, tag_header=self._stored_tag_header))
        # A soft purge that landed while this revalidation ran must not be undone by the 304.
        fresh_until = self._fence(tags, request_time, response_time, freshness.fresh_until)
        fresh = dataclasses.replace(
            entry, headers=headers, request_time=request_time, response_time=response_time,
            initial_age=freshness.initial_age, lifetime=freshness.lifetime, fresh_until=fresh_until,
            stale_while_revalidate_until=freshness.stale_while_revalidate_until,
            stale_if_error_until=freshness.stale_if_error_until, must_revalidate=freshness.must_revalidate,
            no_cache=freshness.no_cache, tags=tags, forbid_stale=fresh_until < freshness.fresh_until, size=0,
        )
        if reason is None:
            self.store.replace(fresh)
        else:
            self.store.discard(entry.store_key)
        upstream.release()
        return Fetched(FetchKind.REVALIDATED, entry=fresh, reason=reason, unstored=unstored_fields(upstream.headers),
                       discarded=None if reason is None else entry.store_key)

    async def _receive(self, upstream: aiohttp.ClientResponse, request_headers: CIMultiDict[str], *,
                       rule: Rule | None, key: CacheKey, entry: Entry | None, request_time: float,
                       authorization: bool) -> Fetched:
        """Read a response and store it when allowed; otherwise hand it back for the client.

        A full response replaces the stored `entry` (RFC 9111 section 4.3.3): when it
        cannot be stored, the entry is removed, except after a server error, where the
        entry may still serve as stale-if-error and is worth more than the error.
        """
        reason: str | None = refuse_to_store(method="GET", status=upstream.status, headers=upstream.headers,
                                             rule=rule, request_has_authorization=authorization)
        if reason is None and upstream.status in STALE_IF_ERROR_STATUSES and entry is not None \
                and entry.may_serve_on_error(self.clock()):
            reason = Reason.STATUS
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
            return Fetched(FetchKind.NOT_STORED, upstream=upstream, reason=reason, strip_headers=self._strip,
                           discarded=self._drop_replaced(entry, upstream.status))
        try:
            body, complete = await read_body(upstream, limit)
        except OriginError as exc:
            self.stats.record_origin_body_error(exc.reason)
            raise
        if not complete:
            return Fetched(FetchKind.NOT_STORED, upstream=upstream, prefix=body, reason=Reason.TOO_LARGE,
                           strip_headers=self._strip, discarded=self._drop_replaced(entry, upstream.status))
        built, reason = self._build_entry(upstream, body, request_headers, rule=rule, key=key,
                                          request_time=request_time)
        if built is None:
            return Fetched(FetchKind.NOT_STORED, upstream=upstream, body=body, reason=reason,
                           strip_headers=self._strip, discarded=self._drop_replaced(entry, upstream.status))
        self.store.put(built)
        upstream.release()
        return Fetched(FetchKind.STORED, entry=built, unstored=unstored_fields(upstream.headers),
                       replaced=None if entry is None else entry.store_key)

    def _drop_replaced(self, entry: Entry | None, status: int) -> str | None:
        """Remove the replaced entry unless the origin returned a server error; return its store key when removed."""
        if entry is None or status in STALE_IF_ERROR_STATUSES:
            return None
        self.store.discard(entry.store_key)
        return entry.store_key

    def _fence(self, tags: frozenset[str], request_time: float, response_time: float, fresh_until: float) -> float:
        """Return `fresh_until`, cut to now when an inventory event arrived while the origin was responding."""
        if self.is_fenced(tags, request_time):
            return min(fresh_until, response_time)
        return fresh_until

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
            _log_freshness(key, upstream.status, upstream.headers, rule, request_time, response_time, freshness)
        reason = refuse_for_freshness(freshness, upstream.headers)
        if reason is not None:
            return None, reason
        fresh_until = self._fence(tags, request_time, response_time, freshness.fresh_until)
        names = vary_names(upstream.headers.getall("vary", []))
        stored_headers = headers_to_store(upstream.headers, tag_header=self._stored_tag_header)
        if parse_http_date(stored_headers.get("date")) is None:
            # RFC 9110 section 6.6.1: a missing or invalid Date becomes the time the response arrived.
            stored_headers["Date"] = format_http_date(response_time)
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


def _with_validators(headers: CIMultiDict[str], entry: Entry | None) -> CIMultiDict[str]:
    """Return the headers with the conditional fields that revalidate `entry`, if any."""
    if entry is None:
        return headers
    conditional = CIMultiDict(headers)
    conditional.update(validators_for(entry.headers))
    return conditional


def _claims_low_stock(claims: tuple[tuple[str, str], ...]) -> bool:
    return any(state == "low_stock" for _, state in claims)


def _log_freshness(key: CacheKey, status: int, headers: CIMultiDictProxy[str] | CIMultiDict[str],
                   rule: Rule | None, request_time: float, now: float, freshness: Freshness) -> None:
    """Log every input of a freshness decision and its result, in one DEBUG record."""
    directives = parse_cache_control(headers.getall("cache-control", []))
    cache_logger.debug(
        "freshness key=%s status=%d date=%r expires=%r max_age=%r s_maxage=%r age=%r last_modified=%r "
        "no_cache=%s must_revalidate=%s rule=%s request_time=%.3f now=%.3f lifetime=%.3f source=%s "
        "initial_age=%.3f fresh_until=%.3f stale_while_revalidate_until=%.3f stale_if_error_until=%.3f",
        key, status, headers.get("date"), headers.get("expires"), directives.get("max-age"),
        directives.get("s-maxage"), headers.get("age"), headers.get("last-modified"), freshness.no_cache,
        freshness.must_revalidate, rule.name if rule else "default", request_time, now, freshness.lifetime,
        freshness.source, freshness.initial_age, freshness.fresh_until, freshness.stale_while_revalidate_until,
        freshness.stale_if_error_until,
    )
