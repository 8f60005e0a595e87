"""Accepting and declining offers: the one path for REST and WebSocket alike.

`app[appkeys.OFFER_ACTIONS]` is an `OfferActions`; the gateway calls it for
`offer.accept` / `offer.decline` frames.

Acceptance is ONE statement (`offers_repo.accept`), so one round trip and no
BEGIN/COMMIT: lock the job row and the artisan's, accept the offer (PENDING and
unexpired -> ACCEPTED), make the artisan BUSY if still VERIFIED, close the job's other
pending offers (TAKEN) and move the job SEARCHING -> ASSIGNED, all or nothing. The
partial unique indexes (one accepted offer per job, one active job per
artisan) turn any race that slips past the locks into a UniqueViolation -> 409.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from core import appkeys
from core.effects import MarkBusy, PaymentEvent, PaymentStep, TrackingStart
from core.errors import Conflict, NotFound
from core.outbox import Outbox, commit
from dispatch import appkeys as dispatch_keys
from dispatch.interventions import repo as interventions_repo
from dispatch.interventions.schemas import intervention_json, push_status
from dispatch.interventions.statemachine import ACTIVE, SEARCHING
from dispatch.offers import repo as offers_repo

_EXPIRED_STATES = frozenset({"EXPIRED", "DECLINED", "PENDING"})


class OfferExpired(Conflict):
    code = "offer_expired"


class OfferTaken(Conflict):
    code = "offer_taken"


class ArtisanBusy(Conflict):
    code = "artisan_busy"


class ArtisanNotVerified(Conflict):
    code = "artisan_not_verified"


def _unique_violation_to_conflict(exc: asyncpg.UniqueViolationError) -> Conflict:
    if exc.constraint_name == "interventions_one_active_per_artisan":
        return ArtisanBusy("You already hold an active job")
    return OfferTaken("Another artisan took this job")


class OfferActions:
    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def accept(self, *, artisan_id: uuid.UUID, offer_id: uuid.UUID) -> dict[str, Any]:
        """Accept; returns the intervention (artisan's view). 404 / 409 offer_expired|taken.

        Under best_accept an in-time accept is HELD and the intervention returned is still
        SEARCHING: the dispatcher awards the job to the best-scored held accept when the
        window closes, and tells every holder (`offer.result` accepted or taken)."""
        dispatcher = self._app.get(dispatch_keys.DISPATCHER)
        window_s = dispatcher.policy.accept_window_s if dispatcher is not None else 0.0
        if window_s > 0:
            return await self._hold(artisan_id=artisan_id, offer_id=offer_id, window_s=window_s)
        started = time.perf_counter()

        async def work(conn: asyncpg.Connection, effects: Outbox) -> dict[str, Any]:
            row = await offers_repo.accept(conn, offer_id=offer_id, artisan_id=artisan_id)
            if row is None:
                raise NotFound("No such offer")
            if not row["offer_accepted"]:  # nothing was written: say why
                offer = await offers_repo.offer_state(conn, offer_id=offer_id)
                assert offer is not None
                if offer["status"] == "ACCEPTED" and row["artisan_id"] == artisan_id:
                    if row["status"] in ACTIVE:  # a retried accept: same answer, no new effects
                        return intervention_json(row, for_client=False)
                if offer["status"] in _EXPIRED_STATES and not offer["open"]:
                    raise OfferExpired("This offer has expired")
                if offer["open"] and row["status"] == SEARCHING and not row["verified"]:
                    raise ArtisanNotVerified("Your account is not verified any more")
                raise OfferTaken("This job is no longer available")
            record_accepted(effects, row, artisan_id=artisan_id, offer_id=offer_id)
            return intervention_json(row, for_client=False)

        try:
            result, effects = await commit(self._app, work, transaction=False)
        except asyncpg.UniqueViolationError as exc:
            raise _unique_violation_to_conflict(exc) from exc
        if effects.pushed_at:  # a retried accept pushes nothing and is not timed
            self._app[appkeys.METRICS].accept_notify_seconds.observe(effects.pushed_at - started)
        return result

    async def _hold(
        self, *, artisan_id: uuid.UUID, offer_id: uuid.UUID, window_s: float
    ) -> dict[str, Any]:
        async def work(
            conn: asyncpg.Connection, effects: Outbox
        ) -> tuple[dict[str, Any], uuid.UUID | None, float]:
            row = await offers_repo.hold(
                conn, offer_id=offer_id, artisan_id=artisan_id, window_s=window_s
            )
            if row is None:
                raise NotFound("No such offer")
            if not row["held"]:
                offer = await offers_repo.offer_state(conn, offer_id=offer_id)
                assert offer is not None
                if offer["status"] == "ACCEPTED" and row["artisan_id"] == artisan_id:
                    return intervention_json(row, for_client=False), None, 0.0  # a retry
                if offer["status"] in _EXPIRED_STATES and not offer["open"]:
                    raise OfferExpired("This offer has expired")
                raise OfferTaken("This job is no longer available")
            view = intervention_json(row, for_client=False)
            if row["award_in_s"] is None:  # held before: the award is already armed
                return view, None, 0.0
            return view, row["id"], float(row["award_in_s"])

        (result, job_id, award_in_s), _ = await commit(self._app, work)
        dispatcher = self._app.get(dispatch_keys.DISPATCHER)
        if job_id is not None and dispatcher is not None:
            # The in-process timer of the award; the durable next_check_at backs it up.
            dispatcher.arm(job_id, award_in_s)
        return result

    async def decline(self, *, artisan_id: uuid.UUID, offer_id: uuid.UUID) -> None:
        """Decline; the job cascades to the next artisan at once. Idempotent."""

        async def work(conn: asyncpg.Connection, effects: Outbox) -> None:
            offer = await _own_offer(conn, offer_id=offer_id, artisan_id=artisan_id)
            job_id = offer["intervention_id"]
            await interventions_repo.get(conn, intervention_id=job_id, for_update=True)
            declined = await offers_repo.decline(conn, offer_id=offer_id, artisan_id=artisan_id)
            if declined is None:
                current = await offers_repo.get(conn, offer_id=offer_id)
                if current is not None and current["status"] == "ACCEPTED":
                    raise Conflict(
                        "You accepted this offer; cancel the intervention instead",
                        code="offer_accepted",
                    )
                return  # already declined, expired, taken or revoked: nothing left to do
            # We step it right after the commit; should this process die first, a poller
            # will within a second.
            await conn.execute(
                """UPDATE interventions SET next_check_at = LEAST(next_check_at, clock_timestamp() + interval '1 second')
                   WHERE id = $1 AND status = 'SEARCHING'""",
                job_id,
            )
            effects.outcomes["declined"] += 1
            effects.kick.append(job_id)

        await commit(self._app, work)


def record_accepted(
    effects: Outbox, row: asyncpg.Record, *, artisan_id: uuid.UUID, offer_id: uuid.UUID
) -> None:
    """What follows an accepted offer (`offers_repo.accept`'s row): the results to the
    winner and the others, the job's status, BUSY and tracking, the payment hold."""
    effects.offer_result(artisan_id, offer_id, "accepted")
    for other_id, other_artisan in zip(row["taken_ids"], row["taken_artisans"], strict=True):
        effects.offer_result(other_artisan, other_id, "taken")
    push_status(effects, row)
    version = row["live_version"]
    effects.live += [
        MarkBusy(artisan_id, version),
        TrackingStart(artisan_id, row["id"], row["client_id"], row["lat"], row["lon"], version),
    ]
    effects.payments.append(PaymentStep(PaymentEvent.ASSIGNED, row["id"]))
    effects.settled.append(row["id"])


async def revoke_pending_for_artisan(app: web.Application, artisan_id: uuid.UUID) -> int:
    """Revoke the artisan's pending offers (an admin rejected them); returns how many.

    Called by the admin context after its reject commits. Each affected job is stepped
    at once, so its cascade moves on without waiting for the offer's expiry. Idempotent:
    an artisan with no pending offer costs one UPDATE that matches nothing."""

    async def work(conn: asyncpg.Connection, effects: Outbox) -> int:
        revoked = await offers_repo.revoke_pending_for_artisan(conn, artisan_id=artisan_id)
        for offer in revoked:
            effects.offer_result(artisan_id, offer["id"], "revoked")
            effects.kick.append(offer["intervention_id"])
        # No next_check_at change here: that would lock a job row after an offer row
        # (the reverse of the dispatcher's order). The job's durable deadline is the
        # revoked offer's expiry, so should this process die before the kick, a poller
        # still resumes the cascade then.
        return len(revoked)

    revoked, _ = await commit(app, work)
    return revoked


async def _own_offer(
    conn: asyncpg.Connection, *, offer_id: uuid.UUID, artisan_id: uuid.UUID
) -> asyncpg.Record:
    offer = await offers_repo.get(conn, offer_id=offer_id)
    if offer is None or offer["artisan_id"] != artisan_id:
        raise NotFound("No such offer")
    return offer
