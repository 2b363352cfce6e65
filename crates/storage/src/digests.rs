//! Storage of digests and their runs, and the digest work of the aggregator over
//! [`Executor`]: [`compose_due`] (the minutely cron: every enabled digest whose period is
//! due and unrecorded gets its body written and its run recorded, once, within a query
//! budget), [`handle_digest`] (the `alerts` queue's consumer delivers a run, signed as
//! alert webhooks are) and [`give_up`].
//!
//! A run's primary key is its project, cadence and period start
//! ([`tally_core::digest::Digest::run_id`]), inserted with `ON CONFLICT DO NOTHING`: two
//! overlapping crons may both compose a period's body, but only the one whose insert
//! changed a row queues it, so a period is sent once.

use std::collections::BTreeMap;

use serde::Deserialize;
use tally_core::alerts::sign;
use tally_core::digest::{
    Cadence, Digest, Due, Firing, Headline, MAX_ALERTS_LISTED, MOVERS_PER_KIND, MoverKind,
    Schedule, Summary, movers, payload,
};
use tally_core::rollup::Dimension;
use tally_core::sql;

use crate::alerts::{Delivering, Handled, IdRow, Sent};
use crate::exec::{Counted, Executor, Statement};
use crate::{Error, RollupStore, read};

/// D1 queries the digests of one cron run may use. With the alert rules' 300 and the
/// day rolls, the minutely run stays well under D1's 1,000 queries per invocation.
pub const DIGEST_QUERY_BUDGET: u32 = 250;

/// The most queries one digest can take: 8 covering reads (the headline and three
/// movers' dimensions, each for the period and the one before), each at most a dirty-day
/// read, a day read and one hour read per run of dirty days (at most 4 in a week), then
/// the period's alerts and the insert. A run starts a digest only while this much budget
/// is left. A day not rolled yet takes 26 (storage's `tests/digests.rs` counts them).
pub const MAX_QUERIES_PER_DIGEST: u32 = 8 * 6 + 2;

/// Alerts read per digest for its counts (it lists [`MAX_ALERTS_LISTED`]).
const ALERTS_COUNTED: u32 = 500;

/// A run recorded but not queued this long ago is queued again by the next cron run.
pub const REQUEUE_AFTER_MS: i64 = 60_000;

/// A digest's run: one period's body and how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DigestRun {
    pub id: String,
    pub project: String,
    pub period: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The exact webhook body.
    pub payload: String,
    pub created_at: i64,
    pub queued_at: Option<i64>,
    /// `pending`, `delivered` or `failed`.
    pub delivery: String,
    pub attempts: u32,
    pub last_attempt_at: Option<i64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

/// A `digests` row, with the start of its latest run when read for the cron.
#[derive(Debug, Deserialize)]
struct DigestRow {
    project: String,
    period: String,
    hour_utc: u8,
    weekday: Option<u8>,
    webhook_url: String,
    secret: String,
    enabled: i64,
    created_at: i64,
    updated_at: i64,
    #[serde(default)]
    last_start: Option<i64>,
}

impl DigestRow {
    fn decode(self) -> Result<(Digest, Option<i64>), Error> {
        let cadence = Cadence::parse(&self.period).ok_or_else(|| {
            Error::Decode(format!(
                "digest of {}: unknown period {:?}",
                self.project, self.period
            ))
        })?;
        Ok((
            Digest {
                project: self.project,
                schedule: Schedule {
                    cadence,
                    hour_utc: self.hour_utc,
                    weekday: self.weekday,
                },
                webhook_url: self.webhook_url,
                secret: self.secret,
                enabled: self.enabled != 0,
                created_at: self.created_at,
                updated_at: self.updated_at,
            },
            self.last_start,
        ))
    }
}

/// The digest of `project`, if it has one.
///
/// # Errors
///
/// [`Error::Database`] or [`Error::Decode`].
pub async fn digest<S: Executor>(store: &S, project: &str) -> Result<Option<Digest>, Error> {
    let rows: Vec<DigestRow> = store
        .query(sql::DIGEST_OF_PROJECT, vec![project.into()])
        .await?;
    rows.into_iter()
        .next()
        .map(|row| row.decode().map(|(d, _)| d))
        .transpose()
}

/// Creates or replaces the digest of `digest.project`.
///
/// # Errors
///
/// [`Error::Database`].
pub async fn put<S: Executor>(store: &S, digest: &Digest) -> Result<(), Error> {
    let values = vec![
        digest.project.as_str().into(),
        digest.schedule.cadence.name().into(),
        i64::from(digest.schedule.hour_utc).into(),
        digest.schedule.weekday.map(i64::from).into(),
        digest.webhook_url.as_str().into(),
        digest.secret.as_str().into(),
        i64::from(digest.enabled).into(),
        digest.created_at.into(),
        digest.updated_at.into(),
    ];
    store
        .batch(vec![vec![Statement::new(sql::PUT_DIGEST, values)]])
        .await
        .map(drop)
}

/// Deletes the digest of `project`; `false` when it had none.
///
/// # Errors
///
/// [`Error::Database`].
pub async fn delete<S: Executor>(store: &S, project: &str) -> Result<bool, Error> {
    let changed = store
        .batch(vec![vec![Statement::new(
            sql::DELETE_DIGEST,
            vec![project.into()],
        )]])
        .await?;
    Ok(changed.first() == Some(&1))
}

/// The latest run of `project`'s digest, if any.
///
/// # Errors
///
/// [`Error::Database`] or [`Error::Decode`].
pub async fn last_run<S: Executor>(store: &S, project: &str) -> Result<Option<DigestRun>, Error> {
    let rows: Vec<DigestRun> = store
        .query(sql::LAST_DIGEST_RUN, vec![project.into()])
        .await?;
    Ok(rows.into_iter().next())
}

/// What one cron run did with digests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Composed {
    /// Enabled digests.
    pub digests: usize,
    /// Runs recorded now.
    pub recorded: usize,
    /// Runs another (overlapping) cron run had recorded first.
    pub raced: usize,
    /// Due digests left to the next run by the budget.
    pub deferred: usize,
    /// D1 queries used.
    pub queries: u32,
    /// The runs to queue for delivery: those recorded now, and those recorded earlier
    /// that never reached the queue.
    pub to_queue: Vec<String>,
}

/// Composes and records every due digest at `now_ms` within `budget` D1 queries,
/// in project order; what the budget leaves is due again in the next run.
///
/// # Errors
///
/// The store's error; runs recorded before it stay recorded (and are queued by a later
/// run).
pub async fn compose_due<S: Executor + RollupStore>(
    store: &S,
    now_ms: i64,
    budget: u32,
) -> Result<Composed, Error> {
    let counted = Counted::new(store);
    let mut out = Composed::default();
    let rows: Vec<DigestRow> = counted.query(sql::ENABLED_DIGESTS, vec![]).await?;
    let unqueued: Vec<IdRow> = counted
        .query(
            sql::UNQUEUED_DIGEST_RUNS,
            vec![(now_ms - REQUEUE_AFTER_MS).into(), 100i64.into()],
        )
        .await?;
    out.to_queue.extend(unqueued.into_iter().map(|r| r.id));
    // Where every digest's project lives, in one read when the store is a router,
    // rather than one a project (counted by `counted` like any query).
    let slugs: Vec<&str> = rows.iter().map(|row| row.project.as_str()).collect();
    counted.expect_projects(&slugs).await?;
    out.queries = counted.take_queries();
    out.digests = rows.len();
    for row in rows {
        let (digest, last_start) = row.decode()?;
        let due = digest.schedule.due(now_ms);
        if last_start.is_some_and(|start| start >= due.start_ms) {
            continue;
        }
        if out.queries + MAX_QUERIES_PER_DIGEST > budget {
            out.deferred += 1;
            continue;
        }
        let summary = summarize(&counted, &digest.project, &due).await?;
        let body = payload(&digest, &due, &summary);
        let id = digest.run_id(due.start_ms);
        let changed = record(&counted, &digest, &due, &id, &body, now_ms).await?;
        out.queries += counted.take_queries();
        if changed {
            out.recorded += 1;
            out.to_queue.push(id);
        } else {
            out.raced += 1;
        }
    }
    Ok(out)
}

async fn record<S: Executor>(
    store: &S,
    digest: &Digest,
    due: &Due,
    id: &str,
    body: &str,
    now_ms: i64,
) -> Result<bool, Error> {
    let values = vec![
        id.into(),
        digest.project.as_str().into(),
        digest.schedule.cadence.name().into(),
        due.start_ms.into(),
        due.end_ms.into(),
        body.into(),
        now_ms.into(),
    ];
    let changed = store
        .batch(vec![vec![Statement::new(sql::INSERT_DIGEST_RUN, values)]])
        .await?;
    Ok(changed.first() == Some(&1))
}

/// An `alerts` row as a digest lists it.
#[derive(Debug, Deserialize)]
struct FiringRow {
    id: String,
    rule_id: String,
    rule_name: Option<String>,
    kind: String,
    at: i64,
    value: Option<f64>,
}

/// The counts of each value of `dimension` over `[from, to)`.
async fn counts<S: RollupStore>(
    store: &S,
    project: &str,
    (from, to): (i64, i64),
    dimension: Dimension,
) -> Result<BTreeMap<String, u64>, Error> {
    let merged = read::merged(store, project, from, to, Some(dimension)).await?;
    Ok(merged
        .into_iter()
        .filter(|((d, _), _)| *d == dimension)
        .map(|((_, value), rollup)| (value, rollup.count))
        .collect())
}

async fn headline<S: RollupStore>(
    store: &S,
    project: &str,
    (from, to): (i64, i64),
) -> Result<Headline, Error> {
    let merged = read::merged(store, project, from, to, Some(Dimension::All)).await?;
    Ok(Headline::of(
        &merged.into_values().next().unwrap_or_default(),
    ))
}

/// The numbers of `project`'s digest for `due`: the same reads as the query API's
/// overview and breakdowns, for the period and the one before it, and the period's
/// alerts.
///
/// # Errors
///
/// The store's error.
pub async fn summarize<S: Executor + RollupStore>(
    store: &S,
    project: &str,
    due: &Due,
) -> Result<Summary, Error> {
    let now = (due.start_ms, due.end_ms);
    let before = due.previous();
    let mut kinds = Vec::new();
    for kind in MoverKind::ALL {
        let dimension = match kind {
            MoverKind::Source => Dimension::Source,
            MoverKind::Route => Dimension::Route,
            MoverKind::ErrorClass => Dimension::ErrorClass,
        };
        let current = counts(store, project, now, dimension).await?;
        let previous = counts(store, project, before, dimension).await?;
        kinds.push((kind, movers(&current, &previous, MOVERS_PER_KIND)));
    }
    let values = vec![
        project.into(),
        due.start_ms.into(),
        i64::from(ALERTS_COUNTED).into(),
        due.end_ms.into(),
    ];
    let rows: Vec<FiringRow> = store.query(sql::ALERTS_OF_PROJECT, values).await?;
    let fired = rows.iter().filter(|r| r.kind != "resolved").count() as u64;
    let resolved = rows.len() as u64 - fired;
    let alerts = rows
        .into_iter()
        .take(MAX_ALERTS_LISTED as usize)
        .map(|r| Firing {
            alert_id: r.id,
            rule_id: r.rule_id,
            rule_name: r.rule_name,
            kind: r.kind,
            at_ms: r.at,
            value: r.value,
        })
        .collect();
    Ok(Summary {
        headline: headline(store, project, now).await?,
        previous: headline(store, project, before).await?,
        movers: kinds,
        alerts,
        fired,
        resolved,
    })
}

/// Notes that runs were queued at `now_ms`.
///
/// # Errors
///
/// [`Error::Database`].
pub async fn queued<S: Executor>(store: &S, ids: &[String], now_ms: i64) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids = serde_json::Value::from(ids.to_vec()).to_string();
    store
        .batch(vec![vec![Statement::new(
            sql::DIGEST_RUNS_QUEUED,
            vec![ids.as_str().into(), now_ms.into()],
        )]])
        .await
        .map(drop)
}

/// Delivers run `id` at `now_ms` unless it was delivered: the stored body, signed with
/// the digest's current secret exactly as alert webhooks are (`Tally-Signature`), sent
/// by `send`; records the attempt and its error for the admin API.
///
/// # Errors
///
/// The store's error (the message should be retried).
pub async fn handle_digest<S, F, Fut>(
    store: &S,
    id: &str,
    now_ms: i64,
    send: F,
) -> Result<Handled, Error>
where
    S: Executor,
    F: FnOnce(Delivering) -> Fut,
    Fut: Future<Output = Sent>,
{
    let runs: Vec<DigestRun> = store.query(sql::DIGEST_RUN, vec![id.into()]).await?;
    let Some(run) = runs.into_iter().next() else {
        return Ok(Handled::Unknown);
    };
    if run.delivery != "pending" {
        return Ok(Handled::Done);
    }
    let Some(digest) = digest(store, &run.project).await? else {
        // The digest was deleted since: nothing to deliver to.
        attempted(
            store,
            &run,
            now_ms,
            None,
            "the digest was deleted",
            "failed",
        )
        .await?;
        return Ok(Handled::Done);
    };
    let attempt = run.attempts + 1;
    let sent = send(Delivering {
        signature: sign(&digest.secret, now_ms.div_euclid(1000), &run.payload),
        url: digest.webhook_url,
        body: run.payload.clone(),
        id: run.id.clone(),
        id_header: DIGEST_ID_HEADER,
        attempt,
    })
    .await;
    let ok = sent.status.is_some_and(|s| (200..300).contains(&s));
    let error = sent
        .error
        .or_else(|| (!ok).then(|| format!("HTTP {}", sent.status.unwrap_or_default())));
    let run = DigestRun {
        attempts: attempt - 1,
        ..run
    };
    let delivery = if ok { "delivered" } else { "pending" };
    attempted(
        store,
        &run,
        now_ms,
        sent.status,
        error.as_deref().unwrap_or(""),
        delivery,
    )
    .await?;
    Ok(Handled::after_attempt(ok, attempt))
}

/// The header that carries a digest run's id, for the receiver to drop duplicates.
pub const DIGEST_ID_HEADER: &str = "tally-digest-id";

async fn attempted<S: Executor>(
    store: &S,
    run: &DigestRun,
    now_ms: i64,
    status: Option<u16>,
    error: &str,
    delivery: &str,
) -> Result<(), Error> {
    let values = vec![
        run.id.as_str().into(),
        i64::from(run.attempts + 1).into(),
        now_ms.into(),
        status.map(i64::from).into(),
        (!error.is_empty()).then_some(error).into(),
        delivery.into(),
    ];
    store
        .batch(vec![vec![Statement::new(
            sql::DIGEST_RUN_ATTEMPTED,
            values,
        )]])
        .await
        .map(drop)
}

/// Marks run `id`, whose message exhausted its retries, failed.
///
/// # Errors
///
/// [`Error::Database`].
pub async fn give_up<S: Executor>(store: &S, id: &str) -> Result<(), Error> {
    store
        .batch(vec![vec![Statement::new(
            sql::DIGEST_RUN_FAILED,
            vec![id.into()],
        )]])
        .await
        .map(drop)
}
