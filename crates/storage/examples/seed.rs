//! Seeds a local D1 database for the query bench: writes a generated mixed workload
//! (`tally_core::workload`) straight into the SQLite file of `wrangler dev`'s local D1
//! through the aggregator's own code (`pipeline::backfill`: the consumer's
//! `store_events`, then the cron's rolls), so raw events, hourly, daily and monthly
//! rollups, session marks and error messages are what the workers would have written.
//!
//! The workers must be stopped while it runs (the file is written directly).
//!
//! `TALLY_ID_SECRET=<secret> cargo run --release -p tally-storage --example seed --
//! <d1.sqlite> <project> <events> <days> <now_ms> <out.json>`, with the stack's
//! `ID_SECRET` (identifiers are hashed with it, as ingest does) in the environment
//! rather than on the command line. `<d1.sqlite>` may be the directory of a stack's
//! local D1 files: the seed goes to the control database, shard 0, which holds the
//! project's keys (the project must be on shard 0).

// A benchmark times itself: the clock ban of crates/clippy.toml is for the library.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use tally_core::alerts::MinuteSources;
use tally_core::workload::Workload;
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{AdminStore, pipeline};

/// Events per `store_events` call: the consumer's largest commit.
const BATCH: usize = 10_000;
/// The workload's seed; the same one for every volume, so runs compare.
const SEED: u64 = 0x7a11_5eed;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Ok(id_secret), [path, project, events, days, now_ms, out]) =
        (std::env::var("TALLY_ID_SECRET"), args.as_slice())
    else {
        eprintln!(
            "usage: TALLY_ID_SECRET=<secret> seed <d1.sqlite> <project> <events> <days> <now_ms> <out.json>"
        );
        std::process::exit(2);
    };
    let number = |text: &str, what: &str| -> i64 {
        text.parse()
            .unwrap_or_else(|_| panic!("{what} must be a whole number, not {text:?}"))
    };
    let workload = Workload {
        project,
        events: number(events, "events") as u64,
        days: number(days, "days") as u32,
        now_ms: number(now_ms, "now_ms"),
        id_secret: id_secret.as_bytes(),
        seed: SEED,
    };

    let store = control_database(path.as_ref(), project);
    // A throwaway database: no fsync per commit, and room for the indexes in memory.
    store.with_connection(|c| {
        c.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")
            .unwrap();
    });
    let start = Instant::now();
    let done = block_on(pipeline::backfill(
        &store,
        workload.iter(),
        BATCH,
        workload.now_ms,
        &MinuteSources::default(),
    ))
    .unwrap_or_else(|e| panic!("seeding failed: {e}"));
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(
        done.new as u64, workload.events,
        "a fresh database stores every event: {done:?}"
    );

    let count = |sql: &str| -> i64 {
        store.with_connection(|c| c.query_row(sql, [], |r| r.get(0)).unwrap())
    };
    let rollups = |period: &str| -> i64 {
        store.with_connection(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM rollups WHERE period = ?1",
                [period],
                |r| r.get(0),
            )
            .unwrap()
        })
    };
    let report = serde_json::json!({
        "events": workload.events,
        "days": workload.days,
        "seconds": seconds,
        "events_per_s": workload.events as f64 / seconds,
        "batches": done.batches,
        "days_rolled": done.days_rolled,
        "months_rolled": done.months_rolled,
        "raw_events": count("SELECT COUNT(*) FROM raw_events"),
        "session_events": count("SELECT COUNT(*) FROM session_events"),
        "rollup_rows": {
            "hour": rollups("hour"),
            "day": rollups("day"),
            "month": rollups("month"),
        },
        "database_bytes": count("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"),
    });
    // Closing the last connection checkpoints the write-ahead log into the file.
    drop(store);
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    std::fs::write(out, report.to_string()).unwrap_or_else(|e| panic!("writing {out}: {e}"));
}

/// The local D1 file at `path`, or, given the directory of a stack's local D1 files (a
/// control database and data shards), the one that holds `project`'s keys: the control
/// database, which is shard 0, where the bench places its project.
fn control_database(path: &std::path::Path, project: &str) -> SqliteStore {
    if !path.is_dir() {
        return SqliteStore::open_local_d1(path).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "sqlite")
                && p.file_name().is_some_and(|n| n != "metadata.sqlite")
        })
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|file| SqliteStore::open_local_d1(file).ok())
        .find(|store| block_on(store.keys(project)).is_ok_and(|keys| !keys.is_empty()))
        .unwrap_or_else(|| panic!("no D1 file in {} holds {project}'s keys", path.display()))
}
