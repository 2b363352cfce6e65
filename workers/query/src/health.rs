//! `GET /v1/health` (and `/`): the worker answers, D1 is readable, when each cron job
//! last ran, and how many messages wait in the dead-letter queues' table.

use serde_json::json;
use tally_core::ApiError;
use tally_storage::JobLog;
use worker::Response;

use crate::edge::error::internal;
use crate::edge::respond::json_value;
use crate::edge::{RequestEnv, store};

/// The health answer.
///
/// # Errors
///
/// 500 when D1 cannot be read.
pub async fn get(env: &RequestEnv) -> Result<Response, ApiError> {
    let store = store(env)?;
    let jobs = store.latest_job_runs().await.map_err(internal)?;
    let dead_letters = store.dead_letters().await.map_err(internal)?;
    let body = json!({
        "worker": "query",
        "status": "ok",
        "jobs": jobs,
        "dead_letters": dead_letters,
    });
    json_value(200, &body, None)
}
