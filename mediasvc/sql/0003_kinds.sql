-- Kinds come from the operator's kinds file (MEDIASVC_KINDS_FILE), so the database keeps
-- any kind's name; media of a kind later removed from the file keep working.
ALTER TABLE media DROP CONSTRAINT IF EXISTS media_kind_check;
ALTER TABLE media ADD CONSTRAINT media_kind_name CHECK (kind ~ '^[a-z0-9_-]{1,32}$');
