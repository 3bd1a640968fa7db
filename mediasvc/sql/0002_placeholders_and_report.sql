-- What the pipeline learns in its one decode: a placeholder for clients to paint before
-- the image loads, and a report of what was changed (rotation, colour, metadata removed).
ALTER TABLE media
    ADD COLUMN thumbhash      text,
    ADD COLUMN dominant_color text,
    ADD COLUMN processing     jsonb;
