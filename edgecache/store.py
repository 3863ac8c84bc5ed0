"""The memory store: an LRU bounded in bytes, with indexes for Vary, tags and prefixes.

Every method is synchronous and does no I/O: the caller decides, then acts on what
the store returns (evicted entries, purge counts), as the request handler and the
shared tier need.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Protocol

from sortedcontainers import SortedList

from .entry import Entry, store_key
from .key import CacheKey
from .vary import variant_key

# Sorts after every character a path or variant can contain, to close a key range.
_RANGE_END = "\U0010ffff"


class Store(Protocol):
    """What the request handler needs from a cache tier."""

    def lookup(self, key: CacheKey, request_headers: Mapping[str, str]) -> Entry | None: ...

    def variants_of(self, key: CacheKey) -> list[Entry]: ...

    def put(self, entry: Entry) -> list[Entry]: ...

    def replace(self, entry: Entry) -> None: ...

    def remove_key(self, key: CacheKey) -> int: ...

    def purge_paths(self, paths: Iterable[str], *, soft: bool, now: float, forbid_stale: bool = False) -> int: ...

    def purge_prefixes(self, prefixes: Iterable[str], *, soft: bool, now: float) -> int: ...

    def purge_tags(self, tags: Iterable[str], *, soft: bool, now: float, forbid_stale: bool = False) -> int: ...

    def purge_all(self, *, soft: bool, now: float) -> int: ...


class MemoryStore:
    """An in-process LRU store bounded by `max_bytes` (bodies, headers and bookkeeping)."""

    def __init__(self, *, max_bytes: int, max_variants: int = 16) -> None:
        self.max_bytes = max_bytes
        self.max_variants = max_variants
        self.bytes = 0
        self.evictions = 0
        self.variant_evictions = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._sorted_keys: SortedList = SortedList()
        self._vary: dict[str, tuple[str, ...]] = {}
        self._variants: dict[str, dict[str, None]] = {}
        self._tags: dict[str, set[str]] = {}
        self._sites: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<MemoryStore entries={len(self._entries)} bytes={self.bytes}/{self.max_bytes}>"

    def lookup(self, key: CacheKey, request_headers: Mapping[str, str]) -> Entry | None:
        primary = _primary(key)
        names = self._vary.get(primary)
        if names is None:
            return None
        full_key = primary + "\x00" + variant_key(names, request_headers)
        entry = self._entries.get(full_key)
        if entry is not None:
            self._entries.move_to_end(full_key)
        return entry

    def peek(self, full_key: str) -> Entry | None:
        """Return an entry without touching its LRU position."""
        return self._entries.get(full_key)

    def variants_of(self, key: CacheKey) -> list[Entry]:
        """Return every variant stored for a key, without touching LRU positions."""
        return [self._entries[full_key] for full_key in self._variants.get(_primary(key), ())]

    def put(self, entry: Entry) -> list[Entry]:
        """Store an entry; return the entries evicted to make room for it."""
        full_key = entry.store_key
        primary = _primary(entry.key)
        evicted: list[Entry] = []
        if self._vary.get(primary, entry.vary) != entry.vary:
            # The origin changed its Vary list: the old variants no longer match requests.
            evicted.extend(self._remove_many(list(self._variants.get(primary, ()))))
        if full_key in self._entries:
            self._remove(full_key)
        variants = self._variants.setdefault(primary, {})
        while len(variants) >= self.max_variants:
            oldest = next(iter(variants))
            evicted.append(self._remove(oldest))
            self.variant_evictions += 1
            variants = self._variants.setdefault(primary, {})
        self._insert(full_key, primary, entry)
        while self.bytes > self.max_bytes and len(self._entries) > 1:
            victim_key = next(iter(self._entries))
            evicted.append(self._remove(victim_key))
            self.evictions += 1
        return evicted

    def replace(self, entry: Entry) -> None:
        """Swap an entry in place (freshened or soft-purged), keeping its indexes."""
        full_key = entry.store_key
        old = self._entries.get(full_key)
        if old is None:
            return
        self._unindex_tags(full_key, old)
        self._entries[full_key] = entry
        self.bytes += entry.size - old.size
        self._index_tags(full_key, entry)

    def remove_key(self, key: CacheKey) -> int:
        """Remove every variant stored for a key."""
        return len(self._remove_many(list(self._variants.get(_primary(key), ()))))

    def discard(self, full_key: str) -> Entry | None:
        """Remove one variant, if it is still stored; return it."""
        return self._remove(full_key) if full_key in self._entries else None

    def purge_paths(self, paths: Iterable[str], *, soft: bool, now: float, forbid_stale: bool = False) -> int:
        keys: list[str] = []
        for path in paths:
            for site in self._sites:
                keys.extend(self._range(f"{site}\x00{path}\x00"))
        return self._purge(keys, soft=soft, now=now, forbid_stale=forbid_stale)

    def purge_prefixes(self, prefixes: Iterable[str], *, soft: bool, now: float) -> int:
        keys: set[str] = set()
        for prefix in prefixes:
            for site in self._sites:
                keys.update(self._range(f"{site}\x00{prefix}"))
        return self._purge(list(keys), soft=soft, now=now)

    def purge_tags(self, tags: Iterable[str], *, soft: bool, now: float, forbid_stale: bool = False) -> int:
        keys: set[str] = set()
        for tag in tags:
            keys.update(self._tags.get(tag, ()))
        return self._purge(list(keys), soft=soft, now=now, forbid_stale=forbid_stale)

    def purge_all(self, *, soft: bool, now: float) -> int:
        return self._purge(list(self._entries), soft=soft, now=now)

    def keys_for_tag(self, tag: str) -> list[str]:
        return list(self._tags.get(tag, ()))

    def purge_keys(self, keys: Iterable[str], *, soft: bool, now: float, forbid_stale: bool = False) -> int:
        """Purge entries by their store keys (as `keys_for_tag` returns them)."""
        return self._purge([key for key in keys if key in self._entries], soft=soft, now=now,
                           forbid_stale=forbid_stale)

    def most_recent(self, count: int) -> list[Entry]:
        """Return up to `count` entries, most recently used first, without touching the LRU order."""
        entries: list[Entry] = []
        for full_key in reversed(self._entries):
            if len(entries) >= count:
                break
            entries.append(self._entries[full_key])
        return entries

    def _purge(self, keys: list[str], *, soft: bool, now: float, forbid_stale: bool = False) -> int:
        if not soft:
            return len(self._remove_many(keys))
        for full_key in keys:
            entry = self._entries.get(full_key)
            if entry is not None:
                self.replace(entry.made_stale(now, forbid_stale=forbid_stale))
        return len(keys)

    def _range(self, start: str) -> list[str]:
        return list(self._sorted_keys.irange(start, start + _RANGE_END))

    def _insert(self, full_key: str, primary: str, entry: Entry) -> None:
        self._entries[full_key] = entry
        self._sorted_keys.add(full_key)
        self._vary[primary] = entry.vary
        self._variants.setdefault(primary, {})[full_key] = None
        self._sites[entry.key.site] = self._sites.get(entry.key.site, 0) + 1
        self._index_tags(full_key, entry)
        self.bytes += entry.size

    def _remove_many(self, keys: Iterable[str]) -> list[Entry]:
        return [self._remove(full_key) for full_key in keys if full_key in self._entries]

    def _remove(self, full_key: str) -> Entry:
        entry = self._entries.pop(full_key)
        self._sorted_keys.remove(full_key)
        primary = _primary(entry.key)
        variants = self._variants.get(primary)
        if variants is not None:
            variants.pop(full_key, None)
            if not variants:
                del self._variants[primary]
                self._vary.pop(primary, None)
        site_count = self._sites[entry.key.site] - 1
        if site_count:
            self._sites[entry.key.site] = site_count
        else:
            del self._sites[entry.key.site]
        self._unindex_tags(full_key, entry)
        self.bytes -= entry.size
        return entry

    def _index_tags(self, full_key: str, entry: Entry) -> None:
        for tag in entry.tags:
            self._tags.setdefault(tag, set()).add(full_key)

    def _unindex_tags(self, full_key: str, entry: Entry) -> None:
        for tag in entry.tags:
            holders = self._tags.get(tag)
            if holders is not None:
                holders.discard(full_key)
                if not holders:
                    del self._tags[tag]


def _primary(key: CacheKey) -> str:
    """Return the store key of a key without its variant part."""
    return store_key(key, "")[:-1]
