//! The admin API's digest of a project, `/v1/admin/projects/{p}/digest`: show, create or
//! replace, delete.
//!
//! A project has at most one digest, daily or weekly. Its signing secret appears in the
//! answer that creates it and in the answer to a change that rotates it, never again
//! (answers show its first characters), as alert rules' secrets do. The aggregator's
//! minutely cron sends it; this worker writes only its definition and shows how its last
//! run went.

use crate::edge::Store;
use serde_json::{Value, json};
use tally_core::alerts::{SECRET_BYTES, new_secret};
use tally_core::digest::parse_input;
use tally_core::time::format_ms;
use tally_edge::ApiError;
use tally_storage::digests::{self, DigestRun};
use worker::Response;

use super::projects::existing;
use crate::edge::error::internal;
use crate::edge::respond::json_value;

fn no_digest(slug: &str) -> ApiError {
    ApiError::new(
        404,
        "unknown_digest",
        format!(
            "project {slug:?} has no digest; make one with \
             PUT /v1/admin/projects/{slug}/digest"
        ),
    )
}

/// How the latest run went: the period, the delivery state, attempts and the last
/// error, so a failing webhook shows here.
fn run_json(run: &DigestRun) -> Value {
    json!({
        "id": run.id,
        "period": run.period,
        "from": format_ms(run.start_ms),
        "to": format_ms(run.end_ms),
        "created_at": format_ms(run.created_at),
        "delivery": run.delivery,
        "attempts": run.attempts,
        "last_attempt_at": run.last_attempt_at.map(format_ms),
        "last_status": run.last_status,
        "last_error": run.last_error,
        "delivered_at": run.delivered_at.map(format_ms),
    })
}

/// `GET /v1/admin/projects/{p}/digest`: the digest and its latest run.
pub async fn get(store: &Store, slug: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let digest = digests::digest(store, slug)
        .await
        .map_err(internal)?
        .ok_or_else(|| no_digest(slug))?;
    let last = digests::last_run(store, slug).await.map_err(internal)?;
    json_value(
        200,
        &json!({
            "digest": digest.to_json(false),
            "last_run": last.as_ref().map(run_json),
        }),
        None,
    )
}

/// `PUT /v1/admin/projects/{p}/digest`: creates the digest (201, with its secret) or
/// replaces it (200; the secret is kept, and shown only with `"rotate_secret": true`).
pub async fn put(
    store: &Store,
    slug: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let input = parse_input(body)?;
    let existing = digests::digest(store, slug).await.map_err(internal)?;
    let mut random = [0u8; SECRET_BYTES];
    getrandom::fill(&mut random).map_err(internal)?;
    let (digest, new_secret_shown) =
        input.apply(slug, existing.as_ref(), new_secret(&random), now_ms);
    digests::put(store, &digest).await.map_err(internal)?;
    let status = if existing.is_some() { 200 } else { 201 };
    json_value(
        status,
        &json!({ "digest": digest.to_json(new_secret_shown) }),
        None,
    )
}

/// `DELETE /v1/admin/projects/{p}/digest`: no more digests; the runs stay recorded.
pub async fn delete(store: &Store, slug: &str) -> Result<Response, ApiError> {
    existing(store, slug).await?;
    let digest = digests::digest(store, slug)
        .await
        .map_err(internal)?
        .ok_or_else(|| no_digest(slug))?;
    if !digests::delete(store, slug).await.map_err(internal)? {
        return Err(no_digest(slug));
    }
    json_value(
        200,
        &json!({ "deleted": true, "digest": digest.to_json(false) }),
        None,
    )
}
