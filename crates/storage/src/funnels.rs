//! Funnels as the read API and the dashboard answer them: under report filters (only
//! events that meet every filter count as steps) and within a row budget.
//!
//! A funnel needs its steps' events one by one, per user. It reads them through
//! `raw_events_by_name`, keyed by project, name, sample bucket and time, so it reads
//! the steps' events and nothing else, a sample bucket at a time if it must:
//!
//! 1. **Raw**, exact: the events of all [`SAMPLE_BUCKETS`] buckets, when they fit the
//!    budget ([`ROWS_PER_HIT`] rows each without filters, `filtered::ROWS_PER_EVENT`
//!    with; [`ROWS_PER_SEEK`] per bucket and name, [`ROWS_PER_BUCKET`] per bucket and
//!    `filtered::ROWS_PER_QUERY` per statement) and [`funnel::MAX_HITS`].
//! 2. **Sampled**, past that: the events of the first `k` buckets (`k` a power of two),
//!    the users every sampled filtered report samples. A user is in the sample with all
//!    their events, so each sampled user's funnel is exact, and the users per step are
//!    scaled by `256 / k`.
//!
//! The `name` rollup rows of the range count the steps' events beforehand (with and
//! without a user, so never fewer than the read finds); `k` starts at the most buckets
//! whose expected share of them fits the budget and doubles while the budget lasts. A
//! statement that fills its limit (users with more events than the average) is dropped
//! and `k` halves. When the rollups cannot count a name (its events may hide in a
//! folded row), `k` starts at one bucket.
//!
//! A budget that even one bucket overflows is [`Funnel::OverBudget`].

use tally_core::filter::{Filters, SAMPLE_BUCKETS};
use tally_core::funnel::{self, Conversion, Hit};
use tally_core::rollup::{self, Dimension};

use crate::filtered::{Path, ROWS_PER_EVENT, ROWS_PER_QUERY};
use crate::read::covering_counts;
use crate::{Error, QueryStore, RollupStore};

/// The rows D1 counts per step event an unfiltered funnel reads: its entry of
/// `raw_events_by_name`, which covers the read (no table row is visited).
pub const ROWS_PER_HIT: u64 = 1;

/// The rows D1 counts per seek of `raw_events_by_name` (one per bucket and name) besides
/// the events it finds: the seek itself and the name's row of the statement's JSON
/// array. Measured on local D1, which counts a row per cursor step (workerd's
/// `patches/sqlite/0001-row-counts-plain.patch`): each step name more, over 256 buckets
/// that hold none of its events, cost 512 rows of the statement.
pub const ROWS_PER_SEEK: u64 = 2;

/// The rows D1 counts per sample bucket a statement reads besides its seeks: the
/// bucket's row of the statement's JSON array.
pub const ROWS_PER_BUCKET: u64 = 1;

/// The rows a funnel may read by default. A funnel answers from a sample of users past
/// it; 10,000 rows keep its time at 10 M raw events what it is at 100 K (the bench's
/// funnel at 10 M reads 4 of 256 buckets, ~5,700 rows) at the cost of sampling error on
/// late steps (5–15% at the bench's users); a deployment may trade otherwise with the
/// query worker's `FUNNEL_ROW_BUDGET` var.
pub const DEFAULT_FUNNEL_ROW_BUDGET: u64 = 10_000;

/// A funnel's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Funnel {
    Counted {
        steps: Vec<Conversion>,
        path: Path,
        /// The step events of the buckets the answer is computed on, those that met the
        /// filters and those that did not (those of the sampled users on the sampled
        /// path).
        events_read: u64,
    },
    /// Even one sample bucket of the range holds more step events than the budget.
    OverBudget { events: u64 },
}

/// The funnel of `steps` over `project`'s raw events in `[from_ms, to_ms)` (a range
/// within raw retention) under `filters`, within `row_budget` rows: see the module doc.
///
/// # Errors
///
/// The store's error.
#[allow(clippy::too_many_arguments)] // One funnel's question; a struct would only rename it.
pub async fn funnel<S: RollupStore + QueryStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    steps: &[String],
    window_ms: i64,
    filters: &Filters,
    row_budget: u64,
) -> Result<Funnel, Error> {
    let mut names: Vec<&str> = Vec::with_capacity(steps.len());
    for step in steps {
        if !names.contains(&step.as_str()) {
            names.push(step);
        }
    }
    let per_hit = if filters.is_empty() {
        ROWS_PER_HIT
    } else {
        ROWS_PER_EVENT
    };
    // The rows one statement over `buckets` more buckets costs besides its events.
    let overhead = |buckets: u32| {
        u64::from(buckets) * (ROWS_PER_BUCKET + names.len() as u64 * ROWS_PER_SEEK) + ROWS_PER_QUERY
    };
    let counted = step_events(store, project, from_ms, to_ms, &names).await?;
    // The step events `buckets` buckets hold on average, as the rollups count them
    // (none when they cannot).
    let expected = |buckets: u32| {
        counted.map_or(0, |events| {
            events.saturating_mul(u64::from(buckets)) / u64::from(SAMPLE_BUCKETS)
        })
    };
    if counted == Some(0) {
        // No step event in the range: nothing to read (rollups and raw rows are
        // committed together).
        return Ok(Funnel::Counted {
            steps: funnel::conversions(steps, &vec![0; steps.len()]),
            path: Path::Raw,
            events_read: 0,
        });
    }
    let max_hits = funnel::MAX_HITS as u64;
    let mut target = if counted.is_some() { SAMPLE_BUCKETS } else { 1 };
    while target > 1
        && (expected(target).saturating_mul(per_hit) + overhead(target) > row_budget
            || expected(target) > max_hits)
    {
        target /= 2;
    }
    let mut hits: Vec<Hit> = Vec::new();
    // Buckets read whole (`0..whole`), the step events they hold, and rows spent as D1
    // counts them (in statements dropped too).
    let (mut whole, mut events_read, mut spent) = (0u32, 0u64, 0u64);
    // Step events read by every statement, dropped ones too.
    let mut events_seen = 0u64;
    while target > whole {
        let fresh = target - whole;
        let left = row_budget.saturating_sub(spent);
        let room = left.saturating_sub(overhead(fresh)) / per_hit;
        let room = room.min(max_hits - events_read);
        // Buckets past the first are read only when their average fits.
        if room == 0 || (whole > 0 && expected(fresh) > room) {
            break;
        }
        let limit = u32::try_from(room + 1).unwrap_or(u32::MAX);
        let (found, read) = store
            .funnel_hits(
                project,
                from_ms,
                to_ms,
                &names,
                whole..target,
                filters,
                limit,
            )
            .await?;
        spent += overhead(fresh) + read * per_hit;
        events_seen += read;
        if read > room {
            // The buckets held more than the budget left: read half as many, if that
            // still adds some.
            if whole == 0 && target > 1 {
                target /= 2;
                continue;
            }
            break;
        }
        events_read += read;
        hits.extend(found);
        whole = target;
        target = (whole * 2).min(SAMPLE_BUCKETS);
    }
    if whole == 0 {
        return Ok(Funnel::OverBudget {
            events: counted.unwrap_or(events_seen),
        });
    }
    let scale = u64::from(SAMPLE_BUCKETS / whole);
    let counts: Vec<u64> = funnel::count(hits, steps, window_ms)
        .into_iter()
        .map(|users| users.saturating_mul(scale))
        .collect();
    let path = if whole == SAMPLE_BUCKETS {
        Path::Raw
    } else {
        Path::Sampled { buckets: whole }
    };
    Ok(Funnel::Counted {
        steps: funnel::conversions(steps, &counts),
        path,
        events_read,
    })
}

/// The events of `names` in the range as the `name` rollup rows count them, with and
/// without a user (one read of the dimension's counts); `None` when a folded row of
/// names has events in the range (a name's events may then hide in it, and its own rows
/// undercount).
async fn step_events<S: RollupStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    names: &[&str],
) -> Result<Option<u64>, Error> {
    let counts = covering_counts(store, project, from_ms, to_ms, Dimension::Name).await?;
    if counts.get(rollup::FOLDED_VALUE).is_some_and(|&n| n > 0) {
        return Ok(None);
    }
    Ok(Some(
        names
            .iter()
            .filter_map(|name| counts.get(*name))
            .fold(0u64, |sum, &n| sum.saturating_add(n)),
    ))
}
