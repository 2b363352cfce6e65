//! The dashboard page's reads of rollups and raw events (`/dashboard/{p}`), written once
//! over the stores: the query worker renders what [`page`] returns, and storage's tests
//! count its D1 queries on a seeded project (`tests/dashboard.rs`), since the README
//! promises a page costs under 50, whatever its range and however many values its
//! dimensions hold.
//!
//! Every read is [`filtered::read`], the read API's one access path, so the page's
//! numbers are the API's under the same filters: the range's shown dimensions in one
//! covering read, the previous period's `all` rows, the series (from the range's own
//! `all` rows when they make it) and the heatmap's route counts. Without filters the
//! range's rows come without the durations sketches of other dimensions than
//! [`TIMED`], whose percentiles the page alone shows.

use tally_core::filter::Filters;
use tally_core::rollup::Dimension;
use tally_core::time::Interval;

use crate::filtered::{self, Bucket, Filtered, Limits, Read};
use crate::read::{self, Counts};
use crate::{Error, FilteredReads, QueryStore, RollupStore};

/// The dimensions the page shows, the only ones it reads: `all`, every dimension of one
/// field and the revenue dimensions (rows only for events with revenue).
pub const DIMENSIONS: [Dimension; 18] = {
    let mut shown = [Dimension::All; 18];
    let mut i = 0;
    while i < Dimension::OF_ONE_FIELD.len() {
        shown[i + 1] = Dimension::OF_ONE_FIELD[i];
        i += 1;
    }
    let mut i = 0;
    while i < Dimension::REVENUE.len() {
        shown[Dimension::OF_ONE_FIELD.len() + 1 + i] = Dimension::REVENUE[i];
        i += 1;
    }
    shown
};

/// The dimensions whose percentiles the page shows: the others' rows over the range
/// are read without their durations sketches when it has no filters (their tables
/// show counts and unique counts), which at 10 M events is a sixth of the hex the
/// range's rows carry.
pub const TIMED: &[Dimension] = &[Dimension::All];

/// Most days the heatmap covers: it reads hour rows, 24 per day and route.
pub const HEATMAP_DAYS: i64 = 28;

/// What a page asks of its project.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub project: &'a str,
    /// The page's range, `[from_ms, to_ms)` in whole hours.
    pub from_ms: i64,
    pub to_ms: i64,
    /// The buckets of its series.
    pub interval: Interval,
    /// The period its headline numbers are compared with.
    pub previous: (i64, i64),
    /// Where its heatmap starts (it covers at most [`HEATMAP_DAYS`], up to `to_ms`).
    pub heatmap_from_ms: i64,
    pub filters: &'a Filters,
    /// The first whole hour whose raw events are all kept (retention), for reads that
    /// need raw events.
    pub oldest_raw_ms: i64,
    /// Rows each filtered read may read, as D1 counts them.
    pub row_budget: u64,
}

impl Question<'_> {
    /// The limits of one read of `[from_ms, to_ms)`: without filters only rollups answer
    /// and retention does not matter; with them, raw events from the range's part within
    /// retention (none when it is all older).
    fn limits(&self, from_ms: i64, to_ms: i64) -> Limits {
        let raw_from_ms = if self.filters.is_empty() {
            0
        } else {
            from_ms.max(self.oldest_raw_ms).min(to_ms)
        };
        Limits {
            row_budget: self.row_budget,
            raw_from_ms,
        }
    }
}

/// What the page's reads give.
#[derive(Debug, Clone)]
pub enum Page {
    /// The range's rows and the other sections'.
    Read(Box<Sections>),
    /// The range could not be read (past retention, over the budget): the page shows
    /// why, and nothing else was read.
    Refused(Read),
}

/// The rows of each section of a page. A section whose read was refused (the previous
/// period past retention, say) is `None` and the page shows it empty.
#[derive(Debug, Clone)]
pub struct Sections {
    /// Every dimension of [`DIMENSIONS`] over the range, as one total.
    pub range: Filtered,
    /// The previous period's `all` rows, per bucket.
    pub previous: Option<Filtered>,
    /// The series: the range's `all` rows per bucket.
    pub series: Series,
    /// Events per hour and route from `heatmap_from_ms`.
    pub route_hours: RouteHours,
}

/// Where the series comes from.
#[derive(Debug, Clone)]
pub enum Series {
    /// The range's own `all` rows make it (no filters, buckets of days or longer): they
    /// are day and hour rows already, and reading them again by bucket would cost the
    /// same queries twice.
    OfRange,
    /// Read by bucket; `None` when refused.
    Read(Option<Filtered>),
}

/// The heatmap's route counts.
#[derive(Debug, Clone)]
pub enum RouteHours {
    /// Without filters, from the route's hour rows read without their summaries.
    Counts(Counts),
    /// With filters, the route's rows by hour under them; `None` when refused.
    Read(Option<Filtered>),
}

/// Every read of a dashboard page, in the order the page needs them.
///
/// # Errors
///
/// The store's error.
pub async fn page<S: RollupStore + FilteredReads + QueryStore>(
    store: &S,
    question: &Question<'_>,
) -> Result<Page, Error> {
    let q = question;
    let read = |from_ms, to_ms, wanted: &'static [Dimension], bucket| {
        filtered::read(
            store,
            q.project,
            from_ms,
            to_ms,
            q.filters,
            wanted,
            bucket,
            q.limits(from_ms, to_ms),
        )
    };
    let rows = |read: Read| match read {
        Read::Rows(rows) => Some(rows),
        Read::PastRetention | Read::OverBudget { .. } => None,
    };
    let range = if q.filters.is_empty() {
        // The page shows percentiles of `all` alone: the other rows' sketches are left
        // in D1.
        let rows =
            read::covering_rows_timing(store, q.project, q.from_ms, q.to_ms, &DIMENSIONS, TIMED)
                .await?;
        Filtered::of_rollups(rows, q.from_ms, q.to_ms)
    } else {
        match read(q.from_ms, q.to_ms, &DIMENSIONS, Bucket::Whole).await? {
            Read::Rows(rows) => rows,
            refused => return Ok(Page::Refused(refused)),
        }
    };
    let all: &'static [Dimension] = &[Dimension::All];
    let every = Bucket::Every(q.interval);
    let previous = rows(read(q.previous.0, q.previous.1, all, every).await?);
    let series = if q.filters.is_empty() && q.interval != Interval::Hour {
        Series::OfRange
    } else {
        Series::Read(rows(read(q.from_ms, q.to_ms, all, every).await?))
    };
    let route_hours = if q.filters.is_empty() {
        RouteHours::Counts(
            read::hourly_counts(
                store,
                q.project,
                q.heatmap_from_ms,
                q.to_ms,
                Dimension::Route,
            )
            .await?,
        )
    } else {
        let route: &'static [Dimension] = &[Dimension::Route];
        let hourly = Bucket::Every(Interval::Hour);
        RouteHours::Read(rows(read(q.heatmap_from_ms, q.to_ms, route, hourly).await?))
    };
    Ok(Page::Read(Box::new(Sections {
        range,
        previous,
        series,
        route_hours,
    })))
}
