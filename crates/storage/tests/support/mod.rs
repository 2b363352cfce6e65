//! What the storage tests share: reading SQLite's plan for a statement, events
//! validated as ingest validates them, and the session marks among events.

use tally_core::sessions::Mark;
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::sqlite::SqliteStore;

/// The steps of SQLite's plan for `sql` (`EXPLAIN QUERY PLAN`, every parameter NULL),
/// for tests that pin how a statement reads a table that only grows.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn query_plan(store: &SqliteStore, sql: &str) -> Vec<String> {
    store.with_connection(|c| {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    })
}

/// `raw` (an event as a client sends it, naming its project and id) validated at
/// `now_ms` under the tests' identifier secret, as ingest validates it.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn validated(project: &str, now_ms: i64, raw: serde_json::Value) -> Event {
    let raw: RawEvent = serde_json::from_value(raw).unwrap();
    let ctx = Context {
        project,
        now_ms,
        settings: Settings::default(),
        id_secret: b"secret",
    };
    validate(raw, &ctx, &mut || unreachable!()).unwrap().event
}

/// The session marks among `events` (`play` and `stop` of a user), as the consumer
/// stores them: the user hash's first 16 hex digits, the id without dashes.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn marks(events: &[Event]) -> Vec<Mark> {
    events
        .iter()
        .filter(|e| e.user.is_some() && (e.name == "play" || e.name == "stop"))
        .map(|e| Mark {
            user: e.user.clone().unwrap_or_default()[..16].to_owned(),
            timestamp: e.timestamp,
            event_id: e.event_id.replace('-', ""),
            is_start: e.name == "play",
        })
        .collect()
}
