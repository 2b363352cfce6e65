//! The cron entry point: dispatches to the job for the trigger and records the run.

use tally_core::jobs::Job;
use tally_storage::d1::D1Store;
use tally_storage::{JobLog, JobRun};
use worker::{Date, Env, ScheduleContext, ScheduledEvent, event};

use crate::DB;

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let cron = event.cron();
    let started_at = now();
    let store = match env.d1(DB) {
        Ok(db) => D1Store::new(db),
        Err(e) => {
            worker::console_error!("cron {cron:?}: no D1 binding {DB}: {e}");
            return;
        }
    };
    let (job, outcome) = match Job::for_cron(&cron) {
        Some(job) => (job.name(), run(job).await),
        None => (
            "unknown",
            Err(format!("no job is scheduled for cron {cron:?}")),
        ),
    };
    let run = JobRun {
        job: job.to_owned(),
        cron: cron.clone(),
        scheduled_at: event.schedule() as i64,
        started_at,
        finished_at: now(),
        outcome: if outcome.is_ok() { "ok" } else { "error" }.to_owned(),
        detail: outcome.err(),
    };
    if let Err(e) = store.record_job_run(&run).await {
        worker::console_error!("cron {cron:?}: could not record the run: {e}");
    }
}

/// Runs one job. Rollups, retention and alerts join here as they are built; today every
/// job only records that it ran, which is what operators check to see the cron is alive.
async fn run(job: Job) -> Result<(), String> {
    worker::console_log!("cron job {} ran", job.name());
    Ok(())
}

fn now() -> i64 {
    Date::now().as_millis() as i64
}
