"""POST /events/inventory: state transitions, direction of purges, versions, storms, validation."""

from __future__ import annotations

import pytest

from conftest import admin_url, proxy_url
from edgecache.inventory import Action, EventResult, SkuRecord, decide, state_for_quantity
from inventory_pages import TOKEN, Clock, bearer, html_headers, product_page

SWR = "max-age=60, stale-while-revalidate=30"
NO_REFRESH = {"admin": {"token": TOKEN}, "inventory": {"refresh_on_event": False, "storm_interval": 0.0}}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cache(origin, make_edgecache, clock):
    origin.script("/a/p", headers=html_headers(SWR), body=product_page("A", "InStock"))
    return await make_edgecache(origin.url, NO_REFRESH, clock=clock)


async def get(client, edgecache, path: str) -> str:
    async with client.get(proxy_url(edgecache, path)) as response:
        await response.read()
        return response.headers["X-Cache"]


async def send(client, edgecache, body, token: str = TOKEN) -> tuple[int, dict]:
    async with client.post(admin_url(edgecache, "/events/inventory"), json=body, headers=bearer(token)) as response:
        return response.status, await response.json()


def answer(**counts: int) -> dict[str, int]:
    base = {"received": 1, "changed": 0, "unchanged": 0, "old-version": 0, "first-seen": 0, "purged": 0,
            "deferred": 0}
    return {**base, **counts}


@pytest.mark.parametrize(("quantity", "state"), [(0, "out_of_stock"), (1, "low_stock"), (5, "low_stock"),
                                                 (6, "in_stock")])
def test_quantity_to_state(quantity: int, state: str) -> None:
    assert state_for_quantity(quantity, 5) == state


@pytest.mark.parametrize(("before", "after", "result", "action"), [
    ("in_stock", "in_stock", EventResult.UNCHANGED, Action.NONE),
    ("in_stock", "low_stock", EventResult.CHANGED, Action.SOFT),
    ("low_stock", "out_of_stock", EventResult.CHANGED, Action.HARD),
    ("out_of_stock", "in_stock", EventResult.CHANGED, Action.SOFT),
    ("out_of_stock", "backorder", EventResult.CHANGED, Action.SOFT),
])
def test_decide_table(before: str, after: str, result: EventResult, action: Action) -> None:
    decision = decide(SkuRecord("A", before, 3, (1.0,)), after, 4)
    assert decision.result is result
    assert decision.action is action


def test_decide_old_version_ignored() -> None:
    decision = decide(SkuRecord("A", "in_stock", 7, (1.0,)), "out_of_stock", 7)
    assert decision.result is EventResult.OLD_VERSION
    assert decision.action is Action.NONE


@pytest.mark.parametrize(("record_version", "version", "result"), [
    (None, None, EventResult.CHANGED),
    (None, 1, EventResult.CHANGED),
    (7, 8, EventResult.CHANGED),
    (7, 7, EventResult.OLD_VERSION),
    (7, None, EventResult.OLD_VERSION),
])
def test_decide_version_table(record_version: int | None, version: int | None, result: EventResult) -> None:
    decision = decide(SkuRecord("A", "in_stock", record_version, (1.0,)), "out_of_stock", version)
    assert decision.result is result


async def test_unversioned_after_versioned_ignored(cache, client) -> None:
    await get(client, cache, "/a/p")
    await send(client, cache, {"sku": "A", "state": "in_stock", "version": 5})
    status, body = await send(client, cache, {"sku": "A", "state": "out_of_stock"})
    assert status == 200
    assert body == answer(**{"old-version": 1})
    assert cache.tracker.state("A") == "in_stock"
    assert await get(client, cache, "/a/p") == "HIT"


async def test_unversioned_events_apply_in_order(cache, client) -> None:
    await get(client, cache, "/a/p")
    await send(client, cache, {"sku": "A", "state": "in_stock"})
    status, body = await send(client, cache, {"sku": "A", "state": "out_of_stock"})
    assert status == 200
    assert body == answer(changed=1, purged=1)
    assert cache.tracker.state("A") == "out_of_stock"
    status, body = await send(client, cache, {"sku": "A", "state": "in_stock", "version": 1})
    assert body == answer(changed=1)
    assert cache.tracker.state("A") == "in_stock"


async def test_first_event_matching_page_keeps_it(cache, client) -> None:
    await get(client, cache, "/a/p")
    status, body = await send(client, cache, {"sku": "A", "available_quantity": 40, "version": 1})
    assert status == 200
    assert body == answer(**{"first-seen": 1})
    assert await get(client, cache, "/a/p") == "HIT"


async def test_sale_in_bucket_no_purge(origin, cache, client) -> None:
    await get(client, cache, "/a/p")
    await send(client, cache, {"sku": "A", "available_quantity": 40, "version": 1})
    status, body = await send(client, cache, {"sku": "A", "available_quantity": 39, "version": 2})
    assert body == answer(unchanged=1)
    assert await get(client, cache, "/a/p") == "HIT"
    assert origin.count("/a/p") == 1


async def test_sell_out_hard_purges(origin, cache, client) -> None:
    await get(client, cache, "/a/p")
    await send(client, cache, {"sku": "A", "available_quantity": 40, "version": 1})
    status, body = await send(client, cache, {"sku": "A", "available_quantity": 0, "version": 2})
    assert body == answer(changed=1, purged=1)
    assert len(cache.store) == 0
    assert await get(client, cache, "/a/p") == "MISS"


async def test_restock_soft_purges(origin, cache, client, clock) -> None:
    origin.script("/a/p", headers=html_headers(SWR), body=product_page("A", "OutOfStock"))
    await get(client, cache, "/a/p")
    await send(client, cache, {"sku": "A", "state": "out_of_stock", "version": 1})
    clock.advance(1)
    status, body = await send(client, cache, {"sku": "A", "state": "in_stock", "version": 2})
    assert body == answer(changed=1, purged=1)
    assert await get(client, cache, "/a/p") == "STALE"


async def test_low_stock_soft_purges(cache, client) -> None:
    await get(client, cache, "/a/p")
    await send(client, cache, [{"sku": "A", "available_quantity": 40, "version": 1},
                               {"sku": "A", "available_quantity": 3, "version": 2}])
    assert await get(client, cache, "/a/p") == "STALE"


async def test_older_version_ignored(cache, client) -> None:
    await get(client, cache, "/a/p")
    await send(client, cache, {"sku": "A", "available_quantity": 40, "version": 9})
    status, body = await send(client, cache, {"sku": "A", "available_quantity": 0, "version": 8})
    assert body == answer(**{"old-version": 1})
    assert cache.tracker.state("A") == "in_stock"
    assert await get(client, cache, "/a/p") == "HIT"


async def test_batch_answer_counts(cache, client) -> None:
    await get(client, cache, "/a/p")
    status, body = await send(client, cache, [
        {"sku": "A", "available_quantity": 40, "version": 1, "timestamp": "2024-05-01T12:00:00Z"},
        {"sku": "A", "available_quantity": 30, "version": 2},
        {"sku": "A", "available_quantity": 0, "version": 3},
        {"sku": "A", "available_quantity": 9, "version": 2},
    ])
    assert status == 200
    assert body == {"received": 4, "changed": 1, "unchanged": 1, "old-version": 1, "first-seen": 1, "purged": 1,
                    "deferred": 0}


async def test_event_purges_category_tag(origin, cache, client) -> None:
    origin.script("/c/bags", headers=html_headers(SWR, **{"Surrogate-Key": "category:bags sku:A sku:B"}),
                  body=b"<ul><li data-sku='A'>A</li></ul>")
    await get(client, cache, "/c/bags")
    await send(client, cache, {"sku": "B", "available_quantity": 10, "version": 1})
    status, body = await send(client, cache, {"sku": "B", "available_quantity": 0, "version": 2})
    assert body == answer(changed=1, purged=1)
    assert await get(client, cache, "/c/bags") == "MISS"


async def test_storm_defers_second_purge(origin, make_edgecache, client, clock) -> None:
    origin.script("/a/p", headers=html_headers(SWR), body=product_page("A", "InStock"))
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN},
                                                  "inventory": {"refresh_on_event": False, "storm_interval": 10.0,
                                                                "storm_flip_purges": 1}},
                                     clock=clock)
    await get(client, edgecache, "/a/p")
    await send(client, edgecache, [{"sku": "A", "available_quantity": 40, "version": 1},
                                   {"sku": "A", "available_quantity": 3, "version": 2}])
    clock.advance(1)
    await get(client, edgecache, "/a/p")  # Stale: refreshed in the background.
    await edgecache.proxy.close()
    clock.advance(1)
    status, body = await send(client, edgecache, {"sku": "A", "available_quantity": 0, "version": 3})
    assert body == answer(changed=1, deferred=1)
    assert edgecache.invalidator.pending == 1
    clock.advance(8)
    assert edgecache.invalidator.flush_due(clock()) == 1
    assert len(edgecache.store) == 0
    assert origin.count("/a/p") == 2


async def test_events_need_token(cache, client) -> None:
    status, body = await send(client, cache, {"sku": "A", "state": "in_stock"}, token="wrong")
    assert status == 401


async def test_events_403_without_token(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url)
    status, body = await send(client, edgecache, {"sku": "A", "state": "in_stock"})
    assert status == 403


@pytest.mark.parametrize(("body", "message"), [
    ({"sku": "A", "qty": 3}, "qty: unknown field; expected one of sku, available_quantity, state, version, timestamp"),
    ({"available_quantity": 3}, "sku: missing; expected a non-empty string of at most 200 characters"),
    ({"sku": None, "state": "in_stock"},
     "sku: invalid value null; expected a non-empty string of at most 200 characters"),
    ({"sku": " ", "state": "in_stock"},
     'sku: invalid value " "; expected a non-empty string of at most 200 characters'),
    ({"sku": "A" * 201, "state": "in_stock"},
     "sku: too long (201 characters); expected a non-empty string of at most 200 characters"),
    ({"sku": "A"}, "state: missing; expected exactly one of state and available_quantity"),
    ({"sku": "A", "available_quantity": 3, "state": "in_stock"},
     "state: given with available_quantity; expected exactly one of state and available_quantity"),
    ({"sku": "A", "available_quantity": "3"},
     'available_quantity: invalid value "3"; expected an integer of 0 or more'),
    ({"sku": "A", "available_quantity": True},
     "available_quantity: invalid value true; expected an integer of 0 or more"),
    ({"sku": "A", "state": "gone"},
     'state: invalid value "gone"; expected one of backorder, in_stock, low_stock, out_of_stock'),
    ({"sku": "A", "state": "in_stock", "version": -1}, "version: invalid value -1; expected an integer of 0 or more"),
    ({"sku": "A", "state": "in_stock", "timestamp": "yesterday"},
     'timestamp: invalid value "yesterday"; expected an ISO 8601 date-time string or epoch seconds'),
    ([{"sku": "A", "state": "in_stock"}, {"sku": "B", "state": 5}],
     "events[1].state: invalid value 5; expected one of backorder, in_stock, low_stock, out_of_stock"),
    ([{"sku": "A", "state": "in_stock"}, {"state": "in_stock"}],
     "events[1].sku: missing; expected a non-empty string of at most 200 characters"),
    ([{"sku": "A", "state": "in_stock"}, 7], "events[1]: invalid value 7; expected a JSON object"),
    ([], "body: empty array; expected at least one event"),
    ("A", 'body: invalid value "A"; expected a JSON object or an array of objects'),
])
async def test_invalid_event_400(cache, client, body, message) -> None:
    status, answer_body = await send(client, cache, body)
    assert status == 400
    assert answer_body == {"error": message}
    assert len(cache.tracker) == 0


async def test_broken_json_400(cache, client) -> None:
    async with client.post(admin_url(cache, "/events/inventory"), data=b'{"sku": ', headers=bearer()) as response:
        assert response.status == 400
        assert await response.json() == {"error": "body is not valid JSON"}


async def test_batch_limit_400(origin, make_edgecache, client) -> None:
    edgecache = await make_edgecache(origin.url, {"admin": {"token": TOKEN}, "inventory": {"max_batch_events": 2}})
    status, body = await send(client, edgecache, [{"sku": "A", "state": "in_stock"}] * 3)
    assert status == 400
    assert body == {"error": "body: 3 events; expected at most 2 (inventory.max_batch_events), so split the batch"}
