//! Storage figures for the bench: bytes and rows written per raw event, pipeline
//! throughput, the time to roll and to rebuild a day, and a query over rollups against
//! the same query as a raw scan. Runs on SQLite, the engine D1 runs.
//!
//! `cargo run --release -p tally-storage --example figures -- [events] [out.json]`

// A benchmark times itself: the clock ban of crates/clippy.toml is for the library.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use tally_core::rollup::{Dimension, Period};
use tally_core::time::{DAY_MS, HOUR_MS};
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{pipeline, read};

/// 2025-01-10T00:00:00Z: one day of events, in the order a consumer would see them.
const DAY0: i64 = 1_736_467_200_000;

fn events(n: u64) -> Vec<Event> {
    let mut rng = tally_core::testing::SplitMix64(1);
    let ctx = Context {
        project: "aikit-seo",
        now_ms: DAY0 + DAY_MS,
        settings: Settings::default(),
        id_secret: b"figures",
    };
    (0..n)
        .map(|i| {
            let r = rng.next_u64();
            // A typical endpoint event: route, status, duration, instance, version, colo.
            let colo = ["FRA", "AMS", "IAD", "SJC", "NRT"][(r % 5) as usize];
            let raw: RawEvent = serde_json::from_value(serde_json::json!({
                "event_id": format!("{:08x}-{:04x}-4{:03x}-8000-{i:012x}", r as u32, (r >> 32) as u16, (r >> 48) as u16 & 0xfff),
                "project": "aikit-seo",
                "name": "request",
                // In arrival order across the day, up to five minutes late.
                "timestamp": (DAY0 + (i as i64 * DAY_MS) / n as i64 - (r % 300_000) as i64).max(DAY0),
                "method": "GET",
                "route": format!("/api/posts/{}", r % 40),
                "status": if r.is_multiple_of(50) { 500 } else { 200 },
                "duration_ms": (r % 5000) as f64 * 0.1 + 1.0,
                "instance": format!("site-{}", r % 1200),
                "version": format!("2.{}", r % 5),
                "colo": colo,
            }))
            .unwrap();
            validate(raw, &ctx, &mut || unreachable!()).unwrap().event
        })
        .collect()
}

fn size_of(store: &SqliteStore, tables: &[&str]) -> i64 {
    store.with_connection(|c| {
        tables
            .iter()
            .map(|t| {
                c.query_row("SELECT SUM(pgsize) FROM dbstat WHERE name = ?1", [t], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap()
            })
            .sum()
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("a number of events"));
    let out = args.next();
    let store = SqliteStore::open_in_memory().unwrap();
    let all = events(n);

    let start = Instant::now();
    let mut rollup_rows = 0;
    for batch in all.chunks(1000) {
        rollup_rows += block_on(pipeline::store_events(&store, batch, DAY0 + DAY_MS))
            .unwrap()
            .rollup_rows;
    }
    let store_s = start.elapsed().as_secs_f64();

    let raw_bytes = size_of(&store, &["raw_events", "raw_events_by_time"]);
    let rollup_bytes = size_of(&store, &["rollups"]);
    // Rows written per event as D1 counts them: the row, its one index entry, and the
    // rollup rows and bookkeeping rows of each batch (dirty marks, meta), per event.
    let batches = all.chunks(1000).len() as f64;
    let rows_written = 2.0 + (rollup_rows as f64 + 2.0 * batches) / n as f64;

    let start = Instant::now();
    block_on(pipeline::roll_dirty(&store, Period::Day, 10, DAY0)).unwrap();
    let roll_day_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    block_on(pipeline::rebuild_hours(
        &store,
        "aikit-seo",
        DAY0,
        DAY0 + DAY_MS,
    ))
    .unwrap();
    let rebuild_day_s = start.elapsed().as_secs_f64();

    // The overview of the day: from rollups (24 hourly rows merged), and as a raw scan.
    let start = Instant::now();
    let merged = block_on(read::merged(
        &store,
        "aikit-seo",
        DAY0,
        DAY0 + DAY_MS,
        Some(Dimension::All),
    ))
    .unwrap();
    let row = merged.into_values().next().unwrap();
    let p95_rollup = row.durations.quantile(0.95).unwrap();
    let rollup_query_ms = start.elapsed().as_secs_f64() * 1000.0;
    let start = Instant::now();
    let mut durations: Vec<i64> = store.with_connection(|c| {
        let mut stmt = c
            .prepare("SELECT duration_us FROM raw_events WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND timestamp >= ?2 AND timestamp < ?3")
            .unwrap();
        stmt.query_map(rusqlite_params(DAY0), |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    });
    durations.sort_unstable();
    let p95_raw = durations[((durations.len() - 1) as f64 * 0.95) as usize] as f64 / 1000.0;
    let raw_query_ms = start.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(row.count, n);

    let report = serde_json::json!({
        "events": n,
        "bytes_per_raw_event": raw_bytes as f64 / n as f64,
        "rollup_bytes_per_day": rollup_bytes,
        "rows_written_per_event": rows_written,
        "pipeline_events_per_s_native": n as f64 / store_s,
        "roll_day_from_hours_s": roll_day_s,
        "rebuild_day_from_raw_s": rebuild_day_s,
        "overview_of_a_day_ms": {"rollups": rollup_query_ms, "raw_scan": raw_query_ms, "p95_rollup": p95_rollup, "p95_raw": p95_raw},
        "hour_rows": rollup_rows as f64 / (n as f64 / 1000.0),
        "hours": DAY_MS / HOUR_MS,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    if let Some(path) = out {
        std::fs::write(path, report.to_string()).unwrap();
    }
}

fn rusqlite_params(day: i64) -> (&'static str, i64, i64) {
    ("aikit-seo", day, day + DAY_MS)
}
