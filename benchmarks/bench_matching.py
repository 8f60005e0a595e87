"""Matching-core benchmark: ArtisanIndex vs PostGIS KNN vs Redis GEOSEARCH.

Run:  .venv/bin/python -m benchmarks.bench_matching [--n 1000000] [--queries 300]
Needs PostgreSQL+PostGIS on 127.0.0.1:5432 (user postgres, trust) and Redis on
127.0.0.1:6379 (DB 2, keys ``bench:*`` only, removed afterwards); either
baseline is skipped with a message if its server is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import matching
from matching import LEVELS, SPECIALTIES, ArtisanIndex

STATUSES3 = np.array(["ONLINE", "BUSY", "OFFLINE"])


def pct(ts: list[float]) -> tuple[float, float]:
    a = np.array(ts) * 1e6
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def make_data(n: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 2**63, (n, 2))
    ids = [str(uuid.UUID(int=(int(a) << 64) | int(b))) for a, b in raw.tolist()]
    return {
        "ids": ids,
        "lat": 48.8566 + rng.normal(0, 0.08, n),
        "lon": 2.3522 + rng.normal(0, 0.12, n),
        "spec": np.array(SPECIALTIES)[rng.integers(0, 6, n)],
        "level": np.array(LEVELS)[rng.integers(0, 3, n)],
        "rating": np.round(rng.uniform(3.0, 5.0, n), 2),
        "status": STATUSES3[rng.choice(3, n, p=[0.3, 0.35, 0.35])],
    }


def bench_index(d: dict[str, Any], queries: list[tuple[float, float, str]]) -> dict[str, float]:
    t0 = time.perf_counter()
    matching.warmup()
    warm = time.perf_counter() - t0
    idx = ArtisanIndex()
    t0 = time.perf_counter()
    idx.upsert_many(d["ids"], d["lat"], d["lon"], d["spec"], d["level"], d["rating"], d["status"])
    load = time.perf_counter() - t0
    n = len(idx)
    mem = idx.memory_bytes() / n
    for q in queries:
        idx.query(*q, k=10, max_km=15.0)
    ts = []
    for _ in range(3):
        for q in queries:
            t = time.perf_counter()
            idx.query(q[0], q[1], q[2], k=10, max_km=15.0)
            ts.append(time.perf_counter() - t)
    p50, p99 = pct(ts)
    naive = []
    for q in queries[:100]:
        t = time.perf_counter()
        idx.naive_scan(q[0], q[1], q[2], k=10, max_km=15.0)
        naive.append(time.perf_counter() - t)
    n50, n99 = pct(naive)
    # moving upserts: ONLINE artisans drifting ~100 m
    rng = np.random.default_rng(1)
    online = np.flatnonzero(d["status"] == "ONLINE")[:100_000]
    moves = [
        (
            d["ids"][i], float(d["lat"][i] + rng.normal(0, 0.001)),
            float(d["lon"][i] + rng.normal(0, 0.0015)), str(d["spec"][i]),
            str(d["level"][i]), float(d["rating"][i]),
        )
        for i in online
    ]  # fmt: skip
    up = idx.upsert
    t0 = time.perf_counter()
    for a, la, lo, sp, lv, rt in moves:
        up(a, la, lo, sp, lv, rt, "ONLINE")
    mv = (time.perf_counter() - t0) / len(moves) * 1e6
    mem_after = idx.memory_bytes() / n
    ts2 = []
    for _ in range(3):  # same 900 samples as before the moves, so the p99s compare
        for q in queries:
            t = time.perf_counter()
            idx.query(q[0], q[1], q[2], k=10, max_km=15.0)
            ts2.append(time.perf_counter() - t)
    a50, a99 = pct(ts2)
    return {
        "warmup_s": warm, "load_s": load, "mem_B": mem, "mem_after_moves_B": mem_after,
        "p50": p50, "p99": p99, "naive_p50": n50, "naive_p99": n99, "upsert_us": mv,
        "p50_after_moves": a50, "p99_after_moves": a99,
    }  # fmt: skip


async def bench_postgis(
    d: dict[str, Any], queries: list[tuple[float, float, str]]
) -> dict[str, Any]:
    import asyncpg

    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await admin.execute("DROP DATABASE IF EXISTS zendo_bench")
        await admin.execute("CREATE DATABASE zendo_bench")
    finally:
        await admin.close()
    con = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/zendo_bench")
    try:
        await con.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        await con.execute(
            "CREATE TABLE artisans (id uuid PRIMARY KEY, specialty text NOT NULL, "
            "status text NOT NULL, level text NOT NULL, rating double precision NOT NULL, "
            "location geography(Point, 4326) NOT NULL)"
        )
        t0 = time.perf_counter()
        await con.execute(
            "CREATE TEMP TABLE stage (id uuid, specialty text, status text, level text, "
            "rating double precision, lon double precision, lat double precision)"
        )
        records = list(
            zip(
                [uuid.UUID(a) for a in d["ids"]], d["spec"].tolist(), d["status"].tolist(),
                d["level"].tolist(), d["rating"].tolist(), d["lon"].tolist(), d["lat"].tolist(),
                strict=True,
            )
        )  # fmt: skip
        await con.copy_records_to_table("stage", records=records)
        await con.execute(
            "INSERT INTO artisans SELECT id, specialty, status, level, rating, "
            "ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography FROM stage"
        )
        await con.execute("CREATE INDEX artisans_loc ON artisans USING gist (location)")
        await con.execute("ANALYZE artisans")
        load = time.perf_counter() - t0
        sql = (
            "SELECT id, ST_Distance(location, $1::geography) AS d FROM artisans "
            "WHERE status = 'ONLINE' AND specialty = $2 "
            "ORDER BY location <-> $1::geography LIMIT 10"
        )
        stmt = await con.prepare(sql)
        pt = "SRID=4326;POINT(2.3522 48.8566)"
        plan = await con.fetchval(
            "EXPLAIN (FORMAT TEXT) " + sql.replace("$1", f"'{pt}'").replace("$2", "'PLUMBER'")
        )
        plan_rows = await con.fetch(
            "EXPLAIN " + sql.replace("$1", f"'{pt}'").replace("$2", "'PLUMBER'")
        )
        plan_text = "\n".join(r[0] for r in plan_rows)
        del plan
        for q in queries[:50]:
            await stmt.fetch(f"SRID=4326;POINT({q[1]} {q[0]})", q[2])
        ts = []
        for q in queries:
            p = f"SRID=4326;POINT({q[1]} {q[0]})"
            t = time.perf_counter()
            await stmt.fetch(p, q[2])
            ts.append(time.perf_counter() - t)
        p50, p99 = pct(ts)
        return {
            "load_s": load,
            "p50": p50,
            "p99": p99,
            "uses_gist": "artisans_loc" in plan_text,
            "plan": plan_text,
        }
    finally:
        await con.close()
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
        await admin.execute("DROP DATABASE IF EXISTS zendo_bench")
        await admin.close()


async def bench_redis(d: dict[str, Any], queries: list[tuple[float, float, str]]) -> dict[str, Any]:
    import redis.asyncio as aioredis

    r = aioredis.Redis(host="127.0.0.1", port=6379, db=2)
    keys = [f"bench:geo:{s}" for s in SPECIALTIES]
    try:
        await r.delete(*keys)
        t0 = time.perf_counter()
        online = np.flatnonzero(d["status"] == "ONLINE")
        pipe = r.pipeline(transaction=False)
        for s, key in zip(SPECIALTIES, keys, strict=True):
            rows = online[d["spec"][online] == s]
            for chunk in range(0, len(rows), 10_000):
                part = rows[chunk : chunk + 10_000]
                flat: list[Any] = []
                for i in part.tolist():
                    flat += [float(d["lon"][i]), float(d["lat"][i]), d["ids"][i]]
                pipe.execute_command("GEOADD", key, *flat)
        await pipe.execute()
        load = time.perf_counter() - t0
        for q in queries[:50]:
            await r.execute_command(
                "GEOSEARCH",
                f"bench:geo:{q[2]}",
                "FROMLONLAT",
                q[1],
                q[0],
                "BYRADIUS",
                5,
                "km",
                "ASC",
                "COUNT",
                10,
            )
        ts = []
        for q in queries:
            t = time.perf_counter()
            await r.execute_command(
                "GEOSEARCH", f"bench:geo:{q[2]}", "FROMLONLAT", q[1], q[0],
                "BYRADIUS", 5, "km", "ASC", "COUNT", 10, "WITHDIST",
            )  # fmt: skip
            ts.append(time.perf_counter() - t)
        p50, p99 = pct(ts)
        return {"load_s": load, "p50": p50, "p99": p99}
    finally:
        await r.delete(*keys)
        await r.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--skip-baselines", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    d = make_data(args.n)
    queries = [
        (
            48.8566 + float(rng.normal(0, 0.01)),
            2.3522 + float(rng.normal(0, 0.015)),
            SPECIALTIES[i % 6],
        )
        for i in range(args.queries)
    ]
    print(
        f"# matching benchmark: n={args.n:,} queries={args.queries} cores={os.cpu_count()} "
        f"loadavg={' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    ix = bench_index(d, queries)
    print(
        f"index: warmup {ix['warmup_s']:.2f}s  load {ix['load_s']:.2f}s  "
        f"memory {ix['mem_B']:.1f} B/artisan ({ix['mem_after_moves_B']:.1f} after 100k moves)"
    )
    print(
        f"index query k=10 max_km=15: p50 {ix['p50']:.1f} us  p99 {ix['p99']:.1f} us  "
        f"(after moves p50 {ix['p50_after_moves']:.1f} p99 {ix['p99_after_moves']:.1f})"
    )
    print(f"naive numba scan:           p50 {ix['naive_p50']:.1f} us  p99 {ix['naive_p99']:.1f} us")
    print(f"moving upsert: {ix['upsert_us']:.2f} us/call")
    if args.skip_baselines:
        return
    try:
        pg = asyncio.run(bench_postgis(d, queries))
        print(
            f"PostGIS KNN (GiST, prepared): p50 {pg['p50']:.1f} us  p99 {pg['p99']:.1f} us  "
            f"load {pg['load_s']:.1f}s  plan uses GiST: {pg['uses_gist']}"
        )
        print("  plan: " + pg["plan"].replace("\n", "\n        "))
        print(
            f"  ratio PostGIS/index: p50 {pg['p50'] / ix['p50']:.1f}x  p99 {pg['p99'] / ix['p99']:.1f}x"
        )
    except OSError as exc:
        print(f"PostGIS baseline skipped: {exc}")
    try:
        rd = asyncio.run(bench_redis(d, queries))
        print(
            f"Redis GEOSEARCH 5km COUNT 10: p50 {rd['p50']:.1f} us  p99 {rd['p99']:.1f} us  load {rd['load_s']:.1f}s"
        )
        print(
            f"  ratio Redis/index: p50 {rd['p50'] / ix['p50']:.1f}x  p99 {rd['p99'] / ix['p99']:.1f}x"
        )
    except OSError as exc:
        print(f"Redis baseline skipped: {exc}")
    print(f"# loadavg at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
