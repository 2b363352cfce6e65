//! The stores over SQLite (rusqlite), applying the same migrations as D1.
//!
//! Used by native tests so that pipeline logic runs against a real SQL engine. The
//! futures it returns complete immediately; [`block_on`] drives them.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rusqlite::{Connection, params};
use tally_core::{Event, sql};

use crate::{Counts, Error, EventReader, EventSink, JobLog, JobRun, MIGRATIONS, event_chunks};

/// A SQLite database with Tally's schema.
pub struct SqliteStore {
    conn: RefCell<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn db(e: rusqlite::Error) -> Error {
    Error::Database(e.to_string())
}

impl SqliteStore {
    /// Opens a fresh in-memory database and applies every migration.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when a migration fails to apply.
    pub fn open_in_memory() -> Result<Self, Error> {
        Self::migrate(Connection::open_in_memory().map_err(db)?)
    }

    /// Opens (or creates) a database file and applies every migration to it.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the file cannot be opened or a migration fails.
    pub fn open(path: &std::path::Path) -> Result<Self, Error> {
        Self::migrate(Connection::open(path).map_err(db)?)
    }

    fn migrate(conn: Connection) -> Result<Self, Error> {
        for (name, sql) in MIGRATIONS {
            conn.execute_batch(sql)
                .map_err(|e| Error::Database(format!("migration {name}: {e}")))?;
        }
        Ok(Self {
            conn: RefCell::new(conn),
        })
    }

    /// Runs `f` with the connection, for tests that inspect rows directly.
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn.borrow())
    }
}

impl EventSink for SqliteStore {
    async fn insert_events(&self, events: &[Event]) -> Result<u64, Error> {
        let mut conn = self.conn.borrow_mut();
        let tx = conn.transaction().map_err(db)?;
        let mut inserted = 0u64;
        for chunk in event_chunks(events) {
            inserted += tx.execute(sql::INSERT_EVENTS, [chunk]).map_err(db)? as u64;
        }
        tx.commit().map_err(db)?;
        Ok(inserted)
    }
}

impl EventReader for SqliteStore {
    async fn count_events(&self, project: &str, from_ms: i64, to_ms: i64) -> Result<Counts, Error> {
        self.conn
            .borrow()
            .query_row(sql::COUNT_EVENTS, params![project, from_ms, to_ms], |row| {
                Ok(Counts {
                    events: row.get::<_, i64>(0)? as u64,
                    errors: row.get::<_, i64>(1)? as u64,
                })
            })
            .map_err(db)
    }
}

impl JobLog for SqliteStore {
    async fn record_job_run(&self, run: &JobRun) -> Result<(), Error> {
        self.conn
            .borrow()
            .execute(
                sql::INSERT_JOB_RUN,
                params![
                    run.job,
                    run.cron,
                    run.scheduled_at,
                    run.started_at,
                    run.finished_at,
                    run.outcome,
                    run.detail
                ],
            )
            .map(drop)
            .map_err(db)
    }

    async fn latest_job_runs(&self) -> Result<Vec<JobRun>, Error> {
        let conn = self.conn.borrow();
        let mut stmt = conn.prepare(sql::LATEST_JOB_RUNS).map_err(db)?;
        let rows = stmt
            .query_map([], |row| {
                Ok(JobRun {
                    job: row.get(0)?,
                    cron: row.get(1)?,
                    scheduled_at: row.get(2)?,
                    started_at: row.get(3)?,
                    finished_at: row.get(4)?,
                    outcome: row.get(5)?,
                    detail: row.get(6)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }
}

/// Drives a future that never waits on IO (such as this store's) to completion.
///
/// # Panics
///
/// Panics if the future returns `Pending`, which only a future waiting on real IO does.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("block_on: the future waited on IO"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::{Context, RawEvent, Settings, validate};

    const NOW: i64 = 1_737_210_600_000;

    fn event(id: u32, name: &str, status: Option<i64>) -> Event {
        let raw: RawEvent = serde_json::from_value(serde_json::json!({
            "event_id": format!("00000000-0000-4000-8000-{id:012}"),
            "project": "demo", "name": name, "status": status,
            "metadata": {"k": id}, "duration_ms": 12.5, "bytes": 2048,
        }))
        .unwrap();
        let ctx = Context {
            now_ms: NOW,
            settings: Settings::default(),
            id_secret: b"secret",
        };
        validate(raw, &ctx, &mut || unreachable!()).unwrap().event
    }

    #[test]
    fn migrations_match_the_directory_and_are_numbered_without_gaps() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            files, listed,
            "MIGRATIONS must list every file in migrations/"
        );
        for (i, name) in listed.iter().enumerate() {
            assert!(
                name.starts_with(&format!("{:04}_", i + 1)),
                "{name} should be numbered {:04}",
                i + 1
            );
        }
    }

    #[test]
    fn insert_dedups_and_round_trips_every_column() {
        let store = SqliteStore::open_in_memory().unwrap();
        let batch: Vec<Event> = (0..250)
            .map(|i| event(i, "request", Some(if i % 10 == 0 { 503 } else { 200 })))
            .collect();
        assert_eq!(block_on(store.insert_events(&batch)).unwrap(), 250);
        assert_eq!(block_on(store.insert_events(&batch)).unwrap(), 0);
        let mut overlapping = batch[200..].to_vec();
        overlapping.push(event(999, "install", None));
        assert_eq!(block_on(store.insert_events(&overlapping)).unwrap(), 1);

        let counts = block_on(store.count_events("demo", 0, NOW + 1)).unwrap();
        assert_eq!(
            counts,
            Counts {
                events: 251,
                errors: 25
            }
        );
        let none = block_on(store.count_events("other", 0, NOW + 1)).unwrap();
        assert_eq!(none, Counts::default());
        let before = block_on(store.count_events("demo", 0, NOW)).unwrap();
        assert_eq!(before.events, 0, "the range end is exclusive");

        let (status, duration, bytes, metadata): (i64, f64, i64, String) = store
            .with_connection(|c| {
                c.query_row(
                    "SELECT status, duration_ms, bytes, metadata FROM events WHERE event_id = ?1",
                    ["00000000-0000-4000-8000-000000000010"],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
            })
            .unwrap();
        assert_eq!((status, duration, bytes), (503, 12.5, 2048));
        assert_eq!(metadata, r#"{"k":10}"#);
    }

    #[test]
    fn a_failing_chunk_rolls_back_the_whole_call() {
        let store = SqliteStore::open_in_memory().unwrap();
        // A trigger that fails on one specific event makes the write fail midway.
        store.with_connection(|c| {
            c.execute_batch(
                "CREATE TRIGGER fail_on_boom BEFORE INSERT ON events
                 WHEN NEW.name = 'boom' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
            )
            .unwrap();
        });
        let mut batch: Vec<Event> = (0..5000).map(|i| event(i, "request", None)).collect();
        batch.push(event(5000, "boom", None));
        assert!(
            event_chunks(&batch).len() > 1,
            "the failure must hit a later chunk"
        );
        let err = block_on(store.insert_events(&batch)).unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert_eq!(
            block_on(store.count_events("demo", 0, NOW + 1))
                .unwrap()
                .events,
            0
        );
    }

    #[test]
    fn job_runs_report_the_latest_per_job() {
        let store = SqliteStore::open_in_memory().unwrap();
        let run = |job: &str, at: i64, outcome: &str| JobRun {
            job: job.into(),
            cron: "* * * * *".into(),
            scheduled_at: at,
            started_at: at,
            finished_at: at + 5,
            outcome: outcome.into(),
            detail: None,
        };
        for r in [
            run("rollup", 1, "ok"),
            run("rollup", 2, "error"),
            run("alerts", 3, "ok"),
        ] {
            block_on(store.record_job_run(&r)).unwrap();
        }
        let latest = block_on(store.latest_job_runs()).unwrap();
        assert_eq!(
            latest,
            vec![run("alerts", 3, "ok"), run("rollup", 2, "error")]
        );
    }
}
