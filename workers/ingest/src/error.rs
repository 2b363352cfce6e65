//! Turns [`ApiError`] into a response at the ingest worker's edge.

use serde_json::Value;
use tally_edge::ApiError;
use worker::Response;

/// Logs an internal failure in full and answers with a generic 500.
pub fn internal(error: impl std::fmt::Display) -> ApiError {
    worker::console_error!("internal error: {error}");
    ApiError::internal()
}

/// The HTTP response for an error.
pub fn respond(error: ApiError) -> worker::Result<Response> {
    let body = error.body();
    respond_with(&error, body)
}

/// The HTTP response for an error with a body in another shape (the track API's). A
/// 429 carries `Retry-After`.
pub fn respond_with(error: &ApiError, body: Value) -> worker::Result<Response> {
    let mut response = Response::from_json(&body)?.with_status(error.status);
    if let Some(seconds) = error.extra.get("retry_after") {
        response
            .headers_mut()
            .set("retry-after", &seconds.to_string())?;
    }
    Ok(response)
}
