"""config/nginx-lb.conf in front of two nodes sharing Redis, as docs/deploy.md sets them up, on loopback."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from edgecache.server import Edgecache
from edgecache.shared import PurgeRequest

from conftest import admin_url
from redis_process import redis_server, shared_settings  # noqa: F401

# Debian installs nginx in /usr/sbin, which is not on every user's PATH.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
CONFIG = Path(__file__).resolve().parent.parent / "config" / "nginx-lb.conf"
TOKEN = "secret"
# Seconds nginx gets to accept connections.
START_TIMEOUT = 5.0
# Seconds a purge may take to reach another node's memory store.
# Redis pub/sub delivers it with no timer in between, so this bound only catches a
# message that never arrives and is generous for a loaded 2-core machine.
PROPAGATION_LIMIT = 1.0

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian package nginx)")


def loopback_config(text: str, *, listen_port: int, node_ports: tuple[int, int], directory: Path) -> str:
    """Return the balancer config with every address on loopback and every file under `directory`."""
    for name, port in zip(("edgecache-1", "edgecache-2"), node_ports):
        assert f"server {name}:8080 " in text
        text = text.replace(f"server {name}:8080 ", f"server 127.0.0.1:{port} ")
    assert "listen 8080;" in text
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen_port} reuseport;")
    files = "".join(f"    {name}_temp_path {directory / name};\n"
                    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = text.replace("http {\n", f"http {{\n    access_log off;\n{files}", 1)
    return f"pid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'};\n" + text


class Balancer:
    """nginx on a loopback port that the test reserves first.

    The test binds the port with SO_REUSEPORT and never listens on it, and nginx joins
    it with `reuseport`. So no other server can take the port before nginx binds it,
    and only nginx accepts connections on it.
    """

    def __init__(self, directory: Path, node_ports: tuple[int, int]) -> None:
        self.reserved = socket.socket()
        self.reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.reserved.bind(("127.0.0.1", 0))
        self.port = int(self.reserved.getsockname()[1])
        self.config = directory / "nginx.conf"
        self.config.write_text(loopback_config(CONFIG.read_text(), listen_port=self.port, node_ports=node_ports,
                                               directory=directory))
        assert NGINX is not None
        self.process = subprocess.Popen([NGINX, "-p", str(directory), "-c", str(self.config), "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert self.process.poll() is None, f"nginx exited; see {directory / 'error.log'}"
                assert time.monotonic() < deadline, f"nginx not listening after {START_TIMEOUT} s"
                time.sleep(0.01)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=5)
        self.reserved.close()


@pytest.fixture
async def nodes(origin, redis_server, make_edgecache) -> tuple[Edgecache, Edgecache]:
    raw = {**shared_settings(redis_server.url), "admin": {"token": TOKEN}}
    return await make_edgecache(origin.url, raw), await make_edgecache(origin.url, raw)


@pytest.fixture
def balancer(nodes, tmp_path: Path) -> Iterator[Balancer]:
    started = Balancer(tmp_path, (nodes[0].proxy_port, nodes[1].proxy_port))
    yield started
    started.stop()


async def x_cache(client: aiohttp.ClientSession, url: str) -> str:
    async with client.get(url) as response:
        assert response.status == 200
        await response.read()
        return response.headers["X-Cache"]


def purge_barrier(node: Edgecache) -> asyncio.Event:
    """Return an event set when the node applies a purge published by another node."""
    assert node.shared is not None
    applied = asyncio.Event()
    apply = node.shared.listener.apply

    def apply_and_signal(request: PurgeRequest) -> None:
        apply(request)
        applied.set()

    node.shared.listener.apply = apply_and_signal
    return applied


async def test_second_node_hits_redis(origin, nodes, balancer, client) -> None:
    node_a, node_b = nodes

    assert [await x_cache(client, balancer.url("/shoe/p")) for _ in range(2)] == ["MISS", "HIT"]
    assert origin.count("/shoe/p") == 1
    assert len(node_a.store) == 1
    assert len(node_b.store) == 1


async def test_purge_one_node_clears_both(origin, nodes, balancer, client) -> None:
    node_a, node_b = nodes
    await x_cache(client, balancer.url("/shoe/p"))
    await x_cache(client, balancer.url("/shoe/p"))
    applied = purge_barrier(node_b)

    async with client.post(admin_url(node_a, "/purge"), json={"paths": ["/shoe/p"]},
                           headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert await response.json() == {"purged": 1, "soft": False, "shared": "done"}
    await asyncio.wait_for(applied.wait(), PROPAGATION_LIMIT)

    assert [await x_cache(client, balancer.url("/shoe/p")) for _ in range(2)] == ["MISS", "HIT"]
    assert origin.count("/shoe/p") == 2


async def test_stopped_node_skipped(origin, nodes, balancer, client) -> None:
    node_a, node_b = nodes
    await x_cache(client, balancer.url("/shoe/p"))
    await x_cache(client, balancer.url("/shoe/p"))

    await node_b.stop()

    assert [await x_cache(client, balancer.url("/shoe/p")) for _ in range(4)] == ["HIT"] * 4
    assert origin.count("/shoe/p") == 1
