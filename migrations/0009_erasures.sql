-- Requests to erase one person's data (GDPR Art. 17), and how far the aggregator's
-- hourly cron has got with each. The row stays as the record that the request was
-- honoured: when, for which identifier hash, and how many rows it deleted.
CREATE TABLE erasures (
    id            TEXT    PRIMARY KEY,          -- 32 hex digits, given to the requester
    project_id    INTEGER NOT NULL,             -- projects.id
    user          TEXT    NOT NULL,             -- the identifier hash (64 hex digits)
    requested_at  INTEGER NOT NULL,             -- epoch milliseconds
    marks_done    INTEGER NOT NULL DEFAULT 0,   -- session marks and dead letters erased
    cursor        BLOB    NOT NULL DEFAULT x'', -- the last raw event id scanned
    raw_deleted   INTEGER NOT NULL DEFAULT 0,
    marks_deleted INTEGER NOT NULL DEFAULT 0,
    done_at       INTEGER                       -- when nothing of the person was left
);

CREATE INDEX erasures_pending ON erasures (requested_at, id) WHERE done_at IS NULL;
