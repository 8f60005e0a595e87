"""The server's CPU priority: `zendo serve` runs at niceness `Settings.nice` (ZENDO_NICE).

The server is the one process on its machine that can shed load: when the cores are
short, PostgreSQL, Redis and anything else sharing them should run first, the server's
answers slow, and admission control turns the excess away (README, "Under load").

A process's niceness alone does not say that on Linux with autogroup scheduling
(`kernel.sched_autogroup_enabled`, on by default in many distributions and on this
project's machines, for processes outside any CPU cgroup): the scheduler first shares
the CPU between *sessions*, each an autogroup weighing as a niceness-0 process, and only
then between a session's processes by their niceness. The pool starts each worker in a
session of its own (a terminal's Ctrl-C reaches the supervisor only) and PostgreSQL
starts each backend in one: a worker at niceness 5 alone in its session weighed as much
as any backend, or as the terminal running locust. So a process that leads its own
session gives the session's autogroup the niceness too (`/proc/self/autogroup`, see
sched(7)). A process in its caller's session (`zendo serve --workers 1` from a shell)
leaves that session alone: it holds the caller's other processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Final

#: this process's autogroup: "/autogroup-<id> nice <n>"; a write sets the group's niceness
AUTOGROUP: Final = Path("/proc/self/autogroup")
#: Linux takes one autogroup change a tenth of a second from an unprivileged process
#: (EAGAIN otherwise): the pool's workers start together
_AUTOGROUP_ATTEMPTS: Final = 5
_AUTOGROUP_RETRY_S: Final = 0.11


def lower_priority(niceness: int, autogroup: Path = AUTOGROUP) -> None:
    """Run at `niceness`, unless this process runs nicer already (the workers it starts
    inherit it); leading its own session, its autogroup too (`lower_session`)."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    lower_session(max(niceness, current), autogroup)


def lower_session(niceness: int, autogroup: Path = AUTOGROUP) -> bool:
    """Give this process's autogroup `niceness` when the process leads its session and
    the group runs less nice; True when it did. Without autogroups (a kernel without
    them, another system) or without the right to change it, nothing changes."""
    if os.getsid(0) != os.getpid():
        return False
    current = session_niceness(autogroup)
    if current is None or current >= niceness:
        return False
    for attempt in range(_AUTOGROUP_ATTEMPTS):
        try:
            autogroup.write_text(f"{niceness}\n")
            return True
        except BlockingIOError:  # EAGAIN: another process changed one just now
            if attempt + 1 < _AUTOGROUP_ATTEMPTS:
                time.sleep(_AUTOGROUP_RETRY_S)
        except OSError:
            return False
    return False


def session_niceness(autogroup: Path = AUTOGROUP) -> int | None:
    """The niceness of this process's autogroup; None without one."""
    try:
        _, _, value = autogroup.read_text().rpartition(" nice ")
        return int(value)
    except (OSError, ValueError):
        return None
