"""Connections to the origin: kept alive and reused, and bounded by origin.connect_timeout."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from fault_origin import FaultOrigin
from helpers import raw_request

# Client sockets that fill a listener's accept queue, so that one more connect attempt hangs.
QUEUE_FILLERS = 4


async def test_misses_reuse_one_origin_connection(fault_origin: FaultOrigin, edgecache_on_faults) -> None:
    for index in range(5):
        response = await raw_request(edgecache_on_faults.proxy_port, f"/item-{index}/p")
        assert response.status == 200
        assert response.body == f"page /item-{index}/p".encode()

    assert len(fault_origin.requests) == 5
    assert fault_origin.open_connections == 1


async def test_bypasses_reuse_one_origin_connection(fault_origin: FaultOrigin, edgecache_on_faults) -> None:
    for index in range(5):
        response = await raw_request(edgecache_on_faults.proxy_port, f"/shoe/p?visit={index}")
        assert response.status == 200
        assert response.headers["X-Cache"] == "BYPASS"

    assert fault_origin.count("/shoe/p") == 5
    assert fault_origin.open_connections == 1


@pytest.fixture
def unanswered_listener() -> Iterator[int]:
    """Return the port of a loopback listener whose accept queue is full, so connects hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(QUEUE_FILLERS):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    yield listener.getsockname()[1]
    for filler in fillers:
        filler.close()
    listener.close()


async def test_connect_timeout_gives_504(unanswered_listener: int, make_edgecache) -> None:
    cache = await make_edgecache(f"http://127.0.0.1:{unanswered_listener}",
                                 {"origin": {"connect_timeout": 0.2, "read_timeout": 30}})

    response = await raw_request(cache.proxy_port, "/shoe/p")

    assert response.status == 504
    assert response.headers["Cache-Status"] == "edgecache; fwd=uri-miss; detail=origin-timeout"
    assert response.body == b"origin timed out\n"
    assert cache.stats.origin_errors == {"origin-timeout": 1}
    assert len(cache.store) == 0
