"""The shared tier: entries in Redis under every node's memory store.

Redis keys, after `cache.shared_key_prefix`:

    e:<store key>     the serialized entry; expires when the entry may no longer be served
    v:<primary key>   the Vary field names (JSON list) stored for a site, path and key cookies
    p:<path>          set of store keys with that canonical path, for path purges
    t:<tag>           set of store keys with that tag, for tag purges
    l:<primary key>   the cross-node fetch lock (see lock.py)
    i:<tag>           the inventory record of the SKU with that tag (see inventory.py)

Index sets expire with the longest-lived entry they list. Keys of entries that
expired earlier stay in them until then, which is harmless when purged.
Every method returns normally when Redis fails: it counts the failure, marks the
tier down and answers as a miss, so a Redis outage never fails a client request.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
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
from .invalidation import PurgeRequest

T = TypeVar("T")

# Store keys handled per Redis round trip when a purge touches many entries.
PURGE_BATCH = 500

# Writes an entry, its Vary record and its index sets; a record or set never
# expires before the longest-lived entry it serves. Returns 0 without writing when
# an inventory record of one of the entry's tags changed at or after the fill's
# request time, because the page may show the state from before that change.
# KEYS: entry, vary record, index sets..., inventory records (the last ARGV[6] keys);
# ARGV: value, vary JSON, ttl ms, store key, request time, number of inventory records.
_PUT_SCRIPT = """
local records = tonumber(ARGV[6])
local request_time = tonumber(ARGV[5])
for i = #KEYS - records + 1, #KEYS do
  local changed_at = tonumber(redis.call('HGET', KEYS[i], 'changed_at') or '')
  if changed_at and changed_at >= request_time then return 0 end
end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 2, #KEYS - records do
  if i == 2 then
    local left = redis.call('PTTL', KEYS[2])
    redis.call('SET', KEYS[2], ARGV[2], 'PX', math.max(left, ttl))
  else
    redis.call('SADD', KEYS[i], ARGV[4])
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
return 1
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
        keys = [self.entry_key(entry.store_key), self.vary_key(entry.key), f"{self.prefix}p:{entry.key.path}"]
        keys.extend(self.tag_key(tag) for tag in tags)
        keys.extend(self.record_key(tag) for tag in tags)
        args: list[bytes | str | int] = [value, json.dumps(list(entry.vary)), ttl_ms, entry.store_key,
                                         repr(entry.request_time), len(tags)]
        done, written = await self.call("put", lambda: self._put_script(keys=keys, args=args))
        if not done:
            return False
        if not written:
            self.figures["fenced"] += 1
            return False
        self.figures["stores"] += 1
        return True

    async def discard(self, full_key: str) -> bool:
        """Delete one stored variant; return whether Redis did.

        NOTE: other nodes get no message, so a copy in their memory stores lives until it
        expires or is revalidated there.
        """
        done, _ = await self.call("discard", lambda: self.client.unlink(self.entry_key(full_key)))
        return done

    async def purge(self, request: PurgeRequest) -> bool:
        """Apply a purge to Redis and publish it to the other nodes; return whether both worked."""
        done, _ = await self.call("purge", lambda: self._purge(request))
        return done

    async def _purge(self, request: PurgeRequest) -> None:
        full_keys = await self._keys_to_purge(request)
        batches = [full_keys[i:i + PURGE_BATCH] for i in range(0, len(full_keys), PURGE_BATCH)]
        for batch in batches:
            redis_keys = [self.entry_key(full_key) for full_key in batch]
            if request.soft:
                await self._make_stale(redis_keys, request)
            else:
                await self.client.unlink(*redis_keys)
        if not request.soft:
            indexes = [f"{self.prefix}p:{path}" for path in request.paths]
            indexes += [f"{self.prefix}t:{tag}" for tag in request.tags]
            if indexes:
                await self.client.unlink(*indexes)
        await self.client.publish(self.channel, request.encode(self.node))

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

    async def _keys_to_purge(self, request: PurgeRequest) -> list[str]:
        """Return the store keys a purge names, read from the index sets or a key scan."""
        if request.purge_all or request.prefixes:
            # NOTE: prefix purges and purge-all scan the whole keyspace in pages (SCAN), so their
            # time grows with the number of keys in Redis. Path and tag purges read index sets.
            return await self._scan_keys(request.prefixes, purge_all=request.purge_all)
        full_keys: set[str] = set()
        for index in [f"{self.prefix}p:{path}" for path in request.paths] + \
                     [f"{self.prefix}t:{tag}" for tag in request.tags]:
            full_keys.update(_text(member) for member in await self.client.smembers(index))
        return sorted(full_keys)

    async def _scan_keys(self, prefixes: Iterable[str], *, purge_all: bool) -> list[str]:
        marker = self.prefix + "e:"
        found = []
        async for redis_key in self.client.scan_iter(match=_glob_escape(marker) + "*", count=1000):
            full_key = redis_key.decode()[len(marker):]
            path = full_key.split("\x00", 2)[1] if full_key.count("\x00") >= 2 else ""
            if purge_all or any(path.startswith(prefix) for prefix in prefixes):
                found.append(full_key)
        return found

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


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)
