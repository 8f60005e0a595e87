# numba kernels mix Python ints with numpy scalars (np.int64/np.uint64 steer numba's
# typing); mypy cannot model that, so these codes are relaxed here only.
# mypy: disable-error-code="return-value,no-any-return,assignment,arg-type"
"""The assignment's bookkeeping (:mod:`matching.assign`): jobs that share a candidate
artisan fall in one component, each solved apart; here, in one pass over the
candidates, every component's jobs and artisans are numbered and its candidates
grouped, so that the Python side only fills each component's cost matrix."""

from __future__ import annotations

import numpy as np

from matching.jit import I64, jit


@jit
def _find(parent: I64, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@jit
def k_components(
    job: I64, col: I64, n_jobs: int, n_cols: int
) -> tuple[I64, I64, I64, I64, I64, I64, I64]:
    """Components of the jobs (``job[p]``, ``col[p]``: candidate ``p``'s job and
    artisan column, candidates in job order, columns numbered in order of first
    appearance).

    Returns ``root`` (each job's component: its smallest job), ``row`` (each
    candidate's job numbered within its component, in job order), ``local`` (each
    candidate's column numbered within its component, in column order), the
    candidates grouped by component (``order``, stable: job order within one),
    and per component root its jobs' and columns' counts and where its candidates
    start in ``order`` (``jobs_in``, ``cols_in``, ``start``: indexed by root).
    """
    parent = np.arange(n_jobs)
    first = np.full(n_cols, -1, dtype=np.int64)  # column -> the first job listing it
    for p in range(job.shape[0]):
        c, j = col[p], job[p]
        if first[c] < 0:
            first[c] = j
        else:
            a, b = _find(parent, first[c]), _find(parent, j)
            if a < b:
                parent[b] = a
            elif b < a:
                parent[a] = b
    root = np.empty(n_jobs, dtype=np.int64)
    jobs_in = np.zeros(n_jobs, dtype=np.int64)
    job_row = np.empty(n_jobs, dtype=np.int64)
    for j in range(n_jobs):
        r = _find(parent, j)
        root[j] = r
        job_row[j] = jobs_in[r]
        jobs_in[r] += 1
    cols_in = np.zeros(n_jobs, dtype=np.int64)
    col_local = np.empty(n_cols, dtype=np.int64)
    for c in range(n_cols):
        r = root[first[c]]
        col_local[c] = cols_in[r]
        cols_in[r] += 1
    count = np.zeros(n_jobs + 1, dtype=np.int64)
    for p in range(job.shape[0]):
        count[root[job[p]] + 1] += 1
    start = np.cumsum(count)
    fill = start[:n_jobs].copy()
    order = np.empty(job.shape[0], dtype=np.int64)
    row = np.empty(job.shape[0], dtype=np.int64)
    local = np.empty(job.shape[0], dtype=np.int64)
    for p in range(job.shape[0]):
        r = root[job[p]]
        order[fill[r]] = p
        fill[r] += 1
        row[p] = job_row[job[p]]
        local[p] = col_local[col[p]]
    return root, row, local, order, jobs_in, cols_in, start
