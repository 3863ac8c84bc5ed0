"""Entries: stored responses with the metadata decided when they were stored."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from multidict import CIMultiDictProxy

from .freshness import current_age
from .key import CacheKey

# Per-entry bookkeeping counted toward cache.max_bytes, so that a flood of tiny entries
# still respects the bound: the Entry and CacheKey objects, the header multidict and the
# store's index slots. Measured with tracemalloc on CPython 3.11 as about 1,750 bytes for
# an entry with four headers, plus KEY_COPIES copies of the key text.
ENTRY_OVERHEAD_BYTES = 1750
# The key text (site, path, key cookies) is held about three times: in the CacheKey, in
# the store key and in the store's Vary index.
KEY_COPIES = 3
# Cost of one tag: the string, its slot in the entry's set and the store's per-tag index
# set. Measured with tracemalloc on CPython 3.11 as about 400 bytes, so a category page
# listing thousands of tags counts for what it occupies.
TAG_OVERHEAD_BYTES = 400


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored response. Times are epoch seconds, decided once at store time."""

    key: CacheKey
    variant: str
    vary: tuple[str, ...]
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    request_time: float
    response_time: float
    initial_age: float
    lifetime: float
    fresh_until: float
    stale_while_revalidate_until: float
    stale_if_error_until: float
    must_revalidate: bool = False
    no_cache: bool = False
    rule: str = "default"
    tags: frozenset[str] = frozenset()
    # Availability state each SKU on the page claimed when it was rendered.
    claims: tuple[tuple[str, str], ...] = ()
    # Set when an inventory event made the page's availability wrong; never served stale then.
    forbid_stale: bool = False
    size: int = field(default=0)
    # Encoded fields of a 200 hit that stay the same from hit to hit, set on the first plain
    # hit (see hit_response). b"" means the entry must be served through web.Response.
    # NOTE: cache.max_bytes does not count these bytes. They are about the size of the stored fields.
    hit_fields: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.size:
            header_bytes = sum(len(name) + len(value) + 4 for name, value in self.headers.items())
            tag_bytes = len(self.tags) * TAG_OVERHEAD_BYTES
            key_bytes = KEY_COPIES * (len(self.key.site) + len(self.key.path) + len(self.key.cookie_part))
            object.__setattr__(self, "size",
                               len(self.body) + header_bytes + tag_bytes + key_bytes + ENTRY_OVERHEAD_BYTES)

    def keep_hit_fields(self, encoded: bytes) -> None:
        """Keep the encoded fields of a hit, which are as fixed as the stored fields they encode."""
        object.__setattr__(self, "hit_fields", encoded)

    @property
    def store_key(self) -> str:
        return store_key(self.key, self.variant)

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")

    @property
    def has_validators(self) -> bool:
        return "etag" in self.headers or "last-modified" in self.headers

    def age(self, now: float) -> float:
        return current_age(self.initial_age, self.response_time, now)

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until

    def may_serve_while_revalidating(self, now: float) -> bool:
        return not self.forbid_stale and now < self.stale_while_revalidate_until

    def may_serve_on_error(self, now: float) -> bool:
        return not self.forbid_stale and now < self.stale_if_error_until

    def expires_at(self) -> float:
        """Return when the entry may no longer be served in any way."""
        return max(self.fresh_until, self.stale_while_revalidate_until, self.stale_if_error_until)

    def made_stale(self, now: float, *, forbid_stale: bool = False) -> Entry:
        """Return a copy that is stale from `now` on; its stale windows never grow.

        An entry without a stale-while-revalidate window keeps none, so its next request
        revalidates instead of being served stale for the rest of its freshness lifetime.
        """
        swr_until = self.stale_while_revalidate_until
        if swr_until <= self.fresh_until:
            swr_until = min(swr_until, now)
        return dataclasses.replace(
            self,
            fresh_until=min(self.fresh_until, now),
            stale_while_revalidate_until=swr_until,
            forbid_stale=self.forbid_stale or forbid_stale,
            size=self.size,
        )


def store_key(key: CacheKey, variant: str) -> str:
    """Return the string under which the store keeps an entry.

    Keys of one site and path sort next to each other, so a prefix purge is a range scan.
    """
    return f"{key.site}\x00{key.path}\x00{key.cookie_part}\x00{variant}"
