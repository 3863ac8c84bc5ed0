"""The supervisor's admin listener: figures of the whole instance, purges sent to every worker.

GET /stats and /metrics add up every live worker's figures, read from its Unix
socket. Any POST (purges, figure resets) is sent to every live worker, and the
response waits for all of them. It is the first failure when a worker fails,
else the workers' JSON documents with their numbers summed. With a shared tier,
only the first worker applies a purge to Redis and the other nodes. An inventory event
is decided by one worker (against Redis when the shared tier is on), and the
others adopt the SKU records it returns before the response, so every worker's
memory copies are purged and the event is counted once. GET /entries lists the
entries of every live worker, each with the worker's index. Other GET paths are
served by the first live worker.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from ..admin import CLIENT_HEADER, json_error, json_response
from ..log import admin_logger
from ..metrics import build_registry, render
from .figures import merge_stats, sum_figures
from .worker import ADOPT_PATH, DECIDE_PATH, FIGURES_PATH, LOCAL_PURGE_PATH

if TYPE_CHECKING:
    from .supervisor import Supervisor, WorkerSlot

SUPERVISOR_KEY: web.AppKey["Supervisor"] = web.AppKey("supervisor")
# Seconds the supervisor waits for one worker's admin response.
WORKER_TIMEOUT = 10.0
# Request headers passed on to workers.
FORWARDED_HEADERS = ("Authorization", "Content-Type")
# Response headers of a worker's GET passed back to the client.
PASSED_BACK_HEADERS = ("Content-Type", "Content-Encoding", "Cache-Control", "ETag", "Last-Modified")


async def _call(slot: WorkerSlot, method: str, path: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Send one admin request to a worker over its Unix socket; return status and JSON (or text)."""
    connector = aiohttp.UnixConnector(path=slot.socket_path)
    timeout = aiohttp.ClientTimeout(total=WORKER_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.request(method, f"http://worker{path}", data=body, headers=headers) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


async def _call_all(supervisor: Supervisor, method: str, path: str, **options: Any) -> list[tuple[int, Any]]:
    """Send a request to every live worker at once; a worker that does not respond gives status 502."""
    return await _call_each([slot for slot in supervisor.slots if slot.alive()], method, path, **options)


async def _call_each(slots: list[WorkerSlot], method: str, path: str, **options: Any) -> list[tuple[int, Any]]:
    results = await asyncio.gather(*(_call(slot, method, path, **options) for slot in slots),
                                   return_exceptions=True)
    answers: list[tuple[int, Any]] = []
    for slot, result in zip(slots, results):
        if isinstance(result, BaseException):
            if not isinstance(result, (aiohttp.ClientError, OSError, asyncio.TimeoutError)):
                raise result
            admin_logger.warning("worker %d failed to respond to %s %s: %r", slot.index, method, path, result)
            answers.append((502, {"error": f"worker {slot.index} failed to respond: {result!r}"}))
        else:
            answers.append(result)
    return answers


async def _instance_figures(supervisor: Supervisor) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Return the summed /stats document, the merged Stats and the summed cache figures."""
    parts = [data for status, data in await _call_all(supervisor, "GET", FIGURES_PATH) if status == 200]
    stats = merge_stats([part["stats"] for part in parts])
    cache = sum_figures([part["cache"] for part in parts])
    if parts:
        cache["max_variants"] = parts[0]["cache"]["max_variants"]
    shared = sum_figures([part["shared"] for part in parts])
    shared["state"] = _worst_state(part["shared"]["state"] for part in parts)
    snapshot = stats.snapshot(cache=cache)
    snapshot["shared"] = shared
    snapshot["workers"] = _workers(supervisor, answered=len(parts))
    return snapshot, stats, cache


def _worst_state(states: Iterable[str]) -> str:
    """Return the shared tier's state for the instance: down when any worker reports it down."""
    seen = set(states)
    if "down" in seen:
        return "down"
    if "up" in seen:
        return "up"
    return "off"


def _workers(supervisor: Supervisor, *, answered: int) -> dict[str, Any]:
    return {"count": len(supervisor.slots), "answered": answered,
            "restarts": sum(slot.restarts for slot in supervisor.slots),
            "pids": [slot.pid if slot.alive() else None for slot in supervisor.slots]}


async def stats(request: web.Request) -> web.Response:
    snapshot, _, _ = await _instance_figures(request.app[SUPERVISOR_KEY])
    return json_response(snapshot)


async def metrics(request: web.Request) -> web.Response:
    snapshot, merged, cache = await _instance_figures(request.app[SUPERVISOR_KEY])
    body = render(build_registry(merged, lambda: cache, lambda: snapshot["shared"]))
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def health(request: web.Request) -> web.Response:
    supervisor = request.app[SUPERVISOR_KEY]
    answers = [data for status, data in await _call_all(supervisor, "GET", "/health") if status == 200]
    ready = len(answers) == len(supervisor.slots)
    return json_response({
        "status": "ok" if ready else "degraded",
        "uptime_seconds": round(time.time() - supervisor.started_at, 3),
        "entries": sum(answer["entries"] for answer in answers),
        "shared": _worst_state(answer.get("shared", "off") for answer in answers),
        "workers": _workers(supervisor, answered=len(answers)),
    }, status=200 if answers else 503)


async def fan_out(request: web.Request) -> web.Response:
    """Send a POST to every worker and return when all have applied it."""
    supervisor = request.app[SUPERVISOR_KEY]
    if request.path.startswith("/internal/"):
        return json_error(404, f"{request.path} is not served by the supervisor")
    body = await request.read()
    headers = forwarded_headers(request)
    if request.path == "/purge" and supervisor.settings.cache.shared_url:
        # One worker purges Redis and publishes the purge to the other nodes. Then the
        # others purge their memory only, after Redis can no longer return the purged entries.
        slots = [slot for slot in supervisor.slots if slot.alive()]
        answers = await _call_each(slots[:1], "POST", request.path_qs, body=body, headers=headers)
        if answers and answers[0][0] == 200:
            answers += await _call_each(slots[1:], "POST", LOCAL_PURGE_PATH, body=body, headers=headers)
    else:
        answers = await _call_all(supervisor, "POST", request.path_qs, body=body, headers=headers)
    if not answers:
        return json_error(503, "no worker is running; try again when /health shows the workers")
    failed = next(((status, data) for status, data in answers if status != 200), None)
    if failed is not None:
        status, data = failed
        return json_response(data, status=status) if not isinstance(data, str) else web.Response(
            status=status, text=data)
    documents = [data for _, data in answers]
    if all(isinstance(document, dict) for document in documents):
        return json_response({**sum_figures(documents), "workers": len(documents)})
    return json_response(documents[0])


async def inventory_events(request: web.Request) -> web.Response:
    """Have one worker decide a batch of inventory events, then every other worker adopt the result."""
    supervisor = request.app[SUPERVISOR_KEY]
    slots = [slot for slot in supervisor.slots if slot.alive()]
    if not slots:
        return json_error(503, "no worker is running; try again when /health shows the workers")
    body = await request.read()
    headers = forwarded_headers(request)
    [(status, decided)] = await _call_each(slots[:1], "POST", DECIDE_PATH, body=body, headers=headers)
    if status != 200:
        return _passed_on(status, decided)
    message = json.dumps(decided["message"]).encode()
    answers = await _call_each(slots[1:], "POST", ADOPT_PATH, body=message,
                               headers={"Content-Type": "application/json"})
    failed = next(((status, data) for status, data in answers if status != 200), None)
    if failed is not None:
        # The deciding worker applied the events, so a retry of the batch is ignored as old
        # versions and would not reach this worker. The error names the worker that missed them.
        return _passed_on(*failed)
    result = decided["result"]
    for _, adopted in answers:
        result["purged"] += adopted["purged"]
        result["deferred"] += adopted["deferred"]
    return json_response({**result, "workers": len(slots)})


def forwarded_headers(request: web.Request) -> dict[str, str]:
    """Return the headers a POST passes on to workers, with the client's address for their log lines."""
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
    headers[CLIENT_HEADER] = request.remote or "an unknown address"
    return headers


def _passed_on(status: int, data: Any) -> web.Response:
    if isinstance(data, str):
        return web.Response(status=status, text=data)
    return json_response(data, status=status)


async def entries(request: web.Request) -> web.Response:
    """Merge every live worker's /entries document for one path.

    Each worker has a memory store of its own, so each entry carries the index of the
    worker that stores it. The kernel hands a request to any worker, so the top-level
    decision is the first storing worker's, else the first worker's. When no worker
    responds with 200, the first failure is passed on.
    """
    supervisor = request.app[SUPERVISOR_KEY]
    slots = [slot for slot in supervisor.slots if slot.alive()]
    if not slots:
        return json_error(503, "no worker is running; try again when /health shows the workers")
    answers = await _call_each(slots, "GET", request.path_qs)
    documents = [(slot, data) for slot, (status, data) in zip(slots, answers) if status == 200]
    if not documents:
        return _passed_on(*answers[0])
    first = documents[0][1]
    storing = next((document for _, document in documents if document["stored"]), first)
    merged = {
        **first,
        "stored": storing["stored"],
        "entries": [{**entry, "worker": slot.index} for slot, document in documents for entry in document["entries"]],
        "decision": storing["decision"],
        "workers": _workers(supervisor, answered=len(documents)),
    }
    return json_response(merged)


async def first_worker(request: web.Request) -> web.StreamResponse:
    """Serve other GET paths (the dashboard page, its script and style sheet) from the first live worker.

    The body and its Content-Type pass through unchanged, because browsers refuse a
    style sheet, and with nosniff a script, served under another type.
    """
    supervisor = request.app[SUPERVISOR_KEY]
    slot = next((slot for slot in supervisor.slots if slot.alive()), None)
    if slot is None:
        return json_error(503, "no worker is running")
    connector = aiohttp.UnixConnector(path=slot.socket_path)
    timeout = aiohttp.ClientTimeout(total=WORKER_TIMEOUT)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
            async with session.get(f"http://worker{request.path_qs}") as response:
                body = await response.read()
                headers = {name: response.headers[name] for name in PASSED_BACK_HEADERS if name in response.headers}
                return web.Response(status=response.status, body=body, headers=headers)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        admin_logger.warning("worker %d failed to respond to GET %s: %r", slot.index, request.path, exc)
        return json_error(502, f"worker {slot.index} failed to respond: {exc!r}")


def create_supervisor_app(supervisor: Supervisor) -> web.Application:
    app = web.Application()
    app[SUPERVISOR_KEY] = supervisor
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/entries", entries)
    app.router.add_post("/events/inventory", inventory_events)
    app.router.add_post("/{tail:.*}", fan_out)
    app.router.add_get("/{tail:.*}", first_worker)
    return app

