//! `POST /v1/events`: a JSON array of events, `{"events": [...]}`, or NDJSON (one event
//! per line), validated one by one.
//!
//! Good events in a mixed batch are accepted; the answer lists every event's outcome.

use serde::Serialize;
use serde_json::Value;
use tally_core::{Event, Rejection, Warning};
use tally_edge::ApiError;
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
    /// Valid, but the queue did not take it (`error.code` is `queue_unavailable`): send
    /// it again, with this `event_id` so that it is counted once even if it did arrive.
    NotQueued {
        index: usize,
        event_id: String,
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
    let key = intake::idempotency_key(&req)?;
    let grant = auth::admit(&req, env, url).await?;
    let body = intake::read_body(&mut req).await?;
    let items = match format {
        Format::Json => parse_json(&body)?,
        Format::Ndjson => parse_ndjson(&body)?,
    };
    let intake = Intake::new(&req, env, &grant, key)?;

    let mut accepted = Vec::with_capacity(items.len());
    let mut outcomes = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match item.and_then(|value| intake.check_value(value, index)) {
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
/// When the queue refuses a message part-way, the events before it are queued and the
/// rest are not: the answer is still 202, with `not_queued` counting the rest and their
/// results marked `not_queued` (with their ids), so that a client resends only those.
/// Answering 503 instead would invite a retry of the whole request, which counts the
/// queued events twice unless their ids are sent again.
///
/// # Errors
///
/// 503 `queue_unavailable` when the queue took none of them, with every event's outcome:
/// the whole request may be sent again.
async fn queue_and_answer(
    queue: &impl EventQueue,
    mut outcomes: Vec<Outcome>,
    accepted: &[Event],
) -> Result<Value, ApiError> {
    let rejected = outcomes.len() - accepted.len();
    let Err(failed) = intake::send_events(queue, accepted).await else {
        return Ok(serde_json::json!({
            "accepted": accepted.len(),
            "rejected": rejected,
            "results": outcomes,
        }));
    };
    log_send_failure(&failed.cause);
    let queued = failed.queued;
    // Accepted outcomes are in the order of `accepted`, which is the order of the queue.
    for outcome in outcomes
        .iter_mut()
        .filter(|o| matches!(o, Outcome::Accepted { .. }))
        .skip(queued)
    {
        if let Outcome::Accepted {
            index, event_id, ..
        } = outcome
        {
            *outcome = Outcome::NotQueued {
                index: *index,
                event_id: std::mem::take(event_id),
                error: Rejection {
                    code: "queue_unavailable",
                    field: None,
                    message: "not queued; send this event again with this event_id".into(),
                },
            };
        }
    }
    let not_queued = accepted.len() - queued;
    let results = serde_json::to_value(&outcomes).map_err(internal)?;
    if queued == 0 {
        return Err(intake::queue_unavailable()
            .with("accepted", 0.into())
            .with("rejected", rejected.into())
            .with("not_queued", not_queued.into())
            .with("results", results));
    }
    Ok(serde_json::json!({
        "accepted": queued,
        "rejected": rejected,
        "not_queued": not_queued,
        "results": results,
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

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use serde_json::json;
    use tally_core::queue;
    use tally_storage::memory::MemoryQueue;

    use super::*;

    /// Runs a future that never waits (the memory queue does no IO).
    fn block_on<F: Future>(future: F) -> F::Output {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("the future waited"),
        }
    }

    /// A batch of a rejected event (index 0) and `n` accepted ones (indexes 1..=n), long
    /// enough to need several queue messages.
    fn batch(n: usize) -> (Vec<Outcome>, Vec<Event>) {
        let events: Vec<Event> = (0..n)
            .map(|i| {
                let id = format!("00000000-0000-4000-8000-{i:012}");
                Event::new(&id, "demo", &"n".repeat(120), 1_000)
            })
            .collect();
        let mut outcomes = vec![Outcome::Rejected {
            index: 0,
            error: Rejection {
                code: "invalid_field",
                field: Some("name"),
                message: "name is required".into(),
            },
        }];
        outcomes.extend(events.iter().enumerate().map(|(i, e)| Outcome::Accepted {
            index: i + 1,
            event_id: e.event_id.clone(),
            warnings: Vec::new(),
        }));
        (outcomes, events)
    }

    #[test]
    fn a_partly_queued_batch_says_which_events_were_queued() {
        let (outcomes, events) = batch(1000);
        let bodies = queue::pack(&events, queue::MAX_MESSAGE_BYTES);
        assert!(bodies.len() >= 2, "{} messages", bodies.len());
        let first = queue::unpack(&bodies[0]).unwrap().events.len();

        // The queue takes the first message and refuses the second.
        let queue = MemoryQueue::default();
        queue.fail_after(1);
        let body = block_on(queue_and_answer(&queue, outcomes, &events))
            .expect("some events were queued: not a 503, which invites a retry of them all");
        assert_eq!(queue.sent.borrow().len(), 1);
        assert_eq!(body["accepted"], first, "only queued events are accepted");
        assert_eq!(body["rejected"], 1);
        assert_eq!(body["not_queued"], 1000 - first);
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 1001);
        assert_eq!(results[0]["status"], "rejected");
        for (i, result) in results.iter().enumerate().skip(1) {
            assert_eq!(result["index"], i);
            assert_eq!(result["event_id"], events[i - 1].event_id, "{result}");
            if i <= first {
                assert_eq!(result["status"], "accepted", "{result}");
            } else {
                assert_eq!(result["status"], "not_queued", "{result}");
                assert_eq!(result["error"]["code"], "queue_unavailable", "{result}");
            }
        }
    }

    #[test]
    fn a_batch_the_queue_refused_whole_is_a_503_listing_every_event() {
        let (outcomes, events) = batch(3);
        let queue = MemoryQueue::default();
        queue.fail_after(0);
        let error = block_on(queue_and_answer(&queue, outcomes, &events)).unwrap_err();
        assert_eq!((error.status, error.code), (503, "queue_unavailable"));
        let body = error.body();
        assert_eq!(body["accepted"], 0);
        assert_eq!(body["rejected"], 1);
        assert_eq!(body["not_queued"], 3);
        let statuses: Vec<&Value> = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["status"])
            .collect();
        assert_eq!(
            statuses,
            [
                &json!("rejected"),
                &json!("not_queued"),
                &json!("not_queued"),
                &json!("not_queued")
            ]
        );
        assert_eq!(body["results"][1]["event_id"], events[0].event_id);
    }

    #[test]
    fn a_queued_batch_is_answered_as_before() {
        let (outcomes, events) = batch(3);
        let queue = MemoryQueue::default();
        let body = block_on(queue_and_answer(&queue, outcomes, &events)).unwrap();
        assert_eq!(queue.sent.borrow().len(), 1);
        assert_eq!(body["accepted"], 3);
        assert_eq!(body["rejected"], 1);
        assert!(body.get("not_queued").is_none(), "{body}");
        assert_eq!(body["results"][3]["status"], "accepted");
    }
}
