//! `POST /track`: the track API of DESIGN's fourth seed, with its request and response
//! shapes: `{"event", "user_id", "timestamp", "metadata"}` in, `{"status": "success",
//! "message": "Event logged."}` out, errors as `{"status": "error", "message": ...}`.
//!
//! As documented there, a future timestamp is set to the server time and metadata over
//! 4 KB is truncated; unlike there, the warnings are returned (`"warnings": [...]`).

use serde::Deserialize;
use serde_json::{Value, json};
use tally_core::RawEvent;
use tally_edge::ApiError;
use worker::{Env, Request, Response, Url};

use crate::auth;
use crate::error::internal;
use crate::intake::{self, Intake};

/// The seed's request body. Unknown members are ignored, as its validator does.
#[derive(Debug, Deserialize)]
struct Track {
    event: Option<Value>,
    user_id: Option<Value>,
    timestamp: Option<Value>,
    metadata: Option<Value>,
}

pub async fn post(mut req: Request, env: &Env, url: &Url) -> Result<Response, ApiError> {
    let media_type = intake::media_type(&req);
    if media_type != "application/json" {
        return Err(intake::unsupported(&media_type, "application/json"));
    }
    let key = intake::idempotency_key(&req)?;
    let grant = auth::admit(&req, env, url).await?;
    let body = intake::read_body(&mut req).await?;
    let track: Track = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("request body is not a JSON object: {e}"),
        )
    })?;
    let raw = RawEvent {
        name: Some(text(track.event, "event")?.ok_or_else(|| {
            ApiError::bad_request("invalid_field", "event is required, e.g. \"play\"")
        })?),
        // The track API refuses an event without a user: its sessions pair by user.
        user: Some(
            text(track.user_id, "user_id")?
                .filter(|user| !user.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_field", "user_id is required, e.g. \"user123\"")
                })?,
        ),
        timestamp: track.timestamp,
        metadata: track.metadata,
        ..RawEvent::default()
    };
    let intake = Intake::new(&req, env, &grant, key)?;
    let accepted = intake.check(raw, 0).map_err(|r| {
        // The seed's field names, not Tally's.
        let message = r
            .message
            .replace("name is", "event is")
            .replace("user is", "user_id is");
        ApiError::bad_request(r.code, message)
    })?;
    intake::enqueue_event(env, &accepted.event).await?;
    let mut body = json!({"status": "success", "message": "Event logged."});
    if !accepted.warnings.is_empty() {
        body["warnings"] = serde_json::to_value(&accepted.warnings).map_err(internal)?;
    }
    Response::from_json(&body).map_err(internal)
}

/// A string member, or an error naming it.
fn text(value: Option<Value>, field: &str) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must be a string"),
        )),
    }
}

/// The seed's error shape for an [`ApiError`], keeping Tally's code beside it.
pub fn error_body(error: &ApiError) -> Value {
    json!({"status": "error", "message": error.message, "code": error.code})
}
