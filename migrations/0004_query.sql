-- What the query API reads beyond rollups: the last message of each error class, and an
-- index that makes reading one dimension over a long range cheap.

-- The latest message of each error class of a project: one row per class, replaced
-- only by a message with a later event time (at the same time, by the greater text), so
-- applying the same events again, or in any order, leaves the same row. Written by the
-- aggregator's consumer in the transaction that stores the events; purged with raw
-- events past retention, since a message is raw event text.
CREATE TABLE error_messages (
    project_id  INTEGER NOT NULL,  -- projects.id
    error_class TEXT    NOT NULL,
    timestamp   INTEGER NOT NULL,  -- the event time of `message`, epoch milliseconds
    message     TEXT    NOT NULL,
    PRIMARY KEY (project_id, error_class)
) WITHOUT ROWID;

-- Breakdowns and series read one dimension of a project over many periods; the primary
-- key orders by start before dimension, so without this every dimension of the range
-- would be scanned.
CREATE INDEX rollups_by_dimension ON rollups (project, period, dimension, start);
