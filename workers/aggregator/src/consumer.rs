//! The `events` queue consumer: stores events exactly once and keeps the hourly rollups
//! current, through [`tally_storage::pipeline::store_events`].
//!
//! Messages are acknowledged only after their events are committed. A failed commit
//! retries them (the queue's `max_retries`, then the dead-letter queue); a message that
//! cannot be decoded is retried alone, so it reaches the dead-letter queue without
//! holding up the others. Redelivery never double-counts: the pipeline skips events
//! already stored. Messages that reach the dead-letter queue are consumed too, into the
//! `dead_letters` table, so they are never lost when the queue's retention ends.
//!
//! The same handler receives the `alerts` queue and its dead-letter queue, and passes
//! them to [`crate::alerting`].

use tally_core::Event;
use tally_core::queue::{self, Dropped};
use tally_storage::d1::D1Store;
use tally_storage::{Write, Writer, pipeline};
use worker::{Context, Date, Env, MessageBatch, MessageExt, RawMessage, Result, event};

use crate::{ALERTS_QUEUE, DB, EVENTS_DLQ, alerting};

/// Most events handed to the pipeline at once; larger batches are split.
const MAX_EVENTS_PER_COMMIT: usize = 10_000;

#[event(queue)]
async fn consume(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    let store = match env.d1(DB) {
        Ok(db) => D1Store::new(db),
        Err(e) => {
            worker::console_error!("no D1 binding {DB}: {e}; retrying the batch");
            batch.retry_all();
            return Ok(());
        }
    };
    if batch.queue() == EVENTS_DLQ {
        keep_dead_letters(&store, &batch, EVENTS_DLQ).await;
        return Ok(());
    }
    if batch.queue() == ALERTS_QUEUE || batch.queue() == alerting::ALERTS_DLQ {
        alerting::consume(&store, &batch).await;
        return Ok(());
    }
    let mut group: Vec<RawMessage> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut dropped: Vec<Dropped> = Vec::new();
    for message in batch.raw_iter() {
        let decoded = message
            .body()
            .as_string()
            .ok_or_else(|| "the body is not text".to_owned())
            .and_then(|body| queue::unpack(&body).map_err(|e| e.to_string()));
        match decoded {
            Ok(m) => {
                if !events.is_empty() && events.len() + m.events.len() > MAX_EVENTS_PER_COMMIT {
                    commit(&store, &mut group, &mut events, &mut dropped).await;
                }
                events.extend(m.events);
                dropped.extend(m.dropped);
                group.push(message);
            }
            Err(e) => {
                worker::console_error!("message {}: {e}; retrying towards the DLQ", message.id());
                message.retry();
            }
        }
    }
    commit(&store, &mut group, &mut events, &mut dropped).await;
    Ok(())
}

/// Keeps messages that exhausted their retries in `dead_letters`, where they outlive the
/// queue's own retention and can be inspected and replayed.
pub async fn keep_dead_letters(store: &D1Store, batch: &MessageBatch<String>, queue: &str) {
    let now = Date::now().as_millis() as i64;
    for message in batch.raw_iter() {
        let id = message.id();
        let body = message
            .body()
            .as_string()
            .unwrap_or_else(|| format!("{:?}", message.body()));
        let sent_at_ms = message.timestamp().as_millis() as i64;
        let write = Write::DeadLetter {
            message_id: &id,
            queue,
            body: &body,
            sent_at_ms,
            now_ms: now,
        };
        match store.commit(&[write]).await {
            Ok(_) => {
                worker::console_error!("dead letter {id} kept in D1 ({} bytes)", body.len());
                message.ack();
            }
            Err(e) => {
                worker::console_error!("dead letter {id} could not be kept: {e}; will retry");
                message.retry();
            }
        }
    }
}

/// Stores one group's events and dropped-request records, then acks (or, on failure,
/// retries) its messages.
async fn commit(
    store: &D1Store,
    group: &mut Vec<RawMessage>,
    events: &mut Vec<Event>,
    dropped: &mut Vec<Dropped>,
) {
    if group.is_empty() {
        return;
    }
    let now = Date::now().as_millis() as i64;
    let counted = if dropped.is_empty() {
        Ok(())
    } else {
        // Idempotent by id: a redelivered record counts once.
        store
            .commit(&[Write::InsertDropped(dropped)])
            .await
            .map(drop)
    };
    let stored = match counted {
        Ok(()) => pipeline::store_events(store, events, now).await,
        Err(e) => Err(e),
    };
    dropped.clear();
    match stored {
        Ok(stored) => {
            worker::console_log!(
                "stored {} of {} events ({} rollup rows, {} attempts)",
                stored.new,
                stored.received,
                stored.rollup_rows,
                stored.attempts
            );
            group.iter().for_each(|m| m.ack());
        }
        Err(e) => {
            worker::console_error!("storing {} events failed: {e}; will retry", events.len());
            group.iter().for_each(|m| m.retry());
        }
    }
    group.clear();
    events.clear();
}
