//! `GET /v1/projects/{p}/sessions?interval=day|week|month`: sessions (a start event
//! closed by a stop of the same user, `play`/`stop` unless the project names others)
//! per period of their start: count, total and average duration. Every period is
//! present; the average is null where there were none. Sessions are paired from raw
//! start/stop marks, which retention purges, so the range starts no earlier than the
//! project's retention allows (`from` says where it started).

use serde_json::{Value, json};
use tally_core::sessions::Stats;
use tally_core::time::{Interval, format_ms};
use tally_edge::ApiError;
use tally_storage::sessions;
use worker::{Request, Response};

use super::scope;
use crate::edge::error::internal;
use crate::edge::params::{self, Params, within_retention};
use crate::edge::respond;
use crate::edge::{RequestEnv, now_ms, store};

/// Seconds a client may reuse an answer.
const MAX_AGE_S: u32 = 300;

pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    params.no_filters("sessions")?;
    let now = now_ms();
    let asked = params.range(now)?;
    let interval = params.interval(
        &[Interval::Day, Interval::Week, Interval::Month],
        Interval::Day,
    )?;
    let settings = scope::project(env, project).await?;
    let range = within_retention(asked, settings.retention_days, now)
        .ok_or_else(|| scope::past_retention(settings.retention_days))?;
    let store = store(env)?;
    let stats = sessions::session_stats(&store, project, range.from_ms, range.to_ms, interval)
        .await
        .map_err(internal)?;
    let point = |s: Stats| {
        json!({
            "sessions": s.sessions,
            "total_duration_ms": s.total_ms,
            "average_duration_ms": (s.sessions > 0).then(|| s.total_ms as f64 / s.sessions as f64),
        })
    };
    let mut total = Stats::default();
    let data: Vec<Value> = interval
        .buckets(range.from_ms, range.to_ms)
        .map(|start| {
            let s = stats.get(&start).copied().unwrap_or_default();
            total.sessions += s.sessions;
            total.total_ms += s.total_ms;
            let mut p = point(s);
            p["start"] = format_ms(start).into();
            p
        })
        .collect();
    let mut body = json!({
        "project": project,
        "interval": params::interval_name(interval),
        "retention_days": settings.retention_days,
        "totals": point(total),
        "data": data,
    });
    for (k, v) in scope::range_json(range) {
        body[k] = v;
    }
    respond::json(req, body.to_string(), MAX_AGE_S)
}
