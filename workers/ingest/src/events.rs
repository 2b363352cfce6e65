//! `POST /v1/events`: a JSON array of events, `{"events": [...]}`, or NDJSON (one event
//! per line), validated one by one.
//!
//! Good events in a mixed batch are accepted; the answer lists every event's outcome.

use serde::Serialize;
use serde_json::Value;
use tally_core::{ApiError, Event, Rejection, Warning};
use tally_storage::EventQueue;
use worker::{Env, Request, Response, Url};

use crate::auth;
use crate::error::internal;
use crate::intake::{self, Intake};

/// Most events in one request.
pub const MAX_EVENTS: usize = 1000;

/// One event's outcome, in request order.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Outcome {
    Accepted {
        index: usize,
        event_id: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<Warning>,
    },
    Rejected {
        index: usize,
        error: Rejection,
    },
}

/// How the body lists its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Ndjson,
}

pub async fn post(mut req: Request, env: &Env, url: &Url) -> Result<Response, ApiError> {
    let format = match intake::media_type(&req).as_str() {
        // text/plain is what `navigator.sendBeacon` sends for a string body.
        "application/json" | "text/plain" => Format::Json,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Format::Ndjson,
        other => {
            return Err(intake::unsupported(
                other,
                "application/json (an array or {\"events\": [...]}) or application/x-ndjson",
            ));
        }
    };
    let grant = auth::admit(&req, env, url).await?;
    let body = intake::read_body(&mut req).await?;
    let items = match format {
        Format::Json => parse_json(&body)?,
        Format::Ndjson => parse_ndjson(&body)?,
    };
    let intake = Intake::new(&req, env, &grant)?;

    let mut accepted = Vec::with_capacity(items.len());
    let mut outcomes = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match item.and_then(|value| intake.check_value(value)) {
            Ok(ok) => {
                outcomes.push(Outcome::Accepted {
                    index,
                    event_id: ok.event.event_id.clone(),
                    warnings: ok.warnings,
                });
                accepted.push(ok.event);
            }
            Err(error) => outcomes.push(Outcome::Rejected { index, error }),
        }
    }

    if accepted.is_empty() {
        let rejected_count = outcomes.len();
        return Err(ApiError::bad_request(
            "no_valid_events",
            "every event was rejected; see results",
        )
        .with("accepted", 0.into())
        .with("rejected", rejected_count.into())
        .with(
            "results",
            serde_json::to_value(&outcomes).map_err(internal)?,
        ));
    }
    let queue = intake::events_queue(env)?;
    let body = queue_and_answer(&queue, outcomes, &accepted).await?;
    Ok(Response::from_json(&body)
        .map_err(internal)?
        .with_status(202))
}

/// Sends the accepted events and gives the 202 body listing every event's outcome.
///
/// # Errors
///
/// 503 `queue_unavailable` when the queue refused them.
async fn queue_and_answer(
    queue: &impl EventQueue,
    outcomes: Vec<Outcome>,
    accepted: &[Event],
) -> Result<Value, ApiError> {
    let rejected = outcomes.len() - accepted.len();
    if let Err(e) = intake::send_events(queue, accepted).await {
        log_send_failure(&e.cause);
        return Err(intake::queue_unavailable());
    }
    Ok(serde_json::json!({
        "accepted": accepted.len(),
        "rejected": rejected,
        "results": outcomes,
    }))
}

/// Logs what the queue said (natively, where there is no console, to stderr).
fn log_send_failure(cause: &str) {
    #[cfg(target_arch = "wasm32")]
    worker::console_error!("queue send failed: {cause}");
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("queue send failed: {cause}");
}

type Item = Result<Value, Rejection>;

/// Reads a JSON array of events or an object `{"events": [...]}`.
fn parse_json(body: &[u8]) -> Result<Vec<Item>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let events = match value {
        Value::Array(events) => events,
        Value::Object(mut map) => match map.remove("events") {
            Some(Value::Array(events)) => events,
            _ => return Err(invalid_batch()),
        },
        _ => return Err(invalid_batch()),
    };
    bounded(events.into_iter().map(Ok).collect())
}

/// Reads one JSON event per line; blank lines are skipped, and a line that is not JSON
/// is rejected alone, like any other bad event.
fn parse_ndjson(body: &[u8]) -> Result<Vec<Item>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("NDJSON body is not UTF-8: {e}"))
    })?;
    let items = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_str::<Value>(line).map_err(|e| Rejection {
                code: "malformed_json",
                field: None,
                message: format!("this line is not valid JSON: {e}"),
            })
        })
        .collect();
    bounded(items)
}

fn invalid_batch() -> ApiError {
    ApiError::bad_request(
        "invalid_batch",
        "send a JSON array of events or an object {\"events\": [...]}",
    )
}

fn bounded(items: Vec<Item>) -> Result<Vec<Item>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "the batch holds no events",
        ));
    }
    if items.len() > MAX_EVENTS {
        return Err(ApiError::new(
            413,
            "too_many_events",
            format!(
                "{} events in one request; send at most {MAX_EVENTS}",
                items.len()
            ),
        ));
    }
    Ok(items)
}
