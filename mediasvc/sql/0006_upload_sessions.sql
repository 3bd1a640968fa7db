-- Upload sessions: a `pending` media waits for its bytes (sent straight to storage) until
-- `expires_at`; an asynchronous completion that fails is kept as `failed` with its problem
-- until the reaper removes it. A pending session may not know its sha256 yet.
ALTER TABLE media DROP CONSTRAINT media_status_check;
ALTER TABLE media ADD CONSTRAINT media_status_check
    CHECK (status IN ('pending', 'processing', 'ready', 'failed', 'deleting'));
ALTER TABLE media ALTER COLUMN sha256 DROP NOT NULL;
ALTER TABLE media
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN problem    jsonb;
-- The reaper's expiry scan.
CREATE INDEX media_pending_expiry_idx ON media (expires_at) WHERE status = 'pending';
