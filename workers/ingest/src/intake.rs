//! What every ingest endpoint shares: reading a bounded body, validating raw events
//! for the admitted project, and sending accepted events to the `events` queue.

use serde_json::Value;
use tally_core::{Accepted, Context, Event, RawEvent, Rejection, Settings, validate};
use tally_core::{idempotency, queue};
use tally_edge::ApiError;
use tally_storage::EventQueue;
use tally_storage::cloudflare::CfQueue;
use worker::{Env, Request};

use crate::auth::Grant;
use crate::error::internal;
use crate::{EVENTS_QUEUE, ID_SECRET, now_ms};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The body's media type, lowercased, without parameters.
pub fn media_type(req: &Request) -> String {
    let header = req.headers().get("content-type").ok().flatten();
    let header = header.unwrap_or_default();
    let essence = header.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

/// A 415 naming what the endpoint takes.
pub fn unsupported(media_type: &str, takes: &str) -> ApiError {
    let sent = if media_type.is_empty() {
        "no Content-Type".to_owned()
    } else {
        format!("Content-Type {media_type}")
    };
    ApiError::new(
        415,
        "unsupported_media_type",
        format!("this endpoint takes {takes}, not {sent}"),
    )
}

/// The whole body, refusing more than [`MAX_BODY_BYTES`] (by `Content-Length` when
/// given, before reading), decoded when sent with `Content-Encoding: gzip` and refused
/// when it decompresses to more than [`MAX_BODY_BYTES`].
pub async fn read_body(req: &mut Request) -> Result<Vec<u8>, ApiError> {
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
    let encoding = req.headers().get("content-encoding").ok().flatten();
    match encoding.as_deref().map(|e| e.trim().to_ascii_lowercase()) {
        None => Ok(body),
        Some(e) if e.is_empty() || e == "identity" => Ok(body),
        // Several SDKs compress their batches; the decompressed body keeps the same limit.
        Some(e) if e == "gzip" || e == "x-gzip" => {
            Ok(tally_core::gzip::decode(&body, MAX_BODY_BYTES)?)
        }
        Some(e) => Err(ApiError::new(
            415,
            "unsupported_encoding",
            format!("Content-Encoding {e} is not supported; send gzip or an uncompressed body"),
        )),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        413,
        "body_too_large",
        format!("request body exceeds {MAX_BODY_BYTES} bytes (1 MiB); split the batch"),
    )
}

/// The request's `Idempotency-Key`, checked (`tally_core::idempotency::check_key`).
///
/// # Errors
///
/// 400 `invalid_idempotency_key` for a value that is not a key (two headers arrive
/// joined by `, ` and are refused too).
pub fn idempotency_key(req: &Request) -> Result<Option<String>, ApiError> {
    let header = req.headers().get(idempotency::HEADER).ok().flatten();
    header
        .map(|value| idempotency::check_key(&value).map(str::to_owned))
        .transpose()
        .map_err(ApiError::from)
}

/// Validation for one admitted request: the project, the time, the hashing secret, the
/// request's Cloudflare location (the default `colo` and `country`) and its idempotency
/// key, if any.
pub struct Intake {
    pub project: String,
    settings: Settings,
    now_ms: i64,
    secret: String,
    colo: Option<String>,
    country: Option<String>,
    key: Option<String>,
}

impl Intake {
    /// `key` is the request's `Idempotency-Key` ([`idempotency_key`]).
    ///
    /// # Errors
    ///
    /// 503 when the `ID_SECRET` secret is missing.
    pub fn new(
        req: &Request,
        env: &Env,
        grant: &Grant,
        key: Option<String>,
    ) -> Result<Self, ApiError> {
        let secret = env.secret(ID_SECRET).map_err(|_| {
            worker::console_error!("the {ID_SECRET} secret is not set");
            ApiError::new(
                503,
                "misconfigured",
                "ingest is missing its ID_SECRET secret; the operator must set it",
            )
        })?;
        let cf = req.cf();
        Ok(Self {
            project: grant.project.slug.clone(),
            settings: Settings {
                retention_days: grant.project.retention_days,
            },
            now_ms: now_ms(),
            secret: secret.to_string(),
            colo: cf.map(|cf| cf.colo()).filter(|c| !c.is_empty()),
            country: cf
                .and_then(|cf| cf.country())
                .filter(|c| c.len() == 2 && c != "XX" && c != "T1"),
            key,
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// The id of the request's event at `index` when it brings none: derived from the
    /// idempotency key, so that the same request sent again gets the same ids, or else
    /// random.
    pub fn event_id(&self, index: usize) -> String {
        match &self.key {
            Some(key) => idempotency::event_id(&self.project, key, index),
            None => fresh_uuid(),
        }
    }

    /// Validates the raw event at `index` of the request, given as JSON.
    pub fn check_value(&self, value: Value, index: usize) -> Result<Accepted, Rejection> {
        let raw = serde_json::from_value::<RawEvent>(value).map_err(|e| Rejection {
            code: "invalid_event",
            field: None,
            message: e.to_string(),
        })?;
        self.check(raw, index)
    }

    /// Validates the raw event at `index` of the request, filling `colo` and `country`
    /// from the request when the event has none.
    pub fn check(&self, mut raw: RawEvent, index: usize) -> Result<Accepted, Rejection> {
        if raw.colo.is_none() {
            raw.colo.clone_from(&self.colo);
        }
        if raw.country.is_none() {
            raw.country.clone_from(&self.country);
        }
        let ctx = Context {
            project: &self.project,
            now_ms: self.now_ms,
            settings: self.settings,
            id_secret: self.secret.as_bytes(),
        };
        validate(raw, &ctx, &mut || self.event_id(index))
    }
}

/// The `events` queue.
///
/// # Errors
///
/// 500 when the binding is missing.
pub fn events_queue(env: &Env) -> Result<CfQueue, ApiError> {
    Ok(CfQueue::new(env.queue(EVENTS_QUEUE).map_err(internal)?))
}

/// The answer when the queue took none of a request's events.
pub fn queue_unavailable() -> ApiError {
    ApiError::new(
        503,
        "queue_unavailable",
        "events could not be queued; nothing was queued, so send the request again",
    )
}

/// Sends one message body (a request that carries one event or record).
///
/// # Errors
///
/// 503 when the queue refuses it: nothing is reported accepted unless it is queued.
pub async fn enqueue(env: &Env, body: String) -> Result<(), ApiError> {
    events_queue(env)?.send(&[body]).await.map_err(|e| {
        worker::console_error!("queue send failed: {e}");
        queue_unavailable()
    })
}

/// Packs and sends one event.
///
/// # Errors
///
/// As [`enqueue`].
pub async fn enqueue_event(env: &Env, event: &Event) -> Result<(), ApiError> {
    send_events(&events_queue(env)?, std::slice::from_ref(event))
        .await
        .map_err(|e| {
            worker::console_error!("queue send failed: {}", e.cause);
            queue_unavailable()
        })
}

/// Events that did not all reach the queue: the first `queued` did (messages keep the
/// events' order), the rest are not known to be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotQueued {
    pub queued: usize,
    /// What the queue said, for the log.
    pub cause: String,
}

/// Packs events into as few messages as fit and sends them in order.
///
/// # Errors
///
/// [`NotQueued`] when the queue refused a message, with how many events went before it.
pub async fn send_events(queue: &impl EventQueue, events: &[Event]) -> Result<(), NotQueued> {
    let bodies = queue::pack(events, queue::MAX_MESSAGE_BYTES);
    queue.send(&bodies).await.map_err(|e| {
        // Which events the sent messages carried, read back from them (only when a send
        // failed). A body that does not read back counts as not queued: the client is
        // told to send its events again, with their ids.
        let queued = bodies[..e.sent]
            .iter()
            .map(|body| queue::unpack(body).map_or(0, |m| m.events.len()))
            .sum();
        NotQueued {
            queued,
            cause: e.to_string(),
        }
    })
}

/// A random (version 4) UUID from the platform's CSPRNG.
pub fn fresh_uuid() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the Workers runtime provides crypto.getRandomValues");
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}
