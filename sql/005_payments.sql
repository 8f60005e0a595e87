-- Payments and storage (issue 6): intervention photos, and the bookkeeping that
-- keeps Stripe calls retryable.

-- Before/after photos of an intervention, uploaded by its assigned artisan.
CREATE TABLE intervention_photos (
  id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
  intervention_id UUID NOT NULL REFERENCES interventions(id) ON DELETE CASCADE,
  artisan_id UUID NOT NULL REFERENCES artisans(user_id) ON DELETE CASCADE,
  phase VARCHAR(10) NOT NULL CHECK (phase IN ('BEFORE', 'AFTER')),
  content_type VARCHAR(40) NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png')),
  size_bytes INTEGER NOT NULL CHECK (size_bytes BETWEEN 1 AND 10485760),
  storage_key VARCHAR(300) NOT NULL UNIQUE,
  status VARCHAR(20) NOT NULL DEFAULT 'PENDING_UPLOAD'
    CHECK (status IN ('PENDING_UPLOAD', 'UPLOADED')),
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  uploaded_at TIMESTAMPTZ
);
CREATE INDEX intervention_photos_intervention_idx ON intervention_photos (intervention_id, created_at);

-- Why the last Stripe call for this payment failed (kept for retries and support),
-- and the refund that reversed it.
ALTER TABLE payments
  ADD COLUMN last_error VARCHAR(500),
  ADD COLUMN stripe_refund_id VARCHAR(255) UNIQUE,
  ADD COLUMN captured_at TIMESTAMPTZ;
