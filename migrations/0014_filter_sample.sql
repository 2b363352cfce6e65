-- Filtered reads over budget answer from a deterministic sample of users: the events
-- whose sample key (the last byte of the user hash, or of the event id for events
-- without a user) is in a set of buckets. This index lets such a read seek each bucket's
-- events of a time range instead of scanning the range: one more row written per event
-- (three instead of two), measured in the README's limits table.
CREATE INDEX raw_events_by_sample
    ON raw_events (project_id, substr(coalesce(user, event_id), -1, 1), timestamp);
