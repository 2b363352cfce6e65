//! Tally's query worker: the REST API. It reads D1 and is the only worker that knows the
//! JSON shapes of read responses.

// Its clock reads join one function with the query worker's edge floor (issue 13 §2);
// until then workers/clippy.toml's clock ban is lifted for this crate alone.
#![allow(clippy::disallowed_methods)]

mod admin;
mod alerts;
mod aliases;
mod api;
mod auth;
mod badge;
mod breakdown;
mod campaigns;
mod dashboard;
mod error;
mod errors;
mod export;
mod funnels;
mod installs;
mod measures;
mod metrics;
mod openapi;
mod overview;
mod sessions;
mod timeseries;

use std::ops::Deref;

use tally_core::ApiError;
use tally_storage::JobLog;
use tally_storage::d1::{D1Store, Meter};
use worker::{Context, Env, Method, Request, Response, Result, event};

/// The D1 database binding (see `wrangler/query.toml`).
pub const DB: &str = "DB";
/// The KV namespace binding that caches heavy answers.
pub const CACHE: &str = "CACHE";
/// The secret that guards the admin API.
pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
/// The secret ingest hashes user ids with, to filter by a raw `user_id`.
pub const ID_SECRET: &str = "ID_SECRET";

/// The read endpoints under `/v1/projects/{p}/` besides `overview`, `breakdown/{d}`,
/// `alerts/rules` and `campaigns/{c}`.
const READ_ENDPOINTS: [&str; 9] = [
    "timeseries",
    "errors",
    "installs",
    "metrics",
    "sessions",
    "funnels",
    "export",
    "alerts",
    "campaigns",
];

/// The header that says how many rows D1 read for the answer, summed over every D1 call
/// the request made (auth included) until the answer's headers were sent; a streamed
/// export's later pages are not in it.
const ROWS_READ_HEADER: &str = "x-tally-rows-read";

/// The environment of one request: the worker's bindings (it dereferences to
/// [`worker::Env`]) and the meter every D1 store made for this request adds to. Each
/// request has its own, since one isolate serves several requests at once.
pub struct RequestEnv {
    env: Env,
    meter: Meter,
}

impl Deref for RequestEnv {
    type Target = Env;

    fn deref(&self) -> &Env {
        &self.env
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let env = RequestEnv {
        env,
        meter: Meter::new(),
    };
    let mut response = route(req, &env).await.or_else(error::respond)?;
    let read = env.meter.rows().read.to_string();
    if let Err(e) = response.headers_mut().set(ROWS_READ_HEADER, &read) {
        // The answer stands without its measurement.
        worker::console_error!("could not set {ROWS_READ_HEADER}: {e}");
    }
    Ok(response)
}

async fn route(req: Request, env: &RequestEnv) -> std::result::Result<Response, ApiError> {
    let path = req.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (Method::Get, ["v1", "projects", project, "overview"]) => {
            auth::require_read(&req, env, project).await?;
            overview::get(&req, env, project).await
        }
        (_, ["api", "plugins", p, "analytics", "overview"]) => {
            aliases::plugin::overview(&req, env, p).await
        }
        (_, ["api", "plugins", p, "analytics", "timeseries"]) => {
            aliases::plugin::timeseries(&req, env, p).await
        }
        (_, ["api", "plugins", p, "analytics", "endpoints"]) => {
            aliases::plugin::endpoints(&req, env, p).await
        }
        (_, ["v1", "analytics", "overview"]) => aliases::cdn::overview(&req, env).await,
        (_, ["v1", "analytics", "images", id]) => aliases::cdn::image(&req, env, id).await,
        (_, ["metrics"]) => aliases::track::metrics(&req, env).await,
        (_, ["sessions"]) => aliases::track::sessions(&req, env).await,
        (Method::Get, ["v1", "projects", project, "timeseries"]) => {
            auth::require_read(&req, env, project).await?;
            timeseries::get(&req, env, project).await
        }
        (Method::Get, ["v1", "projects", project, "breakdown", dimension]) => {
            auth::require_read(&req, env, project).await?;
            breakdown::get(&req, env, project, dimension).await
        }
        (Method::Get, ["v1", "projects", project, "errors"]) => {
            auth::require_read(&req, env, project).await?;
            errors::get(&req, env, project).await
        }
        (Method::Get, ["v1", "projects", project, "installs"]) => {
            auth::require_read(&req, env, project).await?;
            installs::get(&req, env, project).await
        }
        (Method::Get, ["v1", "projects", project, "metrics"]) => {
            auth::require_read(&req, env, project).await?;
            metrics::get(&req, env, project).await
        }
        (Method::Get, ["v1", "projects", project, "sessions"]) => {
            auth::require_read(&req, env, project).await?;
            sessions::get(&req, env, project).await
        }
        (Method::Get, ["v1", "projects", project, "funnels"]) => {
            auth::require_read(&req, env, project).await?;
            funnels::get(&req, env, project).await
        }
        (Method::Get, ["v1", "projects", project, "export"]) => {
            auth::require_read(&req, env, project).await?;
            export::get(&req, env, project).await
        }
        (Method::Get, ["v1", "projects", project, "alerts"]) => {
            auth::require_read(&req, env, project).await?;
            alerts::history(&req, env, project).await
        }
        (Method::Get, ["v1", "projects", project, "alerts", "rules"]) => {
            auth::require_read(&req, env, project).await?;
            alerts::rules(&req, env, project).await
        }
        (Method::Get, ["v1", "projects", project, "campaigns"]) => {
            auth::require_read(&req, env, project).await?;
            campaigns::list(&req, env, project).await
        }
        (Method::Get, ["v1", "projects", project, "campaigns", campaign]) => {
            auth::require_read(&req, env, project).await?;
            campaigns::get(&req, env, project, campaign).await
        }
        (
            _,
            ["v1", "projects", _, "breakdown" | "campaigns", _]
            | ["v1", "projects", _, "alerts", "rules"],
        ) => Err(ApiError::method_not_allowed("GET")),
        (_, ["v1", "projects", _, endpoint]) if READ_ENDPOINTS.contains(endpoint) => {
            Err(ApiError::method_not_allowed("GET"))
        }
        (_, ["v1", "admin", rest @ ..]) => {
            let rest: Vec<&str> = rest.to_vec();
            admin::route(req, env, &rest).await
        }
        (_, ["dashboard", project, rest @ ..]) => {
            let rest: Vec<&str> = rest.to_vec();
            dashboard::route(req, env, project, &rest, dashboard::Entry::Dashboard).await
        }
        (_, ["admin", "plugins", slug, "analytics"]) => {
            dashboard::route(req, env, slug, &[], dashboard::Entry::Admin).await
        }
        (Method::Get | Method::Head, ["badge", project, file]) => {
            badge::get(&req, env, project, file).await
        }
        (Method::Get, ["v1", "health"] | [""]) => health(&req, env).await,
        (Method::Get, ["openapi.json"]) => openapi::get(),
        (_, ["v1", "projects", _, "overview"] | ["v1", "health"]) => {
            Err(ApiError::method_not_allowed("GET"))
        }
        _ => Err(ApiError::not_found(format!("no endpoint at {path}"))),
    }
}

/// `GET /v1/health`: the worker answers, D1 is readable, when each cron job last ran,
/// and what the last alert evaluation and rolls left undone (deferred rules, failed
/// rules and periods): counts for everyone, and with the admin token which ones and why.
async fn health(req: &Request, env: &RequestEnv) -> std::result::Result<Response, ApiError> {
    let store = store(env)?;
    let jobs = store.latest_job_runs().await.map_err(error::internal)?;
    let dead_letters = store.dead_letters().await.map_err(error::internal)?;
    let meta = store.meta().await.map_err(error::internal)?;
    let mut progress = tally_storage::pipeline::Progress::from_meta(&meta);
    if !admin::is_admin(req, env)? {
        progress = progress.counts_only();
    }
    Response::from_json(&serde_json::json!({
        "worker": "query",
        "status": "ok",
        "jobs": jobs,
        "dead_letters": dead_letters,
        "alerts": progress.alerts,
        "rolls": {"day": progress.roll_day, "month": progress.roll_month},
    }))
    .map_err(error::internal)
}

/// The D1 store for a request; what it reads counts towards the request's
/// [`ROWS_READ_HEADER`].
fn store(env: &RequestEnv) -> std::result::Result<D1Store, ApiError> {
    env.d1(DB)
        .map(|db| D1Store::metered(db, env.meter.clone()))
        .map_err(error::internal)
}
