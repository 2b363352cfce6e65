//! Every SQL statement Tally runs, as text with numbered bound parameters.
//!
//! Values are never formatted into SQL. D1 allows at most 100 bound parameters per
//! statement, so bulk writes pass one JSON array as a single parameter and expand it
//! with `json_each`, which SQLite and D1 both provide.

/// Inserts a JSON array of [`crate::Event`]s (`?1`), ignoring any whose
/// `(project, event_id)` is already stored: the exact dedup of the pipeline.
pub const INSERT_EVENTS: &str = "\
INSERT OR IGNORE INTO events (
    project, event_id, name, timestamp, received_at, method, route, status, duration_ms,
    error_class, error_message, instance, user, session, version, colo, country,
    source, medium, campaign, item, variant, bytes, metadata)
SELECT
    e.value ->> '$.project', e.value ->> '$.event_id', e.value ->> '$.name',
    e.value ->> '$.timestamp', e.value ->> '$.received_at', e.value ->> '$.method',
    e.value ->> '$.route', e.value ->> '$.status', e.value ->> '$.duration_ms',
    e.value ->> '$.error_class', e.value ->> '$.error_message', e.value ->> '$.instance',
    e.value ->> '$.user', e.value ->> '$.session', e.value ->> '$.version',
    e.value ->> '$.colo', e.value ->> '$.country', e.value ->> '$.source',
    e.value ->> '$.medium', e.value ->> '$.campaign', e.value ->> '$.item',
    e.value ->> '$.variant', e.value ->> '$.bytes', e.value -> '$.metadata'
FROM json_each(?1) AS e";

/// Counts a project's (`?1`) events and errors with `?2 <= timestamp < ?3`.
pub const COUNT_EVENTS: &str = "\
SELECT COUNT(*) AS events,
       COALESCE(SUM(status >= 500 OR error_class IS NOT NULL), 0) AS errors
FROM events
WHERE project = ?1 AND timestamp >= ?2 AND timestamp < ?3";

/// Records one cron job run.
pub const INSERT_JOB_RUN: &str = "\
INSERT INTO job_runs (job, cron, scheduled_at, started_at, finished_at, outcome, detail)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The latest run of every job.
pub const LATEST_JOB_RUNS: &str = "\
SELECT job, cron, scheduled_at, started_at, finished_at, outcome, detail
FROM job_runs AS r
WHERE id = (SELECT MAX(id) FROM job_runs WHERE job = r.job)
ORDER BY job";
