//! `GET /v1/projects/{p}/installs?interval=day|week&limit=N`: active instances (distinct
//! hashed `instance` ids, from merged HyperLogLogs) in the range and per day or ISO
//! week (every bucket present), and the instances and events per version, colo and
//! country, most instances first (at most `limit` each, default 20). Takes `filter`s
//! (see `read::filtered`).

use serde_json::{Value, json};
use tally_core::rollup::{Dimension, Rollup};
use tally_core::time::{Interval, format_ms};
use tally_edge::ApiError;
use tally_storage::filtered::Bucket;
use tally_storage::read;
use worker::{Request, Response};

use super::filtered;
use crate::edge::params::{self, Params};
use crate::edge::respond;
use crate::edge::{RequestEnv, now_ms};

/// Seconds a client may reuse an answer.
const MAX_AGE_S: u32 = 300;

pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    let range = params.range(now_ms())?;
    let interval = params.interval(&[Interval::Day, Interval::Week], Interval::Day)?;
    let limit = params.limit(20, 1000)?;
    let filters = params.filters()?;
    let wanted = [
        Dimension::All,
        Dimension::Version,
        Dimension::Colo,
        Dimension::Country,
    ];
    let rows = filtered::Report::new(range, &filters)
        .rows(env, project, &wanted, Bucket::Every(interval))
        .await?;
    let scale = rows.scale;
    let series = read::buckets(&rows.rows, interval);
    let merged = read::merge(&rows.rows);
    let all_key = (Dimension::All, String::new());
    let mut total = Rollup::default();
    let active: Vec<Value> = interval
        .buckets(rows.from_ms, rows.to_ms)
        .map(|start| {
            let row = series.get(&start).and_then(|m| m.get(&all_key));
            if let Some(row) = row {
                total.merge(row);
            }
            json!({
                "start": format_ms(start),
                "instances": row.map_or(0, |r| r.instances.count().saturating_mul(scale)),
            })
        })
        .collect();
    let by = async |dimension: Dimension, key: &str| -> Result<Vec<Value>, ApiError> {
        let mut list: Vec<(String, u64, u64)> = merged
            .iter()
            .filter(|((d, _), r)| *d == dimension && r.count > 0)
            .map(|((_, value), r)| {
                let instances = r.instances.count().saturating_mul(scale);
                (value.clone(), instances, r.count)
            })
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
        "instances": total.instances.count().saturating_mul(scale),
        "active": active,
        "versions": versions,
        "colos": colos,
        "countries": countries,
    });
    filtered::describe(&mut body, &filters, &rows);
    respond::json(req, body.to_string(), MAX_AGE_S)
}
