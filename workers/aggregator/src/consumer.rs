//! The `events` queue consumer: stores events exactly once and keeps the hourly rollups
//! current, through [`tally_storage::pipeline::store_events`].
//!
//! Messages are acknowledged only after their events are committed. A failed commit
//! retries them (the queue's `max_retries`, then the dead-letter queue, whose messages
//! [`crate::dead_letters`] keeps); a message that cannot be decoded is retried alone, so
//! it reaches the dead-letter queue without holding up the others. Redelivery never
//! double-counts: the pipeline skips events already stored.

use tally_core::Event;
use tally_core::queue::{self, Dropped};
use tally_storage::d1::D1Store;
use tally_storage::{Write, Writer, pipeline};
use worker::{MessageBatch, MessageExt, RawMessage};

use crate::now_ms;

/// Most events handed to the pipeline at once; larger batches are split.
const MAX_EVENTS_PER_COMMIT: usize = 10_000;

/// Stores the events of a batch of the `events` queue, in groups of at most
/// [`MAX_EVENTS_PER_COMMIT`] events.
pub async fn consume(store: &D1Store, batch: &MessageBatch<String>) {
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
                    commit(store, &mut group, &mut events, &mut dropped).await;
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
    commit(store, &mut group, &mut events, &mut dropped).await;
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
    let now = now_ms();
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
