//! The plugin analytics seed's REST endpoints, `/api/plugins/{slug}/analytics/...`: the
//! slug is the project. The seed's fields keep their names and meanings, computed
//! correctly: `avg_latency` is the mean of every request (not a mean of hourly means),
//! and the percentiles and unique instances beside it come from merged sketches and
//! HyperLogLogs. `peak_instances` is, as its name and the seed's query say, the most
//! distinct instances seen in one hour.
//!
//! The seed sends `Cache-Control: public, ...`; these answers are for one project's read
//! token, so they are `private` (a shared cache must not hand them to other clients),
//! with the seed's ages: overview 60 s, timeseries 300 s.

use serde_json::{Value, json};
use tally_core::range::{Limits, Query, Range};
use tally_core::rollup::{Dimension, Rollup};
use tally_core::time::{Interval, format_ms};
use tally_edge::ApiError;
use tally_storage::read::{self, Merged};
use worker::{Request, Response};

use crate::access::require_read;
use crate::edge::error::internal;
use crate::edge::params::{Params, resolve_range};
use crate::edge::respond::json_value;
use crate::edge::{RequestEnv, now_ms, store};

/// The longest range the plugin endpoints read: they read hour rows.
const MAX_DAYS: i64 = 90;
/// Most hours the endpoint breakdown returns, newest first, as the seed's `LIMIT 24`.
const ENDPOINT_HOURS: usize = 24;

/// `GET /api/plugins/{slug}/analytics/overview`: `total_requests`, `total_errors`,
/// `avg_latency`, `peak_instances` as the seed, plus `error_rate`, `p50_latency`,
/// `p95_latency`, `p99_latency` and `unique_instances`. Range `days` or `from`/`to`
/// (default 30 days).
pub async fn overview(req: &Request, env: &RequestEnv, slug: &str) -> Result<Response, ApiError> {
    let range = admit(req, env, slug, 30).await?;
    let hours = hourly(env, slug, range, Dimension::All).await?;
    let mut total = Rollup::default();
    let mut peak = 0;
    for merged in hours.values() {
        if let Some(row) = all(merged) {
            total.merge(row);
            peak = peak.max(row.instances.count());
        }
    }
    let error_rate = if total.count == 0 {
        0.0
    } else {
        total.errors as f64 / total.count as f64
    };
    let q = |q: f64| total.durations.quantile(q);
    let body = json!({
        "plugin": slug,
        "from": format_ms(range.from_ms),
        "to": format_ms(range.to_ms),
        "total_requests": total.count,
        "total_errors": total.errors,
        "avg_latency": total.durations.mean().unwrap_or(0.0),
        "peak_instances": peak,
        "error_rate": error_rate,
        "p50_latency": q(0.5),
        "p95_latency": q(0.95),
        "p99_latency": q(0.99),
        "unique_instances": total.instances.count(),
    });
    json_value(200, &body, Some("private, max-age=60"))
}

/// `GET /api/plugins/{slug}/analytics/timeseries`: the seed's rows (`hour`,
/// `request_count`, `error_count`, `avg_duration_ms`, `unique_instances`) plus the
/// bucket's start as `time` and its percentiles, for buckets with requests, oldest
/// first. `interval=hour` (default), `day`, `week` (ISO, from Monday) or `month`.
pub async fn timeseries(req: &Request, env: &RequestEnv, slug: &str) -> Result<Response, ApiError> {
    let range = admit(req, env, slug, 30).await?;
    let params = Params::of(req)?;
    let text = params.non_empty("interval").unwrap_or("hour");
    let interval = match text {
        "hour" => Interval::Hour,
        "day" => Interval::Day,
        "week" => Interval::Week,
        "month" => Interval::Month,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_interval",
                format!("interval must be hour, day, week or month, not {text:?}"),
            ));
        }
    };
    let store = store(env)?;
    let series = read::series(
        &store,
        slug,
        range.from_ms,
        range.to_ms,
        interval,
        Some(Dimension::All),
    )
    .await
    .map_err(internal)?;
    let rows: Vec<Value> = series
        .iter()
        .filter_map(|(start, merged)| all(merged).map(|row| point(*start, row)))
        .collect();
    let body = json!({
        "plugin": slug,
        "from": format_ms(range.from_ms),
        "to": format_ms(range.to_ms),
        "interval": text,
        "timeseries": rows,
    });
    json_value(200, &body, Some("private, max-age=300"))
}

/// `GET /api/plugins/{slug}/analytics/endpoints`: the seed's rows (`hour`,
/// `endpoint_breakdown`: requests per route) for the latest 24 hours with requests in
/// the range (default the last 24 hours), newest first.
pub async fn endpoints(req: &Request, env: &RequestEnv, slug: &str) -> Result<Response, ApiError> {
    let range = admit(req, env, slug, 1).await?;
    let hours = hourly(env, slug, range, Dimension::Route).await?;
    let rows: Vec<Value> = hours
        .iter()
        .rev()
        .take(ENDPOINT_HOURS)
        .map(|(start, merged)| {
            let routes: serde_json::Map<String, Value> = merged
                .iter()
                .map(|((_, route), row)| (route.clone(), Value::from(row.count)))
                .collect();
            json!({"hour": start, "time": format_ms(*start), "endpoint_breakdown": routes})
        })
        .collect();
    let body = json!({
        "plugin": slug,
        "from": format_ms(range.from_ms),
        "to": format_ms(range.to_ms),
        "endpoints": rows,
    });
    json_value(200, &body, Some("private, max-age=60"))
}

/// Checks the read token and the range (`default_days` when none is given),
/// which starts at the hour that holds its start.
async fn admit(
    req: &Request,
    env: &RequestEnv,
    slug: &str,
    default_days: i64,
) -> Result<Range, ApiError> {
    require_read(req, env, slug).await?;
    let params = Params::of(req)?;
    let query = Query {
        from: params.get("from"),
        to: params.get("to"),
        days: params.get("days"),
    };
    let limits = Limits {
        default_days,
        max_days: MAX_DAYS,
    };
    let range = resolve_range(query, now_ms(), limits)?;
    Ok(Range {
        from_ms: Interval::Hour.floor(range.from_ms),
        to_ms: range.to_ms,
    })
}

/// The hourly rows of one dimension over the range.
async fn hourly(
    env: &RequestEnv,
    slug: &str,
    range: Range,
    dimension: Dimension,
) -> Result<std::collections::BTreeMap<i64, Merged>, ApiError> {
    let store = store(env)?;
    read::series(
        &store,
        slug,
        range.from_ms,
        range.to_ms,
        Interval::Hour,
        Some(dimension),
    )
    .await
    .map_err(internal)
}

fn all(merged: &Merged) -> Option<&Rollup> {
    merged.get(&(Dimension::All, String::new()))
}

/// One timeseries row.
fn point(start: i64, row: &Rollup) -> Value {
    let q = |q: f64| row.durations.quantile(q);
    json!({
        "hour": start,
        "time": format_ms(start),
        "request_count": row.count,
        "error_count": row.errors,
        "avg_duration_ms": row.durations.mean().unwrap_or(0.0),
        "p50_duration_ms": q(0.5),
        "p95_duration_ms": q(0.95),
        "p99_duration_ms": q(0.99),
        "unique_instances": row.instances.count(),
    })
}
