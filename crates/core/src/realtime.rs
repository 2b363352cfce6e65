//! The realtime view's shaping, pure: the window of the last [`MINUTES`] minutes aligned
//! to the wall clock (the current, partial minute last), its minutes filled from minute
//! rows with zeros where there are none, the top values of a dimension over the window,
//! and the visitor count of the last [`VISITOR_WINDOW_MS`] read within a budget of raw
//! rows. `now` is an argument: core reads no clock.

use std::collections::BTreeMap;

use crate::rollup::{Dimension, Rollup, shown_value};
use crate::time::{Interval, MINUTE_MS};

/// Minutes the view covers, the current partial one included.
pub const MINUTES: i64 = 30;

/// How far back "visitors now" looks: distinct users of the last five minutes, as
/// Plausible and Umami count current visitors.
pub const VISITOR_WINDOW_MS: i64 = 5 * MINUTE_MS;

/// Values listed per top list.
pub const TOP_VALUES: usize = 10;

/// The dimensions of the minute rows the view reads: the series of `all`, and the top
/// routes and sources. The consumer writes these minute rows for every project; minute
/// rows of other dimensions only where an alert rule reads them
/// ([`crate::alerts::MinuteSources`]).
pub const DIMENSIONS: [Dimension; 3] = [Dimension::All, Dimension::Route, Dimension::Source];

/// The most raw events one realtime answer reads to count visitors. Minute rows keep
/// no users, so visitors come from raw events through their time index; past this many
/// events in the five minutes the count covers only the most recent ones and the
/// answer says it was truncated. Everything else the view reads is minute rows, whose
/// number is bounded by the window (at most [`MINUTES`] rows of `all`, and 101 values
/// per minute of `route` and `source`).
pub const VISITOR_ROWS_BUDGET: u32 = 10_000;

/// The minutes a realtime answer covers, as of `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub now_ms: i64,
    /// The start of the first (oldest) minute.
    pub first_minute: i64,
    /// The start of the minute that holds `now_ms`: the partial one.
    pub current_minute: i64,
}

impl Window {
    /// The [`MINUTES`] minutes up to and including the one that holds `now_ms`.
    pub fn ending_at(now_ms: i64) -> Self {
        let current_minute = Interval::Minute.floor(now_ms);
        Self {
            now_ms,
            first_minute: current_minute - (MINUTES - 1) * MINUTE_MS,
            current_minute,
        }
    }

    /// The end of the current minute: minute rows are read with `first_minute <= start
    /// < end_ms`.
    pub fn end_ms(&self) -> i64 {
        self.current_minute + MINUTE_MS
    }

    /// Where the visitor count starts: [`VISITOR_WINDOW_MS`] before now.
    pub fn visitors_from(&self) -> i64 {
        self.now_ms - VISITOR_WINDOW_MS
    }
}

/// One minute of the view.
#[derive(Debug, Clone, PartialEq)]
pub struct Minute {
    pub start: i64,
    pub events: u64,
    pub errors: u64,
    /// The 95th percentile of the minute's durations, when any event had one.
    pub p95_ms: Option<f64>,
    /// Whether this is the current minute, still filling.
    pub partial: bool,
}

/// Every minute of `window`, oldest first, from the `all` minute rows given by their
/// start: zeros where a minute has no row, rows outside the window ignored.
pub fn minutes<'a>(
    window: &Window,
    rows: impl IntoIterator<Item = (i64, &'a Rollup)>,
) -> Vec<Minute> {
    let mut by_start: BTreeMap<i64, Rollup> = BTreeMap::new();
    for (start, row) in rows {
        by_start
            .entry(Interval::Minute.floor(start))
            .or_default()
            .merge(row);
    }
    (0..MINUTES)
        .map(|i| {
            let start = window.first_minute + i * MINUTE_MS;
            let row = by_start.get(&start);
            Minute {
                start,
                events: row.map_or(0, |r| r.count),
                errors: row.map_or(0, |r| r.errors),
                p95_ms: row.and_then(|r| r.durations.quantile(0.95)),
                partial: start == window.current_minute,
            }
        })
        .collect()
}

/// One value of a top list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopValue {
    /// The value as shown: the folded row of values past a minute's bound is
    /// [`crate::rollup::FOLDED_LABEL`].
    pub value: String,
    pub events: u64,
    pub errors: u64,
}

/// The `limit` values of `dimension` with most events over the given minute rows
/// (value, row), merged across minutes; ties by value, so the list is the same however
/// the rows arrive.
pub fn top<'a>(
    dimension: Dimension,
    rows: impl IntoIterator<Item = (&'a str, &'a Rollup)>,
    limit: usize,
) -> Vec<TopValue> {
    let mut merged: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (value, row) in rows {
        let entry = merged.entry(shown_value(dimension, value)).or_default();
        entry.0 = entry.0.saturating_add(row.count);
        entry.1 = entry.1.saturating_add(row.errors);
    }
    let mut list: Vec<TopValue> = merged
        .into_iter()
        .filter(|(_, (events, _))| *events > 0)
        .map(|(value, (events, errors))| TopValue {
            value: value.to_owned(),
            events,
            errors,
        })
        .collect();
    list.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.value.cmp(&b.value)));
    list.truncate(limit);
    list
}

/// The visitors of the last [`VISITOR_WINDOW_MS`], as counted within a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visitors {
    /// Distinct users among the events read.
    pub count: u64,
    /// Raw events read to count them.
    pub events_read: u64,
    /// Whether the budget stopped the read: `count` then covers only the most recent
    /// `events_read` events, a lower bound of the true count.
    pub truncated: bool,
}

/// The visitor count from a read of at most `budget` of the most recent events, which
/// found `events_read` events with `distinct` users among them. A read that filled its
/// budget may have left events out.
pub fn visitors(events_read: u64, distinct: u64, budget: u32) -> Visitors {
    Visitors {
        count: distinct,
        events_read,
        truncated: events_read >= u64::from(budget),
    }
}

/// Everything the realtime view shows, as of [`Window::now_ms`].
#[derive(Debug, Clone, PartialEq)]
pub struct Realtime {
    pub window: Window,
    /// Every minute of the window, oldest first; the last one is partial.
    pub minutes: Vec<Minute>,
    /// Distinct users of the last [`VISITOR_WINDOW_MS`].
    pub visitors: Visitors,
    /// The [`TOP_VALUES`] routes (pages) and sources with most events over the whole
    /// window: the same thirty minutes as the chart, so they add up to it.
    pub routes: Vec<TopValue>,
    pub sources: Vec<TopValue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::FOLDED_LABEL;

    /// 2026-01-01T12:00:00Z.
    const NOON: i64 = 1_767_268_800_000;

    fn row(count: u64, errors: u64, durations: &[f64]) -> Rollup {
        let mut row = Rollup {
            count,
            errors,
            ..Rollup::default()
        };
        for d in durations {
            row.durations.insert(*d);
        }
        row
    }

    #[test]
    fn the_window_is_thirty_wall_clock_minutes_ending_with_the_current_one() {
        let w = Window::ending_at(NOON + 42_500);
        assert_eq!(w.current_minute, NOON);
        assert_eq!(w.first_minute, NOON - 29 * MINUTE_MS);
        assert_eq!(w.end_ms(), NOON + MINUTE_MS);
        assert_eq!(w.visitors_from(), NOON + 42_500 - 5 * MINUTE_MS);
        // At the first millisecond of a minute that minute is already the current one.
        assert_eq!(Window::ending_at(NOON).current_minute, NOON);
        assert_eq!(Window::ending_at(NOON - 1).current_minute, NOON - MINUTE_MS);
    }

    #[test]
    fn every_minute_appears_with_zeros_where_there_is_no_row_and_the_last_is_partial() {
        let w = Window::ending_at(NOON + 10_000);
        let now_row = row(3, 1, &[10.0, 20.0, 400.0]);
        let early = row(2, 0, &[]);
        let too_old = row(99, 99, &[]);
        let rows = [
            (NOON, &now_row),
            (NOON - 29 * MINUTE_MS, &early),
            (NOON - 30 * MINUTE_MS, &too_old),
            (NOON + MINUTE_MS, &too_old),
        ];
        let minutes = minutes(&w, rows);
        assert_eq!(minutes.len(), 30);
        for (i, m) in minutes.iter().enumerate() {
            assert_eq!(m.start, NOON - (29 - i as i64) * MINUTE_MS);
            assert_eq!(m.partial, i == 29, "minute {i}");
        }
        assert_eq!((minutes[0].events, minutes[0].errors), (2, 0));
        assert_eq!(minutes[0].p95_ms, None);
        assert!(
            minutes[1..29]
                .iter()
                .all(|m| m.events == 0 && m.errors == 0 && m.p95_ms.is_none())
        );
        let last = &minutes[29];
        assert_eq!((last.events, last.errors), (3, 1));
        let p95 = last.p95_ms.unwrap();
        assert!((p95 - 20.0).abs() <= 0.2, "{p95}");
        assert_eq!(
            minutes.iter().map(|m| m.events).sum::<u64>(),
            5,
            "rows outside the window are not counted"
        );
    }

    #[test]
    fn top_values_merge_minutes_rank_by_events_then_value_and_name_the_folded_row() {
        let a1 = row(2, 1, &[]);
        let a2 = row(3, 0, &[]);
        let b = row(5, 2, &[]);
        let c = row(1, 0, &[]);
        let folded = row(4, 0, &[]);
        let empty = row(0, 0, &[]);
        let rows = [
            ("/a", &a1),
            ("/c", &c),
            ("/b", &b),
            ("", &folded),
            ("/a", &a2),
            ("/z", &empty),
        ];
        let list = top(Dimension::Route, rows, 10);
        let shown: Vec<(&str, u64, u64)> = list
            .iter()
            .map(|t| (t.value.as_str(), t.events, t.errors))
            .collect();
        assert_eq!(
            shown,
            [
                ("/a", 5, 1),
                ("/b", 5, 2),
                (FOLDED_LABEL, 4, 0),
                ("/c", 1, 0)
            ]
        );
        let mut reversed = rows;
        reversed.reverse();
        assert_eq!(top(Dimension::Route, reversed, 10), list);
        assert_eq!(top(Dimension::Route, rows, 2), list[..2]);
    }

    #[test]
    fn a_visitor_read_that_fills_its_budget_is_truncated() {
        assert_eq!(
            visitors(12, 3, 100),
            Visitors {
                count: 3,
                events_read: 12,
                truncated: false
            }
        );
        assert!(!visitors(99, 40, 100).truncated);
        assert!(visitors(100, 40, 100).truncated);
    }
}
