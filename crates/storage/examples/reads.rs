//! Where the time of a read goes, natively: the query API's heaviest rollup reads
//! (a route breakdown, installs, the dashboard's sections) over a database of the query
//! bench's workload, each timed as its SQL and row decoding (`covering_rows`) apart from
//! its merging (`read::merge`, `read::buckets`), with the hex text the rows carried.
//! Runs on SQLite, the engine D1 runs; the worker does the same work in wasm, slower.
//!
//! `cargo run --release -p tally-storage --example reads -- <db.sqlite> [events] [runs] [now_ms]`
//! seeds `events` (default 1,000,000) over 60 days into a new file at that path, or reads
//! an existing one (seeded by this program: the project is `bench`, now is fixed; or the
//! local D1 file of `cargo xtask bench query`, project `bench` too, with `now_ms` the
//! time it was seeded, e.g. its latest raw event's timestamp).

// A benchmark times itself: the clock ban of crates/clippy.toml is for the library.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use tally_core::alerts::MinuteSources;
use tally_core::rollup::{Dimension, Period, Rollup};
use tally_core::time::{DAY_MS, Interval};
use tally_core::workload::Workload;
use tally_storage::dashboard::DIMENSIONS as DASHBOARD;
use tally_storage::read;
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{Error, pipeline};

const PROJECT: &str = "bench";
/// 2026-03-01T12:00:00Z: the end of the seeded days, fixed so a file is reused as is.
const NOW_MS: i64 = 1_772_366_400_000;
/// The range every read asks for, as the query bench's `days=30`.
const RANGE_DAYS: i64 = 30;

type Rows = Vec<(Period, tally_core::rollup::Key, Rollup)>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: reads <db.sqlite> [events] [runs]");
        std::process::exit(2);
    };
    let events: u64 = args.get(1).map_or(1_000_000, |n| n.parse().unwrap());
    let runs: u32 = args.get(2).map_or(5, |n| n.parse().unwrap());
    let path = std::path::Path::new(path);
    let store = if path.exists() {
        SqliteStore::open_local_d1(path).unwrap_or_else(|e| panic!("{e}"))
    } else {
        let store = SqliteStore::open(path).unwrap_or_else(|e| panic!("{e}"));
        seed(&store, events);
        // Recorded as wrangler records them, so the next run opens the file as it is.
        store.with_connection(|c| {
            c.execute_batch("CREATE TABLE d1_migrations (id INTEGER PRIMARY KEY, name TEXT)")
                .unwrap();
            for (name, _) in tally_storage::MIGRATIONS {
                c.execute("INSERT INTO d1_migrations (name) VALUES (?1)", [name])
                    .unwrap();
            }
        });
        store
    };
    let now_ms: i64 = args.get(3).map_or(NOW_MS, |n| n.parse().unwrap());
    let to = Interval::Hour.floor(now_ms) + 3_600_000;
    let from = Interval::Day.floor(now_ms) - (RANGE_DAYS - 1) * DAY_MS;

    // Each dimension's own covering read, one after another, as the pages read them
    // before the dashboard's one read.
    let each_of = |store: &SqliteStore, dimensions: &[Dimension]| -> Result<Rows, Error> {
        let mut rows = Vec::new();
        for &d in dimensions {
            rows.extend(block_on(read::covering_rows(
                store,
                PROJECT,
                from,
                to,
                Some(d),
                false,
            ))?);
        }
        Ok(rows)
    };
    let breakdown = |store: &SqliteStore| each_of(store, &[Dimension::All, Dimension::Route]);
    let installs = |store: &SqliteStore| {
        each_of(
            store,
            &[
                Dimension::All,
                Dimension::Version,
                Dimension::Colo,
                Dimension::Country,
            ],
        )
    };
    let dashboard = |store: &SqliteStore| each_of(store, &DASHBOARD);
    let heatmap = |store: &SqliteStore| -> Result<Rows, Error> {
        block_on(read::covering_rows(
            store,
            PROJECT,
            Interval::Hour.floor(to - 28 * DAY_MS),
            to,
            Some(Dimension::Route),
            true,
        ))
    };
    // The dashboard's dimensions in one covering read, as the page reads them now.
    let dashboard_at_once = |store: &SqliteStore| -> Result<Rows, Error> {
        block_on(read::covering_rows_of(
            store, PROJECT, from, to, &DASHBOARD, false,
        ))
    };
    // As the page reads it without filters since issue 17: durations of `all` only.
    let dashboard_timing = |store: &SqliteStore| -> Result<Rows, Error> {
        block_on(read::covering_rows_timing(
            store,
            PROJECT,
            from,
            to,
            &DASHBOARD,
            tally_storage::dashboard::TIMED,
        ))
    };
    println!("{events} events, {RANGE_DAYS}-day range, best of {runs} runs");
    println!(
        "{:<22} {:>6} {:>10} {:>8} {:>8} {:>10} {:>10}",
        "read", "rows", "hex KB", "dense", "sparse", "read ms", "merge ms"
    );
    for (name, read_rows, bucketed) in [
        (
            "breakdown, route",
            &breakdown as &dyn Fn(&SqliteStore) -> _,
            None,
        ),
        ("installs", &installs, Some(Interval::Day)),
        ("dashboard dimensions", &dashboard, None),
        ("dashboard heatmap", &heatmap, Some(Interval::Hour)),
        ("dashboard, one read", &dashboard_at_once, None),
        ("dashboard, all timed", &dashboard_timing, None),
    ] {
        let mut best_read = Duration::MAX;
        let mut best_merge = Duration::MAX;
        let mut rows = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            rows = read_rows(&store).unwrap();
            best_read = best_read.min(started.elapsed());
            let started = Instant::now();
            let merged = read::merge(&rows);
            let buckets = bucketed.map(|i| read::buckets(&rows, i));
            let counted: u64 = merged
                .values()
                .map(|r| r.users.count() + r.instances.count())
                .sum();
            std::hint::black_box((merged, buckets, counted));
            best_merge = best_merge.min(started.elapsed());
        }
        let hex: usize = rows
            .iter()
            .map(|(_, _, r)| {
                2 * (r.durations.encode().len()
                    + r.users.encode().len()
                    + r.instances.encode().len())
            })
            .sum();
        let dense = rows
            .iter()
            .map(|(_, _, r)| {
                usize::from(!r.users.is_sparse()) + usize::from(!r.instances.is_sparse())
            })
            .sum::<usize>();
        print_row(
            name,
            rows.len(),
            hex / 1024,
            dense,
            2 * rows.len() - dense,
            best_read.as_secs_f64() * 1e3,
            best_merge.as_secs_f64() * 1e3,
        );
    }
    // The heatmap as the page reads it now: counts only, no summaries.
    let mut best = Duration::MAX;
    let mut cells = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let counts = block_on(read::hourly_counts(
            &store,
            PROJECT,
            Interval::Hour.floor(to - 28 * DAY_MS),
            to,
            Dimension::Route,
        ))
        .unwrap();
        best = best.min(started.elapsed());
        cells = counts.values().map(|routes| routes.len()).sum();
    }
    print_row(
        "heatmap, counts only",
        cells,
        0,
        0,
        0,
        best.as_secs_f64() * 1e3,
        0.0,
    );
}

fn print_row(
    name: &str,
    rows: usize,
    hex: usize,
    dense: usize,
    sparse: usize,
    read: f64,
    merge: f64,
) {
    println!("{name:<22} {rows:>6} {hex:>10} {dense:>8} {sparse:>8} {read:>10.2} {merge:>10.2}");
}

fn seed(store: &SqliteStore, events: u64) {
    let workload = Workload {
        project: PROJECT,
        events,
        days: 60,
        now_ms: NOW_MS,
        id_secret: b"reads",
        seed: 0x7a11_5eed,
    };
    store.with_connection(|c| {
        c.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")
            .unwrap();
    });
    let started = Instant::now();
    block_on(pipeline::backfill(
        store,
        workload.iter(),
        10_000,
        workload.now_ms,
        &MinuteSources::default(),
    ))
    .unwrap_or_else(|e| panic!("seeding failed: {e}"));
    println!(
        "seeded {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
