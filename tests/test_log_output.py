"""The buffered log handler and the cached-time formatter used by `edgecache serve`."""

from __future__ import annotations

import io
import logging

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
