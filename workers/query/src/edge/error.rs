//! Errors at the query worker's edge: every failure is a [`tally_edge::ApiError`], an
//! internal one is logged in full and answered generically ([`internal`]), core's
//! refusals become 400s in one place ([`refused`]), and [`respond`] turns an error into
//! the JSON answer.

use std::fmt::Display;

use tally_edge::ApiError;
use worker::Response;

/// Logs an internal failure in full and answers with a generic 500.
pub fn internal(error: impl Display) -> ApiError {
    worker::console_error!("internal error: {error}");
    ApiError::internal()
}

/// A refusal of one of core's checks (a range, a funnel window) as a 400 with `code` and
/// core's message: the one place where core's error values become HTTP errors.
pub fn refused(code: &'static str, error: impl Display) -> ApiError {
    ApiError::bad_request(code, error.to_string())
}

/// The HTTP response for an error.
///
/// # Errors
///
/// When the runtime cannot build a response.
pub fn respond(error: ApiError) -> worker::Result<Response> {
    Ok(Response::from_json(&error.body())?.with_status(error.status))
}
