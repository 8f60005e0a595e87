"""The domain constants say what PostgreSQL's CHECK constraints say."""

from __future__ import annotations

import re

import asyncpg
import pytest

from core import domain


async def _allowed(db: asyncpg.Connection, table: str, column: str) -> set[str]:
    """The values of the `IN (...)` CHECK on `table.column`: the table's own, or that of
    the column's domain (sql/015_check_domains.sql), where the column is `VALUE`."""
    defs = await db.fetch(
        """SELECT pg_get_constraintdef(c.oid) AS def, c.contypid <> 0 AS of_domain
             FROM pg_constraint c
            WHERE c.contype = 'c'
              AND (c.conrelid = $1::regclass
                   OR c.contypid = (SELECT atttypid FROM pg_attribute
                                     WHERE attrelid = $1::regclass AND attname = $2))""",
        table,
        column,
    )
    for row in defs:
        text = row["def"]
        if " AND " in text or " OR " in text:  # a rule about several columns
            continue
        name = "VALUE" if row["of_domain"] else column
        # PostgreSQL prints `col IN (...)` as `((col)::text = ANY ((ARRAY['A'::character varying, ...])::text[]))`
        if re.search(rf"\(\(?{name}\)?::text = ANY", text) or re.search(rf"\b{name} = ANY", text):
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
