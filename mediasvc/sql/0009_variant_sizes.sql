-- Variants record the size of their kind's ladder they were made for (kinds may declare
-- their own ladders now); the API lists a media's variants by it. Rows written before
-- have the default ladder's names, whose sizes are these.
UPDATE media SET variants = (
    SELECT jsonb_object_agg(name, variant || jsonb_build_object('size', CASE name
        WHEN 'thumbnail' THEN 64 WHEN 'small' THEN 128 WHEN 'medium' THEN 256
        WHEN 'large' THEN 512 ELSE 1024 END))
    FROM jsonb_each(variants) AS each(name, variant)
)
WHERE variants <> '{}'::jsonb;
