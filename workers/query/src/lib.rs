//! Tally's query worker: the REST API, the seeds' read paths, the admin API, the
//! dashboard and the badges. It reads D1 and is the only worker that knows the JSON
//! shapes of read responses.
//!
//! Three floors. This file is the top: the fetch entry and the dispatch of a
//! [`route::Route`] to its wing. The wings — [`admin`], [`read`], [`aliases`],
//! [`dashboard`], [`badge`], [`health`], [`openapi`] — each serve one audience and import
//! only the ground floor: [`edge`] (environment, store, clock, parameters, answers,
//! errors), [`access`] (tokens) and [`route`] (the pure routing table). No wing imports
//! another (`xtask/src/tidy.rs` checks it).

mod access;
mod admin;
mod aliases;
mod badge;
mod dashboard;
mod edge;
mod health;
mod openapi;
mod read;
mod route;

use tally_edge::ApiError;
use worker::{Context, Env, Request, Response, Result, event};

use crate::edge::RequestEnv;
use crate::edge::{cors, error};
use crate::route::{Area, Miss, Route};

/// The header that says how many rows D1 read for the answer, summed over every D1 call
/// the request made (auth included) until the answer's headers were sent; a streamed
/// export's later pages are not in it.
const ROWS_READ_HEADER: &str = "x-tally-rows-read";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let env = RequestEnv::new(env);
    let mut response = answer(req, &env).await.or_else(error::respond)?;
    let read = env.rows_read().to_string();
    if let Err(e) = response.headers_mut().set(ROWS_READ_HEADER, &read) {
        // The answer stands without its measurement.
        worker::console_error!("could not set {ROWS_READ_HEADER}: {e}");
    }
    Ok(response)
}

/// Routes a request to its wing; a browser read (the read API, the seeds' read paths)
/// answers its CORS preflight and carries CORS headers for its token's project.
async fn answer(req: Request, env: &RequestEnv) -> std::result::Result<Response, ApiError> {
    let path = req.path();
    // The method as sent: `Request::method` reads unknown ones as GET.
    let method = req.inner().method();
    let route = match route::parse(&method, &path) {
        Ok(route) => route,
        Err(miss) => return refuse(&req, env, &path, &miss),
    };
    let browser_read = route.is_browser_read();
    if browser_read && method == "OPTIONS" {
        let named = match route {
            Route::Read(project, _) => Some(project),
            Route::Alias(alias) => alias.project(),
            _ => None,
        };
        return cors::preflight(&req, env, named).await;
    }
    let origin = cors::origin(&req);
    let outcome = dispatch(req, env, route).await;
    if !browser_read {
        return outcome;
    }
    // An error is granted too, so that the page can read why.
    let response = outcome.or_else(|e| error::respond(e).map_err(error::internal))?;
    cors::decorate(origin.as_deref(), env, response).map_err(error::internal)
}

/// Hands a route to its wing.
async fn dispatch(
    req: Request,
    env: &RequestEnv,
    route: Route<'_>,
) -> std::result::Result<Response, ApiError> {
    match route {
        Route::Health => health::get(&req, env).await,
        Route::OpenApi => openapi::get(),
        Route::Read(project, endpoint) => read::get(&req, env, project, endpoint).await,
        Route::Alias(alias) => aliases::get(&req, env, alias).await,
        Route::Admin(endpoint) => admin::handle(req, env, endpoint).await,
        Route::Dashboard(project, page) => dashboard::handle(req, env, project, page).await,
        Route::Projects(page) => dashboard::projects::handle(req, env, page).await,
        Route::Badge(project, file) => badge::get(&req, env, project, file).await,
    }
}

/// Answers a request no endpoint takes, as its area answers failures, with `Allow` on a
/// 405.
fn refuse(
    req: &Request,
    env: &RequestEnv,
    path: &str,
    miss: &Miss<'_>,
) -> std::result::Result<Response, ApiError> {
    let error = miss.error(path);
    let response = match miss.area {
        Area::Api => error::respond(error),
        Area::Admin => {
            access::require_admin(req, env)?;
            error::respond(error)
        }
        Area::Dashboard => return with_allow(dashboard::error_page(&error)?, miss),
        Area::Track => return with_allow(aliases::track::refuse(error)?, miss),
    };
    with_allow(response.map_err(error::internal)?, miss)
}

fn with_allow(mut response: Response, miss: &Miss<'_>) -> std::result::Result<Response, ApiError> {
    if let Some(allow) = miss.allow() {
        response
            .headers_mut()
            .set("allow", &allow)
            .map_err(error::internal)?;
    }
    Ok(response)
}
