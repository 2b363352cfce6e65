//! The cron entry point: runs the job for the trigger and records the run.
//!
//! - every minute: evaluate alert rules and queue their changes, then roll the days
//!   whose hours changed, so day rows are a minute fresh, then pair the session days
//!   that are over (within [`SESSION_QUERIES_PER_MINUTE`]), then step the moves of
//!   projects between shards (within [`moves::MINUTELY_MOVES`]), then compose the digests
//!   whose period is due and queue them (within their own query budget);
//! - hourly: roll days and then months, pair session days, purge minute rows older than
//!   a day, and purge
//!   everything past retention within [`pipeline::HOURLY_PURGE`] (resuming where the
//!   last run stopped, so retention keeps up with any volume that budget allows), and
//!   work on requests to erase a person's data within [`erasure::HOURLY_ERASE`];
//! - daily: the same purge, then roll months.
//!
//! Every job is safe to run twice and to interrupt (see [`tally_storage::pipeline`]).

use tally_core::jobs::Job;
use tally_core::rollup::Period;
use tally_storage::d1::D1Store;
use tally_storage::shard::{OnShard, Router};
use tally_storage::{JobLog, JobRun, alerts, erasure, moves, pipeline, sessions};
use worker::{Env, ScheduleContext, ScheduledEvent, event};

use crate::{DB, alerting, now_ms};

/// Dirty days rolled per minutely run.
const DAYS_PER_MINUTE: u32 = 100;
/// Dirty periods rolled per hourly run.
const PERIODS_PER_HOUR: u32 = 2000;
/// D1 queries a minutely run may spend pairing session days: a day costs one query per
/// 5,000 marks of its window and a commit, so some 20 ordinary days a minute (28,800
/// project-days a day), and the minute stays well within 1,000 queries beside alerts
/// (300), day rolls and digests.
const SESSION_QUERIES_PER_MINUTE: u32 = 40;
/// D1 queries an hourly run may spend pairing session days, for a backlog (after a
/// migration, or many late marks).
const SESSION_QUERIES_PER_HOUR: u32 = 400;

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let cron = event.cron();
    let started_at = now_ms();
    let store = match env.d1(DB) {
        Ok(db) => D1Store::new(db),
        Err(e) => {
            worker::console_error!("cron {cron:?}: no D1 binding {DB}: {e}");
            return;
        }
    };
    let (job, outcome) = match Job::for_cron(&cron) {
        Some(job) => (job.name(), run(job, &env).await),
        None => (
            "unknown",
            Err(format!("no job is scheduled for cron {cron:?}")),
        ),
    };
    let (outcome, detail) = match outcome {
        Ok(detail) => ("ok", detail),
        Err(e) => {
            worker::console_error!("cron job {job} failed: {e}");
            ("error", e)
        }
    };
    let run = JobRun {
        job: job.to_owned(),
        cron: cron.clone(),
        scheduled_at: event.schedule() as i64,
        started_at,
        finished_at: now_ms(),
        outcome: outcome.to_owned(),
        detail: Some(detail),
    };
    if let Err(e) = store.record_job_run(&run).await {
        worker::console_error!("cron {cron:?}: could not record the run: {e}");
    }
}

/// A budget of a run shared between `shards` shards: each gets its part, at least 1.
///
/// Phase 1 of issue 16 walks the shards in turn within one invocation, so the run's
/// D1 queries stay within its budget however many shards there are; phase 2 moves the
/// per-shard work to a jobs queue, so that shards add capacity rather than cron time.
fn share(budget: u32, shards: usize) -> u32 {
    (budget / u32::try_from(shards.max(1)).unwrap_or(u32::MAX)).max(1)
}

/// Runs one job and says what it did. Work over a whole shard (rolls, session days,
/// retention, erasures, minute rows) runs once per shard, each within its share of the
/// budget; alert evaluation and digests start from the control database's rules and
/// read each project's shard through a [`Router`].
async fn run(job: Job, env: &Env) -> Result<String, String> {
    let at = now_ms();
    let text = |e: tally_storage::Error| e.to_string();
    let control = env
        .d1(DB)
        .map(D1Store::new)
        .map_err(|e| format!("no D1 binding {DB}: {e}"))?;
    let shards = crate::shards(env);
    let n = shards.len();
    let on = |shard: usize| OnShard {
        control: &control,
        data: &shards[shard],
        shard: u32::try_from(shard).unwrap_or(u32::MAX),
    };
    let mut per_shard = Vec::new();
    Ok(match job {
        Job::Minutely => {
            // Alerts first: they read minute rows, which the consumer keeps current, and
            // must not wait behind a long roll.
            let router = Router {
                control: env.d1(DB).map(D1Store::new).map_err(|e| e.to_string())?,
                shards: crate::shards(env),
                placements: crate::placements(env),
                now_ms: at,
            };
            let alerts = alerting::evaluate(&router, env, at).await;
            for shard in 0..n {
                let store = on(shard);
                let days = pipeline::roll_dirty(&store, Period::Day, share(DAYS_PER_MINUTE, n), at)
                    .await
                    .map_err(text)?;
                let session_days =
                    sessions::roll_session_days(&store, share(SESSION_QUERIES_PER_MINUTE, n), at)
                        .await
                        .map_err(text)?;
                per_shard.push(format!(
                    "shard {shard}: {}; {}",
                    rolled(&days, "days"),
                    paired(session_days)
                ));
            }
            // Moves of projects between shards, each run a step within its budget.
            let ttl = crate::placement_ttl_ms(env);
            let moved = moves::advance(&control, &shards, at, moves::MINUTELY_MOVES, ttl)
                .await
                .map_err(text)?;
            // Digests last: they read day rows where the roll just made them current.
            let digests = alerting::digest(&router, env, at).await;
            format!(
                "{}; {}; {}{}",
                alerts?,
                per_shard.join("; "),
                digests?,
                moving(&moved)
            )
        }
        Job::Hourly => {
            for shard in 0..n {
                let store = on(shard);
                let days =
                    pipeline::roll_dirty(&store, Period::Day, share(PERIODS_PER_HOUR, n), at)
                        .await
                        .map_err(text)?;
                let months =
                    pipeline::roll_dirty(&store, Period::Month, share(PERIODS_PER_HOUR, n), at)
                        .await
                        .map_err(text)?;
                let session_days =
                    sessions::roll_session_days(&store, share(SESSION_QUERIES_PER_HOUR, n), at)
                        .await
                        .map_err(text)?;
                let minutes = alerts::purge_minutes(&store, at).await.map_err(text)?;
                let purged = pipeline::purge_expired(&store, at, shared_purge(n))
                    .await
                    .map_err(text)?;
                let erased = erasure::run(&store, at, shared_erase(n))
                    .await
                    .map_err(text)?;
                per_shard.push(format!(
                    "shard {shard}: {}, {}; {}; purged {minutes} minute rows; {}; \
                     erased {} raw events and {} marks, {} erasures finished, {} pending",
                    rolled(&days, "days"),
                    rolled(&months, "months"),
                    paired(session_days),
                    purge_summary(&purged),
                    erased.raw_deleted,
                    erased.marks_deleted,
                    erased.finished,
                    erased.pending
                ));
            }
            per_shard.join("; ")
        }
        Job::Daily => {
            for shard in 0..n {
                let store = on(shard);
                let purged = pipeline::purge_expired(&store, at, shared_purge(n))
                    .await
                    .map_err(text)?;
                let months =
                    pipeline::roll_dirty(&store, Period::Month, share(PERIODS_PER_HOUR, n), at)
                        .await
                        .map_err(text)?;
                per_shard.push(format!(
                    "shard {shard}: {}; {}",
                    purge_summary(&purged),
                    rolled(&months, "months")
                ));
            }
            per_shard.join("; ")
        }
    })
}

/// Each shard's part of [`pipeline::HOURLY_PURGE`].
fn shared_purge(shards: usize) -> pipeline::PurgeBudget {
    pipeline::PurgeBudget {
        statements: share(pipeline::HOURLY_PURGE.statements, shards),
        ..pipeline::HOURLY_PURGE
    }
}

/// Each shard's part of [`erasure::HOURLY_ERASE`].
fn shared_erase(shards: usize) -> erasure::EraseBudget {
    erasure::EraseBudget {
        statements: share(erasure::HOURLY_ERASE.statements, shards),
        ..erasure::HOURLY_ERASE
    }
}

/// What a roll did, for `job_runs`: periods that could not be rolled are named in meta
/// (`roll.day`, `roll.month`) and `/v1/health`.
fn rolled(run: &pipeline::Rolled, what: &str) -> String {
    if run.failed == 0 && run.failing == 0 {
        format!("rolled {} {what}", run.rolled)
    } else {
        format!(
            "rolled {} {what} ({} failed now, {} failing)",
            run.rolled, run.failed, run.failing
        )
    }
}

/// What pairing session days did, for `job_runs`: the days left are ready ones still to
/// pair, which later runs take.
fn paired(run: sessions::RolledDays) -> String {
    format!("paired {} session days ({} left)", run.rolled, run.left)
}

/// What the running moves stand at, for `job_runs` (empty when none runs).
fn moving(moved: &[moves::Move]) -> String {
    moved
        .iter()
        .map(|m| {
            format!(
                "; move of {} from shard {} to {}: {} {}{}",
                m.project,
                m.from_shard,
                m.to_shard,
                m.phase.name(),
                m.stage,
                m.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// One line of what a purge did, for `job_runs`.
fn purge_summary(purged: &pipeline::Purged) -> String {
    format!(
        "purged {} expired rows (raw events, marks, alerts) and {} job runs in {} statements; \
         {} projects behind",
        purged.deleted,
        purged.job_runs,
        purged.statements,
        purged.backlog.len()
    )
}
