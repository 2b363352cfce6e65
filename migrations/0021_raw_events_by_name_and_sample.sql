-- The funnels' access path keyed by sample bucket too (issue 17, reads that do not grow
-- with raw volume).
--
-- `raw_events_by_name (project_id, name, timestamp, …)` let a funnel read only its
-- steps' events, but all of them: past the row budget of filtered reads its sampled
-- path read every event of the sampled users through `raw_events_by_sample` and kept
-- the steps', so at the bench's 10 M events a funnel read 170,325 rows and took 3.5 s.
-- With the sample bucket (the last stored byte of the user's hash, as
-- `raw_events_by_sample` and `tally_core::filter::sample_bucket` take it) after the
-- name, a funnel seeks each step name's events of each sampled bucket and reads
-- nothing else: the exact answer is the read of all 256 buckets, a sample the read of
-- the first k. Each search is one seek more than before (256 per name for an exact
-- answer), which the funnel's row budget counts.
--
-- It replaces the index rather than adding one: an event with a user writes the same
-- rows as before. Building it reads the table once (some 8.5 M entries at the bench's
-- 10 M events).
DROP INDEX IF EXISTS raw_events_by_name;
CREATE INDEX raw_events_by_name
    ON raw_events (project_id, name, substr(user, -1, 1), timestamp, event_id, user)
    WHERE user IS NOT NULL;
