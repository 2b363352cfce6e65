//! Tally's aggregator worker: the only writer of events to D1. It consumes the `events`
//! queue ([`consumer`]), runs the cron jobs ([`cron`]) and acts on alerts ([`alerting`]).

mod alerting;
mod consumer;
mod cron;

use worker::{Context, Env, Request, Response, Result, event};

/// The D1 database binding (see `wrangler/aggregator.toml`).
pub const DB: &str = "DB";
/// The dead-letter queue of `tally-events`, which this worker also consumes.
pub const EVENTS_DLQ: &str = "tally-events-dlq";
/// The queue of alerts to act on, which this worker produces and consumes.
pub const ALERTS_QUEUE: &str = "tally-alerts";

/// Answers liveness probes; the aggregator serves no other HTTP.
#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    Response::from_json(&serde_json::json!({"worker": "aggregator", "status": "ok"}))
}
