//! Tally's ingest worker: the HTTP front door. It admits requests (write key, origin,
//! rate limit), validates events and sends them to the `events` queue; it reads keys
//! from D1 but never writes it.

mod auth;
mod cors;
mod error;
mod events;
mod intake;
mod key_cache;
mod plausible;
mod track;

use worker::{Context, Date, Env, Method, Request, Response, Result, event};

use tally_core::ApiError;

/// The `events` queue producer binding (see `wrangler/ingest.toml`).
pub const EVENTS_QUEUE: &str = "EVENTS";
/// The secret under which raw instance, user and session ids are hashed.
pub const ID_SECRET: &str = "ID_SECRET";
/// The D1 binding, read for write keys and project settings.
pub const DB: &str = "DB";
/// The KV binding, for the daily visitor-id salt and for reporting missing bindings.
pub const CACHE: &str = "CACHE";
/// The rate-limiting binding for key lookups that reach D1, per client address.
pub const LOOKUP_LIMIT: &str = "RATE_LIMIT_LOOKUP";

/// Milliseconds since the Unix epoch: the worker's one reading of the clock.
#[allow(
    clippy::disallowed_methods,
    reason = "the worker's one clock read (workers/clippy.toml)"
)]
pub fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// The endpoints that take events.
const EVENT_PATHS: [&str; 3] = ["/v1/events", "/track", "/api/event"];

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let origin = req.headers().get("origin").ok().flatten();
    let path = req.path();
    let url = req.url()?;
    let outcome = match (req.method(), path.as_str()) {
        (Method::Options, p) if EVENT_PATHS.contains(&p) => cors::preflight(&req, &env, &url).await,
        (Method::Post, "/v1/events") => events::post(req, &env, &url).await,
        (Method::Post, "/track") => track::post(req, &env, &url).await,
        (Method::Post, "/api/event") => plausible::post(req, &env, &url).await,
        (Method::Get, "/" | "/healthz") => Response::from_json(&serde_json::json!({
            "worker": "ingest",
            "status": "ok",
        }))
        .map_err(error::internal),
        (_, p) if EVENT_PATHS.contains(&p) => Err(ApiError::method_not_allowed("POST")),
        (_, p) => Err(ApiError::not_found(format!(
            "no endpoint at {p}; events go to POST /v1/events, /track or /api/event"
        ))),
    };
    let response = match outcome {
        Ok(response) => response,
        Err(e) if path == "/track" => error::respond_with(&e, track::error_body(&e))?,
        Err(e) => error::respond(e)?,
    };
    cors::decorate(response, origin.as_deref())
}
