-- Issue 18: live state that heals itself. Every change of an artisan's job status in
-- PostgreSQL (accept -> BUSY, job ended -> free) takes a new version from one sequence,
-- in the same statement that locks the artisan's row: of two changes of one artisan the
-- later-committed one has the higher version. The post-commit live-state writes carry it,
-- so a stale write applied late cannot undo a newer one (gateway/lua.py), and the
-- reconciler repairs with the version it read (gateway/reconciler.py).
CREATE SEQUENCE artisan_live_version;
ALTER TABLE artisans ADD COLUMN live_version BIGINT NOT NULL DEFAULT 0;
