//! Query ranges: `from`/`to` (a date or RFC 3339) or `days`, all in UTC, checked for
//! sense before any storage is read.

use crate::Error;
use crate::time::{DAY_MS, Interval, parse_date};

/// A half-open time range `[from_ms, to_ms)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Limits for a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Days covered when the query names no range.
    pub default_days: i64,
    /// Longest range accepted, in days.
    pub max_days: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default_days: 30,
            max_days: 3660,
        }
    }
}

/// Earliest instant any range may start: 2000-01-01T00:00:00Z.
pub const EARLIEST_MS: i64 = 946_684_800_000;

/// The range parameters of a query, as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub days: Option<&'a str>,
}

/// Resolves a query's range at `now_ms`.
///
/// - `days=N` is today and the N − 1 days before it (from the start of that UTC day
///   to now), so it lines up with daily rollups.
/// - `from`/`to` take a date (`2025-01-31`) or RFC 3339. A `to` date includes that whole
///   day; an RFC 3339 `to` is exclusive. A missing `to` is now; a missing `from` is
///   `default_days` before `to`.
///
/// # Errors
///
/// An [`Error`] a person can act on (`Error::Range*`): a bad format, `days` with
/// `from`/`to`, an inverted or empty range, one longer than `max_days`, or one outside
/// 2000-01-01 .. tomorrow.
pub fn resolve(query: Query<'_>, now_ms: i64, limits: Limits) -> Result<Range, Error> {
    let now_end = now_ms + 1;
    let range = match (query.days, query.from, query.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(Error::RangeBothForms);
        }
        (Some(days), None, None) => {
            let n = days
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=limits.max_days).contains(n))
                .ok_or_else(|| Error::RangeDays {
                    days: days.to_owned(),
                    max_days: limits.max_days,
                })?;
            Range {
                from_ms: Interval::Day.floor(now_ms) - (n - 1) * DAY_MS,
                to_ms: now_end,
            }
        }
        (None, from, to) => {
            let to_ms = match to {
                Some(text) => instant(text, "to", true)?,
                None => now_end,
            };
            let from_ms = match from {
                Some(text) => instant(text, "from", false)?,
                None => to_ms - limits.default_days * DAY_MS,
            };
            Range { from_ms, to_ms }
        }
    };
    if range.from_ms >= range.to_ms {
        return Err(Error::RangeEmpty);
    }
    if range.from_ms < EARLIEST_MS {
        return Err(Error::RangeTooEarly);
    }
    if range.to_ms - range.from_ms > limits.max_days * DAY_MS {
        return Err(Error::RangeTooLong {
            max_days: limits.max_days,
        });
    }
    if range.to_ms > now_ms + 2 * DAY_MS {
        return Err(Error::RangeInFuture);
    }
    Ok(range)
}

/// Parses one end of a range; a date `to` ends after that whole day.
fn instant(text: &str, end: &'static str, is_end: bool) -> Result<i64, Error> {
    if let Some(day) = parse_date(text) {
        return Ok(if is_end { day + DAY_MS } else { day });
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| Error::RangeEnd {
            end,
            text: text.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-18T14:30:00Z.
    const NOW: i64 = 1_737_210_600_000;
    const DAY0: i64 = 1_737_158_400_000; // 2025-01-18T00:00:00Z

    fn check(
        from: Option<&str>,
        to: Option<&str>,
        days: Option<&str>,
        expected: Result<(i64, i64), &str>,
    ) {
        let got = resolve(Query { from, to, days }, NOW, Limits::default());
        match expected {
            Ok((f, t)) => assert_eq!(
                got,
                Ok(Range {
                    from_ms: f,
                    to_ms: t
                }),
                "{from:?} {to:?} {days:?}"
            ),
            Err(fragment) => {
                let err = got.expect_err("should be rejected").to_string();
                assert!(err.contains(fragment), "{err:?} lacks {fragment:?}");
            }
        }
    }

    #[test]
    fn ranges() {
        check(None, None, None, Ok((NOW + 1 - 30 * DAY_MS, NOW + 1)));
        check(None, None, Some("1"), Ok((DAY0, NOW + 1)));
        check(None, None, Some("30"), Ok((DAY0 - 29 * DAY_MS, NOW + 1)));
        check(
            Some("2025-01-01"),
            Some("2025-01-17"),
            None,
            Ok((DAY0 - 17 * DAY_MS, DAY0)),
        );
        check(
            Some("2025-01-18T10:00:00Z"),
            Some("2025-01-18T12:00:00+01:00"),
            None,
            Ok((DAY0 + 10 * 3_600_000, DAY0 + 11 * 3_600_000)),
        );
        check(Some("2025-01-17"), None, None, Ok((DAY0 - DAY_MS, NOW + 1)));
        check(
            None,
            Some("2025-01-10"),
            None,
            Ok((DAY0 - 7 * DAY_MS - 30 * DAY_MS, DAY0 - 7 * DAY_MS)),
        );
        // Today's date as `to` ends at midnight tonight, which is allowed.
        check(
            Some("2025-01-18"),
            Some("2025-01-18"),
            None,
            Ok((DAY0, DAY0 + DAY_MS)),
        );
    }

    #[test]
    fn rejections() {
        check(None, None, Some("0"), Err("days must be a whole number"));
        check(None, None, Some("3661"), Err("days must be a whole number"));
        check(None, None, Some("1.5"), Err("days must be"));
        check(
            Some("2025-01-01"),
            None,
            Some("7"),
            Err("either days or from/to"),
        );
        check(
            Some("2025-01-10"),
            Some("2025-01-01"),
            None,
            Err("before to"),
        );
        check(
            Some("2025-01-10T00:00:00Z"),
            Some("2025-01-10T00:00:00Z"),
            None,
            Err("before to"),
        );
        check(Some("01/02/2025"), None, None, Err("neither a date"));
        check(None, Some("tomorrow"), None, Err("to \"tomorrow\""));
        check(Some("1999-12-31"), None, None, Err("2000-01-01"));
        check(
            Some("2000-01-01"),
            Some("2025-01-18"),
            None,
            Err("longer than 3660 days"),
        );
        check(
            Some("2025-01-18"),
            Some("2025-02-18"),
            None,
            Err("in the future"),
        );
    }
}
