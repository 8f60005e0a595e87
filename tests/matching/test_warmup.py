"""`warmup` leaves nothing for the first real call to load: the server runs it in a
thread at start-up, and whatever it misses is paid on the event loop later."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matching

# Two jobs on one spot compete for the same artisans: the solver's path (scipy), which
# warmup once skipped (its jobs' top-k never overlapped), so the dispatcher's first
# batch imported scipy.optimize on the loop: 0.3-1 s.
_FIRST_ASSIGN = """
import sys
from matching import ArtisanIndex, RankingPolicy, warmup
warmup()
idx = ArtisanIndex(RankingPolicy())
ids = [f"a{i}" for i in range(5)]
idx.upsert_many(ids, [48.85 + i * 1e-3 for i in range(5)], [2.35] * 5, ["PLUMBER"] * 5,
                ["STANDARD"] * 5, [4.0] * 5, ["ONLINE"] * 5)
loaded = set(sys.modules)
picked = idx.assign([("j1", 48.85, 2.35, "PLUMBER"), ("j2", 48.85, 2.35, "PLUMBER")], k=2)
print(sorted(c.artisan_id for c in picked.values() if c is not None))
print(sorted(set(sys.modules) - loaded))
"""


def test_the_first_assign_after_warmup_imports_nothing() -> None:
    root = Path(matching.__file__).parent.parent
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_ASSIGN],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    assert out == ["['a0', 'a1']", "[]"]
