-- Spaces: a media may be shared with the members of one conversation, team or project.
-- Media in a space are always private (their files sit behind signed URLs).
ALTER TABLE media
    ADD COLUMN space text,
    ADD CONSTRAINT media_space_private CHECK (space IS NULL OR visibility = 'private');

-- Listing a space's media, newest first, a page at a time (`GET /v1/media?space=`).
CREATE INDEX media_space_created_idx ON media (space, created_at DESC, id DESC)
    WHERE space IS NOT NULL;
