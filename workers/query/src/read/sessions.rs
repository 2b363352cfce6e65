//! `GET /v1/projects/{p}/sessions?interval=day|week|month`: sessions (a start event
//! closed by a stop of the same user, `play`/`stop` unless the project names others)
//! per period of their start: count, total and average duration. Every period is
//! present; the average is null where there were none. Sessions are paired from raw
//! start/stop marks, which retention purges, so the range starts no earlier than the
//! project's retention allows (`from` says where it started).
//!
//! Without filters the stored session days answer (`tally_storage::sessions`). With
//! `filter` parameters a session is kept when one of its events (its user's, from its
//! start to its stop) meets every filter, and counted whole; those are paired from raw
//! events within the row budget of filtered reads, exactly or from a sample of users,
//! and the answer says which (`served_by`, `sample_rate`).

use serde_json::{Value, json};
use tally_core::sessions::Stats;
use tally_core::time::{Interval, format_ms};
use tally_edge::ApiError;
use tally_storage::filtered::Path;
use tally_storage::sessions::{self, FilteredSessions};
use worker::{Request, Response};

use super::filtered::describe_served;
use super::scope;
use crate::edge::error::internal;
use crate::edge::params::{self, Params, within_retention};
use crate::edge::{self, RequestEnv, now_ms, respond, store};

/// Seconds a client may reuse an answer.
const MAX_AGE_S: u32 = 300;

pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    let filters = params.filters()?;
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
    let (stats, path) = if filters.is_empty() {
        let stats = sessions::session_stats(&store, project, range.from_ms, range.to_ms, interval)
            .await
            .map_err(internal)?;
        // Stored session days are the sessions' rollups.
        (stats, Path::Rollups)
    } else {
        let budget = edge::filtered::row_budget(env);
        let read = sessions::filtered_session_stats(
            &store,
            project,
            (range.from_ms, range.to_ms),
            interval,
            &filters,
            budget,
        )
        .await
        .map_err(internal)?;
        match read {
            FilteredSessions::Counted { stats, path, .. } => (stats, path),
            FilteredSessions::OverBudget { events } => {
                return Err(edge::filtered::over_budget(events, budget));
            }
        }
    };
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
    describe_served(&mut body, &filters, path, range);
    respond::json(req, body.to_string(), MAX_AGE_S)
}
