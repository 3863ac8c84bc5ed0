"""The command line as a user runs it: check-config, exit statuses, and serve in a subprocess."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from edgecache.cli import build_parser

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "edgecache.toml"
# The start line of `edgecache serve`, which names the ports it bound.
LISTENING = re.compile(r"edgecache listening on 127\.0\.0\.1:(\d+) \(admin 127\.0\.0\.1:(\d+)\)")
# Seconds `serve --duration` runs: long enough for two requests on a loaded machine.
SERVE_DURATION = 5
# Seconds a subprocess gets to start or to exit; it only guards against a hang.
PROCESS_WAIT = 30


def clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("EDGECACHE_")}
    return {**env, **extra}


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", *args, env=env or clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_check_config_prints_settings() -> None:
    status, stdout, _ = await run_cli("check-config", str(DEFAULT_CONFIG))
    settings = json.loads(stdout)

    assert status == 0
    assert settings["cache"]["max_bytes"] == 268435456
    assert settings["rules"][0]["name"] == "product"


async def test_check_config_masks_token(tmp_path: Path) -> None:
    path = tmp_path / "edgecache.toml"
    path.write_text('[admin]\ntoken = "s3cret"\n')
    status, stdout, _ = await run_cli("check-config", str(path))

    assert status == 0
    assert json.loads(stdout)["admin"]["token"] == "********"
    assert "s3cret" not in stdout


async def test_check_config_invalid_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "edgecache.toml"
    path.write_text("[cache]\nmax_bytes = -1\n")
    status, stdout, stderr = await run_cli("check-config", str(path))

    assert status == 2
    assert stdout == ""
    assert stderr == "edgecache: config error: cache.max_bytes: invalid value -1; expected a positive integer\n"


async def test_check_config_missing_file() -> None:
    status, _, stderr = await run_cli("check-config", "/nonexistent/edgecache.toml")

    assert status == 2
    assert stderr == "edgecache: config error: config file '/nonexistent/edgecache.toml': not found\n"


async def test_check_config_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "edgecache.toml"
    path.write_text("[cache\n")
    status, _, stderr = await run_cli("check-config", str(path))

    assert status == 2
    assert stderr.startswith(f"edgecache: config error: config file '{path}': invalid TOML:")
    assert stderr.count("\n") == 1


async def test_serve_invalid_env_exits_2() -> None:
    status, _, stderr = await run_cli("serve", "--duration", "1",
                                      env=clean_env(EDGECACHE_ORIGIN_READ_TIMEOUT="soon"))

    assert status == 2
    assert stderr == ("edgecache: config error: EDGECACHE_ORIGIN_READ_TIMEOUT: invalid value 'soon'; "
                      "expected a positive number\n")


async def test_serve_invalid_flag_exits_2() -> None:
    status, _, stderr = await run_cli("serve", "--origin", "ftp://127.0.0.1", "--duration", "1")

    assert status == 2
    assert "Traceback" not in stderr
    assert stderr.startswith("edgecache: config error: origin.url: invalid value 'ftp://127.0.0.1'")


async def test_serve_subprocess_answers(origin, client: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", "serve", "--origin", origin.url,
        "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--duration", str(SERVE_DURATION),
        env=clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        port, admin_port = await read_bound_ports(process)
        health = await wait_for_health(client, f"http://127.0.0.1:{admin_port}/health")
        statuses = []
        for _ in range(2):
            async with client.get(f"http://127.0.0.1:{port}/shoe/p") as response:
                await response.read()
                statuses.append((response.status, response.headers["X-Cache"]))
        returncode = await asyncio.wait_for(process.wait(), SERVE_DURATION + PROCESS_WAIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert health["status"] == "ok"
    assert statuses == [(200, "MISS"), (200, "HIT")]
    assert origin.count("/shoe/p") == 1
    assert returncode == 0


async def read_bound_ports(process: asyncio.subprocess.Process) -> tuple[int, int]:
    """Read the output of `edgecache serve` up to its start line; return the proxy and admin ports."""
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(PROCESS_WAIT):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, f"edgecache exited before its start line: {lines!r}"
            lines.append(line)
            match = LISTENING.search(line)
            if match is not None:
                return int(match[1]), int(match[2])


async def wait_for_health(client: aiohttp.ClientSession, url: str) -> dict:
    async with asyncio.timeout(PROCESS_WAIT):
        while True:
            try:
                async with client.get(url) as response:
                    return await response.json()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)


async def test_serve_port_in_use_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, stderr = await run_cli("serve", "--origin", "http://127.0.0.1:9", "--listen", f"127.0.0.1:{port}",
                                          "--admin-listen", "127.0.0.1:0", "--duration", "5")

    assert status == 1
    assert stderr.startswith(f"edgecache: start-up failed: server.listen: cannot listen on 127.0.0.1:{port} (")
    assert stderr.endswith("); stop the process that uses it or choose another address\n")
    assert stderr.count("\n") == 1
    assert "Traceback" not in stderr



def shown_default(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize("command", ["serve", "demo", "demo-origin", "check-config", "purge", "stats", "explain"])
def test_every_option_has_help(command: str) -> None:
    parser = build_parser()
    [subparsers] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    for action in subparsers.choices[command]._actions:
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{command} {name} has no help"
        if action.default not in (None, False, argparse.SUPPRESS):
            assert f"default {shown_default(action.default)}" in action.help, f"{command} {name}: {action.help}"


@pytest.mark.parametrize("command", ["purge", "stats", "explain"])
async def test_admin_flag_help(command: str) -> None:
    code, stdout, _ = await run_cli(command, "--help", env=clean_env(COLUMNS="200"))
    assert code == 0
    [line] = [line for line in stdout.splitlines() if line.lstrip().startswith("--admin URL")]
    assert line.split("URL", 1)[1].strip() == "base URL of edgecache's admin listener (default http://127.0.0.1:8081)"


async def test_demo_origin_listen_help() -> None:
    code, stdout, _ = await run_cli("demo-origin", "--help", env=clean_env(COLUMNS="200"))
    assert code == 0
    [line] = [line for line in stdout.splitlines() if line.lstrip().startswith("--listen HOST:PORT")]
    assert line.split("HOST:PORT", 1)[1].strip() == (
        "demo storefront listener; port 0 picks a free port (default 127.0.0.1:9000)")


async def test_serve_port_in_use_logs_no_stop() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, stdout, _ = await run_cli("serve", "--origin", "http://127.0.0.1:9", "--listen", f"127.0.0.1:{port}",
                                          "--admin-listen", "127.0.0.1:0", "--duration", "5")

    assert status == 1
    assert "edgecache listening" not in stdout
    assert "edgecache stopped" not in stdout
    assert "stopping" not in stdout


@pytest.mark.parametrize("value", ['"lots"', "-5"])
async def test_check_config_positive_integer(tmp_path: Path, value: str) -> None:
    path = tmp_path / "edgecache.toml"
    path.write_text(f"[cache]\nmax_bytes = {value}\n")
    status, stdout, stderr = await run_cli("check-config", str(path))

    assert status == 2
    assert stdout == ""
    shown = "'lots'" if value == '"lots"' else value
    assert stderr == f"edgecache: config error: cache.max_bytes: invalid value {shown}; expected a positive integer\n"
