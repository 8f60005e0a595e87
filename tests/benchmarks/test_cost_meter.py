"""The cost model's /proc readings: a process's CPU and how often it was put on a CPU."""

from __future__ import annotations

import os
import time

from benchmarks.cost.meter import cpu_and_slices, cpu_ns


def test_each_wake_up_from_a_sleep_is_a_slice_and_spinning_is_cpu() -> None:
    before = cpu_and_slices(os.getpid())
    assert before is not None
    for _ in range(20):
        time.sleep(0.002)  # off the CPU and back: one slice each, at least
    after_sleeps = cpu_and_slices(os.getpid())
    assert after_sleeps is not None
    assert after_sleeps[1] - before[1] >= 20
    spun_from = time.thread_time()
    while time.thread_time() - spun_from < 0.05:  # 50 ms on a CPU, however long that takes
        pass
    after_spin = cpu_ns(os.getpid())
    assert after_spin is not None and after_spin - after_sleeps[0] >= 45_000_000


def test_a_process_that_is_gone_reads_as_none() -> None:
    assert cpu_and_slices(2**22 + 1) is None  # above the kernel's largest pid
