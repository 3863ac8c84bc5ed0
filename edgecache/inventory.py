"""Inventory events: the availability state of each SKU, and fencing of racing fills.

Our policy, in short: only a change of availability state matters, so ordinary sales
that leave a product in stock purge nothing. A change to out_of_stock hard-purges the
SKU's pages and forbids serving them stale, because showing a sold-out product as
available (an oversell) costs more than a slow page. A change back to an available
state soft-purges them. Versions order the events of one SKU: an event whose version
is not newer than the latest one seen is ignored, so a replayed or late event never
brings an old state back. Events without a version apply until the SKU's first
versioned event, and are ignored after it. A fill whose origin request started before the latest
state change of one of its SKUs is stored stale (`InventoryTracker.is_fenced`).

The state machine here is pure bookkeeping; `invalidation.py` acts on the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from .extract import STATES

OUT_OF_STOCK = "out_of_stock"
LOW_STOCK = "low_stock"
IN_STOCK = "in_stock"
# States in which a shopper can order the product.
AVAILABLE_STATES = frozenset({IN_STOCK, LOW_STOCK, "backorder"})
# How many state-change times are kept per SKU, to find the first change newer than a page.
CHANGE_HISTORY = 8


class EventResult(StrEnum):
    """What an inventory event did to its SKU's record."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    OLD_VERSION = "old-version"
    FIRST_SEEN = "first-seen"


class Action(StrEnum):
    """What an event asks of the SKU's pages."""

    NONE = "none"
    SOFT = "soft"
    HARD = "hard"


@dataclass(frozen=True, slots=True)
class InventoryEvent:
    """One stock update for a SKU: an explicit state, or a quantity to map to one."""

    sku: str
    state: str | None = None
    available_quantity: int | None = None
    version: int | None = None
    # The producer's time of the change, epoch seconds; kept for logs only.
    timestamp: float | None = None

    def resolved_state(self, low_stock_threshold: int) -> str:
        if self.state is not None:
            return self.state
        assert self.available_quantity is not None, "an event needs a state or an available_quantity"
        return state_for_quantity(self.available_quantity, low_stock_threshold)


@dataclass(frozen=True, slots=True)
class SkuRecord:
    """The latest known state of a SKU and when its state last changed (edgecache's clock)."""

    sku: str
    state: str
    version: int | None
    # Arrival times of the latest state changes, oldest first, at most CHANGE_HISTORY.
    changes: tuple[float, ...]

    @property
    def changed_at(self) -> float:
        return self.changes[-1]


@dataclass(frozen=True, slots=True)
class Decision:
    result: EventResult
    action: Action
    previous: str | None
    state: str


def state_for_quantity(quantity: int, low_stock_threshold: int) -> str:
    """Map an available quantity to a state: 0 out_of_stock, up to the threshold low_stock."""
    if quantity <= 0:
        return OUT_OF_STOCK
    if quantity <= low_stock_threshold:
        return LOW_STOCK
    return IN_STOCK


def decide(record: SkuRecord | None, state: str, version: int | None) -> Decision:
    """Decide what an event does, given the SKU's record before it.

    An event without a version applies while the SKU's record has no version either,
    because then nothing orders the events. Once a versioned event was applied, an
    event without a version is an old version: it cannot be shown to be newer, and
    applying it could bring back a state that a later versioned event replaced.
    """
    assert state in STATES, f"unknown availability state {state!r}"
    action = Action.HARD if state == OUT_OF_STOCK else Action.SOFT
    if record is None:
        return Decision(EventResult.FIRST_SEEN, action, None, state)
    if record.version is not None and (version is None or version <= record.version):
        return Decision(EventResult.OLD_VERSION, Action.NONE, record.state, record.state)
    if record.state == state:
        return Decision(EventResult.UNCHANGED, Action.NONE, record.state, state)
    return Decision(EventResult.CHANGED, action, record.state, state)


class InventoryTracker:
    """The latest state of every SKU seen in an event, indexed by SKU and by its tag."""

    def __init__(self, *, sku_template: str) -> None:
        self.sku_template = sku_template
        self._records: dict[str, SkuRecord] = {}
        self._by_tag: dict[str, SkuRecord] = {}
        # Arrival time of the newest state change of any SKU: fences are checked only after it.
        self.last_change_at = -math.inf

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"<InventoryTracker skus={len(self._records)} last_change_at={self.last_change_at}>"

    def tag_for(self, sku: str) -> str:
        return self.sku_template.format(sku=sku)

    def state(self, sku: str) -> str | None:
        record = self._records.get(sku)
        return record.state if record is not None else None

    def record(self, sku: str) -> SkuRecord | None:
        return self._records.get(sku)

    def restore(self, record: SkuRecord) -> None:
        """Load a record kept elsewhere (Redis) as the SKU's latest state."""
        self._records[record.sku] = record
        self._by_tag[self.tag_for(record.sku)] = record
        if record.changes:
            self.last_change_at = max(self.last_change_at, record.changed_at)

    def apply(self, event: InventoryEvent, *, low_stock_threshold: int, now: float) -> Decision:
        """Record an event and return what it decided."""
        state = event.resolved_state(low_stock_threshold)
        previous = self._records.get(event.sku)
        decision = decide(previous, state, event.version)
        if decision.result is EventResult.OLD_VERSION:
            return decision
        changes = previous.changes if previous is not None else ()
        if decision.action is not Action.NONE:
            changes = (*changes, now)[-CHANGE_HISTORY:]
            self.last_change_at = max(self.last_change_at, now)
        version = event.version if event.version is not None else (previous.version if previous else None)
        record = SkuRecord(event.sku, state, version, changes)
        self._records[event.sku] = record
        self._by_tag[self.tag_for(event.sku)] = record
        return decision

    def is_fenced(self, tags: frozenset[str], request_time: float) -> bool:
        """Return whether a state change of one of `tags` arrived after a fill's request started."""
        if request_time > self.last_change_at:
            return False
        for tag in tags:
            record = self._by_tag.get(tag)
            if record is not None and record.changes and record.changed_at >= request_time:
                return True
        return False

    def records_for_tags(self, tags: frozenset[str]) -> list[SkuRecord]:
        """Return the records of the SKUs that `tags` name, in SKU order."""
        records = [record for tag in tags if (record := self._by_tag.get(tag)) is not None]
        return sorted(records, key=lambda record: record.sku)

    def has_low_stock(self, tags: frozenset[str]) -> bool:
        """Return whether one of `tags` names a SKU whose latest event is low_stock."""
        for tag in tags:
            record = self._by_tag.get(tag)
            if record is not None and record.state == LOW_STOCK:
                return True
        return False

    def first_change_after(self, tags: frozenset[str], since: float) -> float | None:
        """Return the arrival time of the first state change after `since` among `tags`' SKUs.

        NOTE: only the last CHANGE_HISTORY changes per SKU are kept; when all of them are
        newer than `since`, the oldest kept one is returned, which understates the lag.
        """
        first: float | None = None
        for tag in tags:
            record = self._by_tag.get(tag)
            if record is None:
                continue
            for changed_at in record.changes:
                if changed_at > since:
                    first = changed_at if first is None else min(first, changed_at)
                    break
        return first
