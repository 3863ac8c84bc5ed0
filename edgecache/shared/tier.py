"""The shared tier: entries in Redis under every node's memory store.

Redis keys, after `cache.shared_key_prefix`:

    e:<store key>     the serialized entry; expires when the entry may no longer be served
    v:<primary key>   the Vary field names (JSON list) stored for a site, path and key cookies
    p:<path>          set of store keys with that canonical path, for path purges
    paths             sorted set of the canonical paths with a p: set, all with score 0, so a
                      prefix purge or purge-all reads the matching paths with ZRANGEBYLEX
    path-expiry       sorted set of the same paths, scored by when their p: set expires
                      (milliseconds on the Redis clock), so that writes find expired paths
    t:<tag>           set of store keys with that tag, for tag purges
    l:<primary key>   the cross-node fetch lock (see lock.py)
    i:<tag>           the inventory record of the SKU with that tag (see inventory.py)

Index sets expire with the longest-lived entry they list. Keys of entries that
expired earlier stay in them until then, which is harmless when purged. A path
leaves `paths` when a write finds its p: set expired, or when a purge finds the
set gone (`_PRUNE_SCRIPT`), because a sorted set member cannot expire by itself.
Every method returns normally when Redis fails: it counts the failure, marks the
tier down and returns a miss, so a Redis outage never fails a client request.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..config import CacheSettings
from ..entry import Entry, store_key
from ..errors import CorruptEntryError
from ..key import CacheKey
from ..log import shared_logger
from ..vary import variant_key
from .codec import decode_entry, encode_entry
from .health import RateLimitedLog, SharedHealth
from .invalidation import DiscardMessage, PurgeRequest

T = TypeVar("T")

# Store keys handled per Redis round trip when a purge touches many entries.
PURGE_BATCH = 500

# Expired paths one write removes from the path index at most. Each expiry of a
# path's p: set follows at least one write, so removal keeps pace with expiry.
PRUNE_PER_WRITE = 8

# Writes an entry, its Vary record, its path in the path indexes and its index sets.
# A record, set or index never expires before the longest-lived entry it serves.
# Then removes up to ARGV[8] paths whose p: set has expired from both path indexes.
# Returns 0 without writing when an inventory record of one of the entry's tags
# changed at or after the fill's request time, because the page may show the state
# from before that change.
# KEYS: entry, vary record, path index, path expiry index, path set, tag sets...,
# inventory records (the last ARGV[6] keys);
# ARGV: value, vary JSON, ttl ms, store key, request time, number of inventory records, path,
# max expired paths to remove.
_PUT_SCRIPT = """
local records = tonumber(ARGV[6])
local request_time = tonumber(ARGV[5])
for i = #KEYS - records + 1, #KEYS do
  local changed_at = tonumber(redis.call('HGET', KEYS[i], 'changed_at') or '')
  if changed_at and changed_at >= request_time then return 0 end
end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
local left = redis.call('PTTL', KEYS[2])
redis.call('SET', KEYS[2], ARGV[2], 'PX', math.max(left, ttl))
for i = 5, #KEYS - records do
  redis.call('SADD', KEYS[i], ARGV[4])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[3], 0, ARGV[7])
redis.call('ZADD', KEYS[4], now + redis.call('PTTL', KEYS[5]), ARGV[7])
for i = 3, 4 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
-- Only writes set a score, each to the expiry its path set has then, and only writes
-- extend that expiry, so a score in the past means the p: set has expired.
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[8]))
for _, path in ipairs(expired) do
  redis.call('ZREM', KEYS[3], path)
  redis.call('ZREM', KEYS[4], path)
end
return 1
"""

# Removes from both path indexes each path whose p: set no longer exists, because
# its entries expired or were purged. Checked and removed in one step, so a path
# written by a concurrent fill keeps its place. Returns how many paths it removed.
# KEYS: path index, path expiry index, path sets...; ARGV: the paths, in the order of their sets.
_PRUNE_SCRIPT = """
local removed = 0
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i - 2])
    redis.call('ZREM', KEYS[2], ARGV[i - 2])
  end
end
return removed
"""


class SharedTier:
    """Entries, purges and fetch locks in Redis, shared by every node with the same key prefix."""

    def __init__(self, settings: CacheSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.prefix = settings.shared_key_prefix
        self.channel = self.prefix + "invalidate"
        self.max_entry_bytes = settings.shared_max_entry_bytes
        # Identifies this process in published purges, so it skips its own.
        self.node = uuid.uuid4().hex
        self.health = SharedHealth(retry_interval=settings.shared_retry_interval, url=settings.shared_url)
        self.client = _connect(settings.shared_url, timeout=settings.shared_timeout)
        # Pub/sub blocks on reads, so it gets a client of its own without a read timeout.
        self.subscriber_client = _connect(settings.shared_url, timeout=None,
                                          connect_timeout=settings.shared_timeout)
        self._put_script = self.client.register_script(_PUT_SCRIPT)
        self._prune_script = self.client.register_script(_PRUNE_SCRIPT)
        self.path_index = f"{self.prefix}paths"
        self.path_expiry_index = f"{self.prefix}path-expiry"
        self._corrupt_log = RateLimitedLog()
        self.figures = {"hits": 0, "misses": 0, "stores": 0, "too_large": 0, "corrupt": 0, "fenced": 0,
                        "lock_waits": 0, "lock_fallbacks": 0}

    def __repr__(self) -> str:
        return f"<SharedTier {self.health.state} prefix={self.prefix!r}>"

    async def close(self) -> None:
        await self.client.aclose()
        await self.subscriber_client.aclose()

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.health.state, "failures": self.health.failures, **self.figures}

    async def call(self, operation: str, command: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """Run one Redis operation; return (False, None) when Redis is down or fails."""
        if not self.health.available():
            return False, None
        try:
            result = await command()
        except (RedisError, OSError) as exc:
            self.health.failed(operation, exc)
            return False, None
        self.health.succeeded()
        return True, result

    def entry_key(self, full_key: str) -> str:
        return f"{self.prefix}e:{full_key}"

    def vary_key(self, key: CacheKey) -> str:
        return f"{self.prefix}v:{store_key(key, '')}"

    def path_key(self, path: str) -> str:
        return f"{self.prefix}p:{path}"

    def tag_key(self, tag: str) -> str:
        return f"{self.prefix}t:{tag}"

    def record_key(self, tag: str) -> str:
        return f"{self.prefix}i:{tag}"

    async def lookup(self, key: CacheKey, request_headers: Mapping[str, str]) -> Entry | None:
        """Return the entry Redis holds for a request, or None (absent, invalid or Redis down)."""
        _, entry = await self.call("lookup", lambda: self.read(key, request_headers))
        self.figures["hits" if entry is not None else "misses"] += 1
        return entry

    async def read(self, key: CacheKey, request_headers: Mapping[str, str]) -> Entry | None:
        """Read an entry without counting it; Redis errors propagate (see `call`)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.vary_key(key))
            pipe.get(self.entry_key(store_key(key, "")))
            vary_value, value = await pipe.execute()
        if vary_value is None:
            return None
        try:
            names = _vary_names(vary_value)
        except CorruptEntryError as exc:
            self._corrupt(self.vary_key(key), exc)
            return None
        variant = variant_key(names, request_headers)
        if variant:
            value = await self.client.get(self.entry_key(store_key(key, variant)))
        if value is None:
            return None
        try:
            entry = decode_entry(value, max_bytes=self.max_entry_bytes)
        except CorruptEntryError as exc:
            self._corrupt(self.entry_key(store_key(key, variant)), exc)
            return None
        if entry.key != key or entry.variant != variant:
            self._corrupt(self.entry_key(store_key(key, variant)),
                          CorruptEntryError(f"entry is stored for {entry.key} variant {entry.variant!r}"))
            return None
        return entry

    def _corrupt(self, redis_key: str, error: CorruptEntryError) -> None:
        self.figures["corrupt"] += 1
        self._corrupt_log.warning("ignored invalid value at Redis key %r: %s", redis_key, error)

    async def put(self, entry: Entry) -> bool:
        """Write an entry with its expiry; return whether Redis stored it.

        An entry filled before the latest inventory change of one of its tags is not
        written (counted as `fenced`), even when this node has not heard of the change yet.
        """
        ttl_ms = math.ceil((entry.expires_at() - self.clock()) * 1000)
        if ttl_ms <= 0:
            return False
        value = encode_entry(entry)
        if len(value) > self.max_entry_bytes:
            self.figures["too_large"] += 1
            if shared_logger.isEnabledFor(logging.DEBUG):
                shared_logger.debug("not stored in Redis: %s is %d bytes, over cache.shared_max_entry_bytes %d",
                                    entry.key, len(value), self.max_entry_bytes)
            return False
        tags = sorted(entry.tags)
        keys = [self.entry_key(entry.store_key), self.vary_key(entry.key), self.path_index,
                self.path_expiry_index, self.path_key(entry.key.path)]
        keys.extend(self.tag_key(tag) for tag in tags)
        keys.extend(self.record_key(tag) for tag in tags)
        args: list[bytes | str | int] = [value, json.dumps(list(entry.vary)), ttl_ms, entry.store_key,
                                         repr(entry.request_time), len(tags), entry.key.path, PRUNE_PER_WRITE]
        done, written = await self.call("put", lambda: self._put_script(keys=keys, args=args))
        if not done:
            return False
        if not written:
            self.figures["fenced"] += 1
            return False
        self.figures["stores"] += 1
        return True

    async def discard(self, full_key: str, *, unlink: bool = True) -> bool:
        """Delete one stored variant and publish its store key, so other nodes drop their memory copies.

        A node calls this when it replaced the entry: `unlink=False` keeps the Redis copy,
        because the replacing entry was written over it. Returns whether Redis did both.
        """
        message = DiscardMessage((full_key,)).encode(self.node)

        async def discard_and_publish() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                if unlink:
                    pipe.unlink(self.entry_key(full_key))
                pipe.publish(self.channel, message)
                await pipe.execute()

        done, _ = await self.call("discard", discard_and_publish)
        return done

    async def purge(self, request: PurgeRequest) -> bool:
        """Apply a purge to Redis and publish it to the other nodes; return whether both worked."""
        done, _ = await self.call("purge", lambda: self._purge(request))
        return done

    async def _purge(self, request: PurgeRequest) -> None:
        # NOTE: prefix purges and purge-all find only paths in the path index, so entries
        # written by an edgecache version without the index stay until they expire.
        paths = set(request.paths)
        if request.purge_all:
            paths.update(await self._indexed_paths(b"-", b"+"))
        for prefix in request.prefixes:
            # Bytes, because a str "\xff" would be encoded as UTF-8 (c3 bf). No UTF-8 text
            # contains the byte ff, so every path starting with the prefix sorts below it.
            low = prefix.encode()
            paths.update(await self._indexed_paths(b"[" + low, b"(" + low + b"\xff"))
        full_keys = await self._members([self.path_key(path) for path in sorted(paths)])
        full_keys |= await self._members([self.tag_key(tag) for tag in request.tags])
        ordered = sorted(full_keys)
        for start in range(0, len(ordered), PURGE_BATCH):
            batch = ordered[start:start + PURGE_BATCH]
            redis_keys = [self.entry_key(full_key) for full_key in batch]
            if request.soft:
                await self._make_stale(redis_keys, request)
            else:
                await self._unlink_entries(batch)
        if not request.soft:
            paths.update(_path_of(full_key) for full_key in full_keys)
            if request.tags:
                await self.client.unlink(*[self.tag_key(tag) for tag in request.tags])
        await self._prune_paths(sorted(paths))
        await self.client.publish(self.channel, request.encode(self.node))

    async def _indexed_paths(self, low: bytes, high: bytes) -> list[str]:
        """Return the paths in the path index between two ZRANGEBYLEX bounds, read in pages."""
        paths: list[str] = []
        while True:
            page = await self.client.zrangebylex(self.path_index, low, high, start=0, num=PURGE_BATCH)
            paths.extend(_text(member) for member in page)
            if len(page) < PURGE_BATCH:
                return paths
            # The next page starts after the last member read, so concurrent writes shift nothing.
            low = b"(" + page[-1]

    async def _members(self, index_keys: list[str]) -> set[str]:
        """Return the store keys listed in index sets, read PURGE_BATCH sets per round trip."""
        found: set[str] = set()
        for start in range(0, len(index_keys), PURGE_BATCH):
            async with self.client.pipeline(transaction=False) as pipe:
                for index_key in index_keys[start:start + PURGE_BATCH]:
                    pipe.smembers(index_key)
                for members in await pipe.execute():
                    found.update(_text(member) for member in members)
        return found

    async def _unlink_entries(self, full_keys: list[str]) -> None:
        """Delete entries and take them out of their path sets.

        The set members go first, so no fill of the same store key leaves a live entry
        missing from its path set. A fill between the two steps is deleted by the UNLINK
        and leaves only a member without an entry, which is harmless.
        """
        async with self.client.pipeline(transaction=False) as pipe:
            for full_key in full_keys:
                pipe.srem(self.path_key(_path_of(full_key)), full_key)
            pipe.unlink(*[self.entry_key(full_key) for full_key in full_keys])
            await pipe.execute()

    async def _prune_paths(self, paths: list[str]) -> None:
        """Remove from the path index the given paths whose p: set is gone (see `_PRUNE_SCRIPT`)."""
        for start in range(0, len(paths), PURGE_BATCH):
            batch = paths[start:start + PURGE_BATCH]
            keys = [self.path_index, self.path_expiry_index, *(self.path_key(path) for path in batch)]
            await self._prune_script(keys=keys, args=batch)

    async def purge_tag(self, tag: str, *, soft: bool, at: float,
                        keep: Callable[[Entry], bool] | None = None) -> int:
        """Remove, or mark stale from `at`, the entries with a tag, except those `keep` accepts.

        Returns how many entries it touched. Redis errors propagate (see `call`).
        """
        index = self.tag_key(tag)
        full_keys = sorted(_text(member) for member in await self.client.smembers(index))
        touched = 0
        for start in range(0, len(full_keys), PURGE_BATCH):
            redis_keys = [self.entry_key(full_key) for full_key in full_keys[start:start + PURGE_BATCH]]
            if keep is None and not soft:
                touched += await self.client.unlink(*redis_keys)
                continue
            touched += await self._purge_entries(redis_keys, soft=soft, at=at, keep=keep or _keep_none)
        if keep is None and not soft:
            await self.client.unlink(index)
        return touched

    async def _purge_entries(self, redis_keys: list[str], *, soft: bool, at: float,
                             keep: Callable[[Entry], bool]) -> int:
        values = await self.client.mget(redis_keys)
        touched = 0
        async with self.client.pipeline(transaction=False) as pipe:
            for redis_key, value in zip(redis_keys, values):
                if not isinstance(value, bytes):
                    continue  # Absent; the client returns bytes for every stored value.
                try:
                    entry = decode_entry(value, max_bytes=self.max_entry_bytes)
                except CorruptEntryError as exc:
                    self._corrupt(redis_key, exc)
                    pipe.unlink(redis_key)
                    continue
                if keep(entry):
                    continue
                touched += 1
                if soft:
                    pipe.set(redis_key, encode_entry(entry.made_stale(at)), keepttl=True, xx=True)
                else:
                    pipe.unlink(redis_key)
            await pipe.execute()
        return touched

    async def _make_stale(self, redis_keys: list[str], request: PurgeRequest) -> None:
        values = await self.client.mget(redis_keys)
        async with self.client.pipeline(transaction=False) as pipe:
            for redis_key, value in zip(redis_keys, values):
                if not isinstance(value, bytes):
                    continue
                try:
                    entry = decode_entry(value, max_bytes=self.max_entry_bytes)
                except CorruptEntryError as exc:
                    self._corrupt(redis_key, exc)
                    pipe.unlink(redis_key)
                    continue
                stale = entry.made_stale(request.at, forbid_stale=request.forbid_stale)
                pipe.set(redis_key, encode_entry(stale), keepttl=True, xx=True)
            await pipe.execute()

    async def ping(self) -> bool:
        done, _ = await self.call("ping", self.client.ping)
        return done


def _connect(url: str, *, timeout: float | None, connect_timeout: float | None = None) -> redis.Redis:
    # No retries inside redis-py: the shared tier's own retry interval decides when to try again.
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=connect_timeout or timeout,
                                retry=Retry(NoBackoff(), 0), health_check_interval=5)


def _vary_names(value: bytes) -> tuple[str, ...]:
    try:
        names = json.loads(value)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise CorruptEntryError(f"Vary record {value[:80]!r} is not a JSON list of strings")
    return tuple(names)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _keep_none(entry: Entry) -> bool:
    return False


def _path_of(full_key: str) -> str:
    """Return the canonical path of a store key (see `entry.store_key`)."""
    parts = full_key.split("\x00", 2)
    return parts[1] if len(parts) > 1 else ""
