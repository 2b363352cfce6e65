//! The `events` queue consumer: stores each message's events in D1 exactly once.
//!
//! Every message is acknowledged only after its events are committed. A failed write
//! retries the message (the queue's `max_retries`, then the dead-letter queue); the
//! insert ignores events already stored, so redelivery never double-counts.

use tally_core::queue;
use tally_storage::EventSink;
use tally_storage::d1::D1Store;
use worker::{Context, Env, MessageBatch, MessageExt, Result, event};

use crate::DB;

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
    for message in batch.raw_iter() {
        let Some(body) = message.body().as_string() else {
            worker::console_error!(
                "message {} is not text; retrying towards the DLQ",
                message.id()
            );
            message.retry();
            continue;
        };
        let events = match queue::unpack(&body) {
            Ok(m) => m.events,
            Err(e) => {
                worker::console_error!("message {}: {e}; retrying towards the DLQ", message.id());
                message.retry();
                continue;
            }
        };
        match store.insert_events(&events).await {
            Ok(inserted) => {
                worker::console_log!(
                    "message {}: {} events, {inserted} new",
                    message.id(),
                    events.len()
                );
                message.ack();
            }
            Err(e) => {
                worker::console_error!("message {}: {e}; will retry", message.id());
                message.retry();
            }
        }
    }
    Ok(())
}
