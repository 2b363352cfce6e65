//! Reading requests: the one query-parameter reader ([`Params`]) and what it reads —
//! ranges, limits, intervals — and percent-encoded path segments.
//!
//! Ranges of the read API are UTC and whole hours: `from` rounds down and `to` up to the
//! hour, the rows rollups are kept in. So one hour's requests ask the same question,
//! answer with the same body and share one ETag and one cache entry.

use tally_core::filter::{self, Filters};
use tally_core::range::{self, Limits, Query, Range};
use tally_core::time::{DAY_MS, HOUR_MS, Interval};
use tally_edge::ApiError;
use worker::{Request, Url};

use super::error::{internal, refused};

/// The query parameters of a request; the first of a repeated name counts.
#[derive(Debug)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The request's parameters.
    ///
    /// # Errors
    ///
    /// 500 when the request's URL cannot be read, which the runtime never allows.
    pub fn of(req: &Request) -> Result<Self, ApiError> {
        Ok(Self::from_url(&req.url().map_err(internal)?))
    }

    /// The parameters of `url`.
    pub fn from_url(url: &Url) -> Self {
        Self(url.query_pairs().into_owned().collect())
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, if given and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// The value of `name` without surrounding white space, if that leaves any.
    pub fn trimmed(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every `filter` parameter, read by the one grammar (`tally_core::filter`).
    ///
    /// # Errors
    ///
    /// 400 `invalid_filter` with core's message naming the problem.
    pub fn filters(&self) -> Result<Filters, ApiError> {
        let texts = self.0.iter().filter(|(k, _)| k == "filter");
        filter::parse(texts.map(|(_, v)| v.as_str())).map_err(ApiError::from)
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
        Ok(whole_hours(resolve_range(
            query,
            now_ms,
            Limits::default(),
        )?))
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

/// The range a query asks for at `now_ms`, within `limits`.
///
/// # Errors
///
/// 400 `invalid_range` with core's message saying what is wrong.
pub fn resolve_range(query: Query<'_>, now_ms: i64, limits: Limits) -> Result<Range, ApiError> {
    range::resolve(query, now_ms, limits).map_err(|e| refused("invalid_range", e))
}

/// Rounds a range out to whole hours.
pub fn whole_hours(range: Range) -> Range {
    let to = range.to_ms.div_euclid(HOUR_MS) * HOUR_MS;
    Range {
        from_ms: Interval::Hour.floor(range.from_ms),
        to_ms: if to == range.to_ms { to } else { to + HOUR_MS },
    }
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

/// A percent-encoded path segment as text: `None` when it decodes to bytes that are not
/// UTF-8 or holds a `%` not followed by two hex digits.
pub fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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
    fn parameters_read_the_first_of_a_name() {
        let url = Url::parse("https://q.example/x?a=1&a=2&b=&c=%20z%20&d=%20").unwrap();
        let params = Params::from_url(&url);
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), Some(""));
        assert_eq!(params.non_empty("b"), None);
        assert_eq!(params.trimmed("c"), Some("z"));
        assert_eq!(params.non_empty("d"), Some(" "));
        assert_eq!(params.trimmed("d"), None);
        assert_eq!(params.get("e"), None);
    }

    #[test]
    fn filters_are_every_filter_parameter_percent_decoded_once() {
        let url = Url::parse(
            "https://q.example/x?filter=route%3A%2Fapi%2F*&days=7&filter=country!%3Dus&filter=name:a%252F",
        )
        .unwrap();
        let filters = Params::from_url(&url).filters().unwrap();
        let texts: Vec<String> = filters.iter().map(|f| f.text()).collect();
        assert_eq!(texts, ["name:a%2F", "route:/api/*", "country!=US"]);
        let url = Url::parse("https://q.example/x?filter=planet:mars").unwrap();
        let e = Params::from_url(&url).filters().unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_filter"));
        assert!(e.message.contains("\"planet\""), "{}", e.message);
        assert_eq!(e.extra["field"], "filter");
        let url = Url::parse("https://q.example/x?filters=x").unwrap();
        assert!(Params::from_url(&url).filters().unwrap().is_empty());
    }

    #[test]
    fn core_refusals_become_invalid_ranges() {
        let query = Query {
            from: Some("yesterday"),
            to: None,
            days: None,
        };
        let e = resolve_range(query, 0, Limits::default()).unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_range"));
        assert!(!e.message.is_empty());
    }

    #[test]
    fn segments_decode() {
        let check = |raw: &str, expected: Option<&str>| {
            assert_eq!(decode_segment(raw).as_deref(), expected, "{raw}");
        };
        check("img-1", Some("img-1"));
        check("cat%20%C3%BC.jpg", Some("cat ü.jpg"));
        check("a%2Fb", Some("a/b"));
        check("100%", None);
        check("%zz", None);
        check("%ff", None);
    }
}
