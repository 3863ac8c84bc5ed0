"""Purges and inventory changes as messages, and the pub/sub listener that applies other nodes' messages.

A node that receives a purge applies it to its memory store and to Redis, then
publishes it. Every other node's listener applies it to its own memory store.
An inventory event is published the same way, as the SKU records it changed
(`InventoryMessage`); a listener adopts them, which purges its memory copies.
A node that replaced or removed an entry after an origin fetch publishes its
store key (`DiscardMessage`), and every other listener drops its memory copy.
A listener that lost its subscription may have missed messages, so after it
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

from ..extract import STATES
from ..inventory import InventoryEvent
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
        return json.dumps({"type": "purge", "node": node, "paths": self.paths, "prefixes": self.prefixes, "tags": self.tags,
                           "all": self.purge_all, "soft": self.soft, "forbid_stale": self.forbid_stale,
                           "at": self.at})

    @classmethod
    def decode(cls, message: dict[str, Any]) -> PurgeRequest:
        """Build a request from a published purge message. Raises ValueError."""
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
        return request


@dataclass(frozen=True, slots=True)
class InventoryMessage:
    """SKU records changed by inventory events on another node, for listeners to adopt."""

    # Each record as an event with an explicit state and the record's version.
    records: tuple[InventoryEvent, ...]
    # Epoch seconds at which the sending node applied the events.
    at: float

    def encode(self, node: str) -> str:
        return json.dumps({"type": "inventory", "node": node, "at": self.at,
                           "records": [[record.sku, record.state, record.version] for record in self.records]})

    @classmethod
    def decode(cls, message: dict[str, Any]) -> InventoryMessage:
        """Build the message from its published JSON object. Raises ValueError."""
        at = message.get("at")
        if not isinstance(at, (int, float)) or isinstance(at, bool):
            raise ValueError("inventory message field 'at' is not a number")
        items = message.get("records")
        if not isinstance(items, list):
            raise ValueError("inventory message field 'records' is not a list")
        records = []
        for item in items:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and item[1] in STATES
                    and (item[2] is None or type(item[2]) is int)):
                raise ValueError(f"inventory record {item!r:.80} is not [sku, state, version]")
            records.append(InventoryEvent(item[0], state=item[1], version=item[2]))
        return cls(tuple(records), float(at))


@dataclass(frozen=True, slots=True)
class DiscardMessage:
    """Store keys of entries another node replaced; listeners drop their memory copies of them."""

    keys: tuple[str, ...]

    def encode(self, node: str) -> str:
        return json.dumps({"type": "discard", "node": node, "keys": self.keys})

    @classmethod
    def decode(cls, message: dict[str, Any]) -> DiscardMessage:
        """Build the message from its published JSON object. Raises ValueError."""
        keys = message.get("keys")
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise ValueError("discard message field 'keys' is not a list of strings")
        return cls(tuple(keys))


Message = PurgeRequest | InventoryMessage | DiscardMessage


def decode_message(data: bytes | str) -> tuple[str, Message]:
    """Parse a published message; return the sending node and its content. Raises ValueError."""
    message: Any = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("message is not a JSON object")
    node = str(message.get("node", ""))
    if message.get("type") == "inventory":
        return node, InventoryMessage.decode(message)
    if message.get("type") == "discard":
        return node, DiscardMessage.decode(message)
    return node, PurgeRequest.decode(message)


class InvalidationListener:
    """Subscribes to the invalidation channel and applies purges and discards sent by other nodes."""

    def __init__(self, client: redis.Redis, channel: str, *, node: str, apply: Callable[[PurgeRequest], object],
                 adopt: Callable[[InventoryMessage], object], discard: Callable[[DiscardMessage], object],
                 drop_all: Callable[[], object], on_subscribed: Callable[[], object],
                 retry_interval: float) -> None:
        self.client = client
        self.channel = channel
        self.node = node
        self.apply = apply
        self.adopt = adopt
        self.discard = discard
        self.drop_all = drop_all
        # Called after each successful subscription, because Redis responds again.
        self.on_subscribed = on_subscribed
        self.retry_interval = retry_interval
        self.subscribed = asyncio.Event()
        self.received = 0
        # Messages whose purge raised. The listener logs them, at most once per interval, and carries on.
        self.failed = 0
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
            node, content = decode_message(data)
        except ValueError as exc:
            self._log.warning("ignored an invalid message on %r: %s", self.channel, exc)
            return
        if node == self.node:
            return
        self.received += 1
        try:
            if isinstance(content, InventoryMessage):
                self.adopt(content)
            elif isinstance(content, DiscardMessage):
                self.discard(content)
            else:
                self.apply(content)
        except Exception as exc:  # noqa: BLE001 - one failed message must not stop the listener.
            self.failed += 1
            self._log.warning("failed to apply a message from node %s on %r: %r", node, self.channel, exc)
