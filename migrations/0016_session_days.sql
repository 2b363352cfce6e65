-- Sessions paired once per day and stored (issue 17).
--
-- `/sessions` paired every start and stop mark of its range on each request, so its
-- cost grew with the range and the project. A session lasts at most a day
-- (`tally_core::sessions::MAX_SESSION_MS`), so the sessions that start on a day depend
-- only on the marks of that day and the next: once both are over, the aggregator's cron
-- pairs them once into a `session_days` row, and reads add those rows up, pairing live
-- only the days not stored yet (today, yesterday, and days a late mark changed).
CREATE TABLE session_days (
    project_id INTEGER NOT NULL,  -- projects.id
    day        INTEGER NOT NULL,  -- the UTC day the sessions start on, epoch milliseconds
    sessions   INTEGER NOT NULL,  -- closed sessions starting that day
    total_ms   INTEGER NOT NULL,  -- their total duration
    PRIMARY KEY (project_id, day)
) WITHOUT ROWID;

-- Days whose stored sessions a new mark may have changed: the consumer marks the day of
-- each mark and the day before, in the transaction that stores the mark. `generation`
-- grows with every change, so a roll only clears the mark if nothing changed meanwhile.
-- A day marked here is paired live until it is rolled again.
CREATE TABLE session_days_dirty (
    project_id INTEGER NOT NULL,
    day        INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (project_id, day)
) WITHOUT ROWID;

-- Every day with marks so far (and the day before each) is rolled from scratch.
INSERT INTO session_days_dirty (project_id, day, generation)
SELECT project_id, day, 1 FROM (
    SELECT project_id, (timestamp / 86400000) * 86400000 AS day FROM session_events
    UNION
    SELECT project_id, (timestamp / 86400000) * 86400000 - 86400000 FROM session_events
);
