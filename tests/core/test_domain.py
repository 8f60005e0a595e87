"""The domain constants say what PostgreSQL's CHECK constraints say."""

from __future__ import annotations

import re

import asyncpg
import pytest

from core import domain


async def _allowed(db: asyncpg.Connection, table: str, column: str) -> set[str]:
    """The values of the `column IN (...)` CHECK constraint on `table`."""
    defs = await db.fetch(
        "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype = 'c'",
        table,
    )
    for row in defs:
        text = row["def"]
        if " AND " in text or " OR " in text:  # a rule about several columns
            continue
        # PostgreSQL prints `col IN (...)` as `((col)::text = ANY ((ARRAY['A'::character varying, ...])::text[]))`
        if re.search(rf"\(\(?{column}\)?::text = ANY", text) or re.search(
            rf"\b{column} = ANY", text
        ):
            return set(re.findall(r"'([A-Z_]+)'", text))
    raise AssertionError(f"no IN-list CHECK on {table}.{column}")


@pytest.mark.parametrize(
    ("table", "column", "values"),
    [
        ("users", "role", domain.ROLES),
        ("artisans", "status", domain.VERIFICATION_STATUSES),
        ("artisans", "current_status", domain.PRESENCE_STATUSES),
        ("artisans", "level", domain.LEVELS),
        ("artisans", "specialty", domain.SPECIALTIES),
        ("interventions", "specialty", domain.SPECIALTIES),
        ("interventions", "status", domain.INTERVENTION_STATUSES),
        ("offers", "status", domain.OFFER_STATUSES),
        ("artisan_documents", "kind", domain.DOCUMENT_KINDS),
        ("specialty_prices", "specialty", domain.SPECIALTIES),
    ],
)
async def test_constants_match_the_check_constraints(
    db: asyncpg.Connection, table: str, column: str, values: tuple[str, ...]
) -> None:
    assert await _allowed(db, table, column) == set(values)
    assert len(set(values)) == len(values)
