//! `GET /v1/projects/{p}/timeseries?interval=hour|day|week|month&metric=a,b`: measures
//! per time bucket, every bucket of the range present (zero-filled; percentiles null
//! where a bucket has no durations); the first and last buckets hold only the part
//! inside the range. `week` is the ISO week, from Monday. Without
//! `metric`, every metric but the `requests` alias; with it, the named ones (see
//! [`Metric`]).

use serde_json::{Map, Value, json};
use tally_core::rollup::{Dimension, Rollup};
use tally_core::time::{DAY_MS, Interval, format_ms};
use tally_edge::ApiError;
use tally_storage::filtered::Bucket;
use tally_storage::read;
use worker::{Request, Response};

use super::filtered;
use super::measures::Metric;
use super::scope;
use crate::edge::params::{self, Params};
use crate::edge::respond;
use crate::edge::{RequestEnv, now_ms};

/// Seconds a client may reuse an answer (as the plugin seed has it).
const MAX_AGE_S: u32 = 300;

/// Hourly series cover at most this many days (744 buckets).
const MAX_HOURLY_DAYS: i64 = 31;

pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    let range = params.range(now_ms())?;
    let interval = params.interval(
        &[
            Interval::Hour,
            Interval::Day,
            Interval::Week,
            Interval::Month,
        ],
        Interval::Day,
    )?;
    if interval == Interval::Hour && range.to_ms - range.from_ms > MAX_HOURLY_DAYS * DAY_MS {
        return Err(ApiError::bad_request(
            "invalid_interval",
            format!(
                "hourly series cover at most {MAX_HOURLY_DAYS} days; ask for a shorter range \
                 or interval=day"
            ),
        ));
    }
    let metrics = Metric::parse_list(params.get("metric"))?;
    let filters = params.filters()?;
    let names: Vec<&str> = metrics.iter().map(|m| m.name()).collect();
    let query = format!(
        "timeseries|{}|{}|{}|{}|{}",
        range.from_ms,
        range.to_ms,
        params::interval_name(interval),
        names.join(","),
        filters.key()
    );
    let heavy = range.to_ms - range.from_ms >= scope::KV_MIN_RANGE_MS;
    let answer = respond::cached(env, project, &query, heavy, MAX_AGE_S, async || {
        let rows = filtered::Report::new(range, &filters)
            .rows(env, project, &[Dimension::All], Bucket::Every(interval))
            .await?;
        let series = read::buckets(&rows.rows, interval);
        let empty = Rollup::default();
        let data: Vec<Value> = interval
            .buckets(rows.from_ms, rows.to_ms)
            .map(|start| {
                let row = series
                    .get(&start)
                    .and_then(|m| m.get(&(Dimension::All, String::new())))
                    .unwrap_or(&empty);
                let mut point = Map::new();
                point.insert("start".into(), format_ms(start).into());
                for metric in &metrics {
                    point.insert(metric.name().into(), metric.of(row, rows.scale));
                }
                Value::Object(point)
            })
            .collect();
        let mut body = json!({
            "project": project,
            "interval": params::interval_name(interval),
            "metrics": names,
            "data": data,
        });
        filtered::describe(&mut body, &filters, &rows);
        Ok(body)
    })
    .await?;
    respond::json_cached(req, answer, MAX_AGE_S)
}
