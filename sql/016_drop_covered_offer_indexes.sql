-- Two indexes of offers that others already cover. Every offer written costs an entry in
-- each index of the table (a change of status is never a HOT update: status is in the
-- partial indexes' predicates), so these two cost ~3 index entries and their WAL records
-- a job and answered no query better than the index that covers them:
-- - offers (intervention_id): the unique (intervention_id, artisan_id) leads with it;
-- - offers (artisan_id) WHERE PENDING: offers_one_pending_per_artisan is the same key
--   over PENDING and HELD, and PostgreSQL uses it for a PENDING-only probe (a filter on
--   status, at most one row per artisan).
DROP INDEX IF EXISTS offers_intervention_idx;
DROP INDEX IF EXISTS offers_artisan_pending_idx;
