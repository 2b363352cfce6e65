//! Reads under report filters (`tally_core::filter`): the one access-path rule, written
//! once for every report of the read API.
//!
//! 1. **Rollups**, exact, when [`filter::rollup_reads`] says their rows answer every
//!    dimension the report wants (no filter, or one equality whose dimension's rows, or
//!    a cross dimension's, hold the answer) and the value was never folded past a
//!    bound: a period whose folded row ([`rollup::FOLDED_VALUE`]) of the dimension read
//!    has events may hold some of the value's events under it, so any such row sends the
//!    read to raw events.
//! 2. **Raw**, exact, otherwise, over the part of the range within raw retention: the
//!    events meeting the filters, read through the time index in pages of [`PAGE`] with
//!    the filters in SQL, folded into the same [`Rollup`]s rollup rows hold (so
//!    percentiles and uniques keep their error bounds and the same merging code answers).
//!    The events it scans are the range's events, which the `all` rollup rows count
//!    exactly beforehand: it runs only when that count, at [`ROWS_PER_EVENT`] rows each
//!    and [`ROWS_PER_QUERY`] per page, is within the row budget.
//! 3. **Sampled**, past the budget: the events of a deterministic sample of users
//!    (`filter::sample_bucket`; the first `k` of 256 buckets, `k` a power of two), read
//!    a bucket at a time through `raw_events_by_sample`, counted as read, never more
//!    than the budget allows (at [`ROWS_PER_EVENT`] rows each and [`ROWS_PER_QUERY`] per
//!    query). If the budget runs out inside a bucket, the sample shrinks to the largest
//!    power of two of buckets read whole. Counts, errors, bytes and revenue are scaled by
//!    `256 / k` here; unique counts are scaled by the caller with [`Filtered::scale`]
//!    (users exactly, since users are sampled whole; instances approximately).

use std::collections::BTreeMap;

use tally_core::Event;
use tally_core::filter::{self, Filters, Part, RollupRead, SAMPLE_BUCKETS, Select};
use tally_core::rollup::{self, Dimension, Key, Period, Rollup};
use tally_core::time::Interval;

use crate::read::{covering_rows, covering_rows_matching, covering_rows_of};
use crate::{Error, FilteredReads, QueryStore, RollupStore, ValueMatch};

/// Events per page of a raw read.
pub const PAGE: u32 = 5_000;

/// The rows a filtered read may read by default, as D1 counts them: D1 bills rows read,
/// a query stops after 30 s and a Worker has 128 MB.
pub const DEFAULT_ROW_BUDGET: u64 = 200_000;

/// The rows D1 counts as read per raw event a filtered read reads: its index entry and
/// its row. Measured on local D1: a sampled overview of 833 events in 64 bucket queries
/// read 1,857 rows, 57 of them rollup rows: 2 per event and [`ROWS_PER_QUERY`] per query.
pub const ROWS_PER_EVENT: u64 = 2;

/// The rows D1 counts as read per query of raw events besides its events: the project's
/// row (the slug's lookup) and the index entry that ends the scan.
pub const ROWS_PER_QUERY: u64 = 2;

/// The rows a report is made of, as `read::merge` and `read::buckets` take them.
pub type Rows = Vec<(Period, Key, Rollup)>;

/// How the rows of a report are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// One total over the range (`read::merge` only).
    Whole,
    /// Per bucket of the interval (`read::buckets`, and `read::merge`).
    Every(Interval),
}

/// Which path answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Rollups,
    Raw,
    /// From the events of `buckets` of [`SAMPLE_BUCKETS`] sample buckets.
    Sampled {
        buckets: u32,
    },
}

impl Path {
    /// The path's name in answers (`served_by`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rollups => "rollups",
            Self::Raw => "raw",
            Self::Sampled { .. } => "sampled",
        }
    }

    /// The share of users a sampled answer was computed on.
    pub fn sample_rate(self) -> Option<f64> {
        match self {
            Self::Sampled { buckets } => Some(f64::from(buckets) / f64::from(SAMPLE_BUCKETS)),
            _ => None,
        }
    }
}

/// A filtered read's rows.
#[derive(Debug, Clone)]
pub struct Filtered {
    pub rows: Rows,
    pub path: Path,
    /// The range the rows cover: the asked one from rollups, its part within raw
    /// retention from raw events.
    pub from_ms: i64,
    pub to_ms: i64,
    /// What unique counts of the rows stand for: 1, or `256 / k` when sampled (counts,
    /// errors and bytes are scaled already).
    pub scale: u64,
    /// The raw events read (scanned): 0 from rollups, the range's events (which bound
    /// the scan) from raw events, exactly those read when sampled.
    pub events_read: u64,
}

/// What a filtered read gives.
#[derive(Debug, Clone)]
pub enum Read {
    Rows(Filtered),
    /// Raw events were needed, and none of the range is within retention.
    PastRetention,
    /// Even one sample bucket of the range holds more events than the budget.
    OverBudget {
        events: u64,
    },
}

/// The limits of one filtered read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows the read may read, as D1 counts them ([`ROWS_PER_EVENT`] per raw event).
    pub row_budget: u64,
    /// The first whole hour whose raw events are all kept (retention).
    pub raw_from_ms: i64,
}

/// The rows of `wanted` dimensions of `project` over `[from_ms, to_ms)` (whole hours)
/// under `filters`, by the path the module doc describes.
///
/// # Errors
///
/// The store's error.
#[allow(clippy::too_many_arguments)] // One report's question; a struct would only rename it.
pub async fn read<S: RollupStore + FilteredReads + QueryStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    filters: &Filters,
    wanted: &[Dimension],
    bucket: Bucket,
    limits: Limits,
) -> Result<Read, Error> {
    let finest = bucket == Bucket::Every(Interval::Hour);
    if filters.is_empty() {
        // Every wanted dimension's own rows, in the queries of one covering read.
        let rows = covering_rows_of(store, project, from_ms, to_ms, wanted, finest).await?;
        return Ok(Read::Rows(Filtered {
            rows,
            path: Path::Rollups,
            from_ms,
            to_ms,
            scale: 1,
            events_read: 0,
        }));
    }
    if let Some(reads) = filter::rollup_reads(filters, wanted) {
        let mut rows = Rows::new();
        let mut exact = true;
        for r in &reads {
            match rollup_rows(store, project, from_ms, to_ms, r, finest).await? {
                Some(found) => rows.extend(found),
                None => {
                    exact = false;
                    break;
                }
            }
        }
        if exact {
            return Ok(Read::Rows(Filtered {
                rows,
                path: Path::Rollups,
                from_ms,
                to_ms,
                scale: 1,
                events_read: 0,
            }));
        }
    }
    let from_ms = from_ms.max(limits.raw_from_ms);
    if from_ms >= to_ms {
        return Ok(Read::PastRetention);
    }
    let events: u64 = covering_rows(store, project, from_ms, to_ms, Some(Dimension::All), false)
        .await?
        .iter()
        .map(|(_, _, r)| r.count)
        .sum();
    let mut fold = Fold {
        project,
        wanted,
        bucket,
        from_ms,
        rows: BTreeMap::new(),
    };
    let pages = events / u64::from(PAGE) + 1;
    let exact_rows = events.saturating_mul(ROWS_PER_EVENT) + pages * ROWS_PER_QUERY;
    if exact_rows <= limits.row_budget {
        let mut after: Option<(i64, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(t, id)| (*t, id.as_str()));
            let page = store
                .filtered_events(project, from_ms, to_ms, filters, cursor, PAGE)
                .await?;
            for event in &page {
                fold.add(event);
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => {
                    after = Some((last.timestamp, last.event_id.clone()));
                }
                _ => break,
            }
        }
        return Ok(Read::Rows(Filtered {
            rows: fold.rows(),
            path: Path::Raw,
            from_ms,
            to_ms,
            scale: 1,
            // It scanned the range's events, which the rollups counted: at most these
            // (fewer when some were purged or rolled up from elsewhere).
            events_read: events,
        }));
    }
    sampled(
        store,
        project,
        (from_ms, to_ms),
        filters,
        fold,
        events,
        limits,
    )
    .await
}

/// The sampled path: see the module doc.
async fn sampled<S: QueryStore>(
    store: &S,
    project: &str,
    (from_ms, to_ms): (i64, i64),
    filters: &Filters,
    fold: Fold<'_>,
    events: u64,
    limits: Limits,
) -> Result<Read, Error> {
    let budget = limits.row_budget;
    // The most buckets whose expected rows fit in 90% of the budget: the rest is room
    // for users with more events than the average.
    let expected = |buckets: u32| {
        let events = events.saturating_mul(u64::from(buckets)) / u64::from(SAMPLE_BUCKETS);
        events * ROWS_PER_EVENT + u64::from(buckets) * ROWS_PER_QUERY
    };
    let mut buckets = SAMPLE_BUCKETS / 2;
    while buckets > 1 && expected(buckets) > budget / 10 * 9 {
        buckets /= 2;
    }
    // One fold per group of buckets whose size is a power of two: {0}, {1}, {2, 3},
    // {4..7}, ...; dropping the groups from one on leaves a power of two of buckets.
    let mut groups: Vec<Fold<'_>> = (0..=buckets.trailing_zeros())
        .map(|_| Fold {
            rows: BTreeMap::new(),
            ..fold
        })
        .collect();
    // Events read, and rows as D1 counts them.
    let (mut read, mut spent) = (0u64, 0u64);
    let mut whole = buckets;
    'buckets: for bucket in 0..buckets {
        let group = (u32::BITS - bucket.leading_zeros()) as usize;
        let bucket = u8::try_from(bucket).unwrap_or(u8::MAX);
        let mut after: Option<(i64, String)> = None;
        loop {
            let left = budget.saturating_sub(spent + ROWS_PER_QUERY) / ROWS_PER_EVENT;
            let limit = u32::try_from(left.min(u64::from(PAGE))).unwrap_or(PAGE);
            if limit == 0 {
                whole = if group == 0 { 0 } else { 1 << (group - 1) };
                break 'buckets;
            }
            let cursor = after.as_ref().map(|(t, id)| (*t, id.as_str()));
            let page = store
                .sample_events(project, bucket, from_ms, to_ms, cursor, limit)
                .await?;
            read += page.len() as u64;
            spent += ROWS_PER_QUERY + page.len() as u64 * ROWS_PER_EVENT;
            for event in page.iter().filter(|e| filters.matches(e)) {
                groups[group].add(event);
            }
            match page.last() {
                Some(last) if page.len() == limit as usize => {
                    after = Some((last.timestamp, last.event_id.clone()));
                }
                _ => break,
            }
        }
    }
    if whole == 0 {
        return Ok(Read::OverBudget { events });
    }
    let scale = u64::from(SAMPLE_BUCKETS / whole);
    let mut rows: BTreeMap<Key, Rollup> = BTreeMap::new();
    for group in groups.into_iter().take(whole.trailing_zeros() as usize + 1) {
        for (key, row) in group.rows {
            rows.entry(key).or_default().merge(&row);
        }
    }
    let scaled = |n: u64| n.saturating_mul(scale).min(rollup::MAX_STORED_INTEGER);
    let rows = rows
        .into_iter()
        .map(|(key, mut row)| {
            row.count = scaled(row.count);
            row.errors = scaled(row.errors);
            row.bytes = scaled(row.bytes);
            row.revenue = scaled(row.revenue);
            (Period::Hour, key, row)
        })
        .collect();
    Ok(Read::Rows(Filtered {
        rows,
        path: Path::Sampled { buckets: whole },
        from_ms,
        to_ms,
        scale,
        events_read: read,
    }))
}

/// Raw events folded into rows of the wanted dimensions.
struct Fold<'a> {
    project: &'a str,
    wanted: &'a [Dimension],
    bucket: Bucket,
    /// The start of the [`Bucket::Whole`] row.
    from_ms: i64,
    rows: BTreeMap<Key, Rollup>,
}

impl Fold<'_> {
    fn add(&mut self, event: &Event) {
        let start = match self.bucket {
            Bucket::Whole => self.from_ms,
            Bucket::Every(interval) => interval.floor(event.timestamp),
        };
        for &dimension in self.wanted {
            if let Some(value) = dimension.value_of(event) {
                let key = Key {
                    project: self.project.to_owned(),
                    start,
                    dimension,
                    value,
                };
                self.rows.entry(key).or_default().add(dimension, event);
            }
        }
    }

    fn rows(self) -> Rows {
        self.rows
            .into_iter()
            .map(|(key, row)| (Period::Hour, key, row))
            .collect()
    }
}

/// The rows one [`RollupRead`] takes, shown as the report wants them; `None` when a
/// folded row could hide part of the value.
async fn rollup_rows<S: RollupStore + FilteredReads>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    r: &RollupRead,
    finest: bool,
) -> Result<Option<Rows>, Error> {
    let matching =
        |value| covering_rows_matching(store, project, from_ms, to_ms, r.read, value, finest);
    let folded = async || -> Result<bool, Error> {
        let rows = matching(ValueMatch::Exact(rollup::FOLDED_VALUE)).await?;
        Ok(rows.iter().any(|(_, _, row)| row.count > 0))
    };
    let rows = match &r.select {
        Select::Every => {
            covering_rows(store, project, from_ms, to_ms, Some(r.read), finest).await?
        }
        Select::Value(v) => {
            if folded().await? {
                return Ok(None);
            }
            matching(ValueMatch::Exact(v)).await?
        }
        Select::First(v) => {
            if folded().await? {
                return Ok(None);
            }
            matching(ValueMatch::Prefix(&rollup::pair_prefix(v))).await?
        }
        Select::Second(v) => {
            let every = covering_rows(store, project, from_ms, to_ms, Some(r.read), finest).await?;
            if every
                .iter()
                .any(|(_, k, row)| k.value == rollup::FOLDED_VALUE && row.count > 0)
            {
                return Ok(None);
            }
            every
                .into_iter()
                .filter(|(_, k, _)| second(&k.value).is_some_and(|s| s == *v))
                .collect()
        }
    };
    Ok(Some(
        rows.into_iter()
            .filter_map(|(period, key, row)| {
                let value = match r.part {
                    Part::Whole => key.value,
                    Part::Empty => String::new(),
                    Part::First => first(&key.value)?,
                    Part::Second => second(&key.value)?,
                };
                let key = Key {
                    dimension: r.wanted,
                    value,
                    ..key
                };
                Some((period, key, row))
            })
            .collect(),
    ))
}

/// The parts of a cross value (`rollup::pair`, `rollup::error_route_value`).
fn parts(value: &str) -> Option<(String, Option<String>)> {
    serde_json::from_str(value).ok()
}

fn first(value: &str) -> Option<String> {
    parts(value).map(|(a, _)| a)
}

fn second(value: &str) -> Option<String> {
    parts(value).and_then(|(_, b)| b)
}

/// For each value of `dimension` among hour rows with events, the starts of its first
/// and its last hour: the `first_seen`/`last_seen` of a filtered errors answer.
pub fn first_last(rows: &Rows, dimension: Dimension) -> BTreeMap<String, (i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (_, key, row) in rows {
        if key.dimension == dimension && row.count > 0 {
            let span = out
                .entry(key.value.clone())
                .or_insert((key.start, key.start));
            span.0 = span.0.min(key.start);
            span.1 = span.1.max(key.start);
        }
    }
    out
}
