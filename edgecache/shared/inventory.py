"""Inventory state in Redis: one record per SKU, so that every node acts on an event once.

A node decides an inventory event against the SKU's record in Redis, not against
its own memory. The first node to apply a version purges the SKU's pages in Redis,
writes the new record and publishes it. A node that gets the same or an older
version later finds it in Redis and does nothing there. Other nodes adopt the
published records (see `InventoryMessage`), which purges their memory copies.

The record is written in a WATCH/MULTI transaction after the Redis purges, so a
node that fails half-way leaves the old record and a retried event acts again.
Each record lives at `i:<tag>` (after `cache.shared_key_prefix`), where the tag
is the SKU's tag, so that `SharedTier.put` can fence fills by their tags. Records
have no expiry: about 100 bytes per SKU ever seen, and `volatile-lru` never evicts them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import WatchError

from ..entry import Entry
from ..errors import CorruptEntryError
from ..extract import STATES
from ..inventory import Action, Decision, EventResult, InventoryEvent, InventoryTracker, SkuRecord
from ..log import shared_logger
from .invalidation import InventoryMessage
from .tier import SharedTier

# Transactions tried per batch when other nodes change the same records meanwhile.
# NOTE: when every attempt collides, the batch counts as a Redis failure (tier down
# for cache.shared_retry_interval) and the events apply to this node only.
MAX_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class SharedDecisions:
    """The outcome of a batch of events in Redis."""

    # One per event, in order.
    decisions: tuple[Decision, ...]
    # The record of each SKU of the batch after it, as an event that other processes adopt.
    records: tuple[InventoryEvent, ...]
    # Entries purged in Redis (removed, or marked stale).
    purged: int


class SharedInventory:
    """SKU records in Redis, and the Redis purges and messages that follow from them."""

    def __init__(self, tier: SharedTier, *, sku_template: str, low_stock_threshold: int) -> None:
        self.tier = tier
        self.sku_template = sku_template
        self.low_stock_threshold = low_stock_threshold

    def __repr__(self) -> str:
        return f"<SharedInventory {self.tier!r}>"

    def record_key(self, sku: str) -> str:
        return self.tier.record_key(self.sku_template.format(sku=sku))

    async def decide(self, events: Sequence[InventoryEvent], *, now: float) -> SharedDecisions | None:
        """Apply events to the records in Redis, purge there and publish; None when Redis failed."""
        done, decided = await self.tier.call("inventory", lambda: self._decide(events, now))
        return decided if done else None

    async def _decide(self, events: Sequence[InventoryEvent], now: float) -> SharedDecisions:
        skus = list(dict.fromkeys(event.sku for event in events))
        before, tracker, decisions, purged = await self._apply_to_records(events, skus, now)
        # A node whose fill started before the change may have written it between the
        # first pass and the record, when the put script could not fence it yet.
        purged += await self._purge_pages(events, decisions, before, tracker, now, second_pass=True)
        records = tuple(InventoryEvent(record.sku, state=record.state, version=record.version)
                        for record in (tracker.record(sku) for sku in skus) if record is not None)
        changed = {event.sku for event, decision in zip(events, decisions) if decision.action is not Action.NONE}
        if changed:
            message = InventoryMessage(tuple(record for record in records if record.sku in changed), now)
            await self.tier.client.publish(self.tier.channel, message.encode(self.tier.node))
        return SharedDecisions(decisions, records, purged)

    async def _apply_to_records(self, events: Sequence[InventoryEvent], skus: list[str], now: float
                                ) -> tuple[dict[str, SkuRecord], InventoryTracker, tuple[Decision, ...], int]:
        """Decide the events against the records, purge their pages, then write the records.

        Returns the records before, a tracker holding the records after, the decisions
        and the number of entries purged. A record changed by another node meanwhile
        makes the transaction fail, and the whole step runs again.
        """
        keys = [self.record_key(sku) for sku in skus]
        attempt = 0
        async with self.tier.client.pipeline(transaction=True) as transaction:
            while True:
                attempt += 1
                try:
                    await transaction.watch(*keys)
                    before = await self._read(skus, keys)
                    tracker = InventoryTracker(sku_template=self.sku_template)
                    for record in before.values():
                        tracker.restore(record)
                    decisions = tuple(tracker.apply(event, low_stock_threshold=self.low_stock_threshold, now=now)
                                      for event in events)
                    purged = await self._purge_pages(events, decisions, before, tracker, now, second_pass=False)
                    transaction.multi()
                    for sku, key in zip(skus, keys):
                        after = tracker.record(sku)
                        if after is not None and after != before.get(sku):
                            transaction.hset(key, mapping=_fields(after))
                    await transaction.execute()
                    return before, tracker, decisions, purged
                except WatchError:
                    if attempt == MAX_ATTEMPTS:
                        raise

    async def _read(self, skus: list[str], keys: list[str]) -> dict[str, SkuRecord]:
        async with self.tier.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            values = await pipe.execute()
        records = {}
        for sku, key, fields in zip(skus, keys, values):
            if not fields:
                continue
            record = _parse_record(sku, fields)
            if record is None:
                # Counted and logged as an invalid value; the event then counts as the SKU's first.
                self.tier._corrupt(key, CorruptEntryError(f"inventory record {fields!r:.120} is invalid"))
                continue
            records[sku] = record
        return records

    async def _purge_pages(self, events: Sequence[InventoryEvent], decisions: Sequence[Decision],
                           before: dict[str, SkuRecord], tracker: InventoryTracker, now: float, *,
                           second_pass: bool) -> int:
        """Purge the Redis entries of each SKU the batch changed: hard when any of its events was hard.

        The second pass, after the record is written, purges only entries filled before `now`.

        NOTE: Redis copies are purged on every change, without the storm window that
        bounds purges of memory copies (`inventory.storm_interval`).
        """
        hard: dict[str, bool] = {}
        for event, decision in zip(events, decisions):
            if decision.action is not Action.NONE:
                hard[event.sku] = hard.get(event.sku, False) or decision.action is Action.HARD
        purged = 0
        for sku, is_hard in hard.items():
            record = tracker.record(sku)
            assert record is not None, "a SKU with an action has a record"
            keep = _keeper(sku, record.state if sku not in before else None,
                           filled_since=now if second_pass else None, stale_at=now if second_pass and not is_hard else None)
            purged += await self.tier.purge_tag(tracker.tag_for(sku), soft=not is_hard, at=now, keep=keep)
            if shared_logger.isEnabledFor(logging.DEBUG) and not second_pass:
                shared_logger.debug("inventory sku=%s state=%s version=%s purge=%s",
                                    sku, record.state, record.version, "hard" if is_hard else "soft")
        return purged


def _keeper(sku: str, first_state: str | None, *, filled_since: float | None,
            stale_at: float | None) -> Callable[[Entry], bool] | None:
    """Return which entries a purge keeps, or None when it purges every entry of the tag.

    `first_state` is the state of a SKU seen for the first time, so there is no earlier
    state to compare with and pages that already show this one stay. With
    `filled_since`, entries whose origin request started at or after it stay too, and
    with `stale_at`, entries already stale at that time.
    """
    if first_state is None and filled_since is None and stale_at is None:
        return None

    def keep(entry: Entry) -> bool:
        if filled_since is not None and entry.request_time >= filled_since:
            return True
        if stale_at is not None and not entry.is_fresh(stale_at):
            return True
        return first_state is not None and dict(entry.claims).get(sku) == first_state

    return keep


def _fields(record: SkuRecord) -> dict[Any, str]:
    return {
        "sku": record.sku,
        "state": record.state,
        "version": "" if record.version is None else str(record.version),
        "changes": " ".join(repr(at) for at in record.changes),
        # Read by the put script to fence fills; empty when the SKU never changed state.
        "changed_at": repr(record.changed_at) if record.changes else "",
    }


def _parse_record(sku: str, fields: dict[bytes, bytes]) -> SkuRecord | None:
    """Parse a record read from Redis; None when a field is missing or invalid."""
    try:
        state = fields[b"state"].decode()
        version_text = fields[b"version"].decode()
        changes = tuple(float(at) for at in fields[b"changes"].decode().split())
        version = int(version_text) if version_text else None
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    if state not in STATES or fields.get(b"sku", b"").decode(errors="replace") != sku:
        return None
    return SkuRecord(sku, state, version, changes)


def counted(decisions: Sequence[Decision]) -> dict[str, int]:
    """Count decisions by result, for the API response."""
    results = {result.value: 0 for result in EventResult}
    for decision in decisions:
        results[decision.result] += 1
    return results
