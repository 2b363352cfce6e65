//! Reading rollups over any range for the query API: the fewest rows that cover it
//! exactly, merged or bucketed. Percentiles and uniques come from merging sketches and
//! HyperLogLogs, never from averaging per-period values.
//!
//! A range is covered by day rows for its whole UTC days whose rows are current (not
//! marked dirty), and by hour rows for the rest: the partial first and last days, and
//! days whose day row still lags behind their hours. So a 90-day range reads about 90
//! rows per value, not 2,160, and every answer equals merging the hours.

use std::collections::BTreeMap;

use tally_core::rollup::{Dimension, Key, Period, Rollup};
use tally_core::time::{DAY_MS, HOUR_MS, Interval};

use crate::{Error, FilteredReads, RollupStore, ValueMatch, Versioned};

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
        let days = fetch(Period::Day, first_day, last_day).await?;
        for (key, row) in days {
            if !dirty.contains(&key.start) {
                out.push((Period::Day, key, row.value));
            }
        }
        // Dirty days come from their hours; adjacent ones are read in one go.
        let mut run: Option<(i64, i64)> = None;
        for day in dirty {
            run = match run {
                Some((a, b)) if b == day => Some((a, day + DAY_MS)),
                Some(r) => {
                    hour_ranges.push(r);
                    Some((day, day + DAY_MS))
                }
                None => Some((day, day + DAY_MS)),
            };
        }
        hour_ranges.extend(run);
    }
    for (a, b) in hour_ranges {
        if a < b {
            let hours = fetch(Period::Hour, a, b).await?;
            out.extend(hours.into_iter().map(|(k, r)| (Period::Hour, k, r.value)));
        }
    }
    Ok(out)
}

/// Merges rows per dimension and value.
pub fn merge(rows: &[(Period, Key, Rollup)]) -> Merged {
    let mut merged = Merged::new();
    for (_, key, row) in rows {
        merged
            .entry((key.dimension, key.value.clone()))
            .or_default()
            .merge(row);
    }
    merged
}

/// Merges rows per bucket of `interval` (by row start), then per dimension and value.
/// Rows must not be coarser than the interval (hour rows for hourly buckets).
pub fn buckets(rows: &[(Period, Key, Rollup)], interval: Interval) -> BTreeMap<i64, Merged> {
    let mut out: BTreeMap<i64, Merged> = BTreeMap::new();
    for (_, key, row) in rows {
        out.entry(interval.floor(key.start))
            .or_default()
            .entry((key.dimension, key.value.clone()))
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

fn ceil(ms: i64, unit: i64) -> i64 {
    let floor = ms - ms.rem_euclid(unit);
    if floor == ms { ms } else { floor + unit }
}
