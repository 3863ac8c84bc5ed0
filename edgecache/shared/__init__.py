"""The shared tier in Redis: entries, purges, inventory state and fetch locks shared by several nodes.

`SharedCache` bundles the parts one edgecache process needs: the tier (codec and
commands), the inventory records, the cross-node fetch lock and the listener that
applies other nodes' purges, discards and inventory changes to the memory store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from ..config import CacheSettings
from .invalidation import DiscardMessage, InvalidationListener, InventoryMessage, PurgeRequest
from .inventory import SharedDecisions, SharedInventory
from .lock import FetchLock, LockResult
from .tier import SharedTier

__all__ = ["DiscardMessage", "FetchLock", "InventoryMessage", "LockResult", "PurgeRequest", "SharedCache", "SharedDecisions",
           "SharedInventory", "SharedTier"]

# Seconds start() waits for the first subscription; past it, edgecache starts anyway
# and the listener keeps trying in the background.
SUBSCRIBE_WAIT = 1.0


class SharedCache:
    """The shared tier, its fetch lock and its invalidation listener."""

    def __init__(self, settings: CacheSettings, *, apply: Callable[[PurgeRequest], object],
                 adopt: Callable[[InventoryMessage], object], discard: Callable[[DiscardMessage], object],
                 drop_all: Callable[[], object], sku_template: str, low_stock_threshold: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.tier = SharedTier(settings, clock=clock)
        self.inventory = SharedInventory(self.tier, sku_template=sku_template, low_stock_threshold=low_stock_threshold)
        self.lock = FetchLock(self.tier)
        self.listener = InvalidationListener(self.tier.subscriber_client, self.tier.channel, node=self.tier.node,
                                             apply=apply, adopt=adopt, discard=discard, drop_all=drop_all,
                                             on_subscribed=self.tier.health.succeeded,
                                             retry_interval=settings.shared_retry_interval)
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<SharedCache {self.tier!r} {self.listener!r}>"

    @property
    def state(self) -> str:
        """Return "up" when Redis responds and this node receives other nodes' purges, else "down"."""
        return "up" if self.tier.health.up and self.listener.subscribed.is_set() else "down"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.listener.run(), name="edgecache-invalidation-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listener.subscribed.wait(), SUBSCRIBE_WAIT)
        await self.tier.ping()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.tier.close()

    def snapshot(self) -> dict[str, Any]:
        return {**self.tier.snapshot(), "state": self.state, "subscribed": self.listener.subscribed.is_set(),
                "invalidations_received": self.listener.received, "invalidations_failed": self.listener.failed}
