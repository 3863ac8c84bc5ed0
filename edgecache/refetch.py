"""Refetching stored pages on edgecache's own behalf (after inventory events, for reconciliation).

A refetch is an origin fetch like a client's miss: it revalidates with the entry's
validators, stores what comes back and leads a coalesced flight, so shoppers who ask
for the page meanwhile wait for it instead of fetching again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from multidict import CIMultiDict

from .coalesce import FlightResult, FlightStatus
from .entry import Entry, store_key
from .errors import OriginError
from .log import inventory_logger
from .origin import ForwardContext, forward_headers
from .vary import variant_request_fields

if TYPE_CHECKING:
    from .proxy import Proxy


def can_refetch(entry: Entry) -> bool:
    """Return whether edgecache can rebuild the request behind an entry.

    The fields an entry varies on are rebuilt from its variant key. NOTE: entries keyed
    by cookies are skipped and refresh on the next request. A Cookie header rebuilt from
    the key's cookie values would lift this.
    """
    return not entry.key.cookie_part


class Refetcher:
    """Fetches stored pages again from the origin, one flight per key."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self._background: set[asyncio.Task[None]] = set()
        self._failures = 0

    def __repr__(self) -> str:
        return f"<Refetcher running={len(self._background)}>"

    async def close(self) -> None:
        """Wait for background refetches to end (they are bounded by origin timeouts)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def refetch(self, entry: Entry, *, revalidate: bool) -> Entry | None:
        """Fetch an entry's page again; return the stored result, or None when nothing was stored.

        With `revalidate`, the request carries the entry's validators, so an unchanged page
        costs a 304; use it only while the entry is still in the store, which a 304 freshens.
        Returns None at once when a fetch for the key is already running. Raises OriginError.
        """
        proxy = self.proxy
        flight_key = store_key(entry.key, "")
        if proxy.coalescer.in_flight(flight_key):
            return None
        flight, _ = proxy.coalescer.acquire(flight_key)
        result = FlightResult(FlightStatus.UNSHAREABLE)
        try:
            fetched = await proxy.fetcher.fetch(
                entry.key.path, self._headers(entry), rule=proxy.settings.rule_for(entry.key.path), key=entry.key,
                entry=entry if revalidate else None, authorization=False,
            )
            fetched.release()
            if not fetched.shareable:
                # Not stored: a response the origin marked unfit to keep, or a 304 that made it so.
                return None
            result = FlightResult(FlightStatus.DONE, entry=fetched.entry)
            return fetched.entry
        except OriginError as exc:
            result = FlightResult(FlightStatus.ERROR, error=exc)
            raise
        finally:
            proxy.coalescer.release(flight, result)

    def refetch_in_background(self, entry: Entry, *, revalidate: bool) -> None:
        task = asyncio.create_task(self._refetch_logged(entry, revalidate))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refetch_logged(self, entry: Entry, revalidate: bool) -> None:
        try:
            await self.refetch(entry, revalidate=revalidate)
        except OriginError as exc:
            self._failures += 1
            # The first failure and every 100th after it, so an origin outage cannot flood the log.
            if self._failures % 100 == 1:
                inventory_logger.warning("refetch of %s failed: %s (failures so far: %d)", entry.key, exc,
                                         self._failures)

    def _headers(self, entry: Entry) -> CIMultiDict[str]:
        host = entry.key.site if self.proxy.settings.origin.host_header == "client" else self.proxy.settings.site_host
        headers = forward_headers(CIMultiDict(), ForwardContext(client_ip="", scheme="http", host=host),
                                  strip_conditionals=True)
        # edgecache itself is the client here, so there is no address to forward.
        del headers["X-Forwarded-For"]
        # The fields the entry's Vary names, so that the origin renders the same variant.
        headers.update(variant_request_fields(entry.variant))
        return headers
