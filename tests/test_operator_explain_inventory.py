"""GET /entries and `edgecache explain` on a page an inventory event made wrong while its purge waits."""

from __future__ import annotations

import asyncio

import pytest

from conftest import admin_url, proxy_url
from edgecache.cli import main
from edgecache.inventory import InventoryEvent
from inventory_pages import TOKEN, Clock

SETTINGS = {"admin": {"token": TOKEN}, "inventory": {"refresh_on_event": False, "storm_interval": 10.0}}
HEADERS = {"Cache-Control": "max-age=60, stale-while-revalidate=30", "Surrogate-Key": "sku:A"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def get(client, edgecache, path: str) -> str:
    async with client.get(proxy_url(edgecache, path)) as response:
        await response.read()
        return response.headers["X-Cache"]


async def entries(client, edgecache, path: str) -> dict:
    async with client.get(admin_url(edgecache, "/entries"), params={"path": path}) as response:
        assert response.status == 200
        return await response.json()


async def defer_purge(origin, make_edgecache, client, clock: Clock):
    """Store /a/p tagged sku:A, then let a sell-out of A wait for the storm window its restock opened."""
    origin.script("/a/p", headers=HEADERS, body=b"<p>A</p>")
    edgecache = await make_edgecache(origin.url, SETTINGS, clock=clock)
    assert await get(client, edgecache, "/a/p") == "MISS"
    edgecache.apply_inventory_events([InventoryEvent("A", state="in_stock", version=1)])
    clock.advance(1)
    assert await get(client, edgecache, "/a/p") == "STALE"
    await edgecache.proxy.close()
    clock.advance(1)
    result = edgecache.apply_inventory_events([InventoryEvent("A", state="out_of_stock", version=2)])
    assert result["deferred"] == 1
    clock.advance(2)
    return edgecache


async def test_entries_without_events(origin, make_edgecache, client, clock) -> None:
    origin.script("/a/p", headers=HEADERS, body=b"<p>A</p>")
    edgecache = await make_edgecache(origin.url, SETTINGS, clock=clock)
    await get(client, edgecache, "/a/p")
    document = await entries(client, edgecache, "/a/p")
    assert document["entries"][0]["inventory"] == {
        "latest_states": {}, "known_stale_seconds": None, "purge_due_seconds": None}
    assert document["decision"] == {"outcome": "hit", "explanation": "the entry is fresh for 60 s more"}


async def test_entries_known_stale_deferred(origin, make_edgecache, client, clock) -> None:
    edgecache = await defer_purge(origin, make_edgecache, client, clock)
    document = await entries(client, edgecache, "/a/p")
    entry = document["entries"][0]
    assert entry["inventory"] == {
        "latest_states": {"A": "out_of_stock"}, "known_stale_seconds": 2.0, "purge_due_seconds": 6.0}
    assert document["decision"] == {
        "outcome": "hit",
        "explanation": "the entry is fresh for 57 s more, but an inventory event 2 s ago changed the state of a "
                       "SKU the page shows, and its purge waits 6 s more for the storm window to end",
    }
    assert entry["decision"] == document["decision"]


async def test_explain_command_known_stale(origin, make_edgecache, client, clock,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    edgecache = await defer_purge(origin, make_edgecache, client, clock)
    code = await asyncio.to_thread(main, ["explain", "/a/p", "--admin", admin_url(edgecache, "")])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert "events    A out_of_stock; known stale for 2 s; purge due in 6 s" in lines
    assert "tags      sku:A" in lines


async def test_entries_after_purge_not_stale(origin, make_edgecache, client, clock) -> None:
    edgecache = await defer_purge(origin, make_edgecache, client, clock)
    clock.advance(6)
    assert edgecache.invalidator.flush_due(clock()) == 1  # A hard purge: the sell-out removes the page.
    assert await get(client, edgecache, "/a/p") == "MISS"
    document = await entries(client, edgecache, "/a/p")
    assert document["entries"][0]["inventory"] == {
        "latest_states": {"A": "out_of_stock"}, "known_stale_seconds": None, "purge_due_seconds": None}
