//! `GET /v1/projects/{p}/errors?limit=N`: errors grouped by error class, most frequent
//! first (at most `limit`, default 50): each class's count, share of all errors, the
//! first and last hour it was seen in the range (hour starts, from the rollups), its
//! last message (the newest kept, with its exact time; it may lie after the range) and
//! the routes it happened on with their counts (`null` for events without a route).
//! Errors without a class (5xx statuses) are counted as `unclassified`.
//!
//! Under `filter`s the classes, routes and hours come from raw events (or a sample of
//! users, see `read::filtered`); the last message stays the class's last one, whatever
//! the filters.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tally_core::rollup::{Dimension, parse_error_route};
use tally_core::time::Interval;
use tally_core::time::format_ms;
use tally_edge::ApiError;
use tally_storage::filtered::{self as paths, Bucket, Filtered, Path};
use tally_storage::{QueryStore, read};
use worker::{Request, Response};

use super::filtered;
use super::measures::ratio;
use crate::edge::error::internal;
use crate::edge::params::Params;
use crate::edge::respond;
use crate::edge::{RequestEnv, now_ms, store};

/// Seconds a client may reuse an answer.
const MAX_AGE_S: u32 = 60;

/// Routes listed per class; the rest are summed in `other_routes`.
const ROUTES_PER_CLASS: usize = 20;

pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    let range = params.range(now_ms())?;
    let limit = params.limit(50, 1000)?;
    let filters = params.filters()?;
    let (from, to) = (range.from_ms, range.to_ms);
    let store = store(env)?;
    let (all, classes, pairs, seen, rows) = if filters.is_empty() {
        let merged = |dimension| read::merged(&store, project, from, to, Some(dimension));
        let all = merged(Dimension::All)
            .await
            .map_err(internal)?
            .into_values()
            .next()
            .unwrap_or_default();
        let classes = merged(Dimension::ErrorClass).await.map_err(internal)?;
        let pairs = merged(Dimension::ErrorRoute).await.map_err(internal)?;
        let seen = read::first_last_hours(&store, project, from, to, Dimension::ErrorClass)
            .await
            .map_err(internal)?;
        let rows = Filtered {
            rows: Vec::new(),
            path: Path::Rollups,
            from_ms: from,
            to_ms: to,
            scale: 1,
            events_read: 0,
        };
        (all, classes, pairs, seen, rows)
    } else {
        let wanted = [Dimension::All, Dimension::ErrorClass, Dimension::ErrorRoute];
        let bucket = Bucket::Every(Interval::Hour);
        let rows = filtered::Report::new(range, &filters)
            .rows(env, project, &wanted, bucket)
            .await?;
        let seen = paths::first_last(&rows.rows, Dimension::ErrorClass);
        let mut merged = read::merge(&rows.rows);
        let all = merged
            .remove(&(Dimension::All, String::new()))
            .unwrap_or_default();
        let (classes, pairs) = merged
            .into_iter()
            .partition(|((d, _), _)| *d == Dimension::ErrorClass);
        (
            all,
            classes,
            pairs,
            seen,
            Filtered {
                rows: Vec::new(),
                ..rows
            },
        )
    };
    let messages = store.error_messages(project).await.map_err(internal)?;

    let mut routes: BTreeMap<String, Vec<(Option<String>, u64)>> = BTreeMap::new();
    for ((_, value), row) in &pairs {
        match parse_error_route(value) {
            Some((class, route)) if row.count > 0 => {
                routes.entry(class).or_default().push((route, row.count));
            }
            Some(_) => {}
            None => worker::console_error!("unreadable error_route value {value:?}"),
        }
    }
    let mut counted: Vec<(&str, u64)> = classes
        .iter()
        .filter(|(_, r)| r.count > 0)
        .map(|((_, class), r)| (class.as_str(), r.count))
        .collect();
    counted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let classified: u64 = counted.iter().map(|(_, n)| n).sum();
    let list: Vec<Value> = counted
        .iter()
        .take(limit)
        .map(|&(class, count)| {
            let mut on = routes.remove(class).unwrap_or_default();
            on.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let other_routes: u64 = on.iter().skip(ROUTES_PER_CLASS).map(|(_, n)| n).sum();
            on.truncate(ROUTES_PER_CLASS);
            let (first, last) = seen.get(class).copied().unzip();
            json!({
                "error_class": class,
                "count": count,
                "share": ratio(count, all.errors),
                "first_seen": first.map(format_ms),
                "last_seen": last.map(format_ms),
                "last_message": messages.get(class).map(|m| json!({
                    "message": m.message,
                    "at": format_ms(m.timestamp),
                })),
                "routes": on
                    .iter()
                    .map(|(route, n)| json!({"route": route, "count": n}))
                    .collect::<Vec<_>>(),
                "other_routes": other_routes,
            })
        })
        .collect();
    let mut body = json!({
        "project": project,
        "errors": all.errors,
        "unclassified": all.errors.saturating_sub(classified),
        "error_classes": counted.len(),
        "classes": list,
    });
    filtered::describe(&mut body, &filters, &rows);
    respond::json(req, body.to_string(), MAX_AGE_S)
}
