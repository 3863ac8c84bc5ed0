"""A node that replaces an entry publishes its store key, and the other nodes drop their memory copies."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from edgecache.entry import store_key
from edgecache.key import CacheKey
from edgecache.server import Edgecache
from edgecache.shared import DiscardMessage
from edgecache.shared.invalidation import decode_message

from conftest import proxy_url
from helpers import FakeClock
from redis_process import redis_server, shared_settings  # noqa: F401

# Seconds a discard may take to reach another node's memory store. Redis pub/sub
# delivers it with no timer in between, so this bound only catches a message that
# never arrives and is generous for a loaded 2-core machine.
PROPAGATION_LIMIT = 1.0
LIFETIME = 60


@pytest.fixture
async def nodes(origin, redis_server, make_edgecache) -> tuple[Edgecache, Edgecache, FakeClock]:
    """Two nodes whose clocks differ: node A's copy goes stale while node B's is still fresh."""
    clock_a, clock_b = FakeClock(), FakeClock()
    raw = shared_settings(redis_server.url)
    node_a = await make_edgecache(origin.url, raw, clock=clock_a)
    node_b = await make_edgecache(origin.url, raw, clock=clock_b)
    return node_a, node_b, clock_a


async def get(client: aiohttp.ClientSession, url: str) -> tuple[int, bytes, str]:
    async with client.get(url) as response:
        return response.status, await response.read(), response.headers["X-Cache"]


def discard_barrier(node: Edgecache) -> tuple[asyncio.Event, list[DiscardMessage]]:
    """Return an event set when the node has applied a discard published by another node, and the messages."""
    assert node.shared is not None
    applied = asyncio.Event()
    received: list[DiscardMessage] = []
    discard = node.shared.listener.discard

    def discard_and_signal(message: DiscardMessage) -> None:
        discard(message)
        received.append(message)
        applied.set()

    node.shared.listener.discard = discard_and_signal
    return applied, received


async def fill_both(client: aiohttp.ClientSession, node_a: Edgecache, node_b: Edgecache, path: str) -> None:
    assert await get(client, proxy_url(node_a, path)) == (200, b"v1", "MISS")
    assert await get(client, proxy_url(node_b, path)) == (200, b"v1", "HIT")
    assert len(node_b.store) == 1


async def test_unstorable_replacement_reaches_b(nodes, origin, client) -> None:
    node_a, node_b, clock_a = nodes
    origin.script("/shoe/p", headers={"Cache-Control": f"max-age={LIFETIME}"}, body=b"v1")
    await fill_both(client, node_a, node_b, "/shoe/p")
    applied, received = discard_barrier(node_b)
    origin.script("/shoe/p", headers={"Cache-Control": "no-store"}, body=b"v2")
    clock_a.advance(LIFETIME + 1)

    assert await get(client, proxy_url(node_a, "/shoe/p")) == (200, b"v2", "MISS")
    await asyncio.wait_for(applied.wait(), PROPAGATION_LIMIT)

    full_key = store_key(CacheKey(node_a.settings.site_host, "/shoe/p"), "")
    assert received == [DiscardMessage((full_key,))]
    assert len(node_b.store) == 0
    assert await node_b.shared.tier.client.exists(node_b.shared.tier.entry_key(full_key)) == 0
    assert await get(client, proxy_url(node_b, "/shoe/p")) == (200, b"v2", "MISS")
    assert origin.count("/shoe/p") == 3


async def test_stored_replacement_reaches_b(nodes, origin, client) -> None:
    node_a, node_b, clock_a = nodes
    origin.script("/shoe/p", headers={"Cache-Control": f"max-age={LIFETIME}"}, body=b"v1")
    await fill_both(client, node_a, node_b, "/shoe/p")
    applied, _ = discard_barrier(node_b)
    origin.script("/shoe/p", headers={"Cache-Control": f"max-age={LIFETIME}"}, body=b"v2")
    clock_a.advance(LIFETIME + 1)

    assert await get(client, proxy_url(node_a, "/shoe/p")) == (200, b"v2", "MISS")
    await asyncio.wait_for(applied.wait(), PROPAGATION_LIMIT)

    assert len(node_b.store) == 0
    assert await get(client, proxy_url(node_b, "/shoe/p")) == (200, b"v2", "HIT")
    assert origin.count("/shoe/p") == 2


async def test_first_store_publishes_nothing(nodes, origin, client) -> None:
    node_a, node_b, _ = nodes
    origin.script("/shoe/p", headers={"Cache-Control": f"max-age={LIFETIME}"}, body=b"v1")

    await fill_both(client, node_a, node_b, "/shoe/p")

    assert node_b.shared.listener.received == 0
    assert node_a.shared.listener.received == 0


async def test_server_error_keeps_copies(nodes, origin, client) -> None:
    node_a, node_b, clock_a = nodes
    origin.script("/shoe/p", headers={"Cache-Control": f"max-age={LIFETIME}, stale-if-error=600"}, body=b"v1")
    await fill_both(client, node_a, node_b, "/shoe/p")
    origin.script("/shoe/p", status=503, body=b"down")
    clock_a.advance(LIFETIME + 1)

    status, body, _ = await get(client, proxy_url(node_a, "/shoe/p"))

    assert (status, body) == (200, b"v1")
    assert node_b.shared.listener.received == 0
    assert len(node_b.store) == 1


@pytest.mark.parametrize(("message", "problem"), [
    ({"type": "discard", "node": "n"}, "discard message field 'keys' is not a list of strings"),
    ({"type": "discard", "node": "n", "keys": "k"}, "discard message field 'keys' is not a list of strings"),
    ({"type": "discard", "node": "n", "keys": [1]}, "discard message field 'keys' is not a list of strings"),
])
def test_invalid_discard_message(message: dict, problem: str) -> None:
    with pytest.raises(ValueError) as raised:
        decode_message(json.dumps(message))
    assert str(raised.value) == problem


def test_discard_message_round_trip() -> None:
    message = DiscardMessage(("site\x00/shoe/p\x00\x00",))
    assert decode_message(message.encode("node-1")) == ("node-1", message)
