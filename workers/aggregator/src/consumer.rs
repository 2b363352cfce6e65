//! The `events` queue consumer: stores events exactly once and keeps the hourly rollups
//! current, through [`tally_storage::pipeline::store_messages_on_shards`]: each
//! project's events on its shard.
//!
//! Messages are acknowledged only after their events are committed. A group whose commit
//! fails is split until the message that fails is alone (within
//! [`pipeline::MAX_SPLIT_CALLS`]): the others are stored and acked, and it is retried
//! with a growing delay (the queue's `max_retries`, then the dead-letter queue, whose messages
//! [`crate::dead_letters`] keeps); a message that cannot be decoded is retried alone
//! too. Redelivery never double-counts: the pipeline skips events already stored.

use tally_core::alerts::MinuteSources;
use tally_core::queue::{self, Message};
use tally_storage::d1::D1Store;
use tally_storage::pipeline;
use tally_storage::shard::Placements;
use worker::{MessageBatch, MessageExt, QueueRetryOptionsBuilder, RawMessage};

use crate::now_ms;

/// Stores the events of a batch of the `events` queue on their projects' shards
/// (`control` holds the placement), then acks each message whose events are stored and
/// retries each other one: a shard that fails holds back only its own messages.
pub async fn consume(
    control: &D1Store,
    shards: &[D1Store],
    placements: &Placements,
    batch: &MessageBatch<String>,
) {
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
    let now = now_ms();
    // Minute rows are written only where the realtime view or an enabled rule reads
    // them; without the rules, every one (dearer, never blind).
    let minutes = match crate::known_rules()
        .minute_sources(control, &pipeline::projects_of(&messages), now)
        .await
    {
        Ok(minutes) => minutes,
        Err(e) => {
            worker::console_error!("alert rules unread ({e}): writing every minute row");
            MinuteSources::every()
        }
    };
    let consumed =
        pipeline::store_messages_on_shards(control, shards, placements, &messages, now, &minutes)
            .await;
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
                let sent_ms = message.timestamp().as_millis() as i64;
                let delay_s = retry_delay_s(now_ms() - sent_ms);
                worker::console_error!("message {}: {e}; will retry in {delay_s} s", message.id());
                let options = QueueRetryOptionsBuilder::new()
                    .with_delay_seconds(delay_s)
                    .build();
                message.retry_with_options(&options);
            }
        }
    }
}

/// The delay before delivering again a message that failed, first sent `age_ms` ago:
/// as long as it has waited so far, from 1 s to 60 s, so the delays double (1, 2, 4, …
/// s) as they would counted by attempts, which `worker` does not expose. A failure is
/// a busy database or a shard that cannot be written; retried at once, a message would
/// spend its `max_retries` (10, in `wrangler/aggregator.toml`) within seconds and reach
/// the dead-letter queue, which is never processed again. With these delays a shard may
/// be down some five minutes before its messages are dead-lettered.
fn retry_delay_s(age_ms: i64) -> u32 {
    u32::try_from((age_ms / 1000).clamp(1, 60)).unwrap_or(60)
}

#[cfg(test)]
mod tests {
    use super::retry_delay_s;

    #[test]
    fn retries_wait_as_long_as_the_message_has_waited_up_to_a_minute() {
        // Each delivery comes when the last delay ends: the message's age doubles.
        let mut age_ms = 300;
        let mut delays = Vec::new();
        for _ in 0..10 {
            let delay = retry_delay_s(age_ms);
            delays.push(delay);
            age_ms += i64::from(delay) * 1000;
        }
        assert_eq!(delays, [1, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(
            age_ms > 240_000,
            "some five minutes before the last retry: {age_ms}"
        );
        assert_eq!(retry_delay_s(-5_000), 1, "a clock behind the sender's");
    }
}
