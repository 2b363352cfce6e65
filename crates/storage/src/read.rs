//! Reading rollups over any range for the query API: the fewest rows that cover it
//! exactly, merged or bucketed. Percentiles and uniques come from merging sketches and
//! HyperLogLogs, never from averaging per-period values.
//!
//! A range is covered by day rows for its whole UTC days whose rows are current (not
//! marked dirty), and by hour rows for the rest: the partial first and last days, and
//! days whose day row still lags behind their hours. So a 90-day range reads about 90
//! rows per value, not 2,160, and every answer equals merging the hours.
//!
//! [`realtime`] reads the last thirty minutes from minute rows, and the visitors of the
//! last five from raw events within a budget.

use std::collections::{BTreeMap, BTreeSet};

use tally_core::realtime::{self, Realtime, Window};
use tally_core::rollup::{self, Dimension, Key, Period, Rollup};
use tally_core::time::{DAY_MS, HOUR_MS, Interval};

use crate::{Error, FilteredReads, QueryStore, RollupStore, ValueMatch, Versioned};

/// Most hour ranges one covering read fetches besides the range's partial first and last
/// days: runs of dirty days beyond it are joined across the clean days between them
/// (whose hours then stand in for their day rows), so a year of scattered dirty days
/// costs a few queries, not one per run.
pub const MAX_DIRTY_RANGES: usize = 8;

/// Most queries one covering read makes: the dirty marks, the day rows, the two partial
/// days' hours and [`MAX_DIRTY_RANGES`].
pub const MAX_COVER_QUERIES: u32 = 4 + MAX_DIRTY_RANGES as u32;

/// Rows merged per dimension and value.
pub type Merged = BTreeMap<(Dimension, String), Rollup>;

/// The rollup rows of `project` that exactly cover `[from_ms, to_ms)`, as
/// `(row start, period, key, row)`. `from_ms` and `to_ms` are rounded out to whole
/// hours. With `finest_only`, only hour rows are read (for hourly series).
///
/// # Errors
///
/// The store's error.
pub async fn covering_rows<S: RollupStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    dimension: Option<Dimension>,
    finest_only: bool,
) -> Result<Vec<(Period, Key, Rollup)>, Error> {
    let fetch = |period, a, b| store.rollups_between(project, period, a, b, dimension);
    cover(store, project, from_ms, to_ms, finest_only, fetch).await
}

/// The event count of each value of `dimension` over `[from_ms, to_ms)` (rounded out to
/// whole hours), from the rows [`covering_rows`] reads without their sketches and
/// HyperLogLogs; the row of values past the dimension's bound counts under
/// [`rollup::FOLDED_VALUE`].
///
/// # Errors
///
/// The store's error.
pub async fn covering_counts<S: RollupStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    dimension: Dimension,
) -> Result<BTreeMap<String, u64>, Error> {
    let fetch = async |period, a, b| -> Result<BTreeMap<Key, Versioned<Rollup>>, Error> {
        let rows = store
            .rollup_counts(project, period, a, b, dimension)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(start, value, count)| {
                let key = Key {
                    project: project.to_owned(),
                    start,
                    dimension,
                    value,
                };
                let row = Rollup {
                    count,
                    ..Rollup::default()
                };
                (
                    key,
                    Versioned {
                        value: row,
                        version: 0,
                    },
                )
            })
            .collect())
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (_, key, row) in cover(store, project, from_ms, to_ms, false, fetch).await? {
        let total = counts.entry(key.value).or_default();
        *total = total.saturating_add(row.count);
    }
    Ok(counts)
}

/// [`covering_rows`] of several dimensions at once: the dirty days read once and each
/// period's rows of every dimension in one query, so a report of many dimensions costs
/// the queries of one.
///
/// # Errors
///
/// The store's error.
pub async fn covering_rows_of<S: RollupStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    dimensions: &[Dimension],
    finest_only: bool,
) -> Result<Vec<(Period, Key, Rollup)>, Error> {
    if dimensions.is_empty() {
        return Ok(Vec::new());
    }
    let fetch =
        |period, a, b| store.rollups_of_dimensions(project, period, a, b, dimensions, dimensions);
    cover(store, project, from_ms, to_ms, finest_only, fetch).await
}

/// [`covering_rows_of`] over the whole range (no hourly series) with the durations
/// sketches of the `timed` dimensions' rows only, the others left empty
/// ([`RollupStore::rollups_of_dimensions`]): for an answer that shows
/// percentiles of those dimensions alone.
///
/// # Errors
///
/// The store's error.
pub async fn covering_rows_timing<S: RollupStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    dimensions: &[Dimension],
    timed: &[Dimension],
) -> Result<Vec<(Period, Key, Rollup)>, Error> {
    if dimensions.is_empty() {
        return Ok(Vec::new());
    }
    let fetch =
        |period, a, b| store.rollups_of_dimensions(project, period, a, b, dimensions, timed);
    cover(store, project, from_ms, to_ms, false, fetch).await
}

/// [`covering_rows`] of the values of `dimension` that `value` matches.
///
/// # Errors
///
/// The store's error.
pub async fn covering_rows_matching<S: RollupStore + FilteredReads>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    dimension: Dimension,
    value: ValueMatch<'_>,
    finest_only: bool,
) -> Result<Vec<(Period, Key, Rollup)>, Error> {
    let fetch = |period, a, b| store.rollups_matching(project, period, a, b, dimension, value);
    cover(store, project, from_ms, to_ms, finest_only, fetch).await
}

/// The covering of `[from_ms, to_ms)`, reading each period's rows with `fetch(period,
/// from, to)`.
async fn cover<S, F, Fut>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    finest_only: bool,
    fetch: F,
) -> Result<Vec<(Period, Key, Rollup)>, Error>
where
    S: RollupStore,
    F: Fn(Period, i64, i64) -> Fut,
    Fut: Future<Output = Result<BTreeMap<Key, Versioned<Rollup>>, Error>>,
{
    let from = Interval::Hour.floor(from_ms);
    let to = ceil(to_ms, HOUR_MS);
    let mut out = Vec::new();
    if from >= to {
        return Ok(out);
    }
    let first_day = ceil(from, DAY_MS);
    let last_day = Interval::Day.floor(to);
    let mut hour_ranges = Vec::new();
    if finest_only || first_day >= last_day {
        hour_ranges.push((from, to));
    } else {
        hour_ranges.push((from, first_day));
        hour_ranges.push((last_day, to));
        let dirty = store
            .dirty_starts(project, Period::Day, first_day, last_day)
            .await?;
        // Dirty days come from their hours, in at most MAX_DIRTY_RANGES reads.
        let from_hours = dirty_ranges(&dirty, MAX_DIRTY_RANGES);
        let days = fetch(Period::Day, first_day, last_day).await?;
        for (key, row) in days {
            if !from_hours
                .iter()
                .any(|(a, b)| (*a..*b).contains(&key.start))
            {
                out.push((Period::Day, key, row.value));
            }
        }
        hour_ranges.extend(from_hours);
    }
    for (a, b) in hour_ranges {
        if a < b {
            let hours = fetch(Period::Hour, a, b).await?;
            out.extend(hours.into_iter().map(|(k, r)| (Period::Hour, k, r.value)));
        }
    }
    Ok(out)
}

/// The hour ranges that cover the `dirty` days (sorted day starts): adjacent days in one
/// range, and then, while there are more than `max` ranges, the two with the fewest clean
/// days between them joined (those clean days are read from their hours too).
fn dirty_ranges(dirty: &BTreeSet<i64>, max: usize) -> Vec<(i64, i64)> {
    stretches(dirty.iter().map(|&day| (day, day + DAY_MS)), max)
}

/// The non-empty spans among `spans` (in order, not overlapping), adjacent ones joined,
/// and then the nearest ones joined until at most `most` remain (what lies between two
/// joined spans is then covered too).
pub(crate) fn stretches(
    spans: impl IntoIterator<Item = (i64, i64)>,
    most: usize,
) -> Vec<(i64, i64)> {
    let mut joined: Vec<(i64, i64)> = Vec::new();
    for (from, to) in spans.into_iter().filter(|(a, b)| a < b) {
        match joined.last_mut() {
            Some(last) if last.1 >= from => last.1 = last.1.max(to),
            _ => joined.push((from, to)),
        }
    }
    while joined.len() > most.max(1) {
        let nearest = (1..joined.len())
            .min_by_key(|&i| joined[i].0 - joined[i - 1].1)
            .unwrap_or(1);
        joined[nearest - 1].1 = joined[nearest].1;
        joined.remove(nearest);
    }
    joined
}

/// Merges rows per dimension and value; the row of values past a dimension's bound is
/// merged under [`rollup::FOLDED_LABEL`].
pub fn merge(rows: &[(Period, Key, Rollup)]) -> Merged {
    let mut merged = Merged::new();
    for (_, key, row) in rows {
        merged.entry(shown(key)).or_default().merge(row);
    }
    merged
}

/// The dimension and value a row is merged under.
fn shown(key: &Key) -> (Dimension, String) {
    (
        key.dimension,
        rollup::shown_value(key.dimension, &key.value).to_owned(),
    )
}

/// Merges rows per bucket of `interval` (by row start), then per dimension and value.
/// Rows must not be coarser than the interval (hour rows for hourly buckets).
pub fn buckets(rows: &[(Period, Key, Rollup)], interval: Interval) -> BTreeMap<i64, Merged> {
    let mut out: BTreeMap<i64, Merged> = BTreeMap::new();
    for (_, key, row) in rows {
        out.entry(interval.floor(key.start))
            .or_default()
            .entry(shown(key))
            .or_default()
            .merge(row);
    }
    out
}

/// Reads and merges: the totals of `[from_ms, to_ms)` per dimension and value.
///
/// # Errors
///
/// The store's error.
pub async fn merged<S: RollupStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    dimension: Option<Dimension>,
) -> Result<Merged, Error> {
    let rows = covering_rows(store, project, from_ms, to_ms, dimension, false).await?;
    Ok(merge(&rows))
}

/// Reads and buckets: per `interval` bucket of `[from_ms, to_ms)`, per dimension and
/// value. Buckets without events are absent.
///
/// # Errors
///
/// The store's error.
pub async fn series<S: RollupStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    interval: Interval,
    dimension: Option<Dimension>,
) -> Result<BTreeMap<i64, Merged>, Error> {
    let hourly = interval == Interval::Hour;
    let rows = covering_rows(store, project, from_ms, to_ms, dimension, hourly).await?;
    Ok(buckets(&rows, interval))
}

/// Event counts per start of a row and per value, as [`hourly_counts`] gives them.
pub type Counts = BTreeMap<i64, BTreeMap<String, u64>>;

/// The event counts of `dimension` per hour of `[from_ms, to_ms)` (rounded out to whole
/// hours) and per value: what [`series`] by hour answers for counts, from the same hour
/// rows read without their sketches and HyperLogLogs (one query, however many rows).
/// The row of values past the dimension's bound counts under [`rollup::FOLDED_LABEL`].
///
/// # Errors
///
/// The store's error.
pub async fn hourly_counts<S: RollupStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    dimension: Dimension,
) -> Result<Counts, Error> {
    let (from, to) = (Interval::Hour.floor(from_ms), ceil(to_ms, HOUR_MS));
    let mut counts = Counts::new();
    if from >= to {
        return Ok(counts);
    }
    let rows = store
        .rollup_counts(project, Period::Hour, from, to, dimension)
        .await?;
    for (start, value, count) in rows {
        let shown = rollup::shown_value(dimension, &value).to_owned();
        let total = counts.entry(start).or_default().entry(shown).or_default();
        *total = total.saturating_add(count);
    }
    Ok(counts)
}

/// The counts of one dimension's rows in [`buckets`] (of any read, rollups or raw
/// events), as [`hourly_counts`] gives them.
pub fn counts_of(buckets: &BTreeMap<i64, Merged>, dimension: Dimension) -> Counts {
    buckets
        .iter()
        .map(|(start, merged)| {
            let values = merged
                .iter()
                .filter(|((d, _), _)| *d == dimension)
                .map(|((_, value), row)| (value.clone(), row.count))
                .collect();
            (*start, values)
        })
        .collect()
}

/// [`merged`] of the values of `dimension` that `value` matches.
///
/// # Errors
///
/// The store's error.
pub async fn merged_matching<S: RollupStore + FilteredReads>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    dimension: Dimension,
    value: ValueMatch<'_>,
) -> Result<Merged, Error> {
    let rows =
        covering_rows_matching(store, project, from_ms, to_ms, dimension, value, false).await?;
    Ok(merge(&rows))
}

/// [`series`] of the values of `dimension` that `value` matches.
///
/// # Errors
///
/// The store's error.
pub async fn series_matching<S: RollupStore + FilteredReads>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    interval: Interval,
    dimension: Dimension,
    value: ValueMatch<'_>,
) -> Result<BTreeMap<i64, Merged>, Error> {
    let hourly = interval == Interval::Hour;
    let rows =
        covering_rows_matching(store, project, from_ms, to_ms, dimension, value, hourly).await?;
    Ok(buckets(&rows, interval))
}

/// For each value of `dimension` with events in `[from_ms, to_ms)` (whole hours), the
/// starts of the first and the last hour that have any.
///
/// Reads the covering rows, then, where a value's first or last row is a whole day,
/// that day's hour rows of the dimension: one more read per such day, not the range's
/// every hour.
///
/// # Errors
///
/// The store's error.
pub async fn first_last_hours<S: RollupStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    dimension: Dimension,
) -> Result<BTreeMap<String, (i64, i64)>, Error> {
    let rows = covering_rows(store, project, from_ms, to_ms, Some(dimension), false).await?;
    // Per value: the earliest and the latest row, as (start, is a day row).
    type Edge = (i64, bool);
    let mut spans: BTreeMap<String, (Edge, Edge)> = BTreeMap::new();
    for (period, key, _) in rows.iter().filter(|(_, _, r)| r.count > 0) {
        let here = (key.start, *period == Period::Day);
        let span = spans.entry(shown(key).1).or_insert((here, here));
        span.0 = span.0.min(here);
        span.1 = span.1.max(here);
    }
    let days: BTreeSet<i64> = spans
        .values()
        .flat_map(|(first, last)| [*first, *last])
        .filter(|(_, is_day)| *is_day)
        .map(|(start, _)| start)
        .collect();
    // Per (day, value): the first and last hour with events.
    let mut hours: BTreeMap<(i64, &str), (i64, i64)> = BTreeMap::new();
    let mut day_hours = Vec::new();
    for day in days {
        let rows = store
            .rollups_between(project, Period::Hour, day, day + DAY_MS, Some(dimension))
            .await?;
        day_hours.push((day, rows));
    }
    for (day, rows) in &day_hours {
        for (key, _) in rows.iter().filter(|(_, r)| r.value.count > 0) {
            let value = rollup::shown_value(key.dimension, &key.value);
            let span = hours.entry((*day, value)).or_insert((key.start, key.start));
            span.0 = span.0.min(key.start);
            span.1 = span.1.max(key.start);
        }
    }
    Ok(spans
        .into_iter()
        .map(|(value, ((first, first_is_day), (last, last_is_day)))| {
            let first = if first_is_day {
                hours.get(&(first, value.as_str())).map_or(first, |s| s.0)
            } else {
                first
            };
            let last = if last_is_day {
                hours
                    .get(&(last, value.as_str()))
                    .map_or(last + DAY_MS - HOUR_MS, |s| s.1)
            } else {
                last
            };
            (value, (first, last))
        })
        .collect())
}

fn ceil(ms: i64, unit: i64) -> i64 {
    let floor = ms - ms.rem_euclid(unit);
    if floor == ms { ms } else { floor + unit }
}

/// The realtime view of `project` over `window`: the minute rows of `all`, `route` and
/// `source` in the window (each one search of the rollups' primary key, so at most 30 rows
/// of `all` and 30 × 101 of the others, whatever the project's volume), and the
/// visitors of the last five minutes over at most [`realtime::VISITOR_ROWS_BUDGET`]
/// raw events. Minute rows are written for every project's recent events, alert rules
/// or not.
///
/// # Errors
///
/// The store's error.
pub async fn realtime<S: RollupStore + QueryStore>(
    store: &S,
    project: &str,
    window: Window,
) -> Result<Realtime, Error> {
    let minute_rows = |dimension| {
        store.rollups_between(
            project,
            Period::Minute,
            window.first_minute,
            window.end_ms(),
            Some(dimension),
        )
    };
    let all = minute_rows(Dimension::All).await?;
    let routes = minute_rows(Dimension::Route).await?;
    let sources = minute_rows(Dimension::Source).await?;
    // Future timestamps are clamped to their arrival, so none lies past `now_ms`; the
    // bound past it only keeps an event of this very millisecond.
    let visitors = store
        .recent_visitors(
            project,
            window.visitors_from(),
            window.now_ms + 1,
            realtime::VISITOR_ROWS_BUDGET,
        )
        .await?;
    let top = |dimension, rows: &BTreeMap<Key, Versioned<Rollup>>| {
        realtime::top(
            dimension,
            rows.iter().map(|(k, v)| (k.value.as_str(), &v.value)),
            realtime::TOP_VALUES,
        )
    };
    Ok(Realtime {
        window,
        minutes: realtime::minutes(&window, all.iter().map(|(k, v)| (k.start, &v.value))),
        visitors,
        routes: top(Dimension::Route, &routes),
        sources: top(Dimension::Source, &sources),
    })
}
