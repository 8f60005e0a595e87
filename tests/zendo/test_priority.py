"""The server's niceness reaches its session's autogroup only when it leads the session
(zendo/priority.py): real processes, real /proc."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zendo.priority import AUTOGROUP, session_niceness

ROOT = Path(__file__).resolve().parents[2]
# A child that asks for niceness 7, then 5, and prints whether its autogroup changed
# each time, and to what.
_CHILD = (
    "from zendo.priority import lower_session, session_niceness\n"
    "print(lower_session(7), lower_session(5), session_niceness())\n"
)

needs_autogroup = pytest.mark.skipif(
    session_niceness() is None, reason="no autogroup scheduling on this kernel"
)


def _child(*, own_session: bool) -> tuple[str, str, str]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=own_session,
        timeout=30,
    ).stdout.split()
    return out[0], out[1], out[2]


@needs_autogroup
def test_a_session_leader_gives_its_autogroup_the_niceness_and_never_less() -> None:
    assert _child(own_session=True) == ("True", "False", "7")


@needs_autogroup
def test_a_process_in_its_callers_session_leaves_the_session_alone() -> None:
    before = session_niceness()
    first, second, seen = _child(own_session=False)
    assert first == second == "False"
    assert seen == str(before)
    assert session_niceness() == before


def test_session_niceness_reads_the_groups_line(tmp_path: Path) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-85 nice 3\n")
    assert session_niceness(group) == 3
    group.write_text("garbage\n")
    assert session_niceness(group) is None
    assert session_niceness(tmp_path / "missing") is None
    assert AUTOGROUP == Path("/proc/self/autogroup")
