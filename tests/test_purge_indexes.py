"""Purges by prefix and tag use the store's indexes: they never walk every entry."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from edgecache.entry import Entry
from edgecache.key import CacheKey
from edgecache.store import MemoryStore

# Entries in the store besides the ones a purge selects.
OTHER_ENTRIES = 2000
NOW = 1_700_000_000.0


class NoFullScan(OrderedDict):
    """The store's entry table, failing any walk over all of its keys."""

    def __iter__(self) -> Any:
        raise AssertionError("a purge walked every entry")

    def keys(self) -> Any:
        raise AssertionError("a purge walked every entry")

    def items(self) -> Any:
        raise AssertionError("a purge walked every entry")

    def values(self) -> Any:
        raise AssertionError("a purge walked every entry")


def entry(path: str, tags: frozenset[str] = frozenset()) -> Entry:
    return Entry(key=CacheKey("shop.example", path), variant="", vary=(), status=200,
                 headers=CIMultiDictProxy(CIMultiDict()), body=b"x", request_time=NOW, response_time=NOW,
                 initial_age=0.0, lifetime=60.0, fresh_until=NOW + 60, stale_while_revalidate_until=NOW + 60,
                 stale_if_error_until=NOW + 60, tags=tags)


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore(max_bytes=10**9)
    for number in range(OTHER_ENTRIES):
        store.put(entry(f"/other-{number}/p", frozenset({f"sku:{number}"})))
    for path in ("/shoes/a", "/shoes/b", "/shoes-sale/c"):
        store.put(entry(path, frozenset({"category:shoes"})))
    store._entries = NoFullScan(store._entries)
    return store


@pytest.mark.parametrize("soft", [False, True])
def test_prefix_purge_uses_index(store: MemoryStore, soft: bool) -> None:
    assert store.purge_prefixes(["/shoes/"], soft=soft, now=NOW) == 2
    assert (store.peek("shop.example\x00/shoes/a\x00\x00") is None) is not soft
    assert store.peek("shop.example\x00/shoes-sale/c\x00\x00").fresh_until == NOW + 60


@pytest.mark.parametrize("soft", [False, True])
def test_tag_purge_uses_index(store: MemoryStore, soft: bool) -> None:
    assert store.purge_tags(["category:shoes"], soft=soft, now=NOW) == 3
    assert len(store) == OTHER_ENTRIES + (3 if soft else 0)


def test_path_purge_uses_index(store: MemoryStore) -> None:
    assert store.purge_paths(["/other-7/p"], soft=False, now=NOW) == 1
    assert len(store) == OTHER_ENTRIES + 2
