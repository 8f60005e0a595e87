"""Batched assignment: several jobs at once, each artisan to at most one job, the sum
of scores minimal (scipy's Hungarian solver over each job's candidates)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from matching import Candidate

# Cost of leaving a job without an artisan: above any real score, so the solver
# assigns as many jobs as it can before it minimises the total score.
_UNASSIGNED = 1e6


def assign_batch(candidates: Mapping[str, Sequence[Candidate]]) -> dict[str, Candidate | None]:
    """job id -> its artisan (None: no candidate left for it). Exact and deterministic."""
    jobs = sorted(candidates)
    artisans = sorted({c.artisan_id for cs in candidates.values() for c in cs})
    result: dict[str, Candidate | None] = dict.fromkeys(jobs)
    if not jobs or not artisans:
        return result
    col = {a: i for i, a in enumerate(artisans)}
    cost = np.full((len(jobs), len(artisans) + len(jobs)), _UNASSIGNED)
    best: dict[tuple[int, int], Candidate] = {}
    for r, job in enumerate(jobs):
        for c in candidates[job]:
            j = col[c.artisan_id]
            if (r, j) not in best or c.score < best[(r, j)].score:
                best[(r, j)] = c
                cost[r, j] = c.score
    rows, cols = linear_sum_assignment(cost)
    for r, j in zip(rows.tolist(), cols.tolist(), strict=True):
        if j < len(artisans) and (r, j) in best:
            result[jobs[r]] = best[(r, j)]
    return result
