-- Tally's first schema: raw events and the record of cron job runs.
-- Times are epoch milliseconds (UTC) in INTEGER columns; ids and hashes are TEXT.

-- Raw events, one row per accepted event. The primary key is the exact dedup:
-- a queue redelivery or a client retry of the same (project, event_id) is ignored.
CREATE TABLE events (
    project       TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    timestamp     INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    method        TEXT,
    route         TEXT,
    status        INTEGER,
    duration_ms   REAL,
    error_class   TEXT,
    error_message TEXT,
    instance      TEXT,
    user          TEXT,
    session       TEXT,
    version       TEXT,
    colo          TEXT,
    country       TEXT,
    source        TEXT,
    medium        TEXT,
    campaign      TEXT,
    item          TEXT,
    variant       TEXT,
    bytes         INTEGER,
    metadata      TEXT,
    PRIMARY KEY (project, event_id)
);

-- Range scans per project (the current hour, exports, rollup rebuilds, retention).
CREATE INDEX events_by_project_time ON events (project, timestamp);

-- One row per cron invocation of the aggregator: which job, when, and how it ended.
CREATE TABLE job_runs (
    id           INTEGER PRIMARY KEY,
    job          TEXT    NOT NULL,
    cron         TEXT    NOT NULL,
    scheduled_at INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    outcome      TEXT    NOT NULL CHECK (outcome IN ('ok', 'error')),
    detail       TEXT
);

CREATE INDEX job_runs_by_job_time ON job_runs (job, started_at);
