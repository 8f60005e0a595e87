"""The optional py-spy profile of the server (--profile DIR) and its top functions."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


class Profiler:
    """py-spy on the server for one phase (optional: --profile DIR)."""

    def __init__(self, out_dir: str | None) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.path: Path | None = None
        self.reports: dict[str, dict[str, Any]] = {}

    def start(self, pid: int, name: str) -> None:
        if self.out_dir is None:
            return
        if self.exe is None:
            raise RuntimeError("--profile: py-spy is not installed (make setup installs it)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / f"{name}.txt"
        self.proc = subprocess.Popen(
            [
                *(self.exe, "record", "--pid", str(pid), "--subprocesses", "--rate", "250"),
                "--nonblocking",  # never pauses the server (so no native frames)
                "--gil",  # only samples holding the GIL: the idle loop's wait is not work
                *("--format", "raw", "-o", str(self.path)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def attach(self, pid: int, name: str) -> None:
        """`start`, then the half second py-spy takes to attach."""
        self.start(pid, name)
        if self.proc is not None:
            await asyncio.sleep(0.5)

    def stop(self, name: str) -> None:
        if self.proc is None or self.path is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc = None
        if self.path.exists():
            self.reports[name] = top_functions(self.path.read_text())

    def print(self) -> None:
        for name, report in self.reports.items():
            print(f"\npy-spy, {name} ({report['samples']} samples): top by self / by total")
            for (fn_s, share_s), (fn_t, share_t) in zip(
                report["self"], report["total"], strict=False
            ):
                print(f"  {share_s:5.1f} %  {fn_s[:60]:<60}  {share_t:5.1f} %  {fn_t[:60]}")


def top_functions(raw: str, n: int = 8) -> dict[str, Any]:
    """Self and total shares of each function in py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        samples += k
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        own[frames[-1]] += k
        for frame in set(frames):
            total[frame] += k
    share = 100.0 / max(1, samples)
    # The frames under every sample (runpy, the CLI, the loop's run) say nothing.
    inner = [(f, c) for f, c in total.most_common() if c < 0.8 * samples]
    return {
        "samples": samples,
        "self": [(f, c * share) for f, c in own.most_common(n)],
        "total": [(f, c * share) for f, c in inner[:n]],
    }
