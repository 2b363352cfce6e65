//! The cron entry point: does the control database's part of the job for the trigger,
//! hands each data shard's part to the jobs queue ([`crate::jobs`]), and records the run.
//!
//! - every minute: evaluate alert rules and queue their changes; send each shard its
//!   minutely job (roll the days whose hours changed, so day rows are a minute fresh,
//!   and pair the session days that are over) and each running move of a project
//!   between shards a step; then compose the digests whose period is due and queue them
//!   (within their own query budget; they read dirty days from hours, so they need not
//!   wait for the roll);
//! - hourly: send each shard its hourly job (roll days and then months, pair session
//!   days, purge minute rows older than a day, purge everything past retention, resuming
//!   where the last run stopped, and work on requests to erase a person's data);
//! - daily: send each shard its daily job (the same purge, then roll months).
//!
//! Each shard's job runs in its own invocation with that invocation's whole budget
//! ([`tally_core::jobs::Job::shard_budget`]), so adding shards adds capacity, not cron
//! time, and a shard that fails holds back no other. Every job is safe to run twice
//! and to interrupt (see [`tally_storage::pipeline`] and [`crate::jobs`]).

use tally_core::jobs::{Job, JobMessage};
use tally_storage::d1::D1Store;
use tally_storage::shard::Router;
use tally_storage::{JobLog, JobRun, moves};
use worker::{Env, ScheduleContext, ScheduledEvent, event};

use crate::{DB, alerting, jobs, now_ms};

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

/// Runs one job's part in the control database and sends the shards' parts to the
/// jobs queue; says what it did. Alert evaluation and digests start from the control
/// database's rules and read each project's shard through a [`Router`].
async fn run(job: Job, env: &Env) -> Result<String, String> {
    let at = now_ms();
    let control = env
        .d1(DB)
        .map(D1Store::new)
        .map_err(|e| format!("no D1 binding {DB}: {e}"))?;
    let shards = u32::try_from(crate::shards(env).len()).unwrap_or(u32::MAX);
    let mut messages: Vec<JobMessage> = (0..shards)
        .map(|shard| JobMessage::Shard {
            job,
            shard,
            at,
            round: 0,
        })
        .collect();
    Ok(match job {
        Job::Minutely => {
            // Alerts first: they read minute rows, which the consumer keeps current.
            let router = Router {
                control: env.d1(DB).map(D1Store::new).map_err(|e| e.to_string())?,
                shards: crate::shards(env),
                placements: crate::placements(env),
                now_ms: at,
            };
            let alerts = alerting::evaluate(&router, env, at).await;
            // Each running move a step; its step sends itself again while it has work.
            // A failed read of the moves holds back neither the shards' jobs nor digests.
            let running = moves::running(&control).await.map_err(|e| e.to_string());
            let stepped = running.as_ref().map_or(0, Vec::len);
            messages.extend(running.iter().flatten().map(|m| JobMessage::Move {
                id: m.id,
                at,
                round: 0,
            }));
            let sent = jobs::send(env, &messages).await;
            let digests = alerting::digest(&router, env, at).await;
            format!(
                "{}; {}; {}",
                alerts?,
                sent.map(|()| fanned_out(shards, stepped))?,
                digests?
            ) + &running
                .err()
                .map(|e| format!("; moves not read: {e}"))
                .unwrap_or_default()
        }
        Job::Hourly | Job::Daily => {
            jobs::send(env, &messages).await?;
            fanned_out(shards, 0)
        }
    })
}

/// What a trigger handed to the jobs queue, for `job_runs`.
fn fanned_out(shards: u32, moves: usize) -> String {
    let moves = if moves == 0 {
        String::new()
    } else {
        format!(" and a step of each of {moves} running moves")
    };
    format!("sent a job to each of {shards} shards{moves}")
}
