//! `GET /v1/projects/{p}/installs?interval=day|week&limit=N`: active instances (distinct
//! hashed `instance` ids, from merged HyperLogLogs) in the range and per day or ISO
//! week (every bucket present), and the instances and events per version, colo and
//! country, most instances first (at most `limit` each, default 20).

use serde_json::{Value, json};
use tally_core::ApiError;
use tally_core::rollup::{Dimension, Rollup};
use tally_core::time::{Interval, format_ms};
use tally_storage::read;
use worker::{Request, Response};

use super::scope;
use crate::edge::error::internal;
use crate::edge::params::{self, Params};
use crate::edge::respond;
use crate::edge::{RequestEnv, now_ms, store};

/// Seconds a client may reuse an answer.
const MAX_AGE_S: u32 = 300;

pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    let range = params.range(now_ms())?;
    let interval = params.interval(&[Interval::Day, Interval::Week], Interval::Day)?;
    let limit = params.limit(20, 1000)?;
    let (from, to) = (range.from_ms, range.to_ms);
    let store = store(env)?;
    let series = read::series(&store, project, from, to, interval, Some(Dimension::All))
        .await
        .map_err(internal)?;
    let all_key = (Dimension::All, String::new());
    let mut total = Rollup::default();
    let active: Vec<Value> = interval
        .buckets(from, to)
        .map(|start| {
            let row = series.get(&start).and_then(|m| m.get(&all_key));
            if let Some(row) = row {
                total.merge(row);
            }
            json!({
                "start": format_ms(start),
                "instances": row.map_or(0, |r| r.instances.count()),
            })
        })
        .collect();
    let by = async |dimension: Dimension, key: &str| -> Result<Vec<Value>, ApiError> {
        let rows = read::merged(&store, project, from, to, Some(dimension))
            .await
            .map_err(internal)?;
        let mut list: Vec<(String, u64, u64)> = rows
            .into_iter()
            .filter(|(_, r)| r.count > 0)
            .map(|((_, value), r)| (value, r.instances.count(), r.count))
            .collect();
        list.sort_unstable_by(|a, b| (b.1, b.2).cmp(&(a.1, a.2)).then_with(|| a.0.cmp(&b.0)));
        Ok(list
            .into_iter()
            .take(limit)
            .map(|(value, instances, events)| {
                json!({key: value, "instances": instances, "events": events})
            })
            .collect())
    };
    let versions = by(Dimension::Version, "version").await?;
    let colos = by(Dimension::Colo, "colo").await?;
    let countries = by(Dimension::Country, "country").await?;
    let mut body = json!({
        "project": project,
        "interval": params::interval_name(interval),
        "instances": total.instances.count(),
        "active": active,
        "versions": versions,
        "colos": colos,
        "countries": countries,
    });
    for (k, v) in scope::range_json(range) {
        body[k] = v;
    }
    respond::json(req, body.to_string(), MAX_AGE_S)
}
