"""benchmarks.quiet: the wait for a quiet machine before the speed reference."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.quiet import QUIET_CORES, Quiet, before_reference, machine_cpu, wait_quiet


class Script:
    """Busy shares of a two-core machine, one a window, and a clock advanced by `sleep`."""

    def __init__(self, busy_cores_per_window: list[float], window_s: float = 0.5) -> None:
        self.busy = list(busy_cores_per_window)
        self.window_s = window_s
        self.now = 0.0
        self.sleeps = 0
        self.share: float | None = None

    def read(self) -> float | None:
        return self.share

    async def sleep(self, seconds: float) -> None:
        assert seconds == self.window_s
        self.sleeps += 1
        self.now += seconds
        self.share = (self.busy.pop(0) if self.busy else 0.0) / 2

    def clock(self) -> float:
        return self.now


async def test_returns_after_the_first_quiet_window() -> None:
    script = Script([1.9, 1.2, 0.1, 1.9])
    quiet = await wait_quiet(
        busy_share=script.read, cores=2, sleep=script.sleep, clock=script.clock
    )
    assert script.sleeps == 3
    assert quiet.busy_cores == pytest.approx(0.1)
    assert quiet.reached
    assert quiet.waited_s == pytest.approx(1.5)
    assert quiet.note() == ""


async def test_gives_up_after_the_longest_wait_and_says_how_busy_it_was() -> None:
    script = Script([1.5] * 100)
    quiet = await wait_quiet(
        busy_share=script.read, cores=2, sleep=script.sleep, clock=script.clock, max_wait_s=3.0
    )
    assert script.sleeps == 6
    assert not quiet.reached
    assert quiet.busy_cores == pytest.approx(1.5)
    assert "1.50 cores busy for 3 s" in quiet.note()


async def test_a_reader_that_cannot_say_counts_as_quiet() -> None:
    """No `/proc/stat`, or a clock tick coarser than the window: nothing known busy."""

    async def no_sleep(_seconds: float) -> None:
        return None

    quiet = await wait_quiet(busy_share=lambda: None, sleep=no_sleep, clock=lambda: 0.0)
    assert quiet == Quiet(busy_cores=0.0, waited_s=0.0)


def test_the_threshold_is_a_fraction_of_one_core() -> None:
    assert 0.0 < QUIET_CORES < 1.0


def test_machine_cpu_reads_the_aggregate_line(tmp_path: Path) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal
    stat.write_text(f"cpu  {tick} 0 {tick} {3 * tick} {tick} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7\n")
    assert machine_cpu(stat) == pytest.approx((6.0, 4.0))


def test_machine_cpu_of_this_machine_moves_forward() -> None:
    all0, idle0 = machine_cpu()
    assert all0 > 0 and 0 <= idle0 <= all0


async def test_before_reference_says_so_only_when_the_machine_stayed_busy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    quiet = await before_reference()
    out = capsys.readouterr().out
    if quiet.reached:
        assert out == ""
    else:
        assert out.startswith("speed reference: (the machine stayed ")
