//! `POST /v1/events`: a JSON array of events, or `{"events": [...]}`, validated one by one.
//!
//! Good events in a mixed batch are accepted; the answer lists every event's outcome.

use serde::Serialize;
use serde_json::Value;
use tally_core::{ApiError, Context, RawEvent, Rejection, Settings, Warning, queue, validate};
use tally_storage::EventQueue;
use tally_storage::cloudflare::CfQueue;
use worker::{Date, Env, Request, Response};

use crate::error::internal;
use crate::{EVENTS_QUEUE, ID_SECRET};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
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

pub async fn post(mut req: Request, env: &Env) -> Result<Response, ApiError> {
    let content_type = req
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    if !content_type.trim_start().starts_with("application/json") {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "send events as JSON with Content-Type: application/json",
        ));
    }
    if let Some(length) = req.headers().get("content-length").ok().flatten()
        && length.parse::<usize>().is_ok_and(|n| n > MAX_BODY_BYTES)
    {
        return Err(too_large());
    }
    let body = req.bytes().await.map_err(|e| {
        ApiError::bad_request(
            "unreadable_body",
            format!("could not read the request body: {e}"),
        )
    })?;
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let raw_events = parse_batch(&body)?;

    let secret = env.secret(ID_SECRET).map_err(|_| {
        worker::console_error!("the {ID_SECRET} secret is not set");
        ApiError::new(
            503,
            "misconfigured",
            "ingest is missing its ID_SECRET secret; the operator must set it",
        )
    })?;
    let secret = secret.to_string();
    let ctx = Context {
        now_ms: Date::now().as_millis() as i64,
        settings: Settings::default(),
        id_secret: secret.as_bytes(),
    };
    let mut fresh_id = fresh_uuid;
    let mut accepted = Vec::with_capacity(raw_events.len());
    let mut outcomes = Vec::with_capacity(raw_events.len());
    for (index, value) in raw_events.into_iter().enumerate() {
        let checked = serde_json::from_value::<RawEvent>(value)
            .map_err(|e| Rejection {
                code: "invalid_event",
                field: None,
                message: e.to_string(),
            })
            .and_then(|raw| validate(raw, &ctx, &mut fresh_id));
        match checked {
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

    let accepted_count = accepted.len();
    let rejected_count = outcomes.len() - accepted_count;
    if accepted.is_empty() {
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

    let queue = CfQueue::new(env.queue(EVENTS_QUEUE).map_err(internal)?);
    let bodies = queue::pack(&accepted, queue::MAX_MESSAGE_BYTES);
    if let Err(e) = queue.send(&bodies).await {
        // Nothing is reported as accepted unless it is on the queue. A retry of the
        // whole request is safe: the aggregator drops events it already stored.
        worker::console_error!("queue send failed: {e}");
        return Err(ApiError::new(
            503,
            "queue_unavailable",
            "events could not be queued; retry the same request",
        ));
    }

    let body = serde_json::json!({
        "accepted": accepted_count,
        "rejected": rejected_count,
        "results": outcomes,
    });
    Ok(Response::from_json(&body)
        .map_err(internal)?
        .with_status(202))
}

fn too_large() -> ApiError {
    ApiError::new(
        413,
        "body_too_large",
        format!("request body exceeds {MAX_BODY_BYTES} bytes; split the batch"),
    )
}

/// Reads a JSON array of events or an object `{"events": [...]}`.
fn parse_batch(body: &[u8]) -> Result<Vec<Value>, ApiError> {
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
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_batch",
                    "send a JSON array of events or an object {\"events\": [...]}",
                ));
            }
        },
        _ => {
            return Err(ApiError::new(
                400,
                "invalid_batch",
                "send a JSON array of events or an object {\"events\": [...]}",
            ));
        }
    };
    if events.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "the batch holds no events",
        ));
    }
    if events.len() > MAX_EVENTS {
        return Err(ApiError::new(
            413,
            "too_many_events",
            format!(
                "{} events in one request; send at most {MAX_EVENTS}",
                events.len()
            ),
        ));
    }
    Ok(events)
}

/// A random (version 4) UUID from the platform's CSPRNG.
fn fresh_uuid() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the Workers runtime provides crypto.getRandomValues");
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}
