"""Purges as messages: what a purge names, and the pub/sub listener that applies other nodes' purges.

A node that receives a purge applies it to its memory store and to Redis, then
publishes it. Every other node's listener applies it to its own memory store.
A listener that lost its subscription may have missed purges, so after it
subscribes again it drops the whole memory store; Redis then refills it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from ..log import shared_logger
from .health import RateLimitedLog

# Seconds the listener blocks for one message before checking its connection again.
LISTEN_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class PurgeRequest:
    """The entries one purge removes or marks stale; paths and prefixes are canonical."""

    paths: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    purge_all: bool = False
    soft: bool = False
    # Set by inventory events: the entries must not be served stale afterwards.
    forbid_stale: bool = False
    # Epoch seconds at which the purge was made; soft purges make entries stale from then.
    at: float = 0.0

    def encode(self, node: str) -> str:
        return json.dumps({"node": node, "paths": self.paths, "prefixes": self.prefixes, "tags": self.tags,
                           "all": self.purge_all, "soft": self.soft, "forbid_stale": self.forbid_stale,
                           "at": self.at})

    @classmethod
    def decode(cls, data: bytes | str) -> tuple[str, PurgeRequest]:
        """Parse a published purge; return the sending node and the request. Raises ValueError."""
        message: Any = json.loads(data)
        if not isinstance(message, dict):
            raise ValueError("purge message is not a JSON object")
        lists = {name: message.get(name, []) for name in ("paths", "prefixes", "tags")}
        for name, items in lists.items():
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise ValueError(f"purge message field {name!r} is not a list of strings")
        at = message.get("at", 0.0)
        if type(at) not in (int, float):
            raise ValueError("purge message field 'at' is not a number")
        request = cls(paths=tuple(lists["paths"]), prefixes=tuple(lists["prefixes"]), tags=tuple(lists["tags"]),
                      purge_all=message.get("all") is True, soft=message.get("soft") is True,
                      forbid_stale=message.get("forbid_stale") is True, at=float(at))
        return str(message.get("node", "")), request


class InvalidationListener:
    """Subscribes to the invalidation channel and applies purges sent by other nodes."""

    def __init__(self, client: redis.Redis, channel: str, *, node: str, apply: Callable[[PurgeRequest], object],
                 drop_all: Callable[[], object], on_subscribed: Callable[[], object],
                 retry_interval: float) -> None:
        self.client = client
        self.channel = channel
        self.node = node
        self.apply = apply
        self.drop_all = drop_all
        # Called after each successful subscription, because Redis responds again.
        self.on_subscribed = on_subscribed
        self.retry_interval = retry_interval
        self.subscribed = asyncio.Event()
        self.received = 0
        self._log = RateLimitedLog()

    def __repr__(self) -> str:
        return f"<InvalidationListener {self.channel!r} subscribed={self.subscribed.is_set()} received={self.received}>"

    async def run(self) -> None:
        """Listen until cancelled, subscribing again after every connection failure."""
        lost = False
        while True:
            try:
                await self._listen(resync=lost)
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                lost = True
                self._log.warning("invalidation channel %r lost: %r; subscribing again in %.1f s",
                                  self.channel, exc, self.retry_interval)
                await asyncio.sleep(self.retry_interval)

    async def _listen(self, *, resync: bool) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            if resync:
                dropped = self.drop_all()
                shared_logger.warning("invalidation channel %r subscribed again; dropped %s memory entries "
                                      "because purges may have been missed", self.channel, dropped)
            self.subscribed.set()
            self.on_subscribed()
            while True:
                message = await pubsub.get_message(timeout=LISTEN_TIMEOUT)
                if message is not None and message.get("type") == "message":
                    self._handle(message["data"])
        finally:
            await pubsub.aclose()

    def _handle(self, data: bytes) -> None:
        try:
            node, request = PurgeRequest.decode(data)
        except ValueError as exc:
            self._log.warning("ignored an invalid message on %r: %s", self.channel, exc)
            return
        if node == self.node:
            return
        self.received += 1
        self.apply(request)
