//! What the storage tests share: reading SQLite's plan for a statement.

use tally_storage::sqlite::SqliteStore;

/// The steps of SQLite's plan for `sql` (`EXPLAIN QUERY PLAN`, every parameter NULL),
/// for tests that pin how a statement reads a table that only grows.
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
