-- Rollups keyed by dimension before start (issue 16, fewer rows written per event).
--
-- D1 bills every index entry an insert writes as a row written. A rollup row had two
-- indexes besides its primary key `(project, period, start, dimension, value)`:
-- `rollups_by_dimension (project, period, dimension, start)`, which every breakdown,
-- series and realtime read searched, and `rollups_minutes (project, dimension, value,
-- start) WHERE period = 'minute'`, which alert rules searched. So a new hour row cost
-- two rows written and a new minute row three. Keyed `(project, period, dimension,
-- start, value)`, the table itself is what `rollups_by_dimension` was, holding the
-- columns too (a read no longer goes back from the index to the row), and an alert
-- rule reads each minute of its window by the whole key: every new rollup row is one
-- row written. The reads that took every dimension of a period's starts (rolling a
-- day from its hours, deleting a rolled period's stale rows, purging minute rows) seek
-- each dimension instead (`every_dimension!` in `tally_core::sql`).
--
-- SQLite cannot change a primary key in place, so the table is copied: one statement
-- whose time grows with the rollups stored (some 2 M rows at the bench's 10 M events).
CREATE TABLE rollups_new (
    project         TEXT    NOT NULL,
    period          TEXT    NOT NULL CHECK (period IN ('minute', 'hour', 'day', 'month')),
    start           INTEGER NOT NULL,
    dimension       TEXT    NOT NULL,
    value           TEXT    NOT NULL,
    count           INTEGER NOT NULL,
    errors          INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    duration_sum_us INTEGER NOT NULL,
    durations       BLOB    NOT NULL,
    users           BLOB    NOT NULL,
    instances       BLOB    NOT NULL,
    version         INTEGER NOT NULL,
    revenue         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project, period, dimension, start, value)
) WITHOUT ROWID;

INSERT INTO rollups_new (project, period, start, dimension, value, count, errors, bytes,
                         duration_sum_us, durations, users, instances, version, revenue)
SELECT project, period, start, dimension, value, count, errors, bytes, duration_sum_us,
       durations, users, instances, version, revenue
FROM rollups;

DROP TABLE rollups;
ALTER TABLE rollups_new RENAME TO rollups;

CREATE TRIGGER rollups_optimistic_lock BEFORE UPDATE ON rollups
WHEN NEW.version IS NOT OLD.version + 1
BEGIN
    SELECT RAISE(ABORT, 'rollup version conflict');
END;
