"""The supervisor of `edgecache serve --workers N`: starts, watches and stops worker processes.

The supervisor serves no shopper traffic. It runs N workers, each a whole Edgecache
sharing the proxy port. It restarts a worker that dies and forwards SIGTERM to
them. On SIGHUP it loads the settings itself. An invalid file is logged once and
nothing changes. Valid settings are kept for workers started later, and SIGHUP
is forwarded so that every running worker reloads them as one process would.
Its admin listener adds up the workers' figures and sends purges to every worker
before it responds (see workers/admin.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

from aiohttp import web

from ..config import Settings
from ..errors import ConfigError, ListenError
from ..reload import keep_restart_only
from ..log import workers_logger
from ..server import split_host_port
from .worker import run_worker

# Seconds between two checks that every worker is alive.
WATCH_INTERVAL = 0.2
# A worker that dies sooner than this many seconds after its start is restarted only
# after the same delay, so that a worker failing at startup does not spin the CPU.
MIN_UPTIME = 1.0
# Seconds on top of server.shutdown_timeout that workers get to exit before SIGKILL.
EXIT_GRACE = 5.0


@dataclass(slots=True)
class WorkerSlot:
    """One worker position: its process, its admin socket and its restart count."""

    index: int
    socket_path: str
    process: BaseProcess | None = None
    started_at: float = 0.0
    restarts: int = 0
    restart_at: float = field(default=0.0)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


class Supervisor:
    def __init__(self, settings: Settings, *, workers: int, load_settings: Callable[[], Settings] | None = None) -> None:
        self.settings = settings
        # Passed to every worker for its own SIGHUP reload; None turns reloads off.
        self.load_settings = load_settings
        self.started_at = time.time()
        self.admin_token = settings.admin_token()
        self._directory = tempfile.TemporaryDirectory(prefix="edgecache-workers-")
        # Spawned processes start from a fresh interpreter: no event loop or sockets inherited.
        self._context = multiprocessing.get_context("spawn")
        self.slots = [WorkerSlot(index, str(Path(self._directory.name) / f"worker-{index}.sock"))
                      for index in range(workers)]
        self._stopping = False
        self.admin_port = 0

    def __repr__(self) -> str:
        alive = sum(slot.alive() for slot in self.slots)
        return f"<Supervisor workers={len(self.slots)} alive={alive} admin_port={self.admin_port}>"

    def start_worker(self, slot: WorkerSlot) -> None:
        if os.path.exists(slot.socket_path):
            os.unlink(slot.socket_path)
        process = self._context.Process(target=run_worker,
                                        args=(self.settings, slot.index, slot.socket_path, self.load_settings),
                                        name=f"edgecache-worker-{slot.index}", daemon=False)
        process.start()
        slot.process, slot.started_at = process, time.monotonic()
        workers_logger.info("worker %d started (pid %d)", slot.index, process.pid)

    async def watch(self) -> None:
        """Restart workers that exit, until the supervisor stops."""
        while not self._stopping:
            now = time.monotonic()
            for slot in self.slots:
                if slot.alive() or self._stopping:
                    continue
                if slot.restart_at == 0.0:
                    assert slot.process is not None
                    uptime = now - slot.started_at
                    workers_logger.error("worker %d (pid %s) exited with code %s after %.1f s; starting a new one",
                                         slot.index, slot.pid, slot.process.exitcode, uptime)
                    slot.restart_at = now + (MIN_UPTIME if uptime < MIN_UPTIME else 0.0)
                if now >= slot.restart_at:
                    slot.restart_at = 0.0
                    slot.restarts += 1
                    self.start_worker(slot)
            await asyncio.sleep(WATCH_INTERVAL)

    def reload(self) -> None:
        """Load the settings for later workers, then have every running worker reload them."""
        if self.load_settings is None:
            workers_logger.warning("reload: no settings loader, so SIGHUP is ignored")
            return
        try:
            new = self.load_settings()
        except (ConfigError, OSError) as exc:
            workers_logger.error("reload failed, keeping the running settings in every worker: %s", exc)
            return
        self.settings = keep_restart_only(self.settings, new)
        self.admin_token = self.settings.admin_token()
        self.forward(signal.SIGHUP)

    def forward(self, signum: int) -> None:
        for slot in self.slots:
            if slot.alive() and slot.pid is not None:
                os.kill(slot.pid, signum)
        workers_logger.info("sent %s to %d workers", signal.Signals(signum).name, len(self.slots))

    async def stop_workers(self) -> None:
        """Send SIGTERM to every worker and wait for them; SIGKILL the ones that do not exit in time."""
        self._stopping = True
        self.forward(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.server.shutdown_timeout + EXIT_GRACE
        while any(slot.alive() for slot in self.slots) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for slot in self.slots:
            if slot.alive() and slot.process is not None:
                workers_logger.error("worker %d (pid %s) did not exit in time; killing it", slot.index, slot.pid)
                slot.process.kill()
            if slot.process is not None:
                slot.process.join(timeout=1.0)
        self._directory.cleanup()


def reserve_proxy_port(supervisor: Supervisor) -> socket.socket:
    """Bind server.listen with SO_REUSEPORT, without listening, and give its port to later workers.

    The bound socket keeps other programs off the port while no worker has it bound, and a
    port of 0 becomes one free port that every worker shares. The kernel spreads
    connections over listening sockets only, so this one never receives any.
    """
    listen = supervisor.settings.server.listen
    host, port = split_host_port(listen)
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                                flags=socket.AI_PASSIVE)[0]
        reserved = socket.socket(family, kind, protocol)
    except OSError as exc:
        raise ListenError(f"server.listen: cannot listen on {listen} ({exc.strerror or exc}); "
                          "choose another address") from exc
    try:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind(address)
    except OSError as exc:
        reserved.close()
        raise ListenError(f"server.listen: cannot listen on {listen} ({exc.strerror or exc}); "
                          "stop the process that uses it or choose another address") from exc
    # NOTE: a host name that resolves to several addresses (localhost) reserves the port on
    # the first one only, so with port 0 a worker may fail to bind it on the others.
    bound = f"{listen.rpartition(':')[0]}:{reserved.getsockname()[1]}"
    supervisor.settings = with_listen(supervisor.settings, bound)
    if supervisor.load_settings is not None and bound != listen:
        # Reloads then see the bound port instead of port 0, so they do not log a change.
        supervisor.load_settings = functools.partial(load_with_bound_listen, supervisor.load_settings,
                                                     configured=listen, bound=bound)
    return reserved


def with_listen(settings: Settings, listen: str) -> Settings:
    return dataclasses.replace(settings, server=dataclasses.replace(settings.server, listen=listen))


def load_with_bound_listen(load: Callable[[], Settings], *, configured: str, bound: str) -> Settings:
    """Load the settings with `load`, replacing server.listen by `bound` while it is still `configured`."""
    settings = load()
    if settings.server.listen != configured:
        return settings
    return with_listen(settings, bound)


async def run_supervisor(supervisor: Supervisor, *, duration: float | None = None) -> None:
    """Start the admin listener and the workers; run until SIGTERM or SIGINT (or `duration` seconds).

    Both ports are bound before the first worker starts, so a port in use ends the
    start with a ListenError and leaves no worker behind.
    """
    from .admin import create_supervisor_app

    reserved = reserve_proxy_port(supervisor)
    runner = web.AppRunner(create_supervisor_app(supervisor), handle_signals=False, access_log=None)
    await runner.setup()
    admin_listen = supervisor.settings.server.admin_listen
    host, port = split_host_port(admin_listen)
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        reserved.close()
        await runner.cleanup()
        raise ListenError(f"server.admin_listen: cannot listen on {admin_listen} ({exc.strerror or exc}); "
                          "stop the process that uses it or choose another address") from exc
    supervisor.admin_port = next(int(address[1]) for address in runner.addresses if isinstance(address, tuple))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, supervisor.reload)
    for slot in supervisor.slots:
        supervisor.start_worker(slot)
    workers_logger.info("supervisor of %d workers: proxy %s, admin %s:%d", len(supervisor.slots),
                        supervisor.settings.server.listen, admin_listen.rpartition(":")[0], supervisor.admin_port)
    watcher = asyncio.create_task(supervisor.watch())
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except TimeoutError:
        pass
    finally:
        watcher.cancel()
        workers_logger.info("stopping %d workers", len(supervisor.slots))
        await supervisor.stop_workers()
        await runner.cleanup()
        reserved.close()
        workers_logger.info("supervisor stopped: %d workers exited", len(supervisor.slots))
