//! The stores over SQLite (rusqlite), applying the same migrations as D1.
//!
//! Used by native tests so that pipeline logic runs against a real SQL engine, with
//! failure injection: [`SqliteStore::fail_commit_at`] makes a later commit fail midway.
//! The futures it returns complete immediately; [`block_on`] drives them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rusqlite::{Connection, Row, Transaction, params};
use tally_core::funnel::Hit;
use tally_core::rollup::{Dimension, Key, Period, Rollup};
use tally_core::sessions::Mark;
use tally_core::{Event, sql};

use tally_core::project::{ApiKey, KeyKind, NewKey, Project};

use crate::alerts::{self, Bound};
use crate::rows::{
    self, DirtyRow, GrantRow, KeyRow, ProjectRow, RawRow, RollupParams, RollupRow, origins_json,
};
use crate::{
    AdminStore, Counts, DayCount, Dirty, Error, ErrorMessage, EventStore, FilteredReads, JobLog,
    JobRun, MAX_INSERT_JSON_BYTES, MIGRATIONS, ProjectSettings, QueryStore, RollupStore,
    ValueMatch, Versioned, Write, Writer, event_chunks,
};

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

    /// Makes the next commit fail after applying `writes` of its writes (so the
    /// transaction must roll back what it applied).
    pub fn fail_commit_at(&self, writes: usize) {
        self.fail_at.set(Some(writes));
    }

    /// Runs `f` with the connection, for tests that inspect rows directly.
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.conn.borrow())
    }

    /// Runs a query and decodes each row, as a JSON object of its columns, into `T`:
    /// the row types D1 decodes serve here too.
    fn json_rows<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        use rusqlite::types::ValueRef;
        let conn = self.conn.borrow();
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(values)).map_err(db)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db)? {
            let mut object = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i).map_err(db)? {
                    ValueRef::Null => serde_json::Value::Null,
                    ValueRef::Integer(n) => n.into(),
                    ValueRef::Real(x) => x.into(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                    ValueRef::Blob(b) => tally_core::hash::hex(b).into(),
                };
                object.insert(name.clone(), value);
            }
            out.push(
                serde_json::from_value(object.into()).map_err(|e| Error::Decode(e.to_string()))?,
            );
        }
        Ok(out)
    }

    fn query<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, Error> {
        let conn = self.conn.borrow();
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        let rows = stmt.query_map(params, map).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }
}

fn rollup_row(r: &Row<'_>) -> rusqlite::Result<RollupRow> {
    Ok(RollupRow {
        project: r.get(0)?,
        period: r.get(1)?,
        start: r.get(2)?,
        dimension: r.get(3)?,
        value: r.get(4)?,
        count: r.get::<_, i64>(5)? as u64,
        errors: r.get::<_, i64>(6)? as u64,
        bytes: r.get::<_, i64>(7)? as u64,
        durations: r.get(8)?,
        users: r.get(9)?,
        instances: r.get(10)?,
        version: r.get(11)?,
    })
}

fn apply(tx: &Transaction<'_>, write: &Write<'_>) -> rusqlite::Result<u64> {
    let rollup = |sql: &str, p: &RollupParams<'_>, version: Option<i64>| {
        let mut stmt = tx.prepare_cached(sql)?;
        let base = params![
            p.project,
            p.period,
            p.start,
            p.dimension,
            p.value,
            p.count,
            p.errors,
            p.bytes,
            p.duration_sum_us,
            p.durations,
            p.users,
            p.instances
        ];
        match version {
            None => stmt.execute(base),
            Some(v) => {
                let mut all: Vec<&dyn rusqlite::ToSql> = base.to_vec();
                all.push(&v);
                stmt.execute(all.as_slice())
            }
        }
    };
    let changed = match write {
        Write::InsertEvents(events) => {
            let mut n = 0;
            for chunk in event_chunks(events) {
                n += tx.prepare_cached(sql::INSERT_EVENTS)?.execute([chunk])?;
            }
            n
        }
        Write::EnsureProject { slug, now_ms } => tx
            .prepare_cached(sql::ENSURE_PROJECT)?
            .execute(params![slug, now_ms])?,
        Write::InsertDropped(dropped) => {
            let mut n = 0;
            for chunk in tally_core::json::chunks(dropped, MAX_INSERT_JSON_BYTES, "[", "]") {
                n += tx.prepare_cached(sql::INSERT_DROPPED)?.execute([chunk])?;
            }
            n
        }
        Write::InsertSessionEvents(events) => {
            let mut n = 0;
            for chunk in event_chunks(events) {
                n += tx
                    .prepare_cached(sql::INSERT_SESSION_EVENTS)?
                    .execute([chunk])?;
            }
            n
        }
        Write::KeepErrorMessages(events) => {
            let mut n = 0;
            for chunk in event_chunks(events) {
                n += tx
                    .prepare_cached(sql::KEEP_ERROR_MESSAGES)?
                    .execute([chunk])?;
            }
            n
        }
        Write::InsertRollup { period, key, row } => rollup(
            sql::INSERT_ROLLUP,
            &RollupParams::new(*period, key, row),
            None,
        )?,
        Write::UpdateRollup {
            period,
            key,
            row,
            read_version,
        } => rollup(
            sql::UPDATE_ROLLUP,
            &RollupParams::new(*period, key, row),
            Some(read_version + 1),
        )?,
        Write::PutRollup { period, key, row } => {
            rollup(sql::PUT_ROLLUP, &RollupParams::new(*period, key, row), None)?
        }
        Write::DeleteStaleRollups {
            project,
            period,
            start,
            keep,
        } => tx
            .prepare_cached(sql::DELETE_STALE_ROLLUPS)?
            .execute(params![
                project,
                period.name(),
                start,
                rows::keep_json(keep)
            ])?,
        Write::MarkDirty {
            project,
            period,
            start,
        } => tx
            .prepare_cached(sql::MARK_DIRTY)?
            .execute(params![project, period.name(), start])?,
        Write::ClearDirty(d) => tx.prepare_cached(sql::CLEAR_DIRTY)?.execute(params![
            d.project,
            d.period.name(),
            d.start,
            d.generation
        ])?,
        Write::PurgeRaw {
            project,
            before_ms,
            limit,
        } => {
            tx.prepare_cached(sql::PURGE_RAW_EVENTS)?
                .execute(params![project, before_ms, limit])?
                + tx.prepare_cached(sql::PURGE_SESSION_EVENTS)?
                    .execute(params![project, before_ms, limit])?
                + tx.prepare_cached(sql::PURGE_DROPPED)?
                    .execute(params![project, before_ms, limit])?
                + tx.prepare_cached(sql::PURGE_ERROR_MESSAGES)?
                    .execute(params![project, before_ms, limit])?
                + tx.prepare_cached(sql::PURGE_ALERT_ATTEMPTS)?
                    .execute(params![project, before_ms, limit])?
                + tx.prepare_cached(sql::PURGE_ALERTS)?
                    .execute(params![project, before_ms, limit])?
        }
        Write::PurgeJobRuns { before_ms, limit } => tx
            .prepare_cached(sql::PURGE_JOB_RUNS)?
            .execute(params![before_ms, limit])?,
        Write::DeadLetter {
            message_id,
            queue,
            body,
            sent_at_ms,
            now_ms,
        } => tx
            .prepare_cached(sql::INSERT_DEAD_LETTER)?
            .execute(params![message_id, queue, body, sent_at_ms, now_ms])?,
        Write::PutMeta { key, value, now_ms } => tx
            .prepare_cached(sql::PUT_META)?
            .execute(params![key, value, now_ms])?,
        Write::Alert(write) => {
            let mut n = 0;
            for (sql, values) in write.statements() {
                n += tx
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(values))?;
            }
            n
        }
    };
    Ok(changed as u64)
}

impl Writer for SqliteStore {
    async fn commit(&self, writes: &[Write<'_>]) -> Result<Vec<u64>, Error> {
        let fail_at = self.fail_at.take();
        let mut conn = self.conn.borrow_mut();
        let tx = conn.transaction().map_err(db)?;
        let mut changed = Vec::with_capacity(writes.len());
        for (i, write) in writes.iter().enumerate() {
            if fail_at == Some(i) {
                // Dropping the transaction rolls back what was applied.
                return Err(Error::Database(format!("injected failure at write {i}")));
            }
            changed.push(apply(&tx, write).map_err(db)?);
        }
        tx.commit().map_err(db)?;
        Ok(changed)
    }
}

impl EventStore for SqliteStore {
    async fn existing_events(
        &self,
        ids: &[(&str, &str)],
    ) -> Result<HashSet<(String, String)>, Error> {
        let found = self.query(sql::EXISTING_EVENTS, [rows::ids_json(ids)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(found.into_iter().collect())
    }

    async fn count_events(&self, project: &str, from_ms: i64, to_ms: i64) -> Result<Counts, Error> {
        let counts = self.query(sql::COUNT_EVENTS, params![project, from_ms, to_ms], |r| {
            Ok(Counts {
                events: r.get::<_, i64>(0)? as u64,
                errors: r.get::<_, i64>(1)? as u64,
            })
        })?;
        Ok(counts.into_iter().next().unwrap_or_default())
    }

    async fn events_between(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Event>, Error> {
        let (after_ts, after_id) = after.unwrap_or(crate::BEFORE_ALL);
        let raw = self.query(
            sql::EVENTS_BETWEEN,
            params![project, from_ms, to_ms, after_ts, after_id, limit],
            |r| {
                Ok(RawRow {
                    project: r.get(0)?,
                    event_id: r.get(1)?,
                    timestamp: r.get(2)?,
                    name: r.get(3)?,
                    method: r.get(4)?,
                    route: r.get(5)?,
                    status: r.get(6)?,
                    duration_us: r.get(7)?,
                    error_class: r.get(8)?,
                    error_message: r.get(9)?,
                    instance: r.get(10)?,
                    user: r.get(11)?,
                    session: r.get(12)?,
                    version: r.get(13)?,
                    colo: r.get(14)?,
                    country: r.get(15)?,
                    source: r.get(16)?,
                    medium: r.get(17)?,
                    campaign: r.get(18)?,
                    item: r.get(19)?,
                    variant: r.get(20)?,
                    bytes: r.get::<_, Option<i64>>(21)?.map(|b| b as u64),
                    metadata: r.get(22)?,
                })
            },
        )?;
        raw.into_iter().map(RawRow::into_event).collect()
    }

    async fn session_marks(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Mark>, Error> {
        self.query(sql::SESSION_MARKS, params![project, from_ms, to_ms], |r| {
            Ok(Mark {
                user: r.get(0)?,
                timestamp: r.get(1)?,
                event_id: r.get(2)?,
                is_start: r.get(3)?,
            })
        })
    }

    async fn projects(&self) -> Result<Vec<ProjectSettings>, Error> {
        self.query(sql::PROJECTS, [], |r| {
            Ok(ProjectSettings {
                slug: r.get(0)?,
                retention_days: r.get(1)?,
            })
        })
    }

    async fn dropped_counts(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeMap<String, u64>, Error> {
        let rows = self.query(sql::COUNT_DROPPED, params![project, from_ms, to_ms], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.into_iter().collect())
    }
}

impl QueryStore for SqliteStore {
    async fn error_messages(&self, project: &str) -> Result<BTreeMap<String, ErrorMessage>, Error> {
        let rows = self.query(sql::ERROR_MESSAGES, [project], |r| {
            let message = ErrorMessage {
                timestamp: r.get(1)?,
                message: r.get(2)?,
            };
            Ok((r.get::<_, String>(0)?, message))
        })?;
        Ok(rows.into_iter().collect())
    }

    async fn funnel_hits(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        names: &[String],
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Hit>, Error> {
        let (after_ts, after_id) = after.unwrap_or(crate::BEFORE_ALL);
        let names = serde_json::to_string(names).map_err(|e| Error::Decode(e.to_string()))?;
        self.query(
            sql::FUNNEL_HITS,
            params![project, from_ms, to_ms, after_ts, after_id, names, limit],
            |r| {
                Ok(Hit {
                    user: r.get(0)?,
                    timestamp: r.get(1)?,
                    event_id: r.get(2)?,
                    name: r.get(3)?,
                })
            },
        )
    }
}

fn project_row(r: &Row<'_>) -> rusqlite::Result<ProjectRow> {
    Ok(ProjectRow {
        slug: r.get(0)?,
        retention_days: r.get(1)?,
        allowed_origins: r.get(2)?,
        rate_limit: r.get(3)?,
        public_dashboard: r.get(4)?,
        created_at: r.get(5)?,
    })
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        id: r.get(0)?,
        project: r.get(1)?,
        kind: r.get(2)?,
        name: r.get(3)?,
        prefix: r.get(4)?,
        created_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

impl AdminStore for SqliteStore {
    async fn project(&self, slug: &str) -> Result<Option<Project>, Error> {
        let rows = self.query(sql::PROJECT_BY_SLUG, [slug], project_row)?;
        rows.into_iter().next().map(ProjectRow::decode).transpose()
    }

    async fn all_projects(&self) -> Result<Vec<Project>, Error> {
        let rows = self.query(sql::ALL_PROJECTS, [], project_row)?;
        rows.into_iter().map(ProjectRow::decode).collect()
    }

    async fn create_project(&self, project: &Project) -> Result<bool, Error> {
        let p = project;
        let n = self
            .conn
            .borrow()
            .execute(
                sql::CREATE_PROJECT,
                params![
                    p.slug,
                    p.retention_days,
                    origins_json(p),
                    p.rate_limit.as_str(),
                    p.created_at,
                    p.public_dashboard
                ],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    async fn update_project(&self, project: &Project) -> Result<bool, Error> {
        let p = project;
        let n = self
            .conn
            .borrow()
            .execute(
                sql::UPDATE_PROJECT,
                params![
                    p.slug,
                    p.retention_days,
                    origins_json(p),
                    p.rate_limit.as_str(),
                    p.public_dashboard
                ],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    async fn create_key(
        &self,
        project: &str,
        kind: KeyKind,
        key: &NewKey,
        name: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, Error> {
        let ids = self.query(
            sql::CREATE_KEY,
            params![project, kind.as_str(), key.hash, key.prefix, name, now_ms],
            |r| r.get::<_, i64>(0),
        )?;
        Ok(ids.first().map(|&id| ApiKey {
            id,
            project: project.to_owned(),
            kind,
            name: name.map(str::to_owned),
            prefix: key.prefix.clone(),
            created_at: now_ms,
            revoked_at: None,
        }))
    }

    async fn keys(&self, project: &str) -> Result<Vec<ApiKey>, Error> {
        let rows = self.query(sql::KEYS_OF_PROJECT, [project], key_row)?;
        rows.into_iter().map(KeyRow::decode).collect()
    }

    async fn revoke_key(
        &self,
        project: &str,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, Error> {
        self.conn
            .borrow()
            .execute(sql::REVOKE_KEY, params![project, id, now_ms])
            .map_err(db)?;
        Ok(self.keys(project).await?.into_iter().find(|k| k.id == id))
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, Project)>, Error> {
        let rows = self.query(sql::KEY_BY_HASH, [hash], |r| {
            Ok(GrantRow {
                id: r.get(0)?,
                project: r.get(1)?,
                kind: r.get(2)?,
                name: r.get(3)?,
                prefix: r.get(4)?,
                created_at: r.get(5)?,
                revoked_at: r.get(6)?,
                retention_days: r.get(7)?,
                allowed_origins: r.get(8)?,
                rate_limit: r.get(9)?,
                public_dashboard: r.get(10)?,
                project_created_at: r.get(11)?,
            })
        })?;
        rows.into_iter().next().map(GrantRow::decode).transpose()
    }
}

impl RollupStore for SqliteStore {
    async fn rollups_by_key(
        &self,
        period: Period,
        keys: &[&Key],
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
        let rows = self.query(
            sql::ROLLUPS_BY_KEY,
            [rows::keys_json(period, keys)],
            rollup_row,
        )?;
        rows.into_iter()
            .map(|row| {
                let (_, key, value, version) = row.decode()?;
                Ok((key, Versioned { value, version }))
            })
            .collect()
    }

    async fn rollups_between(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimension: Option<Dimension>,
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
        let rows = match dimension {
            None => self.query(
                sql::ROLLUPS_BETWEEN,
                params![project, period.name(), from_ms, to_ms],
                rollup_row,
            )?,
            Some(d) => self.query(
                sql::ROLLUPS_OF_DIMENSION,
                params![project, period.name(), from_ms, to_ms, d.name()],
                rollup_row,
            )?,
        };
        rows.into_iter()
            .map(|row| {
                row.decode()
                    .map(|(_, key, value, version)| (key, Versioned { value, version }))
            })
            .collect()
    }

    async fn dirty_starts(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeSet<i64>, Error> {
        let starts = self.query(
            sql::DIRTY_STARTS,
            params![project, period.name(), from_ms, to_ms],
            |r| r.get::<_, i64>(0),
        )?;
        Ok(starts.into_iter().collect())
    }

    async fn dirty_periods(&self, period: Period, limit: u32) -> Result<Vec<Dirty>, Error> {
        let rows = self.query(sql::DIRTY_PERIODS, params![period.name(), limit], |r| {
            Ok(DirtyRow {
                project: r.get(0)?,
                period: r.get(1)?,
                start: r.get(2)?,
                generation: r.get(3)?,
            })
        })?;
        rows.into_iter().map(DirtyRow::decode).collect()
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
        self.query(sql::LATEST_JOB_RUNS, [], |row| {
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
    }

    async fn dead_letters(&self) -> Result<u64, Error> {
        let n = self.query(sql::COUNT_DEAD_LETTERS, [], |r| r.get::<_, i64>(0))?;
        Ok(n.first().copied().unwrap_or(0) as u64)
    }

    async fn meta(&self) -> Result<Vec<(String, String, i64)>, Error> {
        self.query(sql::ALL_META, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    }
}

impl FilteredReads for SqliteStore {
    async fn rollups_matching(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimension: Dimension,
        value: ValueMatch<'_>,
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
        let (sql, value) = match value {
            ValueMatch::Exact(v) => (sql::ROLLUPS_OF_VALUE, v),
            ValueMatch::Prefix(v) => (sql::ROLLUPS_OF_VALUE_PREFIX, v),
        };
        let rows = self.query(
            sql,
            params![
                project,
                period.name(),
                from_ms,
                to_ms,
                dimension.name(),
                value
            ],
            rollup_row,
        )?;
        rows.into_iter()
            .map(|row| {
                row.decode()
                    .map(|(_, key, value, version)| (key, Versioned { value, version }))
            })
            .collect()
    }

    async fn user_event_counts(
        &self,
        project: &str,
        user_hash: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DayCount>, Error> {
        self.query(
            sql::USER_EVENT_COUNTS,
            params![project, from_ms, to_ms, user_hash],
            |r| {
                Ok(DayCount {
                    day: r.get(0)?,
                    name: r.get(1)?,
                    count: r.get::<_, i64>(2)? as u64,
                })
            },
        )
    }

    async fn user_session_marks(
        &self,
        project: &str,
        user_hash: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Mark>, Error> {
        self.query(
            sql::SESSION_MARKS_OF_USER,
            params![project, from_ms, to_ms, user_hash],
            |r| {
                Ok(Mark {
                    user: r.get(0)?,
                    timestamp: r.get(1)?,
                    event_id: r.get(2)?,
                    is_start: r.get(3)?,
                })
            },
        )
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
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match self {
            Bound::Null => ToSqlOutput::Owned(Value::Null),
            Bound::Int(n) => ToSqlOutput::Owned(Value::Integer(*n)),
            Bound::Real(x) => ToSqlOutput::Owned(Value::Real(*x)),
            Bound::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

impl alerts::Rows for SqliteStore {
    async fn rows<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        self.json_rows(sql, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::project::{ProjectInput, RateLimit, key_hash, new_key};
    use tally_core::queue::Dropped;

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
        let numbers = 1..;
        for (name, n) in listed.iter().zip(numbers) {
            assert!(
                name.starts_with(&format!("{n:04}_")),
                "{name} should be numbered {n:04}"
            );
        }
    }

    #[test]
    fn one_dimension_is_read_through_its_index() {
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
            ["SEARCH rollups USING INDEX rollups_by_dimension \
              (project=? AND period=? AND dimension=? AND start>? AND start<?)"]
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
