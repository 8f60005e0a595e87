-- Abuse limits (CONTRACT §8a).

-- A client's open interventions (not COMPLETED, CANCELLED or UNFULFILLED), kept by a
-- trigger so that creating a job can check and take a slot on the client's row: the
-- row lock serialises one client's concurrent creates, and the recheck of a locked row
-- under READ COMMITTED sees the count the previous create left.
ALTER TABLE users ADD COLUMN open_jobs INTEGER NOT NULL DEFAULT 0 CHECK (open_jobs >= 0);

CREATE FUNCTION interventions_count_open_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  was_open BOOLEAN := TG_OP <> 'INSERT'
    AND OLD.status NOT IN ('COMPLETED', 'CANCELLED', 'UNFULFILLED');
  is_open BOOLEAN := TG_OP <> 'DELETE'
    AND NEW.status NOT IN ('COMPLETED', 'CANCELLED', 'UNFULFILLED');
BEGIN
  IF was_open AND NOT is_open THEN
    UPDATE users SET open_jobs = greatest(open_jobs - 1, 0) WHERE id = OLD.client_id;
  ELSIF is_open AND NOT was_open THEN
    UPDATE users SET open_jobs = open_jobs + 1 WHERE id = NEW.client_id;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER interventions_open_jobs
  AFTER INSERT OR DELETE OR UPDATE OF status ON interventions
  FOR EACH ROW EXECUTE FUNCTION interventions_count_open_jobs();

UPDATE users u SET open_jobs = (
  SELECT count(*) FROM interventions i
  WHERE i.client_id = u.id AND i.status NOT IN ('COMPLETED', 'CANCELLED', 'UNFULFILLED'));

-- Wrong start codes entered for a job, over its whole life: every few the code is
-- reissued to the client, and past a hard cap the job no longer takes codes.
ALTER TABLE interventions
  ADD COLUMN start_code_failures INTEGER NOT NULL DEFAULT 0 CHECK (start_code_failures >= 0);

-- Abandoned upload slots are found by age.
CREATE INDEX artisan_documents_pending_idx ON artisan_documents (artisan_id, created_at)
  WHERE status = 'PENDING_UPLOAD';
