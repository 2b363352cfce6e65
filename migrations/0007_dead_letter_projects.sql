-- Dead letters keep whole event bodies (hashed identifiers, messages, metadata), so they
-- are purged with their project's raw events: each row names its project, read from the
-- body itself (an events message's first event or dropped record, or an alert's row).
-- A body that names no project is purged after the longest default retention.
ALTER TABLE dead_letters ADD COLUMN project TEXT;

UPDATE dead_letters SET project = CASE WHEN json_valid(body) THEN COALESCE(
    body ->> '$.events[0].project',
    body ->> '$.dropped[0].project',
    (SELECT a.project FROM alerts AS a WHERE a.id = body ->> '$.alert')) END;

CREATE INDEX dead_letters_by_project ON dead_letters (project, received_at);
