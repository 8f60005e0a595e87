-- Dispatch: durable search state and leases for the dispatcher.
--
-- next_check_at is the one deadline the dispatcher keeps per SEARCHING job:
-- the earliest pending offer expiry, a re-check time, or (while a dispatcher
-- process holds it) a short lease. A poller claims due rows with
-- FOR UPDATE SKIP LOCKED and pushes next_check_at forward by the lease length,
-- so a crashed process's jobs are picked up by another one when the lease ends.
ALTER TABLE interventions
  ADD COLUMN next_check_at TIMESTAMPTZ,
  ADD COLUMN lease_owner VARCHAR(64),
  -- 0: searching within ZENDO_MATCH_RADIUS_KM; 1: the widened search.
  ADD COLUMN search_round SMALLINT NOT NULL DEFAULT 0 CHECK (search_round IN (0, 1)),
  -- Restarted when an artisan withdraws and the job goes back to SEARCHING.
  ADD COLUMN search_started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  ADD COLUMN first_offer_at TIMESTAMPTZ;

CREATE INDEX interventions_dispatch_due_idx
  ON interventions (next_check_at) WHERE status = 'SEARCHING';
CREATE INDEX interventions_artisan_idx
  ON interventions (artisan_id, created_at DESC) WHERE artisan_id IS NOT NULL;

-- An artisan is asked one job at a time: two dispatchers racing for the same
-- artisan cannot both leave an offer pending (the loser moves to the next one).
CREATE UNIQUE INDEX offers_one_pending_per_artisan
  ON offers (artisan_id) WHERE status = 'PENDING';
CREATE INDEX offers_intervention_idx ON offers (intervention_id);
CREATE INDEX ratings_artisan_idx ON ratings (artisan_id);
