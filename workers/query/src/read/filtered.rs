//! What the reads that take `filter` share: reading a report's rows through
//! `tally_storage::filtered` (rollups, raw events or a sample of users, within the row
//! budget of the `FILTER_ROW_BUDGET` var) and the members every such answer carries:
//! the filters echoed, the path that served it (`served_by`), the sample rate when
//! sampled, and the range the rows cover.

use serde_json::{Value, json};
use tally_core::filter::Filters;
use tally_core::range::Range;
use tally_core::rollup::Dimension;
use tally_edge::ApiError;
use tally_storage::filtered::{Bucket, Filtered, Path, Read};
use worker::{Request, Response};

use super::scope;
use crate::edge::params::Params;
use crate::edge::{self, RequestEnv, now_ms, respond};

/// A filtered report's question, its range and filters, which every filtered read
/// endpoint asks of [`Report::rows`] in its own dimensions and buckets.
#[derive(Clone, Copy)]
pub struct Report<'a> {
    range: Range,
    filters: &'a Filters,
}

impl<'a> Report<'a> {
    pub fn new(range: Range, filters: &'a Filters) -> Self {
        Self { range, filters }
    }

    /// The rows of the `wanted` dimensions of `project` over the range under the
    /// filters, through the read the dashboard shares (`edge::filtered::read`).
    ///
    /// # Errors
    ///
    /// 400 `invalid_range` when raw events are needed and the range is past retention,
    /// 400 `range_too_large` when even the smallest sample is over the budget, 404 for
    /// an unknown project (with filters), 500 when D1 fails.
    pub async fn rows(
        self,
        env: &RequestEnv,
        project: &str,
        wanted: &[Dimension],
        bucket: Bucket,
    ) -> Result<Filtered, ApiError> {
        let Self { range, filters } = self;
        // Without filters only rollups answer: the project's settings are not read.
        let retention_days = if filters.is_empty() {
            0
        } else {
            scope::project(env, project).await?.retention_days
        };
        let store = edge::store(env)?;
        let read = edge::filtered::read(
            env,
            &store,
            project,
            retention_days,
            range,
            filters,
            wanted,
            bucket,
        )
        .await?;
        match read {
            Read::Rows(rows) => Ok(rows),
            Read::PastRetention => Err(scope::past_retention(retention_days)),
            Read::OverBudget { events } => Err(edge::filtered::over_budget(
                events,
                edge::filtered::row_budget(env),
            )),
        }
    }
}

/// A report of one dimension, as breakdowns and revenue answer: the request's range,
/// `limit` (default 10, at most 1,000) and filters; the rows of `wanted` over the range
/// as one total through [`rows`]; the answer `shape` makes of them and the limit, with
/// what every filtered answer carries ([`describe`]); cached for `max_age_s` (in KV too
/// for long ranges, `scope::KV_MIN_RANGE_MS`) under `kind`, the dimension and the
/// question.
///
/// # Errors
///
/// 400 for a bad range, limit or filter, or [`Report::rows`]' errors.
#[allow(clippy::too_many_arguments)] // One report's question; a struct would only rename it.
pub async fn one_dimension(
    req: &Request,
    env: &RequestEnv,
    project: &str,
    kind: &str,
    dimension: Dimension,
    wanted: &[Dimension],
    max_age_s: u32,
    shape: impl FnOnce(&Filtered, usize) -> Value,
) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    let range = params.range(now_ms())?;
    let limit = params.limit(10, 1000)?;
    let filters = params.filters()?;
    let query = format!(
        "{kind}|{}|{}|{}|{limit}|{}",
        dimension.name(),
        range.from_ms,
        range.to_ms,
        filters.key()
    );
    let heavy = range.to_ms - range.from_ms >= scope::KV_MIN_RANGE_MS;
    let answer = respond::cached(env, project, &query, heavy, max_age_s, async || {
        let read = Report::new(range, &filters)
            .rows(env, project, wanted, Bucket::Whole)
            .await?;
        let mut body = shape(&read, limit);
        describe(&mut body, &filters, &read);
        Ok(body)
    })
    .await?;
    respond::json_cached(req, answer, max_age_s)
}

/// Adds what every filtered answer carries to `body`: `filters`, `served_by`,
/// `sample_rate` (when sampled) and the `from`/`to` the rows cover.
pub fn describe(body: &mut Value, filters: &Filters, rows: &Filtered) {
    let range = Range {
        from_ms: rows.from_ms,
        to_ms: rows.to_ms,
    };
    describe_served(body, filters, rows.path, range);
}

/// Adds what every filtered answer read along `path` over `range` carries to `body`:
/// [`describe_path`]'s members and `from`/`to`.
pub fn describe_served(body: &mut Value, filters: &Filters, path: Path, range: Range) {
    describe_path(body, filters, path);
    for (k, v) in scope::range_json(range) {
        body[k] = v;
    }
}

/// Adds `filters`, `served_by` and `sample_rate` (when sampled) to `body`: what every
/// answer read along `path` says of how it was read.
pub fn describe_path(body: &mut Value, filters: &Filters, path: Path) {
    body["filters"] = filters_json(filters);
    body["served_by"] = path.name().into();
    if let Some(rate) = path.sample_rate() {
        body["sample_rate"] = rate.into();
    }
}

/// The filters as answers echo them.
pub fn filters_json(filters: &Filters) -> Value {
    filters
        .iter()
        .map(|f| json!({"dimension": f.dimension.name(), "op": f.op.name(), "value": f.value}))
        .collect()
}
