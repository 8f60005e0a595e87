-- Zendo core schema. users and artisans follow the seed (v1) data model; the
-- rest is designed for the contract. Timestamps are TIMESTAMPTZ so that every
-- HTTP timestamp is unambiguous UTC.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";

-- Users (clients, artisans and admins)
CREATE TABLE users (
  id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
  email VARCHAR(255) UNIQUE NOT NULL CHECK (email = lower(email) AND position('@' in email) > 1),
  password_hash VARCHAR(255) NOT NULL, -- bcrypt
  phone_number VARCHAR(20),
  role VARCHAR(10) NOT NULL CHECK (role IN ('CLIENT', 'ARTISAN', 'ADMIN')),
  is_verified BOOLEAN NOT NULL DEFAULT FALSE,
  -- Kept from the seed for compatibility; refresh tokens live hashed in refresh_tokens.
  refresh_token TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Artisan profiles (extension of users)
CREATE TABLE artisans (
  user_id UUID PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  status VARCHAR(20) NOT NULL DEFAULT 'PENDING'
    CHECK (status IN ('PENDING', 'VERIFIED', 'REJECTED')),
  current_status VARCHAR(20) NOT NULL DEFAULT 'OFFLINE'
    CHECK (current_status IN ('ONLINE', 'BUSY', 'OFFLINE')),
  level VARCHAR(20) NOT NULL DEFAULT 'STANDARD'
    CHECK (level IN ('STANDARD', 'PRO_PLUS', 'ELITE')),
  specialty VARCHAR(50) NOT NULL
    CHECK (specialty IN ('PLUMBER', 'ELECTRICIAN', 'LOCKSMITH', 'HEATING', 'GLAZIER', 'APPLIANCE_REPAIR')),
  location GEOGRAPHY(POINT, 4326),
  rating DECIMAL(3, 2) NOT NULL DEFAULT 5.0 CHECK (rating >= 0 AND rating <= 5),
  stripe_account_id VARCHAR(100) UNIQUE,
  -- Kept from the seed; documents are rows in artisan_documents.
  documents JSONB,
  rating_count INTEGER NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
  payouts_enabled BOOLEAN NOT NULL DEFAULT FALSE,
  location_updated_at TIMESTAMPTZ,
  rejection_reason TEXT,
  -- Only a VERIFIED artisan can be ONLINE or BUSY.
  CONSTRAINT artisans_online_needs_verified CHECK (current_status = 'OFFLINE' OR status = 'VERIFIED')
);
CREATE INDEX artisans_location_gist ON artisans USING GIST (location);
CREATE INDEX artisans_status_idx ON artisans (status);

-- Refresh tokens: one family per login; rotation adds a token to the family.
CREATE TABLE refresh_token_families (
  id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  revoked_at TIMESTAMPTZ,
  revoked_reason VARCHAR(20) CHECK (revoked_reason IN ('LOGOUT', 'REUSE', 'ADMIN'))
);
CREATE INDEX refresh_token_families_user_idx ON refresh_token_families (user_id);

CREATE TABLE refresh_tokens (
  token_hash BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32), -- sha256 of the opaque token
  family_id UUID NOT NULL REFERENCES refresh_token_families(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  issued_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  expires_at TIMESTAMPTZ NOT NULL,
  used_at TIMESTAMPTZ,
  CHECK (expires_at > issued_at)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- Interventions
CREATE TABLE interventions (
  id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
  client_id UUID NOT NULL REFERENCES users(id) ON DELETE RESTRICT,
  artisan_id UUID REFERENCES artisans(user_id) ON DELETE RESTRICT,
  specialty VARCHAR(50) NOT NULL
    CHECK (specialty IN ('PLUMBER', 'ELECTRICIAN', 'LOCKSMITH', 'HEATING', 'GLAZIER', 'APPLIANCE_REPAIR')),
  location GEOGRAPHY(POINT, 4326) NOT NULL,
  address VARCHAR(500),
  description VARCHAR(2000),
  status VARCHAR(20) NOT NULL DEFAULT 'SEARCHING'
    CHECK (status IN ('SEARCHING', 'ASSIGNED', 'EN_ROUTE', 'ARRIVED', 'IN_PROGRESS',
                      'COMPLETED', 'CANCELLED', 'UNFULFILLED')),
  start_code CHAR(4) NOT NULL CHECK (start_code ~ '^[0-9]{4}$'),
  idempotency_key VARCHAR(255),
  price_amount INTEGER CHECK (price_amount > 0),
  price_currency CHAR(3) CHECK (price_currency ~ '^[A-Z]{3}$'),
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  CONSTRAINT interventions_price_pair CHECK ((price_amount IS NULL) = (price_currency IS NULL)),
  -- An assigned job always names its artisan.
  CONSTRAINT interventions_assigned_has_artisan CHECK (
    status IN ('SEARCHING', 'CANCELLED', 'UNFULFILLED') OR artisan_id IS NOT NULL),
  CONSTRAINT interventions_searching_has_no_artisan CHECK (
    status <> 'SEARCHING' OR artisan_id IS NULL)
);
CREATE UNIQUE INDEX interventions_idempotency_idx
  ON interventions (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX interventions_client_idx ON interventions (client_id, created_at DESC);
CREATE INDEX interventions_searching_idx ON interventions (created_at) WHERE status = 'SEARCHING';
-- An artisan never holds two jobs.
CREATE UNIQUE INDEX interventions_one_active_per_artisan
  ON interventions (artisan_id) WHERE status IN ('ASSIGNED', 'EN_ROUTE', 'ARRIVED', 'IN_PROGRESS');

-- Offers: one per (job, artisan); an artisan is never asked twice for a job.
CREATE TABLE offers (
  id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
  intervention_id UUID NOT NULL REFERENCES interventions(id) ON DELETE CASCADE,
  artisan_id UUID NOT NULL REFERENCES artisans(user_id) ON DELETE CASCADE,
  status VARCHAR(20) NOT NULL DEFAULT 'PENDING'
    CHECK (status IN ('PENDING', 'ACCEPTED', 'DECLINED', 'EXPIRED', 'TAKEN', 'REVOKED')),
  distance_km DOUBLE PRECISION NOT NULL CHECK (distance_km >= 0),
  score DOUBLE PRECISION NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  expires_at TIMESTAMPTZ NOT NULL,
  responded_at TIMESTAMPTZ,
  CHECK (expires_at > created_at),
  UNIQUE (intervention_id, artisan_id)
);
-- At most one accepted offer per intervention.
CREATE UNIQUE INDEX offers_one_accepted_per_intervention
  ON offers (intervention_id) WHERE status = 'ACCEPTED';
CREATE INDEX offers_pending_deadline_idx ON offers (expires_at) WHERE status = 'PENDING';
CREATE INDEX offers_artisan_pending_idx ON offers (artisan_id) WHERE status = 'PENDING';

-- Audit trail of every intervention status change.
CREATE TABLE intervention_events (
  id BIGSERIAL PRIMARY KEY,
  intervention_id UUID NOT NULL REFERENCES interventions(id) ON DELETE CASCADE,
  from_status VARCHAR(20),
  to_status VARCHAR(20) NOT NULL,
  actor_id UUID REFERENCES users(id) ON DELETE SET NULL,
  actor_role VARCHAR(10) NOT NULL CHECK (actor_role IN ('CLIENT', 'ARTISAN', 'ADMIN', 'SYSTEM')),
  data JSONB,
  at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX intervention_events_intervention_idx ON intervention_events (intervention_id, id);

-- One rating per intervention, by its client.
CREATE TABLE ratings (
  intervention_id UUID PRIMARY KEY REFERENCES interventions(id) ON DELETE CASCADE,
  client_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  artisan_id UUID NOT NULL REFERENCES artisans(user_id) ON DELETE CASCADE,
  stars SMALLINT NOT NULL CHECK (stars BETWEEN 1 AND 5),
  comment VARCHAR(2000),
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Artisan documents (ID_CARD, KBIS, INSURANCE) in private storage.
CREATE TABLE artisan_documents (
  id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
  artisan_id UUID NOT NULL REFERENCES artisans(user_id) ON DELETE CASCADE,
  kind VARCHAR(20) NOT NULL CHECK (kind IN ('ID_CARD', 'KBIS', 'INSURANCE')),
  content_type VARCHAR(40) NOT NULL
    CHECK (content_type IN ('application/pdf', 'image/jpeg', 'image/png')),
  size_bytes INTEGER NOT NULL CHECK (size_bytes BETWEEN 1 AND 10485760),
  storage_key VARCHAR(300) NOT NULL UNIQUE,
  status VARCHAR(20) NOT NULL DEFAULT 'PENDING_UPLOAD'
    CHECK (status IN ('PENDING_UPLOAD', 'UPLOADED', 'ACCEPTED', 'REJECTED')),
  review_reason VARCHAR(1000),
  reviewed_by UUID REFERENCES users(id) ON DELETE SET NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  uploaded_at TIMESTAMPTZ,
  reviewed_at TIMESTAMPTZ
);
CREATE INDEX artisan_documents_artisan_idx ON artisan_documents (artisan_id, created_at);

-- Price per specialty, computed on the server (never taken from the client).
CREATE TABLE specialty_prices (
  specialty VARCHAR(50) PRIMARY KEY
    CHECK (specialty IN ('PLUMBER', 'ELECTRICIAN', 'LOCKSMITH', 'HEATING', 'GLAZIER', 'APPLIANCE_REPAIR')),
  amount INTEGER NOT NULL CHECK (amount > 0), -- minor units
  currency CHAR(3) NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$')
);
INSERT INTO specialty_prices (specialty, amount) VALUES
  ('PLUMBER', 12000), ('ELECTRICIAN', 11000), ('LOCKSMITH', 13000),
  ('HEATING', 14000), ('GLAZIER', 15000), ('APPLIANCE_REPAIR', 9000);

-- Stripe payments, one per intervention.
CREATE TABLE payments (
  id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
  intervention_id UUID NOT NULL UNIQUE REFERENCES interventions(id) ON DELETE RESTRICT,
  stripe_payment_intent_id VARCHAR(255) UNIQUE,
  amount INTEGER NOT NULL CHECK (amount > 0),
  currency CHAR(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  application_fee_amount INTEGER NOT NULL CHECK (application_fee_amount >= 0),
  status VARCHAR(30) NOT NULL
    CHECK (status IN ('PENDING', 'REQUIRES_CAPTURE', 'CAPTURED', 'CANCELLED', 'REFUNDED', 'FAILED')),
  refunded_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  CHECK (application_fee_amount <= amount)
);

-- Stripe webhook events already processed (deduplication, same transaction as effects).
CREATE TABLE processed_webhooks (
  event_id VARCHAR(255) PRIMARY KEY,
  event_type VARCHAR(100) NOT NULL,
  processed_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Every admin action.
CREATE TABLE admin_audit (
  id BIGSERIAL PRIMARY KEY,
  admin_id UUID REFERENCES users(id) ON DELETE SET NULL,
  action VARCHAR(50) NOT NULL,
  target_type VARCHAR(30) NOT NULL,
  target_id UUID,
  data JSONB,
  at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX admin_audit_target_idx ON admin_audit (target_type, target_id);
