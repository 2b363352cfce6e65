//! The image CDN seed's analytics API: `GET /v1/analytics/overview` and
//! `GET /v1/analytics/images/{id}`. The project is the read token's (the seed's image
//! owner); an event's `item` is the image id, and `variant`, `country`, `status` (as its
//! class, `2xx`) and `bytes` are the seed's variant, country, status code and bandwidth.
//!
//! The range is `days` (default 30, at most 90: today and the days before it) or
//! `start`/`end` dates (`YYYY-MM-DD`, both included, at most 90 days); anything else is
//! a 400 `invalid_range` saying what to fix. Every count is exact, from day rows and the
//! hours of days not yet rolled.

use serde_json::{Value, json};
use tally_core::rollup::{Dimension, Rollup, pair_prefix, pair_second};
use tally_core::time::{DAY_MS, Interval, date_label, date_of, parse_date};
use tally_edge::ApiError;
use tally_storage::ValueMatch;
use tally_storage::read::{self, Merged};
use worker::{Request, Response};

use crate::access::token_project;
use crate::edge::error::internal;
use crate::edge::params::{Params, decode_segment};
use crate::edge::respond::json_value;
use crate::edge::{RequestEnv, now_ms, store};

/// Days read when the query names no range.
const DEFAULT_DAYS: i64 = 30;
/// The longest range, in days, as the seed documents.
const MAX_DAYS: i64 = 90;
/// Images listed in the overview's `top_images`.
const TOP_IMAGES: usize = 10;

/// `GET /v1/analytics/overview`: total requests and bandwidth, the top images, and the
/// breakdowns by country, variant and status class.
pub async fn overview(req: &Request, env: &RequestEnv) -> Result<Response, ApiError> {
    let (project, window) = admit(req, env).await?;
    let store = store(env)?;
    let (from, to) = (window.from_ms, window.to_ms);
    let mut parts = Vec::new();
    for dimension in [
        Dimension::All,
        Dimension::Item,
        Dimension::Country,
        Dimension::Variant,
        Dimension::Status,
    ] {
        let merged = read::merged(&store, &project, from, to, Some(dimension))
            .await
            .map_err(internal)?;
        parts.push(merged);
    }
    let total = parts[0].values().next().cloned().unwrap_or_default();
    let mut top_images = breakdown(&parts[1], "image_id", |v| Some(v.to_owned()));
    top_images.truncate(TOP_IMAGES);
    let mut body = window.json();
    body["requests"] = total.count.into();
    body["bandwidth_bytes"] = total.bytes.into();
    body["top_images"] = top_images.into();
    body["countries"] = breakdown(&parts[2], "country", |v| Some(v.to_owned())).into();
    body["variants"] = breakdown(&parts[3], "variant", |v| Some(v.to_owned())).into();
    body["statuses"] = breakdown(&parts[4], "status", |v| Some(v.to_owned())).into();
    json_value(200, &body, Some("private, max-age=60"))
}

/// `GET /v1/analytics/images/{id}`: one image's requests and bandwidth, by variant, by
/// country, and per day (every day of the range, zeros included).
pub async fn image(req: &Request, env: &RequestEnv, raw_id: &str) -> Result<Response, ApiError> {
    let (project, window) = admit(req, env).await?;
    let id = decode_segment(raw_id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_image_id",
                "the image id in the path is not percent-encoded UTF-8 text",
            )
        })?;
    let store = store(env)?;
    let (from, to) = (window.from_ms, window.to_ms);
    let exact = ValueMatch::Exact(&id);
    let days = read::series_matching(
        &store,
        &project,
        from,
        to,
        Interval::Day,
        Dimension::Item,
        exact,
    )
    .await
    .map_err(internal)?;
    let prefix = pair_prefix(&id);
    let mut pairs = Vec::new();
    for dimension in [Dimension::ItemVariant, Dimension::ItemCountry] {
        let merged = read::merged_matching(
            &store,
            &project,
            from,
            to,
            dimension,
            ValueMatch::Prefix(&prefix),
        )
        .await
        .map_err(internal)?;
        pairs.push(merged);
    }
    let mut total = Rollup::default();
    let timeseries: Vec<Value> = Interval::Day
        .buckets(from, to)
        .map(|day| {
            let row = days
                .get(&day)
                .and_then(|m| m.values().next())
                .cloned()
                .unwrap_or_default();
            total.merge(&row);
            json!({
                "date": Interval::Day.label(day),
                "requests": row.count,
                "bandwidth_bytes": row.bytes,
            })
        })
        .collect();
    let mut body = window.json();
    body["image_id"] = id.clone().into();
    body["requests"] = total.count.into();
    body["bandwidth_bytes"] = total.bytes.into();
    body["variants"] = breakdown(&pairs[0], "variant", pair_second).into();
    body["countries"] = breakdown(&pairs[1], "country", pair_second).into();
    body["timeseries"] = timeseries.into();
    json_value(200, &body, Some("private, max-age=60"))
}

/// Checks the read token, and reads the range.
async fn admit(req: &Request, env: &RequestEnv) -> Result<(String, Window), ApiError> {
    let project = token_project(req, env).await?;
    let params = Params::of(req)?;
    let window = window(
        params.get("days"),
        params.get("start"),
        params.get("end"),
        now_ms(),
    )
    .map_err(|m| ApiError::bad_request("invalid_range", m))?;
    Ok((project, window))
}

/// Rows of one dimension as `[{key: value, "requests", "bandwidth_bytes"}]`, most
/// requests first (then by value); `label` turns a stored value into the one shown, or
/// skips it.
fn breakdown(merged: &Merged, key: &str, label: impl Fn(&str) -> Option<String>) -> Vec<Value> {
    let mut rows: Vec<(String, &Rollup)> = merged
        .iter()
        .filter_map(|((_, value), row)| label(value).map(|l| (l, row)))
        .collect();
    rows.sort_by(|(a, x), (b, y)| y.count.cmp(&x.count).then_with(|| a.cmp(b)));
    rows.into_iter()
        .map(|(value, row)| {
            let mut item = serde_json::Map::new();
            item.insert(key.to_owned(), value.into());
            item.insert("requests".into(), row.count.into());
            item.insert("bandwidth_bytes".into(), row.bytes.into());
            Value::Object(item)
        })
        .collect()
}

/// A range of whole UTC days, `[from_ms, to_ms)`; the last one may be today, which
/// ends now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    from_ms: i64,
    to_ms: i64,
}

impl Window {
    /// The range as the answers show it: first and last date, and the number of days.
    fn json(self) -> Value {
        json!({
            "start": date_label(date_of(self.from_ms)),
            "end": date_label(date_of(self.to_ms - 1)),
            "days": (self.to_ms - self.from_ms + DAY_MS - 1) / DAY_MS,
        })
    }
}

/// The range of `days`, or of `start`/`end`, at `now_ms`.
fn window(
    days: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    now_ms: i64,
) -> Result<Window, String> {
    let today = Interval::Day.floor(now_ms);
    let date = |name: &str, text: &str| {
        parse_date(text).ok_or_else(|| format!("{name} must be a date as YYYY-MM-DD, not {text:?}"))
    };
    if days.is_some() && (start.is_some() || end.is_some()) {
        return Err("use either days or start/end, not both".into());
    }
    if start.is_none() && end.is_none() {
        let n = match days {
            None => DEFAULT_DAYS,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_DAYS).contains(n))
                .ok_or_else(|| {
                    format!("days must be a whole number from 1 to {MAX_DAYS}, not {text:?}")
                })?,
        };
        return Ok(Window {
            from_ms: today - (n - 1) * DAY_MS,
            to_ms: now_ms + 1,
        });
    }
    let last = match end {
        Some(text) => date("end", text)?,
        None => today,
    };
    let first = match start {
        Some(text) => date("start", text)?,
        None => last - (DEFAULT_DAYS - 1) * DAY_MS,
    };
    if first > last {
        return Err("start must not be after end".into());
    }
    if last > today + DAY_MS {
        return Err("end must not be after tomorrow".into());
    }
    if first < tally_core::range::EARLIEST_MS {
        return Err("start must not be before 2000-01-01".into());
    }
    let n = (last - first) / DAY_MS + 1;
    if n > MAX_DAYS {
        return Err(format!(
            "start to end is {n} days; the most is {MAX_DAYS}: ask for less"
        ));
    }
    Ok(Window {
        from_ms: first,
        to_ms: last + DAY_MS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-18T14:30:00Z.
    const NOW: i64 = 1_737_210_600_000;
    /// 2025-01-18T00:00:00Z.
    const TODAY: i64 = 1_737_158_400_000;

    fn check(
        days: Option<&str>,
        start: Option<&str>,
        end: Option<&str>,
        expected: Result<(i64, i64, Value), &str>,
    ) {
        let got = window(days, start, end, NOW);
        match expected {
            Ok((from_ms, to_ms, shown)) => {
                let w = got.unwrap_or_else(|e| panic!("{days:?} {start:?} {end:?}: {e}"));
                assert_eq!(w, Window { from_ms, to_ms });
                assert_eq!(w.json(), shown);
            }
            Err(fragment) => {
                let e = got.expect_err("rejected");
                assert!(e.contains(fragment), "{e:?} lacks {fragment:?}");
            }
        }
    }

    #[test]
    fn windows() {
        let shown =
            |start: &str, end: &str, days: i64| json!({"start": start, "end": end, "days": days});
        check(
            None,
            None,
            None,
            Ok((
                TODAY - 29 * DAY_MS,
                NOW + 1,
                shown("2024-12-20", "2025-01-18", 30),
            )),
        );
        check(
            Some("1"),
            None,
            None,
            Ok((TODAY, NOW + 1, shown("2025-01-18", "2025-01-18", 1))),
        );
        check(
            Some("90"),
            None,
            None,
            Ok((
                TODAY - 89 * DAY_MS,
                NOW + 1,
                shown("2024-10-21", "2025-01-18", 90),
            )),
        );
        check(
            None,
            Some("2025-01-01"),
            Some("2025-01-03"),
            Ok((
                TODAY - 17 * DAY_MS,
                TODAY - 14 * DAY_MS,
                shown("2025-01-01", "2025-01-03", 3),
            )),
        );
        check(
            None,
            Some("2025-01-10"),
            None,
            Ok((
                TODAY - 8 * DAY_MS,
                TODAY + DAY_MS,
                shown("2025-01-10", "2025-01-18", 9),
            )),
        );
        check(
            None,
            None,
            Some("2025-01-17"),
            Ok((
                TODAY - 30 * DAY_MS,
                TODAY,
                shown("2024-12-19", "2025-01-17", 30),
            )),
        );
        check(
            None,
            Some("2024-10-21"),
            Some("2025-01-18"),
            Ok((
                TODAY - 89 * DAY_MS,
                TODAY + DAY_MS,
                shown("2024-10-21", "2025-01-18", 90),
            )),
        );
    }

    #[test]
    fn rejections() {
        check(Some("0"), None, None, Err("from 1 to 90"));
        check(Some("91"), None, None, Err("from 1 to 90"));
        check(Some("x"), None, None, Err("not \"x\""));
        check(
            Some("7"),
            Some("2025-01-01"),
            None,
            Err("either days or start/end"),
        );
        check(
            None,
            Some("2025-1-1"),
            None,
            Err("start must be a date as YYYY-MM-DD"),
        );
        check(None, None, Some("18/01/2025"), Err("end must be a date"));
        check(
            None,
            Some("2025-01-10"),
            Some("2025-01-09"),
            Err("not be after end"),
        );
        check(None, Some("2024-10-20"), Some("2025-01-18"), Err("91 days"));
        check(
            None,
            Some("2025-01-18"),
            Some("2025-01-20"),
            Err("after tomorrow"),
        );
        check(
            None,
            Some("1999-12-31"),
            Some("2000-01-01"),
            Err("2000-01-01"),
        );
    }
}
