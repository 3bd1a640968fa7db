-- One row per upload. Variants are a small jsonb map name -> {key, width, height, bytes, mime}.
CREATE TABLE media (
    id               text PRIMARY KEY,
    owner            text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('post', 'avatar')),
    collection       text,
    position         integer NOT NULL DEFAULT 0,
    visibility       text NOT NULL CHECK (visibility IN ('public', 'private')),
    status           text NOT NULL CHECK (status IN ('processing', 'ready', 'deleting')),
    original_mime    text NOT NULL,
    original_bytes   bigint NOT NULL,
    original_width   integer,
    original_height  integer,
    original_frames  integer,
    sha256           text NOT NULL,
    variants         jsonb NOT NULL DEFAULT '{}'::jsonb,
    idempotency_key  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Listing a caller's media, newest first.
CREATE INDEX media_owner_created_idx ON media (owner, created_at DESC, id DESC);
-- Listing and ordering one collection.
CREATE INDEX media_owner_collection_idx ON media (owner, collection, position)
    WHERE collection IS NOT NULL;
-- An idempotency key names at most one upload per owner.
CREATE UNIQUE INDEX media_owner_idempotency_idx ON media (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The reaper looks for rows stuck outside `ready`.
CREATE INDEX media_unfinished_idx ON media (updated_at) WHERE status <> 'ready';
