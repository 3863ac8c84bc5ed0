"""`edgecache serve --workers 2` as a subprocess on free loopback ports, with its log lines.

The supervisor binds both ports itself (port 0) and logs them, so no other server can
take a port between the test choosing it and the supervisor binding it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

TOKEN = "secret"
# Seconds two spawned workers get to import edgecache and listen.
START_LIMIT = 20.0
# Inventory events purge without refetching, so the figures show what they removed.
NO_REFRESH = {"EDGECACHE_INVENTORY_REFRESH_ON_EVENT": "false", "EDGECACHE_INVENTORY_STORM_INTERVAL": "0"}
# The supervisor's start line, which names the ports it bound.
STARTED = re.compile(r"supervisor of 2 workers: proxy 127\.0\.0\.1:(\d+), admin 127\.0\.0\.1:(\d+)$")


class Output:
    """The log lines an instance writes to stdout, with a barrier to wait for a line."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        try:
            async for line in stream:
                self.lines.append(line.decode(errors="replace"))
                self._arrived.set()
        finally:
            self._arrived.set()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_closed(self) -> None:
        """Return once the process has closed its output and every line is read."""
        await asyncio.wait_for(self._reader, START_LIMIT)

    async def wait_for(self, text: str, count: int = 1) -> None:
        """Return once `count` lines contain `text`; fail after START_LIMIT seconds."""
        async with asyncio.timeout(START_LIMIT):
            while self.count(text) < count:
                if self._reader.done():
                    raise AssertionError(f"output closed before {count} lines containing {text!r}:\n"
                                         + "".join(self.lines))
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_for_match(self, pattern: re.Pattern[str]) -> re.Match[str]:
        """Return the match of the first line that `pattern` finds; fail after START_LIMIT seconds."""
        async with asyncio.timeout(START_LIMIT):
            while True:
                for line in self.lines:
                    match = pattern.search(line.rstrip("\n"))
                    if match is not None:
                        return match
                if self._reader.done():
                    raise AssertionError(f"output closed without a line matching {pattern.pattern!r}:\n"
                                         + "".join(self.lines))
                self._arrived.clear()
                await self._arrived.wait()


@dataclass
class Instance:
    process: asyncio.subprocess.Process
    proxy: str
    admin: str
    output: Output


async def wait_for_workers(client: aiohttp.ClientSession, admin: str, *, pids_not: Collection[int] = ()) -> dict:
    """Return /health once every worker responds (with pids outside `pids_not`)."""
    deadline = time.monotonic() + START_LIMIT
    while True:
        try:
            async with client.get(f"{admin}/health") as response:
                health = await response.json()
                pids = set(health["workers"]["pids"])
                if health["workers"]["answered"] == 2 and pids.isdisjoint(pids_not):
                    return health
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, f"workers not ready after {START_LIMIT} s"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(origin, client: aiohttp.ClientSession, *, args: tuple[str, ...] = (),
                  env: dict[str, str] | None = None) -> AsyncIterator[Instance]:
    """Run `edgecache serve --workers 2` in front of `origin` until the block ends."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgecache", "serve", "--workers", "2", "--origin", origin.url,
        "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--duration", "60",
        *args, env={**os.environ, "EDGECACHE_SERVER_ACCESS_LOG": "false", **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = Output(process.stdout)
    try:
        ports = await output.wait_for_match(STARTED)
    except BaseException:
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise
    started = Instance(process, f"http://127.0.0.1:{ports[1]}", f"http://127.0.0.1:{ports[2]}", output)
    try:
        await wait_for_workers(client, started.admin)
        yield started
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 20)


async def send_events(client: aiohttp.ClientSession, instance: Instance, body: object) -> dict:
    async with client.post(instance.admin + "/events/inventory", json=body,
                           headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
        return await response.json()
