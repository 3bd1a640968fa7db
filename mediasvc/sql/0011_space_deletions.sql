-- Emptying a space (`DELETE /v1/spaces/{space}/media`, `python -m mediasvc spaces delete`):
-- one durable row per space being emptied, so that any node finishes the work when the one
-- that accepted it stops half way. Every media of the space created up to `cutoff` goes,
-- whatever its status; the row is removed, in one statement, once none is left.
CREATE TABLE space_deletions (
    space text PRIMARY KEY,
    cutoff timestamptz NOT NULL,
    requested_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
