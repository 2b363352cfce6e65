//! The dead-letter queues' consumer: messages that exhausted their retries are kept in
//! D1 (`dead_letters`), where they outlive the queue's own retention and can be
//! inspected and replayed. A dead letter is never processed again.

use tally_storage::d1::D1Store;
use tally_storage::{Write, Writer};
use worker::{MessageBatch, MessageExt};

use crate::now_ms;

/// Keeps every message of `batch` in `dead_letters` under the batch's queue name, acking
/// each once it is stored and retrying it otherwise.
pub async fn keep(store: &D1Store, batch: &MessageBatch<String>) {
    let queue = batch.queue();
    let now = now_ms();
    for message in batch.raw_iter() {
        let id = message.id();
        let body = message
            .body()
            .as_string()
            .unwrap_or_else(|| format!("{:?}", message.body()));
        let sent_at_ms = message.timestamp().as_millis() as i64;
        let write = Write::DeadLetter {
            message_id: &id,
            queue: &queue,
            body: &body,
            sent_at_ms,
            now_ms: now,
        };
        match store.commit(&[write]).await {
            Ok(_) => {
                worker::console_error!(
                    "dead letter {id} of {queue} kept in D1 ({} bytes)",
                    body.len()
                );
                message.ack();
            }
            Err(e) => {
                worker::console_error!("dead letter {id} could not be kept: {e}; will retry");
                message.retry();
            }
        }
    }
}
