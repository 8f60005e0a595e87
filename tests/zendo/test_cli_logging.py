"""The CLI's log records are written by a thread (a blocking write to stderr must not
hold the event loop), in batches, all of them before the command returns, and nothing
is left installed on the root logger afterwards."""

from __future__ import annotations

import argparse
import io
import json
import logging
import threading
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from zendo import cli
from zendo.middleware import JsonAccessLogger
from zendo.system.logwriter import LogWriter, line_sink


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.writer_threads: set[str] = set()

    def write(self, text: str) -> int:
        self.writes += 1
        self.writer_threads.add(threading.current_thread().name)
        return super().write(text)


def test_records_are_written_off_the_calling_thread_and_flushed_on_exit(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    writers: set[str] = set()
    real_write = LogWriter._write

    def write(self: LogWriter, records: list[logging.LogRecord | str]) -> None:
        writers.add(threading.current_thread().name)
        real_write(self, records)

    def run(_args: argparse.Namespace) -> int:
        for i in range(500):
            logging.getLogger("zendo").info("record %d", i)
        return 7

    monkeypatch.setattr(LogWriter, "_write", write)
    monkeypatch.setattr(cli, "_run", run)
    handlers_before = list(logging.getLogger().handlers)
    assert cli.main(["migrate"]) == 7
    err = capfd.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("record ")] == [
        f"record {i}" for i in range(500)
    ]
    assert writers and threading.current_thread().name not in writers
    assert logging.getLogger().handlers == handlers_before


def _logger(writer: LogWriter, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(writer.handler)
    return logger


def test_a_burst_of_records_is_written_in_a_few_writes() -> None:
    stream = _CountingStream()
    writer = LogWriter(stream, linger_s=0.05)
    logger = _logger(writer, "zendo.test.burst")
    writer.start()
    try:
        for i in range(1000):
            logger.info("line %d", i)
    finally:
        logger.removeHandler(writer.handler)
        writer.stop()
    assert stream.getvalue().splitlines() == [f"line {i}" for i in range(1000)]
    assert 1 <= stream.writes <= 3  # one per linger, not one per record
    assert stream.writer_threads == {"zendo-log-writer"}


def test_a_bad_record_or_a_failing_stream_does_not_stop_the_writer() -> None:
    failed = threading.Event()

    class BrokenOnce(_CountingStream):
        def write(self, text: str) -> int:
            if not failed.is_set():
                failed.set()
                raise OSError("stderr went away")
            return super().write(text)

    stream = BrokenOnce()
    writer = LogWriter(stream, linger_s=0.01)
    logger = _logger(writer, "zendo.test.bad")
    writer.start()
    try:
        logger.info("lost with the failed write")
        assert failed.wait(5)
        logger.info("%d apples", "three")  # the arguments do not fit the format
        logger.info("still written")
    finally:
        logger.removeHandler(writer.handler)
        writer.stop()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("unformattable log record: '%d apples'")
    assert lines[1:] == ["still written"]


async def test_the_access_line_skips_the_record_when_the_writer_is_the_only_handler() -> None:
    stream = _CountingStream()
    writer = LogWriter(stream, linger_s=0.01)
    logger = _logger(writer, "zendo.test.access")
    assert line_sink(logger) is not None
    writer.start()
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record)
        return record

    logging.setLogRecordFactory(counting)
    try:
        assert (await _one_request(logger)) == 201
    finally:
        logging.setLogRecordFactory(factory)
        logger.removeHandler(writer.handler)
        writer.stop()
    assert [r for r in made if r.name == logger.name] == []
    line = json.loads(stream.getvalue())
    assert line["status"] == 201 and line["path"] == "/specialties" and line["method"] == "GET"


async def test_another_handler_on_the_way_still_sees_the_access_line() -> None:
    writer = LogWriter(_CountingStream())
    logger = _logger(writer, "zendo.test.access.other")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    other = Keep()
    logger.addHandler(other)
    try:
        assert line_sink(logger) is None
        assert (await _one_request(logger)) == 201
    finally:
        logger.removeHandler(other)
        logger.removeHandler(writer.handler)
    assert len(seen) == 1 and json.loads(seen[0])["path"] == "/specialties"


async def _one_request(access_log: logging.Logger) -> int:
    """One request through a real server logging with JsonAccessLogger to `access_log`."""

    async def created(_request: web.Request) -> web.Response:
        return web.Response(status=201)

    app = web.Application()
    app.router.add_get("/specialties", created)
    server = TestServer(app)
    await server.start_server(access_log_class=JsonAccessLogger, access_log=access_log)
    async with TestClient(server) as client:
        resp = await client.get("/specialties")
        return resp.status
