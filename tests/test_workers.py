"""`edgecache serve --workers 2` as a subprocess: figures summed, purges reach both workers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from redis_process import free_port

TOKEN = "secret"
# Seconds two spawned workers get to import edgecache and listen.
START_LIMIT = 20.0
# New connections sent until both workers have fetched the page. The kernel picks a
# worker per connection, so the odds that 40 all reach one worker are about 2 in 10^12.
CONNECTIONS = 40


@dataclass
class Instance:
    process: asyncio.subprocess.Process
    proxy: str
    admin: str


async def wait_for_workers(client: aiohttp.ClientSession, admin: str, *, pids_not: set[int] = frozenset()) -> dict:
    """Return /health once every worker responds (with pids outside `pids_not`)."""
    deadline = time.monotonic() + START_LIMIT
    while True:
        try:
            async with client.get(f"{admin}/health") as response:
                health = await response.json()
                pids = set(health["workers"]["pids"])
                if health["workers"]["answered"] == 2 and not pids & pids_not:
                    return health
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, f"workers not ready after {START_LIMIT} s"
        await asyncio.sleep(0.05)


@pytest.fixture
async def instance(origin, client) -> AsyncIterator[Instance]:
    proxy_port, admin_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", "serve", "--workers", "2", "--origin", origin.url,
        "--listen", f"127.0.0.1:{proxy_port}", "--admin-listen", f"127.0.0.1:{admin_port}", "--duration", "60",
        env={**os.environ, "EDGECACHE_ADMIN_TOKEN": TOKEN, "EDGECACHE_SERVER_ACCESS_LOG": "false"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    started = Instance(process, f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{admin_port}")
    try:
        await wait_for_workers(client, started.admin)
        yield started
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 20)


async def fill_both_workers(client: aiohttp.ClientSession, instance: Instance, origin, path: str) -> int:
    """Send requests on new connections until both workers hold the page; return how many were sent."""
    for sent in range(1, CONNECTIONS + 1):
        async with client.get(instance.proxy + path, headers={"Connection": "close"}) as response:
            assert response.status == 200
            await response.read()
        if origin.count(path) == 2:
            return sent
    pytest.fail(f"one worker got all {CONNECTIONS} connections")


async def test_figures_summed(instance, origin, client) -> None:
    sent = await fill_both_workers(client, instance, origin, "/shoe/p")

    async with client.get(instance.admin + "/stats") as response:
        stats = await response.json()
    assert stats["requests"]["total"] == sent
    assert stats["requests"]["miss"] == 2
    assert stats["requests"]["hit"] == sent - 2
    assert stats["lookups"] == sent
    assert stats["cache"]["entries"] == 2
    assert stats["workers"]["answered"] == 2


async def test_metrics_summed(instance, origin, client) -> None:
    sent = await fill_both_workers(client, instance, origin, "/shoe/p")

    async with client.get(instance.admin + "/metrics") as response:
        text = await response.text()
    assert f"edgecache_lookups_total {float(sent)}" in text.splitlines()
    assert "edgecache_cache_entries 2.0" in text.splitlines()


async def test_purge_reaches_both_workers(instance, origin, client) -> None:
    await fill_both_workers(client, instance, origin, "/shoe/p")

    async with client.post(instance.admin + "/purge", json={"paths": ["/shoe/p"]},
                           headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
        assert await response.json() == {"purged": 2, "soft": False, "workers": 2}
    async with client.get(instance.admin + "/stats") as response:
        assert (await response.json())["cache"]["entries"] == 0


async def test_purge_needs_token(instance, client) -> None:
    async with client.post(instance.admin + "/purge", json={"all": True}) as response:
        assert response.status == 401


async def test_dead_worker_restarted(instance, client) -> None:
    health = await wait_for_workers(client, instance.admin)
    victim = health["workers"]["pids"][0]

    os.kill(victim, signal.SIGKILL)

    health = await wait_for_workers(client, instance.admin, pids_not={victim})
    assert health["workers"]["restarts"] == 1
    assert health["status"] == "ok"


async def test_sigterm_stops_all(instance, client) -> None:
    health = await wait_for_workers(client, instance.admin)

    instance.process.send_signal(signal.SIGTERM)

    assert await asyncio.wait_for(instance.process.wait(), 20) == 0
    for pid in health["workers"]["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
