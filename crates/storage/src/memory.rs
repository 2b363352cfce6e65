//! In-memory [`Cache`] and [`EventQueue`] for native tests, with an injected clock and
//! injected failures.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::{Cache, Error, EventQueue, MIN_CACHE_TTL_S, SendError};

/// A cache whose clock the test sets.
#[derive(Debug, Default)]
pub struct MemoryCache {
    entries: RefCell<HashMap<String, (String, i64)>>,
    now_ms: Cell<i64>,
}

impl MemoryCache {
    /// Sets the cache's clock, in epoch milliseconds.
    pub fn set_now(&self, now_ms: i64) {
        self.now_ms.set(now_ms);
    }
}

impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        let now = self.now_ms.get();
        Ok(self
            .entries
            .borrow()
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(value, _)| value.clone()))
    }

    async fn put(&self, key: &str, value: &str, ttl_s: u32) -> Result<(), Error> {
        let expires = self.now_ms.get() + i64::from(ttl_s.max(MIN_CACHE_TTL_S)) * 1000;
        self.entries
            .borrow_mut()
            .insert(key.to_owned(), (value.to_owned(), expires));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }
}

/// A queue that records what was sent and can fail after some sends.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    pub sent: RefCell<Vec<String>>,
    fail_after: Cell<Option<usize>>,
}

impl MemoryQueue {
    /// Makes sends fail once `n` bodies in all have been sent.
    pub fn fail_after(&self, n: usize) {
        self.fail_after.set(Some(n));
    }
}

impl EventQueue for MemoryQueue {
    async fn send(&self, bodies: &[String]) -> Result<(), SendError> {
        for (sent, body) in bodies.iter().enumerate() {
            if self.fail_after.get() == Some(self.sent.borrow().len()) {
                return Err(SendError {
                    sent,
                    error: Error::Database("injected queue failure".into()),
                });
            }
            self.sent.borrow_mut().push(body.clone());
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::sqlite::block_on;

    #[test]
    fn cache_entries_expire_no_sooner_than_kv_allows() {
        let cache = MemoryCache::default();
        cache.set_now(1_000);
        block_on(cache.put("k", "v", 5)).unwrap();
        cache.set_now(1_000 + 59_999);
        assert_eq!(block_on(cache.get("k")).unwrap().as_deref(), Some("v"));
        cache.set_now(1_000 + 60_000);
        assert_eq!(
            block_on(cache.get("k")).unwrap(),
            None,
            "expired after KV's 60 s minimum"
        );
        block_on(cache.put("k", "w", 600)).unwrap();
        block_on(cache.delete("k")).unwrap();
        assert_eq!(block_on(cache.get("k")).unwrap(), None);
    }

    #[test]
    fn queue_failures_can_be_injected() {
        let queue = MemoryQueue::default();
        queue.fail_after(2);
        let bodies: Vec<String> = (0..3).map(|i| i.to_string()).collect();
        let error = block_on(queue.send(&bodies)).unwrap_err();
        assert_eq!(error.sent, 2, "{error}");
        assert_eq!(*queue.sent.borrow(), ["0", "1"]);
        assert_eq!(block_on(queue.send(&bodies)).unwrap_err().sent, 0);
    }
}
