//! Tally's ingest worker: the HTTP front door. It validates events and sends them to the
//! `events` queue; it never writes D1.

mod error;
mod events;

use worker::{Context, Env, Method, Request, Response, Result, event};

use tally_core::ApiError;

/// The `events` queue producer binding (see `wrangler/ingest.toml`).
pub const EVENTS_QUEUE: &str = "EVENTS";
/// The secret under which raw instance, user and session ids are hashed.
pub const ID_SECRET: &str = "ID_SECRET";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let outcome = match (req.method(), req.path().as_str()) {
        (Method::Post, "/v1/events") => events::post(req, &env).await,
        (Method::Get, "/" | "/healthz") => Response::from_json(&serde_json::json!({
            "worker": "ingest",
            "status": "ok",
        }))
        .map_err(error::internal),
        (_, "/v1/events") => Err(ApiError::method_not_allowed("POST")),
        (_, path) => Err(ApiError::not_found(format!(
            "no endpoint at {path}; events go to POST /v1/events"
        ))),
    };
    outcome.or_else(error::respond)
}
