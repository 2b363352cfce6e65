//! Alerts and digests: the minutely evaluation that hands state changes to the `alerts`
//! queue, the minutely composition of due digests that hands their runs to the same
//! queue, and that queue's consumer, which pauses campaigns and delivers signed webhooks
//! (an alert's or a digest's, the same way).
//!
//! The logic lives in [`tally_storage::alerts`]; this module supplies the clock, the
//! queue and the HTTP client. A failed delivery is retried with the queue's own delay
//! (10 s doubling to 10 minutes); after `max_retries` (wrangler/aggregator.toml) the
//! message reaches the dead-letter queue, whose batches [`give_up`] marks failed before
//! [`crate::dead_letters`] keeps them.

use std::time::Duration;

use futures_util::future::{Either, select};
use tally_storage::EventQueue;
use tally_storage::alerts::{self, Delivering, Handled, Sent};
use tally_storage::cloudflare::CfQueue;
use tally_storage::d1::D1Store;
use tally_storage::digests;
use tally_storage::exec::Executor;
use worker::{
    AbortController, Delay, Env, Fetch, Headers, MessageBatch, MessageExt, Method,
    QueueRetryOptionsBuilder, Request, RequestInit, RequestRedirect,
};

use crate::{ALERTS, now_ms};

/// How long a receiver gets to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// A queue message: the id of the alert to act on. The alert itself is in D1.
fn message(alert_id: &str) -> String {
    serde_json::json!({ "alert": alert_id }).to_string()
}

/// A queue message: the id of the digest run to deliver. Its body is in D1.
fn digest_message(run_id: &str) -> String {
    serde_json::json!({ "digest": run_id }).to_string()
}

/// What a message of the `alerts` queue asks for.
enum Work {
    Alert(String),
    Digest(String),
}

fn work_of(body: &str) -> Option<Work> {
    let value = serde_json::from_str::<serde_json::Value>(body).ok()?;
    let id = |key: &str| value.get(key)?.as_str().map(str::to_owned);
    id("alert")
        .map(Work::Alert)
        .or_else(|| id("digest").map(Work::Digest))
}

/// Evaluates the rules within [`alerts::ALERT_QUERY_BUDGET`], queues the alerts of state
/// changes and notes them queued (one statement per [`alerts::RECORD_CHUNK`] alerts).
///
/// # Errors
///
/// A message saying what failed; an alert recorded but not queued is queued by a later
/// run.
pub async fn evaluate<S: Executor>(store: &S, env: &Env, at: i64) -> Result<String, String> {
    let run = alerts::evaluate(store, at)
        .await
        .map_err(|e| e.to_string())?;
    let mut queued = 0;
    if !run.to_queue.is_empty() {
        let queue = CfQueue::new(env.queue(ALERTS).map_err(|e| e.to_string())?);
        let bodies: Vec<String> = run.to_queue.iter().map(|id| message(id)).collect();
        queue.send(&bodies).await.map_err(|e| e.to_string())?;
        let queued_now = tally_storage::Write::Alert(alerts::AlertWrite::Queued {
            alert_ids: &run.to_queue,
            now_ms: now_ms(),
        });
        tally_storage::Writer::commit(store, &[queued_now])
            .await
            .map_err(|e| e.to_string())?;
        queued = run.to_queue.len();
    }
    Ok(format!(
        "evaluated {} of {} alert rules in {} queries: {} fired, {} resolved, {} suppressed, \
         {} failed, {} deferred, {queued} queued",
        run.evaluated,
        run.rules,
        run.queries,
        run.fired,
        run.resolved,
        run.suppressed,
        run.failed,
        run.deferred
    ))
}

/// Composes the due digests within [`digests::DIGEST_QUERY_BUDGET`] D1 queries (the
/// rest wait for the next run), queues their runs and notes them queued.
///
/// # Errors
///
/// A message saying what failed; a run recorded but not queued is queued by a later run.
pub async fn digest<S: Executor>(store: &S, env: &Env, at: i64) -> Result<String, String> {
    let run = digests::compose_due(store, at, digests::DIGEST_QUERY_BUDGET)
        .await
        .map_err(|e| e.to_string())?;
    if !run.to_queue.is_empty() {
        let queue = CfQueue::new(env.queue(ALERTS).map_err(|e| e.to_string())?);
        let bodies: Vec<String> = run.to_queue.iter().map(|id| digest_message(id)).collect();
        queue.send(&bodies).await.map_err(|e| e.to_string())?;
        digests::queued(store, &run.to_queue, now_ms())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(format!(
        "{} digests: {} recorded, {} recorded by another run, {} deferred, {} queued, \
         in {} queries",
        run.digests,
        run.recorded,
        run.raced,
        run.deferred,
        run.to_queue.len(),
        run.queries
    ))
}

/// Marks the alerts and digest runs of a batch of the dead-letter queue failed: their delivery
/// exhausted its retries. The messages themselves are kept by [`crate::dead_letters`].
pub async fn give_up(store: &D1Store, batch: &MessageBatch<String>) {
    for message in batch.raw_iter() {
        let outcome = match message.body().as_string().as_deref().and_then(work_of) {
            Some(Work::Alert(id)) => (alerts::give_up(store, &id).await, id),
            Some(Work::Digest(id)) => (digests::give_up(store, &id).await, id),
            None => continue,
        };
        if let (Err(e), id) = outcome {
            worker::console_error!("{id}: could not mark it failed: {e}");
        }
    }
}

/// Consumes a batch of the `alerts` queue: pauses campaigns and delivers alerts' and
/// digests' webhooks.
pub async fn consume(store: &D1Store, batch: &MessageBatch<String>) {
    for message in batch.raw_iter() {
        let Some(work) = message.body().as_string().as_deref().and_then(work_of) else {
            worker::console_error!(
                "alerts queue message {} is neither an alert nor a digest; dropped",
                message.id()
            );
            message.ack();
            continue;
        };
        let (handled, id) = match work {
            Work::Alert(id) => (
                alerts::handle_alert(store, &id, now_ms(), deliver).await,
                id,
            ),
            Work::Digest(id) => (
                digests::handle_digest(store, &id, now_ms(), deliver).await,
                id,
            ),
        };
        match handled {
            Ok(Handled::Done) => message.ack(),
            Ok(Handled::Unknown) => {
                worker::console_error!("{id} is not recorded; dropped");
                message.ack();
            }
            Ok(Handled::Retry { delay_s }) => {
                worker::console_log!("{id}: delivery failed, retrying in {delay_s} s");
                let options = QueueRetryOptionsBuilder::new()
                    .with_delay_seconds(delay_s)
                    .build();
                message.retry_with_options(&options);
            }
            Err(e) => {
                worker::console_error!("{id}: {e}; retrying");
                message.retry();
            }
        }
    }
}

/// Posts one signed webhook and reports the answer.
async fn deliver(d: Delivering) -> Sent {
    let started = now_ms();
    let outcome = post(&d).await;
    let duration_ms = now_ms() - started;
    match outcome {
        Ok(status) => Sent {
            status: Some(status),
            error: None,
            duration_ms,
        },
        Err(error) => Sent {
            status: None,
            error: Some(error),
            duration_ms,
        },
    }
}

async fn post(d: &Delivering) -> Result<u16, String> {
    // Checked again at delivery: a rule stored before https was required must not send
    // its signed body in the clear.
    let url = worker::Url::parse(&d.url).map_err(|e| format!("webhook url: {e}"))?;
    if !tally_core::alerts::deliverable(&url) {
        return Err(
            "not delivered: the webhook url is plain http to a host that is not loopback; \
             change it to https"
                .into(),
        );
    }
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| e.to_string());
    set("content-type", "application/json")?;
    set("user-agent", "Tally-Alerts/1")?;
    set(tally_core::alerts::SIGNATURE_HEADER, &d.signature)?;
    set(d.id_header, &d.id)?;
    set("tally-delivery-attempt", &d.attempt.to_string())?;
    let mut init = RequestInit::new();
    // A redirect is answered as it is, never followed: following it would send the
    // signed body to wherever the receiver (or whoever took its host) points.
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual)
        .with_body(Some(d.body.clone().into()));
    let request = Request::new_with_init(&d.url, &init).map_err(|e| e.to_string())?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let send = Box::pin(fetch.send_with_signal(&signal));
    let timeout = Box::pin(Delay::from(WEBHOOK_TIMEOUT));
    match select(send, timeout).await {
        Either::Left((Ok(response), _)) => Ok(response.status_code()),
        Either::Left((Err(e), _)) => Err(e.to_string()),
        Either::Right(((), _)) => {
            controller.abort();
            Err(format!("no answer within {} s", WEBHOOK_TIMEOUT.as_secs()))
        }
    }
}
