"""`edgecache serve --workers 2` as a subprocess: figures summed, purges reach both workers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from edgecache.explain import format_explanation

from inventory_pages import html_headers, product_page
from worker_instance import NO_REFRESH, TOKEN, Instance, running, send_events, wait_for_workers

# New connections sent until both workers have fetched the page. The kernel picks a
# worker per connection, so the odds that 40 all reach one worker are about 2 in 10^12.
CONNECTIONS = 40


@pytest.fixture
async def instance(origin, client) -> AsyncIterator[Instance]:
    async with running(origin, client, env={"EDGECACHE_ADMIN_TOKEN": TOKEN, **NO_REFRESH}) as started:
        yield started


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


async def entries(client: aiohttp.ClientSession, instance: Instance, path: str) -> tuple[int, dict]:
    async with client.get(instance.admin + "/entries", params={"path": path}) as response:
        return response.status, await response.json()


async def test_entries_merged_from_workers(instance, origin, client) -> None:
    await fill_both_workers(client, instance, origin, "/shoe/p")

    status, document = await entries(client, instance, "/shoe/p")

    assert status == 200
    assert document["stored"] is True
    assert sorted(entry["worker"] for entry in document["entries"]) == [0, 1]
    assert {entry["key"] for entry in document["entries"]} == {document["key"]}
    assert [entry["decision"]["outcome"] for entry in document["entries"]] == ["hit", "hit"]
    assert document["decision"]["outcome"] == "hit"
    assert document["workers"]["answered"] == 2
    lines = format_explanation(document).splitlines()
    assert [line for line in lines if line.startswith("worker ")] == ["worker    0", "worker    1"]


async def test_entries_not_stored_in_workers(instance, client) -> None:
    status, document = await entries(client, instance, "/shoe/p")

    assert status == 200
    assert document["stored"] is False
    assert document["entries"] == []
    assert document["decision"]["outcome"] == "miss"
    assert document["workers"]["answered"] == 2


async def test_entries_error_passed_on(instance, client) -> None:
    async with client.get(instance.admin + "/entries") as response:
        assert response.status == 400
        assert await response.json() == {
            "error": "missing query parameter 'path', for example /entries?path=/summit-duffel-1/p"}


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
    await instance.output.wait_for(f"worker 0 started (pid {health['workers']['pids'][0]})")
    assert instance.output.count(f"worker 0 (pid {victim}) exited with code -9") == 1


async def test_sigterm_stops_all(instance, client) -> None:
    health = await wait_for_workers(client, instance.admin)

    instance.process.send_signal(signal.SIGTERM)

    assert await asyncio.wait_for(instance.process.wait(), 20) == 0
    for pid in health["workers"]["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_inventory_event_reaches_both_workers(instance, origin, client) -> None:
    origin.script("/a/p", headers=html_headers(), body=product_page("A", "InStock"))
    await fill_both_workers(client, instance, origin, "/a/p")
    await send_events(client, instance, {"sku": "A", "state": "in_stock", "version": 1})

    body = await send_events(client, instance, {"sku": "A", "state": "out_of_stock", "version": 2})

    assert body == {"received": 1, "changed": 1, "unchanged": 0, "old-version": 0, "first-seen": 0, "purged": 2,
                    "deferred": 0, "workers": 2}
    async with client.get(instance.admin + "/stats") as response:
        stats = await response.json()
    assert stats["cache"]["entries"] == 0
    assert stats["inventory"]["events"] == {"changed": 1, "first-seen": 1}
    assert stats["inventory"]["purged_entries"] == {"hard": 2}


async def test_inventory_event_needs_token(instance, client) -> None:
    async with client.post(instance.admin + "/events/inventory", json={"sku": "A", "state": "in_stock"}) as response:
        assert response.status == 401


async def test_dashboard_served_with_types(instance, client) -> None:
    for path, content_type in (("/", "text/html"), ("/static/dashboard.js", "application/javascript"),
                               ("/static/dashboard.css", "text/css")):
        async with client.get(instance.admin + path) as response:
            assert response.status == 200
            assert response.content_type == content_type


def write_config(path: Path, token: str) -> None:
    path.write_text(f'[admin]\ntoken = "{token}"\n')


async def purge_status(client: aiohttp.ClientSession, instance: Instance, token: str) -> int:
    async with client.post(instance.admin + "/purge", json={"all": True},
                           headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status


async def test_sighup_reloads_every_worker(origin, client, tmp_path) -> None:
    config = tmp_path / "edgecache.toml"
    write_config(config, "old-token")
    async with running(origin, client, args=("--config", str(config))) as instance:
        health = await wait_for_workers(client, instance.admin)
        write_config(config, "new-token")

        instance.process.send_signal(signal.SIGHUP)
        await instance.output.wait_for("reload: settings applied", count=2)

        assert await purge_status(client, instance, "new-token") == 200
        assert await purge_status(client, instance, "old-token") == 401
        after = await wait_for_workers(client, instance.admin)
        assert after["workers"]["pids"] == health["workers"]["pids"]
        assert after["workers"]["restarts"] == 0


async def test_sighup_invalid_config_keeps_all(origin, client, tmp_path) -> None:
    config = tmp_path / "edgecache.toml"
    write_config(config, "old-token")
    async with running(origin, client, args=("--config", str(config))) as instance:
        health = await wait_for_workers(client, instance.admin)
        config.write_text("[admin\n")

        instance.process.send_signal(signal.SIGHUP)
        await instance.output.wait_for("reload failed, keeping the running settings in every worker")

        assert await purge_status(client, instance, "old-token") == 200
        after = await wait_for_workers(client, instance.admin)
        assert after["workers"]["pids"] == health["workers"]["pids"]
        assert instance.output.count("reload: settings applied") == 0


async def test_admin_logs_client_address(instance, origin, client) -> None:
    await fill_both_workers(client, instance, origin, "/shoe/p")

    async with client.post(instance.admin + "/purge", json={"paths": ["/shoe/p"], "tags": ["sku:A"]},
                           headers={"Authorization": f"Bearer {TOKEN}", "X-Edgecache-Client": "203.0.113.9"}
                           ) as response:
        assert response.status == 200
    async with client.post(instance.admin + "/stats/reset",
                           headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
    await instance.output.wait_for("figures reset by", count=2)

    purges = [line.split(" edgecache.admin ", 1)[1].rstrip("\n") for line in instance.output.lines
              if " edgecache.admin purge from " in line]
    assert sorted(purges) == [
        'purge from 127.0.0.1 of 1 path ["/shoe/p"], 1 tag ["sku:A"] (hard): {"purged": 1, "soft": false}',
    ] * 2
    resets = [line.split(" edgecache.admin ", 1)[1].rstrip("\n") for line in instance.output.lines
              if " edgecache.admin figures reset by" in line]
    assert resets == ["figures reset by 127.0.0.1"] * 2


async def test_supervisor_logs_stopped_last(instance) -> None:
    instance.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(instance.process.wait(), 20) == 0
    await instance.output.wait_closed()

    lines = [line.rstrip("\n") for line in instance.output.lines]
    assert lines[-1].endswith(" INFO edgecache.workers supervisor stopped: 2 workers exited")
    assert sum(line.endswith(" INFO edgecache.server edgecache stopped") for line in lines) == 2


@pytest.mark.parametrize("flag", ["--listen", "--admin-listen"])
async def test_port_in_use_starts_no_worker(origin, flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--listen": "127.0.0.1:0", "--admin-listen": "127.0.0.1:0", flag: f"127.0.0.1:{port}"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edgecache", "serve", "--workers", "2", "--origin", origin.url,
            *(part for pair in ports.items() for part in pair), "--duration", "30",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)

    setting = {"--listen": "server.listen", "--admin-listen": "server.admin_listen"}[flag]
    assert process.returncode == 1
    assert stderr.decode().startswith(f"edgecache: start-up failed: {setting}: cannot listen on 127.0.0.1:{port} (")
    assert stderr.decode().endswith("); stop the process that uses it or choose another address\n")
    assert stderr.decode().count("\n") == 1
    assert "worker 0 started" not in stdout.decode()
