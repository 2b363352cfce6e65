//! `GET /v1/projects/{p}/overview`: headline numbers for a project over a range, under
//! `filter`s (see `read::filtered`); `dropped` counts the project's dropped requests
//! whatever the filters (they are not events).

use tally_core::rollup::{Dimension, Rollup};
use tally_core::time::format_ms;
use tally_edge::ApiError;
use tally_storage::filtered::Bucket;
use tally_storage::{EventStore, read};
use worker::{Request, Response};

use super::filtered;
use crate::edge::error::internal;
use crate::edge::params::Params;
use crate::edge::respond;
use crate::edge::{RequestEnv, now_ms, store};

pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    let range = params.range(now_ms())?;
    let filters = params.filters()?;
    let (from, to) = (range.from_ms, range.to_ms);
    let store = store(env)?;
    let rows = filtered::Report::new(range, &filters)
        .rows(env, project, &[Dimension::All], Bucket::Whole)
        .await?;
    let all = read::merge(&rows.rows)
        .into_values()
        .next()
        .unwrap_or_default();
    let dropped = store
        .dropped_counts(project, from, to)
        .await
        .map_err(internal)?;
    let mut body = body(project, from, to, &all, rows.scale);
    body["dropped"] = serde_json::json!({ "bot": dropped.get("bot").copied().unwrap_or(0) });
    filtered::describe(&mut body, &filters, &rows);
    respond::json(req, body.to_string(), 60)
}

/// The overview's JSON: counts exact, percentiles from the merged sketch, uniques from
/// the merged HyperLogLogs (multiplied by `scale` when sampled).
fn body(project: &str, from: i64, to: i64, all: &Rollup, scale: u64) -> serde_json::Value {
    let error_rate = if all.count == 0 {
        0.0
    } else {
        all.errors as f64 / all.count as f64
    };
    let q = |q: f64| all.durations.quantile(q);
    serde_json::json!({
        "project": project,
        "from": format_ms(from),
        "to": format_ms(to),
        "events": all.count,
        "errors": all.errors,
        "error_rate": error_rate,
        "bytes": all.bytes,
        "duration_ms": {
            "count": all.durations.count(),
            "mean": all.durations.mean(),
            "p50": q(0.5),
            "p95": q(0.95),
            "p99": q(0.99),
        },
        "unique_users": all.users.count().saturating_mul(scale),
        "unique_instances": all.instances.count().saturating_mul(scale),
    })
}
