"""Limits, reload and shutdown: memory bound under a path flood, SIGHUP reloads, SIGTERM drains."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import fault_origin as faults
from conftest import admin_url, proxy_url
from edgecache.config import build_settings
from edgecache.errors import ConfigError
from edgecache.key import CacheKey
from edgecache.reload import reload_settings
from fault_origin import FaultOrigin
from hardening_checks import assert_healthy, fetch

# The start line of `edgecache serve`, which names the ports it bound.
LISTENING = re.compile(r"edgecache listening on 127\.0\.0\.1:(\d+) \(admin 127\.0\.0\.1:(\d+)\)")
# Seconds a subprocess gets to log an expected line; it only guards against a hang.
OUTPUT_TIMEOUT = 30.0


def settings_for(cache: Any, raw: dict[str, Any]) -> Any:
    server = {"listen": cache.settings.server.listen, "admin_listen": cache.settings.server.admin_listen}
    return build_settings({"server": server, "origin": {"url": cache.settings.origin.url}, **raw}, environ={})


async def test_path_flood_within_max_bytes(fault_origin: FaultOrigin, make_edgecache: Any,
                                           client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url, {"cache": {"max_bytes": 100_000, "max_object_bytes": 10_000}})
    for index in range(400):
        fault_origin.faults[f"/flood/{index}"] = faults.ok(b"f" * 1000)
    await asyncio.gather(*(fetch(client, proxy_url(cache, f"/flood/{index}")) for index in range(400)))
    assert cache.store.bytes <= 100_000
    assert cache.store.evictions >= 300
    await assert_healthy(cache, client)


async def test_reload_keeps_cache(fault_origin: FaultOrigin, make_edgecache: Any,
                                  client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url)
    await fetch(client, proxy_url(cache, "/shoe/p"))
    new = settings_for(cache, {"rules": [{"name": "product", "match": "/*/p", "ttl": 5, "override_origin": True}]})
    assert reload_settings(cache, lambda: new) is True
    assert cache.settings.rules[0].name == "product"
    status, _, headers = await fetch(client, proxy_url(cache, "/shoe/p"))
    assert (status, headers["X-Cache"]) == (200, "HIT")
    status, _, headers = await fetch(client, proxy_url(cache, "/bag/p"))
    assert headers["Cache-Status"] == "edgecache; fwd=uri-miss; stored"
    entry = cache.store.lookup(CacheKey(cache.settings.site_host, "/bag/p"), {})
    assert (entry.rule, entry.lifetime) == ("product", 5)


async def test_reload_key_change_purges(fault_origin: FaultOrigin, make_edgecache: Any,
                                        client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url)
    await fetch(client, proxy_url(cache, "/shoe/p"))
    assert reload_settings(cache, lambda: settings_for(cache, {"key": {"fold_case": True}})) is True
    assert len(cache.store) == 0
    await assert_healthy(cache, client)


async def test_reload_invalid_keeps_settings(fault_origin: FaultOrigin, make_edgecache: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    cache = await make_edgecache(fault_origin.url)
    before = cache.settings

    def invalid() -> Any:
        raise ConfigError("cache.max_bytes: invalid value -1; expected a positive integer")

    assert reload_settings(cache, invalid) is False
    assert cache.settings is before
    assert "reload failed, keeping the running settings: cache.max_bytes: invalid value -1" in caplog.text


async def test_reload_keeps_listen(fault_origin: FaultOrigin, make_edgecache: Any,
                                   client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url)
    new = settings_for(cache, {"server": {"listen": "127.0.0.1:1", "admin_listen": "127.0.0.1:2"}})
    assert reload_settings(cache, lambda: new) is True
    assert cache.settings.server.listen == "127.0.0.1:0"
    await assert_healthy(cache, client)


async def start_process(tmp_path: Path, origin_url: str, *,
                        shutdown_timeout: float = 5.0) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start `edgecache serve` on port 0 and return it with the ports from its start line."""
    config = tmp_path / "edgecache.toml"
    config.write_text(f'[server]\nlisten = "127.0.0.1:0"\nadmin_listen = "127.0.0.1:0"\n'
                      f'shutdown_timeout = {shutdown_timeout}\n[origin]\nurl = "{origin_url}"\n')
    process = subprocess.Popen([sys.executable, "-m", "edgecache", "serve", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = await wait_for_output(process, "edgecache listening on")
    except BaseException:
        process.kill()
        process.wait()
        raise
    match = LISTENING.search(lines[-1])
    assert match is not None, f"unexpected start line: {lines[-1]!r}"
    return process, int(match[1]), int(match[2])


async def wait_exit(process: subprocess.Popen[bytes]) -> int:
    return await asyncio.to_thread(process.wait, 10)


async def wait_until_refused(port: int) -> None:
    """Connect until the listener on `port` is closed; fail after 5 seconds."""
    async with asyncio.timeout(5):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return
            writer.close()
            await asyncio.sleep(0.01)


async def test_sigterm_drains_in_flight(fault_origin: FaultOrigin, tmp_path: Path) -> None:
    process, proxy_port, _ = await start_process(tmp_path, fault_origin.url)
    gate, arrived = asyncio.Event(), asyncio.Event()
    fault_origin.faults["/slow/p"] = faults.gated(gate, faults.ok(b"finished"), arrived=arrived)
    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(fetch(session, f"http://127.0.0.1:{proxy_port}/slow/p"))
        await arrived.wait()
        process.send_signal(signal.SIGTERM)
        await wait_until_refused(proxy_port)
        with pytest.raises(aiohttp.ClientConnectorError):
            await fetch(session, f"http://127.0.0.1:{proxy_port}/other")
        gate.set()
        status, body, _ = await request
    assert (status, body) == (200, b"finished")
    assert await wait_exit(process) == 0


async def test_sigterm_cuts_after_timeout(fault_origin: FaultOrigin, tmp_path: Path) -> None:
    process, proxy_port, _ = await start_process(tmp_path, fault_origin.url, shutdown_timeout=0.3)
    arrived = asyncio.Event()
    fault_origin.faults["/slow/p"] = faults.gated(asyncio.Event(), faults.ok(), arrived=arrived)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    writer.write(b"GET /slow/p HTTP/1.1\r\nHost: a\r\n\r\n")
    await arrived.wait()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(reader.read(), 5.0) == b""
    writer.close()
    assert await wait_exit(process) == 0


async def test_sighup_reloads_file(fault_origin: FaultOrigin, tmp_path: Path) -> None:
    process, proxy_port, admin_port = await start_process(tmp_path, fault_origin.url)
    config = tmp_path / "edgecache.toml"
    try:
        async with aiohttp.ClientSession() as session:
            await fetch(session, f"http://127.0.0.1:{proxy_port}/shoe/p")
            config.write_text(config.read_text() + "[admin]\ntoken = \"new-token\"\n")
            os.kill(process.pid, signal.SIGHUP)
            output = "".join(await wait_for_output(process, "reload: settings applied"))
            async with session.post(f"http://127.0.0.1:{admin_port}/purge", json={"all": True},
                                    headers={"Authorization": "Bearer new-token"}) as response:
                assert response.status == 200
            config.write_text("[cache]\nmax_bytes = -1\n")
            os.kill(process.pid, signal.SIGHUP)
            output += "".join(await wait_for_output(process, "reload failed"))
            status, _, _ = await fetch(session, f"http://127.0.0.1:{proxy_port}/shoe/p")
            assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process) == 0
    assert "reload: settings applied" in output
    assert "reload failed, keeping the running settings: cache.max_bytes: invalid value -1" in output


async def test_admin_warns_when_exposed(fault_origin: FaultOrigin, make_edgecache: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    from edgecache.server import warn_if_admin_exposed

    warn_if_admin_exposed("0.0.0.0:8081", "")
    warn_if_admin_exposed("0.0.0.0:8081", "secret")
    warn_if_admin_exposed("127.0.0.1:8081", "")
    warn_if_admin_exposed("127.0.0.2:8081", "")
    warn_if_admin_exposed("[::1]:8081", "")
    warn_if_admin_exposed("localhost:8081", "")
    warn_if_admin_exposed("[::]:8081", "")
    assert [record.getMessage()[:40] for record in caplog.records] == [
        "admin listener on 0.0.0.0:8081 is reacha", "admin listener on [::]:8081 is reachable"]
    assert "secret" not in caplog.text


@pytest.mark.parametrize("body, message", [
    (b"{not json", "body is not valid JSON"),
    (b'"paths"', 'body: invalid value "paths"; expected a JSON object'),
    (b'{"paths": "/a"}', 'paths: invalid value "/a"; expected a list of non-empty strings'),
    (b'{"soft": "yes", "all": true}', 'soft: invalid value "yes"; expected true or false'),
    (b'{"path": ["/a"]}', "path: unknown field; expected one of all, paths, prefixes, soft, tags"),
])
async def test_admin_bad_body_names_field(body: bytes, message: str, fault_origin: FaultOrigin,
                                          make_edgecache: Any, client: aiohttp.ClientSession) -> None:
    cache = await make_edgecache(fault_origin.url, {"admin": {"token": "t0ken"}})
    async with client.post(admin_url(cache, "/purge"), data=body,
                           headers={"Authorization": "Bearer t0ken", "Content-Type": "application/json"}) as response:
        assert response.status == 400
        assert (await response.json()) == {"error": message}


async def test_admin_token_never_logged(fault_origin: FaultOrigin, make_edgecache: Any,
                                        client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    cache = await make_edgecache(fault_origin.url, {"admin": {"token": "right-token"}})
    async with client.post(admin_url(cache, "/purge"), json={"all": True},
                           headers={"Authorization": "Bearer wrong-token"}) as response:
        assert response.status == 401
    async with client.post(admin_url(cache, "/purge"), json={"all": True},
                           headers={"Authorization": "Bearer right-token"}) as response:
        assert response.status == 200
    assert "rejected POST /purge" in caplog.text
    assert "wrong-token" not in caplog.text
    assert "right-token" not in caplog.text


async def read_keep_alive_response(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """Read one Content-Length framed response from a connection that stays open."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)).decode("latin-1")
    status_line, *lines = head.strip().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5.0)
    return status_line, headers, body


async def wait_for_output(process: subprocess.Popen[bytes], text: str) -> list[str]:
    """Read the process's output line by line until a line contains `text`; return the lines read."""
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(OUTPUT_TIMEOUT):
        while not lines or text not in lines[-1]:
            line = await asyncio.to_thread(process.stdout.readline)
            assert line, f"edgecache exited before logging {text!r}: {lines!r}"
            lines.append(line.decode())
    return lines


async def test_sighup_keeps_connection_and_cache(fault_origin: FaultOrigin, tmp_path: Path) -> None:
    process, proxy_port, _ = await start_process(tmp_path, fault_origin.url)
    config = tmp_path / "edgecache.toml"
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        writer.write(b"GET /shoe/p HTTP/1.1\r\nHost: a\r\n\r\n")
        status_line, first_headers, first_body = await read_keep_alive_response(reader)
        assert status_line == "HTTP/1.1 200 OK"
        assert first_headers["x-cache"] == "MISS"

        config.write_text(config.read_text() + "[cache]\nstale_if_error = 60\n")
        os.kill(process.pid, signal.SIGHUP)
        await wait_for_output(process, "reload: settings applied")

        writer.write(b"GET /shoe/p HTTP/1.1\r\nHost: a\r\n\r\n")
        status_line, second_headers, second_body = await read_keep_alive_response(reader)
        writer.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert await wait_exit(process) == 0
    assert status_line == "HTTP/1.1 200 OK"
    assert second_headers["x-cache"] == "HIT"
    assert second_body == first_body == b"page /shoe/p"
    assert fault_origin.count("/shoe/p") == 1
