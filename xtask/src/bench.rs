//! `cargo xtask bench`: Tally's speed as measured facts, written to `bench/results.json`
//! and `bench/RESULTS.md`. Never a CI gate.
//!
//! Today it measures the pipeline through the real runtime (events/s from ingest to
//! visible in the query API, on a fresh local stack) and the storage figures natively
//! (`crates/storage/examples/figures.rs`: bytes and rows written per event, rolling and
//! rebuilding a day, rollups against a raw scan).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::admin::{Admin, KeyKind, Settings};
use crate::stack::{Config, Ports, Stack, agent};
use crate::tools::{self, cargo, root};
use crate::{bundle, proc, step};

/// Events sent through the local stack.
const PIPELINE_EVENTS: u64 = 50_000;
/// Events per request.
const BATCH: u64 = 1000;
/// Events loaded natively for the storage figures.
const STORAGE_EVENTS: &str = "1000000";

pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask bench` takes no argument {arg:?}");
    }
    tools::ensure()?;
    bundle::build_all()?;
    let out = root().join("bench");
    std::fs::create_dir_all(&out)?;

    step(&format!(
        "Storage figures, natively on SQLite ({STORAGE_EVENTS} events)"
    ));
    let storage_json = root().join("target/bench-storage.json");
    proc::run(
        cargo()
            .args([
                "run",
                "--release",
                "-q",
                "-p",
                "tally-storage",
                "--example",
                "figures",
                "--",
            ])
            .arg(STORAGE_EVENTS)
            .arg(&storage_json),
        "the storage figures program failed; see its output above",
    )?;
    let storage: Value = serde_json::from_slice(&std::fs::read(&storage_json)?)?;

    let dir = root().join("target/bench-stack");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let mut stack = Stack::start(Config {
        dir,
        ports: Ports::free()?,
        echo: false,
    })?;
    step(&format!(
        "Pipeline through local workerd ({PIPELINE_EVENTS} events, {BATCH} per request)"
    ));
    let admin = Admin::new(&stack.url("query"), &stack.admin_token()?);
    let pipeline = measure_pipeline(&admin, &stack.url("ingest"), &stack.url("query"))?;
    stack.stop();

    let machine = machine();
    let results = json!({
        "machine": machine,
        "pipeline": pipeline,
        "storage": storage,
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    std::fs::write(out.join("RESULTS.md"), markdown(&results))?;
    step("Results (bench/results.json, bench/RESULTS.md)");
    print!("{}", markdown(&results));
    Ok(())
}

/// Makes a project without rate limits, sends events in batches with its write key and
/// waits until the query API counts them all.
fn measure_pipeline(admin: &Admin, ingest: &str, query: &str) -> Result<Value> {
    let http = agent(Duration::from_secs(30));
    let project = "bench";
    let off = Settings {
        rate_limit: Some("off".into()),
        ..Settings::default()
    };
    admin
        .create_project(project, &off)
        .context("creating the bench project")?;
    let write = admin.create_key(project, KeyKind::Write, Some("cargo xtask bench"))?;
    let write = format!("Bearer {}", write.secret()?);
    let read = admin.create_key(project, KeyKind::Read, Some("cargo xtask bench"))?;
    let read = format!("Bearer {}", read.secret()?);
    let start = Instant::now();
    let mut request_ms = Vec::new();
    for b in 0..PIPELINE_EVENTS / BATCH {
        let events: Vec<Value> = (0..BATCH)
            .map(|i| {
                let n = b * BATCH + i;
                json!({"event_id": format!("00000000-0000-4000-8000-{n:012x}"),
                    "name": "request", "route": format!("/r/{}", n % 40),
                    "status": if n.is_multiple_of(50) { 500 } else { 200 },
                    "duration_ms": (n % 500) as f64 + 0.5, "instance": format!("i{}", n % 300)})
            })
            .collect();
        let sent = Instant::now();
        let mut response = http
            .post(&format!("{ingest}/v1/events"))
            .header("authorization", &write)
            .header("content-type", "application/json")
            .send(Value::Array(events).to_string())
            .context("posting a batch to ingest")?;
        if response.status().as_u16() != 202 {
            bail!(
                "ingest answered {} to a bench batch: {}",
                response.status(),
                response.body_mut().read_to_string().unwrap_or_default()
            );
        }
        request_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    let accepted_s = start.elapsed().as_secs_f64();
    let accepted_at = Instant::now();
    let deadline = accepted_at + Duration::from_secs(600);
    loop {
        let mut response = http
            .get(&format!("{query}/v1/projects/{project}/overview?days=1"))
            .header("authorization", &read)
            .call()?;
        if response.status().as_u16() != 200 {
            bail!(
                "query answered {} to the bench's overview: {}",
                response.status(),
                response.body_mut().read_to_string().unwrap_or_default()
            );
        }
        let body: Value = response.body_mut().read_json()?;
        if body["events"].as_u64() == Some(PIPELINE_EVENTS) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {PIPELINE_EVENTS} events visible after 10 minutes",
                body["events"]
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let total_s = start.elapsed().as_secs_f64();
    request_ms.sort_by(f64::total_cmp);
    let pct = |q: f64| request_ms[((request_ms.len() - 1) as f64 * q) as usize];
    Ok(json!({
        "events": PIPELINE_EVENTS,
        "batch": BATCH,
        "ingest_events_per_s": PIPELINE_EVENTS as f64 / accepted_s,
        "request_ms_p50": pct(0.5),
        "request_ms_p99": pct(0.99),
        "end_to_end_events_per_s": PIPELINE_EVENTS as f64 / total_s,
        "drain_after_last_accept_s": accepted_at.elapsed().as_secs_f64(),
    }))
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": cpu,
        "runs": 1,
        "note": "one run on loopback; the load generator, workerd and wrangler share the cores",
    })
}

fn markdown(r: &Value) -> String {
    let p = &r["pipeline"];
    let s = &r["storage"];
    let f = |v: &Value| v.as_f64().map_or("?".into(), |x| format!("{x:.1}"));
    format!(
        "# Tally benchmark results\n\nMachine: {} cores, {} ({}).\n\n\
         ## Pipeline through local workerd\n\n\
         | figure | value |\n|---|---|\n\
         | events sent ({} per request) | {} |\n\
         | ingest accepted, events/s | {} |\n\
         | request latency p50 / p99, ms | {} / {} |\n\
         | ingest → visible in the query API, events/s | {} |\n\
         | drain after the last accepted request, s | {} |\n\n\
         ## Storage (SQLite, the engine D1 runs; {} events in one day)\n\n\
         | figure | value |\n|---|---|\n\
         | bytes per raw event, with its index | {} |\n\
         | rows written per event (raw row, index, rollup rows and bookkeeping per batch of 1000) | {} |\n\
         | pipeline events/s, native | {} |\n\
         | roll a day from its hours, s | {} |\n\
         | rebuild a day's hours from raw events, s | {} |\n\
         | overview of the day from rollups, ms | {} |\n\
         | the same from a raw scan, ms | {} |\n",
        r["machine"]["cores"],
        r["machine"]["cpu"].as_str().unwrap_or("?"),
        r["machine"]["note"].as_str().unwrap_or(""),
        p["batch"],
        p["events"],
        f(&p["ingest_events_per_s"]),
        f(&p["request_ms_p50"]),
        f(&p["request_ms_p99"]),
        f(&p["end_to_end_events_per_s"]),
        f(&p["drain_after_last_accept_s"]),
        s["events"],
        f(&s["bytes_per_raw_event"]),
        s["rows_written_per_event"]
            .as_f64()
            .map_or("?".into(), |x| format!("{x:.2}")),
        f(&s["pipeline_events_per_s_native"]),
        s["roll_day_from_hours_s"]
            .as_f64()
            .map_or("?".into(), |x| format!("{x:.3}")),
        f(&s["rebuild_day_from_raw_s"]),
        f(&s["overview_of_a_day_ms"]["rollups"]),
        f(&s["overview_of_a_day_ms"]["raw_scan"]),
    )
}
