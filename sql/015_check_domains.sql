-- Single-column rules as domains. PostgreSQL builds every CHECK constraint of a table
-- afresh for each statement that writes it (its stored text parsed back into an
-- expression, then planned): on these hot tables (~7 statements a job) that was 15 % of
-- PostgreSQL's CPU under the README's load test (perf), ~25 µs of a ~150 µs single-row
-- UPDATE. A domain's check is parsed once per connection (the type cache) and applies
-- where a value is assigned to the column. The rules and the error (23514,
-- check_violation) are the same; the rules that tie two columns together stay table
-- CHECKs. One vocabulary, one definition: a specialty is the same type on artisans and
-- interventions.
-- PostgreSQL rewrites a column it converts to a domain with a CHECK: these five tables and
-- their indexes are rewritten under an exclusive lock (0.5 s with 10,000 artisans, 9,000
-- jobs and their 53,000 events; with millions of rows, minutes: run it in a quiet window).

CREATE DOMAIN specialty_code AS VARCHAR(50)
  CHECK (VALUE IN ('PLUMBER', 'ELECTRICIAN', 'LOCKSMITH', 'HEATING', 'GLAZIER', 'APPLIANCE_REPAIR'));
CREATE DOMAIN job_status AS VARCHAR(20)
  CHECK (VALUE IN ('SEARCHING', 'ASSIGNED', 'EN_ROUTE', 'ARRIVED', 'IN_PROGRESS',
                   'COMPLETED', 'CANCELLED', 'UNFULFILLED'));
CREATE DOMAIN presence_status AS VARCHAR(20) CHECK (VALUE IN ('ONLINE', 'BUSY', 'OFFLINE'));
CREATE DOMAIN artisan_level AS VARCHAR(20) CHECK (VALUE IN ('STANDARD', 'PRO_PLUS', 'ELITE'));
CREATE DOMAIN verification_status AS VARCHAR(20)
  CHECK (VALUE IN ('PENDING', 'VERIFIED', 'REJECTED'));
CREATE DOMAIN offer_status AS VARCHAR(20)
  CHECK (VALUE IN ('PENDING', 'HELD', 'ACCEPTED', 'DECLINED', 'EXPIRED', 'TAKEN', 'REVOKED'));
CREATE DOMAIN user_role AS VARCHAR(10) CHECK (VALUE IN ('CLIENT', 'ARTISAN', 'ADMIN'));
CREATE DOMAIN actor_role AS VARCHAR(10) CHECK (VALUE IN ('CLIENT', 'ARTISAN', 'ADMIN', 'SYSTEM'));
CREATE DOMAIN email_address AS VARCHAR(255)
  CHECK (VALUE = lower(VALUE) AND position('@' in VALUE) > 1);
CREATE DOMAIN star_rating AS DECIMAL(3, 2) CHECK (VALUE >= 0 AND VALUE <= 5);
CREATE DOMAIN search_round_no AS SMALLINT CHECK (VALUE >= 0 AND VALUE <= 10);
CREATE DOMAIN four_digit_code AS CHAR(4) CHECK (VALUE ~ '^[0-9]{4}$');
CREATE DOMAIN currency_code AS CHAR(3) CHECK (VALUE ~ '^[A-Z]{3}$');
CREATE DOMAIN positive_amount AS INTEGER CHECK (VALUE > 0);
CREATE DOMAIN nonnegative_count AS INTEGER CHECK (VALUE >= 0);
CREATE DOMAIN nonnegative_km AS DOUBLE PRECISION CHECK (VALUE >= 0);

ALTER TABLE users
  DROP CONSTRAINT users_email_check,
  DROP CONSTRAINT users_role_check,
  DROP CONSTRAINT users_open_jobs_check,
  ALTER COLUMN email TYPE email_address,
  ALTER COLUMN role TYPE user_role,
  ALTER COLUMN open_jobs TYPE nonnegative_count;

ALTER TABLE artisans
  DROP CONSTRAINT artisans_status_check,
  DROP CONSTRAINT artisans_current_status_check,
  DROP CONSTRAINT artisans_level_check,
  DROP CONSTRAINT artisans_specialty_check,
  DROP CONSTRAINT artisans_rating_check,
  DROP CONSTRAINT artisans_rating_count_check,
  ALTER COLUMN status TYPE verification_status,
  ALTER COLUMN current_status TYPE presence_status,
  ALTER COLUMN level TYPE artisan_level,
  ALTER COLUMN specialty TYPE specialty_code,
  ALTER COLUMN rating TYPE star_rating,
  ALTER COLUMN rating_count TYPE nonnegative_count;

-- The open-jobs trigger names `status` in its UPDATE OF list: it goes while the column
-- changes type, and comes back as it was (010).
DROP TRIGGER interventions_open_jobs ON interventions;
ALTER TABLE interventions
  DROP CONSTRAINT interventions_status_check,
  DROP CONSTRAINT interventions_specialty_check,
  DROP CONSTRAINT interventions_start_code_check,
  DROP CONSTRAINT interventions_start_code_failures_check,
  DROP CONSTRAINT interventions_search_round_check,
  DROP CONSTRAINT interventions_price_amount_check,
  DROP CONSTRAINT interventions_price_currency_check,
  ALTER COLUMN status TYPE job_status,
  ALTER COLUMN specialty TYPE specialty_code,
  ALTER COLUMN start_code TYPE four_digit_code,
  ALTER COLUMN start_code_failures TYPE nonnegative_count,
  ALTER COLUMN search_round TYPE search_round_no,
  ALTER COLUMN price_amount TYPE positive_amount,
  ALTER COLUMN price_currency TYPE currency_code;
CREATE TRIGGER interventions_open_jobs
  AFTER INSERT OR DELETE OR UPDATE OF status ON interventions
  FOR EACH ROW EXECUTE FUNCTION interventions_count_open_jobs();

ALTER TABLE offers
  DROP CONSTRAINT offers_status_check,
  DROP CONSTRAINT offers_distance_km_check,
  ALTER COLUMN status TYPE offer_status,
  ALTER COLUMN distance_km TYPE nonnegative_km;

ALTER TABLE intervention_events
  DROP CONSTRAINT intervention_events_actor_role_check,
  ALTER COLUMN actor_role TYPE actor_role;
