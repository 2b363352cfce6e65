//! Storage figures for the bench: bytes and rows written per raw event, pipeline
//! throughput, the time to roll and to rebuild a day, and a query over rollups against
//! the same query as a raw scan; the rows a typical mixed workload writes per event, by
//! kind; what the bound on a dimension's values does to the rows of a request of unique
//! values; and retention's purge rate and backlog for a project of 100K events a day.
//! Runs on SQLite, the engine D1 runs.
//!
//! `cargo run --release -p tally-storage --example figures -- [events] [out.json]`

// A benchmark times itself: the clock ban of crates/clippy.toml is for the library.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use tally_core::alerts::{MINUTE_ROWS_KEPT_MS, MinuteSources};
use tally_core::rollup::{self, Dimension, Period};
use tally_core::time::{DAY_MS, HOUR_MS, Interval};
use tally_core::workload::Workload;
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::exec::Counted;
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
        rollup_rows += block_on(pipeline::store_events(
            &store,
            batch,
            DAY0 + DAY_MS,
            &MinuteSources::default(),
        ))
        .unwrap()
        .rollup_rows;
    }
    let store_s = start.elapsed().as_secs_f64();

    let raw_bytes = size_of(
        &store,
        &[
            "raw_events",
            "raw_events_by_time",
            "raw_events_by_sample",
            "raw_events_by_name",
        ],
    );
    let rollup_bytes = size_of(&store, &["rollups"]);
    // Rows written per event as D1 counts them: the row, its time and sample index
    // entries, its name index entry when it has a user (that index is partial), and the
    // rollup rows and bookkeeping rows of each batch (dirty marks, meta), per event.
    let batches = all.chunks(1000).len() as f64;
    let named = count(
        &store,
        "SELECT COUNT(*) FROM raw_events WHERE user IS NOT NULL",
    );
    let rows_written = 3.0 + (named as f64 + rollup_rows as f64 + 2.0 * batches) / n as f64;

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
        "mixed_workload": mixed_workload(),
        "cardinality": cardinality(),
        "purge": purge(),
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    if let Some(path) = out {
        std::fs::write(path, report.to_string()).unwrap();
    }
}

fn rusqlite_params(day: i64) -> (&'static str, i64, i64) {
    ("aikit-seo", day, day + DAY_MS)
}

fn count(store: &SqliteStore, sql: &str) -> u64 {
    store.with_connection(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap()) as u64
}

/// Rows written per event by the mixed workload (`tally_core::workload`: API requests,
/// page views, CDN images, installs, funnels, sessions) of 100,000 events over a day,
/// stored in batches of 1,000 as the consumer stores them, by kind.
fn mixed_workload() -> serde_json::Value {
    const EVENTS: u64 = 100_000;
    let now_ms = DAY0 + DAY_MS;
    let workload = Workload {
        project: "mixed",
        events: EVENTS,
        days: 1,
        now_ms,
        id_secret: b"figures",
        seed: 3,
    };
    let events: Vec<Event> = workload.iter().collect();
    let store = SqliteStore::open_in_memory().unwrap();
    let counting = Counted::new(&store);
    let (mut rollup_rows, mut minute_rows) = (0, 0);
    for batch in events.chunks(1000) {
        rollup_rows += block_on(pipeline::store_events(
            &counting,
            batch,
            now_ms,
            &MinuteSources::default(),
        ))
        .unwrap()
        .rollup_rows;
        // Minute rows hold few values a minute: none folds, so this is what was written
        // (no alert rule: the realtime view's dimensions).
        minute_rows += rollup::roll_minutes(
            batch
                .iter()
                .filter(|e| e.timestamp >= now_ms - MINUTE_ROWS_KEPT_MS),
        )
        .keys()
        .filter(|key| MinuteSources::default().wants(key))
        .count();
    }
    let table_rows = counting.take_rows_changed();
    let raw = count(&store, "SELECT COUNT(*) FROM raw_events");
    assert_eq!(raw, EVENTS);
    // raw_events_by_name holds the events with a user only.
    let named = count(
        &store,
        "SELECT COUNT(*) FROM raw_events WHERE user IS NOT NULL",
    );
    let marks = count(&store, "SELECT COUNT(*) FROM session_events");
    let rollup_inserts = count(&store, "SELECT COUNT(*) FROM rollups");
    // Index entries written: nothing was deleted and updates set no indexed column, so
    // each entry an index holds now was written once. Counted from the b-trees' cells
    // (an index b-tree keeps an entry in each cell of its interior and leaf pages).
    let entries = index_entries(&store);
    let entries_of = |table: &str| -> u64 {
        entries
            .iter()
            .filter(|(_, t, _)| t == table)
            .map(|(_, _, n)| n)
            .sum()
    };
    let raw_index = entries_of("raw_events");
    let rollup_index = entries_of("rollups");
    let other_index: u64 =
        entries.iter().map(|(_, _, n)| n).sum::<u64>() - raw_index - rollup_index;
    let per = |x: u64| x as f64 / EVENTS as f64;
    let hour_rows = (rollup_rows - minute_rows) as u64;
    let bookkeeping = table_rows - raw - marks - rollup_rows as u64;
    serde_json::json!({
        "events": EVENTS,
        "batch": 1000,
        "raw_rows": per(raw),
        // raw_events_by_time: one entry per raw row.
        "raw_index_rows": per(raw),
        // raw_events_by_sample (filters' sampled reads): one entry per raw row.
        "raw_sample_index_rows": per(raw),
        // raw_events_by_name: one entry per raw row with a user.
        "raw_name_index_rows": per(named),
        "session_marks": per(marks),
        "hour_rows": per(hour_rows),
        "minute_rows": per(minute_rows as u64),
        // Dirty days, the consumer's meta, error messages.
        "bookkeeping_rows": per(bookkeeping),
        "table_rows": per(table_rows),
        "total_with_raw_index": per(table_rows + 2 * raw + named),
        // Each rollup row inserted also adds an entry to each rollups index it is in.
        "rollup_rows_inserted": per(rollup_inserts),
        "index_entries": entries
            .iter()
            .map(|(index, _, n)| (index.clone(), serde_json::json!(per(*n))))
            .collect::<serde_json::Map<_, _>>(),
        "raw_index_entries": per(raw_index),
        "rollup_index_entries": per(rollup_index),
        "other_index_entries": per(other_index),
        // What D1 bills: every table row changed and every index entry written.
        "total_billed": per(table_rows + raw_index + rollup_index + other_index),
    })
}

/// The entries each secondary index holds, with its table: `(index, table, entries)`.
fn index_entries(store: &SqliteStore) -> Vec<(String, String, u64)> {
    store.with_connection(|c| {
        let mut statement = c
            .prepare(
                "SELECT s.name, s.tbl_name, (SELECT SUM(d.ncell) FROM dbstat AS d WHERE d.name = s.name)
                 FROM sqlite_schema AS s WHERE s.type = 'index' AND s.sql IS NOT NULL
                 ORDER BY s.tbl_name, s.name",
            )
            .unwrap();
        statement
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
    })
}

/// The rows written by requests of 1,000 events whose routes, campaigns and items no
/// other event has (what one write key may send in one request), with the bound on a
/// dimension's values and without it (every value its own hour and minute row,
/// computed from the same events). Twice: each request's events within one minute (as
/// ingest stamps events that bring no time), the first two in the same minute and the
/// third in the next; and each request's events spread over the hour (backdated), eight
/// requests.
fn cardinality() -> serde_json::Value {
    let now_ms = DAY0 + DAY_MS;
    let hour = now_ms - HOUR_MS;
    let ctx = Context {
        project: "flood",
        now_ms,
        settings: Settings::default(),
        id_secret: b"figures",
    };
    let request = |r: u64, at: &dyn Fn(i64) -> i64| -> Vec<Event> {
        (0..1000)
            .map(|j| {
                let i = r * 1000 + j;
                let raw: RawEvent = serde_json::from_value(serde_json::json!({
                    "event_id": format!("00000000-0000-4000-8000-{i:012x}"),
                    "project": "flood", "name": "request", "timestamp": at(j as i64),
                    "route": format!("/p/{i}"), "campaign": format!("c-{i}"),
                    "item": format!("img-{i}"), "variant": "w640", "status": 200,
                }))
                .unwrap();
                validate(raw, &ctx, &mut || unreachable!()).unwrap().event
            })
            .collect()
    };
    let scenario = |minutes: &[i64], spread: bool| {
        let store = SqliteStore::open_in_memory().unwrap();
        let counting = Counted::new(&store);
        let mut unbounded = 0;
        let mut requests = Vec::new();
        for (r, &minute) in minutes.iter().enumerate() {
            let at = |j: i64| {
                if spread {
                    hour + (j * HOUR_MS) / 1000
                } else {
                    hour + minute * 60_000 + j * 50
                }
            };
            let events = request(r as u64, &at);
            unbounded =
                rollup::roll(&events, Interval::Hour).len() + rollup::roll_minutes(&events).len();
            let stored = block_on(pipeline::store_events(
                &counting,
                &events,
                now_ms,
                &MinuteSources::default(),
            ))
            .unwrap();
            requests.push(serde_json::json!({
                "rollup_rows": stored.rollup_rows,
                "table_rows": counting.take_rows_changed(),
            }));
        }
        serde_json::json!({
            "unbounded_rollup_rows": unbounded,
            // The raw row of each event, a dirty day and the consumer's meta besides.
            "unbounded_table_rows": unbounded + 1000 + 2,
            "requests": requests,
        })
    };
    serde_json::json!({
        "events_per_request": 1000,
        "one_minute": scenario(&[10, 10, 11], false),
        // Each request adds 16 or 17 values to each minute: the eighth finds them full.
        "spread_over_the_hour": scenario(&[0; 8], true),
    })
}

/// Retention for a project of 100,000 events a day kept one day: two days arrive with
/// no purge (a backlog of a day, as when retention is lowered), the first hourly run
/// catches up, then a third day arrives hour by hour with the hourly run after each
/// hour, as the cron runs it. Rate: raw events deleted per second of purging.
fn purge() -> serde_json::Value {
    const PER_DAY: u64 = 100_000;
    let store = SqliteStore::open_in_memory().unwrap();
    let mut rng = tally_core::testing::SplitMix64(5);
    let settings = Settings { retention_days: 1 };
    let hour_of = |rng: &mut tally_core::testing::SplitMix64, start: i64, first: u64| {
        let n = PER_DAY / 24 + u64::from(first % 24 < PER_DAY % 24);
        let ctx = Context {
            project: "busy",
            now_ms: start + HOUR_MS,
            settings,
            id_secret: b"figures",
        };
        (0..n)
            .map(|k| {
                let i = first * 10_000 + k;
                let raw: RawEvent = serde_json::from_value(serde_json::json!({
                    "event_id": format!("00000000-0000-4000-8000-{i:012x}"),
                    "project": "busy", "name": (["request", "play", "stop"][(k % 3) as usize]),
                    "timestamp": start + rng.below(HOUR_MS as u64) as i64,
                    "route": format!("/api/r{}", k % 12), "status": 200,
                    "duration_ms": 12.5, "user": format!("u{}", rng.below(5000)),
                }))
                .unwrap();
                validate(raw, &ctx, &mut || unreachable!()).unwrap().event
            })
            .collect::<Vec<Event>>()
    };
    let store_hour = |events: &[Event], now_ms: i64| {
        for batch in events.chunks(1000) {
            block_on(pipeline::store_events(
                &store,
                batch,
                now_ms,
                &MinuteSources::default(),
            ))
            .unwrap();
        }
    };
    let raw = || count(&store, "SELECT COUNT(*) FROM raw_events");
    // Days 0 and 1, unpurged; the project's retention is one day.
    let mut hour_index = 0;
    for h in 0..48 {
        let start = DAY0 + h * HOUR_MS;
        let events = hour_of(&mut rng, start, hour_index);
        hour_index += 1;
        store_hour(&events, start + HOUR_MS);
    }
    store.with_connection(|c| {
        c.execute(
            "UPDATE projects SET retention_days = 1 WHERE slug = 'busy'",
            [],
        )
        .unwrap()
    });
    let now = DAY0 + 2 * DAY_MS;
    let before = raw();
    let started = Instant::now();
    let caught_up = block_on(pipeline::purge_expired(&store, now, pipeline::HOURLY_PURGE)).unwrap();
    let catch_up_s = started.elapsed().as_secs_f64();
    let catch_up_raw = before - raw();
    // Day 2, hour by hour, each hour followed by the hourly run.
    let (mut purge_s, mut purged_raw, mut runs, mut most_behind) = (0.0, 0, 0, 0);
    let mut last = caught_up.clone();
    for h in 48..72 {
        let start = DAY0 + h * HOUR_MS;
        let events = hour_of(&mut rng, start, hour_index);
        hour_index += 1;
        store_hour(&events, start + HOUR_MS);
        let before = raw();
        let started = Instant::now();
        last = block_on(pipeline::purge_expired(
            &store,
            start + HOUR_MS,
            pipeline::HOURLY_PURGE,
        ))
        .unwrap();
        purge_s += started.elapsed().as_secs_f64();
        purged_raw += before - raw();
        runs += 1;
        most_behind = most_behind.max(last.backlog.iter().map(|b| b.rows_left).sum::<u64>());
    }
    let expired_left: i64 = store.with_connection(|c| {
        c.query_row(
            "SELECT COUNT(*) FROM raw_events WHERE timestamp < ?1",
            [DAY0 + 2 * DAY_MS],
            |r| r.get(0),
        )
        .unwrap()
    });
    serde_json::json!({
        "events_per_day": PER_DAY,
        "retention_days": 1,
        "chunk": pipeline::HOURLY_PURGE.chunk,
        "statements_per_run": pipeline::HOURLY_PURGE.statements,
        "catch_up": {
            "raw_events_deleted": catch_up_raw,
            "rows_deleted": caught_up.deleted,
            "statements": caught_up.statements,
            "s": catch_up_s,
            "raw_events_per_s": catch_up_raw as f64 / catch_up_s,
            "backlog_after": caught_up.backlog.iter().map(|b| b.rows_left).sum::<u64>(),
        },
        "hourly": {
            "runs": runs,
            "raw_events_deleted": purged_raw,
            "s": purge_s,
            "raw_events_per_s": purged_raw as f64 / purge_s,
            "most_rows_left_after_a_run": most_behind,
            "backlog_after": last.backlog.iter().map(|b| b.rows_left).sum::<u64>(),
        },
        "expired_left_of_the_first_two_days": expired_left,
    })
}
