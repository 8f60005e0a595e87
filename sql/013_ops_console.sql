-- The ops console (issue 20): KPIs and the supply/demand layer read the jobs created
-- in a recent window. A BRIN index fits interventions.created_at (rows arrive in time
-- order) and costs the insert hot path next to nothing, unlike a B-tree.
CREATE INDEX interventions_created_brin ON interventions USING brin (created_at);
