"""Dispatch policies: pure decisions, no I/O.

Given the clock, an open job, its ranked candidates and what happened so far, a
policy decides whom to offer the job now, with what deadline, when to look again,
when to widen the radius and when to give up. The live dispatcher
(`dispatch/dispatcher/`) and the simulator (`dispatch/simulate/`) drive the same
code: `core.step` is a generator that *asks* for offers and *returns* a verdict, so
each driver does its own I/O (PostgreSQL, or the virtual world) in between.
"""

from __future__ import annotations

from dispatch.policies.core import Ask, Found, JobState, Verdict, step
from dispatch.policies.fairness import ArtisanHistory, fair_order
from dispatch.policies.policies import (
    POLICY_NAMES,
    BatchedParams,
    BestAcceptParams,
    FairParams,
    Policy,
    SequentialParams,
    StaggeredParams,
    make_policy,
    policy_from_settings,
)

__all__ = [
    "POLICY_NAMES",
    "ArtisanHistory",
    "Ask",
    "BatchedParams",
    "BestAcceptParams",
    "FairParams",
    "Found",
    "JobState",
    "Policy",
    "SequentialParams",
    "StaggeredParams",
    "Verdict",
    "fair_order",
    "make_policy",
    "policy_from_settings",
    "step",
]
