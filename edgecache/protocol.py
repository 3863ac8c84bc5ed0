"""The client-facing HTTP protocol: aiohttp's, with limits a public listener needs.

On top of aiohttp's request handler this adds three things. A new connection must
send its first request's headers within server.header_timeout, which guards against
slowloris clients (aiohttp 3.14 has no such deadline). An oversized request line
gets 414 and an oversized header field 431, where aiohttp answers 400. A malformed
request logs one rate-limited warning line instead of a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from .log import server_logger

# At most one warning per this many seconds about malformed client requests.
BAD_REQUEST_LOG_INTERVAL = 10.0


class RateLimitedWarning:
    """Log a repeated warning at most once per interval, counting the ones left out."""

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self.logger = logger
        self.interval = interval
        self.suppressed = 0
        self._last = -interval

    def warning(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self.suppressed += 1
            return
        self._last = now
        if self.suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self.logger.warning(message, *args)


bad_request_log = RateLimitedWarning(server_logger, BAD_REQUEST_LOG_INTERVAL)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's request handler with a header deadline and precise status codes."""

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        self._max_line = int(kwargs.get("max_line_size", 8190))
        # The start of the message being received, enough to tell whether its request line is too long.
        self._line_prefix = b""
        self._line_too_long = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._header_deadline = asyncio.get_running_loop().call_later(self._header_timeout,
                                                                       self._headers_timed_out)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        pending = self._request_count
        if len(self._line_prefix) <= self._max_line:
            self._line_prefix += data[:self._max_line + 2 - len(self._line_prefix)]
            end = self._line_prefix.find(b"\n")
            self._line_too_long = (end == -1 and len(self._line_prefix) > self._max_line) or end > self._max_line + 1
        super().data_received(data)
        if self._request_count != pending:
            # A request was parsed (or rejected): the next bytes start a new request line.
            self._line_prefix = b""
            self._cancel_header_deadline()

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_timed_out(self) -> None:
        self._header_deadline = None
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        bad_request_log.warning("closed a connection from %s: no request headers within %.1f s",
                                peer, self._header_timeout)
        self.force_close()
        if self.transport is not None:
            self.transport.close()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if isinstance(exc, LineTooLong):
            if self._line_too_long:
                status, message = 414, "request line too long"
            else:
                status, message = 431, "request header field too large"
        return super().handle_error(request, status, exc, message)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        error = kw.get("exc_info")
        if isinstance(error, HttpProcessingError):
            bad_request_log.warning("rejected a malformed request from %s: %s",
                                    self.transport.get_extra_info("peername") if self.transport else None,
                                    error.message.splitlines()[0] if error.message else type(error).__name__)
            return
        super().log_exception(*args, **kw)


class GuardedServer(web.Server):
    """An aiohttp low-level server whose connections use GuardedRequestHandler."""

    def __init__(self, handler: Any, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs)
