"""The intervention lifecycle: create, read, cancel, progress, rate.

Every status change goes through `repo.transition_logged` (the state machine's
check and a conditional UPDATE), writes an intervention_events row in the same
transaction, and tells the client and artisan only after the commit.
"""

from __future__ import annotations

import math
import secrets
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from core import appkeys, audit
from core.effects import (
    MarkAvailable,
    PaymentEvent,
    PaymentStep,
    ProfileChanged,
    TrackingStop,
)
from core.errors import (
    Conflict,
    FieldError,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from core.outbox import Outbox, commit
from core.principal import Principal
from dispatch import appkeys as dispatch_keys
from dispatch.dispatcher.matcher import candidate_columns
from dispatch.interventions import repo
from dispatch.interventions import statemachine as sm
from dispatch.interventions.area import service_area
from dispatch.interventions.schemas import CreateIntervention, intervention_json, push_status
from dispatch.offers import repo as offers_repo

START_CODE_GUESSES = 5  # per intervention, per START_CODE_WINDOW_S
START_CODE_WINDOW_S = 600.0
# Every START_CODE_REISSUE_EVERY-th wrong code the client gets a new code over its
# socket (each wrong code is told to it too); after START_CODE_MAX_FAILURES wrong codes
# in all the job takes no more (409 start_code_locked: the client can still cancel), so
# a job left in ARRIVED gives a guesser at most 15 chances in 10,000.
START_CODE_REISSUE_EVERY = 5
START_CODE_MAX_FAILURES = 15


# Retry-After of a 429 too_many_open_jobs: a job stays open for minutes at least.
OPEN_JOBS_RETRY_AFTER_S = 60
# ZENDO_JOBS_PER_MIN_PER_CLIENT counts a client's job requests over this sliding window.
JOB_REQUEST_WINDOW_S = 60.0


class WrongStartCode(ValidationFailed):
    code = "wrong_start_code"


class StartCodeLocked(Conflict):
    code = "start_code_locked"


class TooManyOpenJobs(RateLimited):
    code = "too_many_open_jobs"


def _view(row: asyncpg.Record, principal: Principal) -> dict[str, Any]:
    return intervention_json(row, for_client=row["client_id"] == principal.user_id)


async def create(
    app: web.Application,
    principal: Principal,
    body: CreateIntervention,
    idempotency_key: str | None,
) -> tuple[dict[str, Any], bool]:
    """Returns (intervention, created). A replayed Idempotency-Key returns the first one.

    One statement writes the job, its event and its first offers (one round trip, its
    own implicit transaction); the ranking comes from the in-memory index before it."""
    if not service_area(app).covers(body.lat, body.lon):
        raise ValidationFailed(
            detail="This location is outside the served area", code="out_of_area"
        )
    settings = app[appkeys.SETTINGS]
    dispatcher = app.get(dispatch_keys.DISPATCHER)
    candidates = (
        dispatcher.first_candidates(lat=body.lat, lon=body.lon, specialty=body.specialty)
        if dispatcher is not None
        else []
    )

    async def work(conn: asyncpg.Connection, outbox: Outbox) -> tuple[asyncpg.Record, int, bool]:
        rows = await offers_repo.create_job_with_offers(
            conn,
            client_id=principal.user_id,
            specialty=body.specialty,
            lat=body.lat,
            lon=body.lon,
            address=body.address,
            description=body.description,
            start_code=f"{secrets.randbelow(10_000):04d}",
            idempotency_key=idempotency_key,
            actor_role=principal.role,
            **candidate_columns(candidates),
            wanted=dispatcher.first_wave if dispatcher is not None else settings.offer_batch,
            timeout_s=settings.offer_timeout_s,
            max_open_jobs=settings.max_open_jobs_per_client,
            max_requests=settings.jobs_per_min_per_client,
            request_window_s=JOB_REQUEST_WINDOW_S,
        )
        if rows[0]["rate_ok"] is False:  # None: the client's row is gone (below)
            raise RateLimited(math.ceil(rows[0]["rate_retry_s"]))
        if not rows[0]["priced"]:
            raise ValidationFailed([FieldError("specialty", "no price for this specialty")])
        if rows[0]["id"] is None:  # this key was used before (perhaps just now): that job
            existing = None
            if idempotency_key is not None:
                existing = await repo.get_by_idempotency_key(
                    conn, client_id=principal.user_id, key=idempotency_key
                )
            if existing is None and not rows[0]["client_exists"]:  # deleted meanwhile
                raise Conflict("The request refers to a record that no longer exists")
            if existing is None:
                assert not rows[0]["has_slot"]
                raise TooManyOpenJobs(
                    OPEN_JOBS_RETRY_AFTER_S,
                    f"At most {settings.max_open_jobs_per_client} open interventions at once",
                )
            return existing, 0, False
        offer_rows = [r for r in rows if r["offer_id"] is not None]
        if dispatcher is not None:
            dispatcher.first_offers(rows[0], offer_rows, outbox)
        return rows[0], len(offer_rows), True

    (job, offered, created), _ = await commit(app, work, transaction=False)
    if created and dispatcher is not None:
        dispatcher.after_create(job, offered)
    return intervention_json(job, for_client=True), created


async def _visible(
    conn: asyncpg.Connection, principal: Principal, intervention_id: uuid.UUID, lock: bool = False
) -> asyncpg.Record:
    row = await repo.get(conn, intervention_id=intervention_id, for_update=lock)
    if row is None:
        raise NotFound("No such intervention")
    if principal.role == "ADMIN":
        return row
    if principal.user_id not in (row["client_id"], row["artisan_id"]):
        raise NotFound("No such intervention")
    return row


async def get(
    app: web.Application, principal: Principal, intervention_id: uuid.UUID
) -> dict[str, Any]:
    async with app[appkeys.PG_POOL].acquire() as conn:
        row = await _visible(conn, principal, intervention_id)
        if principal.role == "ADMIN":  # someone else's job: personal data, audited
            await _audit_view(conn, principal, "intervention.view", [row["id"]], row["id"])
        return _view(row, principal)


async def _audit_view(
    conn: asyncpg.Connection,
    principal: Principal,
    action: str,
    ids: list[uuid.UUID],
    target_id: uuid.UUID | None = None,
) -> None:
    await audit.record(
        conn,
        admin_id=principal.user_id,
        action=action,
        target_type="intervention",
        target_id=target_id,
        data={"returned": [str(i) for i in ids]},
    )


async def list_mine(
    app: web.Application, principal: Principal, *, status: str | None, limit: int
) -> list[dict[str, Any]]:
    async with app[appkeys.PG_POOL].acquire() as conn:
        if principal.role == "CLIENT":
            rows = await repo.list_for(
                conn, client_id=principal.user_id, status=status, limit=limit
            )
        elif principal.role == "ARTISAN":
            rows = await repo.list_for(
                conn, artisan_id=principal.user_id, status=status, limit=limit
            )
        else:  # admins see everyone's, audited
            rows = await repo.list_for(conn, status=status, limit=limit)
            await _audit_view(conn, principal, "interventions.list", [r["id"] for r in rows])
    return [_view(r, principal) for r in rows]


async def _change(
    conn: asyncpg.Connection,
    row: asyncpg.Record,
    target: str,
    principal: Principal,
    *,
    clear_artisan: bool = False,
    data: dict[str, Any] | None = None,
) -> asyncpg.Record:
    """A status change by a user; `repo.transition_logged` checks the state machine."""
    updated = await repo.transition_logged(
        conn,
        intervention_id=row["id"],
        expected=row["status"],
        target=target,
        clear_artisan=clear_artisan,
        actor_id=principal.user_id,
        actor_role=principal.role,
        data=data,
    )
    if updated is None:
        raise sm.IllegalTransition("The intervention changed meanwhile; reload it")
    return updated


def _freed(outbox: Outbox, artisan_id: uuid.UUID, version: int) -> None:
    """What a freed artisan's live state needs once the commit is done."""
    outbox.live += [MarkAvailable(artisan_id, version), TrackingStop(artisan_id, version)]


async def _free_artisan(conn: asyncpg.Connection, artisan_id: uuid.UUID, outbox: Outbox) -> None:
    version = await repo.set_artisan_current_status(
        conn, artisan_id=artisan_id, current_status="ONLINE"
    )
    _freed(outbox, artisan_id, version)


async def cancel(
    app: web.Application, principal: Principal, intervention_id: uuid.UUID
) -> dict[str, Any]:
    """Client (or admin): CANCELLED before IN_PROGRESS. Assigned artisan: back to SEARCHING."""

    async def work(conn: asyncpg.Connection, fx: Outbox) -> asyncpg.Record:
        row = await _visible(conn, principal, intervention_id, lock=True)
        artisan_id = row["artisan_id"]
        if principal.role == "ARTISAN":
            updated = await _change(
                conn, row, sm.SEARCHING, principal, clear_artisan=True, data={"withdrawn": True}
            )
            await offers_repo.withdraw_accepted(
                conn, intervention_id=row["id"], artisan_id=principal.user_id
            )
            await _free_artisan(conn, principal.user_id, fx)  # set_available + stop tracking
            push_status(fx, updated, also_artisan=principal.user_id)
            # Release this artisan's hold; the next accept's ASSIGNED step makes a fresh one.
            fx.payments.append(PaymentStep(PaymentEvent.CANCELLED, row["id"]))
            fx.kick.append(row["id"])
            return updated
        updated = await _change(conn, row, sm.CANCELLED, principal)
        for offer in await offers_repo.close_pending_for_intervention(
            conn, intervention_id=row["id"], outcome="REVOKED"
        ):
            fx.offer_result(offer["artisan_id"], offer["id"], "revoked")
        if artisan_id is not None:
            await _free_artisan(conn, artisan_id, fx)
        push_status(fx, updated)
        fx.payments.append(PaymentStep(PaymentEvent.CANCELLED, row["id"]))
        fx.settled.append(row["id"])
        return updated

    row, _ = await commit(app, work)
    return _view(row, principal)


async def advance(
    app: web.Application,
    principal: Principal,
    intervention_id: uuid.UUID,
    target: str,
    start_code: str | None,
) -> dict[str, Any]:
    """The assigned artisan moves the job along: EN_ROUTE, ARRIVED, IN_PROGRESS, COMPLETED."""
    if target == sm.IN_PROGRESS:
        if start_code is None:  # rare: say 404/403 first for a job that is not theirs
            async with app[appkeys.PG_POOL].acquire() as conn:
                await _assigned_to(conn, principal, intervention_id)
            raise ValidationFailed([FieldError("start_code", "required to start the work")])
        # Every attempt counts, so the 10,000 codes cannot be walked through. Counted per
        # job and user: only the assigned artisan's code can match (the statement's
        # guard), and nobody else's attempts can spend that artisan's guesses.
        limiter = app[dispatch_keys.START_CODE_LIMITER]
        await limiter.hit(f"{intervention_id}:{principal.user_id}")

    def record(fx: Outbox, updated: asyncpg.Record, version: int) -> asyncpg.Record:
        if target == sm.IN_PROGRESS:  # the client no longer needs the position
            fx.live.append(TrackingStop(principal.user_id, version))
        if target == sm.COMPLETED:
            _freed(fx, principal.user_id, version)
            fx.payments.append(PaymentStep(PaymentEvent.COMPLETED, updated["id"]))
        push_status(fx, updated)
        return updated

    async def fast(conn: asyncpg.Connection, fx: Outbox) -> asyncpg.Record | None:
        # The usual case in one statement; anything unusual is explained by `work`.
        row = await repo.advance_own(
            conn,
            intervention_id=intervention_id,
            artisan_id=principal.user_id,
            expected=sm.ARTISAN_PREVIOUS[target],
            target=target,
            start_code=start_code if target == sm.IN_PROGRESS else None,
            free_artisan=target == sm.COMPLETED,
            max_start_code_failures=START_CODE_MAX_FAILURES,
            new_live_version=target == sm.IN_PROGRESS,
        )
        return None if row is None else record(fx, row, row["live_version"] or 0)

    async def work(conn: asyncpg.Connection, fx: Outbox) -> asyncpg.Record:
        row = await _assigned_to(conn, principal, intervention_id, lock=True)
        # Checked before the start code too, so an illegal move is a 409 whatever the code.
        sm.check_transition(row["status"], target, principal.role)
        if target == sm.IN_PROGRESS:
            failures = await repo.start_code_failures(conn, intervention_id=intervention_id)
            if failures >= START_CODE_MAX_FAILURES:
                raise StartCodeLocked(
                    "Too many wrong start codes: this job takes no more; the client can cancel"
                )
            if not secrets.compare_digest((start_code or "").encode(), row["start_code"].encode()):
                raise WrongStartCode(detail="The start code is wrong")
        updated = await _change(conn, row, target, principal)
        version = 0
        if target == sm.COMPLETED:
            version = await repo.set_artisan_current_status(
                conn, artisan_id=principal.user_id, current_status="ONLINE"
            )
        elif target == sm.IN_PROGRESS:
            version = await repo.new_live_version(conn, artisan_id=principal.user_id)
        return record(fx, updated, version)

    if principal.role == "ARTISAN" and target in sm.ARTISAN_PREVIOUS:
        moved, _ = await commit(app, fast, transaction=False)
        if moved is not None:
            return _view(moved, principal)
    try:
        row, _ = await commit(app, work)
    except WrongStartCode:
        reissued = await _start_code_failed(app, intervention_id)
        raise WrongStartCode(
            detail="The start code is wrong"
            + ("; the client was given a new one" if reissued else "")
        ) from None
    return _view(row, principal)


async def _start_code_failed(app: web.Application, intervention_id: uuid.UUID) -> bool:
    """Count a wrong start code and tell the client (`start_code.failed`, with the new
    code when this failure reissued it). True when the code was reissued."""

    async def work(conn: asyncpg.Connection, fx: Outbox) -> bool:
        row = await repo.record_start_code_failure(
            conn,
            intervention_id=intervention_id,
            expected=sm.ARTISAN_PREVIOUS[sm.IN_PROGRESS],
            new_code=f"{secrets.randbelow(10_000):04d}",
            reissue_every=START_CODE_REISSUE_EVERY,
            max_failures=START_CODE_MAX_FAILURES,
        )
        if row is None:
            return False
        failures = row["start_code_failures"]
        frame: dict[str, Any] = {
            "type": "start_code.failed",
            "intervention_id": str(row["id"]),
            "failures": failures,
            "reissued": row["reissued"],
            "locked": failures >= START_CODE_MAX_FAILURES,
        }
        if row["reissued"]:
            frame["start_code"] = row["start_code"]
        fx.push(row["client_id"], frame)
        return bool(row["reissued"])

    reissued, _ = await commit(app, work, transaction=False)
    return reissued


async def _assigned_to(
    conn: asyncpg.Connection, principal: Principal, intervention_id: uuid.UUID, lock: bool = False
) -> asyncpg.Record:
    row = await _visible(conn, principal, intervention_id, lock=lock)
    if row["artisan_id"] != principal.user_id:
        # An admin may read it but only the assigned artisan moves it along.
        raise sm.IllegalTransition("Only the assigned artisan can change this status")
    return row


async def rate(
    app: web.Application,
    principal: Principal,
    intervention_id: uuid.UUID,
    stars: int,
    comment: str | None,
) -> dict[str, Any]:
    async def work(conn: asyncpg.Connection, fx: Outbox) -> dict[str, Any]:
        row = await _visible(conn, principal, intervention_id, lock=True)
        if row["client_id"] != principal.user_id:
            raise NotFound("No such intervention")
        if row["status"] != sm.COMPLETED:
            raise Conflict("Only a completed intervention can be rated", code="not_completed")
        try:
            async with conn.transaction():
                await repo.insert_rating(
                    conn,
                    intervention_id=row["id"],
                    client_id=principal.user_id,
                    artisan_id=row["artisan_id"],
                    stars=stars,
                    comment=comment,
                )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("This intervention is already rated", code="already_rated") from exc
        rating = await repo.add_to_artisan_rating(conn, artisan_id=row["artisan_id"], stars=stars)
        fx.live.append(ProfileChanged(row["artisan_id"], rating=rating))
        body = {
            "intervention_id": str(row["id"]),
            "artisan_id": str(row["artisan_id"]),
            "stars": stars,
            "comment": comment,
            "artisan_rating": rating,
        }
        return body

    body, _ = await commit(app, work)
    return body
