"""SQL of the payments context. Functions take a connection; the caller owns the
transaction."""

from __future__ import annotations

import uuid

import asyncpg

# Payment states only move forward (webhooks may arrive late or out of order).
STATUS_RANK = {
    "PENDING": 0,
    "REQUIRES_CAPTURE": 1,
    "CAPTURED": 2,
    "CANCELLED": 2,
    "FAILED": 2,
    "REFUNDED": 3,
}
# A hold can be replaced (another artisan) only once it is released.
RESTARTABLE = ("CANCELLED", "FAILED")
_PAYMENT_COLUMNS = """
    id, intervention_id, stripe_payment_intent_id, amount, currency, application_fee_amount,
    status, last_error, stripe_refund_id, refunded_at, captured_at, attempt, artisan_id,
    previous_intent_ids
"""


async def fetch_price(conn: asyncpg.Connection, *, specialty: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT amount, currency FROM specialty_prices WHERE specialty = $1", specialty
    )


async def fetch_job_for_payment(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT i.id, i.status, i.specialty, i.client_id, i.artisan_id, i.price_amount,
                  i.price_currency, a.stripe_account_id
             FROM interventions i LEFT JOIN artisans a ON a.user_id = i.artisan_id
            WHERE i.id = $1 FOR UPDATE OF i""",
        intervention_id,
    )


async def fetch_job_state(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, status, client_id, artisan_id, price_amount, price_currency"
        " FROM interventions WHERE id = $1",
        intervention_id,
    )


async def set_intervention_price(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID, amount: int, currency: str
) -> None:
    await conn.execute(
        """UPDATE interventions SET price_amount = $2, price_currency = $3
            WHERE id = $1 AND price_amount IS NULL""",
        intervention_id,
        amount,
        currency,
    )


async def ensure_payment(
    conn: asyncpg.Connection,
    *,
    intervention_id: uuid.UUID,
    amount: int,
    currency: str,
    fee: int,
    artisan_id: uuid.UUID,
) -> asyncpg.Record:
    await conn.execute(
        """INSERT INTO payments
             (intervention_id, amount, currency, application_fee_amount, status, artisan_id)
           VALUES ($1, $2, $3, $4, 'PENDING', $5) ON CONFLICT (intervention_id) DO NOTHING""",
        intervention_id,
        amount,
        currency,
        fee,
        artisan_id,
    )
    row = await fetch_payment(conn, intervention_id=intervention_id)
    assert row is not None
    return row


async def fetch_payment(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE intervention_id = $1", intervention_id
    )


async def start_new_attempt(
    conn: asyncpg.Connection,
    *,
    intervention_id: uuid.UUID,
    from_attempt: int,
    artisan_id: uuid.UUID,
    amount: int,
    currency: str,
    fee: int,
) -> asyncpg.Record | None:
    """Reset a released payment (CANCELLED/FAILED) for a new hold; None if it moved."""
    return await conn.fetchrow(
        f"""UPDATE payments
               SET attempt = attempt + 1, artisan_id = $3, amount = $4, currency = $5,
                   application_fee_amount = $6, status = 'PENDING', last_error = NULL,
                   captured_at = NULL, refunded_at = NULL, stripe_refund_id = NULL,
                   previous_intent_ids = CASE WHEN stripe_payment_intent_id IS NULL
                       THEN previous_intent_ids
                       ELSE array_append(previous_intent_ids, stripe_payment_intent_id::text) END,
                   stripe_payment_intent_id = NULL, updated_at = now()
             WHERE intervention_id = $1 AND attempt = $2 AND status = ANY($7::text[])
         RETURNING {_PAYMENT_COLUMNS}""",
        intervention_id,
        from_attempt,
        artisan_id,
        amount,
        currency,
        fee,
        list(RESTARTABLE),
    )


async def attach_intent(
    conn: asyncpg.Connection, *, intervention_id: uuid.UUID, attempt: int, intent_id: str
) -> bool:
    """Record the PaymentIntent of `attempt`; False if that attempt was cancelled or
    replaced meanwhile."""
    result: str = await conn.execute(
        """UPDATE payments SET stripe_payment_intent_id = $3, last_error = NULL, updated_at = now()
            WHERE intervention_id = $1 AND attempt = $2 AND status = 'PENDING'
              AND (stripe_payment_intent_id IS NULL OR stripe_payment_intent_id = $3)""",
        intervention_id,
        attempt,
        intent_id,
    )
    return result.endswith(" 1")


async def advance_status(
    conn: asyncpg.Connection,
    *,
    status: str,
    intervention_id: uuid.UUID | None = None,
    intent_id: str | None = None,
    refund_id: str | None = None,
    attempt: int | None = None,
) -> bool:
    """Move a payment forward to `status` (never backwards); True if it moved.

    By intent id wherever there is one: an earlier attempt's intent then matches
    nothing, so a late result for it cannot touch the current hold. By intervention
    id only together with `attempt`."""
    if intervention_id is not None and attempt is None:
        raise ValueError("advance_status by intervention id needs the attempt")
    allowed_from = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
    result = await conn.execute(
        """UPDATE payments
              SET status = $3::text, updated_at = now(), last_error = NULL,
                  captured_at = CASE WHEN $3::text = 'CAPTURED' THEN now() ELSE captured_at END,
                  refunded_at = CASE WHEN $3::text = 'REFUNDED' THEN now() ELSE refunded_at END,
                  stripe_refund_id = COALESCE($5, stripe_refund_id)
            WHERE (intervention_id = $1::uuid OR stripe_payment_intent_id = $2::text)
              AND ($6::int IS NULL OR attempt = $6::int)
              AND status = ANY($4::text[])""",
        intervention_id,
        intent_id,
        status,
        allowed_from,
        refund_id,
        attempt,
    )
    return not result.endswith(" 0")


async def record_error(conn: asyncpg.Connection, *, intervention_id: uuid.UUID, error: str) -> None:
    await conn.execute(
        "UPDATE payments SET last_error = $2, updated_at = now() WHERE intervention_id = $1",
        intervention_id,
        error[:500],
    )


async def mark_event_processed(conn: asyncpg.Connection, *, event_id: str, event_type: str) -> bool:
    """True the first time an event id is seen (the dedup row commits with the effects)."""
    inserted = await conn.fetchval(
        """INSERT INTO processed_webhooks (event_id, event_type) VALUES ($1, $2)
           ON CONFLICT (event_id) DO NOTHING RETURNING event_id""",
        event_id,
        event_type[:100],
    )
    return inserted is not None


async def event_seen(conn: asyncpg.Connection, *, event_id: str) -> bool:
    return bool(
        await conn.fetchval("SELECT 1 FROM processed_webhooks WHERE event_id = $1", event_id)
    )


async def set_payouts_enabled(conn: asyncpg.Connection, *, account_id: str, enabled: bool) -> None:
    await conn.execute(
        "UPDATE artisans SET payouts_enabled = $2 WHERE stripe_account_id = $1",
        account_id,
        enabled,
    )


async def artisan_account(
    conn: asyncpg.Connection, *, artisan_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT a.stripe_account_id, u.email FROM artisans a JOIN users u ON u.id = a.user_id
            WHERE a.user_id = $1""",
        artisan_id,
    )


async def set_stripe_account(
    conn: asyncpg.Connection, *, artisan_id: uuid.UUID, account_id: str
) -> None:
    await conn.execute(
        """UPDATE artisans SET stripe_account_id = $2
            WHERE user_id = $1 AND stripe_account_id IS NULL""",
        artisan_id,
        account_id,
    )


async def unfinished_payment_steps(
    conn: asyncpg.Connection, *, min_age_s: float, limit: int
) -> list[asyncpg.Record]:
    """(id, step) of interventions whose payment lags their status by over `min_age_s`.

    - a job being worked on (ASSIGNED..IN_PROGRESS) with no hold, a released one, or one
      for an earlier artisan: 'assign' (holds it for the current artisan);
    - COMPLETED with an authorised hold: 'capture' ('assign' if it pays a previous artisan);
    - CANCELLED, UNFULFILLED, or given back (SEARCHING) with a live hold: 'cancel'.
    """
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT i.id,
                  CASE WHEN i.status IN ('CANCELLED', 'UNFULFILLED', 'SEARCHING') THEN 'cancel'
                       WHEN p.artisan_id <> i.artisan_id THEN 'assign'
                       WHEN i.status = 'COMPLETED' THEN 'capture'
                       ELSE 'assign' END AS step
             FROM interventions i LEFT JOIN payments p ON p.intervention_id = i.id
            WHERE i.updated_at < now() - make_interval(secs => $1)
              AND (
                (i.status IN ('ASSIGNED', 'EN_ROUTE', 'ARRIVED', 'IN_PROGRESS')
                   AND (p.id IS NULL
                        OR (p.status = 'PENDING' AND p.stripe_payment_intent_id IS NULL)
                        OR p.status IN ('CANCELLED', 'FAILED')
                        OR p.artisan_id <> i.artisan_id))
                OR (i.status = 'COMPLETED'
                    AND (p.status = 'REQUIRES_CAPTURE'
                         OR (p.status = 'PENDING' AND p.artisan_id <> i.artisan_id)))
                OR (i.status IN ('CANCELLED', 'UNFULFILLED', 'SEARCHING')
                    AND p.status IN ('PENDING', 'REQUIRES_CAPTURE'))
              )
            ORDER BY i.updated_at LIMIT $2""",
        min_age_s,
        limit,
    )
    return rows
