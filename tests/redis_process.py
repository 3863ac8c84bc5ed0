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

# Seconds redis-server gets to accept connections after it starts; it only guards against a hang.
START_TIMEOUT = 20.0
# Ports tried in turn when another program takes the chosen one before redis-server binds it.
START_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PortTakenError(RuntimeError):
    """Another program listens on the port that redis-server was to bind."""


def server_pid(port: int) -> int:
    """Return the process id that the Redis server on `port` reports in INFO server."""
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        sock.sendall(b"INFO server\r\n")
        data = b""
        while b"process_id:" not in data or not data.split(b"process_id:", 1)[1].count(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionResetError(f"port {port} closed the connection before sending INFO server")
            data += chunk
    return int(data.split(b"process_id:", 1)[1].split(b"\r\n", 1)[0])


class RedisProcess:
    """One redis-server without persistence, stoppable and restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start_on_free_port(self) -> None:
        """Start redis-server, choosing another free port when another program takes the chosen one."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self.start()
                return
            except PortTakenError:
                if attempt == START_ATTEMPTS:
                    raise
                self.port = free_port()

    def start(self) -> None:
        """Start redis-server on self.port and wait until it, and not another server, responds there."""
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise PortTakenError(f"redis-server exited with code {code} while starting on port {self.port}, "
                                     "most likely because another program listens there")
            try:
                pid = server_pid(self.port)
            except (OSError, ValueError):
                time.sleep(0.01)
                continue
            if pid != self.process.pid:
                self.stop()
                raise PortTakenError(f"another Redis server (pid {pid}) listens on port {self.port}")
            return
        self.stop()
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
    server.start_on_free_port()
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
