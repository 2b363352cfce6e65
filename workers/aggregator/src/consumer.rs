//! The `events` queue consumer: stores events exactly once and keeps the hourly rollups
//! current, through [`tally_storage::pipeline::store_messages_on_shards`]: each
//! project's events on its shard.
//!
//! Messages are acknowledged only after their events are committed. A group whose commit
//! fails is split until the message that fails is alone (within
//! [`pipeline::MAX_SPLIT_CALLS`]): the others are stored and acked, and it is retried
//! (the queue's `max_retries`, then the dead-letter queue, whose messages
//! [`crate::dead_letters`] keeps); a message that cannot be decoded is retried alone
//! too. Redelivery never double-counts: the pipeline skips events already stored.

use tally_core::queue::{self, Message};
use tally_storage::d1::D1Store;
use tally_storage::pipeline;
use worker::{MessageBatch, MessageExt, RawMessage};

use crate::now_ms;

/// Stores the events of a batch of the `events` queue on their projects' shards
/// (`control` holds the placement), then acks each message whose events are stored and
/// retries each other one: a shard that fails holds back only its own messages.
pub async fn consume(control: &D1Store, shards: &[D1Store], batch: &MessageBatch<String>) {
    let mut decoded: Vec<(RawMessage, Message)> = Vec::new();
    for message in batch.raw_iter() {
        let body = message
            .body()
            .as_string()
            .ok_or_else(|| "the body is not text".to_owned())
            .and_then(|body| queue::unpack(&body).map_err(|e| e.to_string()));
        match body {
            Ok(m) => decoded.push((message, m)),
            Err(e) => {
                worker::console_error!("message {}: {e}; retrying towards the DLQ", message.id());
                message.retry();
            }
        }
    }
    if decoded.is_empty() {
        return;
    }
    let (raw, messages): (Vec<RawMessage>, Vec<Message>) = decoded.into_iter().unzip();
    let placements = crate::placements();
    let consumed =
        pipeline::store_messages_on_shards(control, shards, &placements, &messages, now_ms()).await;
    let stored = &consumed.stored;
    worker::console_log!(
        "stored {} of {} events ({} rollup rows) in {} calls",
        stored.new,
        stored.received,
        stored.rollup_rows,
        consumed.calls
    );
    for (message, outcome) in raw.iter().zip(&consumed.outcomes) {
        match outcome {
            Ok(()) => message.ack(),
            Err(e) => {
                worker::console_error!("message {}: {e}; will retry", message.id());
                message.retry();
            }
        }
    }
}
