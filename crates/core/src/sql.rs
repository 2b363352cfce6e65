//! Every SQL statement Tally runs, as text with numbered bound parameters.
//!
//! Values are never formatted into SQL. D1 allows at most 100 bound parameters per
//! statement, so bulk statements take one JSON array as a single parameter and expand
//! it with `jsonb_each`, which SQLite (3.45 on) and D1 both provide. `jsonb_each`, not
//! `json_each`: its `value` of an object or array element is the binary JSONB slice that
//! `->>` reads directly, where `json_each` renders each element back to text for `->>`
//! to parse again (15% of the native store path's time, and its events/s up 25 to 30%
//! without it; bench/RESULTS.md). A string or number element's `value` is the same SQL
//! value either way. BLOBs cross the boundary as
//! hex text (`unhex(?)` in, `hex(column)` out): D1 and its local emulation have
//! disagreed on how BLOB parameters are passed, and text means the same everywhere.

/// The head of every statement that copies a JSON array of [`crate::Event`]s (`?1`,
/// one row `e` each) into `raw_events`: the columns and how each is converted (ids and
/// hashes to BLOBs, durations to microseconds). The statement then joins `projects AS p`
/// by slug for `p.id`; [`INSERT_EVENTS`] and [`MOVE_INSERT_RAW_EVENTS`] differ only there
/// and in what a stored event does.
macro_rules! insert_raw_events {
    () => {
        "INSERT INTO raw_events (
    project_id, event_id, timestamp, name, method, route, status, duration_us, error_class,
    error_message, instance, user, session, version, colo, country, source, medium,
    campaign, item, variant, bytes, metadata, term, content)
SELECT
    p.id, unhex(replace(e.value ->> '$.event_id', '-', '')),
    e.value ->> '$.timestamp', e.value ->> '$.name', e.value ->> '$.method',
    e.value ->> '$.route', e.value ->> '$.status',
    CAST(round((e.value ->> '$.duration_ms') * 1000) AS INTEGER),
    e.value ->> '$.error_class', e.value ->> '$.error_message',
    unhex(substr(e.value ->> '$.instance', 1, 16)), unhex(substr(e.value ->> '$.user', 1, 16)),
    unhex(substr(e.value ->> '$.session', 1, 16)), e.value ->> '$.version',
    e.value ->> '$.colo', e.value ->> '$.country', e.value ->> '$.source',
    e.value ->> '$.medium', e.value ->> '$.campaign', e.value ->> '$.item',
    e.value ->> '$.variant', e.value ->> '$.bytes', e.value -> '$.metadata',
    e.value ->> '$.term', e.value ->> '$.content'
FROM jsonb_each(?1) AS e
"
    };
}

/// Inserts a JSON array of [`crate::Event`]s (`?1`) into `raw_events`, converting ids
/// and hashes to BLOBs and durations to microseconds. A plain `INSERT`: an event that is
/// already stored fails the statement, and with it the whole transaction, because the
/// caller has just checked that these events are new (see [`EXISTING_EVENTS`]). So does
/// an event of a project not in `projects` (its id is NULL): never a silent drop.
pub const INSERT_EVENTS: &str = concat!(
    insert_raw_events!(),
    "LEFT JOIN projects AS p ON p.slug = e.value ->> '$.project'"
);

/// Copies the session start and stop events among a JSON array of [`crate::Event`]s
/// (`?1`) into `session_events`, by each project's session names: the statement
/// [`INSERT_SESSION_EVENTS`] and [`MOVE_INSERT_SESSION_EVENTS`] share.
macro_rules! insert_session_events {
    () => {
        "INSERT INTO session_events (project_id, timestamp, event_id, user, is_start)
SELECT p.id, e.value ->> '$.timestamp', unhex(replace(e.value ->> '$.event_id', '-', '')),
       unhex(substr(e.value ->> '$.user', 1, 16)), (e.value ->> '$.name') = p.session_start
FROM jsonb_each(?1) AS e
JOIN projects AS p ON p.slug = e.value ->> '$.project'
WHERE e.value ->> '$.user' IS NOT NULL
  AND (e.value ->> '$.name') IN (p.session_start, p.session_stop)"
    };
}

/// Copies the session start and stop events among a JSON array of new
/// [`crate::Event`]s (`?1`) into `session_events`, by each project's session names.
/// Events without a user cannot be paired and are left out.
pub const INSERT_SESSION_EVENTS: &str = insert_session_events!();

/// The event names that open and close a project's (`?1`) sessions: what the consumer
/// stores as marks ([`INSERT_SESSION_EVENTS`]), and what a filtered sessions read takes
/// as marks among raw events.
pub const SESSION_NAMES: &str = "\
SELECT session_start AS start, session_stop AS stop FROM projects WHERE slug = ?1";

/// Marks the session days that the session marks among new events (`?1`, as in
/// [`INSERT_SESSION_EVENTS`]) may change: a mark's day and the day before it, since a
/// session lasts at most a day (`sessions::MAX_SESSION_MS`).
pub const MARK_SESSION_DAYS: &str = "\
INSERT INTO session_days_dirty (project_id, day, generation)
SELECT DISTINCT p.id, ((e.value ->> '$.timestamp') / 86400000) * 86400000 - b.back, 1
FROM jsonb_each(?1) AS e
JOIN projects AS p ON p.slug = e.value ->> '$.project'
JOIN (SELECT 0 AS back UNION ALL SELECT 86400000) AS b
WHERE e.value ->> '$.user' IS NOT NULL
  AND (e.value ->> '$.name') IN (p.session_start, p.session_stop)
ON CONFLICT (project_id, day) DO UPDATE SET generation = generation + 1";

/// Up to `?2` session days marked dirty that start at or before `?1` (days whose marks
/// are all in), oldest first, with their project's slug.
pub const DIRTY_SESSION_DAYS: &str = "\
SELECT p.slug AS project, d.day, d.generation
FROM session_days_dirty AS d JOIN projects AS p ON p.id = d.project_id
WHERE d.day <= ?1
ORDER BY d.day, d.project_id
LIMIT ?2";

/// How many session days marked dirty start at or before `?1`.
pub const DIRTY_SESSION_DAYS_LEFT: &str = "\
SELECT count(*) AS n FROM session_days_dirty WHERE day <= ?1";

/// The days of a project (`?1`) with `?2 <= day < ?3` marked dirty.
pub const DIRTY_SESSION_DAYS_OF_PROJECT: &str = "\
SELECT day FROM session_days_dirty
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND day >= ?2 AND day < ?3";

/// The stored session days of a project (`?1`) with `?2 <= day < ?3`, with their
/// sessions per hour when stored.
pub const SESSION_DAYS: &str = "\
SELECT day, sessions, total_ms, hours FROM session_days
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND day >= ?2 AND day < ?3";

/// Stores the sessions of a project (`?1`) starting on day `?2`: `?3` sessions lasting
/// `?4` milliseconds in all, and per hour of their start `?5` (a JSON array of 24
/// `[sessions, total_ms]`).
pub const PUT_SESSION_DAY: &str = "\
INSERT INTO session_days (project_id, day, sessions, total_ms, hours)
SELECT id, ?2, ?3, ?4, ?5 FROM projects WHERE slug = ?1
ON CONFLICT (project_id, day) DO UPDATE
SET sessions = excluded.sessions, total_ms = excluded.total_ms, hours = excluded.hours";

/// Clears the dirty mark of a project's (`?1`) session day `?2` if its generation is
/// still `?3`.
pub const CLEAR_SESSION_DAY: &str = "\
DELETE FROM session_days_dirty
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND day = ?2 AND generation = ?3";

/// The columns a session mark is read with, and the table.
macro_rules! mark_columns {
    () => {
        "SELECT lower(hex(user)) AS user, timestamp, lower(hex(event_id)) AS event_id, is_start
FROM session_events"
    };
}

/// A page of the session marks of a project (`?1`) with `?2 <= timestamp < ?3`, after
/// the cursor `(?4 timestamp, ?6 event id in hex)`, at most `?7`, in the primary key's
/// order (time, then event id; the `ORDER BY` names the columns, not the hex alias): it
/// sorts nothing, so D1 counts one row per mark (a sorter's rows count again as they
/// leave it). `?5` is not read. The first page's cursor is `(?2, '')`. Pairing wants
/// starts first at one instant (`sessions::stream_order`): the reader reorders each
/// instant's marks.
pub const SESSION_MARKS_PAGE: &str = concat!(
    mark_columns!(),
    "
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
  AND timestamp >= max(?2, ?4) AND timestamp < ?3
  AND (timestamp, event_id) > (?4, unhex(?6))
ORDER BY session_events.timestamp, session_events.event_id
LIMIT ?7"
);

/// A page of the session marks of one user of a project (`?1`) with
/// `?2 <= timestamp < ?3`, after the cursor `(?4 timestamp, ?5 = 1 - is_start, ?6 event
/// id in hex)` in `sessions::stream_order` (time, starts first, event id), at most `?7`;
/// `?8` is the user's identifier hash in hex, of which rows keep the first 8 bytes. The
/// first page's cursor is `(?2, -1, '')`. It reads the user's marks only, through
/// `session_events_by_user` (named: the planner would rather walk the primary key for
/// its time order, over every user's marks); only marks of one instant are sorted.
pub const USER_SESSION_MARKS_PAGE: &str = concat!(
    mark_columns!(),
    " INDEXED BY session_events_by_user
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
  AND timestamp >= max(?2, ?4) AND timestamp < ?3 AND user = unhex(substr(?8, 1, 16))
  AND (timestamp, 1 - is_start, event_id) > (?4, ?5, unhex(?6))
ORDER BY timestamp, 1 - is_start, event_id
LIMIT ?7"
);

/// Counts the raw events of one user of a project (`?1`) with `?2 <= timestamp < ?3`,
/// per UTC day (its start) and name; `?4` is the user's identifier hash in hex, of which
/// rows keep the first 8 bytes. It seeks the user's sample bucket of
/// `raw_events_by_sample` (the last of those bytes), so it reads about 1/256 of the
/// project's events in range rather than all of them; no index of its own is kept for
/// it, which would cost a row written per event.
pub const USER_EVENT_COUNTS: &str = "\
SELECT (timestamp / 86400000) * 86400000 AS day, name, COUNT(*) AS n
FROM raw_events INDEXED BY raw_events_by_sample
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
  AND substr(coalesce(user, event_id), -1, 1) = substr(unhex(substr(?4, 1, 16)), -1, 1)
  AND timestamp >= ?2 AND timestamp < ?3 AND user = unhex(substr(?4, 1, 16))
GROUP BY day, name
ORDER BY day, name";

/// Deletes up to `?3` session marks of a project (`?1`) older than `?2`.
pub const PURGE_SESSION_EVENTS: &str = "\
DELETE FROM session_events
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND timestamp < ?2
  AND event_id IN (
    SELECT event_id FROM session_events
    WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND timestamp < ?2
    LIMIT ?3)";

/// Of a JSON array of `[project, event_id]` pairs (`?1`), the pairs already stored.
pub const EXISTING_EVENTS: &str = "\
SELECT e.value ->> '$[0]' AS project, e.value ->> '$[1]' AS event_id
FROM jsonb_each(?1) AS e
WHERE EXISTS (
    SELECT 1 FROM raw_events AS r JOIN projects AS p ON p.id = r.project_id
    WHERE p.slug = e.value ->> '$[0]'
      AND r.event_id = unhex(replace(e.value ->> '$[1]', '-', '')))";

/// Counts a project's (`?1`) raw events and errors with `?2 <= timestamp < ?3`.
pub const COUNT_EVENTS: &str = "\
SELECT COUNT(*) AS events,
       COALESCE(SUM(status >= 500 OR error_class IS NOT NULL), 0) AS errors
FROM raw_events
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
  AND timestamp >= ?2 AND timestamp < ?3";

/// Raw events of a project (`?1`) with `?2 <= timestamp < ?3`, as [`crate::Event`]
/// fields (ids and hashes back as lowercase hex), ordered for keyset paging after
/// `(timestamp, event_id) > (?4, ?5)`, at most `?6` rows. The cursor's time is also the
/// index range's lower bound, so each page starts where the last one ended.
pub const EVENTS_BETWEEN: &str = "\
SELECT ?1 AS project, lower(hex(event_id)) AS event_id, timestamp, name, method, route, status,
       duration_us, error_class, error_message, lower(hex(instance)) AS instance,
       lower(hex(user)) AS user, lower(hex(session)) AS session, version, colo, country,
       source, medium, campaign, term, content, item, variant, bytes, metadata
FROM raw_events
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
  AND timestamp >= max(?2, ?4) AND timestamp < ?3
  AND (timestamp, event_id) > (?4, unhex(?5))
ORDER BY timestamp, event_id
LIMIT ?6";

/// Records a project the first time it is seen (no write when it exists).
pub const ENSURE_PROJECT: &str = "\
INSERT INTO projects (slug, created_at) VALUES (?1, ?2) ON CONFLICT (slug) DO NOTHING";

/// Every project placed on shard `?1` and not moving, with its retention (read in the
/// control database, which holds the placement and the settings). A moving project
/// (`also_shard` set) is left out of the shards' purges until its move stops writing
/// twice: the move replays its raw events, which must not expire meanwhile.
pub const PROJECTS: &str = "\
SELECT slug, retention_days FROM projects WHERE shard = ?1 AND also_shard IS NULL ORDER BY slug";

/// The shard of each project of a JSON array of slugs (`?1`) that exists, and the shard
/// its events are also written on while it moves (NULL otherwise).
pub const PROJECT_SHARDS: &str = "\
SELECT slug, shard, also_shard FROM projects WHERE slug IN (SELECT value FROM jsonb_each(?1))";

/// How many projects each shard holds (shards without one are left out).
pub const PROJECTS_PER_SHARD: &str = "\
SELECT shard, count(*) AS n FROM projects GROUP BY shard ORDER BY shard";

/// The first `?1` projects of each shard by slug: `/v1/health` names them beside each
/// shard's count ([`PROJECTS_PER_SHARD`]), in one read however many shards there are.
pub const FIRST_PROJECTS_OF_SHARDS: &str = "\
SELECT shard, slug FROM (
    SELECT shard, slug, row_number() OVER (PARTITION BY shard ORDER BY slug) AS n
    FROM projects)
WHERE n <= ?1 ORDER BY shard, slug";

/// The bytes of the database file: its pages in use and free, as SQLite counts them.
/// D1 reports the same figure with every result (`meta.size_after`), so its executor
/// asks with [`SIZE_PROBE`] instead.
pub const DATABASE_BYTES: &str = "\
SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()";

/// A statement that reads no table: D1 answers the database's size after any statement
/// (`meta.size_after`), and this one costs no row read.
pub const SIZE_PROBE: &str = "SELECT 1 AS probe";

/// The rows of the tables that grow with events — raw events, rollups and session
/// marks — each counted up to `?1`. A count equal to `?1` means at least that many: a
/// full count reads every row (a 10 GB shard holds some 70 million raw events, which D1
/// bills and takes seconds to read), so `/v1/health` counts only so far, and the
/// shard's bytes, which D1 reports for free, are its measure of load.
pub const STORED_ROWS: &str = "\
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM raw_events LIMIT ?1)) AS raw_events,
    (SELECT count(*) FROM (SELECT 1 FROM rollups LIMIT ?1)) AS rollups,
    (SELECT count(*) FROM (SELECT 1 FROM session_events LIMIT ?1)) AS session_marks";

/// Every dimension's name, as an SQL list. The rollups' primary key begins with
/// `(project, period, dimension, start)`, so a statement over every dimension of a
/// period's starts names them all and SQLite seeks each one's starts rather than
/// reading every start of the project. A test keeps it equal to `Dimension`'s names.
macro_rules! every_dimension {
    () => {
        "('all', 'name', 'route', 'status', 'error_class', 'version', 'colo', 'country',
  'source', 'medium', 'campaign', 'term', 'content', 'item', 'variant', 'item_variant',
  'item_country', 'error_route', 'name_route', 'name_campaign', 'name_source',
  'name_medium', 'revenue_name', 'revenue_source', 'revenue_campaign')"
    };
}

/// The minutes from `?from` (rounded up to a minute) to before `?to`, as a recursive
/// table `minutes(start)`: an alert rule's window, read one minute at a time by the
/// rollups' whole key.
macro_rules! minutes_of_window {
    ($from:literal, $to:literal) => {
        concat!(
            "WITH RECURSIVE minutes(start) AS (
    SELECT ((",
            $from,
            ") + 59999) / 60000 * 60000
    UNION ALL
    SELECT start + 60000 FROM minutes WHERE start + 60000 < ",
            $to,
            ")
"
        )
    };
}

/// Stored rollup rows for a JSON array of `[project, period, start, dimension, value]`
/// keys (`?1`).
pub const ROLLUPS_BY_KEY: &str = "\
SELECT r.project, r.period, r.start, r.dimension, r.value, r.count, r.errors, r.bytes,
       r.revenue, hex(r.durations) AS durations, hex(r.users) AS users, hex(r.instances) AS instances,
       r.version
FROM jsonb_each(?1) AS k
JOIN rollups AS r
  ON r.project = k.value ->> '$[0]' AND r.period = k.value ->> '$[1]'
 AND r.start = k.value ->> '$[2]' AND r.dimension = k.value ->> '$[3]'
 AND r.value = k.value ->> '$[4]'";

/// Of a JSON array of `[project, start, dimension]` groups (`?1`) of period `?2`, how
/// many values each holds already, the folded values not counted (`''`, and a revenue
/// dimension's per-currency `["EUR",""]`, the only values ending `,""]`: no event has an
/// empty value): what the bound on a dimension's values per period leaves room for. Each
/// count reads at most the bound's rows of the primary key.
pub const STORED_VALUES: &str = "\
SELECT g.value ->> '$[0]' AS project, g.value ->> '$[1]' AS start,
       g.value ->> '$[2]' AS dimension,
       (SELECT count(*) FROM rollups AS r
        WHERE r.project = g.value ->> '$[0]' AND r.period = ?2
          AND r.start = g.value ->> '$[1]' AND r.dimension = g.value ->> '$[2]'
          AND r.value <> '' AND substr(r.value, -4) <> ',\"\"]') AS n
FROM jsonb_each(?1) AS g";

/// Every rollup row of a project (`?1`) and period (`?2`) with `?3 <= start < ?4`, each
/// dimension's through the primary key.
pub const ROLLUPS_BETWEEN: &str = concat!(
    "SELECT project, period, start, dimension, value, count, errors, bytes, revenue,
       hex(durations) AS durations, hex(users) AS users, hex(instances) AS instances, version
FROM rollups
WHERE project = ?1 AND period = ?2 AND dimension IN ",
    every_dimension!(),
    "
  AND start >= ?3 AND start < ?4"
);

/// Rows of one dimension (`?5`) of a project (`?1`) and period (`?2`) with
/// `?3 <= start < ?4`: one search of the primary key, which is ordered by dimension
/// before start.
pub const ROLLUPS_OF_DIMENSION: &str = "\
SELECT project, period, start, dimension, value, count, errors, bytes, revenue,
       hex(durations) AS durations, hex(users) AS users, hex(instances) AS instances, version
FROM rollups
WHERE project = ?1 AND period = ?2 AND start >= ?3 AND start < ?4 AND dimension = ?5";

/// Rows of the dimensions named in the JSON array `?5` of a project (`?1`) and period
/// (`?2`) with `?3 <= start < ?4`: [`ROLLUPS_OF_DIMENSION`] for several dimensions in
/// one query, each searched through the primary key. Only the rows of the dimensions
/// named in the JSON array `?6` carry their durations sketch, the others' `''` (read
/// back as an empty sketch): the dashboard shows percentiles of `all` alone, while a
/// busy value's sketch is hundreds of bytes of hex a row, about a sixth of what its
/// rows carry.
pub const ROLLUPS_OF_DIMENSIONS: &str = "\
SELECT project, period, start, dimension, value, count, errors, bytes, revenue,
       CASE WHEN dimension IN (SELECT value FROM jsonb_each(?6)) THEN hex(durations) ELSE ''
       END AS durations,
       hex(users) AS users, hex(instances) AS instances, version
FROM rollups
WHERE project = ?1 AND period = ?2 AND start >= ?3 AND start < ?4
  AND dimension IN (SELECT value FROM jsonb_each(?5))";

/// The event counts of one dimension's (`?5`) rows of a project (`?1`) and period (`?2`)
/// with `?3 <= start < ?4`, through the primary key as [`ROLLUPS_OF_DIMENSION`]: the
/// same rows without their summaries (kilobytes of hex each on a busy project), for
/// answers that show counts only (the dashboard's heatmap).
pub const ROLLUP_COUNTS_OF_DIMENSION: &str = "\
SELECT start, value, count
FROM rollups
WHERE project = ?1 AND period = ?2 AND start >= ?3 AND start < ?4 AND dimension = ?5";

/// Rows of one dimension (`?5`) and value (`?6`) of a project (`?1`) and period (`?2`)
/// with `?3 <= start < ?4`. Through the primary key, ordered by dimension before start,
/// so it reads the dimension's rows of the range, not every dimension's.
pub const ROLLUPS_OF_VALUE: &str = "\
SELECT project, period, start, dimension, value, count, errors, bytes, revenue,
       hex(durations) AS durations, hex(users) AS users, hex(instances) AS instances, version
FROM rollups
WHERE project = ?1 AND period = ?2 AND start >= ?3 AND start < ?4 AND dimension = ?5
  AND value = ?6";

/// Rows of one dimension (`?5`) whose value starts with `?6` (the values of a cross
/// dimension that share their first value) of a project (`?1`) and period (`?2`) with
/// `?3 <= start < ?4`, through the primary key as [`ROLLUPS_OF_VALUE`].
pub const ROLLUPS_OF_VALUE_PREFIX: &str = "\
SELECT project, period, start, dimension, value, count, errors, bytes, revenue,
       hex(durations) AS durations, hex(users) AS users, hex(instances) AS instances, version
FROM rollups
WHERE project = ?1 AND period = ?2 AND start >= ?3 AND start < ?4 AND dimension = ?5
  AND substr(value, 1, length(?6)) = ?6";

/// Adds a rollup row that the writer read as absent; fails if it exists by now.
pub const INSERT_ROLLUP: &str = "\
INSERT INTO rollups (project, period, start, dimension, value, count, errors, bytes,
                     duration_sum_us, durations, users, instances, revenue, version)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, unhex(?10), unhex(?11), unhex(?12), ?13, 1)";

/// Replaces a rollup row the writer read at version `?14 - 1`; the optimistic-lock
/// trigger aborts the transaction if another writer changed it meanwhile.
pub const UPDATE_ROLLUP: &str = "\
UPDATE rollups
SET count = ?6, errors = ?7, bytes = ?8, duration_sum_us = ?9, durations = unhex(?10),
    users = unhex(?11), instances = unhex(?12), revenue = ?13, version = ?14
WHERE project = ?1 AND period = ?2 AND start = ?3 AND dimension = ?4 AND value = ?5";

/// Writes a rollup row computed from its sources, whatever is stored: used by the jobs
/// that roll days and months. It still bumps the version, so a consumer that read the
/// old row cannot overwrite this one.
pub const PUT_ROLLUP: &str = "\
INSERT INTO rollups (project, period, start, dimension, value, count, errors, bytes,
                     duration_sum_us, durations, users, instances, revenue, version)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, unhex(?10), unhex(?11), unhex(?12), ?13, 1)
ON CONFLICT (project, period, dimension, start, value) DO UPDATE SET
    count = excluded.count, errors = excluded.errors, bytes = excluded.bytes,
    duration_sum_us = excluded.duration_sum_us, durations = excluded.durations,
    users = excluded.users, instances = excluded.instances, revenue = excluded.revenue,
    version = version + 1";

/// Deletes the rows of a project (`?1`), period (`?2`) and start (`?3`) that a fresh
/// roll did not produce: the keys to keep are a JSON array of `[dimension, value]` (`?4`).
/// Each dimension's rows of the start are found through the primary key.
pub const DELETE_STALE_ROLLUPS: &str = concat!(
    "DELETE FROM rollups
WHERE project = ?1 AND period = ?2 AND dimension IN ",
    every_dimension!(),
    "
  AND start = ?3
  AND (dimension, value) NOT IN (
    SELECT k.value ->> '$[0]', k.value ->> '$[1]' FROM jsonb_each(?4) AS k)"
);

/// Marks a day or month (`?2`) of a project (`?1`) starting at `?3` as needing a roll.
pub const MARK_DIRTY: &str = "\
INSERT INTO dirty_periods (project, period, start, generation) VALUES (?1, ?2, ?3, 1)
ON CONFLICT (project, period, start) DO UPDATE SET generation = generation + 1";

/// Up to `?2` dirty periods of kind `?1`, oldest first, those that never failed to roll
/// first; those that failed after `?3` are left out.
pub const DIRTY_PERIODS: &str = "\
SELECT project, period, start, generation FROM dirty_periods
WHERE period = ?1 AND (failed_at IS NULL OR failed_at <= ?3)
ORDER BY failed_at IS NOT NULL, start LIMIT ?2";

/// Notes that rolling a dirty period (`?1`, `?2`, `?3`) failed at `?4` with error `?5`.
pub const DIRTY_FAILED: &str = "\
UPDATE dirty_periods SET failed_at = ?4, error = ?5
WHERE project = ?1 AND period = ?2 AND start = ?3";

/// Of the dirty periods of kind `?1`: how many may be rolled now (never failed, or
/// failed at or before `?2`), and how many failed last time they were tried.
pub const DIRTY_COUNTS: &str = "\
SELECT COALESCE(SUM(failed_at IS NULL OR failed_at <= ?2), 0) AS ready,
       COALESCE(SUM(failed_at IS NOT NULL), 0) AS failing
FROM dirty_periods WHERE period = ?1";

/// The dirty starts of a project (`?1`) and period (`?2`) with `?3 <= start < ?4`.
pub const DIRTY_STARTS: &str = "\
SELECT start FROM dirty_periods
WHERE project = ?1 AND period = ?2 AND start >= ?3 AND start < ?4";

/// Clears a dirty mark, unless it changed (`generation` is no longer `?4`).
pub const CLEAR_DIRTY: &str = "\
DELETE FROM dirty_periods
WHERE project = ?1 AND period = ?2 AND start = ?3 AND generation = ?4";

/// Deletes a page of rows of table `$table` of project `?1` (by its id), each named by
/// its `$key` within the project (`$columns` in a `SELECT`), among those that the
/// `$rest` of the inner `WHERE` and its `LIMIT` select: a page of a retention purge
/// ([`purge_page`]) or of a move's deletion from the shard it leaves (up to `?2` rows
/// when no `$rest` is given). Every table keyed by a project's id deletes its pages
/// alike, so each one's work is bounded whatever the table's size.
macro_rules! delete_page_by_project_id {
    ($table:literal, $key:literal, $columns:literal) => {
        delete_page_by_project_id!($table, $key, $columns, " LIMIT ?2)")
    };
    ($table:literal, $key:literal, $columns:literal, $rest:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            "
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND ",
            $key,
            " IN (
    SELECT ",
            $columns,
            " FROM ",
            $table,
            "
    WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)",
            $rest
        )
    };
}

/// Deletes up to `?3` rows of table `$table` of a project (`?1`) older than `?2`, each
/// named by its `$key`: one page of a retention purge.
macro_rules! purge_page {
    ($table:literal, $key:literal) => {
        delete_page_by_project_id!(
            $table,
            $key,
            $key,
            " AND timestamp < ?2
    LIMIT ?3)"
        )
    };
}

/// Deletes up to `?3` raw events of a project (`?1`) older than `?2`.
pub const PURGE_RAW_EVENTS: &str = purge_page!("raw_events", "event_id");

/// Sets a meta value.
pub const PUT_META: &str = "\
INSERT INTO meta (key, value, updated_at) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";

/// Every meta value.
pub const ALL_META: &str = "SELECT key, value, updated_at FROM meta ORDER BY key";

/// The migrations wrangler recorded as applied to a D1 database (its own table), for
/// tools that open a local D1 file directly.
pub const D1_MIGRATIONS_APPLIED: &str = "SELECT name FROM d1_migrations ORDER BY id";

/// Keeps a dead-lettered message; a redelivered one is kept once.
/// Its project is read from the body (see `migrations/0007_dead_letter_projects.sql`).
pub const INSERT_DEAD_LETTER: &str = "\
INSERT INTO dead_letters (message_id, queue, body, sent_at, received_at, project)
VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN json_valid(?3) THEN COALESCE(
    ?3 ->> '$.events[0].project',
    ?3 ->> '$.dropped[0].project',
    (SELECT a.project FROM alerts AS a WHERE a.id = ?3 ->> '$.alert')) END)
ON CONFLICT (message_id) DO NOTHING";

/// Deletes up to `?3` dead letters of project `?1` received before `?2`.
pub const PURGE_DEAD_LETTERS: &str = "\
DELETE FROM dead_letters WHERE message_id IN (
    SELECT message_id FROM dead_letters WHERE project = ?1 AND received_at < ?2 LIMIT ?3)";

/// Deletes up to `?2` dead letters that name no project, received before `?1`.
pub const PURGE_ORPHAN_DEAD_LETTERS: &str = "\
DELETE FROM dead_letters WHERE message_id IN (
    SELECT message_id FROM dead_letters WHERE project IS NULL AND received_at < ?1 LIMIT ?2)";

/// How many dead-lettered messages are kept.
pub const COUNT_DEAD_LETTERS: &str = "SELECT COUNT(*) AS n FROM dead_letters";

/// Records one cron job run.
pub const INSERT_JOB_RUN: &str = "\
INSERT INTO job_runs (job, cron, scheduled_at, started_at, finished_at, outcome, detail)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The latest run of every job. One scan of `job_runs_by_job_time` finds the latest id
/// of each job; a correlated `MAX(id)` per row was quadratic (123 s at 30 days of runs),
/// and `/v1/health` is public.
pub const LATEST_JOB_RUNS: &str = "\
SELECT job, cron, scheduled_at, started_at, finished_at, outcome, detail
FROM job_runs
WHERE id IN (SELECT MAX(id) FROM job_runs GROUP BY job)
ORDER BY job";

/// Deletes up to `?2` job runs that started before `?1`, oldest first, keeping the
/// latest run of every job whatever its age.
pub const PURGE_JOB_RUNS: &str = "\
DELETE FROM job_runs WHERE id IN (
    SELECT id FROM job_runs
    WHERE started_at < ?1 AND id NOT IN (SELECT MAX(id) FROM job_runs GROUP BY job)
    ORDER BY id LIMIT ?2)";

/// Of every project, its slug, retention and the time of its oldest raw event (null
/// without events): one index lookup per project, to find which are behind.
pub const OLDEST_RAW_EVENTS: &str = "\
SELECT p.slug AS project, p.retention_days,
       (SELECT MIN(e.timestamp) FROM raw_events AS e WHERE e.project_id = p.id) AS oldest
FROM projects AS p ORDER BY p.slug";

/// How many raw events of project `?1` are older than `?2`, counting at most `?3`.
pub const COUNT_EXPIRED_RAW_EVENTS: &str = "\
SELECT COUNT(*) AS n FROM (
    SELECT 1 FROM raw_events
    WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND timestamp < ?2
    LIMIT ?3)";

/// One project by slug (`?1`).
pub const PROJECT_BY_SLUG: &str = "\
SELECT slug, retention_days, allowed_origins, rate_limit, public_dashboard, public_badges,
       plausible_domain, created_at
FROM projects WHERE slug = ?1";

/// The project that takes keyless Plausible events for domain `?1`.
pub const PROJECT_BY_PLAUSIBLE_DOMAIN: &str = "\
SELECT slug, retention_days, allowed_origins, rate_limit, public_dashboard, public_badges,
       plausible_domain, created_at
FROM projects WHERE plausible_domain = ?1";

/// Every project, by slug.
pub const ALL_PROJECTS: &str = "\
SELECT slug, retention_days, allowed_origins, rate_limit, public_dashboard, public_badges,
       plausible_domain, created_at
FROM projects ORDER BY slug";

/// Creates a project (`?1` slug, `?2` retention, `?3` origins JSON, `?4` tier, `?5`
/// created, `?6` public dashboard and `?7` public badges as 0 or 1, `?8` Plausible
/// domain or NULL) placed on shard `?9`; changes no row when the slug exists.
pub const CREATE_PROJECT: &str = "\
INSERT INTO projects (slug, retention_days, allowed_origins, rate_limit, created_at,
                      public_dashboard, public_badges, plausible_domain, shard)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (slug) DO NOTHING";

/// Sets a project's (`?1`) settings.
pub const UPDATE_PROJECT: &str = "\
UPDATE projects
SET retention_days = ?2, allowed_origins = ?3, rate_limit = ?4, public_dashboard = ?5,
    public_badges = ?6, plausible_domain = ?7
WHERE slug = ?1";

/// Stores a key of a project (`?1`): kind `?2`, hash `?3` (hex), prefix `?4`, name `?5`,
/// created `?6`. Returns its id; no row when the project does not exist.
pub const CREATE_KEY: &str = "\
INSERT INTO api_keys (project_id, kind, hash, prefix, name, created_at)
SELECT id, ?2, unhex(?3), ?4, ?5, ?6 FROM projects WHERE slug = ?1
RETURNING id";

/// The keys of a project (`?1`), oldest first.
pub const KEYS_OF_PROJECT: &str = "\
SELECT k.id, p.slug AS project, k.kind, k.name, k.prefix, k.created_at, k.revoked_at
FROM api_keys AS k JOIN projects AS p ON p.id = k.project_id
WHERE p.slug = ?1 ORDER BY k.id";

/// Revokes key `?2` of project `?1` at `?3`; an earlier revocation stands.
pub const REVOKE_KEY: &str = "\
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3)
WHERE id = ?2 AND project_id = (SELECT id FROM projects WHERE slug = ?1)";

/// A key by the hash of its text (`?1`, hex) with its project's settings.
pub const KEY_BY_HASH: &str = "\
SELECT k.id, p.slug AS project, k.kind, k.name, k.prefix, k.created_at, k.revoked_at,
       p.retention_days, p.allowed_origins, p.rate_limit, p.public_dashboard,
       p.public_badges, p.plausible_domain, p.created_at AS project_created_at
FROM api_keys AS k JOIN projects AS p ON p.id = k.project_id
WHERE k.hash = unhex(?1)";

/// Stores share link `?2` of project `?1`, made at `?3`, expiring at `?4`. Returns its
/// id; no row when the project does not exist.
pub const CREATE_SHARE_LINK: &str = "\
INSERT INTO share_links (id, project_id, created_at, expires_at)
SELECT ?2, id, ?3, ?4 FROM projects WHERE slug = ?1
RETURNING id";

/// The share links of a project (`?1`), newest first.
pub const SHARE_LINKS_OF_PROJECT: &str = "\
SELECT l.id, p.slug AS project, l.created_at, l.expires_at, l.revoked_at
FROM share_links AS l JOIN projects AS p ON p.id = l.project_id
WHERE p.slug = ?1 ORDER BY l.created_at DESC, l.id";

/// Share link `?2` of project `?1`.
pub const SHARE_LINK: &str = "\
SELECT l.id, p.slug AS project, l.created_at, l.expires_at, l.revoked_at
FROM share_links AS l JOIN projects AS p ON p.id = l.project_id
WHERE l.id = ?2 AND p.slug = ?1";

/// Revokes share link `?2` of project `?1` at `?3`; an earlier revocation stands.
pub const REVOKE_SHARE_LINK: &str = "\
UPDATE share_links SET revoked_at = COALESCE(revoked_at, ?3)
WHERE id = ?2 AND project_id = (SELECT id FROM projects WHERE slug = ?1)";

/// Deletes the dashboard sessions that expired before `?1`.
pub const DELETE_EXPIRED_SESSIONS: &str = "\
DELETE FROM dashboard_sessions WHERE expires_at <= ?1";

/// Opens a dashboard session: hash `?1` (hex) for read token `?2`, made at `?3`,
/// expiring at `?4`.
pub const CREATE_SESSION: &str = "\
INSERT INTO dashboard_sessions (hash, key_id, created_at, expires_at)
VALUES (unhex(?1), ?2, ?3, ?4)";

/// The read token of the session whose id hashes to `?1` (hex) and that has not expired
/// at `?2`, with its project's settings (the columns of [`KEY_BY_HASH`]).
pub const SESSION_KEY: &str = "\
SELECT k.id, p.slug AS project, k.kind, k.name, k.prefix, k.created_at, k.revoked_at,
       p.retention_days, p.allowed_origins, p.rate_limit, p.public_dashboard,
       p.public_badges, p.plausible_domain, p.created_at AS project_created_at
FROM dashboard_sessions AS s
JOIN api_keys AS k ON k.id = s.key_id
JOIN projects AS p ON p.id = k.project_id
WHERE s.hash = unhex(?1) AND s.expires_at > ?2";

/// Ends the session whose id hashes to `?1` (hex).
pub const DELETE_SESSION: &str = "\
DELETE FROM dashboard_sessions WHERE hash = unhex(?1)";

/// Records dropped requests from a JSON array of [`crate::queue::Dropped`] (`?1`);
/// one seen before (a redelivered message) is ignored.
pub const INSERT_DROPPED: &str = "\
INSERT INTO dropped_events (project_id, event_id, timestamp, reason)
SELECT p.id, unhex(replace(e.value ->> '$.event_id', '-', '')), e.value ->> '$.timestamp',
       e.value ->> '$.reason'
FROM jsonb_each(?1) AS e
JOIN projects AS p ON p.slug = e.value ->> '$.project'
WHERE true
ON CONFLICT (project_id, event_id) DO NOTHING";

/// Dropped requests of a project (`?1`) with `?2 <= timestamp < ?3`, by reason.
pub const COUNT_DROPPED: &str = "\
SELECT reason, COUNT(*) AS n FROM dropped_events
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
  AND timestamp >= ?2 AND timestamp < ?3
GROUP BY reason ORDER BY reason";

/// Deletes up to `?3` dropped-request records of a project (`?1`) older than `?2`.
pub const PURGE_DROPPED: &str = purge_page!("dropped_events", "event_id");

/// How a stored last error message of a class meets a new one: it is replaced only by
/// one with a later event time, or at the same time by the greater text, so the outcome
/// does not depend on the order or the number of times messages are applied, and a
/// moved project keeps the same message as it would have kept.
macro_rules! keep_later_error_message {
    () => {
        "ON CONFLICT (project_id, error_class) DO UPDATE SET
    timestamp = excluded.timestamp, message = excluded.message
WHERE excluded.timestamp > error_messages.timestamp
   OR (excluded.timestamp = error_messages.timestamp
       AND excluded.message > error_messages.message)"
    };
}

/// Keeps the latest message of each error class among a JSON array of new
/// [`crate::Event`]s (`?1`): a stored message is replaced only by one with a later event
/// time, or at the same time by the greater text, so the outcome does not depend on the
/// order or the number of times events are applied.
pub const KEEP_ERROR_MESSAGES: &str = concat!(
    "INSERT INTO error_messages (project_id, error_class, timestamp, message)
SELECT p.id, e.value ->> '$.error_class', e.value ->> '$.timestamp',
       e.value ->> '$.error_message'
FROM jsonb_each(?1) AS e
JOIN projects AS p ON p.slug = e.value ->> '$.project'
WHERE e.value ->> '$.error_class' IS NOT NULL AND e.value ->> '$.error_message' IS NOT NULL
",
    keep_later_error_message!()
);

/// The last message of every error class of a project (`?1`).
pub const ERROR_MESSAGES: &str = "\
SELECT error_class, timestamp, message FROM error_messages
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
ORDER BY error_class";

/// Deletes up to `?3` last messages of a project (`?1`) older than `?2`.
pub const PURGE_ERROR_MESSAGES: &str = purge_page!("error_messages", "error_class");

/// Deletes the delivery attempts of up to `?3` alerts of a project (`?1`) older than
/// `?2`: the alerts [`PURGE_ALERTS`] deletes next, in the same order.
pub const PURGE_ALERT_ATTEMPTS: &str = "\
DELETE FROM alert_attempts WHERE alert_id IN (
    SELECT id FROM alerts WHERE project = ?1 AND at < ?2 ORDER BY at, id LIMIT ?3)";

/// Deletes up to `?3` alerts of a project (`?1`) older than `?2`.
pub const PURGE_ALERTS: &str = "\
DELETE FROM alerts WHERE id IN (
    SELECT id FROM alerts WHERE project = ?1 AND at < ?2 ORDER BY at, id LIMIT ?3)";

/// The read behind [`FUNNEL_HITS`] and [`FILTERED_FUNNEL_HITS`], with `matched` (the
/// tokens given) as its last column: for each sample bucket of the JSON array `?2` (as
/// `tally_core::filter::sample_bucket` numbers them, each as two hex digits) and each
/// name of the JSON array `?3`, one seek of `raw_events_by_name` (partial on
/// `user IS NOT NULL`, which the statement repeats so the index applies) to that name's
/// and bucket's events with `?4 <= timestamp < ?5`, at most `?6` of them. The joins are
/// `CROSS JOIN`s so SQLite keeps this order.
macro_rules! funnel_hits {
    ($($matched:tt)*) => {
        concat!(
            "SELECT lower(hex(user)) AS user, timestamp, lower(hex(event_id)) AS event_id, name,
       ",
            $($matched)*,
            " AS matched
FROM jsonb_each(?2) AS buckets CROSS JOIN jsonb_each(?3) AS steps
  CROSS JOIN raw_events INDEXED BY raw_events_by_name
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND name = steps.value
  AND substr(user, -1, 1) = unhex(buckets.value)
  AND timestamp >= ?4 AND timestamp < ?5
  AND user IS NOT NULL
LIMIT ?6"
        )
    };
}

/// Up to `?6` raw events of a project (`?1`) with a user, in one of the sample buckets
/// of the JSON array `?2`, with one of the names of the JSON array `?3` and with
/// `?4 <= timestamp < ?5`, as [`crate::funnel::Hit`] fields (and `matched`, always 1),
/// in no useful order: a funnel's read of its steps' events, exact over all 256
/// buckets, a sample of users over the first `k`.
///
/// One seek of `raw_events_by_name` per bucket and name (see `funnel_hits!`), whose
/// entries hold every column returned: it reads the wanted events and no other, and
/// visits no table row. A `LIMIT` rather than keyset pages bounds it: the caller sizes
/// the buckets of one statement by the rollups' count of the names' events, and a
/// statement that fills its limit tells it the buckets held more than it can read.
pub const FUNNEL_HITS: &str = funnel_hits!("1");

/// Of a project's (`?1`) raw events with `?2 <= timestamp < ?3`, the `?4` most recent:
/// how many were read and how many distinct users they have. The realtime view's
/// visitor count, through the time index only (newest first, no sort), so it reads at
/// most `?4` events however many the project holds.
pub const RECENT_VISITORS: &str = "\
SELECT COUNT(*) AS events, COUNT(DISTINCT user) AS visitors
FROM (SELECT user FROM raw_events INDEXED BY raw_events_by_time
      WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
        AND timestamp >= ?2 AND timestamp < ?3
      ORDER BY timestamp DESC
      LIMIT ?4)";

/// The minute rows of one dimension value of a project (`?1`, `?2`, `?3`) with
/// `?4 <= start < ?5`: what an alert rule reads, each minute of the range found by the
/// rollups' whole key, so a value of a dimension with many (a route) reads its own rows
/// only, at most one a minute.
pub const MINUTE_ROWS_OF_VALUE: &str = concat!(
    minutes_of_window!("?4", "?5"),
    "SELECT r.project, r.period, r.start, r.dimension, r.value, r.count, r.errors, r.bytes,
       r.revenue, hex(r.durations) AS durations, hex(r.users) AS users,
       hex(r.instances) AS instances, r.version
FROM minutes AS m CROSS JOIN rollups AS r
WHERE r.project = ?1 AND r.period = 'minute' AND r.dimension = ?2 AND r.start = m.start
  AND r.value = ?3 AND r.start < ?5"
);

/// The minute rows of a project (`?1`) for a JSON array (`?2`) of sources, each
/// `[dimension, value, from]` (`from` a minute's start), with `from <= start < ?3`: what
/// one evaluation reads for every rule of the project, each source's minutes found by
/// the rollups' whole key (at most one row a minute and source, as
/// [`MINUTE_ROWS_OF_VALUE`]).
pub const MINUTE_ROWS_OF_SOURCES: &str = concat!(
    minutes_of_window!(
        "SELECT min(s.value ->> '$[2]') FROM jsonb_each(?2) AS s",
        "?3"
    ),
    "SELECT r.project, r.period, r.start, r.dimension, r.value, r.count, r.errors, r.bytes,
       r.revenue, hex(r.durations) AS durations, hex(r.users) AS users,
       hex(r.instances) AS instances, r.version
FROM jsonb_each(?2) AS s CROSS JOIN minutes AS m CROSS JOIN rollups AS r
WHERE m.start >= s.value ->> '$[2]'
  AND r.project = ?1 AND r.period = 'minute' AND r.dimension = s.value ->> '$[0]'
  AND r.start = m.start AND r.value = s.value ->> '$[1]'"
);

/// Deletes up to `?3` of a project's (`?1`) minute rows older than `?2`, each dimension's
/// found through the primary key.
pub const PURGE_MINUTE_ROLLUPS: &str = concat!(
    "DELETE FROM rollups WHERE (project, period, dimension, start, value) IN (
  SELECT project, period, dimension, start, value FROM rollups
  WHERE project = ?1 AND period = 'minute' AND dimension IN ",
    every_dimension!(),
    " AND start < ?2
  LIMIT ?3)"
);

/// The columns an alert rule is read with.
macro_rules! alert_rule_columns {
    () => {
        "SELECT id, project, definition, secret, enabled, created_at, updated_at, state,
                state_since, last_fired_at, last_value, last_volume, evaluated_at, last_error
         FROM alert_rules "
    };
}

/// The rules of a project (`?1`), oldest first.
pub const ALERT_RULES_OF_PROJECT: &str = concat!(
    alert_rule_columns!(),
    "WHERE project = ?1 ORDER BY created_at, id"
);

/// Every enabled rule, for the minutely evaluation.
pub const ENABLED_ALERT_RULES: &str = concat!(
    alert_rule_columns!(),
    "WHERE enabled = 1 ORDER BY project, id"
);

/// The enabled rules of the projects of a JSON array of slugs (`?1`), through
/// `alert_rules_by_project`: what the consumer reads (at most once a minute per
/// project) to learn which minute rows the rules read.
pub const ENABLED_ALERT_RULES_OF_PROJECTS: &str = concat!(
    alert_rule_columns!(),
    "WHERE project IN (SELECT value FROM jsonb_each(?1)) AND enabled = 1 ORDER BY project, id"
);

/// Adds a rule (`?1` id, `?2` project, `?3` definition, `?4` secret, `?5` enabled,
/// `?6` now) unless the project has `?7` rules already.
pub const INSERT_ALERT_RULE: &str = "\
INSERT INTO alert_rules (id, project, definition, secret, enabled, created_at, updated_at)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6
WHERE (SELECT COUNT(*) FROM alert_rules WHERE project = ?2) < ?7";

/// Changes a rule's definition, secret and switch (`?3`..`?6`, `?6` now).
pub const UPDATE_ALERT_RULE: &str = "\
UPDATE alert_rules SET definition = ?3, secret = ?4, enabled = ?5, updated_at = ?6
WHERE id = ?1 AND project = ?2";

/// Deletes a rule; its history stays.
pub const DELETE_ALERT_RULE: &str = "DELETE FROM alert_rules WHERE id = ?1 AND project = ?2";

/// Records evaluations that changed no state, at `?2`: a JSON array (`?1`) of
/// `[rule id, value, volume, error]`. An evaluation that failed keeps the last value
/// and volume and records its error; one that succeeded clears it.
pub const ALERTS_EVALUATED: &str = "\
UPDATE alert_rules
SET last_value = CASE WHEN e.value ->> '$[3]' IS NULL THEN e.value ->> '$[1]'
                      ELSE last_value END,
    last_volume = CASE WHEN e.value ->> '$[3]' IS NULL THEN e.value ->> '$[2]'
                       ELSE last_volume END,
    evaluated_at = ?2,
    last_error = e.value ->> '$[3]'
FROM jsonb_each(?1) AS e
WHERE alert_rules.id = e.value ->> '$[0]'";

/// Moves rules to a new state at `?2`, recording the value and volume, from a JSON
/// array (`?1`) of `[rule id, from state, from since, to state, value, volume]`: a rule
/// another evaluation moved meanwhile (no longer in the state and since it was read in)
/// is not changed. Firing also records the time it fired.
pub const ALERT_TRANSITIONS: &str = "\
UPDATE alert_rules
SET state = t.value ->> '$[3]', state_since = ?2, last_value = t.value ->> '$[4]',
    last_volume = t.value ->> '$[5]', evaluated_at = ?2,
    last_fired_at = CASE WHEN t.value ->> '$[3]' = 'firing' THEN ?2 ELSE last_fired_at END,
    last_error = NULL
FROM jsonb_each(?1) AS t
WHERE alert_rules.id = t.value ->> '$[0]' AND alert_rules.state = t.value ->> '$[1]'
  AND alert_rules.state_since = t.value ->> '$[2]'";

/// Records firings and resolutions, a JSON array (`?1`) of `[id, rule id, project,
/// kind, at, value, volume, payload, delivery, state]`, each only if its rule's
/// transition to it (`state` since `at`) was written: so a rule moved by a concurrent
/// evaluation gets no second alert.
pub const INSERT_ALERTS: &str = "\
INSERT INTO alerts (id, rule_id, project, kind, at, value, volume, payload, delivery)
SELECT a.value ->> '$[0]', a.value ->> '$[1]', a.value ->> '$[2]', a.value ->> '$[3]',
       a.value ->> '$[4]', a.value ->> '$[5]', a.value ->> '$[6]', a.value ->> '$[7]',
       a.value ->> '$[8]'
FROM jsonb_each(?1) AS a
WHERE EXISTS (SELECT 1 FROM alert_rules AS r WHERE r.id = a.value ->> '$[1]'
              AND r.state = a.value ->> '$[9]' AND r.state_since = a.value ->> '$[4]')
ON CONFLICT (id) DO NOTHING";

/// Which of a JSON array (`?1`) of alert ids are recorded.
pub const ALERTS_RECORDED: &str = "\
SELECT id FROM alerts WHERE id IN (SELECT value FROM jsonb_each(?1))";

/// The columns an alert is read with, its rule's name joined.
macro_rules! alert_columns {
    () => {
        "SELECT a.id, a.rule_id, a.project, a.kind, a.at, a.value, a.volume, a.payload,
                a.queued_at, a.delivery, a.attempts, a.delivered_at, a.campaign_paused,
                r.definition ->> '$.name' AS rule_name
         FROM alerts AS a LEFT JOIN alert_rules AS r ON r.id = a.rule_id "
    };
}

/// The latest `?3` alerts of a project (`?1`) at or after `?2` and before `?4`, newest
/// first.
pub const ALERTS_OF_PROJECT: &str = concat!(
    alert_columns!(),
    "WHERE a.project = ?1 AND a.at >= ?2 AND a.at < ?4 ORDER BY a.at DESC, a.id LIMIT ?3"
);

/// One alert by id.
pub const ALERT_BY_ID: &str = concat!(alert_columns!(), "WHERE a.id = ?1");

/// The delivery attempts of the alerts in a JSON array of ids (`?1`).
pub const ALERT_ATTEMPTS: &str = "\
SELECT alert_id, attempt, at, status, error, duration_ms FROM alert_attempts
WHERE alert_id IN (SELECT value FROM jsonb_each(?1)) ORDER BY alert_id, attempt";

/// Up to `?2` alerts recorded before `?1` that were never handed to the queue.
pub const UNQUEUED_ALERTS: &str = "\
SELECT id FROM alerts WHERE queued_at IS NULL AND at < ?1 ORDER BY at LIMIT ?2";

/// Notes that the alerts of a JSON array of ids (`?1`) were queued at `?2`.
pub const ALERTS_QUEUED: &str = "\
UPDATE alerts SET queued_at = ?2 WHERE id IN (SELECT value FROM jsonb_each(?1))";

/// Records delivery attempt `?2` of alert `?1` (at `?3`, status `?4`, error `?5`,
/// `?6` ms); the same attempt recorded twice is kept once.
pub const INSERT_ALERT_ATTEMPT: &str = "\
INSERT INTO alert_attempts (alert_id, attempt, at, status, error, duration_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING";

/// Sets an alert's delivery (`?2`), attempts (at least `?3`) and delivery time (`?4`),
/// unless it is already delivered.
pub const ALERT_DELIVERY: &str = "\
UPDATE alerts SET delivery = ?2, attempts = max(attempts, ?3),
    delivered_at = coalesce(delivered_at, ?4)
WHERE id = ?1 AND delivery <> 'delivered'";

/// Sets a campaign's status (`?3`, with reason `?4`, alert `?5`, at `?6`); setting what
/// is already set, for the same alert, changes nothing (queue redelivery).
pub const SET_CAMPAIGN: &str = "\
INSERT INTO campaigns (project, campaign, status, reason, alert_id, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (project, campaign) DO UPDATE SET
    status = excluded.status, reason = excluded.reason, alert_id = excluded.alert_id,
    updated_at = excluded.updated_at
WHERE NOT (campaigns.status = excluded.status AND campaigns.alert_id IS excluded.alert_id)";

/// Notes the campaign an alert paused.
pub const ALERT_PAUSED_CAMPAIGN: &str = "UPDATE alerts SET campaign_paused = ?2 WHERE id = ?1";

/// The campaigns of a project whose status was ever set.
pub const CAMPAIGNS_OF_PROJECT: &str = "\
SELECT campaign, status, reason, alert_id, updated_at FROM campaigns
WHERE project = ?1 ORDER BY campaign";

/// Records a request (id `?1`) to erase the user with identifier hash `?3` from project
/// `?2`, at `?4`; nothing when the project does not exist.
pub const INSERT_ERASURE: &str = "\
INSERT INTO erasures (id, project_id, user, requested_at)
SELECT ?1, id, ?3, ?4 FROM projects WHERE slug = ?2";

/// An erasure request of project `?1` by id (`?2`).
pub const ERASURE: &str = "\
SELECT e.id, p.slug AS project, e.user, e.requested_at, e.raw_deleted, e.marks_deleted,
       e.done_at
FROM erasures AS e JOIN projects AS p ON p.id = e.project_id
WHERE p.slug = ?1 AND e.id = ?2";

/// The oldest `?1` erasure requests not yet done, with where each stands.
pub const PENDING_ERASURES: &str = "\
SELECT e.id, p.slug AS project, e.user, e.marks_done, hex(e.cursor) AS cursor
FROM erasures AS e JOIN projects AS p ON p.id = e.project_id
WHERE e.done_at IS NULL ORDER BY e.requested_at, e.id LIMIT ?1";

/// The raw events an erasure of the identifier hash `?2` in project `?1` walks: its
/// sample bucket (the last byte of the user's stored hash, as `raw_events_by_sample`
/// keys it), after the cursor `(?3, ?4)` (timestamp, event id hex), in index order. Every
/// event of the user is in that bucket, and the bucket holds about 1/256 of the
/// project's events, so an erasure reads that much of the project, not all of it.
macro_rules! erasure_bucket {
    () => {
        "raw_events INDEXED BY raw_events_by_sample
    WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
      AND substr(coalesce(user, event_id), -1, 1) = substr(unhex(substr(?2, 1, 16)), -1, 1)
      AND (timestamp, event_id) > (?3, unhex(?4))"
    };
}

/// The last `(timestamp, event id)` of the next `?5` raw events of an erasure's walk
/// (see `erasure_bucket!`) as one hex cursor (16 digits of timestamp, then the id), and
/// how many there are: one bounded window, whatever the project's size.
pub const ERASURE_WINDOW: &str = concat!(
    "WITH w AS (SELECT timestamp, event_id FROM ",
    erasure_bucket!(),
    "
    ORDER BY timestamp, event_id LIMIT ?5)
SELECT (SELECT printf('%016X', timestamp) || hex(event_id) FROM w
        ORDER BY timestamp DESC, event_id DESC LIMIT 1) AS last,
       (SELECT count(*) FROM w) AS n"
);

/// Deletes the raw events of the user with identifier hash `?2` in project `?1` from
/// its walk's window after `(?3, ?4)` up to and including `(?5, ?6)`.
pub const ERASE_RAW_WINDOW: &str = concat!(
    "DELETE FROM ",
    erasure_bucket!(),
    "
      AND (timestamp, event_id) <= (?5, unhex(?6)) AND user = unhex(substr(?2, 1, 16))"
);

/// Deletes up to `?3` session marks of project `?1` whose user is the identifier hash `?2`.
pub const ERASE_SESSION_MARKS: &str = "\
DELETE FROM session_events
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
  AND (timestamp, event_id) IN (
    SELECT timestamp, event_id FROM session_events
    WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
      AND user = unhex(substr(?2, 1, 16))
    LIMIT ?3)";

/// Deletes the dead letters of project `?1` whose body holds the identifier hash `?2`.
pub const ERASE_DEAD_LETTERS: &str = "\
DELETE FROM dead_letters WHERE project = ?1 AND instr(body, ?2) > 0";

/// Before a raw window's deletion, in its transaction: moves request `?7` to cursor
/// `?8` (hex) and counts the raw events the deletion of [`ERASE_RAW_WINDOW`] with the
/// same `?1`..`?6` will delete, so the count and the cursor are committed with it.
pub const ERASURE_RAW_STEP: &str = concat!(
    "UPDATE erasures SET cursor = unhex(?8), raw_deleted = raw_deleted + (
    SELECT count(*) FROM ",
    erasure_bucket!(),
    "
      AND (timestamp, event_id) <= (?5, unhex(?6)) AND user = unhex(substr(?2, 1, 16)))
WHERE id = ?7"
);

/// Before a chunk of session marks is deleted, in its transaction: counts the marks of
/// request `?1` (project `?2`, user hash `?3`) that a chunk of `?4` deletes, and notes
/// that the marks are done when the chunk is not full.
pub const ERASURE_MARKS_STEP: &str = "\
UPDATE erasures SET marks_deleted = marks_deleted + c.n, marks_done = c.n < ?4
FROM (SELECT count(*) AS n FROM (
    SELECT 1 FROM session_events
    WHERE project_id = (SELECT id FROM projects WHERE slug = ?2)
      AND user = unhex(substr(?3, 1, 16))
    LIMIT ?4)) AS c
WHERE id = ?1";

/// Marks request `?1` done at `?2`.
pub const ERASURE_DONE: &str = "UPDATE erasures SET done_at = ?2 WHERE id = ?1";

/// The columns a digest is read with.
macro_rules! digest_columns {
    () => {
        "SELECT project, period, hour_utc, weekday, webhook_url, secret, enabled, created_at,
                updated_at FROM digests "
    };
}

/// The digest of project `?1`.
pub const DIGEST_OF_PROJECT: &str = concat!(digest_columns!(), "WHERE project = ?1");

/// Every enabled digest with the start of its latest recorded run of its cadence
/// (`last_start`, NULL when none), by project.
pub const ENABLED_DIGESTS: &str = "\
SELECT d.project, d.period, d.hour_utc, d.weekday, d.webhook_url, d.secret, d.enabled,
       d.created_at, d.updated_at,
       (SELECT max(r.start_ms) FROM digest_runs AS r
        WHERE r.project = d.project AND r.period = d.period) AS last_start
FROM digests AS d WHERE d.enabled = 1 ORDER BY d.project";

/// Creates or replaces the digest of project `?1`.
pub const PUT_DIGEST: &str = "\
INSERT INTO digests (project, period, hour_utc, weekday, webhook_url, secret, enabled,
                     created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT (project) DO UPDATE SET
    period = excluded.period, hour_utc = excluded.hour_utc, weekday = excluded.weekday,
    webhook_url = excluded.webhook_url, secret = excluded.secret,
    enabled = excluded.enabled, updated_at = excluded.updated_at";

/// Deletes the digest of project `?1` (its runs stay, as alerts outlive their rules).
pub const DELETE_DIGEST: &str = "DELETE FROM digests WHERE project = ?1";

/// The columns a digest run is read with.
macro_rules! digest_run_columns {
    () => {
        "SELECT id, project, period, start_ms, end_ms, payload, created_at, queued_at,
                delivery, attempts, last_attempt_at, last_status, last_error, delivered_at
         FROM digest_runs "
    };
}

/// The latest run of project `?1`'s digests.
pub const LAST_DIGEST_RUN: &str = concat!(
    digest_run_columns!(),
    "WHERE project = ?1 ORDER BY start_ms DESC, created_at DESC LIMIT 1"
);

/// Digest run `?1`.
pub const DIGEST_RUN: &str = concat!(digest_run_columns!(), "WHERE id = ?1");

/// Records run `?1` (project `?2`, cadence `?3`, period `?4`–`?5`, body `?6`, at `?7`)
/// unless it is recorded: the row a period's digest is sent from, exactly once.
pub const INSERT_DIGEST_RUN: &str = "\
INSERT INTO digest_runs (id, project, period, start_ms, end_ms, payload, created_at, delivery)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending') ON CONFLICT DO NOTHING";

/// Up to `?2` digest runs recorded before `?1` that were never queued.
pub const UNQUEUED_DIGEST_RUNS: &str = "\
SELECT id FROM digest_runs WHERE queued_at IS NULL AND created_at < ?1
ORDER BY created_at LIMIT ?2";

/// Notes that the digest runs of a JSON array of ids (`?1`) were queued at `?2`.
pub const DIGEST_RUNS_QUEUED: &str = "\
UPDATE digest_runs SET queued_at = ?2 WHERE id IN (SELECT value FROM jsonb_each(?1))";

/// Records delivery attempt `?2` of run `?1` at `?3` (status `?4`, error `?5`) and its
/// delivery state `?6`; a delivered run stays delivered.
pub const DIGEST_RUN_ATTEMPTED: &str = "\
UPDATE digest_runs SET attempts = max(attempts, ?2), last_attempt_at = ?3,
    last_status = ?4, last_error = ?5, delivery = ?6,
    delivered_at = CASE WHEN ?6 = 'delivered' THEN coalesce(delivered_at, ?3) END
WHERE id = ?1 AND delivery <> 'delivered'";

/// Marks run `?1`, whose message exhausted its retries, failed.
pub const DIGEST_RUN_FAILED: &str = "\
UPDATE digest_runs SET delivery = 'failed' WHERE id = ?1 AND delivery = 'pending'";

/// The column a filter's dimension (a bound parameter) names, as the filter compares
/// it: the status as its class (`5xx`), every other dimension as stored. `NULL` for a
/// dimension no filter takes.
macro_rules! filter_column {
    ($dimension:literal) => {
        concat!(
            "CASE ",
            $dimension,
            " WHEN 'name' THEN name WHEN 'route' THEN route",
            " WHEN 'status' THEN CAST(status / 100 AS INTEGER) || 'xx'",
            " WHEN 'error_class' THEN error_class WHEN 'version' THEN version",
            " WHEN 'colo' THEN colo WHEN 'country' THEN country WHEN 'source' THEN source",
            " WHEN 'medium' THEN medium WHEN 'campaign' THEN campaign WHEN 'term' THEN term",
            " WHEN 'content' THEN content WHEN 'item' THEN item",
            " WHEN 'variant' THEN variant END"
        )
    };
}

/// One filter slot of [`FILTERED_EVENTS`]: dimension, operator and value as three bound
/// parameters (`tally_core::filter::Op::name`); a slot whose dimension is `NULL` holds
/// for every row. `!=` and `not_prefix` hold for rows without a value, as
/// `Op::holds` says.
macro_rules! filter_slot {
    ($d:literal, $op:literal, $v:literal) => {
        concat!(
            "\n  AND (",
            $d,
            " IS NULL OR CASE ",
            $op,
            " WHEN 'eq' THEN coalesce((",
            filter_column!($d),
            ") = ",
            $v,
            ", 0)",
            " WHEN 'ne' THEN (",
            filter_column!($d),
            ") IS NOT ",
            $v,
            " WHEN 'prefix' THEN coalesce(substr((",
            filter_column!($d),
            "), 1, length(",
            $v,
            ")) = ",
            $v,
            ", 0)",
            " WHEN 'not_prefix' THEN substr((",
            filter_column!($d),
            "), 1, length(",
            $v,
            ")) IS NOT ",
            $v,
            " ELSE 0 END)"
        )
    };
}

/// The ten filter slots (`tally_core::filter::MAX_FILTERS`) of the filtered reads, bound
/// as `?7`–`?36`.
macro_rules! filter_slots {
    () => {
        concat!(
            filter_slot!("?7", "?8", "?9"),
            filter_slot!("?10", "?11", "?12"),
            filter_slot!("?13", "?14", "?15"),
            filter_slot!("?16", "?17", "?18"),
            filter_slot!("?19", "?20", "?21"),
            filter_slot!("?22", "?23", "?24"),
            filter_slot!("?25", "?26", "?27"),
            filter_slot!("?28", "?29", "?30"),
            filter_slot!("?31", "?32", "?33"),
            filter_slot!("?34", "?35", "?36"),
        )
    };
}

/// The columns a filtered read returns: every column, as [`EVENTS_BETWEEN`] returns
/// them (ids and hashes as lower-case hex), so a filtered export is an export.
macro_rules! filtered_columns {
    () => {
        "SELECT ?1 AS project, lower(hex(event_id)) AS event_id, timestamp, name, method, route,
       status, duration_us, error_class, error_message, lower(hex(instance)) AS instance,
       lower(hex(user)) AS user, lower(hex(session)) AS session, version, colo, country,
       source, medium, campaign, term, content, item, variant, bytes, metadata
FROM raw_events"
    };
}

/// Up to `?6` raw events of a project (`?1`) with `?2 <= timestamp < ?3`, after the
/// `(timestamp, event_id)` cursor (`?4`, `?5` as hex), that meet every filter of ten
/// slots (`?7`–`?36`, three parameters each, see `filter_slot`): the exact path of a
/// filtered read. Through the time index, so it scans the range's events once over all
/// its pages (the filter is evaluated on each, in `WHERE`), never another project's.
pub const FILTERED_EVENTS: &str = concat!(
    filtered_columns!(),
    " INDEXED BY raw_events_by_time
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
  AND timestamp >= max(?2, ?4) AND timestamp < ?3
  AND (timestamp, event_id) > (?4, unhex(?5))",
    filter_slots!(),
    "
ORDER BY timestamp, event_id
LIMIT ?6"
);

/// Up to `?7` raw events of a project (`?1`) in one sample bucket (`?2`, one byte as
/// hex: the last byte of the user hash, or of the event id without a user) with
/// `?3 <= timestamp < ?4`, after the `(timestamp, event_id)` cursor (`?5`, `?6` as
/// hex): the sampled path of a filtered read, one seek of `raw_events_by_sample` per
/// bucket. It returns every event it reads (the filter is applied by the caller), so
/// the rows it reads are exactly the rows it returns and a budget of them holds.
pub const SAMPLE_EVENTS: &str = concat!(
    filtered_columns!(),
    " INDEXED BY raw_events_by_sample
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
  AND substr(coalesce(user, event_id), -1, 1) = unhex(?2)
  AND timestamp >= max(?3, ?5) AND timestamp < ?4
  AND (timestamp, event_id) > (?5, unhex(?6))
ORDER BY timestamp, event_id
LIMIT ?7"
);

/// [`FUNNEL_HITS`] with `matched` 1 for the events that meet every filter of ten slots
/// (`?7`–`?36`, as in [`FILTERED_EVENTS`]) and 0 for the others: a filtered funnel's
/// read. It returns every event it reads, so that its `LIMIT` bounds the events read
/// whatever share of them the filters keep (with the filters in its `WHERE`, a filter
/// that keeps none would read every event of the buckets). Each entry's table row is
/// read to evaluate the filters.
pub const FILTERED_FUNNEL_HITS: &str = funnel_hits!("(1", filter_slots!(), ")");

// Moving a project between data shards (issue 16, phase 2): the control database's
// record of each move, and the pages a move copies from one shard to another and
// deletes from the shard it leaves. Every page is keyset-paged on its table's primary
// key and bounded by a `LIMIT`, so a run's work is bounded whatever the project's size.

/// The columns a move is read with, and the table.
macro_rules! move_columns {
    () => {
        "SELECT id, project, from_shard, to_shard, phase, started_at, phase_at, cut, stage,
       cursor, progress, mismatches, error, finished_at
FROM project_moves "
    };
}

/// Records a move of project `?1` from shard `?2` to shard `?3` starting at `?4` with
/// cut `?5`; the unique index on unfinished moves refuses a second one.
pub const INSERT_MOVE: &str = "\
INSERT INTO project_moves (project, from_shard, to_shard, phase, started_at, phase_at, cut)
VALUES (?1, ?2, ?3, 'starting', ?4, ?4, ?5)";

/// Every move not finished, oldest first.
pub const RUNNING_MOVES: &str = concat!(move_columns!(), "WHERE finished_at IS NULL ORDER BY id");

/// The latest move of project `?1`.
pub const LATEST_MOVE: &str = concat!(
    move_columns!(),
    "WHERE project = ?1 ORDER BY id DESC LIMIT 1"
);

/// Stores a move's (`?1`) phase `?2` since `?3`, its stage `?4`, cursor `?5`, progress
/// `?6`, mismatches `?7`, error `?8` and finish `?9`, if it is still in phase `?10` at
/// stage `?11` and cursor `?12` (so two overlapping runs cannot both step it).
pub const UPDATE_MOVE: &str = "\
UPDATE project_moves
SET phase = ?2, phase_at = ?3, stage = ?4, cursor = ?5, progress = ?6, mismatches = ?7,
    error = ?8, finished_at = ?9
WHERE id = ?1 AND phase = ?10 AND stage = ?11 AND cursor = ?12";

/// Places project `?1` on shard `?2`, its events also written on shard `?3` (NULL: none).
pub const SET_PLACEMENT: &str = "\
UPDATE projects SET shard = ?2, also_shard = ?3 WHERE slug = ?1";

/// A page of project `?1`'s rollup rows of periods that end by the cut (hours and days
/// starting before `?2`, months before `?3`), after the row of period `?4`, start `?5`,
/// dimension `?6` and value `?7` in the primary key's order (period, dimension, start,
/// value: so a page is a range of the key, never a sort), at most `?8`. Minute rows are left out: the replay of recent events writes them.
pub const MOVE_ROLLUPS_PAGE: &str = "\
SELECT period, start, dimension, value, count, errors, bytes, duration_sum_us,
       hex(durations) AS durations, hex(users) AS users, hex(instances) AS instances, revenue
FROM rollups
WHERE project = ?1 AND period IN ('day', 'hour', 'month')
  AND start < CASE period WHEN 'month' THEN ?3 ELSE ?2 END
  AND (period, dimension, start, value) > (?4, ?6, ?5, ?7)
ORDER BY period, dimension, start, value
LIMIT ?8";

/// Writes a JSON array (`?2`) of rollup rows of project `?1` as [`MOVE_ROLLUPS_PAGE`]
/// reads them, whatever is stored; a row stored already gets a new version, so a
/// consumer that read it before cannot overwrite it.
pub const MOVE_PUT_ROLLUPS: &str = "\
INSERT INTO rollups (project, period, start, dimension, value, count, errors, bytes,
                     duration_sum_us, durations, users, instances, revenue, version)
SELECT ?1, r.value ->> '$.period', r.value ->> '$.start', r.value ->> '$.dimension',
       r.value ->> '$.value', r.value ->> '$.count', r.value ->> '$.errors',
       r.value ->> '$.bytes', r.value ->> '$.duration_sum_us',
       unhex(r.value ->> '$.durations'), unhex(r.value ->> '$.users'),
       unhex(r.value ->> '$.instances'), r.value ->> '$.revenue', 1
FROM jsonb_each(?2) AS r
WHERE true
ON CONFLICT (project, period, start, dimension, value) DO UPDATE SET
    count = excluded.count, errors = excluded.errors, bytes = excluded.bytes,
    duration_sum_us = excluded.duration_sum_us, durations = excluded.durations,
    users = excluded.users, instances = excluded.instances, revenue = excluded.revenue,
    version = version + 1";

/// Copies a JSON array of [`crate::Event`]s (`?1`) into `raw_events` as rows only (their
/// rollups are copied as rows); ones stored already are left as they are.
pub const MOVE_INSERT_RAW_EVENTS: &str = concat!(
    insert_raw_events!(),
    "JOIN projects AS p ON p.slug = e.value ->> '$.project'
WHERE true
ON CONFLICT (project_id, event_id) DO NOTHING"
);

/// Copies the session marks among a JSON array of [`crate::Event`]s (`?1`) as
/// [`INSERT_SESSION_EVENTS`] does, ones stored already left as they are, without marking
/// their days (their session days are copied as rows).
pub const MOVE_INSERT_SESSION_EVENTS: &str = concat!(
    insert_session_events!(),
    "
ON CONFLICT (project_id, timestamp, event_id) DO NOTHING"
);

/// A page of project `?1`'s stored session days before `?2`, after day `?3`, at most `?4`.
pub const MOVE_SESSION_DAYS_PAGE: &str = "\
SELECT day, sessions, total_ms, hours FROM session_days
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND day < ?2 AND day > ?3
ORDER BY day
LIMIT ?4";

/// Writes a JSON array (`?2`) of session days of project `?1`, whatever is stored.
pub const MOVE_PUT_SESSION_DAYS: &str = "\
INSERT INTO session_days (project_id, day, sessions, total_ms, hours)
SELECT p.id, d.value ->> '$.day', d.value ->> '$.sessions', d.value ->> '$.total_ms',
       d.value ->> '$.hours'
FROM jsonb_each(?2) AS d JOIN projects AS p ON p.slug = ?1
WHERE true
ON CONFLICT (project_id, day) DO UPDATE
SET sessions = excluded.sessions, total_ms = excluded.total_ms, hours = excluded.hours";

/// Marks the session days of a JSON array (`?2`) of project `?1` as needing a roll.
pub const MOVE_MARK_SESSION_DAYS: &str = "\
INSERT INTO session_days_dirty (project_id, day, generation)
SELECT p.id, d.value, 1 FROM jsonb_each(?2) AS d JOIN projects AS p ON p.slug = ?1
WHERE true
ON CONFLICT (project_id, day) DO UPDATE SET generation = generation + 1";

/// A page of project `?1`'s dropped-request records after the event id `?2` (hex), at
/// most `?3`.
pub const MOVE_DROPPED_PAGE: &str = "\
SELECT lower(hex(event_id)) AS event_id, timestamp, reason FROM dropped_events
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND event_id > unhex(?2)
ORDER BY event_id
LIMIT ?3";

/// Copies a JSON array (`?2`) of dropped-request records of project `?1`; ones recorded
/// already are left as they are.
pub const MOVE_PUT_DROPPED: &str = "\
INSERT INTO dropped_events (project_id, event_id, timestamp, reason)
SELECT p.id, unhex(d.value ->> '$.event_id'), d.value ->> '$.timestamp', d.value ->> '$.reason'
FROM jsonb_each(?2) AS d JOIN projects AS p ON p.slug = ?1
WHERE true
ON CONFLICT (project_id, event_id) DO NOTHING";

/// A page of project `?1`'s last error messages after the class `?2`, at most `?3`.
pub const MOVE_ERROR_MESSAGES_PAGE: &str = "\
SELECT error_class, timestamp, message FROM error_messages
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND error_class > ?2
ORDER BY error_class
LIMIT ?3";

/// Copies a JSON array (`?2`) of last error messages of project `?1`, keeping the later
/// one of each class as [`KEEP_ERROR_MESSAGES`] does.
pub const MOVE_PUT_ERROR_MESSAGES: &str = concat!(
    "INSERT INTO error_messages (project_id, error_class, timestamp, message)
SELECT p.id, m.value ->> '$.error_class', m.value ->> '$.timestamp', m.value ->> '$.message'
FROM jsonb_each(?2) AS m JOIN projects AS p ON p.slug = ?1
WHERE true
",
    keep_later_error_message!()
);

/// A page of project `?1`'s erasure requests after the id `?2`, at most `?3`.
pub const MOVE_ERASURES_PAGE: &str = "\
SELECT e.id, e.user, e.requested_at, e.marks_done, hex(e.cursor) AS cursor, e.raw_deleted,
       e.marks_deleted, e.done_at
FROM erasures AS e
WHERE e.project_id = (SELECT id FROM projects WHERE slug = ?1) AND e.id > ?2
ORDER BY e.id
LIMIT ?3";

/// Copies a JSON array (`?2`) of erasure requests of project `?1`. One not done starts
/// its walk again (marks and cursor reset): events it had passed may have been copied
/// before it erased them.
pub const MOVE_PUT_ERASURES: &str = "\
INSERT INTO erasures (id, project_id, user, requested_at, marks_done, cursor, raw_deleted,
                      marks_deleted, done_at)
SELECT e.value ->> '$.id', p.id, e.value ->> '$.user', e.value ->> '$.requested_at',
       CASE WHEN e.value ->> '$.done_at' IS NULL THEN 0 ELSE e.value ->> '$.marks_done' END,
       CASE WHEN e.value ->> '$.done_at' IS NULL THEN x'' ELSE unhex(e.value ->> '$.cursor') END,
       e.value ->> '$.raw_deleted', e.value ->> '$.marks_deleted', e.value ->> '$.done_at'
FROM jsonb_each(?2) AS e JOIN projects AS p ON p.slug = ?1
WHERE true
ON CONFLICT (id) DO NOTHING";

/// Project `?1`'s rollup rows per period and dimension: how many and the events they
/// count, of hours, of the days starting before `?2` and of the months before `?3` (the
/// rows copied as they are; later days and months are rolled on each shard from its
/// hours, days every minute and months every hour).
pub const MOVE_ROLLUP_SUMS: &str = "\
SELECT period, dimension, count(*) AS rows, sum(count) AS events FROM rollups
WHERE project = ?1
  AND (period = 'hour' OR (period = 'day' AND start < ?2) OR (period = 'month' AND start < ?3))
GROUP BY period, dimension
ORDER BY period, dimension";

/// [`delete_page_by_project_id`] for a table keyed by the project's slug (`?1`).
macro_rules! delete_page_by_project {
    ($table:literal, $key:literal, $columns:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            "
WHERE project = ?1 AND ",
            $key,
            " IN (
    SELECT ",
            $columns,
            " FROM ",
            $table,
            " WHERE project = ?1 LIMIT ?2)"
        )
    };
}

/// Deletes up to `?2` raw events of project `?1` (a move's deletion from a shard).
pub const MOVE_DELETE_RAW_EVENTS: &str =
    delete_page_by_project_id!("raw_events", "event_id", "event_id");

/// Deletes up to `?2` rollup rows of project `?1`, minute rows included.
pub const MOVE_DELETE_ROLLUPS: &str = delete_page_by_project!(
    "rollups",
    "(period, start, dimension, value)",
    "period, start, dimension, value"
);

/// Deletes up to `?2` session marks of project `?1`.
pub const MOVE_DELETE_SESSION_EVENTS: &str = delete_page_by_project_id!(
    "session_events",
    "(timestamp, event_id)",
    "timestamp, event_id"
);

/// Deletes up to `?2` stored session days of project `?1`.
pub const MOVE_DELETE_SESSION_DAYS: &str = delete_page_by_project_id!("session_days", "day", "day");

/// Deletes up to `?2` session days marked dirty of project `?1`.
pub const MOVE_DELETE_DIRTY_SESSION_DAYS: &str =
    delete_page_by_project_id!("session_days_dirty", "day", "day");

/// Deletes up to `?2` dirty periods of project `?1`.
pub const MOVE_DELETE_DIRTY_PERIODS: &str =
    delete_page_by_project!("dirty_periods", "(period, start)", "period, start");

/// Deletes up to `?2` last error messages of project `?1`.
pub const MOVE_DELETE_ERROR_MESSAGES: &str =
    delete_page_by_project_id!("error_messages", "error_class", "error_class");

/// Deletes up to `?2` dropped-request records of project `?1`.
pub const MOVE_DELETE_DROPPED: &str =
    delete_page_by_project_id!("dropped_events", "event_id", "event_id");

/// Deletes up to `?2` erasure requests of project `?1`.
pub const MOVE_DELETE_ERASURES: &str = delete_page_by_project_id!("erasures", "id", "id");

#[cfg(test)]
mod tests {
    use crate::rollup::Dimension;

    #[test]
    fn every_dimension_names_each_dimension_once() {
        let listed: Vec<&str> = every_dimension!()
            .trim_matches(|c| c == '(' || c == ')')
            .split(',')
            .map(|name| name.trim().trim_matches('\''))
            .collect();
        let mut names: Vec<&str> = Dimension::ALL
            .iter()
            .chain(Dimension::MINUTE.iter())
            .map(|d| d.name())
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, names);
        assert_eq!(listed.len(), names.len(), "each once");
    }
}
