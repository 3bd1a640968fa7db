-- Moderation (issue 30): a kind with `moderation` keeps each upload `quarantined` (visible
-- to its owner and admins only, its variants under `private/` whatever its visibility)
-- until an admin, or the moderation hook, allows it.
ALTER TABLE media DROP CONSTRAINT media_status_check;
ALTER TABLE media ADD CONSTRAINT media_status_check
    CHECK (status IN ('pending', 'processing', 'ready', 'quarantined', 'failed', 'deleting'));
-- The admins' review queue, oldest first (`GET /v1/moderation?status=quarantined`).
CREATE INDEX media_quarantined_idx ON media (created_at, id) WHERE status = 'quarantined';
