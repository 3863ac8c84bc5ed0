"""The buffered log handler and the cached-time formatter used by `edgecache serve`."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import make_mocked_request

from edgecache import access_log
from edgecache.log import access_logger
from edgecache.log_output import CachedTimeFormatter, PeriodicFlushHandler

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def make_record(created: float, level: int = logging.INFO, message: str = "line") -> logging.LogRecord:
    record = logging.LogRecord("edgecache.access", level, __file__, 1, message, None, None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_cached_time_matches_formatter() -> None:
    cached = CachedTimeFormatter(FORMAT)
    plain = logging.Formatter(FORMAT)
    for created in (1_700_000_000.125, 1_700_000_000.999, 1_700_000_001.0, 1_700_000_061.5, 1_700_000_000.5):
        record = make_record(created)
        assert cached.format(record) == plain.format(record)


def test_handler_defers_info_flush() -> None:
    stream = CountingStream()
    handler = PeriodicFlushHandler(stream, interval=3600)
    try:
        handler.handle(make_record(1.0))
        handler.handle(make_record(2.0))
        assert stream.flushes == 0
        assert stream.getvalue() == "line\nline\n"
    finally:
        handler.close()


def test_handler_flushes_warning_at_once() -> None:
    stream = CountingStream()
    handler = PeriodicFlushHandler(stream, interval=3600)
    try:
        handler.handle(make_record(1.0, logging.WARNING))
        assert stream.flushes == 1
    finally:
        handler.close()


def test_handler_flushes_on_close() -> None:
    stream = CountingStream()
    handler = PeriodicFlushHandler(stream, interval=3600)
    handler.handle(make_record(1.0))
    handler.close()
    assert stream.flushes == 1


def test_close_stops_flush_loop() -> None:
    handler = PeriodicFlushHandler(io.StringIO(), interval=60)
    handler.close()
    handler._flusher.join(timeout=5)

    assert not handler._flusher.is_alive()
    # The loop must still see a stop event after logging.Handler.close() ran, because the
    # flusher thread can reach its next wait only after close() returned.
    handler._flush_periodically()


def test_formatter_writes_bare_logger_message() -> None:
    formatter = CachedTimeFormatter(FORMAT, bare_loggers=frozenset({"edgecache.access"}))
    assert formatter.format(make_record(1.0, message="GET /a/p")) == "GET /a/p"
    other = logging.LogRecord("edgecache.server", logging.INFO, __file__, 1, "started", None, None)
    assert formatter.format(other).endswith(" INFO edgecache.server started")


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def serve_logging() -> Iterator[tuple[io.StringIO, PeriodicFlushHandler]]:
    """Route the root logger to one PeriodicFlushHandler, as `edgecache serve` does, then restore it."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    handler = PeriodicFlushHandler(stream, interval=3600)
    handler.setFormatter(CachedTimeFormatter(FORMAT, bare_loggers=frozenset({"edgecache.access"})))
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    access_log.write_access_lines_to(handler)
    try:
        yield stream, handler
    finally:
        access_log._direct_handler = None
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        handler.close()


def log_hit() -> None:
    request = make_mocked_request("GET", "/a/p", headers={"User-Agent": "probe"})
    access_log.log_access(request, 200, 12, outcome="hit", reason=None, age=7, duration=0.25, json_format=False)


def test_access_line_written_directly(serve_logging) -> None:
    stream, _ = serve_logging
    log_hit()
    line = stream.getvalue()
    assert line.endswith('"GET /a/p HTTP/1.1" 200 12 "-" "probe" outcome=hit reason=- age=7 duration=0.250000\n')
    assert line.count("\n") == 1


def test_access_line_json_written_directly(serve_logging) -> None:
    stream, _ = serve_logging
    request = make_mocked_request("GET", "/a/p?x=1")
    access_log.log_access(request, 200, 12, outcome="bypass", reason="query", age=0, duration=0.5, json_format=True)
    fields = json.loads(stream.getvalue())
    assert fields["target"] == "/a/p?x=1"
    assert fields["outcome"] == "bypass"
    assert fields["reason"] == "query"


def test_access_record_with_other_handler(serve_logging) -> None:
    stream, _ = serve_logging
    listener = ListHandler()
    access_logger.addHandler(listener)
    try:
        log_hit()
    finally:
        access_logger.removeHandler(listener)
    assert len(listener.records) == 1
    assert listener.records[0].outcome == "hit"
    assert listener.records[0].age == 7
    assert stream.getvalue() == listener.records[0].getMessage() + "\n"
