-- Upload sessions that complete by themselves (`"complete": "auto"`): on local disk the
-- signed PUT completes the session; on S3 any node's completer claims due sessions
-- (`db.queries.CLAIM_AUTO_COMPLETE`), looks for the object, and checks again later with a
-- growing delay (`auto_checks` counts the looks, `auto_check_at` is when the next is due).
ALTER TABLE media
    ADD COLUMN auto_complete boolean NOT NULL DEFAULT false,
    ADD COLUMN auto_checks integer NOT NULL DEFAULT 0,
    ADD COLUMN auto_check_at timestamptz;
CREATE INDEX media_auto_complete_idx ON media (auto_check_at)
    WHERE status = 'pending' AND auto_complete;
