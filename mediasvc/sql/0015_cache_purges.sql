-- Caches purged on delete (issue 29): the public variant keys whose objects were just
-- removed from the bucket, one row per removal. Every nginx cache follows this table
-- (`mediasvc.nginxcache`): at once on the NOTIFY sent with each row, by polling otherwise,
-- and from the last cache TTL when it starts, so a node that was down catches up. Rows
-- older than the TTL are of no use (nginx has let those entries expire) and are pruned.
CREATE TABLE cache_purges (
    seq bigserial PRIMARY KEY,
    keys text[] NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX cache_purges_recorded_idx ON cache_purges (recorded_at);
