-- Events (issue 18): an outbox. An event is written in the transaction of the change it
-- reports; it has one delivery per configured webhook URL, which the dispatcher of any
-- node claims (a lease), sends, and records. See mediasvc/events/__init__.py.
CREATE TABLE events (
    -- Sent as `webhook-id`: the same on every attempt and to every URL.
    id          text PRIMARY KEY,
    -- Recording order: a media's later event has a larger seq.
    seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    type        text NOT NULL,
    -- No foreign key: the events of a media outlive its row.
    media_id    text NOT NULL,
    -- The exact JSON that is sent and signed, the same on every attempt.
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE event_deliveries (
    event_id     text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    url          text NOT NULL,
    -- Copied from the event, so the per-media order check reads this table alone.
    media_id     text NOT NULL,
    seq          bigint NOT NULL,
    -- pending (to send, or being sent), delivered (a 2xx), failed (given up, kept).
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    -- When a pending delivery may be claimed; while claimed, when its lease runs out.
    due_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- When it was queued (or requeued by `events retry`): retries stop WEBHOOK_RETRY_S later.
    queued_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Claimed and not yet recorded or released (a node may have died holding it).
    leased       boolean NOT NULL DEFAULT false,
    -- The node ("host:pid") that made the last attempt.
    claimed_by   text,
    last_status  integer,
    last_error   text,
    finished_at  timestamptz,
    PRIMARY KEY (event_id, url)
);

-- What is due, soonest first.
CREATE INDEX event_deliveries_due_idx ON event_deliveries (due_at) WHERE state = 'pending';
-- "Is an earlier event of this media still pending for this URL?"
CREATE INDEX event_deliveries_order_idx ON event_deliveries (url, media_id, seq)
    WHERE state = 'pending';
-- Given-up deliveries, for `python -m mediasvc events`.
CREATE INDEX event_deliveries_failed_idx ON event_deliveries (seq) WHERE state = 'failed';
-- Pruning delivered events by age.
CREATE INDEX events_created_idx ON events (created_at);
