"""The bare HTTP baseline: aiohttp + asyncpg handlers running the real routes' SQL.

Used by bench_cost.py as the per-request floor to compare the server's routes with.
`python -m benchmarks.bare_handler PORT DSN`. Each handler calls the same repository
functions as the real route (so the same SQL statements, through a pool made by the same
`core.db.create_pool`) and answers the same JSON, with nothing else: no middleware, no
token check (the caller's id comes in `X-User-Id`), no body validation, no Redis, no
sockets to push to, no outbox, no access log, no index lookup (a job's candidates are
the next nine artisans of a list loaded at start, not a ranking).

`POST /auth/login` keeps the bcrypt check and the token it issues: they are most of the
real route's cost, and without them the two would not be comparable at all.
"""

from __future__ import annotations

import itertools
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import uvloop
from aiohttp import web

from core.db import create_pool
from core.tokens import hash_refresh_token, issue_access_token, new_refresh_token
from dispatch.auth import passwords
from dispatch.auth import repo as auth_repo
from dispatch.interventions import repo as interventions_repo
from dispatch.interventions.schemas import intervention_json
from dispatch.interventions.service import START_CODE_MAX_FAILURES
from dispatch.offers import repo as offers_repo

POOL = web.AppKey("pool", asyncpg.Pool)
ARTISANS = web.AppKey("artisans", dict)
SECRET = web.AppKey("secret", str)
DSN = web.AppKey("dsn", str)
_next_job = itertools.count()
CANDIDATES = 9  # ZENDO_OFFER_BATCH (1) + OVERFETCH (8), as the real route's ranking
TOKEN_TTL_S = 900
REFRESH_TTL_S = 30 * 24 * 3600


def _json(data: Any, status: int = 200) -> web.Response:
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z)
    return web.Response(body=body, status=status, content_type="application/json")


def _user(request: web.Request) -> uuid.UUID:
    return uuid.UUID(request.headers["X-User-Id"])


async def login(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        creds = await auth_repo.find_credentials(conn, email=body["email"].lower())
    if creds is None or not await passwords.verify_password(
        body["password"], creds["password_hash"]
    ):
        return _json({"code": "invalid_credentials"}, status=401)
    async with pool.acquire() as conn, conn.transaction():
        family_id = await auth_repo.create_family(conn, user_id=creds["id"])
        refresh = new_refresh_token()
        await auth_repo.insert_refresh_token(
            conn,
            token_hash=hash_refresh_token(refresh),
            family_id=family_id,
            user_id=creds["id"],
            ttl_s=REFRESH_TTL_S,
        )
        user = await auth_repo.fetch_user_view(conn, user_id=creds["id"])
    access = issue_access_token(
        request.app[SECRET], user_id=creds["id"], role=creds["role"], ttl_s=TOKEN_TTL_S
    )
    return _json({"access_token": access, "refresh_token": refresh, "user": user})


async def me(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        user = await auth_repo.fetch_user_view(conn, user_id=_user(request))
    return _json(user)


async def create(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    ids, n = request.app[ARTISANS][body["specialty"]]
    start = next(_next_job)
    candidates = [ids[(start + i) % n] for i in range(CANDIDATES)]
    async with request.app[POOL].acquire() as conn:
        rows = await offers_repo.create_job_with_offers(
            conn,
            client_id=_user(request),
            specialty=body["specialty"],
            lat=body["lat"],
            lon=body["lon"],
            address=body.get("address"),
            description=body.get("description"),
            start_code=f"{secrets.randbelow(10_000):04d}",
            idempotency_key=request.headers.get("Idempotency-Key"),
            actor_role="CLIENT",
            artisan_ids=candidates,
            distances_km=[0.5 + 0.1 * i for i in range(CANDIDATES)],
            scores=[1.0 - 0.01 * i for i in range(CANDIDATES)],
            wanted=1,
            timeout_s=600.0,
            max_open_jobs=1_000_000,  # the bench's clients keep many jobs open
            max_requests=1_000_000,
            request_window_s=60.0,
        )
    job = intervention_json(rows[0], for_client=True)
    # Not in the real answer: the real server pushes the offer over the artisan's socket.
    offered = [r for r in rows if r["offer_id"] is not None]
    if offered:
        job["offer_id"] = str(offered[0]["offer_id"])
        job["offer_artisan_id"] = str(offered[0]["offer_artisan_id"])
    return _json(job, status=201)


async def get(request: web.Request) -> web.Response:
    user = _user(request)
    async with request.app[POOL].acquire() as conn:
        row = await interventions_repo.get(
            conn, intervention_id=uuid.UUID(request.match_info["id"])
        )
    if row is None or user not in (row["client_id"], row["artisan_id"]):
        return _json({"code": "not_found"}, status=404)
    return _json(intervention_json(row, for_client=row["client_id"] == user))


async def accept(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await offers_repo.accept(
            conn, offer_id=uuid.UUID(request.match_info["id"]), artisan_id=_user(request)
        )
    if row is None or not row["offer_accepted"]:
        return _json({"code": "offer_taken"}, status=409)
    return _json(intervention_json(row, for_client=False))


_PREVIOUS = {"EN_ROUTE": "ASSIGNED", "ARRIVED": "EN_ROUTE", "IN_PROGRESS": "ARRIVED"}
_PREVIOUS["COMPLETED"] = "IN_PROGRESS"


async def status(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    target = body["status"]
    job_id = uuid.UUID(request.match_info["id"])
    user = _user(request)
    async with request.app[POOL].acquire() as conn:
        if target == "IN_PROGRESS":  # the real route reads the job first (who holds it)
            await interventions_repo.get(conn, intervention_id=job_id)
        row = await interventions_repo.advance_own(
            conn,
            intervention_id=job_id,
            artisan_id=user,
            expected=_PREVIOUS[target],
            target=target,
            start_code=body.get("start_code") if target == "IN_PROGRESS" else None,
            free_artisan=target == "COMPLETED",
            max_start_code_failures=START_CODE_MAX_FAILURES,
        )
    if row is None:
        return _json({"code": "illegal_transition"}, status=409)
    return _json(intervention_json(row, for_client=False))


async def _resources(app: web.Application) -> AsyncIterator[None]:
    pool = await create_pool(app[DSN], max_size=40)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT user_id, specialty FROM artisans WHERE status = 'VERIFIED' ORDER BY user_id"
        )
    by_specialty: dict[str, list[uuid.UUID]] = {}
    for r in rows:
        by_specialty.setdefault(r["specialty"], []).append(r["user_id"])
    app[ARTISANS].update({k: (v, len(v)) for k, v in by_specialty.items()})
    app[POOL] = pool
    yield
    await pool.close()


async def ready(_request: web.Request) -> web.Response:
    return _json({"ok": True})


def make_app(dsn: str, secret: str) -> web.Application:
    app = web.Application()
    app[DSN] = dsn
    app[SECRET] = secret
    app[ARTISANS] = {}
    app.cleanup_ctx.append(_resources)
    app.router.add_get("/healthz", ready)
    app.router.add_post("/auth/login", login)
    app.router.add_get("/auth/me", me)
    app.router.add_post("/interventions", create)
    app.router.add_get("/interventions/{id}", get)
    app.router.add_post("/offers/{id}/accept", accept)
    app.router.add_post("/interventions/{id}/status", status)
    return app


def main() -> None:
    port, dsn = int(sys.argv[1]), sys.argv[2]
    secret = sys.argv[3] if len(sys.argv) > 3 else "bare-handler-secret-" + "x" * 20
    uvloop.install()
    web.run_app(
        make_app(dsn, secret),
        host="127.0.0.1",
        port=port,
        backlog=4096,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
