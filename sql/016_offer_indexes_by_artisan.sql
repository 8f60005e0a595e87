-- The offers' indexes by artisan, fitted to the queries that read them. Every offer
-- written costs an entry in each index whose predicate it meets (a change of status is
-- never a HOT update: status is in the partial indexes' predicates).
-- - offers (intervention_id) went: the unique (intervention_id, artisan_id) leads with it.
-- - offers (artisan_id) WHERE PENDING went: offers_one_pending_per_artisan is the same
--   key over PENDING and HELD, and PostgreSQL uses it for a PENDING-only probe (a filter
--   on status, at most one row per artisan).
-- - The `fair` policy reads each candidate's answered offers of its sliding window
--   (offers_repo.artisan_history): with no index for it, that was a scan of the whole
--   table for every job offered. This one is written once an offer is answered.
DROP INDEX IF EXISTS offers_intervention_idx;
DROP INDEX IF EXISTS offers_artisan_pending_idx;
CREATE INDEX offers_artisan_answered_idx ON offers (artisan_id, created_at)
  WHERE status IN ('ACCEPTED', 'DECLINED', 'EXPIRED');
