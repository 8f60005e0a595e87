"""The CLI's log records are written by a thread (a blocking write to stderr must not
hold the event loop), all of them before the command returns, and nothing is left
installed on the root logger afterwards."""

from __future__ import annotations

import argparse
import logging
import threading

import pytest

from dispatch import cli


def test_records_are_written_off_the_calling_thread_and_flushed_on_exit(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    writers: set[str] = set()
    real_emit = logging.StreamHandler.emit

    def emit(self: logging.StreamHandler, record: logging.LogRecord) -> None:  # type: ignore[type-arg]
        if type(self) is logging.StreamHandler:  # ours; pytest's capture handlers subclass it
            writers.add(threading.current_thread().name)
        real_emit(self, record)

    def run(_args: argparse.Namespace) -> int:
        for i in range(500):
            logging.getLogger("zendo").info("record %d", i)
        return 7

    monkeypatch.setattr(logging.StreamHandler, "emit", emit)
    monkeypatch.setattr(cli, "_run", run)
    handlers_before = list(logging.getLogger().handlers)
    assert cli.main(["migrate"]) == 7
    err = capfd.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("record ")] == [
        f"record {i}" for i in range(500)
    ]
    assert writers and threading.current_thread().name not in writers
    assert logging.getLogger().handlers == handlers_before
