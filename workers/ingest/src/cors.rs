//! CORS for browser senders: preflight answers, and the headers every answer carries.
//!
//! Origins are enforced per project in [`crate::auth::admit`]: a request from an origin
//! the project does not allow is refused with 403 and nothing is stored. Answers echo the
//! request's origin so that a page can read what went wrong.

use tally_edge::ApiError;
use worker::{Env, Request, Response, Url};

use crate::auth;

/// How long a browser may reuse a preflight answer, in seconds.
const MAX_AGE_S: u32 = 86_400;

/// Answers a preflight. A key in the query string (the only credential a preflight can
/// carry) is checked along with the origin; without one the real request is checked.
pub async fn preflight(req: &Request, env: &Env, url: &Url) -> Result<Response, ApiError> {
    if url.query_pairs().any(|(k, _)| k == "key") {
        auth::admit_origin(req, env, url).await?;
    }
    let mut response = Response::empty()
        .map_err(crate::error::internal)?
        .with_status(204);
    let headers = response.headers_mut();
    for (name, value) in [
        ("access-control-allow-methods", "POST, OPTIONS"),
        (
            "access-control-allow-headers",
            "authorization, content-type, content-encoding, idempotency-key",
        ),
        ("access-control-max-age", &MAX_AGE_S.to_string()),
    ] {
        headers.set(name, value).map_err(crate::error::internal)?;
    }
    Ok(response)
}

/// Adds the CORS headers to an answer to a browser request.
pub fn decorate(mut response: Response, origin: Option<&str>) -> worker::Result<Response> {
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.set("access-control-allow-origin", origin)?;
        headers.set(
            "access-control-expose-headers",
            "retry-after, x-tally-dropped",
        )?;
        headers.append("vary", "Origin")?;
    }
    Ok(response)
}
