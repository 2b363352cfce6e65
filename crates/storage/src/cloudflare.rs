//! The cache and the queue over Cloudflare's KV and Queues, for the workers.

use wasm_bindgen::JsValue;
use worker::kv::KvStore;
use worker::{Queue, QueueContentType, RawMessageBuilder, SendMessage};

use crate::{Cache, Error, EventQueue, MIN_CACHE_TTL_S, SendError};

/// Cloudflare's limits on one `sendBatch`: 100 messages and 256 KB in all.
const MAX_BATCH_MESSAGES: usize = 100;
const MAX_BATCH_BYTES: usize = 250_000;

/// A KV namespace as a [`Cache`].
pub struct KvCache {
    kv: KvStore,
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache").finish_non_exhaustive()
    }
}

impl KvCache {
    pub fn new(kv: KvStore) -> Self {
        Self { kv }
    }
}

fn kv(e: worker::kv::KvError) -> Error {
    Error::Database(format!("KV: {e}"))
}

impl Cache for KvCache {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        self.kv.get(key).text().await.map_err(kv)
    }

    async fn put(&self, key: &str, value: &str, ttl_s: u32) -> Result<(), Error> {
        self.kv
            .put(key, value)
            .map_err(kv)?
            .expiration_ttl(u64::from(ttl_s.max(MIN_CACHE_TTL_S)))
            .execute()
            .await
            .map_err(kv)
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.kv.delete(key).await.map_err(kv)
    }
}

/// A Cloudflare queue as an [`EventQueue`]: bodies go as text, in as few `sendBatch`
/// calls as the batch limits allow.
pub struct CfQueue {
    queue: Queue,
}

impl std::fmt::Debug for CfQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CfQueue").finish_non_exhaustive()
    }
}

impl CfQueue {
    pub fn new(queue: Queue) -> Self {
        Self { queue }
    }
}

impl EventQueue for CfQueue {
    async fn send(&self, bodies: &[String]) -> Result<(), SendError> {
        let mut batch: Vec<SendMessage<JsValue>> = Vec::new();
        let mut bytes = 0;
        // Bodies in batches the queue took.
        let mut sent = 0;
        let failed = |sent, error| SendError { sent, error };
        for body in bodies {
            if !batch.is_empty()
                && (batch.len() == MAX_BATCH_MESSAGES || bytes + body.len() > MAX_BATCH_BYTES)
            {
                let n = batch.len();
                self.flush(std::mem::take(&mut batch))
                    .await
                    .map_err(|e| failed(sent, e))?;
                sent += n;
                bytes = 0;
            }
            bytes += body.len();
            batch.push(
                RawMessageBuilder::new(JsValue::from_str(body))
                    .build_with_content_type(QueueContentType::Text),
            );
        }
        if !batch.is_empty() {
            self.flush(batch).await.map_err(|e| failed(sent, e))?;
        }
        Ok(())
    }
}

impl CfQueue {
    /// Sends one text body that the queue delivers no sooner than `delay_seconds` from
    /// now (Cloudflare allows up to 12 hours): a job continuing after a wait.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] with the queue's refusal.
    pub async fn send_delayed(&self, body: &str, delay_seconds: u32) -> Result<(), Error> {
        let message = RawMessageBuilder::new(JsValue::from_str(body))
            .delay_seconds(delay_seconds)
            .build_with_content_type(QueueContentType::Text);
        self.queue
            .send_raw(message)
            .await
            .map_err(|e| Error::Database(format!("queue send: {e}")))
    }

    async fn flush(&self, batch: Vec<SendMessage<JsValue>>) -> Result<(), Error> {
        self.queue
            .send_raw_batch(batch)
            .await
            .map_err(|e| Error::Database(format!("queue send: {e}")))
    }
}
