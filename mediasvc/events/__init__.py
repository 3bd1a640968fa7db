"""Events: Standard Webhooks from a PostgreSQL outbox.

    a state change's transaction ──▶ `events` row + one `event_deliveries` row per URL
                                     (outbox.record; NOTIFY at commit)
    every node's dispatcher ──▶ claim due deliveries (a lease) ──▶ POST, signed
                                     ──▶ delivered / retry with backoff / given up, kept

- `outbox`: recording, in the caller's transaction, and the payload (Media JSON without
  signed URLs).
- `dispatcher`: the per-node loop: claim, send, record; LISTEN/NOTIFY to wake up.
- `signing`: the `webhook-*` headers.
- `db.events` (with all other SQL, in `db/`): the SQL of both tables, and the life of a
  delivery.
- `admin`: `python -m mediasvc events` (list, retry).

Guarantees: an event exists if and only if its change committed; each URL gets it at
least once (receivers dedupe on `webhook-id`), and a media's events in order: a delivery
is claimed only when no earlier event of the same media is still pending for that URL.
"""
