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

use std::collections::{BTreeMap, BTreeSet};

use tally_core::Event;
use tally_core::filter::{self, Filters, Part, RollupRead, SAMPLE_BUCKETS, Select};
use tally_core::realtime::{self, Realtime, Visitors, Window};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

impl Filtered {
    /// Rows read from rollups over the whole asked range: exact, no raw event read.
    pub(crate) fn of_rollups(rows: Rows, from_ms: i64, to_ms: i64) -> Self {
        Self {
            rows,
            path: Path::Rollups,
            from_ms,
            to_ms,
            scale: 1,
            events_read: 0,
        }
    }
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
        return Ok(Read::Rows(Filtered::of_rollups(rows, from_ms, to_ms)));
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
            return Ok(Read::Rows(Filtered::of_rollups(rows, from_ms, to_ms)));
        }
    }
    let from_ms = from_ms.max(limits.raw_from_ms);
    if from_ms >= to_ms {
        return Ok(Read::PastRetention);
    }
    let fold = || Fold {
        project,
        wanted,
        bucket,
        from_ms,
        rows: BTreeMap::new(),
    };
    let scanned = scan(
        store,
        project,
        (from_ms, to_ms),
        filters,
        limits.row_budget,
        fold,
        Fold::add,
    )
    .await?;
    let scanned = match scanned {
        Scan::Events(scanned) => scanned,
        Scan::OverBudget { events } => return Ok(Read::OverBudget { events }),
    };
    let scale = scanned.scale();
    let mut rows: BTreeMap<Key, Rollup> = BTreeMap::new();
    for group in scanned.groups {
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
        path: scanned.path,
        from_ms,
        to_ms,
        scale,
        events_read: scanned.events_read,
    }))
}

/// The events of a [`scan`], folded by the caller into groups: one group on the raw
/// path, one per power-of-two group of sample buckets read whole on the sampled path
/// (`{0}`, `{1}`, `{2, 3}`, `{4..7}`, …: together the first [`Path::Sampled`] buckets).
#[derive(Debug)]
pub struct Scanned<G> {
    pub groups: Vec<G>,
    pub path: Path,
    /// The raw events read (scanned): on the raw path the range's events as the
    /// rollups counted them (which bound the scan), on the sampled path exactly those read.
    pub events_read: u64,
}

impl<G> Scanned<G> {
    /// What each event of the groups stands for: 1, or `256 / k` from a sample of `k`
    /// buckets.
    pub fn scale(&self) -> u64 {
        match self.path {
            Path::Sampled { buckets } => u64::from(SAMPLE_BUCKETS / buckets),
            _ => 1,
        }
    }
}

/// What a [`scan`] gives.
#[derive(Debug)]
pub enum Scan<G> {
    Events(Scanned<G>),
    /// Even one sample bucket of the range holds more events than the budget.
    OverBudget {
        events: u64,
    },
}

/// The raw events of `project` in `[from_ms, to_ms)` that meet `filters`, each handed to
/// `add` with its group (see [`Scanned`]), within `row_budget` rows as D1 counts them:
/// the range's events, which the `all` rollup rows count beforehand, read through the
/// time index with the filters in SQL when they fit the budget (the raw path, exact);
/// past it, a sample of users a bucket at a time ([`Path::Sampled`], see the module
/// doc), the filters applied here. The one raw-event read of every filtered report,
/// funnels, sessions and the realtime view included, so they sample the same users.
///
/// Memory: `add` sees at most `row_budget / ROWS_PER_EVENT` events; what a group keeps
/// of them is the caller's.
///
/// # Errors
///
/// The store's error.
pub async fn scan<S, G>(
    store: &S,
    project: &str,
    (from_ms, to_ms): (i64, i64),
    filters: &Filters,
    row_budget: u64,
    group: impl Fn() -> G,
    mut add: impl FnMut(&mut G, &Event),
) -> Result<Scan<G>, Error>
where
    S: RollupStore + QueryStore,
{
    let events: u64 = covering_rows(store, project, from_ms, to_ms, Some(Dimension::All), false)
        .await?
        .iter()
        .map(|(_, _, r)| r.count)
        .sum();
    let pages = events / u64::from(PAGE) + 1;
    let exact_rows = events.saturating_mul(ROWS_PER_EVENT) + pages * ROWS_PER_QUERY;
    if exact_rows > row_budget {
        return sampled(
            store,
            project,
            (from_ms, to_ms),
            filters,
            events,
            row_budget,
            group,
            add,
        )
        .await;
    }
    let mut one = group();
    let mut after: Option<(i64, String)> = None;
    loop {
        let cursor = after.as_ref().map(|(t, id)| (*t, id.as_str()));
        let page = store
            .filtered_events(project, from_ms, to_ms, filters, cursor, PAGE)
            .await?;
        for event in &page {
            add(&mut one, event);
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => {
                after = Some((last.timestamp, last.event_id.clone()));
            }
            _ => break,
        }
    }
    Ok(Scan::Events(Scanned {
        groups: vec![one],
        path: Path::Raw,
        // It scanned the range's events, which the rollups counted: at most these
        // (fewer when some were purged or rolled up from elsewhere).
        events_read: events,
    }))
}

/// The sampled path: see the module doc.
#[allow(clippy::too_many_arguments)] // `scan`'s question, passed on whole.
async fn sampled<S: QueryStore, G>(
    store: &S,
    project: &str,
    (from_ms, to_ms): (i64, i64),
    filters: &Filters,
    events: u64,
    budget: u64,
    group: impl Fn() -> G,
    mut add: impl FnMut(&mut G, &Event),
) -> Result<Scan<G>, Error> {
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
    // One group per group of buckets whose size is a power of two: {0}, {1}, {2, 3},
    // {4..7}, ...; dropping the groups from one on leaves a power of two of buckets.
    let mut groups: Vec<G> = (0..=buckets.trailing_zeros()).map(|_| group()).collect();
    // Events read, and rows as D1 counts them.
    let (mut read, mut spent) = (0u64, 0u64);
    let mut whole = buckets;
    'buckets: for bucket in 0..buckets {
        let index = (u32::BITS - bucket.leading_zeros()) as usize;
        let bucket = u8::try_from(bucket).unwrap_or(u8::MAX);
        let mut after: Option<(i64, String)> = None;
        loop {
            let left = budget.saturating_sub(spent + ROWS_PER_QUERY) / ROWS_PER_EVENT;
            let limit = u32::try_from(left.min(u64::from(PAGE))).unwrap_or(PAGE);
            if limit == 0 {
                whole = if index == 0 { 0 } else { 1 << (index - 1) };
                break 'buckets;
            }
            let cursor = after.as_ref().map(|(t, id)| (*t, id.as_str()));
            let page = store
                .sample_events(project, bucket, from_ms, to_ms, cursor, limit)
                .await?;
            read += page.len() as u64;
            spent += ROWS_PER_QUERY + page.len() as u64 * ROWS_PER_EVENT;
            for event in page.iter().filter(|e| filters.matches(e)) {
                add(&mut groups[index], event);
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
        return Ok(Scan::OverBudget { events });
    }
    groups.truncate(whole.trailing_zeros() as usize + 1);
    Ok(Scan::Events(Scanned {
        groups,
        path: Path::Sampled { buckets: whole },
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

/// What [`realtime()`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum FilteredRealtime {
    View {
        view: Realtime,
        path: Path,
    },
    /// Even one sample bucket of the window holds more events than the budget.
    OverBudget {
        events: u64,
    },
}

/// The realtime view of `project` over `window` under `filters` (not empty: without
/// filters `read::realtime` answers from minute rows, which take none), from the raw
/// events of its thirty minutes through [`scan`], within `row_budget` rows: exact when
/// they fit (the window is small), else from a sample of users, counts scaled. Visitors
/// are the distinct users of the matching events of the last five minutes, counted
/// exactly among the events read (scaled when sampled), never truncated.
///
/// # Errors
///
/// The store's error.
pub async fn realtime<S: RollupStore + QueryStore>(
    store: &S,
    project: &str,
    window: Window,
    filters: &Filters,
    row_budget: u64,
) -> Result<FilteredRealtime, Error> {
    const SHOWN: [Dimension; 3] = [Dimension::All, Dimension::Route, Dimension::Source];
    #[derive(Default)]
    struct Group {
        rows: BTreeMap<(Dimension, i64, String), Rollup>,
        visitors: BTreeSet<String>,
    }
    let visitors_from = window.visitors_from();
    let add = |group: &mut Group, event: &Event| {
        let minute = Interval::Minute.floor(event.timestamp);
        for dimension in SHOWN {
            if let Some(value) = dimension.value_of(event) {
                group
                    .rows
                    .entry((dimension, minute, value))
                    .or_default()
                    .add(dimension, event);
            }
        }
        if event.timestamp >= visitors_from
            && let Some(user) = &event.user
        {
            group.visitors.insert(user.clone());
        }
    };
    // Future timestamps are clamped to their arrival, so none lies past `now_ms`; the
    // bound past it only keeps an event of this very millisecond.
    let range = (window.first_minute, window.now_ms + 1);
    let scanned = match scan(
        store,
        project,
        range,
        filters,
        row_budget,
        Group::default,
        add,
    )
    .await?
    {
        Scan::Events(scanned) => scanned,
        Scan::OverBudget { events } => return Ok(FilteredRealtime::OverBudget { events }),
    };
    let scale = scanned.scale();
    let mut rows: BTreeMap<(Dimension, i64, String), Rollup> = BTreeMap::new();
    let mut visitors: BTreeSet<String> = BTreeSet::new();
    for group in scanned.groups {
        for (key, row) in group.rows {
            rows.entry(key).or_default().merge(&row);
        }
        visitors.extend(group.visitors);
    }
    for row in rows.values_mut() {
        row.count = row.count.saturating_mul(scale);
        row.errors = row.errors.saturating_mul(scale);
    }
    let of = |wanted: Dimension| {
        rows.iter()
            .filter(move |((dimension, _, _), _)| *dimension == wanted)
            .map(|((_, minute, value), row)| (*minute, value.as_str(), row))
    };
    let top = |dimension| {
        realtime::top(
            dimension,
            of(dimension).map(|(_, value, row)| (value, row)),
            realtime::TOP_VALUES,
        )
    };
    let view = Realtime {
        window,
        minutes: realtime::minutes(&window, of(Dimension::All).map(|(m, _, row)| (m, row))),
        visitors: Visitors {
            count: (visitors.len() as u64).saturating_mul(scale),
            events_read: scanned.events_read,
            truncated: false,
        },
        routes: top(Dimension::Route),
        sources: top(Dimension::Source),
    };
    Ok(FilteredRealtime::View {
        view,
        path: scanned.path,
    })
}
