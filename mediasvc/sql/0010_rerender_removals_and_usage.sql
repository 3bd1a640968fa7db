-- Re-rendering and usage (issue 29).

-- Objects to remove once due, unless a transaction takes them off the list first. A
-- re-render lists its new files before it writes them (due after the reaper's grace period:
-- if it dies before its swap, they go) and its swap's transaction takes them off and lists
-- the files they replace (due at once). The reaper removes what is due (`leased_at`: a
-- reaper is removing it now; a swap never takes back a leased key). No foreign key: a
-- purged media's keys are gone already, and removing a missing key is no error.
CREATE TABLE object_removals (
    key       text PRIMARY KEY,
    media_id  text NOT NULL,
    due_at    timestamptz NOT NULL,
    leased_at timestamptz
);
CREATE INDEX object_removals_due_idx ON object_removals (due_at);

-- The usage gauges' numbers per kind, computed by one node at a time (the others read
-- them), and when that was.
CREATE TABLE usage_by_kind (
    kind             text PRIMARY KEY,
    media            bigint NOT NULL,
    variant_bytes    bigint NOT NULL,
    source_bytes     bigint NOT NULL,
    pending_sessions bigint NOT NULL
);
CREATE TABLE usage_refreshed (
    single       boolean PRIMARY KEY DEFAULT true CHECK (single),
    refreshed_at timestamptz NOT NULL
);
