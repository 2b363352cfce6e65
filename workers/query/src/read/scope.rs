//! What a read covers: the project of the path, its settings, the part of a range its
//! raw events still cover, and the `from`/`to` members every answer carries.

use tally_core::ApiError;
use tally_core::project::Project;
use tally_core::range::Range;
use tally_core::time::{DAY_MS, format_ms};
use tally_core::validate::is_valid_slug;
use tally_storage::AdminStore;

use crate::edge::error::internal;
use crate::edge::params::whole_hours;
use crate::edge::{RequestEnv, store};

/// Ranges at least this long are heavy: their answers are kept in KV.
pub const KV_MIN_RANGE_MS: i64 = 7 * DAY_MS;

/// Checks the project slug of a path.
///
/// # Errors
///
/// 400 `invalid_project`.
pub fn check_project(project: &str) -> Result<(), ApiError> {
    if is_valid_slug(project) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_project",
            format!("{project:?} is not a project slug ([a-z0-9-]{{1,64}})"),
        ))
    }
}

/// The project's settings (for its raw-event retention).
///
/// # Errors
///
/// 404 `unknown_project` when there is no such project.
pub async fn project(env: &RequestEnv, slug: &str) -> Result<Project, ApiError> {
    store(env)?
        .project(slug)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::new(
                404,
                "unknown_project",
                format!("there is no project {slug:?}"),
            )
        })
}

/// The part of `range` whose raw events are all still kept: raw events older than the
/// project's retention are purged, so a range reaching further back starts at the first
/// whole hour within retention. `None` when nothing of the range is left.
pub fn within_retention(range: Range, retention_days: u32, now_ms: i64) -> Option<Range> {
    let oldest = now_ms - i64::from(retention_days) * DAY_MS;
    let oldest = whole_hours(Range {
        from_ms: oldest,
        to_ms: oldest,
    })
    .to_ms;
    let from_ms = range.from_ms.max(oldest);
    (from_ms < range.to_ms).then_some(Range {
        from_ms,
        to_ms: range.to_ms,
    })
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

/// The `from` and `to` members every answer carries.
pub fn range_json(range: Range) -> [(&'static str, serde_json::Value); 2] {
    [
        ("from", format_ms(range.from_ms).into()),
        ("to", format_ms(range.to_ms).into()),
    ]
}

#[cfg(test)]
mod tests {
    use tally_core::time::HOUR_MS;

    use super::*;

    const H: i64 = HOUR_MS;

    #[test]
    fn retention_cuts_the_start_to_a_whole_hour_within_it() {
        let now = 100 * DAY_MS + 30 * 60_000;
        let range = |from_ms, to_ms| Range { from_ms, to_ms };
        // 10 days back is 90 days 00:30; the first whole hour within is 01:00.
        assert_eq!(
            within_retention(range(0, 101 * DAY_MS), 10, now),
            Some(range(90 * DAY_MS + H, 101 * DAY_MS))
        );
        assert_eq!(
            within_retention(range(95 * DAY_MS, 96 * DAY_MS), 10, now),
            Some(range(95 * DAY_MS, 96 * DAY_MS))
        );
        assert_eq!(within_retention(range(0, 90 * DAY_MS), 10, now), None);
    }
}
