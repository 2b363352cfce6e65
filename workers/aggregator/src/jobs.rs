//! The jobs queue (issue 16, phase 2): one data shard's part of a cron job, or one step
//! of a project's move, each alone in its invocation (`max_batch_size = 1`) and so with
//! that invocation's whole D1 budget rather than a share of the trigger's.
//!
//! The scheduled handler ([`crate::cron`]) does the control database's work (alert
//! evaluation, digests) and [`send`]s a [`JobMessage`] per shard and per running move.
//! [`consume`] runs it: a shard's rolls, session days, minute rows, retention and
//! erasures within [`Job::shard_budget`], recorded in `job_runs` under
//! [`Job::shard_run_name`] (so `/v1/health` shows each shard's last runs); a move's
//! step within [`moves::JOB_MOVES`]. Work that reports a backlog sends its continuation
//! ([`JobMessage::continuation`]: at most [`tally_core::jobs::MAX_CONTINUATIONS`] per
//! trigger, and only before the next trigger is due), so a backlog drains at queue
//! speed; a move's step is sent again as soon as the move has work (at once, or when
//! its wait ends).
//!
//! Messages may arrive twice or out of order. A duplicate is harmless because every
//! job is idempotent over the database as it finds it: a roll clears a mark only at
//! the generation it read, a purge deletes only what is expired, an erasure step
//! commits its cursor with its deletions, and a move's step is stored only if the move
//! is still where the step read it. A message carries no data, only which work to do,
//! so an old one does today's work. A shard whose job fails records the failure and its
//! message is retried by the queue (`max_retries` in `wrangler/aggregator.toml`) while
//! the other shards' messages go on; no dead-letter queue keeps job messages, since the
//! next trigger sends the same work again and the failure is in `job_runs`.

use tally_core::jobs::{Job, JobMessage, ShardBudget};
use tally_core::rollup::Period;
use tally_storage::cloudflare::CfQueue;
use tally_storage::d1::D1Store;
use tally_storage::exec::Counted;
use tally_storage::shard::OnShard;
use tally_storage::{EventQueue, JobLog, JobRun, alerts, erasure, moves, pipeline, sessions};
use worker::{Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder};

use crate::{JOBS, now_ms};

/// How long a failed job's message waits before the queue delivers it again.
const RETRY_DELAY_S: u32 = 10;

/// Sends `messages` to the jobs queue, at once.
///
/// # Errors
///
/// The queue's refusal, saying how many were sent.
pub async fn send(env: &Env, messages: &[JobMessage]) -> Result<(), String> {
    let queue = CfQueue::new(env.queue(JOBS).map_err(|e| e.to_string())?);
    let bodies: Vec<String> = messages.iter().map(JobMessage::encode).collect();
    queue.send(&bodies).await.map_err(|e| {
        format!(
            "{} of {} job messages sent: {}",
            e.sent,
            bodies.len(),
            e.error
        )
    })
}

/// Runs each message of a batch of the jobs queue (one, as configured) and acks it, or
/// retries it when its shard's work failed.
pub async fn consume(control: &D1Store, env: &Env, batch: &MessageBatch<String>) {
    for message in batch.raw_iter() {
        let body = message.body().as_string().unwrap_or_default();
        let job = match JobMessage::decode(&body) {
            Ok(job) => job,
            Err(e) => {
                // No retry makes it a job: it is logged and dropped.
                worker::console_error!("jobs queue message {}: {e}; dropped", message.id());
                message.ack();
                continue;
            }
        };
        let done = match job {
            JobMessage::Shard { .. } => run_shard_job(control, env, &job).await,
            JobMessage::Move { id, .. } => step_move(control, env, &job, id).await,
        };
        match done {
            Ok(()) => message.ack(),
            Err(e) => {
                worker::console_error!("job {}: {e}; retrying in {RETRY_DELAY_S} s", body);
                let options = QueueRetryOptionsBuilder::new()
                    .with_delay_seconds(RETRY_DELAY_S)
                    .build();
                message.retry_with_options(&options);
            }
        }
    }
}

/// What one shard's job did: its line for `job_runs`, whether work is left that a
/// continuation should take, and the D1 calls it made (what D1's 1,000 queries per
/// invocation count: a read or a whole batch) and the statements in them.
struct ShardRun {
    detail: String,
    backlog: bool,
    calls: u32,
    statements: u32,
}

/// Runs one shard's part of a job, records the run, and sends its continuation when the
/// work reports a backlog.
///
/// # Errors
///
/// The shard's failure (recorded first), so that the queue retries the message.
async fn run_shard_job(control: &D1Store, env: &Env, job: &JobMessage) -> Result<(), String> {
    let JobMessage::Shard {
        job: which,
        shard,
        at,
        round,
    } = *job
    else {
        return Ok(());
    };
    let started_at = now_ms();
    let shards = crate::shards(env);
    let Some(data) = shards.get(shard as usize) else {
        // A message of a config that bound more shards: no retry binds it.
        worker::console_error!(
            "{}: shard {shard} is not bound ({} are); dropped",
            which.shard_run_name(shard),
            shards.len()
        );
        return Ok(());
    };
    let outcome = run_shard(which, shard, control, data, started_at).await;
    let finished_at = now_ms();
    let (result, outcome, detail) = match outcome {
        Ok(run) => {
            let next = if run.backlog {
                job.continuation(finished_at)
            } else {
                None
            };
            let continued = match next {
                Some(next) => match send(env, std::slice::from_ref(&next)).await {
                    Ok(()) => format!("; a backlog is left: continued (round {})", round + 1),
                    Err(e) => format!("; a backlog is left, not continued: {e}"),
                },
                None if run.backlog => {
                    "; a backlog is left for the next trigger (continuations spent)".to_owned()
                }
                None => String::new(),
            };
            let detail = format!(
                "round {round}: {}; {} D1 queries ({} statements){continued}",
                run.detail, run.calls, run.statements
            );
            (Ok(()), "ok", detail)
        }
        Err(e) => {
            worker::console_error!("{} failed: {e}", which.shard_run_name(shard));
            (Err(e.clone()), "error", format!("round {round}: {e}"))
        }
    };
    let run = JobRun {
        job: which.shard_run_name(shard),
        cron: which.cron().to_owned(),
        scheduled_at: at,
        started_at,
        finished_at,
        outcome: outcome.to_owned(),
        detail: Some(detail),
    };
    if let Err(e) = control.record_job_run(&run).await {
        worker::console_error!("{}: could not record the run: {e}", run.job);
    }
    result
}

/// One shard's work for `job` at `now`, within [`Job::shard_budget`]. Work over a whole
/// shard runs on it alone, with the control database for placements and retention.
async fn run_shard(
    job: Job,
    shard: u32,
    control: &D1Store,
    data: &D1Store,
    now: i64,
) -> Result<ShardRun, String> {
    let text = |e: tally_storage::Error| e.to_string();
    let (control, data) = (Counted::new(control), Counted::new(data));
    let store = OnShard {
        control: &control,
        data: &data,
        shard,
    };
    let budget: ShardBudget = job.shard_budget();
    let mut parts = Vec::new();
    let mut backlog = false;
    if budget.day_rolls > 0 {
        let days = pipeline::roll_dirty(&store, Period::Day, budget.day_rolls, now)
            .await
            .map_err(text)?;
        backlog |= days.more_pending;
        parts.push(rolled(&days, "days"));
    }
    if budget.month_rolls > 0 {
        let months = pipeline::roll_dirty(&store, Period::Month, budget.month_rolls, now)
            .await
            .map_err(text)?;
        backlog |= months.more_pending;
        parts.push(rolled(&months, "months"));
    }
    if budget.session_queries > 0 {
        let days = sessions::roll_session_days(&store, budget.session_queries, now)
            .await
            .map_err(text)?;
        // Days left that this run could not pair at all (one too large for any budget)
        // are no backlog a continuation would drain.
        backlog |= days.left > 0 && days.rolled > 0;
        parts.push(format!(
            "paired {} session days ({} left)",
            days.rolled, days.left
        ));
    }
    if budget.minute_purge {
        let minutes = alerts::purge_minutes(&store, now, alerts::HOURLY_MINUTE_PURGE)
            .await
            .map_err(text)?;
        backlog |= minutes.more_pending;
        parts.push(format!("purged {} minute rows", minutes.deleted));
    }
    if budget.purge_statements > 0 {
        let purge = pipeline::PurgeBudget {
            statements: budget.purge_statements,
            ..pipeline::HOURLY_PURGE
        };
        let purged = pipeline::purge_expired(&store, now, purge)
            .await
            .map_err(text)?;
        // Behind and still deleting: another budget catches up; behind with nothing
        // deleted is not this run's to drain.
        backlog |= !purged.backlog.is_empty() && purged.deleted > 0;
        parts.push(purge_summary(&purged));
    }
    if budget.erase_statements > 0 {
        let erase = erasure::EraseBudget {
            statements: budget.erase_statements,
            ..erasure::HOURLY_ERASE
        };
        let erased = erasure::run(&store, now, erase).await.map_err(text)?;
        // Requests left unfinished because the budget ran out.
        backlog |= erased.finished < erased.pending && erased.statements + 3 > erase.statements;
        parts.push(format!(
            "erased {} raw events and {} marks, {} erasures finished, {} pending",
            erased.raw_deleted, erased.marks_deleted, erased.finished, erased.pending
        ));
    }
    Ok(ShardRun {
        detail: parts.join("; "),
        backlog,
        calls: control.take_calls() + data.take_calls(),
        statements: control.take_queries() + data.take_queries(),
    })
}

/// Steps move `id` within [`moves::JOB_MOVES`] and, while it has work before the next
/// trigger, sends the step again: at once after a spent budget, delayed to the end of a
/// wait. Its progress and any error are on the move (`GET /v1/admin/projects/{p}/move`).
///
/// # Errors
///
/// The control database's error reading the moves, so that the queue retries.
async fn step_move(control: &D1Store, env: &Env, job: &JobMessage, id: i64) -> Result<(), String> {
    let now = now_ms();
    let shards = crate::shards(env);
    let ttl = crate::placement_ttl_ms(env);
    let Some((moved, stopped)) = moves::step(control, &shards, id, now, moves::JOB_MOVES, ttl)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let (Some(wait_ms), Some(next)) = (stopped.work_in_ms(now), job.continuation(now)) else {
        return Ok(());
    };
    // Whole seconds, rounded up: the queue's delay is in seconds, and a step that comes
    // early only finds the wait not over and asks again.
    let delay_s = u32::try_from((wait_ms + 999) / 1000).unwrap_or(u32::MAX);
    let queue = CfQueue::new(env.queue(JOBS).map_err(|e| e.to_string())?);
    if let Err(e) = queue.send_delayed(&next.encode(), delay_s).await {
        // The next minutely trigger steps the move anyway.
        worker::console_error!(
            "move of {} ({:?}): its next step was not queued: {e}",
            moved.project,
            moved.phase
        );
    }
    Ok(())
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
