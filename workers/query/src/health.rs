//! `GET /v1/health` (and `/`): the worker answers, D1 is readable, when each cron job
//! last ran, how many messages wait in the dead-letter queues' table, and what the last
//! alert evaluation and rolls left undone (deferred rules, failed rules and periods):
//! counts for everyone, and with the admin token which ones and why.

use serde_json::json;
use tally_core::ApiError;
use tally_storage::JobLog;
use tally_storage::pipeline::Progress;
use worker::{Request, Response};

use crate::access;
use crate::edge::error::internal;
use crate::edge::respond::json_value;
use crate::edge::{RequestEnv, store};

/// The health answer.
///
/// # Errors
///
/// 500 when D1 cannot be read.
pub async fn get(req: &Request, env: &RequestEnv) -> Result<Response, ApiError> {
    let store = store(env)?;
    let jobs = store.latest_job_runs().await.map_err(internal)?;
    let dead_letters = store.dead_letters().await.map_err(internal)?;
    let meta = store.meta().await.map_err(internal)?;
    let mut progress = Progress::from_meta(&meta);
    if !access::is_admin(req, env) {
        progress = progress.counts_only();
    }
    let body = json!({
        "worker": "query",
        "status": "ok",
        "jobs": jobs,
        "dead_letters": dead_letters,
        "alerts": progress.alerts,
        "rolls": {"day": progress.roll_day, "month": progress.roll_month},
    });
    json_value(200, &body, None)
}
