-- Dispatch policies (ZENDO_DISPATCH_POLICY): the staggered and best_accept policies
-- widen the search step by step (dispatch/policies/policies.py, StaggeredParams), so a
-- job's search round goes past 1.
ALTER TABLE interventions DROP CONSTRAINT interventions_search_round_check;
ALTER TABLE interventions
  ADD CONSTRAINT interventions_search_round_check CHECK (search_round BETWEEN 0 AND 10);
