"""The client processes of a run: request drivers and loadgen workers."""

from __future__ import annotations

import contextlib

from benchmarks.bench_gateway import Workers
from benchmarks.cost.driver import DriverProc


class Helpers:
    """The client processes, started first so their imports overlap the seeding: a
    request driver and loadgen workers for the server, the same for the baselines."""

    def __init__(self, workers: int) -> None:
        self.real_driver, self.bare_driver = DriverProc(), DriverProc()
        self.real_workers, self.bare_workers = Workers(workers), Workers(workers)

    def stop(self) -> None:
        """Ask any process still waiting for a command to close, then reap them all."""
        pairs = [(d.pipe, d.proc) for d in (self.real_driver, self.bare_driver)]
        for workers in (self.real_workers, self.bare_workers):
            pairs += zip(workers.pipes, workers.procs, strict=True)
        for pipe, proc in pairs:
            if proc.is_alive():
                with contextlib.suppress(OSError):
                    pipe.send(("close",))
        for driver in (self.real_driver, self.bare_driver):
            driver.stop()
        self.real_workers.stop()
        self.bare_workers.stop()
