//! CORS for browser reads: a page may read its own project's numbers with a read token
//! in `Authorization`, from an origin the project allows (its `allowed_origins`, the
//! list ingest enforces for sending). Only the read API and the seeds' read paths
//! (`Route::is_browser_read`) come here; the admin API, the dashboard and the badges
//! never grant CORS.
//!
//! A preflight carries no token, so the project is known only from a path that names it
//! (`/v1/projects/{p}/...`, `/api/plugins/{slug}/...`); the paths that name it only
//! through the token (`/metrics`, `/sessions`, `/v1/analytics/...`) are granted to any
//! origin at preflight. That is safe: the preflight only lets the browser send the real
//! request, and the real answer carries `Access-Control-Allow-Origin` only when the
//! token's own project allows the origin ([`decorate`]), so without it the browser
//! keeps the answer from the page.

use tally_edge::ApiError;
use tally_storage::AdminStore;
use worker::{Request, Response};

use crate::edge::error::internal;
use crate::edge::{RequestEnv, store};

/// How long a browser may reuse a preflight's grant, in seconds (browsers cap it lower:
/// Chromium at 2 hours).
const MAX_AGE_S: &str = "86400";
/// What a browser read may send: the token, and a content type some clients set on GET.
const ALLOW_HEADERS: &str = "authorization, content-type";
/// What the page's script may read of an answer besides the simple headers.
const EXPOSE_HEADERS: &str = "etag, x-tally-rows-read";

/// The request's `Origin`, if any.
pub fn origin(req: &Request) -> Option<String> {
    req.headers().get("origin").ok().flatten()
}

/// Answers an `OPTIONS` request to a browser-readable path: 204 with `Allow`, and, for
/// a preflight of a GET from an origin the project allows, the CORS grant. Only GET:
/// these paths answer HEAD with 405, so granting it would invite a request that fails.
/// `project` is the slug the path names, `None` for paths that name the project only
/// through the token (granted here, and checked on the real answer).
///
/// Another origin gets the same 204 without a grant (the browser then refuses to send
/// the real request): a clean answer that says nothing about the project.
///
/// # Errors
///
/// 500 when D1 fails.
pub async fn preflight(
    req: &Request,
    env: &RequestEnv,
    project: Option<&str>,
) -> Result<Response, ApiError> {
    let mut response = Response::empty().map_err(internal)?.with_status(204);
    let headers = response.headers_mut();
    headers.set("allow", "GET, OPTIONS").map_err(internal)?;
    headers.set("vary", "Origin").map_err(internal)?;
    let Some(origin) = origin(req) else {
        return Ok(response);
    };
    let wanted = req
        .headers()
        .get("access-control-request-method")
        .ok()
        .flatten();
    if wanted.as_deref() != Some("GET") {
        return Ok(response);
    }
    let granted = match project {
        None => true,
        Some(slug) => store(env)?
            .project(slug)
            .await
            .map_err(internal)?
            .is_some_and(|p| p.allows_origin(&origin)),
    };
    if granted {
        for (name, value) in [
            ("access-control-allow-origin", origin.as_str()),
            ("access-control-allow-methods", "GET"),
            ("access-control-allow-headers", ALLOW_HEADERS),
            ("access-control-max-age", MAX_AGE_S),
        ] {
            headers.set(name, value).map_err(internal)?;
        }
    }
    Ok(response)
}

/// Adds the CORS grant to the answer of a browser read from `origin` when its read token
/// belongs to a project that allows its origin (the project [`RequestEnv`] noted when
/// the token was classified). Every such answer varies by `Origin`.
///
/// # Errors
///
/// When the runtime cannot set a header.
pub fn decorate(
    origin: Option<&str>,
    env: &RequestEnv,
    mut response: Response,
) -> worker::Result<Response> {
    let Some(origin) = origin else {
        return Ok(response);
    };
    let headers = response.headers_mut();
    headers.append("vary", "Origin")?;
    if env
        .reader_project()
        .is_some_and(|project| project.allows_origin(origin))
    {
        headers.set("access-control-allow-origin", origin)?;
        headers.set("access-control-expose-headers", EXPOSE_HEADERS)?;
    }
    Ok(response)
}
