"""Children that die with the benchmark that started them.

A benchmark starts long-lived children (a server pool, a private redis-server, the bare
baselines, load generators) and stops them in a `finally`; killed, even by `kill -9`,
it runs no `finally` and they are orphaned. An orphaned server pool keeps its ~80
PostgreSQL connections, so the next run's server cannot start. `die_with_parent()` asks
Linux (PR_SET_PDEATHSIG) to send the child SIGTERM when its parent dies, however it
dies: the child then stops as it would on `terminate()`.
"""

from __future__ import annotations

import ctypes
import os
import signal

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int | None = None) -> None:
    """SIGTERM for this process when its parent dies. Called in the child: as the
    `preexec_fn` of `subprocess.Popen` (between fork and exec; the setting survives the
    exec), or first thing in a `multiprocessing` target.

    The kernel watches the parent's *thread* that forked the child, not the process:
    start the child from the parent's main thread, never from a thread that may end
    before it (`asyncio.to_thread`, an executor), or the child gets SIGTERM then.

    With `parent_pid`, a parent gone before this call is caught too (a spawned child
    calls it long after its fork): the child sends itself the SIGTERM at once."""
    if _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)
