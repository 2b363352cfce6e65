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
use tally_storage::filtered::{Bucket, Filtered, Read};

use super::scope;
use crate::edge::{self, RequestEnv};

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

/// Adds what every filtered answer carries to `body`: `filters`, `served_by`,
/// `sample_rate` (when sampled) and the `from`/`to` the rows cover.
pub fn describe(body: &mut Value, filters: &Filters, rows: &Filtered) {
    body["filters"] = filters_json(filters);
    body["served_by"] = rows.path.name().into();
    if let Some(rate) = rows.path.sample_rate() {
        body["sample_rate"] = rate.into();
    }
    let range = Range {
        from_ms: rows.from_ms,
        to_ms: rows.to_ms,
    };
    for (k, v) in scope::range_json(range) {
        body[k] = v;
    }
}

/// The filters as answers echo them.
pub fn filters_json(filters: &Filters) -> Value {
    filters
        .iter()
        .map(|f| json!({"dimension": f.dimension.name(), "op": f.op.name(), "value": f.value}))
        .collect()
}
