//! `cargo xtask bench`: Tally's speed as measured facts, written to `bench/results.json`
//! and `bench/RESULTS.md`. Never a CI gate.
//!
//! It measures, on a fresh local stack (real workerd): ingest throughput and latency at
//! several batch sizes from concurrent connections (`load.rs`), against a native
//! baseline of the same per-event work (`crates/core/examples/ingest_baseline.rs`); and
//! the pipeline (events/s from ingest to visible in the query API), with every event on
//! one data shard and spread over two (`cargo xtask bench pipeline` measures only that). Natively it
//! measures storage (`crates/storage/examples/figures.rs`: bytes and rows written per
//! event, rolling and rebuilding a day, rollups against a raw scan; rows written per event
//! of a mixed workload by kind; the rows of a request of unique values with the bound on
//! a dimension's values; retention's purge rate and backlog for a 100K-a-day project).
//! Last, query latency and rows read per endpoint at 100K and 1M raw events seeded into
//! local D1 (`query.rs`); `cargo xtask bench query [--reuse] [EVENTS...]` measures only
//! that, and `cargo xtask bench storage` only the storage figures, each keeping the other
//! figures of `bench/results.json` and the other sections of `bench/RESULTS.md`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::admin::client::Admin;
use crate::deploy::wrangler_config::Env;
use crate::stack::tools::{self, cargo, root};
use crate::stack::{Config, Ports, Stack, agent};
use crate::stack::{bundle, proc};
use crate::step;

mod load;
mod query;

/// Events sent through the local stack in each of the pipeline's runs: enough for
/// some ten seconds of sending, so the stack reaches its steady pace.
const PIPELINE_EVENTS: u64 = 200_000;
/// Connections sending the pipeline's events at once: as many with one shard as with
/// two, so the runs differ only in where the events are stored.
const PIPELINE_CONNECTIONS: u64 = 2;
/// Events per request.
const PIPELINE_BATCH: u64 = 1000;
/// The batch size measured natively beyond those of [`load::BATCHES`]: the largest
/// request ingest takes.
const NATIVE_EXTRA_BATCH: u64 = 1000;
/// The project the bench creates on its fresh stack.
const PROJECT: &str = "bench";
/// How many times each figure is measured.
const RUNS: u64 = 1;
/// Events loaded natively for the storage figures.
const STORAGE_EVENTS: &str = "1000000";

const USAGE: &str = "usage: `cargo xtask bench` (everything), \
                     `cargo xtask bench query [--reuse] [EVENTS...]` (query latency only, at \
                     100000 and 1000000 raw events unless given; `--reuse` measures on the state \
                     the last run seeded), `cargo xtask bench pipeline` (end to end through a \
                     local stack, on one data shard and on two) or `cargo xtask bench storage` \
                     (the storage figures only, natively)";

/// What one `cargo xtask bench` measures.
enum Only {
    Everything,
    /// The volumes, and whether to reuse the state each was seeded into last.
    Query(Vec<u64>, bool),
    Storage,
    Pipeline,
}

pub fn run(args: &[String]) -> Result<()> {
    let only = match args {
        [] => Only::Everything,
        [query, reuse, volumes @ ..] if query == "query" && reuse == "--reuse" => {
            Only::Query(volumes_of(volumes)?, true)
        }
        [query, volumes @ ..] if query == "query" => Only::Query(volumes_of(volumes)?, false),
        [storage] if storage == "storage" => Only::Storage,
        [pipeline] if pipeline == "pipeline" => Only::Pipeline,
        _ => bail!("{USAGE}"),
    };
    let out = root().join("bench");
    let machine = machine();
    if let Only::Storage = only {
        std::fs::create_dir_all(&out)?;
        let mut results = last_results(&out);
        results["storage"] = measure_storage(&machine)?;
        if results.get("machine").is_none() {
            results["machine"] = machine;
        }
        return write(&out, &results, &["## Storage ("]);
    }
    tools::ensure()?;
    let sizes = bundle::build_all()?;
    std::fs::create_dir_all(&out)?;
    let bundles: Vec<Value> = sizes
        .iter()
        .map(|s| json!({"worker": s.worker, "raw_bytes": s.raw, "gzip_bytes": s.gzip}))
        .collect();
    // A run of one part keeps the other figures of the last run.
    let with_bundles = |member: &str, figure: Value, section: &str| {
        let mut results = last_results(&out);
        results[member] = figure;
        results["bundles"] = bundles.clone().into();
        if results.get("machine").is_none() {
            results["machine"] = machine.clone();
        }
        write(&out, &results, &[section, "## Bundles"])
    };
    if let Only::Pipeline = only {
        let pipeline = measure_pipelines(&machine)?;
        return with_bundles("pipeline", pipeline, "## Pipeline through local workerd");
    }
    if let Only::Query(volumes, reuse) = only {
        let query = query::measure(&volumes, reuse, &machine)?;
        return with_bundles("query", query, "## Queries through local workerd");
    }

    let storage = measure_storage(&machine)?;

    let mut native = measure_native()?;
    describe(&mut native, &machine);

    let pipeline = measure_pipelines(&machine)?;

    let mut stack = fresh_stack("target/bench-stack")?;
    let admin = Admin::new(&stack.url("query"), &stack.admin_token()?);
    let bench = BenchProject::create(&admin, &stack.url("query"), PROJECT, None)?;
    let mut ingest = measure_ingest(&bench, &stack.url("ingest"), &native)?;
    describe(&mut ingest, &machine);
    stack.stop();

    let query = query::measure(&query::VOLUMES, false, &machine)?;
    let results = json!({
        "machine": machine,
        "ingest": ingest,
        "native": native,
        "pipeline": pipeline,
        "storage": storage,
        "query": query,
        "bundles": bundles,
    });
    write(&out, &results, &GENERATED_SECTIONS)
}

/// The figures of the last run, `{}` when there are none: a partial run keeps the rest.
fn last_results(out: &std::path::Path) -> Value {
    std::fs::read(out.join("results.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// `cargo run` of the example `example` of `package` in a release build; its arguments
/// follow.
fn release_example(package: &str, example: &str) -> std::process::Command {
    let mut command = cargo();
    command.args([
        "run",
        "--release",
        "-q",
        "-p",
        package,
        "--example",
        example,
        "--",
    ]);
    command
}

/// The storage figures: `crates/storage/examples/figures.rs` in a release build.
fn measure_storage(machine: &Value) -> Result<Value> {
    step(&format!(
        "Storage figures, natively on SQLite ({STORAGE_EVENTS} events; a mixed workload, \
         requests of unique values, a 100K-a-day project's purge)"
    ));
    let storage_json = root().join("target/bench-storage.json");
    proc::run(
        release_example("tally-storage", "figures")
            .arg(STORAGE_EVENTS)
            .arg(&storage_json),
        "the storage figures program failed; see its output above",
    )?;
    let mut storage: Value = serde_json::from_slice(&std::fs::read(&storage_json)?)?;
    describe(&mut storage, machine);
    Ok(storage)
}

/// The volumes of `cargo xtask bench query EVENTS...`, [`query::VOLUMES`] when none.
fn volumes_of(args: &[String]) -> Result<Vec<u64>> {
    if args.is_empty() {
        return Ok(query::VOLUMES.to_vec());
    }
    args.iter()
        .map(|a| {
            a.replace('_', "")
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{a:?} is not a number of events\n{USAGE}"))
        })
        .collect()
}

/// Writes `bench/results.json` and `bench/RESULTS.md`, and prints the latter. Only the
/// sections of `measured` (prefixes of [`GENERATED_SECTIONS`]) are written from
/// `results`; every other section of the old RESULTS.md stays as it was, where it was —
/// figures of other benches and of runs that measured something else, and notes written
/// there by hand.
fn write(out: &std::path::Path, results: &Value, measured: &[&str]) -> Result<()> {
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(results)? + "\n",
    )?;
    let old = std::fs::read_to_string(out.join("RESULTS.md")).unwrap_or_default();
    let md = with_sections_replaced(&old, &markdown(results), measured);
    std::fs::write(out.join("RESULTS.md"), &md)?;
    step("Results (bench/results.json, bench/RESULTS.md)");
    print!("{md}");
    Ok(())
}

/// How the headings of the sections [`markdown`] writes begin.
const GENERATED_SECTIONS: [&str; 5] = [
    "## Ingest through local workerd",
    "## Pipeline through local workerd",
    "## Storage (",
    "## Queries through local workerd",
    "## Bundles",
];

/// The `## ` sections of `md` (the text before the first one is the first, headed ""),
/// each with its heading line.
fn sections(md: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = vec![("", String::new())];
    for line in md.split_inclusive('\n') {
        if line.starts_with("## ") {
            out.push((line, String::new()));
        }
        if let Some((_, text)) = out.last_mut() {
            text.push_str(line);
        }
    }
    out
}

/// `old` with each section whose heading begins with one of `measured` replaced by the
/// same section of `fresh`; a measured section `old` lacks goes before the first section
/// this bench does not write. An empty `old` is `fresh`.
fn with_sections_replaced(old: &str, fresh: &str, measured: &[&str]) -> String {
    if old.trim().is_empty() {
        return fresh.to_owned();
    }
    let prefix_of = |heading: &str| measured.iter().find(|m| heading.starts_with(*m)).copied();
    let generated = |heading: &str| GENERATED_SECTIONS.iter().any(|g| heading.starts_with(g));
    let old = sections(old);
    let mut fresh: Vec<(&str, String)> = sections(fresh)
        .into_iter()
        .filter_map(|(heading, text)| Some((prefix_of(heading)?, text)))
        .collect();
    // Measured sections the old file lacks, in their order, to go in before the first
    // section this bench does not write.
    let (mut present, mut missing): (Vec<_>, Vec<_>) = fresh
        .drain(..)
        .partition(|(prefix, _)| old.iter().any(|(heading, _)| heading.starts_with(prefix)));
    let mut md = String::new();
    for (heading, text) in &old {
        if !heading.is_empty() && !generated(heading) {
            for (_, new) in missing.drain(..) {
                md += &new;
            }
        }
        match prefix_of(heading) {
            Some(prefix) => {
                if let Some(i) = present.iter().position(|(p, _)| *p == prefix) {
                    md += &present.remove(i).1;
                }
            }
            None => md += text,
        }
    }
    for (_, new) in missing {
        md += &new;
    }
    md
}

/// Adds the machine, the number of runs and the load average just after measuring to a
/// figure: other work on the machine (a build in another checkout) lowers the figures.
fn describe(figure: &mut Value, machine: &Value) {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok());
    if let Value::Object(map) = figure {
        map.insert("machine".into(), machine.clone());
        map.insert("runs".into(), json!(RUNS));
        map.insert("load_average_1m_after".into(), json!(load));
    }
}

/// The native baseline: the bench's own request bodies, parsed, validated and packed
/// in a release build of `crates/core/examples/ingest_baseline.rs` on one thread.
fn measure_native() -> Result<Value> {
    let dir = root().join("target/bench-ingest");
    std::fs::create_dir_all(&dir)?;
    let batches: Vec<u64> = load::BATCHES
        .into_iter()
        .chain([NATIVE_EXTRA_BATCH])
        .collect();
    step(&format!(
        "Ingest's per-event work natively, one thread (batches of {batches:?})"
    ));
    let mut bodies = Vec::new();
    for batch in batches {
        let path = dir.join(format!("body-{batch}.json"));
        std::fs::write(&path, load::body(0, batch))?;
        bodies.push(path);
    }
    let report = dir.join("native.json");
    proc::run(
        release_example("tally-core", "ingest_baseline")
            .arg(&report)
            .args(&bodies),
        "the ingest baseline program failed; see its output above",
    )?;
    Ok(serde_json::from_slice(&std::fs::read(&report)?)?)
}

/// A fresh local stack in `dir` (under the repository root), on free ports.
fn fresh_stack(dir: &str) -> Result<Stack> {
    let dir = root().join(dir);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Stack::start(Config {
        dir,
        ports: Ports::free()?,
        echo: false,
        env: Env::Production,
        query_vars: Vec::new(),
        shared_vars: Vec::new(),
    })
}

/// A bench project on the local stack: no rate limit, a write key and a read token.
struct BenchProject {
    slug: String,
    query: String,
    /// `Authorization` values.
    write: String,
    read: String,
    http: ureq::Agent,
}

impl BenchProject {
    /// Creates `slug` on `shard` (the least loaded when `None`).
    fn create(admin: &Admin, query: &str, slug: &str, shard: Option<u32>) -> Result<Self> {
        let (write, read) = admin.unlimited_project(slug, shard, "cargo xtask bench")?;
        Ok(Self {
            slug: slug.to_owned(),
            query: query.to_owned(),
            write: format!("Bearer {}", write.secret()?),
            read: format!("Bearer {}", read.secret()?),
            http: agent(Duration::from_secs(30)),
        })
    }

    /// The events of the last day the query API counts.
    fn visible(&self) -> Result<u64> {
        let mut response = self
            .http
            .get(&format!(
                "{}/v1/projects/{}/overview?days=1",
                self.query, self.slug
            ))
            .header("authorization", &self.read)
            .call()?;
        if response.status().as_u16() != 200 {
            bail!(
                "query answered {} to the bench's overview: {}",
                response.status(),
                response.body_mut().read_to_string().unwrap_or_default()
            );
        }
        let body: Value = response.body_mut().read_json()?;
        body["events"]
            .as_u64()
            .with_context(|| format!("the overview has no event count: {body}"))
    }

    /// Waits until the query API counts `events`; answers whether it did within `limit`
    /// and the last count seen.
    fn wait_for(&self, events: u64, limit: Duration) -> Result<(bool, u64)> {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.visible()?;
            if seen >= events {
                return Ok((true, seen));
            }
            if Instant::now() > deadline {
                return Ok((false, seen));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The pipeline end to end, once with every event on one data shard and once spread
/// over two, each on a fresh stack: [`measure_pipeline`] of [`PIPELINE_CONNECTIONS`]
/// connections sending to one project, then to two projects placed on shards 0 and 1.
fn measure_pipelines(machine: &Value) -> Result<Value> {
    let mut runs = Vec::new();
    for shards in [1u32, 2] {
        step(&format!(
            "Pipeline through local workerd on {shards} data shard(s) ({PIPELINE_EVENTS} \
             events, {PIPELINE_BATCH} per request, {PIPELINE_CONNECTIONS} connections)"
        ));
        let stack = fresh_stack("target/bench-stack")?;
        let admin = Admin::new(&stack.url("query"), &stack.admin_token()?);
        let projects = (0..shards)
            .map(|shard| {
                let slug = format!("{PROJECT}-{shard}");
                BenchProject::create(&admin, &stack.url("query"), &slug, Some(shard))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut figure = measure_pipeline(&projects, &stack.url("ingest"))?;
        figure["shards"] = json!(shards);
        describe(&mut figure, machine);
        println!(
            "{shards} shard(s): ingest {:.0} events/s (p50 {} ms, p99 {} ms), end to end {:.0} events/s, drain {} s",
            figure["ingest_events_per_s"].as_f64().unwrap_or(0.0),
            ms(&figure["request_ms_p50"]),
            ms(&figure["request_ms_p99"]),
            figure["end_to_end_events_per_s"].as_f64().unwrap_or(0.0),
            ms(&figure["drain_after_last_accept_s"]),
        );
        runs.push(figure);
    }
    Ok(json!({ "runs": runs }))
}

/// Sends [`PIPELINE_EVENTS`] in batches from [`PIPELINE_CONNECTIONS`] connections, batch
/// `b` to project `b % projects`, and waits until the query API counts them all.
fn measure_pipeline(projects: &[BenchProject], ingest: &str) -> Result<Value> {
    let batches = PIPELINE_EVENTS / PIPELINE_BATCH;
    let start = Instant::now();
    let senders: Vec<_> = (0..PIPELINE_CONNECTIONS)
        .map(|connection| {
            let ingest = ingest.to_owned();
            let keys: Vec<String> = projects.iter().map(|p| p.write.clone()).collect();
            std::thread::spawn(move || -> Result<Vec<f64>> {
                let http = agent(Duration::from_secs(30));
                let mut request_ms = Vec::new();
                for b in (connection..batches).step_by(PIPELINE_CONNECTIONS as usize) {
                    let body = load::body(b * PIPELINE_BATCH, PIPELINE_BATCH);
                    let sent = Instant::now();
                    let mut response = http
                        .post(&format!("{ingest}/v1/events"))
                        .header("authorization", &keys[(b % keys.len() as u64) as usize])
                        .header("content-type", "application/json")
                        .send(body)
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
                Ok(request_ms)
            })
        })
        .collect();
    let mut request_ms = Vec::new();
    for sender in senders {
        let sent = sender
            .join()
            .map_err(|_| anyhow::anyhow!("a sending thread panicked"))??;
        request_ms.extend(sent);
    }
    let accepted_s = start.elapsed().as_secs_f64();
    let accepted_at = Instant::now();
    for (i, project) in projects.iter().enumerate() {
        let its_batches = (i as u64..batches).step_by(projects.len()).count() as u64;
        let events = its_batches * PIPELINE_BATCH;
        let (drained, seen) = project.wait_for(events, Duration::from_secs(600))?;
        if !drained {
            bail!(
                "only {seen} of {events} events of {} visible after 10 minutes",
                project.slug
            );
        }
    }
    let total_s = start.elapsed().as_secs_f64();
    request_ms.sort_by(f64::total_cmp);
    Ok(json!({
        "events": PIPELINE_EVENTS,
        "batch": PIPELINE_BATCH,
        "connections": PIPELINE_CONNECTIONS,
        "ingest_events_per_s": PIPELINE_EVENTS as f64 / accepted_s,
        "request_ms_p50": load::percentile(&request_ms, 0.5),
        "request_ms_p99": load::percentile(&request_ms, 0.99),
        "end_to_end_events_per_s": PIPELINE_EVENTS as f64 / total_s,
        "drain_after_last_accept_s": accepted_at.elapsed().as_secs_f64(),
    }))
}

/// Ingest throughput at each batch size of [`load::BATCHES`], on a fresh stack. Before each batch size the stack drains what the last one queued, so every
/// batch size starts on an idle aggregator; the ratio to the native baseline is added.
fn measure_ingest(bench: &BenchProject, ingest: &str, native: &Value) -> Result<Value> {
    let ids = Arc::new(AtomicU64::new(0));
    let mut expected = 0;
    let mut batches = Vec::new();
    for batch in load::BATCHES {
        step(&format!(
            "Ingest through local workerd: batches of {batch}, {} connections, {} s",
            load::CONNECTIONS,
            load::SECONDS
        ));
        let mut figure = load::run(ingest, &bench.write, batch, &ids);
        expected += figure["events_accepted"].as_u64().unwrap_or(0);
        let native_eps = native["batches"]
            .as_array()
            .and_then(|all| all.iter().find(|b| b["batch"].as_u64() == Some(batch)))
            .and_then(|b| b["events_per_s"].as_f64());
        let eps = figure["events_per_s"].as_f64();
        figure["native_events_per_s"] = json!(native_eps);
        figure["ratio_to_native"] = json!(eps.zip(native_eps).map(|(w, n)| w / n));
        println!(
            "{} requests, {} events accepted, {:.0} events/s, p50 {} ms, p99 {} ms, {} errors, {} short",
            figure["requests"],
            figure["events_accepted"],
            eps.unwrap_or(0.0),
            ms(&figure["request_ms_p50"]),
            ms(&figure["request_ms_p99"]),
            figure["errors"],
            figure["short_accepts"],
        );
        let drain = Instant::now();
        let (drained, seen) = bench.wait_for(expected, Duration::from_secs(300))?;
        figure["drain_s"] = json!(drain.elapsed().as_secs_f64());
        figure["drained"] = json!(drained);
        if !drained {
            println!("only {seen} of {expected} events visible after 5 minutes; going on");
        }
        batches.push(figure);
    }
    Ok(json!({
        "connections": load::CONNECTIONS,
        "seconds_per_batch": load::SECONDS,
        "batches": batches,
    }))
}

/// The machine: processors available (as `nproc` counts them) and the CPU model.
fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let nproc = proc::output(&mut std::process::Command::new("nproc"))
        .ok()
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, |n| n.get() as u64));
    json!({
        "nproc": nproc,
        "cpu": cpu,
        "note": "loopback; the load generator, workerd and wrangler share the processors",
    })
}

/// A number with one decimal, or `?`.
fn ms(v: &Value) -> String {
    v.as_f64().map_or("?".into(), |x| format!("{x:.1}"))
}

/// A rate as a whole number, its thousands set apart by spaces, or `?`.
fn rate(v: &Value) -> String {
    let Some(x) = v.as_f64() else {
        return "?".into();
    };
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A positive number with two significant digits (`0.00022`, `0.016`, `1.3`).
fn significant(x: f64) -> String {
    if !x.is_finite() || x <= 0.0 {
        return format!("{x}");
    }
    let decimals = (1 - x.log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

/// The line under each heading: where and how often the figure was measured.
fn provenance(figure: &Value) -> String {
    let m = &figure["machine"];
    let load = figure["load_average_1m_after"]
        .as_f64()
        .map_or(String::new(), |l| {
            format!("; load average {l:.1} just after")
        });
    format!(
        "Machine: nproc {}, {}; {} run{load}.\n\n",
        m["nproc"],
        m["cpu"].as_str().unwrap_or("?"),
        figure["runs"]
    )
}

fn markdown(r: &Value) -> String {
    let mut md = String::from("# Tally benchmark results\n\n");
    md += &format!(
        "Everything runs on one machine ({}).\n\n",
        r["machine"]["note"].as_str().unwrap_or("")
    );
    // Sections not measured yet (after a first `cargo xtask bench query`) are left out.
    if r.get("ingest").is_some() {
        md += &ingest_markdown(&r["ingest"], &r["native"]);
    }
    if r.get("pipeline").is_some() {
        md += &pipeline_markdown(&r["pipeline"]);
    }
    if r.get("storage").is_some() {
        md += &storage_markdown(&r["storage"]);
    }
    if r.get("query").is_some() {
        md += "\n";
        md += &query::markdown(&r["query"]);
    }
    if let Some(bundles) = r["bundles"].as_array() {
        md += &bundles_markdown(bundles);
    }
    md
}

fn bundles_markdown(bundles: &[Value]) -> String {
    let mut md = String::from(
        "\n## Bundles\n\nEach worker's upload (`index.js` and `index_bg.wasm`, release \
         build, wasm-opt `-Oz`), built with the figures above; Workers' limit is 3 MiB gzip \
         on the free plan and 10 MiB on paid plans.\n\n\
         | worker | raw KiB | gzip KiB |\n|---|---:|---:|\n",
    );
    for b in bundles {
        let kib = |key: &str| {
            b[key]
                .as_f64()
                .map_or("—".to_owned(), |n| format!("{:.1}", n / 1024.0))
        };
        md += &format!(
            "| {} | {} | {} |\n",
            b["worker"].as_str().unwrap_or("?"),
            kib("raw_bytes"),
            kib("gzip_bytes")
        );
    }
    md
}

fn ingest_markdown(ingest: &Value, native: &Value) -> String {
    let mut md = format!(
        "## Ingest through local workerd, by batch size\n\n{}\
         {} connections posting to `POST /v1/events` for {} s per batch size; events/s \
         counts events accepted (202). The native baseline does ingest's per-event work \
         (parse the same body, decode each `RawEvent`, `validate`, `queue::pack`) in a \
         release build on one thread, for {} s per batch size ({}); ratio = workerd ÷ native.\n\n\
         | batch size | requests | events/s | p50 ms | p99 ms | errors | native events/s | ratio |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        provenance(ingest),
        ingest["connections"],
        ingest["seconds_per_batch"],
        native["seconds_per_batch"],
        match native["runs"].as_u64() {
            Some(1) => "1 run".to_owned(),
            runs => format!("{} runs", runs.unwrap_or(0)),
        },
    );
    let none = Vec::new();
    let natives = native["batches"].as_array().unwrap_or(&none);
    for b in ingest["batches"].as_array().unwrap_or(&none) {
        let errors = b["errors"].as_u64().unwrap_or(0) + b["short_accepts"].as_u64().unwrap_or(0);
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            b["batch"],
            b["requests"],
            rate(&b["events_per_s"]),
            ms(&b["request_ms_p50"]),
            ms(&b["request_ms_p99"]),
            errors,
            rate(&b["native_events_per_s"]),
            b["ratio_to_native"]
                .as_f64()
                .map_or("?".into(), significant),
        );
    }
    let measured: Vec<&Value> = ingest["batches"]
        .as_array()
        .unwrap_or(&none)
        .iter()
        .map(|b| &b["batch"])
        .collect();
    for n in natives.iter().filter(|n| !measured.contains(&&n["batch"])) {
        md += &format!(
            "| {} | — | — | — | — | — | {} | — |\n",
            n["batch"],
            rate(&n["events_per_s"])
        );
    }
    md += "\nErrors count answers other than 202, requests without an answer and 202s \
           accepting fewer events than sent; latency is over every answered request. \
           Before each batch size the stack drains what the previous one queued \
           (drain times in results.json); the aggregator still consumes events during \
           each run.\n\n";
    for b in ingest["batches"].as_array().unwrap_or(&none) {
        if let Some(samples) = b["unexpected_answers"].as_array()
            && !samples.is_empty()
        {
            md += &format!("Unexpected answers at batch size {}:\n\n", b["batch"]);
            for s in samples {
                md += &format!("- `{}`\n", s.as_str().unwrap_or(""));
            }
            md += "\n";
        }
    }
    md
}

/// A row of a table of runs: its label and how a run's cell reads.
type FigureRow<'a> = (&'a str, &'a dyn Fn(&Value) -> String);

fn pipeline_markdown(p: &Value) -> String {
    let Some(runs) = p["runs"].as_array().filter(|r| !r.is_empty()) else {
        return String::new();
    };
    let first = &runs[0];
    let mut md = format!(
        "## Pipeline through local workerd\n\n{}\
         {} events sent in requests of {} from {} connections at once, on a fresh stack for \
         each run: to one project on data shard 0, then to two projects on shards 0 and 1 \
         (alternate requests). The rows written per event do not depend on the shards (a \
         project's events commit on its own shard with the same statements): see the storage \
         figures.\n\n| figure |",
        provenance(first),
        rate(&first["events"]),
        first["batch"],
        first["connections"],
    );
    for run in runs {
        md += &format!(" {} shard(s) |", run["shards"]);
    }
    md += "\n|---|";
    md += &"---:|".repeat(runs.len());
    md += "\n";
    let rows: [FigureRow; 4] = [
        ("ingest accepted, events/s", &|r| {
            rate(&r["ingest_events_per_s"])
        }),
        ("request latency p50 / p99, ms", &|r| {
            format!(
                "{} / {}",
                ms(&r["request_ms_p50"]),
                ms(&r["request_ms_p99"])
            )
        }),
        ("ingest → visible in the query API, events/s", &|r| {
            rate(&r["end_to_end_events_per_s"])
        }),
        ("drain after the last accepted request, s", &|r| {
            ms(&r["drain_after_last_accept_s"])
        }),
    ];
    for (label, cell) in rows {
        md += &format!("| {label} |");
        for run in runs {
            md += &format!(" {} |", cell(run));
        }
        md += "\n";
    }
    md + "\n"
}

fn storage_markdown(s: &Value) -> String {
    format!(
        "## Storage (SQLite, the engine D1 runs; {} events in one day)\n\n{}\
         | figure | value |\n|---|---|\n\
         | bytes per raw event, with its indexes | {} |\n\
         | rows written per event (raw row, index entries, rollup rows and bookkeeping per batch of 1000) | {} |\n\
         | pipeline events/s, native | {} |\n\
         | roll a day from its hours, s | {} |\n\
         | rebuild a day's hours from raw events, s | {} |\n\
         | overview of the day from rollups, ms | {} |\n\
         | the same from a raw scan, ms | {} |\n",
        s["events"],
        provenance(s),
        ms(&s["bytes_per_raw_event"]),
        s["rows_written_per_event"]
            .as_f64()
            .map_or("?".into(), |x| format!("{x:.2}")),
        ms(&s["pipeline_events_per_s_native"]),
        s["roll_day_from_hours_s"]
            .as_f64()
            .map_or("?".into(), |x| format!("{x:.3}")),
        ms(&s["rebuild_day_from_raw_s"]),
        ms(&s["overview_of_a_day_ms"]["rollups"]),
        ms(&s["overview_of_a_day_ms"]["raw_scan"]),
    ) + &mixed_markdown(&s["mixed_workload"])
        + &cardinality_markdown(&s["cardinality"])
        + &purge_markdown(&s["purge"])
}

/// A number with two decimals, or `?`.
fn two(v: &Value) -> String {
    v.as_f64().map_or("?".into(), |x| format!("{x:.2}"))
}

/// A whole number, or `?`.
fn whole(v: &Value) -> String {
    v.as_f64().map_or("?".into(), |x| format!("{x:.0}"))
}

fn mixed_markdown(m: &Value) -> String {
    if m.is_null() {
        return String::new();
    }
    let mut md = format!(
        "\n### Rows written per event, mixed workload\n\n\
         {} events of `tally_core::workload` (API requests, page views, CDN images, \
         installs, funnel steps, play/stop sessions) over a day, stored in batches of {} \
         as the consumer stores them, with no alert rule; table rows as SQLite counts \
         them, plus every index entry written (counted from the indexes' b-tree cells \
         at the end: nothing is deleted meanwhile and no update sets an indexed column), \
         as D1 bills them.\n\n\
         | rows per event | value |\n|---|---:|\n",
        m["events"], m["batch"]
    );
    for (what, key) in [
        ("raw row", "raw_rows"),
        ("its time index entry", "raw_index_rows"),
        (
            "its sample index entry (filters' sampled reads)",
            "raw_sample_index_rows",
        ),
        (
            "its name index entry (funnels; events with a user)",
            "raw_name_index_rows",
        ),
        ("session marks", "session_marks"),
        ("hour rollup rows", "hour_rows"),
        (
            "minute rollup rows (realtime; alert rules' sources)",
            "minute_rows",
        ),
        (
            "bookkeeping (dirty days, meta, error messages)",
            "bookkeeping_rows",
        ),
        ("index entries of new rollup rows", "rollup_index_entries"),
        ("**total**", "total_billed"),
    ] {
        md += &format!("| {what} | {} |\n", two(&m[key]));
    }
    md += &format!(
        "\nOf the rollup rows written, {} per event were new rows (each adding an entry \
         to each rollups index it is in); the rest updated rows of the same hour or \
         minute. Entries per event by index: {}.\n",
        two(&m["rollup_rows_inserted"]),
        m["index_entries"]
            .as_object()
            .map(|entries| {
                entries
                    .iter()
                    .map(|(index, n)| format!("`{index}` {}", two(n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "?".into())
    );
    md
}

fn cardinality_markdown(c: &Value) -> String {
    if c.is_null() {
        return String::new();
    }
    let mut md = format!(
        "\n### The bound on a dimension's values: requests of unique values\n\n\
         Requests of {} events into one hour, each event with a route, campaign and item \
         no other event has (what one write key may send in one request): rollup rows and \
         all table rows each request wrote. \"Without the bound\": every value its own \
         hour and minute row, computed from the same events. The first request fills the \
         hour's 1,000 values of each dimension; minute rows keep 100 values a minute.\n\n\
         | request | rollup rows | table rows |\n|---|---:|---:|\n",
        c["events_per_request"],
    );
    for (scenario, what, labels) in [
        (
            "one_minute",
            "events within one minute (as ingest stamps events that bring no time)",
            [
                (0, "the first, into an empty hour"),
                (1, "the next, in the same minute"),
                (2, "the next, in the next minute"),
            ],
        ),
        (
            "spread_over_the_hour",
            "events spread over the hour (backdated)",
            [
                (0, "the first, into an empty hour"),
                (1, "the next, once the hour holds 1,000 values"),
                (7, "the eighth, once every minute holds 100 values"),
            ],
        ),
    ] {
        let s = &c[scenario];
        md += &format!(
            "| *{what}*: without the bound | {} | {} |\n",
            whole(&s["unbounded_rollup_rows"]),
            whole(&s["unbounded_table_rows"]),
        );
        for (i, label) in labels {
            let r = &s["requests"][i];
            md += &format!(
                "| {label} | {} | {} |\n",
                whole(&r["rollup_rows"]),
                whole(&r["table_rows"])
            );
        }
    }
    md
}

fn purge_markdown(p: &Value) -> String {
    if p.is_null() {
        return String::new();
    }
    let (c, h) = (&p["catch_up"], &p["hourly"]);
    format!(
        "\n### Retention: a project of {} events a day, kept {} day\n\n\
         Two days arrive with no purge (a day's backlog, as when retention is lowered); \
         the first hourly run ({} statements of chunks of {} rows at most) catches up; \
         then a third day arrives hour by hour, each hour followed by the hourly run, as \
         the cron runs it. Rates are raw events deleted per second of purging (their \
         session marks deleted too).\n\n\
         | figure | value |\n|---|---|\n\
         | catch-up run: raw events deleted, statements | {} / {} |\n\
         | catch-up run: s, raw events/s | {} / {} |\n\
         | catch-up run: expired events left after it | {} |\n\
         | hourly runs over the third day: runs, raw events deleted | {} / {} |\n\
         | hourly runs: raw events/s | {} |\n\
         | hourly runs: most expired events left after a run; after the last | {} / {} |\n\
         | expired events of the first two days left at the end | {} |\n",
        p["events_per_day"],
        p["retention_days"],
        p["statements_per_run"],
        p["chunk"],
        c["raw_events_deleted"],
        c["statements"],
        c["s"].as_f64().map_or("?".into(), |x| format!("{x:.2}")),
        rate(&c["raw_events_per_s"]),
        c["backlog_after"],
        h["runs"],
        h["raw_events_deleted"],
        rate(&h["raw_events_per_s"]),
        h["most_rows_left_after_a_run"],
        h["backlog_after"],
        p["expired_left_of_the_first_two_days"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ratios_keep_two_significant_digits() {
        assert_eq!(significant(0.000_219), "0.00022");
        assert_eq!(significant(0.015_7), "0.016");
        assert_eq!(significant(1.34), "1.3");
        assert_eq!(significant(25.0), "25");
        assert_eq!(significant(0.0), "0");
    }

    #[test]
    fn query_volumes_default_and_parse() {
        assert_eq!(volumes_of(&[]).unwrap(), query::VOLUMES);
        let args = ["100_000".to_owned(), "5000".to_owned()];
        assert_eq!(volumes_of(&args).unwrap(), [100_000, 5000]);
        assert!(volumes_of(&["lots".to_owned()]).is_err());
        assert!(volumes_of(&["0".to_owned()]).is_err());
    }

    #[test]
    fn sections_not_measured_are_left_out() {
        let md = markdown(&json!({"machine": {"note": "loopback"}}));
        assert!(!md.contains("## Bundles"));
        let with = markdown(&json!({"machine": {"note": "x"}, "bundles": [
            {"worker": "ingest", "raw_bytes": 566_886, "gzip_bytes": 219_955}
        ]}));
        assert!(with.contains("| ingest | 553.6 | 214.8 |"), "{with}");
        assert_eq!(
            md,
            "# Tally benchmark results\n\nEverything runs on one machine (loopback).\n\n"
        );
    }

    #[test]
    fn a_run_replaces_only_the_sections_it_measured_and_keeps_the_rest_in_place() {
        let old = "# Tally benchmark results\n\nEverything runs on one machine (x).\n\n\
                   ## Queries through local workerd\n\nold figures\n\n\
                   ## Storage (by hand)\n\nkept storage\n\n\
                   ## HLL error by cardinality (core, precision 12)\n\n| 10 | 0.00% |\n\n\
                   ## Bundles\n\nold bundles\n\n\
                   ## Notes by hand\n\nkept too\n";
        let fresh = "# Tally benchmark results\n\nnew header\n\n\
                     ## Pipeline through local workerd\n\nnew pipeline\n\n\
                     ## Storage (fresh)\n\nregenerated storage\n\n\
                     ## Queries through local workerd\n\nnew figures\n\n\
                     ## Bundles\n\nnew bundles\n";
        let measured = [
            "## Pipeline through local workerd",
            "## Queries through local workerd",
            "## Bundles",
        ];
        let md = with_sections_replaced(old, fresh, &measured);
        assert_eq!(
            md,
            "# Tally benchmark results\n\nEverything runs on one machine (x).\n\n\
             ## Queries through local workerd\n\nnew figures\n\n\
             ## Storage (by hand)\n\nkept storage\n\n\
             ## Pipeline through local workerd\n\nnew pipeline\n\n\
             ## HLL error by cardinality (core, precision 12)\n\n| 10 | 0.00% |\n\n\
             ## Bundles\n\nnew bundles\n\
             ## Notes by hand\n\nkept too\n"
        );
        // A second run of the same leaves the file as it is.
        assert_eq!(with_sections_replaced(&md, fresh, &measured), md);
        // A first run writes everything.
        assert_eq!(with_sections_replaced("", fresh, &measured), fresh);
        // What a run measures is replaced, whatever the old text said.
        let generated = markdown(&json!({"machine": {"note": "x"}, "bundles": []}));
        assert!(
            !with_sections_replaced(old, &generated, &GENERATED_SECTIONS).contains("old figures")
        );
    }

    #[test]
    fn storage_figures_of_rows_bounds_and_purges_are_tabled() {
        let storage = json!({"events": 10, "machine": {}, "runs": 1,
            "mixed_workload": {"events": 100, "batch": 10, "minute_rows": 1.8,
                "total_billed": 4.29, "index_entries": {"raw_events_by_time": 1.0}},
            "cardinality": {"events_per_request": 1000, "one_minute": {
                "unbounded_rollup_rows": 8006, "unbounded_table_rows": 9008,
                "requests": [{"rollup_rows": 4410, "table_rows": 5413},
                             {"rollup_rows": 14, "table_rows": 1016}]}},
            "purge": {"events_per_day": 100_000, "retention_days": 1,
                "catch_up": {"raw_events_deleted": 100_000, "statements": 79},
                "hourly": {"raw_events_per_s": 171_732.4}}});
        let md = storage_markdown(&storage);
        assert!(
            md.contains("| minute rollup rows (realtime; alert rules' sources) | 1.80 |"),
            "{md}"
        );
        assert!(md.contains("| **total** | 4.29 |"), "{md}");
        assert!(md.contains("`raw_events_by_time` 1.00"), "{md}");
        assert!(md.contains("without the bound | 8006 | 9008 |"), "{md}");
        assert!(
            md.contains("| the next, in the same minute | 14 | 1016 |"),
            "{md}"
        );
        assert!(
            md.contains("| the next, in the next minute | ? | ? |"),
            "{md}"
        );
        assert!(md.contains("statements | 100000 / 79 |"), "{md}");
        assert!(
            md.contains("| hourly runs: raw events/s | 171 732 |"),
            "{md}"
        );
        assert!(!md.contains("\n         "), "no indented lines: {md}");
        // Figures of an older run, without these sections, leave them out.
        let old = storage_markdown(&json!({"events": 10}));
        assert!(!old.contains("###"), "{old}");
    }

    #[test]
    fn rates_are_grouped_by_thousands() {
        assert_eq!(rate(&json!(292_277.4)), "292 277");
        assert_eq!(rate(&json!(64.2)), "64");
        assert_eq!(rate(&json!(1000.0)), "1 000");
        assert_eq!(rate(&Value::Null), "?");
    }
}
