"""Global assignment of simultaneous jobs to distinct artisans.

:func:`solve` takes each job's ranked candidates (the top k of
:meth:`matching.ArtisanIndex.query`) and picks at most one per job, each artisan
used at most once, so that

1. as many jobs as possible get an artisan, and among those assignments
2. the sum of the chosen candidates' scores is the smallest.

Jobs that share no candidate are independent, so the jobs are split into
connected components (union-find on shared artisans) and each component with
more than one job is one ``scipy.optimize.linear_sum_assignment`` over a small
dense matrix: rows are the component's jobs, columns its candidate artisans plus
one private "nobody" column per job whose cost outweighs any difference in scores
(so serving one more job always wins, and a full assignment always exists).

With ``k >= len(jobs)`` the result is also optimal over *every* eligible
artisan, not only each job's top k: a job given its (k+1)-th choice or nobody
always has one of its top k free (the other jobs use at most k - 1 of them),
and taking it serves as many jobs at no higher total.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from matching.policy import Candidate

#: cost of a forbidden (job, artisan) pair: scipy treats +inf as "not allowed"
_FORBIDDEN: Final = np.inf


def _components(cands: Sequence[Sequence[Candidate]]) -> list[list[int]]:
    """Jobs grouped by shared candidates (union-find), each group in job order."""
    parent = list(range(len(cands)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    owner: dict[str, int] = {}
    for j, row in enumerate(cands):
        for c in row:
            o = owner.setdefault(c.artisan_id, j)
            if o != j:
                a, b = find(o), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for j in range(len(cands)):
        groups.setdefault(find(j), []).append(j)
    return list(groups.values())


def _solve_component(
    jobs: list[int], cands: Sequence[Sequence[Candidate]], choice: list[int]
) -> None:
    """Optimal choice (index into each job's candidates, or -1) for one component."""
    col_of: dict[str, int] = {}
    for j in jobs:
        for c in cands[j]:
            col_of.setdefault(c.artisan_id, len(col_of))
    n, m = len(jobs), len(col_of)
    scores = np.full((n, m), _FORBIDDEN, dtype=np.float64)
    pick: npt.NDArray[np.int64] = np.full((n, m), -1, dtype=np.int64)
    for r, j in enumerate(jobs):
        for i, c in enumerate(cands[j]):
            col = col_of[c.artisan_id]
            scores[r, col] = c.score
            pick[r, col] = i
    finite = scores[np.isfinite(scores)]
    lo = float(finite.min())
    span = float(finite.max()) - lo
    nobody = n * span + 1.0  # > any score difference over the whole component
    cost = np.full((n, m + n), _FORBIDDEN, dtype=np.float64)
    cost[:, :m] = scores - lo  # >= 0, so each real pair costs at most `span`
    cost[np.arange(n), m + np.arange(n)] = nobody
    # imported on first use: scipy.optimize takes 0.3-1 s to import, which every process
    # importing `matching` (the CLI, gateway-only workers) would otherwise pay; a server
    # pays it at start-up, off the event loop, in `matching.warmup`
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    for r, col in zip(rows.tolist(), cols.tolist(), strict=True):
        if col < m:
            choice[jobs[r]] = int(pick[r, col])


def solve(cands: Sequence[Sequence[Candidate]]) -> list[int]:
    """For each job, the index of its chosen candidate in ``cands[job]``, or -1.

    Each job's list is ranked best first, as :meth:`matching.ArtisanIndex.query`
    returns it (by score, then distance, then id), and names no artisan twice.
    Maximises the number of jobs served, then minimises the total score; each
    artisan (``Candidate.artisan_id``) is chosen at most once.
    """
    choice = [-1] * len(cands)
    for comp in _components(cands):
        if len(comp) > 1:
            _solve_component(comp, cands, choice)
        elif cands[comp[0]]:  # a job sharing no candidate takes its best
            choice[comp[0]] = 0
    return choice
