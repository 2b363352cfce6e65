//! `GET /v1/projects/{p}/metrics?interval=day|week|month`: event counts per event name
//! per period, from the `name` rollups. Every period of the range is present and lists
//! every name seen in the range (zero where it had none); `totals` sums each name. Takes
//! `filter`s (see `read::filtered`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use tally_core::rollup::Dimension;
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
    let interval = params.interval(
        &[Interval::Day, Interval::Week, Interval::Month],
        Interval::Day,
    )?;
    let filters = params.filters()?;
    let rows = filtered::Report::new(range, &filters)
        .rows(env, project, &[Dimension::Name], Bucket::Every(interval))
        .await?;
    let series = read::buckets(&rows.rows, interval);
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for merged in series.values() {
        for ((_, name), row) in merged.iter().filter(|(_, r)| r.count > 0) {
            *totals.entry(name.as_str()).or_default() += row.count;
        }
    }
    let data: Vec<Value> = interval
        .buckets(rows.from_ms, rows.to_ms)
        .map(|start| {
            let counts: Map<String, Value> = totals
                .keys()
                .map(|name| {
                    let n = series
                        .get(&start)
                        .and_then(|m| m.get(&(Dimension::Name, (*name).to_owned())))
                        .map_or(0, |r| r.count);
                    ((*name).to_owned(), n.into())
                })
                .collect();
            json!({"start": format_ms(start), "counts": counts})
        })
        .collect();
    let mut body = json!({
        "project": project,
        "interval": params::interval_name(interval),
        "names": totals.keys().collect::<Vec<_>>(),
        "totals": totals,
        "data": data,
    });
    filtered::describe(&mut body, &filters, &rows);
    respond::json(req, body.to_string(), MAX_AGE_S)
}
