//! The stores Tally's workers need, as narrow async traits, with two implementations.
//!
//! # Brief overview
//!
//! - [`EventSink`] stores validated events exactly once; [`EventReader`] counts them;
//!   [`JobLog`] records and reports cron job runs.
//! - [`d1::D1Store`] (feature `d1`) implements them over Cloudflare D1 for the workers.
//! - [`sqlite::SqliteStore`] (feature `sqlite`) implements them over SQLite, applying the
//!   same [`MIGRATIONS`], so pipeline logic is tested natively against a real database.
//!
//! The traits use `async fn` without `Send` bounds: Workers run on one thread.

#[cfg(feature = "d1")]
pub mod d1;
#[cfg(feature = "sqlite")]
pub mod sqlite;

mod error;

pub use error::Error;

use serde::{Deserialize, Serialize};
use tally_core::Event;

/// The D1 migrations, in order, as `(file name, SQL)`. A test checks this list against
/// the `migrations/` directory, so a new file cannot be forgotten here.
pub const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_init.sql",
    include_str!("../../../migrations/0001_init.sql"),
)];

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

/// Where validated events are stored.
#[allow(async_fn_in_trait)] // Workers are single-threaded: no `Send` bound wanted.
pub trait EventSink {
    /// Stores `events` in one transaction, ignoring any `(project, event_id)` already
    /// stored, and returns how many rows were new.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the write fails; then nothing of this call is stored.
    async fn insert_events(&self, events: &[Event]) -> Result<u64, Error>;
}

/// Reads over stored events.
#[allow(async_fn_in_trait)]
pub trait EventReader {
    /// Counts the events and errors of `project` with `from_ms <= timestamp < to_ms`.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the read fails.
    async fn count_events(&self, project: &str, from_ms: i64, to_ms: i64) -> Result<Counts, Error>;
}

/// The record of cron job runs.
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
}

/// Serializes events into JSON arrays of at most [`MAX_INSERT_JSON_BYTES`] each (one
/// array per `INSERT_EVENTS` statement).
pub fn event_chunks(events: &[Event]) -> Vec<String> {
    tally_core::json::chunks(events, MAX_INSERT_JSON_BYTES, "[", "]")
}
