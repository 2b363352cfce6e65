//! The stores Tally's workers need, as narrow async traits, with two implementations,
//! and the pipeline logic written once over those traits.
//!
//! # Brief overview
//!
//! - [`EventStore`] reads raw events; [`RollupStore`] reads rollup rows and dirty
//!   periods; [`Writer::commit`] applies a list of [`Write`]s in one transaction;
//!   [`JobLog`] records cron runs.
//! - [`pipeline`] is the aggregator's logic over those traits: exactly-once storage of
//!   events with incremental hourly rollups, rolling days and months, rebuilding a
//!   period from raw events, retention.
//! - [`QueryStore`] holds the query API's other reads: the last message of each error
//!   class and the raw events of funnels.
//! - [`filtered`] is the one access-path rule of reads under report filters (rollups,
//!   raw events within a row budget, a sample of users past it); [`funnels`], the
//!   filtered half of [`sessions`] and [`filtered::realtime()`] read through it too.
//! - [`Cache`] and [`EventQueue`] are the KV cache and the `events` queue.
//! - [`exec::Executor`] is the seam under every SQL-backed trait: run a statement with
//!   bound values and decode its rows by column name, run a batch atomically. Each
//!   trait (and [`alerts::AlertStore`], [`access::AccessStore`]) is implemented once
//!   over it, for any executor.
//! - [`d1::D1Store`] (feature `cloudflare`) and [`sqlite::SqliteStore`] (feature
//!   `sqlite`, applying the same [`MIGRATIONS`], so the pipeline is tested natively
//!   against a real database) are the two executors; [`cloudflare::KvCache`] and
//!   [`cloudflare::CfQueue`] implement the cache and queue over KV and Queues, and
//!   [`memory`] holds in-memory cache and queue doubles with failure injection.
//!
//! - [`shard`] places every statement in the control database or a project's data
//!   shard: [`shard::OnShard`] (one shard) and [`shard::Router`] (every shard, by
//!   placement) are executors too.
//!
//! The traits use `async fn` without `Send` bounds: Workers run on one thread.

pub mod access;
pub mod alerts;
#[cfg(feature = "cloudflare")]
pub mod cloudflare;
#[cfg(feature = "cloudflare")]
pub mod d1;
pub mod dashboard;
pub mod digests;
pub mod erasure;
pub mod exec;
pub mod filtered;
pub mod funnels;
pub mod memory;
pub mod moves;
pub mod pipeline;
pub mod read;
pub mod sessions;
pub mod shard;
#[cfg(feature = "sqlite")]
pub mod sqlite;

mod error;
mod rows;
mod sql_store;

pub use error::Error;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;

use serde::{Deserialize, Serialize};
use tally_core::Event;
use tally_core::filter::Filters;
use tally_core::funnel::Hit;
use tally_core::project::{ApiKey, KeyKind, NewKey, Project};
use tally_core::queue::Dropped;
use tally_core::realtime::Visitors;
use tally_core::rollup::{Dimension, Key, Period, Rollup, ValueGroup};
use tally_core::sessions::Mark;

/// The D1 migrations, in order, as `(file name, SQL)`. A test checks this list against
/// the `migrations/` directory, so a new file cannot be forgotten here.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        include_str!("../../../migrations/0001_init.sql"),
    ),
    (
        "0002_rollups.sql",
        include_str!("../../../migrations/0002_rollups.sql"),
    ),
    (
        "0003_keys.sql",
        include_str!("../../../migrations/0003_keys.sql"),
    ),
    (
        "0004_query.sql",
        include_str!("../../../migrations/0004_query.sql"),
    ),
    (
        "0005_dashboard.sql",
        include_str!("../../../migrations/0005_dashboard.sql"),
    ),
    (
        "0006_alerts.sql",
        include_str!("../../../migrations/0006_alerts.sql"),
    ),
    (
        "0007_dead_letter_projects.sql",
        include_str!("../../../migrations/0007_dead_letter_projects.sql"),
    ),
    (
        "0008_failures.sql",
        include_str!("../../../migrations/0008_failures.sql"),
    ),
    (
        "0009_erasures.sql",
        include_str!("../../../migrations/0009_erasures.sql"),
    ),
    (
        "0010_share_links_and_sessions.sql",
        include_str!("../../../migrations/0010_share_links_and_sessions.sql"),
    ),
    (
        "0011_session_marks_by_user.sql",
        include_str!("../../../migrations/0011_session_marks_by_user.sql"),
    ),
    (
        "0012_digests.sql",
        include_str!("../../../migrations/0012_digests.sql"),
    ),
    (
        "0013_plausible_domains.sql",
        include_str!("../../../migrations/0013_plausible_domains.sql"),
    ),
    (
        "0014_filter_sample.sql",
        include_str!("../../../migrations/0014_filter_sample.sql"),
    ),
    (
        "0015_raw_events_by_name.sql",
        include_str!("../../../migrations/0015_raw_events_by_name.sql"),
    ),
    (
        "0016_session_days.sql",
        include_str!("../../../migrations/0016_session_days.sql"),
    ),
    (
        "0017_revenue_and_utm_terms.sql",
        include_str!("../../../migrations/0017_revenue_and_utm_terms.sql"),
    ),
    (
        "0018_placement.sql",
        include_str!("../../../migrations/0018_placement.sql"),
    ),
    (
        "0019_project_moves.sql",
        include_str!("../../../migrations/0019_project_moves.sql"),
    ),
    (
        "0020_rollups_keyed_by_dimension.sql",
        include_str!("../../../migrations/0020_rollups_keyed_by_dimension.sql"),
    ),
    (
        "0021_raw_events_by_name_and_sample.sql",
        include_str!("../../../migrations/0021_raw_events_by_name_and_sample.sql"),
    ),
    (
        "0022_session_day_hours.sql",
        include_str!("../../../migrations/0022_session_day_hours.sql"),
    ),
];

/// The `events_between` cursor before every row: no event time is negative, and the
/// empty id sorts first.
pub(crate) const BEFORE_ALL: (i64, &str) = (-1, "");

/// Largest JSON array of events bound as one parameter; D1 caps a value at 2 MB.
pub const MAX_INSERT_JSON_BYTES: usize = 512 * 1024;

/// Event and error counts over a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Counts {
    pub events: u64,
    pub errors: u64,
}

/// One run of a cron job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    pub job: String,
    pub cron: String,
    pub scheduled_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// `ok` or `error`.
    pub outcome: String,
    pub detail: Option<String>,
}

/// A stored value and the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: i64,
}

/// A day or month that needs rolling, and the generation of its mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirty {
    pub project: String,
    pub period: Period,
    pub start: i64,
    pub generation: i64,
}

/// A project and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProjectSettings {
    pub slug: String,
    pub retention_days: u32,
}

/// One change in a [`Writer::commit`] transaction.
#[derive(Debug, Clone)]
pub enum Write<'a> {
    /// Inserts events read as new; any of them stored meanwhile fails the transaction,
    /// and so does one whose project is not recorded (see [`Write::EnsureProject`]).
    InsertEvents(&'a [Event]),
    /// Records a project the first time it is seen.
    EnsureProject { slug: &'a str, now_ms: i64 },
    /// Copies the session start/stop events among new events into `session_events`,
    /// and marks the session days they may change (the day of each and the day before).
    InsertSessionEvents(&'a [Event]),
    /// Stores the sessions that start on one day of a project, as a roll paired them.
    PutSessionDay {
        project: &'a str,
        day: i64,
        stats: tally_core::sessions::Stats,
        /// Its sessions per hour of their start (`sessions::hours_json`).
        hours: &'a str,
    },
    /// Clears a session day's dirty mark unless it changed since it was read.
    ClearSessionDay(&'a sessions::DirtyDay),
    /// Keeps the latest message of each error class among events (ones with an error
    /// class and a message); an older message than the stored one changes nothing.
    KeepErrorMessages(&'a [Event]),
    /// Records dropped requests; ones already recorded are ignored.
    InsertDropped(&'a [Dropped]),
    /// Adds a rollup row read as absent; fails the transaction if it exists by now.
    InsertRollup {
        period: Period,
        key: &'a Key,
        row: &'a Rollup,
    },
    /// Replaces a rollup row read at `read_version`; fails the transaction if another
    /// writer changed it meanwhile.
    UpdateRollup {
        period: Period,
        key: &'a Key,
        row: &'a Rollup,
        read_version: i64,
    },
    /// Writes a rollup row computed from its sources, whatever is stored.
    PutRollup {
        period: Period,
        key: &'a Key,
        row: &'a Rollup,
    },
    /// Deletes the rows of one project, period and start that are not in `keep`.
    DeleteStaleRollups {
        project: &'a str,
        period: Period,
        start: i64,
        keep: Vec<(Dimension, &'a str)>,
    },
    /// Marks a day or month as needing a roll.
    MarkDirty {
        project: &'a str,
        period: Period,
        start: i64,
    },
    /// Clears a dirty mark unless it changed since it was read.
    ClearDirty(&'a Dirty),
    /// Notes on a dirty mark that rolling it failed at `now_ms`, and why.
    RollFailed {
        mark: &'a Dirty,
        error: &'a str,
        now_ms: i64,
    },
    /// Deletes up to `limit` raw events, up to `limit` session marks, up to `limit`
    /// dropped-request records and up to `limit` last error messages of a project older
    /// than `before_ms`: the data shard's half of a purge step.
    ///
    /// With [`Write::PurgeAlerts`] it runs [`PURGE_RAW_STATEMENTS`] statements, which
    /// count against D1's queries per invocation.
    PurgeRaw {
        project: &'a str,
        before_ms: i64,
        limit: u32,
    },
    /// Deletes up to `limit` alerts (with their delivery attempts) and up to `limit`
    /// dead letters of a project older than `before_ms`: the control database's half of
    /// a purge step.
    PurgeAlerts {
        project: &'a str,
        before_ms: i64,
        limit: u32,
    },
    /// Deletes up to `limit` job runs started before `before_ms`, keeping each job's
    /// latest run, and up to `limit` dead letters that name no project received before
    /// `orphans_before_ms`.
    PurgeJobRuns {
        before_ms: i64,
        orphans_before_ms: i64,
        limit: u32,
    },
    /// Keeps a message that exhausted its retries.
    DeadLetter {
        message_id: &'a str,
        queue: &'a str,
        body: &'a str,
        sent_at_ms: i64,
        now_ms: i64,
    },
    /// A change of alert rules, alerts or campaigns.
    Alert(alerts::AlertWrite<'a>),
    /// Sets a meta value.
    PutMeta {
        key: &'a str,
        value: String,
        now_ms: i64,
    },
}

/// The statements one purge step of a project runs, [`Write::PurgeRaw`] on its shard
/// and [`Write::PurgeAlerts`] in the control database: raw events, session marks,
/// dropped records, error messages, alert attempts, alerts and dead letters.
pub const PURGE_RAW_STATEMENTS: u32 = 7;

/// Applies writes atomically.
#[allow(async_fn_in_trait)] // Workers are single-threaded: no `Send` bound wanted.
pub trait Writer {
    /// Applies every write in one transaction and returns the rows each one changed.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when a guard tripped (an event or rollup row changed since it
    /// was read): nothing was applied and the caller may read again and retry.
    /// [`Error::Database`] for any other failure; nothing was applied either.
    async fn commit(&self, writes: &[Write<'_>]) -> Result<Vec<u64>, Error>;
}

/// Reads over raw events.
#[allow(async_fn_in_trait)]
pub trait EventStore {
    /// Of the given `(project, event_id)` pairs, those already stored.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn existing_events(
        &self,
        ids: &[(&str, &str)],
    ) -> Result<HashSet<(String, String)>, Error>;

    /// Counts the events and errors of `project` with `from_ms <= timestamp < to_ms`.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn count_events(&self, project: &str, from_ms: i64, to_ms: i64) -> Result<Counts, Error>;

    /// Up to `limit` events of `project` in `[from_ms, to_ms)` ordered by time and id,
    /// after the `(timestamp, event_id)` cursor when given. Ids come back as 32 hex
    /// digits, identifier hashes as the stored 16.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn events_between(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Event>, Error>;

    /// Every project placed on this store's shard ([`exec::Executor::shard`]), with its
    /// retention, from the control database.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn projects(&self) -> Result<Vec<ProjectSettings>, Error>;

    /// Up to `limit` session start/stop marks of `project` with `from_ms <= timestamp <
    /// to_ms`, in time order, after `after` (the last mark of the page before, as this
    /// returned it); users as the stored 16 hex digits. At one instant a project's marks
    /// come by event id (the primary key's order, so nothing is sorted), one user's in
    /// `tally_core::sessions::stream_order` (starts first). `user_hash` (the identifier
    /// hash as [`tally_core::hash::identifier`] returns it) narrows them to one user,
    /// read through that user's index.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn session_marks(
        &self,
        project: &str,
        user_hash: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        after: Option<&Mark>,
        limit: u32,
    ) -> Result<Vec<Mark>, Error>;

    /// How many requests of `project` with `from_ms <= timestamp < to_ms` were dropped,
    /// by reason.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn dropped_counts(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeMap<String, u64>, Error>;
}

/// Projects and their keys: what the admin API changes and what ingest and the query
/// API look keys up in.
#[allow(async_fn_in_trait)]
pub trait AdminStore {
    /// One project.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn project(&self, slug: &str) -> Result<Option<Project>, Error>;

    /// Every project, by slug.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn all_projects(&self) -> Result<Vec<Project>, Error>;

    /// Creates a project on shard 0; `false` when its slug is taken.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the write fails.
    async fn create_project(&self, project: &Project) -> Result<bool, Error> {
        self.create_project_on(project, 0).await
    }

    /// Creates a project placed on data shard `shard`; `false` when its slug is taken.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the write fails.
    async fn create_project_on(&self, project: &Project, shard: u32) -> Result<bool, Error>;

    /// The placement of each of `slugs` that names a project (its shard, and the shard
    /// its events are also written on while it moves; in the control database).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn project_shards(
        &self,
        slugs: &[&str],
    ) -> Result<BTreeMap<String, shard::Placement>, Error>;

    /// How many projects each shard holds; shards without one are absent.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn projects_per_shard(&self) -> Result<BTreeMap<u32, u64>, Error>;

    /// Stores a project's settings; `false` when it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the write fails.
    async fn update_project(&self, project: &Project) -> Result<bool, Error>;

    /// Stores a new key of `project`; `None` when the project does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the write fails.
    async fn create_key(
        &self,
        project: &str,
        kind: KeyKind,
        key: &NewKey,
        name: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, Error>;

    /// The keys of a project, oldest first, revoked ones included.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn keys(&self, project: &str) -> Result<Vec<ApiKey>, Error>;

    /// Revokes key `id` of `project` (an earlier revocation stands); `None` when the
    /// project has no such key.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn revoke_key(
        &self,
        project: &str,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, Error>;

    /// The key whose text hashes to `hash` (64 hex digits), with its project.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, Project)>, Error>;

    /// The project that takes keyless Plausible events for `domain` (canonical, see
    /// `tally_core::project::normalize_domain`), if any.
    ///
    /// # Errors
    ///
    /// When the database cannot be read or a row does not decode.
    async fn project_by_plausible_domain(&self, domain: &str) -> Result<Option<Project>, Error>;
}

/// Reads over rollups.
#[allow(async_fn_in_trait)]
pub trait RollupStore {
    /// The stored rows among `keys` of `period`, with their versions.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn rollups_by_key(
        &self,
        period: Period,
        keys: &[&Key],
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error>;

    /// How many values each group of `period` holds already (the folded value not
    /// counted); groups without rows are left out.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn stored_values(
        &self,
        period: Period,
        groups: &[&ValueGroup],
    ) -> Result<BTreeMap<ValueGroup, usize>, Error>;

    /// The rows of `project` and `period` with `from_ms <= start < to_ms`, of one
    /// dimension or all.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn rollups_between(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimension: Option<Dimension>,
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error>;

    /// The rows of `project` and `period` with `from_ms <= start < to_ms` of the
    /// `dimensions` named, in one query, with the durations sketches of the `timed`
    /// dimensions' rows only: the other rows' are left empty, neither read out nor
    /// decoded (an answer that shows their percentiles must name them in `timed`).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn rollups_of_dimensions(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimensions: &[Dimension],
        timed: &[Dimension],
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error>;

    /// The event count of each row of `dimension` of `project` and `period` with
    /// `from_ms <= start < to_ms`, as `(start, value, count)`: the rows
    /// [`RollupStore::rollups_between`] reads, without decoding (or reading out) their
    /// sketches and HyperLogLogs.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn rollup_counts(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimension: Dimension,
    ) -> Result<Vec<(i64, String, u64)>, Error>;

    /// The starts of `project`'s periods of kind `period` with `from_ms <= start <
    /// to_ms` that are marked dirty (their rows lag behind their hours).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn dirty_starts(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeSet<i64>, Error>;

    /// Up to `limit` dirty periods of kind `period`, oldest first, those that never
    /// failed to roll before those that did; marks that failed after `failed_before_ms`
    /// are left out.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn dirty_periods(
        &self,
        period: Period,
        limit: u32,
        failed_before_ms: i64,
    ) -> Result<Vec<Dirty>, Error>;
}

/// Which values of one dimension a [`FilteredReads::rollups_matching`] read takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueMatch<'a> {
    /// This value only.
    Exact(&'a str),
    /// Every value that starts with this text: the values of a cross dimension that
    /// share their first value ([`tally_core::rollup::pair_prefix`]).
    Prefix(&'a str),
}

/// How many events of one name a user sent on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DayCount {
    /// Start of the day, epoch milliseconds.
    pub day: i64,
    pub name: String,
    #[serde(rename = "n")]
    pub count: u64,
}

/// Reads narrowed to some values of a dimension or to one user: the query API's
/// per-item and per-user answers. Separate from [`RollupStore`] and [`EventStore`] so
/// that stores which answer only the pipeline need not implement them.
#[allow(async_fn_in_trait)]
pub trait FilteredReads {
    /// The rows of `project`, `period` and `dimension` with `from_ms <= start < to_ms`
    /// whose value `value` matches.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn rollups_matching(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimension: Dimension,
        value: ValueMatch<'_>,
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error>;

    /// The raw events of one user of `project` with `from_ms <= timestamp < to_ms`,
    /// counted per UTC day and name, ordered by day and name. `user_hash` is the user's
    /// identifier hash as [`tally_core::hash::identifier`] returns it. Rollups are not per
    /// user, so it reads raw events (the range is bounded by the project's retention),
    /// but only the user's sample bucket of them: about 1/256 of the project's events in
    /// range (`sql::USER_EVENT_COUNTS`).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn user_event_counts(
        &self,
        project: &str,
        user_hash: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DayCount>, Error>;
}

/// The last message of an error class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    /// The event time of the message, epoch milliseconds.
    pub timestamp: i64,
    pub message: String,
}

/// The query API's reads beyond rollups and raw-event pages.
#[allow(async_fn_in_trait)]
pub trait QueryStore {
    /// The last message of every error class of `project` (within retention), by class.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn error_messages(&self, project: &str) -> Result<BTreeMap<String, ErrorMessage>, Error>;

    /// Of the raw events of `project` in `[from_ms, to_ms)` that have a user in one of
    /// the sample `buckets` (`tally_core::filter::sample_bucket`) and one of the `names`,
    /// up to `limit` read in no particular order: those that meet every one of
    /// `filters` as hits (users and ids as stored hex), and how many were read. Reads
    /// only those events (one index seek per bucket and name), so its cost does not
    /// grow with the project's other events or users; with filters it reads each one's
    /// row too.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    #[allow(clippy::too_many_arguments)] // One read's question; a struct would only rename it.
    async fn funnel_hits(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        names: &[&str],
        buckets: Range<u32>,
        filters: &Filters,
        limit: u32,
    ) -> Result<(Vec<Hit>, u64), Error>;

    /// The distinct users of `project`'s raw events in `[from_ms, to_ms)`, counted over
    /// at most `budget` of the most recent of them (through the time index, so the read
    /// does not grow with the project's older events); truncated when the budget was
    /// filled.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn recent_visitors(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        budget: u32,
    ) -> Result<Visitors, Error>;

    /// Up to `limit` raw events of `project` in `[from_ms, to_ms)` that meet every one of
    /// `filters`, ordered by time and id, after the `(timestamp, event_id)` cursor when
    /// given. The filters are evaluated in
    /// SQL as `Filter::matches` evaluates them. Reads the range's events through the
    /// time index: over all pages, each event of the range once.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn filtered_events(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        filters: &Filters,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Event>, Error>;

    /// Up to `limit` raw events of `project` in `[from_ms, to_ms)` in sample bucket
    /// `bucket` (`tally_core::filter::sample_bucket`), ordered by time and id, after the
    /// cursor when given, unfiltered: the rows returned are the rows read.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] or [`Error::Decode`].
    async fn sample_events(
        &self,
        project: &str,
        bucket: u8,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Event>, Error>;
}

/// The record of cron job runs and meta values.
#[allow(async_fn_in_trait)]
pub trait JobLog {
    /// Records one run.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the write fails.
    async fn record_job_run(&self, run: &JobRun) -> Result<(), Error>;

    /// The latest run of every job, ordered by job name.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn latest_job_runs(&self) -> Result<Vec<JobRun>, Error>;

    /// Every meta value as `(key, value, updated_at)`.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn meta(&self) -> Result<Vec<(String, String, i64)>, Error>;

    /// How many dead-lettered messages are kept.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn dead_letters(&self) -> Result<u64, Error>;
}

/// KV's shortest expiry, in seconds: a shorter TTL is raised to it.
pub const MIN_CACHE_TTL_S: u32 = 60;

/// A short-lived cache of derived values: key lookups, heavy responses. Never the
/// source of truth (KV is eventually consistent and its writes are rate-limited).
#[allow(async_fn_in_trait)]
pub trait Cache {
    /// The value under `key`, if present and not expired.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn get(&self, key: &str) -> Result<Option<String>, Error>;

    /// Stores `value` under `key` for `ttl_s` seconds (at least [`MIN_CACHE_TTL_S`]).
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the write fails.
    async fn put(&self, key: &str, value: &str, ttl_s: u32) -> Result<(), Error>;

    /// Removes `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the delete fails.
    async fn delete(&self, key: &str) -> Result<(), Error>;
}

/// Where ingest sends packed event messages (`tally_core::queue`).
#[allow(async_fn_in_trait)]
pub trait EventQueue {
    /// Sends message bodies in order.
    ///
    /// # Errors
    ///
    /// [`SendError`] when a send fails: it says how many bodies (the first ones) were
    /// sent before it. Resending those is harmless only for events whose ids the client
    /// will send again (its own `event_id`s or an `Idempotency-Key`); so ingest tells
    /// the client which events were queued.
    async fn send(&self, bodies: &[String]) -> Result<(), SendError>;
}

/// A send to an [`EventQueue`] that failed after its first `sent` bodies were sent; the
/// rest are not known to be on the queue.
#[derive(Debug, thiserror::Error)]
#[error("{error} ({sent} messages sent before it)")]
pub struct SendError {
    pub sent: usize,
    #[source]
    pub error: Error,
}

/// Serializes events into JSON arrays of at most [`MAX_INSERT_JSON_BYTES`] each (one
/// array per `INSERT_EVENTS` statement).
pub fn event_chunks(events: &[Event]) -> Vec<String> {
    tally_core::json::chunks(events, MAX_INSERT_JSON_BYTES, "[", "]")
}
