//! What a read covers: the project of the path, its settings, the answer for a range
//! past raw retention (`edge::params::within_retention` cuts one to it), and the
//! `from`/`to` members every answer carries.

use tally_core::project::Project;
use tally_core::range::Range;
use tally_core::time::{DAY_MS, format_ms};
use tally_core::validate::is_valid_slug;
use tally_edge::ApiError;
use tally_storage::AdminStore;

use crate::edge::error::internal;
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

pub use crate::edge::filtered::past_retention;

/// The `from` and `to` members every answer carries.
pub fn range_json(range: Range) -> [(&'static str, serde_json::Value); 2] {
    [
        ("from", format_ms(range.from_ms).into()),
        ("to", format_ms(range.to_ms).into()),
    ]
}
