//! `GET /v1/projects/{p}/overview`: headline numbers for a project over a range.

use tally_core::ApiError;
use tally_core::time::{DAY_MS, format_ms};
use tally_core::validate::is_valid_slug;
use tally_storage::EventReader;
use worker::{Date, Env, Request, Response};

use crate::error::internal;

/// Longest range `days` may ask for.
const MAX_DAYS: i64 = 3660;

pub async fn get(req: &Request, env: &Env, project: &str) -> Result<Response, ApiError> {
    if !is_valid_slug(project) {
        return Err(ApiError::bad_request(
            "invalid_project",
            format!("{project:?} is not a project slug ([a-z0-9-]{{1,64}})"),
        ));
    }
    let days = days_param(req)?;
    let to = Date::now().as_millis() as i64 + 1;
    let from = to - days * DAY_MS;
    let counts = crate::store(env)?
        .count_events(project, from, to)
        .await
        .map_err(internal)?;
    let error_rate = if counts.events == 0 {
        0.0
    } else {
        counts.errors as f64 / counts.events as f64
    };
    let mut response = Response::from_json(&serde_json::json!({
        "project": project,
        "from": format_ms(from),
        "to": format_ms(to),
        "events": counts.events,
        "errors": counts.errors,
        "error_rate": error_rate,
    }))
    .map_err(internal)?;
    response
        .headers_mut()
        .set("cache-control", "private, max-age=60")
        .map_err(internal)?;
    Ok(response)
}

/// The `days` query parameter: 1 to [`MAX_DAYS`], default 30.
fn days_param(req: &Request) -> Result<i64, ApiError> {
    let url = req.url().map_err(internal)?;
    let Some((_, value)) = url.query_pairs().find(|(k, _)| k == "days") else {
        return Ok(30);
    };
    match value.parse::<i64>() {
        Ok(days) if (1..=MAX_DAYS).contains(&days) => Ok(days),
        _ => Err(ApiError::bad_request(
            "invalid_range",
            format!("days must be a whole number from 1 to {MAX_DAYS}, not {value:?}"),
        )),
    }
}
