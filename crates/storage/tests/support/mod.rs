//! What the storage tests share: reading SQLite's plan for a statement, events
//! validated as ingest validates them, the session marks among events, the funnel hits
//! of events and an alert rule's stored state.

use tally_core::alerts::{Rule, State};
use tally_core::funnel::Hit;
use tally_core::sessions::Mark;
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::alerts::AlertStore;
use tally_storage::sqlite::{SqliteStore, block_on};

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

/// The hits of `events` in `from..to` themselves: what a funnel counts, without any store.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn direct_hits(events: &[Event], from: i64, to: i64) -> Vec<Hit> {
    events
        .iter()
        .filter(|e| (from..to).contains(&e.timestamp))
        .filter_map(|e| {
            Some(Hit {
                user: e.user.clone()?[..16].to_owned(),
                timestamp: e.timestamp,
                event_id: e.event_id.replace('-', ""),
                name: e.name.clone(),
            })
        })
        .collect()
}

/// The state `store` holds for `rule`.
#[allow(dead_code)] // Each test binary uses what it needs of this module.
pub fn state(store: &SqliteStore, rule: &Rule) -> State {
    let rules = block_on(store.alert_rules(Some(&rule.project))).unwrap();
    rules
        .iter()
        .find(|r| r.rule.id == rule.id)
        .unwrap()
        .status
        .state
}
