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

from matching.kernels_assign import k_components
from matching.policy import Candidate

#: cost of a forbidden (job, artisan) pair: scipy treats +inf as "not allowed"
_FORBIDDEN: Final = np.inf


def solve(cands: Sequence[Sequence[Candidate]]) -> list[int]:
    """For each job, the index of its chosen candidate in ``cands[job]``, or -1.

    Each job's list is ranked best first, as :meth:`matching.ArtisanIndex.query`
    returns it (by score, then distance, then id), and names no artisan twice.
    Maximises the number of jobs served, then minimises the total score; each
    artisan (``Candidate.artisan_id``) is chosen at most once.
    """
    n_jobs = len(cands)
    choice = [-1] * n_jobs
    flat = [c for row in cands for c in row]
    if not flat:
        return choice
    lengths = np.array([len(row) for row in cands], dtype=np.int64)
    first = np.cumsum(lengths) - lengths  # each job's first candidate in `flat`
    col_of: dict[str, int] = {}  # artisan -> column, in order of first appearance
    col = np.array([col_of.setdefault(c.artisan_id, len(col_of)) for c in flat], dtype=np.int64)
    job = np.repeat(np.arange(n_jobs, dtype=np.int64), lengths)
    root, row, local, order, jobs_in, cols_in, start = k_components(job, col, n_jobs, len(col_of))
    for r in np.flatnonzero(jobs_in > 1).tolist():
        take = order[start[r] : start[r + 1]]
        jobs = np.flatnonzero(root == r).tolist()
        score = np.array([flat[p].score for p in take.tolist()], dtype=np.float64)
        rank = take - first[job[take]]  # the candidate's place in its job's list
        picked = _solve_component(len(jobs), int(cols_in[r]), row[take], local[take], score, rank)
        for j, i in zip(jobs, picked, strict=True):
            choice[j] = i
    for j in np.flatnonzero((jobs_in == 1) & (root == np.arange(n_jobs))).tolist():
        if lengths[j]:  # a job sharing no candidate takes its best
            choice[j] = 0
    return choice


def _solve_component(
    n: int,
    m: int,
    row: npt.NDArray[np.int64],
    col: npt.NDArray[np.int64],
    score: npt.NDArray[np.float64],
    rank: npt.NDArray[np.int64],
) -> list[int]:
    """One component's optimal choice: for each of its ``n`` jobs (rows), the rank of
    its chosen candidate, or -1; ``m`` artisans (columns); one entry per candidate."""
    lo = float(score.min())
    span = float(score.max()) - lo
    nobody = n * span + 1.0  # > any score difference over the whole component
    cost = np.full((n, m + n), _FORBIDDEN, dtype=np.float64)
    cost[row, col] = score - lo  # >= 0, so each real pair costs at most `span`
    cost[np.arange(n), m + np.arange(n)] = nobody
    pick: npt.NDArray[np.int64] = np.full((n, m + n), -1, dtype=np.int64)
    pick[row, col] = rank
    # imported on first use: scipy.optimize takes 0.3-1 s to import, which every process
    # importing `matching` (the CLI, gateway-only workers) would otherwise pay; a server
    # pays it at start-up, off the event loop, in `matching.warmup`
    from scipy.optimize import linear_sum_assignment

    rows, chosen = linear_sum_assignment(cost)
    out = [-1] * n
    for r, c in zip(rows.tolist(), pick[rows, chosen].tolist(), strict=True):
        out[r] = c
    return out
