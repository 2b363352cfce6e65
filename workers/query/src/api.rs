//! Request plumbing shared by the read endpoints: query parameters, ranges, limits and
//! intervals; JSON answers with `Cache-Control`, a strong ETag (`If-None-Match` → 304)
//! and, for heavy answers, the KV cache.
//!
//! Every range is UTC and whole hours: `from` rounds down and `to` up to the hour, the
//! rows rollups are kept in. So one hour's requests ask the same question, answer with
//! the same body and share one ETag and one cache entry.

use sha2::{Digest, Sha256};
use tally_core::ApiError;
use tally_core::hash::hex;
use tally_core::project::Project;
use tally_core::range::{self, Limits, Query, Range};
use tally_core::time::{DAY_MS, HOUR_MS, Interval, format_ms};
use tally_core::validate::is_valid_slug;
use tally_storage::cloudflare::KvCache;
use tally_storage::{AdminStore, Cache};
use worker::{Date, Request, Response};

use crate::RequestEnv;

use crate::error::internal;

/// Ranges at least this long are heavy: their answers are kept in KV.
pub const KV_MIN_RANGE_MS: i64 = 7 * DAY_MS;

/// The query parameters of a request.
#[derive(Debug)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// The request's parameters; the first of a repeated name counts.
    pub fn of(req: &Request) -> Result<Self, ApiError> {
        let url = req.url().map_err(internal)?;
        Ok(Self {
            pairs: url
                .query_pairs()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The range from `from`/`to` or `days`, in whole hours.
    ///
    /// # Errors
    ///
    /// 400 `invalid_range` saying what is wrong.
    pub fn range(&self, now_ms: i64) -> Result<Range, ApiError> {
        let query = Query {
            from: self.get("from"),
            to: self.get("to"),
            days: self.get("days"),
        };
        let range = range::resolve(query, now_ms, Limits::default())
            .map_err(|m| ApiError::bad_request("invalid_range", m))?;
        Ok(whole_hours(range))
    }

    /// `limit`: a whole number from 1 to `max`, `default` when absent.
    ///
    /// # Errors
    ///
    /// 400 `invalid_limit`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_limit",
                        format!("limit must be a whole number from 1 to {max}, not {text:?}"),
                    )
                }),
        }
    }

    /// `interval`, one of `allowed` (by name), `default` when absent.
    ///
    /// # Errors
    ///
    /// 400 `invalid_interval` naming the allowed ones.
    pub fn interval(&self, allowed: &[Interval], default: Interval) -> Result<Interval, ApiError> {
        let Some(text) = self.get("interval") else {
            return Ok(default);
        };
        Interval::parse(text)
            .filter(|i| allowed.contains(i))
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|i| interval_name(*i)).collect();
                ApiError::bad_request(
                    "invalid_interval",
                    format!("interval must be one of {}, not {text:?}", names.join(", ")),
                )
            })
    }
}

/// Rounds a range out to whole hours.
pub fn whole_hours(range: Range) -> Range {
    let to = range.to_ms.div_euclid(HOUR_MS) * HOUR_MS;
    Range {
        from_ms: Interval::Hour.floor(range.from_ms),
        to_ms: if to == range.to_ms { to } else { to + HOUR_MS },
    }
}

/// The API name of an interval (`week` is the ISO week, from Monday).
pub fn interval_name(interval: Interval) -> &'static str {
    match interval {
        Interval::Minute => "minute",
        Interval::Hour => "hour",
        Interval::Day => "day",
        Interval::Week => "week",
        Interval::SundayWeek => "sunday_week",
        Interval::Month => "month",
    }
}

/// The current time, epoch milliseconds.
pub fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// Checks the project slug of a path.
///
/// # Errors
///
/// 400 `invalid_project`.
pub fn check_project(project: &str) -> Result<(), ApiError> {
    if is_valid_slug(project) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_project",
            format!("{project:?} is not a project slug ([a-z0-9-]{{1,64}})"),
        ))
    }
}

/// The project's settings (for its raw-event retention).
///
/// # Errors
///
/// 404 `unknown_project` when there is no such project.
pub async fn project(env: &RequestEnv, slug: &str) -> Result<Project, ApiError> {
    crate::store(env)?
        .project(slug)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::new(
                404,
                "unknown_project",
                format!("there is no project {slug:?}"),
            )
        })
}

/// The part of `range` whose raw events are all still kept: raw events older than the
/// project's retention are purged, so a range reaching further back starts at the first
/// whole hour within retention. `None` when nothing of the range is left.
pub fn within_retention(range: Range, retention_days: u32, now_ms: i64) -> Option<Range> {
    let oldest = now_ms - i64::from(retention_days) * DAY_MS;
    let oldest = whole_hours(Range {
        from_ms: oldest,
        to_ms: oldest,
    })
    .to_ms;
    let from_ms = range.from_ms.max(oldest);
    (from_ms < range.to_ms).then_some(Range {
        from_ms,
        to_ms: range.to_ms,
    })
}

/// The answer for a range wholly older than raw retention.
pub fn past_retention(retention_days: u32) -> ApiError {
    ApiError::bad_request(
        "invalid_range",
        format!(
            "the range ends before this project's raw events begin (they are kept \
             {retention_days} days); ask for a more recent range"
        ),
    )
}

/// The `from` and `to` members every answer carries.
pub fn range_json(range: Range) -> [(&'static str, serde_json::Value); 2] {
    [
        ("from", format_ms(range.from_ms).into()),
        ("to", format_ms(range.to_ms).into()),
    ]
}

/// A strong ETag of a body: a quoted hex SHA-256 prefix (128 bits).
pub fn etag(body: &str) -> String {
    format!("\"{}\"", &hex(&Sha256::digest(body.as_bytes()))[..32])
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, as RFC 9110
/// prescribes for `If-None-Match`).
pub fn none_match(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A JSON answer that private caches may keep `max_age_s` seconds, with a strong ETag;
/// 304 without a body when the request's `If-None-Match` holds it.
///
/// # Errors
///
/// 500 when the response cannot be built.
pub fn json(req: &Request, body: String, max_age_s: u32) -> Result<Response, ApiError> {
    let tag = etag(&body);
    let matched = req
        .headers()
        .get("if-none-match")
        .ok()
        .flatten()
        .is_some_and(|h| none_match(&h, &tag));
    let mut response = if matched {
        Response::empty().map_err(internal)?.with_status(304)
    } else {
        let mut r = Response::ok(body).map_err(internal)?;
        r.headers_mut()
            .set("content-type", "application/json")
            .map_err(internal)?;
        r
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("etag", tag.as_str()),
        ("cache-control", &format!("private, max-age={max_age_s}")),
        ("vary", "authorization"),
    ] {
        headers.set(name, value).map_err(internal)?;
    }
    Ok(response)
}

/// Whether an answer came from the KV cache, for the `x-tally-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kv {
    /// The range is short: KV is not used.
    Bypass,
    Hit,
    Miss,
}

/// The answer body for `query` (the project and every normalized parameter that shapes
/// the answer): from KV when `heavy` and cached there, else from `compute`, then kept in
/// KV for `ttl_s` seconds. The key holds the project in the clear and a hash of the
/// whole query, so one project's answer is never another's. KV failures are logged and
/// the answer computed.
///
/// # Errors
///
/// `compute`'s error.
pub async fn cached<F>(
    env: &RequestEnv,
    project: &str,
    query: &str,
    heavy: bool,
    ttl_s: u32,
    compute: F,
) -> Result<(String, Kv), ApiError>
where
    F: AsyncFnOnce() -> Result<serde_json::Value, ApiError>,
{
    if !heavy {
        return Ok((compute().await?.to_string(), Kv::Bypass));
    }
    let key = kv_key(project, query);
    let kv = match env.kv(crate::CACHE) {
        Ok(kv) => Some(KvCache::new(kv)),
        Err(e) => {
            worker::console_error!("no KV binding {}: {e}", crate::CACHE);
            None
        }
    };
    if let Some(kv) = &kv {
        match kv.get(&key).await {
            Ok(Some(body)) => return Ok((body, Kv::Hit)),
            Ok(None) => {}
            Err(e) => worker::console_error!("KV read of {key}: {e}"),
        }
    }
    let body = compute().await?.to_string();
    if let Some(kv) = &kv
        && let Err(e) = kv.put(&key, &body, ttl_s).await
    {
        worker::console_error!("KV write of {key}: {e}");
    }
    Ok((body, Kv::Miss))
}

/// The KV key of a query: `q1:{project}:{hash}`.
pub fn kv_key(project: &str, query: &str) -> String {
    let digest = Sha256::digest(format!("{project}\n{query}").as_bytes());
    format!("q1:{project}:{}", &hex(&digest)[..40])
}

/// [`json`] plus the `x-tally-cache` header telling whether KV answered.
///
/// # Errors
///
/// 500 when the response cannot be built.
pub fn json_cached(
    req: &Request,
    (body, kv): (String, Kv),
    max_age_s: u32,
) -> Result<Response, ApiError> {
    let mut response = json(req, body, max_age_s)?;
    let value = match kv {
        Kv::Bypass => return Ok(response),
        Kv::Hit => "hit",
        Kv::Miss => "miss",
    };
    response
        .headers_mut()
        .set("x-tally-cache", value)
        .map_err(internal)?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MS;

    #[test]
    fn ranges_round_out_to_whole_hours() {
        let check = |from, to, expected: (i64, i64)| {
            let got = whole_hours(Range {
                from_ms: from,
                to_ms: to,
            });
            assert_eq!((got.from_ms, got.to_ms), expected, "[{from}, {to})");
        };
        check(10 * H, 12 * H, (10 * H, 12 * H));
        check(10 * H + 1, 12 * H + 1, (10 * H, 13 * H));
        check(10 * H - 1, 12 * H - 1, (9 * H, 12 * H));
    }

    #[test]
    fn retention_cuts_the_start_to_a_whole_hour_within_it() {
        let now = 100 * DAY_MS + 30 * 60_000;
        let range = |from_ms, to_ms| Range { from_ms, to_ms };
        // 10 days back is 90 days 00:30; the first whole hour within is 01:00.
        assert_eq!(
            within_retention(range(0, 101 * DAY_MS), 10, now),
            Some(range(90 * DAY_MS + H, 101 * DAY_MS))
        );
        assert_eq!(
            within_retention(range(95 * DAY_MS, 96 * DAY_MS), 10, now),
            Some(range(95 * DAY_MS, 96 * DAY_MS))
        );
        assert_eq!(within_retention(range(0, 90 * DAY_MS), 10, now), None);
    }

    #[test]
    fn etags_are_strong_and_if_none_match_compares_weakly() {
        let tag = etag("{\"a\":1}");
        assert_eq!(tag.len(), 34);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_ne!(tag, etag("{\"a\":2}"));
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"x\"", &tag));
        assert!(!none_match("", &tag));
    }

    #[test]
    fn kv_keys_separate_projects_and_queries() {
        let a = kv_key("a", "timeseries|1|2|day");
        assert!(a.starts_with("q1:a:"));
        assert_ne!(a, kv_key("b", "timeseries|1|2|day"));
        assert_ne!(a, kv_key("a", "timeseries|1|2|week"));
        assert!(a.len() < 512, "KV keys are at most 512 bytes");
    }
}
