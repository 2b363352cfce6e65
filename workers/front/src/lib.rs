//! Tally's front worker: one host for every path of both APIs. It hands each request,
//! unchanged (method, headers, streamed body, `cf` properties), to the ingest or the
//! query worker through a service binding, by path ([`route::target`]), and answers
//! with that worker's answer, unchanged. It binds no D1, KV or queue, reads no clock and
//! keeps nothing.
//!
//! It is kept small on purpose (every request of both APIs loads it): no `tally-core`,
//! `serde_json` or `url`, whose parsing and JSON code would double its bundle. Its one
//! error answer is written out in the shape of `tally_edge::ApiError`'s body.

mod route;

use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Context, Env, Response, Result, event, web_sys, worker_sys};

use route::Target;

/// The service binding to the ingest worker (see `wrangler/front.toml`).
pub const INGEST: &str = "INGEST";
/// The service binding to the query worker.
pub const QUERY: &str = "QUERY";

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    let target = route::target(route::path_of(&req.url()));
    match forward(&req, &env, target).await {
        Ok(response) => Ok(response),
        Err(e) => {
            // The cause stays in the log; the client learns which worker did not answer.
            worker::console_error!("front: the {} worker failed: {e}", target.worker());
            let mut response = Response::ok(target.failure_body())?.with_status(502);
            response
                .headers_mut()
                .set("content-type", "application/json")?;
            Ok(response.into())
        }
    }
}

/// The target worker's answer to the request, as it gave it: the request object itself
/// is handed on, so nothing is copied or buffered.
async fn forward(req: &web_sys::Request, env: &Env, target: Target) -> Result<web_sys::Response> {
    let fetcher = match target {
        Target::Ingest => env.service(INGEST)?,
        Target::Query => env.service(QUERY)?,
    };
    let fetcher: worker_sys::Fetcher = fetcher.into_rpc();
    let answer = JsFuture::from(fetcher.fetch(req)?).await?;
    Ok(answer.dyn_into()?)
}
