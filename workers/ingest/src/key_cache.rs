//! The isolate's cache of write-key lookups: bounded, least recently used out first,
//! each entry with its own expiry (time is an argument, so it is tested natively).
//!
//! Hand-written over `HashMap` rather than the `lru` crate: ingest needs only `get` and
//! `insert`, eviction happens only on a lookup that already cost a D1 query, and every
//! dependency is wasm the ingest bundle carries.

use std::collections::HashMap;

/// A bounded map from key hash to a lookup, with expiries.
#[derive(Debug)]
pub struct KeyCache<V> {
    entries: HashMap<String, Entry<V>>,
    capacity: usize,
    /// A counter of uses: the larger an entry's `used`, the more recently it was used.
    clock: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires_ms: i64,
    used: u64,
}

impl<V: Clone> KeyCache<V> {
    /// An empty cache of at most `capacity` entries (at least 8).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(8),
            clock: 0,
        }
    }

    /// The value under `key` unless it expired by `now_ms`; a hit counts as a use.
    pub fn get(&mut self, key: &str, now_ms: i64) -> Option<V> {
        self.clock += 1;
        let entry = self.entries.get_mut(key)?;
        if entry.expires_ms <= now_ms {
            self.entries.remove(key);
            return None;
        }
        entry.used = self.clock;
        Some(entry.value.clone())
    }

    /// Keeps `value` under `key` until `expires_ms`. When the cache is full, expired
    /// entries go first, then the eighth least recently used: one sort per
    /// `capacity / 8` insertions, never the whole cache at once (emptying it on every
    /// overflow sent every client's next request to D1 together).
    pub fn insert(&mut self, key: String, value: V, now_ms: i64, expires_ms: i64) {
        self.clock += 1;
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| e.expires_ms > now_ms);
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let mut uses: Vec<u64> = self.entries.values().map(|e| e.used).collect();
            let evicted = self.capacity / 8;
            let (_, threshold, _) = uses.select_nth_unstable(evicted - 1);
            let threshold = *threshold;
            self.entries.retain(|_, e| e.used > threshold);
        }
        let used = self.clock;
        self.entries.insert(
            key,
            Entry {
                value,
                expires_ms,
                used,
            },
        );
    }

    /// Entries held now, expired ones included until they are met.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_own_time() {
        let mut cache = KeyCache::new(16);
        cache.insert("known".into(), Some(1), 0, 30_000);
        cache.insert("unknown".into(), None, 0, 5_000);
        assert_eq!(cache.get("known", 4_999), Some(Some(1)));
        assert_eq!(cache.get("unknown", 4_999), Some(None));
        assert_eq!(
            cache.get("unknown", 5_000),
            None,
            "a negative answer is brief"
        );
        assert_eq!(cache.get("known", 29_999), Some(Some(1)));
        assert_eq!(cache.get("known", 30_000), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_flood_of_new_keys_keeps_the_keys_in_use() {
        // The cache used to be emptied whole when full: a flood of random keys sent
        // every real client back to D1.
        let mut cache = KeyCache::new(1_000);
        let live: Vec<String> = (0..100).map(|i| format!("live-{i}")).collect();
        for key in &live {
            cache.insert(key.clone(), Some(key.clone()), 0, 30_000);
        }
        for i in 0..50_000 {
            cache.insert(format!("random-{i}"), None, 1, 5_000);
            // Real clients keep sending.
            let key = &live[i % live.len()];
            assert_eq!(cache.get(key, 2).flatten().as_ref(), Some(key), "{i}");
            assert!(cache.len() <= 1_000);
        }
    }

    #[test]
    fn expired_entries_make_room_before_live_ones() {
        let mut cache = KeyCache::new(8);
        for i in 0..7 {
            cache.insert(format!("old-{i}"), i, 0, 10);
        }
        cache.insert("live".into(), 100, 0, 1_000);
        cache.insert("new".into(), 200, 50, 1_000);
        assert_eq!(cache.get("live", 60), Some(100));
        assert_eq!(cache.get("new", 60), Some(200));
        assert_eq!(cache.len(), 2);
    }
}
