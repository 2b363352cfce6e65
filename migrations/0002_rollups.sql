-- Compact raw events, rollups with mergeable summaries, and the aggregator's bookkeeping.

-- Projects and their settings. Raw rows refer to a project by its integer id (one or
-- two bytes, not the slug twice per event). Keys and tokens come with ingest.
CREATE TABLE projects (
    id             INTEGER PRIMARY KEY,
    slug           TEXT    NOT NULL UNIQUE,
    retention_days INTEGER NOT NULL DEFAULT 90 CHECK (retention_days BETWEEN 1 AND 3660),
    session_start  TEXT    NOT NULL DEFAULT 'play',  -- event names that open and close
    session_stop   TEXT    NOT NULL DEFAULT 'stop',  -- a session
    created_at     INTEGER NOT NULL
);

INSERT INTO projects (slug, created_at) SELECT DISTINCT project, 0 FROM events;

-- Raw events, compact: ids and identifier hashes as BLOBs, durations in whole
-- microseconds. WITHOUT ROWID makes the primary key the table itself, so an insert
-- writes the row and one index entry (the time index): two rows written per event.
CREATE TABLE raw_events (
    project_id    INTEGER NOT NULL,  -- projects.id
    event_id      BLOB    NOT NULL,  -- the UUID's 16 bytes
    timestamp     INTEGER NOT NULL,  -- epoch milliseconds
    name          TEXT    NOT NULL,
    method        TEXT,
    route         TEXT,
    status        INTEGER,
    duration_us   INTEGER,           -- whole microseconds
    error_class   TEXT,
    error_message TEXT,
    instance      BLOB,              -- first 8 bytes of the identifier hash
    user          BLOB,
    session       BLOB,
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
    PRIMARY KEY (project_id, event_id)
) WITHOUT ROWID;

CREATE INDEX raw_events_by_time ON raw_events (project_id, timestamp);

INSERT INTO raw_events
SELECT (SELECT id FROM projects WHERE slug = project), unhex(replace(event_id, '-', '')), timestamp, name, method, route, status,
       CAST(round(duration_ms * 1000) AS INTEGER), error_class, error_message,
       unhex(substr(instance, 1, 16)), unhex(substr(user, 1, 16)), unhex(substr(session, 1, 16)),
       version, colo, country, source, medium, campaign, item, variant, bytes, metadata
FROM events;

DROP TABLE events;

-- One row per (project, period, start, dimension, value). `version` is an optimistic
-- lock: every update must set it to the old value plus one, so two writers that read
-- the same version cannot both apply their change (the second aborts its batch).
CREATE TABLE rollups (
    project         TEXT    NOT NULL,
    period          TEXT    NOT NULL CHECK (period IN ('hour', 'day', 'month')),
    start           INTEGER NOT NULL,  -- epoch milliseconds, UTC
    dimension       TEXT    NOT NULL,
    value           TEXT    NOT NULL,
    count           INTEGER NOT NULL,
    errors          INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    duration_sum_us INTEGER NOT NULL,  -- also inside `durations`; here for plain SQL sums
    durations       BLOB    NOT NULL,  -- tally_core::sketch encoding
    users           BLOB    NOT NULL,  -- tally_core::hll encoding
    instances       BLOB    NOT NULL,  -- tally_core::hll encoding
    version         INTEGER NOT NULL,
    PRIMARY KEY (project, period, start, dimension, value)
) WITHOUT ROWID;

CREATE TRIGGER rollups_optimistic_lock BEFORE UPDATE ON rollups
WHEN NEW.version IS NOT OLD.version + 1
BEGIN
    SELECT RAISE(ABORT, 'rollup version conflict');
END;

-- Days and months whose hours changed since they were last rolled. `generation` grows
-- with every change, so a roll only clears the mark if nothing changed meanwhile.
CREATE TABLE dirty_periods (
    project    TEXT    NOT NULL,
    period     TEXT    NOT NULL CHECK (period IN ('day', 'month')),
    start      INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (project, period, start)
) WITHOUT ROWID;

-- Job progress and lag, one value per key.
CREATE TABLE meta (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The start and stop events of sessions, and nothing else, so pairing reads only them.
CREATE TABLE session_events (
    project_id INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    event_id  BLOB    NOT NULL,
    user      BLOB    NOT NULL,
    is_start  INTEGER NOT NULL,
    PRIMARY KEY (project_id, timestamp, event_id)
) WITHOUT ROWID;

-- Messages that exhausted their retries on the `events` queue, kept for inspection and
-- replay instead of expiring in the dead-letter queue.
CREATE TABLE dead_letters (
    message_id  TEXT    PRIMARY KEY,
    queue       TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    sent_at     INTEGER NOT NULL,  -- when the message was first sent
    received_at INTEGER NOT NULL
);
