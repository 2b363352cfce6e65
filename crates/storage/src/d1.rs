//! The stores over Cloudflare D1, for the workers: an [`Executor`], so every domain
//! trait is D1's through `crate::sql_store`. This file holds only what is D1's own:
//! binding values (numbers as f64), retrying while the database is busy, and metering.
//!
//! Every D1 call's result carries what D1 counted (`meta.rows_read`, `rows_written`);
//! a [`D1Store`] adds them up in its [`Meter`], which stores made for one request can
//! share, so a worker can say what a whole request cost.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tally_core::sql;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result};

use crate::Error;
use crate::exec::{Bound, Executor, Statement};

/// Most data shards a deployment binds (`SHARD_0` …).
pub const MAX_SHARDS: usize = 64;

/// The D1 binding of data shard `n`: `SHARD_0`, `SHARD_1`, … (one name for every
/// worker; tidy checks the configs bind them from 0 without a gap).
pub fn shard_binding(n: usize) -> String {
    format!("SHARD_{n}")
}

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

/// An integer as a bound value: D1 takes numbers as f64, exact up to 2^53, which every
/// Tally integer (milliseconds, counts, versions) stays below.
fn int(n: i64) -> JsValue {
    JsValue::from_f64(n as f64)
}

/// Parameters as D1 binds them.
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

    fn statement(&self, sql: &str, values: Vec<Bound>) -> Result<D1PreparedStatement, Error> {
        self.db.prepare(sql).bind(&bound(values)).map_err(db)
    }
}

impl Executor for D1Store {
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        let statement = self.statement(sql, values)?;
        let result = busy_retry(|| statement.all()).await.map_err(db)?;
        self.meter.add(&result);
        result.results().map_err(|e| Error::Decode(e.to_string()))
    }

    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, Error> {
        let mut changed = vec![0u64; groups.len()];
        let mut statements = Vec::new();
        let mut owners = Vec::new();
        for (i, group) in groups.into_iter().enumerate() {
            for Statement { sql, values } in group {
                statements.push(self.statement(sql, values)?);
                owners.push(i);
            }
        }
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

    /// What D1 says the database takes after a statement that reads nothing
    /// (`meta.size_after`): D1 measures it and reports it with every result, so the
    /// size costs no row read. `None` when D1 leaves it out.
    async fn stored_bytes(&self) -> Result<Option<u64>, Error> {
        let statement = self.statement(sql::SIZE_PROBE, vec![])?;
        let result = busy_retry(|| statement.all()).await.map_err(db)?;
        self.meter.add(&result);
        Ok(result
            .meta()
            .map_err(db)?
            .and_then(|meta| meta.size_after)
            .map(|bytes| bytes as u64))
    }
}
