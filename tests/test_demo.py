"""Tests of the demo storefront: the inventory service and the origin app."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from edgecache.demo.app import INVENTORY_KEY, create_app
from edgecache.demo.inventory import (
    AvailabilityState,
    Inventory,
    StockChange,
    availability_state,
)

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

START_TIME = 1_700_000_000.0
START_HTTP_DATE = "Tue, 14 Nov 2023 22:13:20 GMT"
SKU = "SKU-00017"
SLUG = "island-sandal-17"
JSON_LD_PATTERN = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)
BUY_BUTTON_PATTERN = re.compile(
    r'<button class="buy"[^>]*data-sku="([^"]+)" data-availability="([^"]+)"'
)
CARD_PATTERN = re.compile(r'<li class="card" data-sku="([^"]+)" data-availability="([^"]+)"')


class FakeClock:
    """A settable clock in epoch seconds."""

    def __init__(self, now: float = START_TIME) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def inventory(clock: FakeClock) -> Inventory:
    return Inventory(product_count=200, seed=1, low_stock_threshold=5, clock=clock)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, inventory: Inventory) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(inventory, change_interval=None))


def json_ld(body: str) -> dict[str, Any]:
    match = JSON_LD_PATTERN.search(body)
    assert match is not None, "product page has no JSON-LD script element"
    document: dict[str, Any] = json.loads(match.group(1))
    return document


# Inventory


def test_catalog_same_for_seed() -> None:
    first = Inventory(seed=1)
    second = Inventory(seed=1)

    assert first.slugs() == second.slugs()
    assert first.products() == second.products()
    assert [first.truth(p.sku)["available_quantity"] for p in first.products()] == [
        second.truth(p.sku)["available_quantity"] for p in second.products()
    ]


def test_catalog_differs_by_seed() -> None:
    assert Inventory(seed=1).slugs() != Inventory(seed=2).slugs()


def test_catalog_product_identifiers(inventory: Inventory) -> None:
    product = inventory.product_by_sku(SKU)

    assert product is not None
    assert product.slug == SLUG
    assert product.name == "Island Sandal"
    assert product.category == "shoes"
    assert product.price_cents == 7200
    assert str(product.price) == "72"
    assert inventory.product_by_slug(SLUG) is product
    assert len(inventory) == 200
    assert inventory.slugs()[16] == SLUG


def test_catalog_categories(inventory: Inventory) -> None:
    categories = inventory.categories()

    assert categories == ["bags", "hats", "jackets", "shoes", "socks", "watches"]
    assert sum(len(inventory.products_in(name)) for name in categories) == 200
    assert inventory.products_in("shoes")[0].sku == "SKU-00005"
    assert inventory.products_in("no-such-category") == []


def test_unknown_lookups_return_none(inventory: Inventory) -> None:
    assert inventory.product_by_slug("no-such-product-1") is None
    assert inventory.product_by_sku("SKU-99999") is None


@pytest.mark.parametrize(
    ("quantity", "backorderable", "expected"),
    [
        (0, False, AvailabilityState.OUT_OF_STOCK),
        (0, True, AvailabilityState.BACKORDER),
        (1, False, AvailabilityState.LOW_STOCK),
        (5, False, AvailabilityState.LOW_STOCK),
        (5, True, AvailabilityState.LOW_STOCK),
        (6, False, AvailabilityState.IN_STOCK),
        (500, False, AvailabilityState.IN_STOCK),
    ],
)
def test_availability_state_table(
    quantity: int, backorderable: bool, expected: AvailabilityState
) -> None:
    assert availability_state(quantity, 5, backorderable=backorderable) is expected


def test_truth_initial_values(inventory: Inventory) -> None:
    assert inventory.truth(SKU) == {
        "sku": SKU,
        "available_quantity": 19,
        "state": "in_stock",
        "version": 1,
        "timestamp": START_TIME,
    }


def test_truth_unknown_sku_raises(inventory: Inventory) -> None:
    with pytest.raises(KeyError, match="SKU-99999"):
        inventory.truth("SKU-99999")


def test_set_quantity_increments_version(inventory: Inventory, clock: FakeClock) -> None:
    clock.now = START_TIME + 10
    first = inventory.set_quantity(SKU, 3)
    second = inventory.set_quantity(SKU, 3)

    assert first.version == 2
    assert second.version == 3
    assert first.state is AvailabilityState.LOW_STOCK
    assert second.previous_state is AvailabilityState.LOW_STOCK
    assert inventory.truth(SKU) == {
        "sku": SKU,
        "available_quantity": 3,
        "state": "low_stock",
        "version": 3,
        "timestamp": START_TIME + 10,
    }


def test_set_quantity_rejects_negative(inventory: Inventory) -> None:
    with pytest.raises(ValueError, match="got -1"):
        inventory.set_quantity(SKU, -1)
    assert inventory.truth(SKU)["version"] == 1


def test_timestamp_never_decreases(inventory: Inventory, clock: FakeClock) -> None:
    clock.now = START_TIME - 100

    change = inventory.set_quantity(SKU, 4)

    assert change.timestamp == START_TIME


def test_set_backorderable_state(inventory: Inventory) -> None:
    inventory.set_quantity(SKU, 0)

    change = inventory.set_backorderable(SKU, True)

    assert change.state is AvailabilityState.BACKORDER
    assert change.previous_state is AvailabilityState.OUT_OF_STOCK
    assert change.version == 3
    assert inventory.set_backorderable(SKU, False).state is AvailabilityState.OUT_OF_STOCK


def step_changes(seed: int, count: int) -> list[tuple[str, int, str, int]]:
    inventory = Inventory(seed=1, clock=FakeClock())
    rng = random.Random(seed)
    changes = [inventory.step(rng) for _ in range(count)]
    return [(c.sku, c.available_quantity, c.state.value, c.version) for c in changes]


def test_step_same_for_seed() -> None:
    assert step_changes(seed=7, count=100) == step_changes(seed=7, count=100)


def test_step_differs_by_seed() -> None:
    assert step_changes(seed=7, count=100) != step_changes(seed=8, count=100)


def test_step_changes_valid(inventory: Inventory) -> None:
    rng = random.Random(3)
    kinds: set[str] = set()
    latest = {product.sku: inventory.stock(product.sku) for product in inventory.products()}
    for _ in range(3000):
        change = inventory.step(rng)
        previous = latest[change.sku]
        latest[change.sku] = change

        assert change.version == previous.version + 1
        assert change.previous_state is previous.state
        assert change.state is availability_state(change.available_quantity, 5)
        if previous.available_quantity == 0:
            assert 10 <= change.available_quantity <= 50
            kinds.add("restock")
        elif change.available_quantity == 0:
            kinds.add("sell-out")
        else:
            assert previous.available_quantity - change.available_quantity in (1, 2)
            kinds.add("sale")

    assert kinds == {"restock", "sell-out", "sale"}


def test_subscribe_receives_changes(inventory: Inventory) -> None:
    received: list[StockChange] = []
    inventory.subscribe(received.append)

    inventory.set_quantity(SKU, 0)
    inventory.step(random.Random(1))

    assert len(received) == 2
    assert received[0].sku == SKU
    assert received[0].available_quantity == 0
    assert received[0].state is AvailabilityState.OUT_OF_STOCK
    assert received[0].version == 2
    assert received[0].timestamp == START_TIME
    assert received[1] == inventory.stock(received[1].sku)


def test_unsubscribe_stops_changes(inventory: Inventory) -> None:
    received: list[StockChange] = []
    unsubscribe = inventory.subscribe(received.append)

    unsubscribe()
    inventory.set_quantity(SKU, 0)

    assert received == []


def test_failing_listener_isolated(inventory: Inventory) -> None:
    received: list[StockChange] = []

    def fail(change: StockChange) -> None:
        raise RuntimeError("listener broke")

    inventory.subscribe(fail)
    inventory.subscribe(received.append)
    change = inventory.set_quantity(SKU, 2)

    assert received == [change]


async def test_run_changes_stops_on_event(inventory: Inventory) -> None:
    stop = asyncio.Event()
    received: list[StockChange] = []

    def record(change: StockChange) -> None:
        received.append(change)
        if len(received) == 3:
            stop.set()

    inventory.subscribe(record)
    await asyncio.wait_for(inventory.run_changes(0.001, seed=7, stop=stop), timeout=5)

    assert [(c.sku, c.available_quantity, c.state.value, c.version) for c in received] == (
        step_changes(seed=7, count=3)
    )


async def test_run_changes_rejects_zero_interval(inventory: Inventory) -> None:
    with pytest.raises(ValueError, match="got 0"):
        await inventory.run_changes(0, seed=1)


# Origin app: pages


@pytest.mark.parametrize(
    ("quantity", "state", "schema_availability"),
    [
        (0, "out_of_stock", "https://schema.org/OutOfStock"),
        (3, "low_stock", "https://schema.org/LimitedAvailability"),
        (20, "in_stock", "https://schema.org/InStock"),
    ],
)
async def test_product_page_availability(
    client: TestClient[Any, Any],
    inventory: Inventory,
    quantity: int,
    state: str,
    schema_availability: str,
) -> None:
    inventory.set_quantity(SKU, quantity)

    response = await client.get(f"/{SLUG}/p")
    body = await response.text()
    document = json_ld(body)

    assert response.status == 200
    assert document["@context"] == "https://schema.org"
    assert document["@type"] == "Product"
    assert document["sku"] == SKU
    assert document["name"] == "Island Sandal"
    assert document["offers"]["@type"] == "Offer"
    assert document["offers"]["price"] == "72.00"
    assert document["offers"]["priceCurrency"] == "USD"
    assert document["offers"]["availability"] == schema_availability
    assert BUY_BUTTON_PATTERN.findall(body) == [(SKU, state)]


async def test_product_page_backorder(client: TestClient[Any, Any], inventory: Inventory) -> None:
    inventory.set_quantity(SKU, 0)
    inventory.set_backorderable(SKU, True)

    body = await (await client.get(f"/{SLUG}/p")).text()

    assert json_ld(body)["offers"]["availability"] == "https://schema.org/BackOrder"
    assert BUY_BUTTON_PATTERN.findall(body) == [(SKU, "backorder")]


async def test_product_page_low_stock_words(
    client: TestClient[Any, Any], inventory: Inventory
) -> None:
    inventory.set_quantity(SKU, 3)

    body = await (await client.get(f"/{SLUG}/p")).text()

    assert '<p class="availability low_stock">Only 3 left</p>' in body


async def test_unknown_slug_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/no-such-product-1/p")

    assert response.status == 404
    assert response.content_type == "text/html"
    assert "<h1>Not found</h1>" in await response.text()


async def test_category_lists_skus(client: TestClient[Any, Any], inventory: Inventory) -> None:
    inventory.set_quantity(SKU, 0)
    expected = [
        (product.sku, inventory.stock(product.sku).state.value)
        for product in inventory.products_in("shoes")
    ]

    response = await client.get("/c/shoes")

    assert response.status == 200
    assert CARD_PATTERN.findall(await response.text()) == expected
    assert (SKU, "out_of_stock") in expected


async def test_unknown_category_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/c/no-such-category")

    assert response.status == 404


async def test_home_links_categories(client: TestClient[Any, Any]) -> None:
    response = await client.get("/")
    body = await response.text()

    assert response.status == 200
    assert '<a href="/c/shoes">Shoes</a>' in body
    assert '<a href="/summit-duffel-1/p">Summit Duffel</a>' in body


async def test_default_no_cache_control(client: TestClient[Any, Any]) -> None:
    product = await client.get(f"/{SLUG}/p")
    category = await client.get("/c/shoes")

    assert "Cache-Control" not in product.headers
    assert "Cache-Control" not in category.headers


async def test_cache_control_option(aiohttp_client: ClientFactory, inventory: Inventory) -> None:
    app = create_app(inventory, change_interval=None, cache_control="public, max-age=30")
    client = await aiohttp_client(app)

    product = await client.get(f"/{SLUG}/p")
    category = await client.get("/c/shoes")

    assert product.headers["Cache-Control"] == "public, max-age=30"
    assert category.headers["Cache-Control"] == "public, max-age=30"


async def test_last_modified_from_stock(
    client: TestClient[Any, Any], inventory: Inventory, clock: FakeClock
) -> None:
    clock.now = START_TIME + 3600
    inventory.set_quantity(SKU, 8)

    product = await client.get(f"/{SLUG}/p")
    category = await client.get("/c/shoes")
    other_category = await client.get("/c/bags")

    assert product.headers["Last-Modified"] == "Tue, 14 Nov 2023 23:13:20 GMT"
    assert category.headers["Last-Modified"] == "Tue, 14 Nov 2023 23:13:20 GMT"
    assert other_category.headers["Last-Modified"] == START_HTTP_DATE


async def test_if_none_match_304(client: TestClient[Any, Any]) -> None:
    first = await client.get(f"/{SLUG}/p")
    etag = first.headers["ETag"]

    second = await client.get(f"/{SLUG}/p", headers={"If-None-Match": etag})

    assert re.fullmatch(r'"[0-9a-f]{24}"', etag)
    assert second.status == 304
    assert second.headers["ETag"] == etag
    assert await second.read() == b""


async def test_etag_changes_with_state(client: TestClient[Any, Any], inventory: Inventory) -> None:
    etag = (await client.get(f"/{SLUG}/p")).headers["ETag"]
    inventory.set_quantity(SKU, 0)

    response = await client.get(f"/{SLUG}/p", headers={"If-None-Match": etag})

    assert response.status == 200
    assert response.headers["ETag"] != etag


async def test_etag_stable_across_renders(client: TestClient[Any, Any]) -> None:
    first = await client.get("/c/shoes")
    second = await client.get("/c/shoes")

    assert first.headers["ETag"] == second.headers["ETag"]
    assert first.headers["X-Demo-Rendered-At"] != second.headers["X-Demo-Rendered-At"]


async def test_if_modified_since_304(client: TestClient[Any, Any]) -> None:
    response = await client.get(f"/{SLUG}/p", headers={"If-Modified-Since": START_HTTP_DATE})

    assert response.status == 304


async def test_if_modified_since_older_200(client: TestClient[Any, Any]) -> None:
    older = "Tue, 14 Nov 2023 22:13:19 GMT"

    response = await client.get(f"/{SLUG}/p", headers={"If-Modified-Since": older})

    assert response.status == 200


@pytest.mark.parametrize("page_bytes", [2_000, 60_000])
async def test_page_bytes_padding(
    aiohttp_client: ClientFactory, inventory: Inventory, page_bytes: int
) -> None:
    app = create_app(inventory, change_interval=None, page_bytes=page_bytes)
    client = await aiohttp_client(app)

    body = await (await client.get(f"/{SLUG}/p")).read()

    assert abs(len(body) - page_bytes) <= page_bytes * 0.05


async def test_page_padding_deterministic(
    aiohttp_client: ClientFactory, inventory: Inventory
) -> None:
    first = await aiohttp_client(create_app(inventory, change_interval=None, page_bytes=60_000))
    second = await aiohttp_client(create_app(inventory, change_interval=None, page_bytes=60_000))

    first_response = await first.get(f"/{SLUG}/p")
    second_response = await second.get(f"/{SLUG}/p")

    assert await first_response.read() == await second_response.read()
    assert first_response.headers["ETag"] == second_response.headers["ETag"]


async def test_surrogate_keys_product(aiohttp_client: ClientFactory, inventory: Inventory) -> None:
    client = await aiohttp_client(create_app(inventory, change_interval=None, surrogate_keys=True))

    response = await client.get(f"/{SLUG}/p")

    assert response.headers["Surrogate-Key"] == f"sku:{SKU} product:{SLUG}"


async def test_surrogate_keys_category(aiohttp_client: ClientFactory, inventory: Inventory) -> None:
    client = await aiohttp_client(create_app(inventory, change_interval=None, surrogate_keys=True))
    expected = " ".join(
        ["category:shoes", *(f"sku:{product.sku}" for product in inventory.products_in("shoes"))]
    )

    response = await client.get("/c/shoes")

    assert response.headers["Surrogate-Key"] == expected


async def test_surrogate_keys_off_by_default(client: TestClient[Any, Any]) -> None:
    response = await client.get(f"/{SLUG}/p")

    assert "Surrogate-Key" not in response.headers


# Origin app: static files, API and counters


@pytest.mark.parametrize(
    ("name", "content_type"), [("style.css", "text/css"), ("app.js", "text/javascript")]
)
async def test_static_headers(client: TestClient[Any, Any], name: str, content_type: str) -> None:
    response = await client.get(f"/static/{name}")

    assert response.status == 200
    assert response.content_type == content_type
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    assert re.fullmatch(r'"[0-9a-f]{24}"', response.headers["ETag"])


async def test_static_if_none_match_304(client: TestClient[Any, Any]) -> None:
    etag = (await client.get("/static/style.css")).headers["ETag"]

    response = await client.get("/static/style.css", headers={"If-None-Match": f"W/{etag}"})

    assert response.status == 304


async def test_static_unknown_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/static/missing.css")

    assert response.status == 404


async def test_api_truth_exact(client: TestClient[Any, Any], inventory: Inventory) -> None:
    inventory.set_quantity(SKU, 3)

    response = await client.get(f"/api/sku/{SKU}")

    assert response.status == 200
    assert await response.json() == {
        "sku": SKU,
        "available_quantity": 3,
        "state": "low_stock",
        "version": 2,
        "timestamp": START_TIME,
    }


async def test_api_unknown_sku_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/sku/SKU-99999")

    assert response.status == 404
    assert (await response.json())["error"].startswith("unknown SKU 'SKU-99999'")


async def test_api_post_sets_quantity(client: TestClient[Any, Any], inventory: Inventory) -> None:
    response = await client.post(f"/api/sku/{SKU}", json={"available_quantity": 0})

    assert response.status == 200
    assert await response.json() == {
        "sku": SKU,
        "available_quantity": 0,
        "state": "out_of_stock",
        "version": 2,
        "timestamp": START_TIME,
    }
    assert inventory.truth(SKU)["available_quantity"] == 0


@pytest.mark.parametrize(
    "payload",
    [b'{"available_quantity": -1}', b'{"available_quantity": "4"}', b'{"available_quantity": true}',
     b"[4]", b"not json"],
)
async def test_api_post_rejects_invalid(
    client: TestClient[Any, Any], inventory: Inventory, payload: bytes
) -> None:
    response = await client.post(f"/api/sku/{SKU}", data=payload)

    assert response.status == 400
    assert inventory.truth(SKU)["version"] == 1


async def test_api_post_unknown_sku_404(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/sku/SKU-99999", json={"available_quantity": 1})

    assert response.status == 404


async def test_rendered_count(client: TestClient[Any, Any]) -> None:
    await client.get(f"/{SLUG}/p")
    await client.get("/c/shoes")
    await client.get("/no-such-product-1/p")
    await client.get("/static/style.css")
    await client.get(f"/api/sku/{SKU}")

    response = await client.get("/_demo/requests")

    assert await response.json() == {"count": 3}


async def test_rendered_at_header(client: TestClient[Any, Any]) -> None:
    response = await client.get(f"/{SLUG}/p")

    assert float(response.headers["X-Demo-Rendered-At"]) > START_TIME


async def test_app_stores_inventory(inventory: Inventory) -> None:
    app = create_app(inventory, change_interval=None)

    assert app[INVENTORY_KEY] is inventory


async def test_app_runs_changes(aiohttp_client: ClientFactory, inventory: Inventory) -> None:
    changed = asyncio.Event()
    inventory.subscribe(lambda change: changed.set())

    await aiohttp_client(create_app(inventory, change_interval=0.001))

    await asyncio.wait_for(changed.wait(), timeout=5)


async def test_app_stops_changes_on_cleanup(inventory: Inventory) -> None:
    changed = asyncio.Event()
    inventory.subscribe(lambda change: changed.set())
    runner = web.AppRunner(create_app(inventory, change_interval=0.001))
    await runner.setup()
    await asyncio.wait_for(changed.wait(), timeout=5)

    await runner.cleanup()

    task_names = {task.get_name() for task in asyncio.all_tasks()}
    assert "edgecache-demo-inventory-changes" not in task_names


def test_create_app_rejects_bad_interval() -> None:
    with pytest.raises(ValueError, match="change_interval"):
        create_app(change_interval=0)
