"""A real redis-server on a free loopback port, for tests of the shared tier.

Test modules import the fixtures from here. Tests are skipped, with the reason,
when the redis-server program is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecache.server import Edgecache

from conftest import EdgecacheFactory

# Seconds redis-server gets to accept connections after it starts.
START_TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """One redis-server without persistence, stoppable and restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"redis-server did not start on port {self.port} within {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)
            self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server); .ci/run installs it")
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()


def shared_settings(redis_url: str, **cache: Any) -> dict[str, Any]:
    """Return raw settings for a node of the shared tier, with short timeouts for tests."""
    return {"cache": {"shared_url": redis_url, "shared_timeout": 0.5, "shared_retry_interval": 0.05, **cache}}


@pytest.fixture
async def two_nodes(origin: Any, redis_server: RedisProcess,
                    make_edgecache: EdgecacheFactory) -> AsyncIterator[tuple[Edgecache, Edgecache]]:
    """Two edgecache nodes on loopback sharing one Redis and one recording origin."""
    raw = shared_settings(redis_server.url)
    first = await make_edgecache(origin.url, raw)
    second = await make_edgecache(origin.url, raw)
    yield first, second
