//! The stores over SQLite (rusqlite), applying the same migrations as D1: an
//! [`Executor`], so every domain trait is SQLite's through `crate::sql_store`. This file
//! holds only what is SQLite's own: opening and migrating, the transaction, and failure
//! injection ([`SqliteStore::fail_commit_at`] makes a later commit fail midway).
//!
//! Used by native tests so that pipeline logic runs against a real SQL engine. The
//! futures it returns complete immediately; [`block_on`] drives them.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use serde::de::DeserializeOwned;
use serde::de::value::MapDeserializer;
use tally_core::sql;

use crate::exec::{Bound, Executor, Statement};
use crate::{Error, MIGRATIONS};

/// A SQLite database with Tally's schema.
pub struct SqliteStore {
    conn: RefCell<Connection>,
    /// When set, the next commit fails after applying this many of its writes.
    fail_at: Cell<Option<usize>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn db(e: rusqlite::Error) -> Error {
    Error::from_database(e.to_string())
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

    /// Opens the SQLite file of a local D1 database (the `--local` state of `wrangler
    /// dev`), whose schema wrangler applied: checks that every one of [`MIGRATIONS`] is
    /// recorded in its `d1_migrations` table and applies nothing. Nothing else may write
    /// the file meanwhile: stop the workers first.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the file does not exist or cannot be opened, or when a
    /// migration has not been applied to it.
    pub fn open_local_d1(path: &std::path::Path) -> Result<Self, Error> {
        let flags =
            rusqlite::OpenFlags::default().difference(rusqlite::OpenFlags::SQLITE_OPEN_CREATE);
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| Error::Database(format!("opening {}: {e}", path.display())))?;
        let applied: HashSet<String> = {
            let mut stmt = conn.prepare(sql::D1_MIGRATIONS_APPLIED).map_err(db)?;
            let names = stmt.query_map([], |r| r.get(0)).map_err(db)?;
            names.collect::<Result<_, _>>().map_err(db)?
        };
        if let Some((missing, _)) = MIGRATIONS.iter().find(|(name, _)| !applied.contains(*name)) {
            return Err(Error::Database(format!(
                "{} lacks migration {missing}; apply the migrations with wrangler first",
                path.display()
            )));
        }
        Ok(Self {
            conn: RefCell::new(conn),
            fail_at: Cell::new(None),
        })
    }

    fn migrate(conn: Connection) -> Result<Self, Error> {
        for (name, sql) in MIGRATIONS {
            conn.execute_batch(sql)
                .map_err(|e| Error::Database(format!("migration {name}: {e}")))?;
        }
        Ok(Self {
            conn: RefCell::new(conn),
            fail_at: Cell::new(None),
        })
    }

    /// Makes the next commit (or other write: every write is an [`Executor::batch`])
    /// fail after applying `writes` of its writes, so the transaction must roll back
    /// what it applied.
    pub fn fail_commit_at(&self, writes: usize) {
        self.fail_at.set(Some(writes));
    }

    /// Runs `f` with the connection, for tests that inspect rows directly.
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn.borrow())
    }
}

impl Executor for SqliteStore {
    /// Decodes each row as a map of its columns by name, as D1 does, so one row type
    /// serves both.
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        let conn = self.conn.borrow();
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(values)).map_err(db)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db)? {
            let mut columns = Vec::with_capacity(names.len());
            for i in 0..names.len() {
                columns.push(match row.get_ref(i).map_err(db)? {
                    ValueRef::Null => serde_json::Value::Null,
                    ValueRef::Integer(n) => n.into(),
                    ValueRef::Real(x) => x.into(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                    ValueRef::Blob(b) => tally_core::hash::hex(b).into(),
                });
            }
            let object = MapDeserializer::new(names.iter().map(String::as_str).zip(columns));
            out.push(
                T::deserialize(object)
                    .map_err(|e: serde_json::Error| Error::Decode(e.to_string()))?,
            );
        }
        Ok(out)
    }

    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, Error> {
        let fail_at = self.fail_at.take();
        let mut conn = self.conn.borrow_mut();
        let tx = conn.transaction().map_err(db)?;
        let mut changed = Vec::with_capacity(groups.len());
        for (i, group) in groups.into_iter().enumerate() {
            if fail_at == Some(i) {
                // Dropping the transaction rolls back what was applied.
                return Err(Error::Database(format!("injected failure at write {i}")));
            }
            let mut n = 0;
            for Statement { sql, values } in group {
                let mut stmt = tx.prepare_cached(sql).map_err(db)?;
                n += stmt
                    .execute(rusqlite::params_from_iter(values))
                    .map_err(db)? as u64;
            }
            changed.push(n);
        }
        tx.commit().map_err(db)?;
        Ok(changed)
    }

    /// The database's pages times their size: what a file of it takes, free pages
    /// included, as D1's `size_after` counts it.
    async fn stored_bytes(&self) -> Result<Option<u64>, Error> {
        #[derive(serde::Deserialize)]
        struct Size {
            bytes: u64,
        }
        let rows: Vec<Size> = self.query(sql::DATABASE_BYTES, vec![]).await?;
        Ok(rows.first().map(|size| size.bytes))
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

impl rusqlite::ToSql for Bound {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Bound::Null => ToSqlOutput::Owned(Value::Null),
            Bound::Int(n) => ToSqlOutput::Owned(Value::Integer(*n)),
            Bound::Real(x) => ToSqlOutput::Owned(Value::Real(*x)),
            Bound::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AdminStore, EventStore, JobLog, JobRun, RollupStore, Write, Writer};
    use rusqlite::params;
    use std::collections::BTreeMap;
    use tally_core::Event;
    use tally_core::project::{KeyKind, Project};
    use tally_core::project::{ProjectInput, RateLimit, key_hash, new_key};
    use tally_core::queue::Dropped;
    use tally_core::rollup::{Dimension, Key, Period, Rollup};

    fn project(slug: &str) -> Project {
        ProjectInput {
            slug: Some(slug.into()),
            allowed_origins: Some(vec!["https://a.example".into()]),
            ..ProjectInput::default()
        }
        .create(7)
        .unwrap()
    }

    #[test]
    fn local_d1_files_open_only_with_every_migration_applied() {
        let dir = std::env::temp_dir().join(format!("tally-local-d1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        let _ = std::fs::remove_file(&path);
        assert!(
            SqliteStore::open_local_d1(&path).is_err(),
            "no file, no database"
        );
        assert!(!path.exists(), "and none is made");
        SqliteStore::open(&path).unwrap().with_connection(|c| {
            c.execute_batch(
                "CREATE TABLE d1_migrations (id INTEGER PRIMARY KEY, name TEXT UNIQUE)",
            )
            .unwrap();
            for (name, _) in &MIGRATIONS[..MIGRATIONS.len() - 1] {
                c.execute("INSERT INTO d1_migrations (name) VALUES (?1)", [name])
                    .unwrap();
            }
        });
        let error = SqliteStore::open_local_d1(&path).unwrap_err().to_string();
        let last = MIGRATIONS[MIGRATIONS.len() - 1].0;
        assert!(error.contains(last), "{error}");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("INSERT INTO d1_migrations (name) VALUES (?1)", [last])
            .unwrap();
        let store = SqliteStore::open_local_d1(&path).unwrap();
        assert!(block_on(store.create_project(&project("site"))).unwrap());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn projects_are_created_once_and_updated_in_place() {
        let store = SqliteStore::open_in_memory().unwrap();
        let p = project("site");
        assert!(block_on(store.create_project(&p)).unwrap());
        assert!(
            !block_on(store.create_project(&p)).unwrap(),
            "the slug is taken"
        );
        assert_eq!(block_on(store.project("site")).unwrap(), Some(p.clone()));
        let changed = Project {
            rate_limit: RateLimit::Off,
            retention_days: 30,
            allowed_origins: vec!["*".into()],
            public_dashboard: true,
            ..p
        };
        assert!(block_on(store.update_project(&changed)).unwrap());
        assert!(!block_on(store.update_project(&project("nope"))).unwrap());
        assert_eq!(block_on(store.all_projects()).unwrap(), vec![changed]);
        assert_eq!(block_on(store.project("nope")).unwrap(), None);
    }

    #[test]
    fn a_plausible_domain_finds_its_one_project() {
        let store = SqliteStore::open_in_memory().unwrap();
        let one = Project {
            plausible_domain: Some("shop.example".into()),
            ..project("one")
        };
        assert!(block_on(store.create_project(&one)).unwrap());
        assert!(block_on(store.create_project(&project("two"))).unwrap());
        assert!(block_on(store.create_project(&project("three"))).unwrap());
        assert_eq!(
            block_on(store.project_by_plausible_domain("shop.example")).unwrap(),
            Some(one.clone())
        );
        assert_eq!(
            block_on(store.project_by_plausible_domain("other.example")).unwrap(),
            None
        );
        // A domain names one project: a second claim fails.
        let claim = Project {
            plausible_domain: Some("shop.example".into()),
            ..project("two")
        };
        assert!(block_on(store.update_project(&claim)).is_err());
        // Clearing it frees it for another.
        let cleared = Project {
            plausible_domain: None,
            ..one
        };
        assert!(block_on(store.update_project(&cleared)).unwrap());
        assert!(block_on(store.update_project(&claim)).unwrap());
        assert_eq!(
            block_on(store.project_by_plausible_domain("shop.example")).unwrap(),
            Some(claim)
        );
        assert_eq!(block_on(store.project("one")).unwrap(), Some(cleared));
    }

    #[test]
    fn keys_are_found_by_hash_and_revoked_only_within_their_project() {
        let store = SqliteStore::open_in_memory().unwrap();
        for slug in ["one", "two"] {
            assert!(block_on(store.create_project(&project(slug))).unwrap());
        }
        let k = new_key(KeyKind::Write, &[7; 20]);
        let made = block_on(store.create_key("one", KeyKind::Write, &k, Some("site"), 9))
            .unwrap()
            .unwrap();
        assert_eq!(made.prefix, k.prefix);
        let missing = new_key(KeyKind::Read, &[8; 20]);
        assert_eq!(
            block_on(store.create_key("ghost", KeyKind::Read, &missing, None, 9)).unwrap(),
            None
        );
        let (key, p) = block_on(store.key_by_hash(&key_hash(&k.secret)))
            .unwrap()
            .unwrap();
        assert_eq!(
            (key.id, key.kind, p.slug.as_str()),
            (made.id, KeyKind::Write, "one")
        );
        assert_eq!(p.allowed_origins, ["https://a.example"]);
        assert_eq!(Some(p), block_on(store.project("one")).unwrap());
        assert_eq!(
            block_on(store.key_by_hash(&key_hash("tw_other"))).unwrap(),
            None
        );

        assert_eq!(
            block_on(store.revoke_key("two", made.id, 10)).unwrap(),
            None
        );
        let revoked = block_on(store.revoke_key("one", made.id, 11))
            .unwrap()
            .unwrap();
        assert_eq!(revoked.revoked_at, Some(11));
        let again = block_on(store.revoke_key("one", made.id, 12))
            .unwrap()
            .unwrap();
        assert_eq!(again.revoked_at, Some(11), "the first revocation stands");
        let (key, _) = block_on(store.key_by_hash(&k.hash)).unwrap().unwrap();
        assert_eq!(key.revoked_at, Some(11));
        assert_eq!(block_on(store.keys("one")).unwrap(), vec![again]);
        assert!(block_on(store.keys("two")).unwrap().is_empty());
    }

    #[test]
    fn dropped_requests_count_once_and_are_purged_with_raw_events() {
        let store = SqliteStore::open_in_memory().unwrap();
        block_on(store.create_project(&project("site"))).unwrap();
        let dropped: Vec<Dropped> = (0..3)
            .map(|i| Dropped {
                event_id: format!("00000000-0000-4000-8000-00000000000{i}"),
                project: "site".into(),
                timestamp: 100 * i,
                reason: "bot".into(),
            })
            .collect();
        block_on(store.commit(&[Write::InsertDropped(&dropped)])).unwrap();
        block_on(store.commit(&[Write::InsertDropped(&dropped[1..])])).unwrap();
        let counts = block_on(store.dropped_counts("site", 0, 1000)).unwrap();
        assert_eq!(counts, BTreeMap::from([("bot".to_owned(), 3)]));
        let purge = Write::PurgeRaw {
            project: "site",
            before_ms: 150,
            limit: 10,
        };
        block_on(store.commit(&[purge])).unwrap();
        let counts = block_on(store.dropped_counts("site", 0, 1000)).unwrap();
        assert_eq!(counts, BTreeMap::from([("bot".to_owned(), 1)]));
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
        for (name, n) in listed.iter().zip(1..) {
            assert!(
                name.starts_with(&format!("{n:04}_")),
                "{name} should be numbered {n:04}"
            );
        }
    }

    #[test]
    fn one_dimension_is_read_through_the_primary_key() {
        let store = SqliteStore::open_in_memory().unwrap();
        let plan: Vec<String> = store.with_connection(|c| {
            let mut stmt = c
                .prepare(&format!("EXPLAIN QUERY PLAN {}", sql::ROLLUPS_OF_DIMENSION))
                .unwrap();
            stmt.query_map(params!["p", "day", 0, 1, "route"], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        });
        assert_eq!(
            plan,
            ["SEARCH rollups USING PRIMARY KEY \
              (project=? AND period=? AND dimension=? AND start>? AND start<?)"]
        );
    }

    /// One user's events are read from their sample bucket of `raw_events_by_sample` (the
    /// bucket is the last byte of the stored user hash), about 1/256 of the project's
    /// events in range, not from every event in range through the time index.
    #[test]
    fn one_users_events_are_read_from_their_sample_bucket() {
        let store = SqliteStore::open_in_memory().unwrap();
        let plan: Vec<String> = store.with_connection(|c| {
            let mut stmt = c
                .prepare(&format!("EXPLAIN QUERY PLAN {}", sql::USER_EVENT_COUNTS))
                .unwrap();
            stmt.query_map(params!["p", 0, 1, "00112233445566778899"], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        });
        assert!(
            plan[0].starts_with(
                "SEARCH raw_events USING INDEX raw_events_by_sample \
                 (project_id=? AND <expr>=? AND timestamp>? AND timestamp<?)"
            ),
            "{plan:?}"
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

    #[test]
    fn the_latest_job_runs_are_found_in_one_scan_of_the_index() {
        // A correlated MAX(id) per row was quadratic: 123 s over 30 days of runs, on a
        // public endpoint of the database every tenant shares.
        let store = SqliteStore::open_in_memory().unwrap();
        let plan: Vec<String> = store.with_connection(|c| {
            let mut stmt = c
                .prepare(&format!("EXPLAIN QUERY PLAN {}", sql::LATEST_JOB_RUNS))
                .unwrap();
            stmt.query_map([], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        });
        assert_eq!(
            plan,
            [
                "SEARCH job_runs USING INTEGER PRIMARY KEY (rowid=?)",
                "LIST SUBQUERY 1",
                "SCAN job_runs USING COVERING INDEX job_runs_by_job_time",
                "USE TEMP B-TREE FOR ORDER BY",
            ]
        );
    }

    #[test]
    fn old_job_runs_are_purged_but_each_jobs_latest_run_stays() {
        let store = SqliteStore::open_in_memory().unwrap();
        let run = |job: &str, at: i64| JobRun {
            job: job.into(),
            cron: "0 0 * * *".into(),
            scheduled_at: at,
            started_at: at,
            finished_at: at + 5,
            outcome: "ok".into(),
            detail: None,
        };
        // 30 days of minutely runs, and a daily job that last ran long ago.
        for minute in 0..30 * 1440 {
            block_on(store.record_job_run(&run("minutely", minute * 60_000))).unwrap();
        }
        block_on(store.record_job_run(&run("daily", 5))).unwrap();
        let cutoff = 16 * 1440 * 60_000;
        let mut deleted = 0;
        loop {
            let changed = block_on(store.commit(&[Write::PurgeJobRuns {
                before_ms: cutoff,
                orphans_before_ms: 0,
                limit: 5_000,
            }]))
            .unwrap();
            assert!(changed[0] <= 5_000, "bounded");
            deleted += changed[0];
            if changed[0] == 0 {
                break;
            }
        }
        assert_eq!(deleted, 16 * 1440);
        let latest = block_on(store.latest_job_runs()).unwrap();
        assert_eq!(
            latest,
            vec![run("daily", 5), run("minutely", (30 * 1440 - 1) * 60_000)]
        );
        let left: i64 = store.with_connection(|c| {
            c.query_row("SELECT COUNT(*) FROM job_runs", [], |r| r.get(0))
                .unwrap()
        });
        assert_eq!(left, 14 * 1440 + 1);
    }

    #[test]
    fn an_event_of_an_unrecorded_project_fails_loudly() {
        let store = SqliteStore::open_in_memory().unwrap();
        let event = Event::new("00000000-0000-4000-8000-000000000001", "nobody", "n", 1);
        let events = [event];
        let err = block_on(store.commit(&[Write::InsertEvents(&events)])).unwrap_err();
        assert!(err.to_string().contains("NOT NULL"), "{err}");
        let ensure = Write::EnsureProject {
            slug: "nobody",
            now_ms: 0,
        };
        let changed = block_on(store.commit(&[ensure, Write::InsertEvents(&events)])).unwrap();
        assert_eq!(changed, vec![1, 1]);
    }

    #[test]
    fn dead_letters_are_kept_once() {
        let store = SqliteStore::open_in_memory().unwrap();
        let letter = Write::DeadLetter {
            message_id: "m-1",
            queue: "tally-events-dlq",
            body: r#"{"v":1,"events":[]}"#,
            sent_at_ms: 5,
            now_ms: 9,
        };
        block_on(store.commit(std::slice::from_ref(&letter))).unwrap();
        block_on(store.commit(&[letter])).unwrap();
        assert_eq!(block_on(store.dead_letters()).unwrap(), 1);
    }

    #[test]
    fn the_optimistic_lock_rejects_a_stale_update() {
        let store = SqliteStore::open_in_memory().unwrap();
        let key = Key {
            project: "p".into(),
            start: 0,
            dimension: Dimension::All,
            value: String::new(),
        };
        let row = Rollup {
            count: 1,
            ..Rollup::default()
        };
        let insert = Write::InsertRollup {
            period: Period::Hour,
            key: &key,
            row: &row,
        };
        block_on(store.commit(std::slice::from_ref(&insert))).unwrap();
        let err = block_on(store.commit(&[insert])).unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        let update = |read_version| Write::UpdateRollup {
            period: Period::Hour,
            key: &key,
            row: &row,
            read_version,
        };
        block_on(store.commit(&[update(1)])).unwrap();
        let stale = block_on(store.commit(&[update(1)])).unwrap_err();
        assert!(matches!(stale, Error::Conflict(_)), "{stale}");
        let stored = block_on(store.rollups_by_key(Period::Hour, &[&key])).unwrap();
        assert_eq!(stored[&key].version, 2);
    }
}
