"""The matching benchmark's baselines: PostGIS KNN and Redis GEOSEARCH on the same
artisans, each index query timed right after one of each (benchmarks.bench_matching).

PostgreSQL+PostGIS on 127.0.0.1:5432 (database ``zendo_bench``, recreated) and Redis on
127.0.0.1:6379 (db 2, keys ``bench:*``, removed afterwards).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import numpy as np
import redis.asyncio as aioredis

from benchmarks.matching_data import MAX_KM, K, Oracle, Query, pct, same
from matching import SPECIALTIES, ArtisanIndex


async def baselines(
    d: dict[str, Any],
    queries: list[Query],
    idx: dict[str, ArtisanIndex],
    oracles: dict[str, Oracle],
) -> None:
    pg_dsn = "postgresql://postgres@127.0.0.1:5432/"
    admin = await asyncpg.connect(pg_dsn + "postgres")
    await admin.execute("DROP DATABASE IF EXISTS zendo_bench")
    await admin.execute("CREATE DATABASE zendo_bench")
    await admin.close()
    con = await asyncpg.connect(pg_dsn + "zendo_bench")
    r = aioredis.Redis(host="127.0.0.1", port=6379, db=2)
    keys = [f"bench:geo:{s}" for s in SPECIALTIES]
    try:
        t0 = time.perf_counter()
        await con.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        await con.execute(
            "CREATE TABLE artisans (id uuid PRIMARY KEY, specialty text NOT NULL, "
            "status text NOT NULL, level text NOT NULL, rating double precision NOT NULL, "
            "lon double precision, lat double precision, location geography(Point, 4326))"
        )
        records = list(
            zip(
                [uuid.UUID(a) for a in d["ids"]], d["spec"].tolist(), d["status"].tolist(),
                d["level"].tolist(), d["rating"].tolist(), d["lon"].tolist(), d["lat"].tolist(),
                strict=True,
            )
        )  # fmt: skip
        await con.copy_records_to_table(
            "artisans", records=records,
            columns=["id", "specialty", "status", "level", "rating", "lon", "lat"],
        )  # fmt: skip
        del records
        await con.execute("UPDATE artisans SET location = ST_SetSRID(ST_MakePoint(lon, lat), 4326)")
        await con.execute("CREATE INDEX artisans_loc ON artisans USING gist (location)")
        await con.execute("ANALYZE artisans")
        print(f"  PostGIS load {time.perf_counter() - t0:.1f} s")
        sql = (
            "SELECT id, ST_Distance(location, $1::geography) AS d FROM artisans "
            "WHERE status = 'ONLINE' AND specialty = $2 ORDER BY location <-> $1::geography LIMIT 10"
        )
        stmt = await con.prepare(sql)
        await r.delete(*keys)
        online = np.flatnonzero(d["status"] == "ONLINE")
        pipe = r.pipeline(transaction=False)
        for s, key in zip(SPECIALTIES, keys, strict=True):
            rows = online[d["spec"][online] == s]
            for chunk in range(0, len(rows), 10_000):
                flat: list[Any] = []
                for i in rows[chunk : chunk + 10_000].tolist():
                    flat += [float(d["lon"][i]), float(d["lat"][i]), d["ids"][i]]
                pipe.execute_command("GEOADD", key, *flat)
        await pipe.execute()
        geo = ("BYRADIUS", MAX_KM, "km", "ASC", "COUNT", K, "WITHDIST")
        for q in queries[:30]:  # warm both servers' caches
            await stmt.fetch(f"SRID=4326;POINT({q[1]} {q[0]})", q[2])
            await r.execute_command(
                "GEOSEARCH", f"bench:geo:{q[2]}", "FROMLONLAT", q[1], q[0], *geo
            )
        pg_t: list[float] = []
        rd_t: list[float] = []
        ix_t: dict[str, list[float]] = {n: [] for n in idx}
        bad = dict.fromkeys(idx, 0)
        for q in queries:
            t0 = time.perf_counter()
            await stmt.fetch(f"SRID=4326;POINT({q[1]} {q[0]})", q[2])
            t1 = time.perf_counter()
            await r.execute_command(
                "GEOSEARCH", f"bench:geo:{q[2]}", "FROMLONLAT", q[1], q[0], *geo
            )
            t2 = time.perf_counter()
            pg_t.append(t1 - t0)
            rd_t.append(t2 - t1)
            for name, ix in idx.items():  # the default index right after the baselines
                t0 = time.perf_counter()
                got = ix.query(q[0], q[1], q[2], K, MAX_KM)
                ix_t[name].append(time.perf_counter() - t0)
                bad[name] += not same(got, oracles[name].top(q))
        print(f"  PostGIS KNN (GiST, prepared)   wall {pct(pg_t)} µs")
        print(f"  Redis GEOSEARCH {MAX_KM:g} km COUNT {K} wall {pct(rd_t)} µs")
        for name in idx:
            print(
                f"  {name:8s} interleaved wall {pct(ix_t[name])} µs | inexact {bad[name]}/{len(queries)}"
            )
            ratio_pg = np.median(pg_t) / np.median(ix_t[name])
            ratio_rd = np.median(rd_t) / np.median(ix_t[name])
            print(f"    p50 ratios: PostGIS/index {ratio_pg:.1f}×  Redis/index {ratio_rd:.1f}×")
    finally:
        await r.delete(*keys)
        await r.aclose()
        await con.close()
        admin = await asyncpg.connect(pg_dsn + "postgres")
        await admin.execute("DROP DATABASE IF EXISTS zendo_bench")
        await admin.close()
