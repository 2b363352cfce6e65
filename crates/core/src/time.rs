//! Time parsing for event timestamps. All times are UTC epoch milliseconds.

use chrono::{DateTime, Datelike, NaiveDate};
use serde_json::Value;

use crate::Error;

/// Milliseconds in one minute.
pub const MINUTE_MS: i64 = 60_000;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in one day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in one week.
pub const WEEK_MS: i64 = 7 * DAY_MS;

/// A UTC time bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Interval {
    /// Minutes, for the short-lived rollups alert rules read; no API groups by them.
    Minute,
    Hour,
    Day,
    /// ISO 8601 weeks, starting on Monday.
    Week,
    /// Weeks starting on Sunday, as the seed track API groups them.
    SundayWeek,
    Month,
}

impl Interval {
    /// Parses `hour`, `day`, `week`, `sunday_week` or `month`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "hour" => Self::Hour,
            "day" => Self::Day,
            "week" => Self::Week,
            "sunday_week" => Self::SundayWeek,
            "month" => Self::Month,
            _ => return None,
        })
    }

    /// The start of the bucket holding `ms`.
    pub fn floor(self, ms: i64) -> i64 {
        let day = ms.div_euclid(DAY_MS) * DAY_MS;
        // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
        let days = ms.div_euclid(DAY_MS);
        match self {
            Self::Minute => ms.div_euclid(MINUTE_MS) * MINUTE_MS,
            Self::Hour => ms.div_euclid(HOUR_MS) * HOUR_MS,
            Self::Day => day,
            Self::Week => day - (days + 3).rem_euclid(7) * DAY_MS,
            Self::SundayWeek => day - (days + 4).rem_euclid(7) * DAY_MS,
            Self::Month => {
                let date = date_of(ms);
                month_start(date.year(), date.month())
            }
        }
    }

    /// The start of the bucket after the one that starts at `start`.
    pub fn next(self, start: i64) -> i64 {
        match self {
            Self::Minute => start + MINUTE_MS,
            Self::Hour => start + HOUR_MS,
            Self::Day => start + DAY_MS,
            Self::Week | Self::SundayWeek => start + WEEK_MS,
            Self::Month => {
                let date = date_of(start);
                if date.month() == 12 {
                    month_start(date.year() + 1, 1)
                } else {
                    month_start(date.year(), date.month() + 1)
                }
            }
        }
    }

    /// The starts of every bucket that overlaps `[from, to)`.
    pub fn buckets(self, from: i64, to: i64) -> impl Iterator<Item = i64> {
        let first = (from < to).then(|| self.floor(from));
        std::iter::successors(first, move |&b| Some(self.next(b))).take_while(move |&b| b < to)
    }

    /// The label of the bucket starting at `start`: RFC 3339 for minutes and hours,
    /// the start date (`YYYY-MM-DD`) for days, weeks and months.
    pub fn label(self, start: i64) -> String {
        match self {
            Self::Minute | Self::Hour => {
                let hour = start.div_euclid(HOUR_MS).rem_euclid(24);
                let minute = start.div_euclid(MINUTE_MS).rem_euclid(60);
                format!("{}T{hour:02}:{minute:02}:00Z", date_label(date_of(start)))
            }
            _ => date_label(date_of(start)),
        }
    }
}

/// The UTC calendar date of `ms` (clamped to chrono's range).
pub fn date_of(ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or(if ms < 0 {
            DateTime::<chrono::Utc>::MIN_UTC
        } else {
            DateTime::<chrono::Utc>::MAX_UTC
        })
        .date_naive()
}

/// Epoch milliseconds of the first instant of a month.
fn month_start(year: i32, month: u32) -> i64 {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp_millis())
}

/// A date as `YYYY-MM-DD`. Written by hand, as is [`parse_date`]: chrono's
/// strftime-style formatter and parser would add kilobytes to every wasm bundle.
pub fn date_label(date: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

/// Epoch milliseconds of the start of a `YYYY-MM-DD` date, if it is one.
pub fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    NaiveDate::from_ymd_opt(year as i32, month, day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// Parses an event timestamp: RFC 3339 text, or a non-negative integer of epoch milliseconds.
///
/// # Errors
///
/// An [`Error`] a person can act on (`Error::Timestamp*`) when the value is neither form.
pub fn parse_timestamp(value: &Value) -> Result<i64, Error> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .map_err(|_| Error::TimestampText(text.clone())),
        Value::Number(n) => match n.as_i64() {
            Some(ms) if ms >= 0 => Ok(ms),
            _ => Err(Error::TimestampNumber(n.clone())),
        },
        other => Err(Error::timestamp_type(other)),
    }
}

/// Formats epoch milliseconds as RFC 3339 in UTC with millisecond precision.
pub fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// The JSON type name of a value, for error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(input: Value, expected: Result<i64, &str>) {
        let got = parse_timestamp(&input);
        match expected {
            Ok(ms) => assert_eq!(got, Ok(ms), "input {input}"),
            Err(fragment) => {
                let err = got.expect_err("should be rejected").to_string();
                assert!(
                    err.contains(fragment),
                    "{err:?} should contain {fragment:?}"
                );
            }
        }
    }

    #[test]
    fn timestamps() {
        check(json!("2025-01-18T14:30:00Z"), Ok(1_737_210_600_000));
        check(json!("2025-01-18T15:30:00+01:00"), Ok(1_737_210_600_000));
        check(json!("2025-01-18T14:30:00.250Z"), Ok(1_737_210_600_250));
        check(json!(1_737_210_600_000_i64), Ok(1_737_210_600_000));
        check(json!(0), Ok(0));
        check(json!("2025-01-18"), Err("not RFC 3339"));
        check(json!(-5), Err("non-negative integer"));
        check(json!(1.5), Err("non-negative integer"));
        check(json!(true), Err("not a boolean"));
    }

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn bucket_floors() {
        // 2025-01-18 is a Saturday.
        let t = at("2025-01-18T14:30:15.5Z");
        let check = |interval: Interval, expected: &str| {
            assert_eq!(interval.floor(t), at(expected), "{interval:?}");
            assert_eq!(
                interval.floor(at(expected)),
                at(expected),
                "floor is idempotent"
            );
        };
        check(Interval::Hour, "2025-01-18T14:00:00Z");
        check(Interval::Day, "2025-01-18T00:00:00Z");
        check(Interval::Week, "2025-01-13T00:00:00Z");
        check(Interval::SundayWeek, "2025-01-12T00:00:00Z");
        check(Interval::Month, "2025-01-01T00:00:00Z");
        // A Sunday starts its own Sunday week but belongs to the ISO week before.
        let sunday = at("2025-01-19T08:00:00Z");
        assert_eq!(
            Interval::SundayWeek.floor(sunday),
            at("2025-01-19T00:00:00Z")
        );
        assert_eq!(Interval::Week.floor(sunday), at("2025-01-13T00:00:00Z"));
        // Before the epoch.
        assert_eq!(Interval::Day.floor(-1), -DAY_MS);
        assert_eq!(Interval::Week.floor(0), at("1969-12-29T00:00:00Z"));
    }

    #[test]
    fn months_have_their_lengths() {
        let starts: Vec<String> = Interval::Month
            .buckets(at("2023-11-15T00:00:00Z"), at("2024-03-01T00:00:00Z"))
            .map(|b| Interval::Month.label(b))
            .collect();
        assert_eq!(
            starts,
            ["2023-11-01", "2023-12-01", "2024-01-01", "2024-02-01"]
        );
        let feb = at("2024-02-01T00:00:00Z");
        assert_eq!(
            Interval::Month.next(feb) - feb,
            29 * DAY_MS,
            "2024 is a leap year"
        );
    }

    #[test]
    fn buckets_cover_a_range() {
        let from = at("2025-01-18T22:30:00Z");
        let to = at("2025-01-19T01:00:00Z");
        let hours: Vec<String> = Interval::Hour
            .buckets(from, to)
            .map(|b| Interval::Hour.label(b))
            .collect();
        assert_eq!(
            hours,
            [
                "2025-01-18T22:00:00Z",
                "2025-01-18T23:00:00Z",
                "2025-01-19T00:00:00Z"
            ]
        );
        assert_eq!(
            Interval::Day.buckets(to, to).count(),
            0,
            "an empty range has no buckets"
        );
        assert_eq!(Interval::parse("sunday_week"), Some(Interval::SundayWeek));
        assert_eq!(Interval::parse("fortnight"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("2025-01-18"), Some(at("2025-01-18T00:00:00Z")));
        assert_eq!(parse_date("2025-02-30"), None);
        assert_eq!(parse_date("2025-1-8"), None);
        assert_eq!(parse_date("2025-01-18T00:00:00Z"), None);
        assert_eq!(parse_date("2025-0a-18"), None);
        assert_eq!(parse_date("2025/01/18"), None);
        assert_eq!(parse_date("0000-01-01"), Some(-62_167_219_200_000));
    }

    #[test]
    fn formats_utc_millis() {
        assert_eq!(format_ms(1_737_210_600_250), "2025-01-18T14:30:00.250Z");
    }
}
