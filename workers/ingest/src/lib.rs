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

use tally_edge::ApiError;

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

/// The methods a path takes, for the `Allow` header of a 405; `None` for a path that
/// is not ingest's.
fn allowed_methods(path: &str) -> Option<&'static str> {
    if EVENT_PATHS.contains(&path) {
        Some("POST, OPTIONS")
    } else if matches!(path, "/" | "/healthz") {
        Some("GET")
    } else {
        None
    }
}

/// The method the request names, if `worker` knows it by that exact name: its
/// `Request::method` reads every other method (`QUERY`, `PROPFIND`) as GET, which
/// would answer them as a GET.
fn known_method(req: &Request) -> Option<Method> {
    let text = req.inner().method();
    let method = Method::from(text.clone());
    (method.as_ref() == text).then_some(method)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let origin = req.headers().get("origin").ok().flatten();
    let path = req.path();
    let url = req.url()?;
    // An unknown method (`None`) matches no arm: a 405 on ingest's paths, a 404
    // elsewhere.
    let outcome = match (known_method(&req), path.as_str()) {
        (Some(Method::Options), "/v1/events" | "/track" | "/api/event") => {
            cors::preflight(&req, &env, &url).await
        }
        (Some(Method::Post), "/v1/events") => events::post(req, &env, &url).await,
        (Some(Method::Post), "/track") => track::post(req, &env, &url).await,
        (Some(Method::Post), "/api/event") => plausible::post(req, &env, &url).await,
        (Some(Method::Get), "/" | "/healthz") => Response::from_json(&serde_json::json!({
            "worker": "ingest",
            "status": "ok",
        }))
        .map_err(error::internal),
        (_, p) => Err(match allowed_methods(p) {
            Some(_) if EVENT_PATHS.contains(&p) => ApiError::method_not_allowed("POST"),
            Some(_) => ApiError::method_not_allowed("GET"),
            None => ApiError::not_found(format!(
                "no endpoint at {p}; events go to POST /v1/events, /track or /api/event"
            )),
        }),
    };
    let mut response = match outcome {
        Ok(response) => response,
        Err(e) if path == "/track" => error::respond_with(&e, track::error_body(&e))?,
        Err(e) => error::respond(e)?,
    };
    if response.status_code() == 405
        && let Some(allow) = allowed_methods(&path)
    {
        response.headers_mut().set("allow", allow)?;
    }
    cors::decorate(response, origin.as_deref())
}
