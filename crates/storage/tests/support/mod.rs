//! What the storage tests share: reading SQLite's plan for a statement, a batch stored
//! as the consumer stores it, events validated as ingest validates them, the session marks among events, the funnel hits
//! of events, an alert rule's stored state, an executor that counts what each
//! statement returned, and one that lets other work commit before its first batch.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use tally_core::alerts::MinuteSources;
use tally_core::alerts::{Rule, State};
use tally_core::funnel::Hit;
use tally_core::sessions::Mark;
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::alerts::AlertStore;
use tally_storage::exec::{Bound, Executor, Statement};
use tally_storage::filtered;
use tally_storage::pipeline::{self, Stored};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{Error, EventStore, QueryStore, RollupStore, Writer};

/// The steps of SQLite's plan for `sql` (`EXPLAIN QUERY PLAN`, every parameter NULL),
/// for tests that pin how a statement reads a table that only grows.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn query_plan(store: &SqliteStore, sql: &str) -> Vec<String> {
    store.with_connection(|c| {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    })
}

/// Stores `events` at `now_ms` as the consumer stores a batch while no alert rule reads
/// minute rows, for the many tests whose subject is what a stored batch reads back as.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn store_batch<S>(store: &S, events: &[Event], now_ms: i64) -> Stored
where
    S: EventStore + RollupStore + Writer,
{
    block_on(pipeline::store_events(
        store,
        events,
        now_ms,
        &MinuteSources::default(),
    ))
    .unwrap()
}

/// `raw` (an event as a client sends it, naming its project and id) validated at
/// `now_ms` under the tests' identifier secret, as ingest validates it.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn validated(project: &str, now_ms: i64, raw: serde_json::Value) -> Event {
    let raw: RawEvent = serde_json::from_value(raw).unwrap();
    let ctx = Context {
        project,
        now_ms,
        settings: Settings::default(),
        id_secret: b"secret",
    };
    validate(raw, &ctx, &mut || unreachable!()).unwrap().event
}

/// The session marks among `events` (`play` and `stop` of a user), as the consumer
/// stores them: the user hash's first 16 hex digits, the id without dashes.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn marks(events: &[Event]) -> Vec<Mark> {
    events
        .iter()
        .filter(|e| e.user.is_some() && (e.name == "play" || e.name == "stop"))
        .map(|e| Mark {
            user: e.user.clone().unwrap_or_default()[..16].to_owned(),
            timestamp: e.timestamp,
            event_id: e.event_id.replace('-', ""),
            is_start: e.name == "play",
        })
        .collect()
}

/// The hits of `events` in `from..to` themselves: what a funnel counts, without any store.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn direct_hits(events: &[Event], from: i64, to: i64) -> Vec<Hit> {
    events
        .iter()
        .filter(|e| (from..to).contains(&e.timestamp))
        .filter_map(hit)
        .collect()
}

/// The funnel hit `event` is as the store reads it (the user hash's first 16 hex digits,
/// the id without dashes), or none for an event without a user, which no funnel counts.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn hit(event: &Event) -> Option<Hit> {
    Some(Hit {
        user: event.user.clone()?[..16].to_owned(),
        timestamp: event.timestamp,
        event_id: event.event_id.replace('-', ""),
        name: event.name.clone(),
    })
}

/// The state `store` holds for `rule`.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn state(store: &SqliteStore, rule: &Rule) -> State {
    let rules = block_on(store.alert_rules(Some(&rule.project))).unwrap();
    rules
        .iter()
        .find(|r| r.rule.id == rule.id)
        .unwrap()
        .status
        .state
}

/// An executor that counts the rows each statement returned and how often it ran: for
/// `SAMPLE_EVENTS`, which returns every row it reads (its plan is pinned below), the
/// rows read.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub struct RowsReturned<'a> {
    pub inner: &'a SqliteStore,
    pub rows: RefCell<BTreeMap<&'static str, u64>>,
    pub queries: RefCell<BTreeMap<&'static str, u64>>,
}

#[allow(dead_code)] // Each test binary uses what it needs of this module.
impl<'a> RowsReturned<'a> {
    pub fn new(inner: &'a SqliteStore) -> Self {
        Self {
            inner,
            rows: RefCell::new(BTreeMap::new()),
            queries: RefCell::new(BTreeMap::new()),
        }
    }

    /// The rows D1 would count for the sample's reads.
    pub fn sample_rows(&self) -> u64 {
        let sql = tally_core::sql::SAMPLE_EVENTS;
        self.rows.borrow()[sql] * filtered::ROWS_PER_EVENT
            + self.queries.borrow()[sql] * filtered::ROWS_PER_QUERY
    }
}

impl Executor for RowsReturned<'_> {
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        let rows: Vec<T> = self.inner.query(sql, values).await?;
        *self.rows.borrow_mut().entry(sql).or_default() += rows.len() as u64;
        *self.queries.borrow_mut().entry(sql).or_default() += 1;
        Ok(rows)
    }

    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, Error> {
        self.inner.batch(groups).await
    }
}

/// An executor that runs other work (another batch, another evaluation) once, just
/// before its first batch commits: the race between one writer's reads and its commit
/// that a store must lose without losing or doubling anything.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub struct Interrupted<'a> {
    inner: &'a SqliteStore,
    first: RefCell<Option<Box<dyn FnOnce() + 'a>>>,
}

#[allow(dead_code)] // Each test binary uses what it needs of this module.
impl<'a> Interrupted<'a> {
    pub fn new(inner: &'a SqliteStore, before_first_batch: impl FnOnce() + 'a) -> Self {
        Self {
            inner,
            first: RefCell::new(Some(Box::new(before_first_batch))),
        }
    }
}

/// Only the executor is wrapped: every store trait comes with it.
impl Executor for Interrupted<'_> {
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        self.inner.query(sql, values).await
    }

    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, Error> {
        // Taken before it runs, so the work's own writes through `inner` do not
        // re-enter it.
        let first = self.first.borrow_mut().take();
        if let Some(work) = first {
            work();
        }
        self.inner.batch(groups).await
    }
}

/// The funnel of `steps` over project `site`'s events in `range`, as the read API asks
/// for it (`tally_storage::funnels::funnel`).
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn funnel_of<S: RollupStore + QueryStore>(
    store: &S,
    range: (i64, i64),
    steps: &[String],
    window_ms: i64,
    filters: &tally_core::filter::Filters,
    row_budget: u64,
) -> tally_storage::funnels::Funnel {
    block_on(tally_storage::funnels::funnel(
        store, "site", range.0, range.1, steps, window_ms, filters, row_budget,
    ))
    .unwrap()
}
