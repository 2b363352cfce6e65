//! The track API seed's reads: `GET /metrics` (event counts per name and period) and
//! `GET /sessions` (play/stop sessions per period), for the read token's project, with
//! the seed's shapes: `{"status": "success", "data": [...]}`, and every error as
//! `{"status": "error", "message": ...}` with the seed's messages (plus Tally's `code`).
//!
//! `start_date` and `end_date` (`YYYY-MM-DD`, both included) are required; `group_by`
//! is `day` (default), `week` (weeks start on Sunday, as the seed's) or `month`, each
//! labelled by its first day. `user_id` narrows both to one user: stored users are keyed
//! hashes, so the raw id is hashed with the same `ID_SECRET` as ingest uses. Rollups are
//! not per user, so a user's metrics count their raw events, which exist only within
//! the project's retention; without `user_id`, metrics come from the rollups.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use tally_core::hash::identifier;
use tally_core::range::EARLIEST_MS;
use tally_core::rollup::Dimension;
use tally_core::time::{DAY_MS, Interval, parse_date};
use tally_edge::ApiError;
use tally_storage::{FilteredReads, read, sessions};
use worker::{Request, Response};

use crate::access::token_project;
use crate::edge::error::internal;
use crate::edge::params::Params;
use crate::edge::respond::json_value;
use crate::edge::{ID_SECRET, RequestEnv, store};

/// The longest range, in days, as for every Tally query.
const MAX_DAYS: i64 = 3660;

/// `GET /metrics`: `[{"date", "<event name>": count, ...}]` for periods with events,
/// oldest first.
pub async fn metrics(req: &Request, env: &RequestEnv) -> Result<Response, ApiError> {
    answer(metrics_data(req, env).await, "Failed to fetch metrics")
}

/// `GET /sessions`: `[{"date", "totalDuration", "sessionCount", "averageDuration"}]`
/// (durations in whole seconds, as the original answers) for periods in which closed sessions started, oldest first.
pub async fn sessions(req: &Request, env: &RequestEnv) -> Result<Response, ApiError> {
    answer(
        sessions_data(req, env).await,
        "Failed to fetch session metrics",
    )
}

async fn metrics_data(req: &Request, env: &RequestEnv) -> Result<Vec<Value>, ApiError> {
    let q = TrackQuery::read(req, env).await?;
    let store = store(env)?;
    let mut counts: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    match q.user_hash(env)? {
        Some(hash) => {
            let days = store
                .user_event_counts(&q.project, &hash, q.from_ms, q.to_ms)
                .await
                .map_err(internal)?;
            for day in days {
                *counts
                    .entry(q.interval.floor(day.day))
                    .or_default()
                    .entry(day.name)
                    .or_default() += day.count;
            }
        }
        None => {
            let series = read::series(
                &store,
                &q.project,
                q.from_ms,
                q.to_ms,
                q.interval,
                Some(Dimension::Name),
            )
            .await
            .map_err(internal)?;
            for (start, merged) in series {
                let names = counts.entry(start).or_default();
                for ((_, name), row) in merged {
                    *names.entry(name).or_default() += row.count;
                }
            }
        }
    }
    Ok(counts
        .into_iter()
        .map(|(start, names)| {
            let mut row: Map<String, Value> = names
                .into_iter()
                .map(|(name, n)| (name, Value::from(n)))
                .collect();
            // Last, so that an event named "date" cannot hide the period's date.
            row.insert("date".into(), q.interval.label(start).into());
            Value::Object(row)
        })
        .collect())
}

async fn sessions_data(req: &Request, env: &RequestEnv) -> Result<Vec<Value>, ApiError> {
    let q = TrackQuery::read(req, env).await?;
    let store = store(env)?;
    let stats = match q.user_hash(env)? {
        Some(hash) => {
            sessions::user_session_stats(&store, &q.project, &hash, q.from_ms, q.to_ms, q.interval)
                .await
        }
        None => sessions::session_stats(&store, &q.project, q.from_ms, q.to_ms, q.interval).await,
    }
    .map_err(internal)?;
    Ok(stats
        .into_iter()
        .filter(|(_, s)| s.sessions > 0)
        .map(|(start, s)| {
            json!({
                "date": q.interval.label(start),
                "totalDuration": seconds(s.total_ms as f64),
                "sessionCount": s.sessions,
                "averageDuration": seconds(s.total_ms as f64 / s.sessions as f64),
            })
        })
        .collect())
}

/// The seed's answer: its success shape, or its error shape with the status and code of
/// the [`ApiError`] and, for internal failures, the seed's own message.
fn answer(data: Result<Vec<Value>, ApiError>, failure: &str) -> Result<Response, ApiError> {
    let (status, body) = match data {
        Ok(data) => (200, json!({"status": "success", "data": data})),
        Err(e) => {
            let message = if e.status >= 500 && e.code == "internal" {
                failure.to_owned()
            } else {
                e.message
            };
            (
                e.status,
                json!({"status": "error", "message": message, "code": e.code}),
            )
        }
    };
    json_value(status, &body, None)
}

/// A request of the seed's paths that no endpoint answers (a 405), in the seed's error
/// shape.
///
/// # Errors
///
/// 500 when the response cannot be built.
pub fn refuse(error: ApiError) -> Result<Response, ApiError> {
    answer(Err(error), "")
}

/// A checked `/metrics` or `/sessions` request.
struct TrackQuery {
    project: String,
    from_ms: i64,
    to_ms: i64,
    interval: Interval,
    user_id: Option<String>,
}

impl TrackQuery {
    async fn read(req: &Request, env: &RequestEnv) -> Result<Self, ApiError> {
        let project = token_project(req, env).await?;
        let params = Params::of(req)?;
        let parsed = parse(
            params.non_empty("start_date"),
            params.non_empty("end_date"),
            params.non_empty("group_by"),
        )
        .map_err(|m| ApiError::bad_request("invalid_query", m))?;
        Ok(Self {
            project,
            from_ms: parsed.0,
            to_ms: parsed.1,
            interval: parsed.2,
            user_id: params.non_empty("user_id").map(str::to_owned),
        })
    }

    /// The keyed hash of `user_id`, as ingest stored it, if one was given.
    fn user_hash(&self, env: &RequestEnv) -> Result<Option<String>, ApiError> {
        let Some(user) = &self.user_id else {
            return Ok(None);
        };
        let secret = env.secret(ID_SECRET).map_err(|_| {
            worker::console_error!("the {ID_SECRET} secret is not set");
            ApiError::new(
                503,
                "misconfigured",
                "filtering by user_id needs the query worker's ID_SECRET secret (the same as \
                 ingest's); the operator must set it",
            )
        })?;
        Ok(Some(identifier(
            secret.to_string().as_bytes(),
            &self.project,
            user,
        )))
    }
}

/// The range `[from, to)` and the interval of the seed's parameters.
fn parse(
    start: Option<&str>,
    end: Option<&str>,
    group_by: Option<&str>,
) -> Result<(i64, i64, Interval), String> {
    let (Some(start), Some(end)) = (start, end) else {
        return Err("start_date and end_date are required".into());
    };
    let (Some(from), Some(last)) = (parse_date(start), parse_date(end)) else {
        return Err("Invalid date format. Use YYYY-MM-DD".into());
    };
    let interval = match group_by.unwrap_or("day") {
        "day" => Interval::Day,
        "week" => Interval::SundayWeek,
        "month" => Interval::Month,
        other => {
            return Err(format!(
                "Invalid group_by {other:?}. Use day, week or month"
            ));
        }
    };
    if from > last {
        return Err("start_date must not be after end_date".into());
    }
    if from < EARLIEST_MS {
        return Err("start_date must not be before 2000-01-01".into());
    }
    if (last - from) / DAY_MS + 1 > MAX_DAYS {
        return Err(format!(
            "start_date to end_date is longer than {MAX_DAYS} days; ask for less"
        ));
    }
    Ok((from, last + DAY_MS, interval))
}

/// A duration in milliseconds as whole seconds, rounded to the nearest, as the track API
/// answers (`"totalDuration": 7200`): its clients read integers.
pub fn seconds(ms: f64) -> Value {
    let s = (ms / 1000.0).round();
    if s.is_finite() && s.abs() < 9.0e15 {
        Value::from(s as i64)
    } else {
        Value::from(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-01T00:00:00Z.
    const JAN1: i64 = 1_735_689_600_000;

    #[test]
    fn seed_parameters() {
        let ok = |s, e, g| parse(Some(s), Some(e), g).unwrap();
        assert_eq!(
            ok("2025-01-01", "2025-01-31", None),
            (JAN1, JAN1 + 31 * DAY_MS, Interval::Day)
        );
        assert_eq!(
            ok("2025-01-01", "2025-01-01", Some("week")),
            (JAN1, JAN1 + DAY_MS, Interval::SundayWeek)
        );
        assert_eq!(
            ok("2025-01-01", "2025-02-01", Some("month")).2,
            Interval::Month
        );
        let err = |s: Option<&str>, e: Option<&str>, g: Option<&str>| parse(s, e, g).unwrap_err();
        let required = "start_date and end_date are required";
        assert_eq!(err(None, Some("2025-01-31"), None), required);
        assert_eq!(err(Some("2025-01-01"), None, None), required);
        assert_eq!(err(None, None, Some("day")), required);
        let format = "Invalid date format. Use YYYY-MM-DD";
        for bad in [
            "2025-1-01",
            "01/01/2025",
            "2025-02-30",
            "2025-01-01T00:00:00Z",
        ] {
            assert_eq!(err(Some(bad), Some("2025-01-31"), None), format, "{bad}");
            assert_eq!(err(Some("2025-01-01"), Some(bad), None), format, "{bad}");
        }
        assert!(
            err(Some("2025-01-01"), Some("2025-01-31"), Some("year"))
                .contains("Use day, week or month")
        );
        assert!(err(Some("2025-01-31"), Some("2025-01-01"), None).contains("not be after"));
        assert!(err(Some("1999-12-31"), Some("2000-01-31"), None).contains("2000-01-01"));
        assert!(err(Some("2000-01-01"), Some("2025-01-01"), None).contains("3660 days"));
    }

    #[test]
    fn seconds_are_whole_when_they_can_be() {
        assert_eq!(seconds(7_200_000.0), Value::from(7200));
        assert_eq!(seconds(480_000.0), Value::from(480));
        // The original answers whole seconds; Tally answered 0.245 and 66.667.
        assert_eq!(seconds(245.0), Value::from(0));
        assert_eq!(seconds(1_500.0), Value::from(2));
        assert_eq!(seconds(1_000.0 / 3.0), Value::from(0));
        assert_eq!(seconds(200_000.0 / 3.0), Value::from(67));
        assert_eq!(seconds(0.0), Value::from(0));
    }
}
