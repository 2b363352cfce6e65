//! The stores over Cloudflare D1, for the workers.
//!
//! Every D1 call's result carries what D1 counted (`meta.rows_read`, `rows_written`);
//! a [`D1Store`] adds them up in its [`Meter`], which stores made for one request can
//! share, so a worker can say what a whole request cost.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tally_core::funnel::Hit;
use tally_core::rollup::{Dimension, Key, Period, Rollup};
use tally_core::sessions::Mark;
use tally_core::{Event, sql};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result};

use tally_core::project::{ApiKey, KeyKind, NewKey, Project};

use crate::alerts::{self, Bound};
use crate::rows::{
    self, DirtyRow, GrantRow, KeyRow, ProjectRow, RawRow, RollupParams, RollupRow, origins_json,
};
use crate::{
    AdminStore, Counts, DayCount, Dirty, Error, ErrorMessage, EventStore, FilteredReads, JobLog,
    JobRun, MAX_INSERT_JSON_BYTES, ProjectSettings, QueryStore, RollupStore, ValueMatch, Versioned,
    Write, Writer, event_chunks,
};

/// Tally's D1 database.
pub struct D1Store {
    db: D1Database,
    meter: Meter,
}

/// What D1 reported for a set of calls: the rows it read and wrote (as D1 bills them,
/// index entries included) and how many calls answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rows {
    pub read: u64,
    pub written: u64,
    /// D1 calls counted: one per statement run alone, one per statement of a batch.
    pub calls: u64,
}

/// The running sum of [`Rows`] over every D1 call of the stores that share it. Clones
/// share one sum (Workers are single-threaded, so a `Cell` suffices); give each request
/// its own meter, since one isolate serves concurrent requests.
#[derive(Debug, Clone, Default)]
pub struct Meter(Rc<Cell<Rows>>);

impl Meter {
    /// A meter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sum so far.
    pub fn rows(&self) -> Rows {
        self.0.get()
    }

    /// Adds what one D1 result reported; a result without `meta` adds a call only.
    fn add(&self, result: &D1Result) {
        let meta = result.meta().ok().flatten();
        let mut rows = self.0.get();
        rows.calls += 1;
        if let Some(meta) = meta {
            rows.read += meta.rows_read.unwrap_or(0) as u64;
            rows.written += meta.rows_written.unwrap_or(0) as u64;
        }
        self.0.set(rows);
    }
}

impl std::fmt::Debug for D1Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("D1Store")
            .field("meter", &self.meter.rows())
            .finish_non_exhaustive()
    }
}

/// Attempts at a statement the database reports busy.
const BUSY_ATTEMPTS: u32 = 6;

/// Runs a D1 call again while the database reports itself busy: such a call applied
/// nothing, so repeating it is safe. Hosted D1 serializes writes and rarely says so; the
/// local emulation, with one SQLite file shared by three worker processes, often does.
async fn busy_retry<T, F, Fut>(mut op: F) -> worker::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = worker::Result<T>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < BUSY_ATTEMPTS && is_busy(&e) => {
                worker::Delay::from(Duration::from_millis(10 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn is_busy(e: &worker::Error) -> bool {
    let text = e.to_string();
    text.contains("SQLITE_BUSY") || text.contains("database is locked")
}

fn db(e: worker::Error) -> Error {
    Error::from_database(e.to_string())
}

/// Text as a bound value.
fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

/// An integer as a bound value: D1 takes numbers as f64, exact up to 2^53, which every
/// Tally integer (milliseconds, counts, versions) stays below.
fn int(n: i64) -> JsValue {
    JsValue::from_f64(n as f64)
}

/// Parameters as bound values.
fn bound(values: Vec<Bound>) -> Vec<JsValue> {
    values
        .into_iter()
        .map(|v| match v {
            Bound::Null => JsValue::NULL,
            Bound::Int(n) => int(n),
            Bound::Real(x) => JsValue::from_f64(x),
            Bound::Text(t) => JsValue::from_str(&t),
        })
        .collect()
}

impl D1Store {
    /// Wraps a D1 binding, with a meter of its own.
    pub fn new(db: D1Database) -> Self {
        Self::metered(db, Meter::new())
    }

    /// Wraps a D1 binding, adding what its calls read and write to `meter`.
    pub fn metered(db: D1Database, meter: Meter) -> Self {
        Self { db, meter }
    }

    /// What this store's calls (and those of every store sharing its meter) read and
    /// wrote so far.
    pub fn rows(&self) -> Rows {
        self.meter.rows()
    }

    fn statement(&self, sql: &str, values: &[JsValue]) -> Result<D1PreparedStatement, Error> {
        self.db.prepare(sql).bind(values).map_err(db)
    }

    async fn all<T: DeserializeOwned>(
        &self,
        sql: &str,
        values: &[JsValue],
    ) -> Result<Vec<T>, Error> {
        let statement = self.statement(sql, values)?;
        let result = busy_retry(|| statement.all()).await.map_err(db)?;
        self.meter.add(&result);
        result.results().map_err(|e| Error::Decode(e.to_string()))
    }

    /// Runs one statement and returns the rows it changed.
    async fn changes(&self, sql: &str, values: &[JsValue]) -> Result<u64, Error> {
        let statement = self.statement(sql, values)?;
        let result = busy_retry(|| statement.run()).await.map_err(db)?;
        self.meter.add(&result);
        let meta = result.meta().map_err(db)?;
        Ok(meta.and_then(|m| m.changes).unwrap_or(0) as u64)
    }

    /// The statements of one write, in order.
    fn statements(&self, write: &Write<'_>) -> Result<Vec<D1PreparedStatement>, Error> {
        let rollup = |sql: &str, p: &RollupParams<'_>, version: Option<i64>| {
            let mut values = vec![
                text(p.project),
                text(p.period),
                int(p.start),
                text(p.dimension),
                text(p.value),
                int(p.count),
                int(p.errors),
                int(p.bytes),
                int(p.duration_sum_us),
                text(&p.durations),
                text(&p.users),
                text(&p.instances),
            ];
            values.extend(version.map(int));
            self.statement(sql, &values)
        };
        Ok(match write {
            Write::InsertEvents(events) => event_chunks(events)
                .iter()
                .map(|chunk| self.statement(sql::INSERT_EVENTS, &[text(chunk)]))
                .collect::<Result<_, _>>()?,
            Write::EnsureProject { slug, now_ms } => {
                vec![self.statement(sql::ENSURE_PROJECT, &[text(slug), int(*now_ms)])?]
            }
            Write::InsertDropped(dropped) => {
                tally_core::json::chunks(dropped, MAX_INSERT_JSON_BYTES, "[", "]")
                    .iter()
                    .map(|chunk| self.statement(sql::INSERT_DROPPED, &[text(chunk)]))
                    .collect::<Result<_, _>>()?
            }
            Write::InsertSessionEvents(events) => event_chunks(events)
                .iter()
                .map(|chunk| self.statement(sql::INSERT_SESSION_EVENTS, &[text(chunk)]))
                .collect::<Result<_, _>>()?,
            Write::KeepErrorMessages(events) => event_chunks(events)
                .iter()
                .map(|chunk| self.statement(sql::KEEP_ERROR_MESSAGES, &[text(chunk)]))
                .collect::<Result<_, _>>()?,
            Write::InsertRollup { period, key, row } => {
                vec![rollup(
                    sql::INSERT_ROLLUP,
                    &RollupParams::new(*period, key, row),
                    None,
                )?]
            }
            Write::UpdateRollup {
                period,
                key,
                row,
                read_version,
            } => vec![rollup(
                sql::UPDATE_ROLLUP,
                &RollupParams::new(*period, key, row),
                Some(read_version + 1),
            )?],
            Write::PutRollup { period, key, row } => {
                vec![rollup(
                    sql::PUT_ROLLUP,
                    &RollupParams::new(*period, key, row),
                    None,
                )?]
            }
            Write::DeleteStaleRollups {
                project,
                period,
                start,
                keep,
            } => vec![self.statement(
                sql::DELETE_STALE_ROLLUPS,
                &[
                    text(project),
                    text(period.name()),
                    int(*start),
                    text(&rows::keep_json(keep)),
                ],
            )?],
            Write::MarkDirty {
                project,
                period,
                start,
            } => vec![self.statement(
                sql::MARK_DIRTY,
                &[text(project), text(period.name()), int(*start)],
            )?],
            Write::ClearDirty(d) => vec![self.statement(
                sql::CLEAR_DIRTY,
                &[
                    text(&d.project),
                    text(d.period.name()),
                    int(d.start),
                    int(d.generation),
                ],
            )?],
            Write::PurgeRaw {
                project,
                before_ms,
                limit,
            } => {
                let values = [text(project), int(*before_ms), int(i64::from(*limit))];
                vec![
                    self.statement(sql::PURGE_RAW_EVENTS, &values)?,
                    self.statement(sql::PURGE_SESSION_EVENTS, &values)?,
                    self.statement(sql::PURGE_DROPPED, &values)?,
                    self.statement(sql::PURGE_ERROR_MESSAGES, &values)?,
                    self.statement(sql::PURGE_ALERT_ATTEMPTS, &values)?,
                    self.statement(sql::PURGE_ALERTS, &values)?,
                ]
            }
            Write::PurgeJobRuns { before_ms, limit } => vec![self.statement(
                sql::PURGE_JOB_RUNS,
                &[int(*before_ms), int(i64::from(*limit))],
            )?],
            Write::DeadLetter {
                message_id,
                queue,
                body,
                sent_at_ms,
                now_ms,
            } => vec![self.statement(
                sql::INSERT_DEAD_LETTER,
                &[
                    text(message_id),
                    text(queue),
                    text(body),
                    int(*sent_at_ms),
                    int(*now_ms),
                ],
            )?],
            Write::PutMeta { key, value, now_ms } => {
                vec![self.statement(sql::PUT_META, &[text(key), text(value), int(*now_ms)])?]
            }
            Write::Alert(write) => write
                .statements()
                .into_iter()
                .map(|(sql, values)| self.statement(sql, &bound(values)))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl Writer for D1Store {
    async fn commit(&self, writes: &[Write<'_>]) -> Result<Vec<u64>, Error> {
        let mut statements = Vec::new();
        let mut owners = Vec::new();
        for (i, write) in writes.iter().enumerate() {
            for statement in self.statements(write)? {
                statements.push(statement);
                owners.push(i);
            }
        }
        let mut changed = vec![0u64; writes.len()];
        if statements.is_empty() {
            return Ok(changed);
        }
        // One `batch` is one transaction: every statement lands, or none.
        let results = busy_retry(|| self.db.batch(statements.clone()))
            .await
            .map_err(db)?;
        results.iter().for_each(|r| self.meter.add(r));
        for (result, owner) in results.iter().zip(owners) {
            if let Some(error) = result.error() {
                return Err(Error::from_database(error));
            }
            changed[owner] += result
                .meta()
                .map_err(db)?
                .and_then(|m| m.changes)
                .unwrap_or(0) as u64;
        }
        Ok(changed)
    }
}

#[derive(Deserialize)]
struct IdPair {
    project: String,
    event_id: String,
}

#[derive(Deserialize)]
struct SettingsRow {
    slug: String,
    retention_days: u32,
}

#[derive(Deserialize)]
struct MetaRow {
    key: String,
    value: String,
    updated_at: i64,
}

impl EventStore for D1Store {
    async fn existing_events(
        &self,
        ids: &[(&str, &str)],
    ) -> Result<HashSet<(String, String)>, Error> {
        let found: Vec<IdPair> = self
            .all(sql::EXISTING_EVENTS, &[text(&rows::ids_json(ids))])
            .await?;
        Ok(found.into_iter().map(|p| (p.project, p.event_id)).collect())
    }

    async fn count_events(&self, project: &str, from_ms: i64, to_ms: i64) -> Result<Counts, Error> {
        // `all`, not `first`: only a whole result carries the rows D1 read.
        let counts: Vec<Counts> = self
            .all(
                sql::COUNT_EVENTS,
                &[text(project), int(from_ms), int(to_ms)],
            )
            .await?;
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
        let raw: Vec<RawRow> = self
            .all(
                sql::EVENTS_BETWEEN,
                &[
                    text(project),
                    int(from_ms),
                    int(to_ms),
                    int(after_ts),
                    text(after_id),
                    int(i64::from(limit)),
                ],
            )
            .await?;
        raw.into_iter().map(RawRow::into_event).collect()
    }

    async fn session_marks(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Mark>, Error> {
        let rows: Vec<MarkRow> = self
            .all(
                sql::SESSION_MARKS,
                &[text(project), int(from_ms), int(to_ms)],
            )
            .await?;
        Ok(rows.into_iter().map(MarkRow::into_mark).collect())
    }

    async fn dropped_counts(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeMap<String, u64>, Error> {
        #[derive(Deserialize)]
        struct Row {
            reason: String,
            n: u64,
        }
        let rows: Vec<Row> = self
            .all(
                sql::COUNT_DROPPED,
                &[text(project), int(from_ms), int(to_ms)],
            )
            .await?;
        Ok(rows.into_iter().map(|r| (r.reason, r.n)).collect())
    }

    async fn projects(&self) -> Result<Vec<ProjectSettings>, Error> {
        let rows: Vec<SettingsRow> = self.all(sql::PROJECTS, &[]).await?;
        Ok(rows
            .into_iter()
            .map(|r| ProjectSettings {
                slug: r.slug,
                retention_days: r.retention_days,
            })
            .collect())
    }
}

impl QueryStore for D1Store {
    async fn error_messages(&self, project: &str) -> Result<BTreeMap<String, ErrorMessage>, Error> {
        #[derive(Deserialize)]
        struct Row {
            error_class: String,
            timestamp: i64,
            message: String,
        }
        let rows: Vec<Row> = self.all(sql::ERROR_MESSAGES, &[text(project)]).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let message = ErrorMessage {
                    timestamp: r.timestamp,
                    message: r.message,
                };
                (r.error_class, message)
            })
            .collect())
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
        #[derive(Deserialize)]
        struct Row {
            user: String,
            timestamp: i64,
            event_id: String,
            name: String,
        }
        let (after_ts, after_id) = after.unwrap_or(crate::BEFORE_ALL);
        let names = serde_json::to_string(names).map_err(|e| Error::Decode(e.to_string()))?;
        let rows: Vec<Row> = self
            .all(
                sql::FUNNEL_HITS,
                &[
                    text(project),
                    int(from_ms),
                    int(to_ms),
                    int(after_ts),
                    text(after_id),
                    text(&names),
                    int(i64::from(limit)),
                ],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Hit {
                user: r.user,
                timestamp: r.timestamp,
                event_id: r.event_id,
                name: r.name,
            })
            .collect())
    }
}

/// A nullable text value.
fn opt_text(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, text)
}

impl AdminStore for D1Store {
    async fn project(&self, slug: &str) -> Result<Option<Project>, Error> {
        let rows: Vec<ProjectRow> = self.all(sql::PROJECT_BY_SLUG, &[text(slug)]).await?;
        rows.into_iter().next().map(ProjectRow::decode).transpose()
    }

    async fn all_projects(&self) -> Result<Vec<Project>, Error> {
        let rows: Vec<ProjectRow> = self.all(sql::ALL_PROJECTS, &[]).await?;
        rows.into_iter().map(ProjectRow::decode).collect()
    }

    async fn create_project(&self, p: &Project) -> Result<bool, Error> {
        let values = [
            text(&p.slug),
            int(i64::from(p.retention_days)),
            text(&origins_json(p)),
            text(p.rate_limit.as_str()),
            int(p.created_at),
            int(i64::from(p.public_dashboard)),
        ];
        Ok(self.changes(sql::CREATE_PROJECT, &values).await? == 1)
    }

    async fn update_project(&self, p: &Project) -> Result<bool, Error> {
        let values = [
            text(&p.slug),
            int(i64::from(p.retention_days)),
            text(&origins_json(p)),
            text(p.rate_limit.as_str()),
            int(i64::from(p.public_dashboard)),
        ];
        Ok(self.changes(sql::UPDATE_PROJECT, &values).await? == 1)
    }

    async fn create_key(
        &self,
        project: &str,
        kind: KeyKind,
        key: &NewKey,
        name: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, Error> {
        #[derive(Deserialize)]
        struct Id {
            id: i64,
        }
        let values = [
            text(project),
            text(kind.as_str()),
            text(&key.hash),
            text(&key.prefix),
            opt_text(name),
            int(now_ms),
        ];
        let ids: Vec<Id> = self.all(sql::CREATE_KEY, &values).await?;
        Ok(ids.first().map(|row| ApiKey {
            id: row.id,
            project: project.to_owned(),
            kind,
            name: name.map(str::to_owned),
            prefix: key.prefix.clone(),
            created_at: now_ms,
            revoked_at: None,
        }))
    }

    async fn keys(&self, project: &str) -> Result<Vec<ApiKey>, Error> {
        let rows: Vec<KeyRow> = self.all(sql::KEYS_OF_PROJECT, &[text(project)]).await?;
        rows.into_iter().map(KeyRow::decode).collect()
    }

    async fn revoke_key(
        &self,
        project: &str,
        id: i64,
        now_ms: i64,
    ) -> Result<Option<ApiKey>, Error> {
        self.changes(sql::REVOKE_KEY, &[text(project), int(id), int(now_ms)])
            .await?;
        Ok(self.keys(project).await?.into_iter().find(|k| k.id == id))
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, Project)>, Error> {
        let rows: Vec<GrantRow> = self.all(sql::KEY_BY_HASH, &[text(hash)]).await?;
        rows.into_iter().next().map(GrantRow::decode).transpose()
    }
}

impl RollupStore for D1Store {
    async fn rollups_by_key(
        &self,
        period: Period,
        keys: &[&Key],
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
        let rows: Vec<RollupRow> = self
            .all(sql::ROLLUPS_BY_KEY, &[text(&rows::keys_json(period, keys))])
            .await?;
        versioned(rows)
    }

    async fn rollups_between(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
        dimension: Option<Dimension>,
    ) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
        let mut values = vec![text(project), text(period.name()), int(from_ms), int(to_ms)];
        let sql = match dimension {
            None => sql::ROLLUPS_BETWEEN,
            Some(d) => {
                values.push(text(d.name()));
                sql::ROLLUPS_OF_DIMENSION
            }
        };
        versioned(self.all(sql, &values).await?)
    }

    async fn dirty_starts(
        &self,
        project: &str,
        period: Period,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeSet<i64>, Error> {
        #[derive(Deserialize)]
        struct Start {
            start: i64,
        }
        let values = [text(project), text(period.name()), int(from_ms), int(to_ms)];
        let rows: Vec<Start> = self.all(sql::DIRTY_STARTS, &values).await?;
        Ok(rows.into_iter().map(|r| r.start).collect())
    }

    async fn dirty_periods(&self, period: Period, limit: u32) -> Result<Vec<Dirty>, Error> {
        let rows: Vec<DirtyRow> = self
            .all(
                sql::DIRTY_PERIODS,
                &[text(period.name()), int(i64::from(limit))],
            )
            .await?;
        rows.into_iter().map(DirtyRow::decode).collect()
    }
}

fn versioned(rows: Vec<RollupRow>) -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
    rows.into_iter()
        .map(|row| {
            let (_, key, value, version) = row.decode()?;
            Ok((key, Versioned { value, version }))
        })
        .collect()
}

impl JobLog for D1Store {
    async fn record_job_run(&self, run: &JobRun) -> Result<(), Error> {
        let detail = run.detail.as_deref().map_or(JsValue::NULL, text);
        self.changes(
            sql::INSERT_JOB_RUN,
            &[
                text(&run.job),
                text(&run.cron),
                int(run.scheduled_at),
                int(run.started_at),
                int(run.finished_at),
                text(&run.outcome),
                detail,
            ],
        )
        .await?;
        Ok(())
    }

    async fn latest_job_runs(&self) -> Result<Vec<JobRun>, Error> {
        self.all(sql::LATEST_JOB_RUNS, &[]).await
    }

    async fn dead_letters(&self) -> Result<u64, Error> {
        #[derive(Deserialize)]
        struct Count {
            n: u64,
        }
        let rows: Vec<Count> = self.all(sql::COUNT_DEAD_LETTERS, &[]).await?;
        Ok(rows.first().map_or(0, |c| c.n))
    }

    async fn meta(&self) -> Result<Vec<(String, String, i64)>, Error> {
        let rows: Vec<MetaRow> = self.all(sql::ALL_META, &[]).await?;
        Ok(rows
            .into_iter()
            .map(|m| (m.key, m.value, m.updated_at))
            .collect())
    }
}

/// A session mark as D1 returns it; one type for every read of marks, so the wasm
/// bundle holds one decoder.
#[derive(Deserialize)]
struct MarkRow {
    user: String,
    timestamp: i64,
    event_id: String,
    is_start: i64,
}

impl MarkRow {
    fn into_mark(self) -> Mark {
        Mark {
            user: self.user,
            timestamp: self.timestamp,
            event_id: self.event_id,
            is_start: self.is_start != 0,
        }
    }
}

impl FilteredReads for D1Store {
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
        let values = [
            text(project),
            text(period.name()),
            int(from_ms),
            int(to_ms),
            text(dimension.name()),
            text(value),
        ];
        versioned(self.all(sql, &values).await?)
    }

    async fn user_event_counts(
        &self,
        project: &str,
        user_hash: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<DayCount>, Error> {
        #[derive(Deserialize)]
        struct Row {
            day: i64,
            name: String,
            n: u64,
        }
        let values = [text(project), int(from_ms), int(to_ms), text(user_hash)];
        let rows: Vec<Row> = self.all(sql::USER_EVENT_COUNTS, &values).await?;
        Ok(rows
            .into_iter()
            .map(|r| DayCount {
                day: r.day,
                name: r.name,
                count: r.n,
            })
            .collect())
    }

    async fn user_session_marks(
        &self,
        project: &str,
        user_hash: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Mark>, Error> {
        let values = [text(project), int(from_ms), int(to_ms), text(user_hash)];
        let rows: Vec<MarkRow> = self.all(sql::SESSION_MARKS_OF_USER, &values).await?;
        Ok(rows.into_iter().map(MarkRow::into_mark).collect())
    }
}

impl alerts::Rows for D1Store {
    async fn rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        self.all(sql, &bound(values)).await
    }
}
