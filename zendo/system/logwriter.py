"""Log records written by a thread, in batches.

A write to stderr can block (a pipe nobody drains fast enough, a file during
writeback), and on the event loop that stops every socket: under load, one traced
stall in nine was in the log handler's write. So the loop only enqueues the record.

The writer wakes at most once per `linger_s` and writes everything queued since in one
write. The standard library's QueueListener wakes, takes the GIL, formats and flushes
once per record: at 250 requests/s that is 250 GIL handoffs a second, each one making
the loop wait for the GIL up to the switch interval, and as many write system calls.

A line formatted already (the access log's JSON) can skip the record altogether
(`line_sink`): building a LogRecord walks the stack for the caller and names the thread
and process, about 10 µs of the loop's time per request here, against 2 µs for the line
alone.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TextIO

_STOP = object()


class _Enqueue(logging.Handler):
    """Hands the record over as it is: the writer, in the same process, formats it."""

    def __init__(self, records: queue.SimpleQueue[object]) -> None:
        super().__init__()
        self._records = records

    def emit(self, record: logging.LogRecord) -> None:
        self._records.put_nowait(record)

    def put_line(self, line: str) -> None:
        """A line formatted already: written as it is."""
        self._records.put_nowait(line)


def line_sink(logger: logging.Logger) -> Callable[[str], None] | None:
    """A LogWriter's direct entry for INFO lines of `logger`, when that writer is the
    one handler such a record would reach and nothing filters on the way; else None
    (log through `logger`)."""
    if not logger.isEnabledFor(logging.INFO):
        return None
    found: _Enqueue | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if found is not None or not isinstance(handler, _Enqueue):
                return None
            if handler.level > logging.INFO or handler.filters:
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found.put_line if found is not None else None


class LogWriter:
    def __init__(self, stream: TextIO, *, linger_s: float = 0.05, fmt: str = "%(message)s") -> None:
        self._stream = stream
        self._linger_s = linger_s
        self._formatter = logging.Formatter(fmt)
        self._records: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.handler: logging.Handler = _Enqueue(self._records)
        self._thread = threading.Thread(target=self._run, name="zendo-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Writes what is queued, then returns."""
        self._records.put_nowait(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = [self._records.get()]
            if batch[0] is not _STOP:
                time.sleep(self._linger_s)
            while True:
                try:
                    batch.append(self._records.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is _STOP for item in batch)
            self._write([item for item in batch if isinstance(item, logging.LogRecord | str)])
            if stopping:
                return

    def _write(self, records: list[logging.LogRecord | str]) -> None:
        if not records:
            return
        lines = []
        for record in records:
            if isinstance(record, str):
                lines.append(record)
                continue
            try:
                lines.append(self._formatter.format(record))
            except Exception:  # a bad record must not stop the writer (logging's own rule)
                lines.append(f"unformattable log record: {record.msg!r} {record.args!r}")
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nowhere left to say it
            pass
