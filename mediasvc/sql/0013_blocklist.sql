-- Issue 30: every upload's PDQ perceptual hash (256 bits, and PDQ's quality 0-100), and a
-- blocklist of files (exact sha256) and pictures (PDQ within a Hamming distance) that
-- uploads are refused for. Rows written before have no hash: they are found by sha256 only.
ALTER TABLE media
    ADD COLUMN pdq         bit(256),
    ADD COLUMN pdq_quality smallint;

-- A takedown finds every copy of a file across owners and spaces.
CREATE INDEX media_sha256_idx ON media (sha256) WHERE sha256 IS NOT NULL;

CREATE TABLE blocklist (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256     text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    pdq        bit(256),
    reason     text NOT NULL,
    -- The admin's token subject, or `cli` (`python -m mediasvc blocklist add`).
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- An entry blocks one thing: a file or a picture.
    CHECK ((sha256 IS NULL) <> (pdq IS NULL))
);
-- An upload's exact match is an index lookup; its PDQ is compared with every PDQ entry
-- (`db.blocklist.IS_BLOCKED`: 10 000 entries take under 2 ms).
CREATE UNIQUE INDEX blocklist_sha256_idx ON blocklist (sha256) WHERE sha256 IS NOT NULL;
CREATE UNIQUE INDEX blocklist_pdq_idx ON blocklist (pdq) WHERE pdq IS NOT NULL;
