"""The demo storefront's inventory service: a seeded catalog and its changing stock.

Every SKU carries a version that starts at 1 and grows by one on each change, and the
time of its last change. Listeners registered with `Inventory.subscribe` receive every
change synchronously, which is how edgecache's inventory events are produced in the demo.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

logger = logging.getLogger("edgecache.demo")

# Category name -> (product nouns, min price in dollars, max price in dollars).
CATALOG_CATEGORIES: dict[str, tuple[tuple[str, ...], int, int]] = {
    "shoes": (("Runner", "Sneaker", "Loafer", "Boot", "Sandal"), 40, 180),
    "bags": (("Backpack", "Tote", "Duffel", "Messenger", "Sling"), 25, 220),
    "jackets": (("Parka", "Shell", "Windbreaker", "Fleece", "Puffer"), 60, 350),
    "hats": (("Beanie", "Cap", "Bucket Hat", "Sun Hat", "Visor"), 12, 60),
    "socks": (("Crew Sock", "Ankle Sock", "Hiking Sock", "Wool Sock"), 6, 28),
    "watches": (("Field Watch", "Diver", "Chronograph", "Dress Watch"), 90, 600),
}
NAME_ADJECTIVES = (
    "Trail", "City", "Summit", "Harbor", "Canyon", "Alpine", "Coastal", "Urban",
    "Meadow", "Desert", "Glacier", "Forest", "Island", "Prairie", "Ridge", "Valley",
)
# Bounds of the stock changes that `Inventory.step` makes.
SALE_UNITS = (1, 2)
RESTOCK_UNITS = (10, 50)
SELL_OUT_PROBABILITY = 0.1
# Bounds of the stock a product starts with when it is neither sold out nor low.
INITIAL_MAX_QUANTITY = 60
INITIAL_SOLD_OUT_PROBABILITY = 0.08
INITIAL_LOW_STOCK_PROBABILITY = 0.12


class AvailabilityState(StrEnum):
    """Availability state of a SKU, as shown on pages and in inventory events."""

    IN_STOCK = "in_stock"
    LOW_STOCK = "low_stock"
    OUT_OF_STOCK = "out_of_stock"
    BACKORDER = "backorder"


def availability_state(
    quantity: int, low_stock_threshold: int, *, backorderable: bool = False
) -> AvailabilityState:
    """Map an available quantity to its availability state.

    A quantity of 0 is out_of_stock, or backorder when the SKU accepts backorders.
    1 to `low_stock_threshold` units is low_stock, and more is in_stock.
    """
    if quantity <= 0:
        return AvailabilityState.BACKORDER if backorderable else AvailabilityState.OUT_OF_STOCK
    if quantity <= low_stock_threshold:
        return AvailabilityState.LOW_STOCK
    return AvailabilityState.IN_STOCK


@dataclass(frozen=True, slots=True)
class Product:
    """Catalog facts of one product, which never change after the catalog is built."""

    sku: str
    slug: str
    name: str
    category: str
    price_cents: int
    description: str

    @property
    def price(self) -> Decimal:
        """Price in US dollars."""
        return Decimal(self.price_cents) / 100


@dataclass(frozen=True, slots=True)
class StockChange:
    """Stock level of one SKU after a change.

    The level a SKU starts with is version 1 with `previous_state` None.
    """

    sku: str
    available_quantity: int
    state: AvailabilityState
    version: int
    timestamp: float
    previous_state: AvailabilityState | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready truth: sku, available_quantity, state, version, timestamp."""
        return {
            "sku": self.sku,
            "available_quantity": self.available_quantity,
            "state": self.state.value,
            "version": self.version,
            "timestamp": self.timestamp,
        }


StockListener = Callable[[StockChange], None]


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _build_product(number: int, rng: random.Random) -> Product:
    category = rng.choice(list(CATALOG_CATEGORIES))
    nouns, min_price, max_price = CATALOG_CATEGORIES[category]
    name = f"{rng.choice(NAME_ADJECTIVES)} {rng.choice(nouns)}"
    price_cents = rng.randint(min_price, max_price) * 100 - rng.choice((1, 5, 100))
    description = (
        f"The {name} is part of our {category} range, "
        f"made in small batches and shipped from our own warehouse."
    )
    return Product(
        sku=f"SKU-{number:05d}",
        slug=f"{_slugify(name)}-{number}",
        name=name,
        category=category,
        price_cents=price_cents,
        description=description,
    )


def _initial_quantity(rng: random.Random, low_stock_threshold: int) -> int:
    roll = rng.random()
    if roll < INITIAL_SOLD_OUT_PROBABILITY:
        return 0
    low_stock_limit = INITIAL_SOLD_OUT_PROBABILITY + INITIAL_LOW_STOCK_PROBABILITY
    if roll < low_stock_limit and low_stock_threshold >= 1:
        return rng.randint(1, low_stock_threshold)
    return rng.randint(low_stock_threshold + 1, max(INITIAL_MAX_QUANTITY, low_stock_threshold + 1))


class Inventory:
    """The demo storefront's checkout and inventory service.

    The catalog and the initial stock follow from `seed` alone, so two inventories with
    the same arguments list the same products. Timestamps come from `clock`, in seconds
    since the epoch, and never decrease for a SKU even if the clock steps back.
    """

    def __init__(
        self,
        product_count: int = 200,
        seed: int = 1,
        low_stock_threshold: int = 5,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if product_count < 1:
            raise ValueError(f"product_count must be a positive integer, got {product_count}")
        if low_stock_threshold < 0:
            raise ValueError(
                f"low_stock_threshold must be 0 or more units, got {low_stock_threshold}"
            )
        self.low_stock_threshold = low_stock_threshold
        self._clock = clock
        self._listeners: list[StockListener] = []
        self._listener_failures = 0
        self._backorderable: set[str] = set()
        self._by_sku: dict[str, Product] = {}
        self._by_slug: dict[str, Product] = {}
        self._by_category: dict[str, list[Product]] = {}
        self._stock: dict[str, StockChange] = {}
        self._build_catalog(product_count, seed)
        self._skus = tuple(self._by_sku)
        self._categories = sorted(self._by_category)

    def _build_catalog(self, product_count: int, seed: int) -> None:
        rng = random.Random(seed)
        now = self._clock()
        for number in range(1, product_count + 1):
            product = _build_product(number, rng)
            quantity = _initial_quantity(rng, self.low_stock_threshold)
            self._by_sku[product.sku] = product
            self._by_slug[product.slug] = product
            self._by_category.setdefault(product.category, []).append(product)
            self._stock[product.sku] = StockChange(
                sku=product.sku,
                available_quantity=quantity,
                state=availability_state(quantity, self.low_stock_threshold),
                version=1,
                timestamp=now,
                previous_state=None,
            )

    def __len__(self) -> int:
        return len(self._by_sku)

    def __repr__(self) -> str:
        return (
            f"<Inventory products={len(self)} listeners={len(self._listeners)} "
            f"low_stock_threshold={self.low_stock_threshold}>"
        )

    def product_by_slug(self, slug: str) -> Product | None:
        return self._by_slug.get(slug)

    def product_by_sku(self, sku: str) -> Product | None:
        return self._by_sku.get(sku)

    def products(self) -> list[Product]:
        """Return every product in catalog order, which is SKU order."""
        return list(self._by_sku.values())

    def slugs(self) -> list[str]:
        """Return every product slug in catalog order, for Zipf-ranked request generators."""
        return list(self._by_slug)

    def categories(self) -> list[str]:
        """Return the names of the categories that contain products, sorted."""
        return list(self._categories)

    def products_in(self, category: str) -> list[Product]:
        """Return the products of `category` in catalog order, or [] for an unknown category."""
        return list(self._by_category.get(category, ()))

    def stock(self, sku: str) -> StockChange:
        """Return the current stock level of `sku`, or raise KeyError if the SKU is unknown."""
        try:
            return self._stock[sku]
        except KeyError:
            message = f"unknown SKU {sku!r}, expected a catalog SKU like 'SKU-00001'"
            raise KeyError(message) from None

    def truth(self, sku: str) -> dict[str, Any]:
        """Return the current stock of `sku` as a JSON-ready dict, or raise KeyError."""
        return self.stock(sku).to_dict()

    def set_quantity(self, sku: str, quantity: int) -> StockChange:
        """Set the available quantity of `sku`, notify listeners and return the change.

        Every call is a change with a new version, even when the quantity stays the same.
        Raises KeyError for an unknown SKU and ValueError for a negative quantity.
        """
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise ValueError(f"quantity must be an integer of 0 or more, got {quantity!r}")
        return self._apply(sku, quantity)

    def set_backorderable(self, sku: str, backorderable: bool) -> StockChange:
        """Allow or stop backorders for `sku`, notify listeners and return the change.

        A backorderable SKU at quantity 0 is in the backorder state, not out_of_stock.
        """
        current = self.stock(sku)
        if backorderable:
            self._backorderable.add(sku)
        else:
            self._backorderable.discard(sku)
        return self._apply(sku, current.available_quantity)

    def step(self, rng: random.Random) -> StockChange:
        """Make one random stock change and return it.

        The SKU is drawn uniformly. A sold-out SKU is restocked to 10 to 50 units. Any
        other SKU sells out with probability 0.1, or else sells 1 or 2 units (never
        more than it has). The same `rng` state gives the same change.
        """
        sku = rng.choice(self._skus)
        quantity = self._stock[sku].available_quantity
        if quantity == 0:
            new_quantity = rng.randint(*RESTOCK_UNITS)
        elif rng.random() < SELL_OUT_PROBABILITY:
            new_quantity = 0
        else:
            new_quantity = quantity - min(quantity, rng.randint(*SALE_UNITS))
        return self._apply(sku, new_quantity)

    def subscribe(self, callback: StockListener) -> Callable[[], None]:
        """Call `callback` with every later change and return a function that unsubscribes it.

        Callbacks run synchronously inside the changing call, in subscription order.
        An exception in a callback is logged and does not reach the caller.
        """
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def _apply(self, sku: str, quantity: int) -> StockChange:
        previous = self.stock(sku)
        change = StockChange(
            sku=sku,
            available_quantity=quantity,
            state=availability_state(
                quantity, self.low_stock_threshold, backorderable=sku in self._backorderable
            ),
            version=previous.version + 1,
            timestamp=max(self._clock(), previous.timestamp),
            previous_state=previous.state,
        )
        self._stock[sku] = change
        logger.debug(
            "inventory change sku=%s quantity=%d state=%s version=%d",
            sku, quantity, change.state.value, change.version,
        )
        self._notify(change)
        return change

    def _notify(self, change: StockChange) -> None:
        # Iterate over a copy so that a callback may unsubscribe itself.
        for callback in list(self._listeners):
            try:
                callback(change)
            except Exception:
                self._listener_failures += 1
                # Log the first failure and then every 100th, so a broken listener
                # cannot flood the log at high change rates.
                if self._listener_failures % 100 == 1:
                    logger.exception(
                        "inventory listener %r failed on sku=%s version=%d (failures=%d)",
                        callback, change.sku, change.version, self._listener_failures,
                    )

    async def run_changes(
        self, interval: float, *, seed: int, stop: asyncio.Event | None = None
    ) -> None:
        """Make one `step` every `interval` seconds until `stop` is set or the task is cancelled.

        The steps draw from `random.Random(seed)`, so a seed gives the same sequence of
        SKUs and quantities. Setting `stop` ends the loop without waiting for the
        current interval to run out.
        """
        if interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval}")
        rng = random.Random(seed)
        stop_event = stop if stop is not None else asyncio.Event()
        steps = 0
        logger.info("inventory changes started interval=%.3fs seed=%d", interval, seed)
        try:
            while not stop_event.is_set():
                try:
                    await asyncio.wait_for(stop_event.wait(), timeout=interval)
                except TimeoutError:
                    self.step(rng)
                    steps += 1
        finally:
            logger.info("inventory changes stopped steps=%d", steps)
