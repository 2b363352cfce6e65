//! `GET /v1/health` (and `/`): the worker answers, D1 is readable, when each cron job
//! last ran and how, and what the last alert evaluation and rolls left undone.
//!
//! The endpoint is public, so its public answer says only that much: no job's detail,
//! no count of dead letters, no rule or period names, and it is remembered in the
//! isolate for [`PUBLIC_FOR_MS`], so polling `/` costs D1 one read of it per isolate
//! every few seconds whatever the rate. With the admin token the answer is read fresh
//! and adds each job's detail, the dead letters waiting, which rules and periods failed
//! and why, the rate-limit bindings ingest reported missing, each data shard's stored
//! bytes, rows, projects and last job runs (`shard_view`), and the moves of projects
//! between shards that are running (as `GET /v1/admin/projects/{p}/move` shows each).
//!
//! `jobs` lists the triggers' own runs (`minutely`, `hourly`, `daily`: alert evaluation,
//! digests, and sending each shard its part to the jobs queue); each shard's part runs
//! apart and is recorded under `hourly/shard-1` and the like
//! (`tally_core::jobs::Job::shard_run_name`), shown with its shard.

use std::cell::RefCell;

use serde_json::{Value, json};
use tally_core::jobs::Job;
use tally_core::project::MISSING_BINDINGS_KEY;
use tally_edge::ApiError;
use tally_storage::cloudflare::KvCache;
use tally_storage::d1::D1Store;
use tally_storage::pipeline::Progress;
use tally_storage::shard::{self, ShardLoad};
use tally_storage::{Cache, JobLog, JobRun};
use worker::{Request, Response};

use crate::access;
use crate::edge::error::internal;
use crate::edge::respond::json_value;
use crate::edge::{CACHE, RequestEnv, now_ms, store};

/// How long an isolate reuses the public answer.
const PUBLIC_FOR_MS: i64 = 5_000;

thread_local! {
    /// The public answer and when it was read. Workers run one request at a time per
    /// isolate thread, so a thread-local needs no locking.
    static PUBLIC: RefCell<Option<(i64, Value)>> = const { RefCell::new(None) };
}

/// The health answer: the public one, or with the admin token the whole one.
///
/// # Errors
///
/// 500 when D1 cannot be read.
pub async fn get(req: &Request, env: &RequestEnv) -> Result<Response, ApiError> {
    if access::is_admin(req, env) {
        return json_value(200, &whole(env).await?, None);
    }
    let now = now_ms();
    let body = match PUBLIC.with_borrow(|slot| remembered(slot, now)) {
        Some(body) => body,
        None => {
            let body = public(env).await?;
            PUBLIC.with_borrow_mut(|slot| *slot = Some((now, body.clone())));
            body
        }
    };
    json_value(200, &body, None)
}

/// The remembered answer, if it was read less than [`PUBLIC_FOR_MS`] before `now`.
fn remembered(slot: &Option<(i64, Value)>, now: i64) -> Option<Value> {
    slot.as_ref()
        .filter(|(at, _)| (0..PUBLIC_FOR_MS).contains(&(now - at)))
        .map(|(_, body)| body.clone())
}

/// The latest runs split into the triggers' own and each shard's (by shard number).
fn split_runs(runs: Vec<JobRun>) -> (Vec<JobRun>, Vec<(u32, JobRun)>) {
    let mut triggers = Vec::new();
    let mut shards = Vec::new();
    for run in runs {
        match Job::of_shard_run(&run.job) {
            Some((_, shard)) => shards.push((shard, run)),
            None => triggers.push(run),
        }
    }
    (triggers, shards)
}

/// What anyone may see: each job's last run without its detail, and counts only.
async fn public(env: &RequestEnv) -> Result<Value, ApiError> {
    let store = store(env)?;
    let (jobs, _) = split_runs(store.latest_job_runs().await.map_err(internal)?);
    let meta = store.meta().await.map_err(internal)?;
    let progress = Progress::from_meta(&meta).counts_only();
    let jobs: Vec<Value> = jobs
        .iter()
        .map(|run| {
            let mut run = json!(run);
            if let Some(fields) = run.as_object_mut() {
                fields.remove("detail");
            }
            run
        })
        .collect();
    Ok(json!({
        "worker": "query",
        "status": "ok",
        "jobs": jobs,
        "alerts": progress.alerts,
        "rolls": {"day": progress.roll_day, "month": progress.roll_month},
    }))
}

/// The admin's view: everything, read now.
async fn whole(env: &RequestEnv) -> Result<Value, ApiError> {
    let store = store(env)?;
    let (jobs, mut shard_runs) = split_runs(store.latest_job_runs().await.map_err(internal)?);
    let dead_letters = store.dead_letters().await.map_err(internal)?;
    let meta = store.meta().await.map_err(internal)?;
    let progress = Progress::from_meta(&meta);
    let missing = match env.kv(CACHE) {
        Ok(kv) => KvCache::new(kv)
            .get(MISSING_BINDINGS_KEY)
            .await
            .map_err(internal)?
            .and_then(|text| serde_json::from_str::<Value>(&text).ok()),
        Err(e) => Some(json!({"bindings": [CACHE], "error": e.to_string()})),
    };
    // Each shard's size, rows and projects, and its own rolls (a shard's cron work keeps
    // its progress in its own meta). A shard that cannot be read shows its error, and
    // the others are shown.
    let loads = shard::loads(&store.control, &store.shards)
        .await
        .map_err(internal)?;
    let mut named = shard::named_projects(&store.control)
        .await
        .map_err(internal)?;
    let mut shards = Vec::new();
    for (load, on) in loads.into_iter().zip(&store.shards) {
        let projects = named.remove(&load.shard).unwrap_or_default();
        let runs = shard_runs
            .extract_if(.., |(shard, _)| *shard == load.shard)
            .map(|(_, run)| run)
            .collect();
        shards.push(shard_view(load, on, projects, runs).await);
    }
    let moves: Vec<Value> = tally_storage::moves::running(&store.control)
        .await
        .map_err(internal)?
        .iter()
        .map(|m| json!(m))
        .collect();
    Ok(json!({
        "worker": "query",
        "status": "ok",
        "jobs": jobs,
        "dead_letters": dead_letters,
        "alerts": progress.alerts,
        "rolls": {"day": progress.roll_day, "month": progress.roll_month},
        "shards": shards,
        "moves": moves,
        "missing_bindings": missing,
    }))
}

/// One shard as the admin sees it: its bytes (D1's own measure, free to ask), its rows
/// counted up to [`shard::ROWS_COUNTED_UP_TO`] a table, its projects (the count and the
/// first [`shard::PROJECTS_NAMED_PER_SHARD`] slugs), its rolls and the last run of each
/// of its jobs (from the jobs queue); what could not be read, as its error.
async fn shard_view(
    load: ShardLoad,
    on: &D1Store,
    projects: Vec<String>,
    jobs: Vec<JobRun>,
) -> Value {
    let mut errors: Vec<String> = load.error.into_iter().collect();
    let rows = match shard::stored_rows(on).await {
        Ok(rows) => Some(rows),
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    let rolls = match on.meta().await {
        Ok(meta) => {
            let rolls = Progress::from_meta(&meta);
            json!({"day": rolls.roll_day, "month": rolls.roll_month})
        }
        Err(e) => {
            errors.push(e.to_string());
            Value::Null
        }
    };
    json!({
        "shard": load.shard,
        "bytes": load.bytes,
        "rows": rows,
        "rows_counted_up_to": shard::ROWS_COUNTED_UP_TO,
        "projects": load.projects,
        "project_slugs": projects,
        "rolls": rolls,
        "jobs": jobs,
        "error": (!errors.is_empty()).then(|| errors.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_runs_are_shown_with_their_shard_and_not_among_the_triggers() {
        let run = |job: &str| JobRun {
            job: job.to_owned(),
            cron: "5 * * * *".into(),
            scheduled_at: 1,
            started_at: 1,
            finished_at: 2,
            outcome: "ok".into(),
            detail: None,
        };
        let (triggers, shards) = split_runs(vec![
            run("daily"),
            run("hourly"),
            run("hourly/shard-0"),
            run("hourly/shard-1"),
            run("minutely/shard-1"),
        ]);
        let names = |runs: &[JobRun]| runs.iter().map(|r| r.job.clone()).collect::<Vec<_>>();
        assert_eq!(names(&triggers), ["daily", "hourly"]);
        let of = |n: u32| -> Vec<String> {
            shards
                .iter()
                .filter(|(s, _)| *s == n)
                .map(|(_, r)| r.job.clone())
                .collect()
        };
        assert_eq!(of(0), ["hourly/shard-0"]);
        assert_eq!(of(1), ["hourly/shard-1", "minutely/shard-1"]);
    }

    #[test]
    fn the_public_answer_is_reused_for_a_few_seconds() {
        let body = json!({"status": "ok"});
        let slot = Some((1_000, body.clone()));
        assert_eq!(remembered(&slot, 1_000), Some(body.clone()));
        assert_eq!(remembered(&slot, 1_000 + PUBLIC_FOR_MS - 1), Some(body));
        assert_eq!(remembered(&slot, 1_000 + PUBLIC_FOR_MS), None);
        assert_eq!(
            remembered(&slot, 999),
            None,
            "a clock that went back reads anew"
        );
        assert_eq!(remembered(&None, 1_000), None);
    }
}
