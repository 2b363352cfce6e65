//! Funnels as the read API and the dashboard answer them: under report filters (only
//! events that meet every filter count as steps) and within the row budget of filtered
//! reads, on the paths of `filtered`.
//!
//! 1. **Raw**, exact: each distinct step name's events read through
//!    `raw_events_by_name` (with the filters in SQL), when the `name` rollup rows of the
//!    range count at most [`funnel::MAX_HITS`] of them and their rows fit the budget
//!    ([`ROWS_PER_HIT`] each without filters, `filtered::ROWS_PER_EVENT` with, and
//!    `filtered::ROWS_PER_QUERY` per page). The rollups count events with and without a
//!    user, so the estimate is never below what the read finds.
//! 2. **Sampled**, past that: [`filtered::scan`]'s sample of users — the same users
//!    every filtered report samples — read a bucket at a time within the budget; a user
//!    is in the sample with all their events, so each sampled user's funnel is exact,
//!    and the users per step are scaled by `256 / k`.
//!
//! A budget that even one sample bucket overflows is [`Funnel::OverBudget`].

use tally_core::Event;
use tally_core::filter::Filters;
use tally_core::funnel::{self, Conversion, Hit};
use tally_core::rollup::{self, Dimension};

use crate::filtered::{self, PAGE, Path, ROWS_PER_EVENT, ROWS_PER_QUERY, Scan};
use crate::read::covering_rows_matching;
use crate::{Error, FilteredReads, QueryStore, RollupStore, ValueMatch};

/// The rows D1 counts per step event an unfiltered funnel reads: its entry of
/// `raw_events_by_name`, which covers the read (no table row is visited).
pub const ROWS_PER_HIT: u64 = 1;

/// A funnel's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Funnel {
    Counted {
        steps: Vec<Conversion>,
        path: Path,
        /// Raw events read: the step events on the raw path (as counted beforehand),
        /// every event of the sampled users on the sampled path.
        events_read: u64,
    },
    /// Even one sample bucket of the range holds more events than the budget.
    OverBudget { events: u64 },
}

/// The funnel of `steps` over `project`'s raw events in `[from_ms, to_ms)` (a range
/// within raw retention) under `filters`, within `row_budget` rows: see the module doc.
///
/// # Errors
///
/// The store's error.
#[allow(clippy::too_many_arguments)] // One funnel's question; a struct would only rename it.
pub async fn funnel<S: RollupStore + FilteredReads + QueryStore>(
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
    if let Some(events) = step_events(store, project, from_ms, to_ms, &names).await? {
        let queries = events / u64::from(PAGE) + names.len() as u64;
        let rows = events.saturating_mul(per_hit) + queries * ROWS_PER_QUERY;
        if events <= funnel::MAX_HITS as u64
            && rows <= row_budget
            && let Some(hits) = exact_hits(store, project, from_ms, to_ms, &names, filters).await?
        {
            let counts = funnel::count(hits, steps, window_ms);
            return Ok(Funnel::Counted {
                steps: funnel::conversions(steps, &counts),
                path: Path::Raw,
                events_read: events,
            });
        }
    }
    let hit = |hits: &mut Vec<Hit>, event: &Event| {
        if let Some(user) = &event.user
            && names.contains(&event.name.as_str())
        {
            hits.push(Hit {
                user: user.clone(),
                timestamp: event.timestamp,
                event_id: event.event_id.clone(),
                name: event.name.clone(),
            });
        }
    };
    let scan = filtered::scan(
        store,
        project,
        (from_ms, to_ms),
        filters,
        row_budget,
        Vec::new,
        hit,
    )
    .await?;
    let scanned = match scan {
        Scan::Events(scanned) => scanned,
        Scan::OverBudget { events } => return Ok(Funnel::OverBudget { events }),
    };
    let scale = scanned.scale();
    // Each user is in one group: counting them all at once counts each once.
    let hits: Vec<Hit> = scanned.groups.into_iter().flatten().collect();
    let counts: Vec<u64> = funnel::count(hits, steps, window_ms)
        .into_iter()
        .map(|users| users.saturating_mul(scale))
        .collect();
    Ok(Funnel::Counted {
        steps: funnel::conversions(steps, &counts),
        path: scanned.path,
        events_read: scanned.events_read,
    })
}

/// The events of `names` in the range as the `name` rollup rows count them, with and
/// without a user; `None` when a folded row of names has events in the range (a name's
/// events may then hide in it, and its own rows undercount).
async fn step_events<S: RollupStore + FilteredReads>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    names: &[&str],
) -> Result<Option<u64>, Error> {
    let count = async |value: ValueMatch<'_>| -> Result<u64, Error> {
        let rows = covering_rows_matching(
            store,
            project,
            from_ms,
            to_ms,
            Dimension::Name,
            value,
            false,
        )
        .await?;
        Ok(rows.iter().map(|(_, _, row)| row.count).sum())
    };
    if count(ValueMatch::Exact(rollup::FOLDED_VALUE)).await? > 0 {
        return Ok(None);
    }
    let mut events = 0u64;
    for name in names {
        events = events.saturating_add(count(ValueMatch::Exact(name)).await?);
    }
    Ok(Some(events))
}

/// Every step event of `names` in the range that meets `filters`, in pages of [`PAGE`]
/// per name, merged in time order; `None` past [`funnel::MAX_HITS`] (rollups that
/// counted fewer than the read finds would be a bug, and memory stays bounded anyway).
async fn exact_hits<S: QueryStore>(
    store: &S,
    project: &str,
    from_ms: i64,
    to_ms: i64,
    names: &[&str],
    filters: &Filters,
) -> Result<Option<Vec<Hit>>, Error> {
    let mut hits: Vec<Hit> = Vec::new();
    for name in names {
        let mut after: Option<(i64, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(t, id)| (*t, id.as_str()));
            let page = store
                .funnel_hits(project, from_ms, to_ms, name, filters, cursor, PAGE)
                .await?;
            let done = page.len() < PAGE as usize;
            after = page.last().map(|h| (h.timestamp, h.event_id.clone()));
            hits.extend(page);
            if hits.len() > funnel::MAX_HITS {
                return Ok(None);
            }
            if done {
                break;
            }
        }
    }
    hits.sort_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
    Ok(Some(hits))
}
