-- `storage copy` (issue 29): each object copied to another backend and checked there, so an
-- interrupted copy resumes where it stopped. `target` names the backend (its bucket and
-- prefix, or its directory); rows of a media that is gone are dropped by the next run.
CREATE TABLE storage_copies (
    target     text NOT NULL,
    key        text NOT NULL,
    media_id   text NOT NULL,
    bytes      bigint NOT NULL,
    sha256     text NOT NULL,
    copied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, key)
);
CREATE INDEX storage_copies_media_idx ON storage_copies (target, media_id);
