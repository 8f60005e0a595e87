-- Payments (issue 6, continued): one payments row per intervention, but a job given
-- back by its artisan is held again for the next one. Each hold is an "attempt" with
-- its own PaymentIntent and its own idempotency keys (pi-create-<id>-<attempt> from the
-- second one on), so Stripe never replays the first artisan's PaymentIntent.

ALTER TABLE payments
  -- 1 for the first artisan's hold, +1 each time the job is held for another one.
  ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
  -- The artisan this attempt pays out to (transfer_data[destination] is their account).
  ADD COLUMN artisan_id UUID REFERENCES artisans(user_id) ON DELETE SET NULL,
  -- PaymentIntents of earlier attempts, released before the row moved on (support trail;
  -- their late webhooks no longer match stripe_payment_intent_id and change nothing).
  ADD COLUMN previous_intent_ids TEXT[] NOT NULL DEFAULT '{}';

UPDATE payments p SET artisan_id = i.artisan_id
  FROM interventions i
 WHERE i.id = p.intervention_id AND p.artisan_id IS NULL;
