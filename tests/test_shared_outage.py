"""Redis failure is not an outage: memory and origin keep serving, and the tier comes back."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from edgecache.config import build_settings
from edgecache.reload import reload_settings
from edgecache.shared.health import SharedHealth

from conftest import admin_url, proxy_url
from redis_process import redis_server, shared_settings, two_nodes  # noqa: F401

# Seconds a node gets to find Redis again after it restarts (retry interval 0.05 s in tests).
RECOVERY_LIMIT = 3.0
# Milliseconds Redis pauses its clients: a request that waited for Redis would take this
# long, and one that timed out after shared_timeout (0.05 s) takes under half of it.
PAUSE_MS = 3000


async def get(client, url: str) -> tuple[int, str]:
    async with client.get(url) as response:
        await response.read()
        return response.status, response.headers["X-Cache"]


async def wait_for_state(node, state: str, client) -> None:
    deadline = time.monotonic() + RECOVERY_LIMIT
    while True:
        async with client.get(admin_url(node, "/health")) as response:
            if (await response.json())["shared"] == state:
                return
        assert time.monotonic() < deadline, f"shared tier not {state} after {RECOVERY_LIMIT} s"
        await asyncio.sleep(0.02)


async def test_serves_while_redis_down(origin, two_nodes, redis_server, client) -> None:
    node_a, _ = two_nodes
    assert await get(client, proxy_url(node_a, "/old/p")) == (200, "MISS")

    redis_server.stop()

    assert await get(client, proxy_url(node_a, "/old/p")) == (200, "HIT")
    assert await get(client, proxy_url(node_a, "/new/p")) == (200, "MISS")
    assert await get(client, proxy_url(node_a, "/new/p")) == (200, "HIT")
    assert node_a.shared.tier.health.failures >= 1


async def test_health_shows_down(origin, two_nodes, redis_server, client) -> None:
    node_a, _ = two_nodes
    redis_server.stop()
    await get(client, proxy_url(node_a, "/any/p"))

    await wait_for_state(node_a, "down", client)
    async with client.get(admin_url(node_a, "/stats")) as response:
        assert (await response.json())["shared"]["state"] == "down"
    async with client.get(admin_url(node_a, "/metrics")) as response:
        assert "edgecache_shared_up 0.0" in (await response.text()).splitlines()


async def test_reconnects_after_restart(origin, two_nodes, redis_server, client) -> None:
    node_a, node_b = two_nodes
    redis_server.stop()
    await get(client, proxy_url(node_a, "/any/p"))
    await wait_for_state(node_a, "down", client)

    redis_server.start()
    await wait_for_state(node_a, "up", client)
    await wait_for_state(node_b, "up", client)

    assert await get(client, proxy_url(node_a, "/after/p")) == (200, "MISS")
    assert await get(client, proxy_url(node_b, "/after/p")) == (200, "HIT")
    assert origin.count("/after/p") == 1


async def test_resubscribe_drops_memory(origin, two_nodes, redis_server, client) -> None:
    node_a, node_b = two_nodes
    await get(client, proxy_url(node_b, "/kept/p"))
    assert len(node_b.store) == 1

    redis_server.stop()
    await wait_for_state(node_b, "down", client)
    redis_server.start()
    await wait_for_state(node_b, "up", client)

    assert len(node_b.store) == 0


async def test_slow_redis_times_out(origin, redis_server, make_edgecache, client) -> None:
    node = await make_edgecache(origin.url, shared_settings(redis_server.url, shared_timeout=0.05,
                                                            shared_retry_interval=5.0))
    await node.shared.tier.client.execute_command("CLIENT", "PAUSE", str(PAUSE_MS), "ALL")

    started = time.monotonic()
    assert await get(client, proxy_url(node, "/shoe/p")) == (200, "MISS")
    assert time.monotonic() - started < PAUSE_MS / 1000 / 2
    assert node.shared.tier.health.up is False


async def test_reload_keeps_shared_settings(origin, two_nodes, caplog) -> None:
    node_a, _ = two_nodes
    running_url = node_a.settings.cache.shared_url
    new = build_settings({"server": {"listen": node_a.settings.server.listen,
                                     "admin_listen": node_a.settings.server.admin_listen},
                          "origin": {"url": origin.url},
                          "cache": {"shared_url": "redis://127.0.0.1:1/0", "shared_timeout": 0.5,
                                    "shared_retry_interval": 0.05, "max_bytes": 10_000_000}}, environ={})

    assert reload_settings(node_a, lambda: new) is True

    assert node_a.settings.cache.shared_url == running_url
    assert node_a.settings.cache.max_bytes == 10_000_000
    assert "cache.shared_url changed to 'redis://127.0.0.1:1/0'; restart edgecache to apply it" in caplog.text


def require_password(port: int, password: str) -> None:
    """Make a running redis-server require `password` (the setting is lost when it restarts)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(f"CONFIG SET requirepass {password}\r\n".encode())
        assert sock.recv(16).startswith(b"+OK")


async def test_outage_log_masks_password(origin, redis_server, make_edgecache, client, caplog) -> None:
    require_password(redis_server.port, "s3cret")
    node = await make_edgecache(origin.url, shared_settings(f"redis://:s3cret@127.0.0.1:{redis_server.port}/0"))
    caplog.set_level("INFO", logger="edgecache.shared")

    redis_server.stop()
    await get(client, proxy_url(node, "/any/p"))
    await wait_for_state(node, "down", client)
    redis_server.start()
    require_password(redis_server.port, "s3cret")
    await wait_for_state(node, "up", client)

    shown = f"redis://:********@127.0.0.1:{redis_server.port}/0"
    lines = [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "edgecache.shared"]
    down = [message for _, message in lines if message.startswith("shared tier down: ")]
    assert len(down) == 1
    assert f" on {shown} failed: " in down[0]
    failures = node.shared.tier.health.failures
    plural = "command" if failures == 1 else "commands"
    assert [line for line in lines if "up again" in line[1]] == [
        ("INFO", f"shared tier up again on {shown} after {failures} failed {plural}")]
    assert "s3cret" not in caplog.text


@pytest.mark.parametrize(("failures", "message"), [
    (1, "shared tier up again on redis://127.0.0.1:1/0 after 1 failed command"),
    (3, "shared tier up again on redis://127.0.0.1:1/0 after 3 failed commands"),
])
def test_recovery_line_counts_outage(failures: int, message: str, caplog) -> None:
    caplog.set_level("INFO", logger="edgecache.shared")
    health = SharedHealth(retry_interval=0.0, url="redis://127.0.0.1:1/0", clock=lambda: 0.0)
    for _ in range(failures):
        health.failed("lookup", ConnectionError("refused"))
    health.succeeded()
    health.failed("lookup", ConnectionError("refused"))
    health.succeeded()
    ups = [(record.levelname, record.getMessage()) for record in caplog.records if "up again" in record.getMessage()]
    assert ups == [("INFO", message), ("INFO", "shared tier up again on redis://127.0.0.1:1/0 after 1 failed command")]
