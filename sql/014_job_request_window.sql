-- A client's job requests of the last minute (CONTRACT §8a, ZENDO_JOBS_PER_MIN_PER_CLIENT),
-- kept on the client's row, which creating a job locks anyway (010's open-jobs slot): the
-- limit is checked and the request recorded in the creating statement itself, atomically
-- for one client's concurrent creates, with no round trip of its own. Only the requests
-- still inside the window are kept, so the array holds at most the limit.
ALTER TABLE users ADD COLUMN recent_job_requests TIMESTAMPTZ[] NOT NULL DEFAULT '{}';
