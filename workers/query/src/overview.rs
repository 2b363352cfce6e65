//! `GET /v1/projects/{p}/overview`: headline numbers for a project over a range.

use tally_core::ApiError;
use tally_core::range::{self, Limits, Query};
use tally_core::time::format_ms;
use tally_core::validate::is_valid_slug;
use tally_storage::EventReader;
use worker::{Date, Env, Request, Response};

use crate::error::internal;

pub async fn get(req: &Request, env: &Env, project: &str) -> Result<Response, ApiError> {
    if !is_valid_slug(project) {
        return Err(ApiError::bad_request(
            "invalid_project",
            format!("{project:?} is not a project slug ([a-z0-9-]{{1,64}})"),
        ));
    }
    let url = req.url().map_err(internal)?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let (from, to, days) = (param("from"), param("to"), param("days"));
    let query = Query {
        from: from.as_deref(),
        to: to.as_deref(),
        days: days.as_deref(),
    };
    let now = Date::now().as_millis() as i64;
    let range = range::resolve(query, now, Limits::default())
        .map_err(|m| ApiError::bad_request("invalid_range", m))?;
    let (from, to) = (range.from_ms, range.to_ms);
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
