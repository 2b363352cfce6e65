//! Turns [`ApiError`] into a response at the ingest worker's edge.

use tally_core::ApiError;
use worker::Response;

/// Logs an internal failure in full and answers with a generic 500.
pub fn internal(error: impl std::fmt::Display) -> ApiError {
    worker::console_error!("internal error: {error}");
    ApiError::internal()
}

/// The HTTP response for an error.
pub fn respond(error: ApiError) -> worker::Result<Response> {
    Ok(Response::from_json(&error.body())?.with_status(error.status))
}
