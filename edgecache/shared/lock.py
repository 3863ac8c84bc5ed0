"""Coalescing across nodes: a short lock per key in Redis, so N nodes make one origin fetch.

A node that misses both tiers takes the lock with SET NX PX and fetches. The
others wait: they read Redis until the entry appears, the lock disappears (the
holder got nothing it may share, so each fetches on its own) or
`cache.shared_lock_wait` seconds pass. The lock expires by itself after
`cache.shared_lock_ttl` seconds in case its holder dies. Only the holder that set
it deletes it (compare-and-delete), so a late holder cannot delete a lock that
another node took after expiry.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from ..entry import Entry, store_key
from ..key import CacheKey
from .tier import SharedTier

# Seconds between two reads of Redis while waiting: the first, and the most.
FIRST_POLL_INTERVAL = 0.005
MAX_POLL_INTERVAL = 0.05

_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class LockResult:
    """The outcome of trying the lock: fetch (with or without a token to release), or use `entry`."""

    token: str | None = None
    entry: Entry | None = None


class FetchLock:
    def __init__(self, tier: SharedTier) -> None:
        self.tier = tier
        self.ttl_ms = max(1, int(tier.settings.shared_lock_ttl * 1000))
        self.wait = tier.settings.shared_lock_wait
        self._release_script = tier.client.register_script(_RELEASE_SCRIPT)

    def lock_key(self, key: CacheKey) -> str:
        return f"{self.tier.prefix}l:{store_key(key, '')}"

    async def acquire_or_wait(self, key: CacheKey, request_headers: Mapping[str, str]) -> LockResult:
        """Take the fetch lock, or wait for the holder's fresh entry; Redis down means fetch unlocked."""
        token = uuid.uuid4().hex
        lock_key = self.lock_key(key)
        done, taken = await self.tier.call(
            "lock", lambda: self.tier.client.set(lock_key, token, nx=True, px=self.ttl_ms))
        if not done or taken:
            return LockResult(token=token if done else None)
        self.tier.figures["lock_waits"] += 1
        entry = await self._wait_for_entry(key, lock_key, request_headers)
        if entry is None:
            self.tier.figures["lock_fallbacks"] += 1
        return LockResult(entry=entry)

    async def _wait_for_entry(self, key: CacheKey, lock_key: str,
                              request_headers: Mapping[str, str]) -> Entry | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        interval = FIRST_POLL_INTERVAL
        while loop.time() < deadline:
            await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))
            interval = min(interval * 2, MAX_POLL_INTERVAL)
            _, entry = await self.tier.call("lookup", lambda: self.tier.read(key, request_headers))
            if entry is not None and entry.is_fresh(self.tier.clock()):
                return entry
            done, held = await self.tier.call("lock", lambda: self.tier.client.exists(lock_key))
            if not done or not held:
                return None
        return None

    async def release(self, key: CacheKey, token: str | None) -> None:
        if token is None:
            return
        await self.tier.call("unlock", lambda: self._release_script(keys=[self.lock_key(key)], args=[token]))
