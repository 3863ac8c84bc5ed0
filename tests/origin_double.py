"""A scriptable origin for tests: responds per path as scripted and records every request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDictProxy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorded:
    method: str
    path_qs: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class Script:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"hello"
    delay: float = 0.0


class RecordingOrigin:
    """Scripted responses by path; unscripted paths get 200 with a per-request counter body."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.scripts: dict[str, Script | Handler] = {}
        self.gate: asyncio.Event | None = None

    def script(self, path: str, *, status: int = 200, headers: dict[str, str] | None = None,
               body: bytes = b"hello", delay: float = 0.0) -> None:
        self.scripts[path] = Script(status, headers or {}, body, delay)

    def handler(self, path: str, handler: Handler) -> None:
        self.scripts[path] = handler

    def count(self, path: str | None = None) -> int:
        return sum(1 for r in self.requests if path is None or r.path_qs.split("?")[0] == path)

    def validators(self, path: str) -> list[tuple[str | None, str | None]]:
        """Return (If-None-Match, If-Modified-Since) of each request for `path`, in order."""
        return [(r.headers.get("If-None-Match"), r.headers.get("If-Modified-Since"))
                for r in self.requests if r.path_qs.split("?")[0] == path]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path_qs, request.headers, body))
        if self.gate is not None:
            await self.gate.wait()
        script = self.scripts.get(request.path)
        if script is None:
            return web.Response(text=f"page {request.path_qs} #{len(self.requests)}",
                                headers={"Cache-Control": "max-age=60"})
        if not isinstance(script, Script):
            return await script(request)
        if script.delay:
            await asyncio.sleep(script.delay)
        return web.Response(status=script.status, headers=script.headers, body=script.body)
