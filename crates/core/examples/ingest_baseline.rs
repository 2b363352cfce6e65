//! The native baseline for the bench's ingest figures: what ingest does per event for
//! `POST /v1/events`, in a plain loop on one thread. Each request body is parsed into a
//! JSON value, each event decoded into a [`RawEvent`] and validated (identifier hashing
//! included), and the accepted events are packed into queue messages.
//!
//! `cargo run --release -p tally-core --example ingest_baseline -- out.json body.json...`
//!
//! Each `body.json` is a JSON array of events, exactly as the bench posts it; the batch
//! size is the number of events in it. Not measured here: admission (the write key),
//! the answer's JSON and the queue send.

// A benchmark times itself: the clock ban of crates/clippy.toml is for the library.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tally_core::queue::{self, MAX_MESSAGE_BYTES};
use tally_core::{Context, RawEvent, Settings, validate};

/// How long each body is processed over and over.
const SECONDS_PER_BODY: u64 = 2;
/// How long each body is processed before timing starts.
const WARM_UP: Duration = Duration::from_millis(200);

/// What ingest does with one request body; returns the number of events accepted.
fn ingest(body: &[u8], ctx: &Context<'_>) -> usize {
    let value: Value = serde_json::from_slice(body).expect("the body is JSON");
    let Value::Array(items) = value else {
        panic!("the body is not a JSON array of events");
    };
    let mut accepted = Vec::with_capacity(items.len());
    for item in items {
        let Ok(raw) = serde_json::from_value::<RawEvent>(item) else {
            continue;
        };
        // Every bench event has an id, so this is never called; it is cheap if it were.
        let mut fresh_id = || "00000000-0000-4000-8000-000000000000".to_owned();
        if let Ok(ok) = validate(raw, ctx, &mut fresh_id) {
            accepted.push(ok.event);
        }
    }
    black_box(queue::pack(&accepted, MAX_MESSAGE_BYTES));
    accepted.len()
}

/// Processes `body` for `seconds` and reports events per second.
fn measure(body: &[u8], seconds: u64) -> Value {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64;
    let ctx = Context {
        project: "bench",
        now_ms,
        settings: Settings::default(),
        id_secret: b"bench-baseline-secret-32-bytes!!",
    };
    let batch = serde_json::from_slice::<Vec<Value>>(body).map_or(0, |v| v.len());
    let accepted = ingest(body, &ctx);
    let warm = Instant::now();
    while warm.elapsed() < WARM_UP {
        ingest(black_box(body), &ctx);
    }
    let limit = Duration::from_secs(seconds);
    let start = Instant::now();
    let (mut requests, mut events) = (0u64, 0u64);
    while start.elapsed() < limit {
        events += ingest(black_box(body), &ctx) as u64;
        requests += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    json!({
        "batch": batch,
        "accepted_per_request": accepted,
        "body_bytes": body.len(),
        "seconds": elapsed,
        "requests": requests,
        "events_accepted": events,
        "events_per_s": events as f64 / elapsed,
        "request_us_mean": elapsed * 1e6 / requests as f64,
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .expect("usage: ingest_baseline out.json body.json...");
    let mut batches = Vec::new();
    for path in args {
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let figure = measure(&body, SECONDS_PER_BODY);
        println!(
            "batch {:>4}: {:>10.0} events/s natively ({:.1} µs per request)",
            figure["batch"],
            figure["events_per_s"].as_f64().unwrap_or(0.0),
            figure["request_us_mean"].as_f64().unwrap_or(0.0),
        );
        batches.push(figure);
    }
    let report = json!({
        "threads": 1,
        "seconds_per_batch": SECONDS_PER_BODY,
        "batches": batches,
    });
    std::fs::write(&out, report.to_string()).unwrap_or_else(|e| panic!("writing {out}: {e}"));
}
