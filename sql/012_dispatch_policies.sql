-- Dispatch policies (ZENDO_DISPATCH_POLICY): the staggered and best_accept policies
-- widen the search step by step (dispatch/policies/policies.py, StaggeredParams), so a
-- job's search round goes past 1.
ALTER TABLE interventions DROP CONSTRAINT interventions_search_round_check;
ALTER TABLE interventions
  ADD CONSTRAINT interventions_search_round_check CHECK (search_round BETWEEN 0 AND 10);

-- best_accept holds the accepts arriving within its window (status HELD) and awards
-- the job to the best-scored of them. A HELD artisan is still answering this job: one
-- PENDING-or-HELD offer per artisan.
ALTER TABLE offers DROP CONSTRAINT offers_status_check;
ALTER TABLE offers ADD CONSTRAINT offers_status_check
  CHECK (status IN ('PENDING', 'HELD', 'ACCEPTED', 'DECLINED', 'EXPIRED', 'TAKEN', 'REVOKED'));
DROP INDEX offers_one_pending_per_artisan;
CREATE UNIQUE INDEX offers_one_pending_per_artisan
  ON offers (artisan_id) WHERE status IN ('PENDING', 'HELD');
