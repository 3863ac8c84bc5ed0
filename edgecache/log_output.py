"""Log output for `edgecache serve`: one stream handler made cheap enough for an access line per request.

A plain StreamHandler flushes its stream after every record, and with
PYTHONUNBUFFERED set (as in many container images) sys.stdout writes through on
every call, so the access log cost one write system call per request. This module
writes to its own buffered stream over stdout's file descriptor and flushes it at
most every FLUSH_INTERVAL_SECONDS, at once for warnings and errors, and when the
handler is closed. A daemon thread flushes lines left in the buffer when traffic stops.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from typing import IO

# Longest time an INFO line (an access line, for instance) waits in the buffer.
FLUSH_INTERVAL_SECONDS = 0.5
# Size of the stdout buffer; a fuller buffer is written out before the interval ends.
BUFFER_BYTES = 64 * 1024


def buffered_stdout() -> IO[str]:
    """Return a buffered text stream over stdout's file descriptor, or sys.stdout when it has none."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return sys.stdout  # Replaced by a test runner or an embedding program: leave it alone.
    return open(fd, "w", buffering=BUFFER_BYTES, encoding=sys.stdout.encoding or "utf-8",
                errors="backslashreplace", closefd=False)


class PeriodicFlushHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that flushes on a timer instead of after every record."""

    def __init__(self, stream: IO[str], *, interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        super().__init__(stream)
        self.interval = interval
        self._flushed_at = time.monotonic()
        # Not named _closed: logging.Handler.close() sets its own _closed attribute to True.
        self._stopped = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name="edgecache-log-flush", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if record.levelno >= logging.WARNING:
            self.flush_now()

    def flush(self) -> None:
        """Flush when the last flush is older than the interval (StreamHandler.emit calls this)."""
        if time.monotonic() - self._flushed_at >= self.interval:
            self.flush_now()

    def flush_now(self) -> None:
        self._flushed_at = time.monotonic()
        super().flush()

    def write_line(self, line: str) -> None:
        """Write one INFO line that is already formatted, as emit would, without building a LogRecord."""
        self.acquire()
        try:
            self.stream.write(line + self.terminator)
            self.flush()
        except (OSError, ValueError):
            self.handleError(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))
        finally:
            self.release()

    def close(self) -> None:
        self._stopped.set()
        self.flush_now()
        super().close()

    def _flush_periodically(self) -> None:
        while not self._stopped.wait(self.interval):
            self.flush_now()


class CachedTimeFormatter(logging.Formatter):
    """A Formatter that formats the date and time once per second instead of once per record.

    The output is the same as logging.Formatter's: only the strftime part is reused.
    Records of the loggers in `bare_loggers` are written as their message alone.
    """

    def __init__(self, fmt: str, *, bare_loggers: frozenset[str] = frozenset()) -> None:
        super().__init__(fmt)
        self.bare_loggers = bare_loggers
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        if record.name in self.bare_loggers:
            return record.getMessage()
        return super().format(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return self.default_msec_format % (self._second_text, record.msecs)
