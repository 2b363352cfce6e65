//! Reads under report filters, written once for the read API and the dashboard: the
//! access path is `tally_storage::filtered`'s decision (rollups, raw events or a sample
//! of users), within the row budget of the `FILTER_ROW_BUDGET` var and the part of the
//! range raw retention covers. Each caller turns what cannot be read into its own
//! answer (a JSON error, a page's error or a note).

use crate::edge::Store;
use tally_core::filter::Filters;
use tally_core::range::Range;
use tally_core::realtime::{Realtime, Window};
use tally_core::rollup::Dimension;
use tally_edge::ApiError;
use tally_storage::filtered::{
    self, Bucket, DEFAULT_ROW_BUDGET, FilteredRealtime, Limits, Path, Read,
};
use tally_storage::funnels::DEFAULT_FUNNEL_ROW_BUDGET;
use tally_storage::read;

use super::error::internal;
use super::{FILTER_ROW_BUDGET, FUNNEL_ROW_BUDGET, RequestEnv, now_ms, params};

/// The rows of the `wanted` dimensions of `project` over `range` (whole hours) under
/// `filters`, with the project's raw retention: `Read::PastRetention` and
/// `Read::OverBudget` are the caller's to answer ([`past_retention`], [`over_budget`]).
///
/// # Errors
///
/// 500 when D1 fails.
#[allow(clippy::too_many_arguments)] // One report's question; a struct would only rename it.
pub async fn read(
    env: &RequestEnv,
    store: &Store,
    project: &str,
    retention_days: u32,
    range: Range,
    filters: &Filters,
    wanted: &[Dimension],
    bucket: Bucket,
) -> Result<Read, ApiError> {
    // Without filters only rollups answer, and retention does not matter.
    let raw_from_ms = if filters.is_empty() {
        0
    } else {
        params::within_retention(range, retention_days, now_ms()).map_or(range.to_ms, |r| r.from_ms)
    };
    let limits = Limits {
        row_budget: row_budget(env),
        raw_from_ms,
    };
    filtered::read(
        store,
        project,
        range.from_ms,
        range.to_ms,
        filters,
        wanted,
        bucket,
        limits,
    )
    .await
    .map_err(internal)
}

/// The row budget: the `FILTER_ROW_BUDGET` var when it is a whole number, else the
/// default.
pub fn row_budget(env: &RequestEnv) -> u64 {
    whole_number(env.var(FILTER_ROW_BUDGET)).unwrap_or(DEFAULT_ROW_BUDGET)
}

/// A funnel's row budget: the `FUNNEL_ROW_BUDGET` var when it is a whole number, else
/// the default.
pub fn funnel_row_budget(env: &RequestEnv) -> u64 {
    whole_number(env.var(FUNNEL_ROW_BUDGET)).unwrap_or(DEFAULT_FUNNEL_ROW_BUDGET)
}

/// A var's value as a whole number, if it is one.
fn whole_number(var: worker::Result<worker::Var>) -> Option<u64> {
    var.ok().and_then(|v| v.to_string().trim().parse().ok())
}

/// The answer for a range wholly older than raw retention.
pub fn past_retention(retention_days: u32) -> ApiError {
    ApiError::bad_request(
        "invalid_range",
        format!(
            "the range ends before this project's raw events begin (they are kept \
             {retention_days} days); ask for a more recent range"
        ),
    )
}

/// The answer for a filtered read that even the smallest sample cannot make.
pub fn over_budget(events: u64, row_budget: u64) -> ApiError {
    ApiError::bad_request(
        "range_too_large",
        format!(
            "the range holds {events} events; even a sample of 1/256 of their users is more \
             than this read may scan ({row_budget} rows); ask for a shorter range"
        ),
    )
}

/// The realtime view of `project` as of `now` under `filters`, and the path that served
/// it: minute rows without filters (`read::realtime`), with them the thirty minutes' raw
/// events or a sample of their users (`filtered::realtime`), within the row budget.
///
/// # Errors
///
/// 400 `range_too_large` when even a sample of the thirty minutes is over the budget,
/// 500 when D1 fails.
pub async fn realtime(
    env: &RequestEnv,
    store: &Store,
    project: &str,
    filters: &Filters,
    now: i64,
) -> Result<(Realtime, Path), ApiError> {
    let window = Window::ending_at(now);
    if filters.is_empty() {
        let view = read::realtime(store, project, window)
            .await
            .map_err(internal)?;
        return Ok((view, Path::Rollups));
    }
    let budget = row_budget(env);
    match filtered::realtime(store, project, window, filters, budget)
        .await
        .map_err(internal)?
    {
        FilteredRealtime::View { view, path } => Ok((view, path)),
        FilteredRealtime::OverBudget { events } => Err(over_budget(events, budget)),
    }
}
