//! The query section of `cargo xtask bench` (alone: `cargo xtask bench query`): read
//! latency per endpoint through local workerd, and the rows D1 read for each answer
//! (the query worker's `x-tally-rows-read` header), at each volume of raw events.
//!
//! For each volume it makes a fresh stack, creates the project and a read token through
//! the admin API, stops the stack, writes the volume's events straight into local D1's
//! SQLite file with the aggregator's own pipeline (`crates/storage/examples/seed.rs`),
//! starts the stack again on the same state and sends each endpoint [`WARMUP`] + [`RUNS`]
//! sequential requests over loopback. Nothing sends `If-None-Match`; timeseries,
//! breakdowns and the dashboard page, which the worker keeps in KV, are measured twice:
//! with a distinct `to` per request (hours ahead of now, where no data is, so every
//! request computes its answer over the same events and misses KV) and with one
//! repeated URL (KV hits).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tally_core::time::{DAY_MS, HOUR_MS, Interval, date_label, date_of, format_ms};
use tally_core::workload::FUNNEL;

use crate::admin::client::{Admin, KeyKind, Settings};
use crate::bench::load::percentile;
use crate::deploy::wrangler_config::Env;
use crate::stack::bundle::rel;
use crate::stack::proc;
use crate::stack::tools::{cargo, root};
use crate::stack::{self, Config, Ports, Stack, agent};
use crate::step;

/// The volumes of raw events measured, in order; ratios are the last over the first.
pub const VOLUMES: [u64; 2] = [100_000, 1_000_000];
/// The days the events are spread over, ending now; queries ask for the last [`RANGE_DAYS`].
const DAYS: u32 = 60;
/// The range of every query, in days (`days=30`: today and the 29 days before).
const RANGE_DAYS: i64 = 30;
/// Measured requests per endpoint, one after the other.
pub const RUNS: usize = 40;
/// Requests per endpoint before measuring (a fresh isolate, cold page caches).
pub const WARMUP: usize = 5;
// KV misses need a distinct `to` per request, and the API takes one at most two days ahead.
const _: () = assert!(WARMUP + RUNS <= 47);
/// Timed exports per volume, of [`EXPORT_DAYS`] days each.
const EXPORT_RUNS: usize = 3;
const EXPORT_DAYS: i64 = 7;
/// The project the bench seeds.
const PROJECT: &str = "bench";

/// How an endpoint's requests meet the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kv {
    /// The endpoint does not use KV.
    None,
    /// Every request asks a question not asked before: computed, then stored in KV.
    Miss,
    /// The same question every time: answered from KV after the first.
    Hit,
}

impl Kv {
    fn name(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Miss => Some("miss"),
            Self::Hit => Some("hit"),
        }
    }
}

/// An endpoint measured: its label, path (with `{range}` where the range goes) and KV use.
struct Endpoint {
    name: &'static str,
    path: String,
    kv: Kv,
}

/// The endpoints measured, with `{range}` for the range parameters.
fn endpoints() -> Vec<Endpoint> {
    let p = format!("/v1/projects/{PROJECT}");
    let e = |name, path: String, kv| Endpoint { name, path, kv };
    let mut list = vec![e("overview", format!("{p}/overview?{{range}}"), Kv::None)];
    for (name, path) in [
        ("timeseries, day", "timeseries?interval=day&{range}"),
        ("breakdown, route", "breakdown/route?{range}"),
        ("breakdown, country", "breakdown/country?{range}"),
    ] {
        list.push(e(name, format!("{p}/{path}"), Kv::Miss));
        list.push(e(name, format!("{p}/{path}"), Kv::Hit));
    }
    list.extend([
        e("errors", format!("{p}/errors?{{range}}"), Kv::None),
        e("installs", format!("{p}/installs?{{range}}"), Kv::None),
        e("metrics", format!("{p}/metrics?{{range}}"), Kv::None),
        e("sessions", format!("{p}/sessions?{{range}}"), Kv::None),
        e(
            "funnels",
            format!("{p}/funnels?steps={}&{{range}}", FUNNEL.join(",")),
            Kv::None,
        ),
        e(
            "plugin overview (alias)",
            format!("/api/plugins/{PROJECT}/analytics/overview?{{range}}"),
            Kv::None,
        ),
        e(
            "CDN overview (alias)",
            "/v1/analytics/overview?{range}".into(),
            Kv::None,
        ),
    ]);
    // The page keeps what it computed in KV for a minute: measured asked anew and asked
    // again, as the breakdowns.
    for kv in [Kv::Miss, Kv::Hit] {
        list.push(e(
            "dashboard page",
            format!("/dashboard/{PROJECT}?{{range}}"),
            kv,
        ));
    }
    list
}

/// The range parameters of request number `n` of an endpoint: `days=30`, or for KV
/// misses the same start as a date and a `to` `n` hours after `now` (whole hours
/// ahead, up to 47: the API takes a `to` up to two days ahead).
fn range_param(kv: Kv, now_ms: i64, n: usize) -> String {
    match kv {
        Kv::None | Kv::Hit => format!("days={RANGE_DAYS}"),
        Kv::Miss => {
            let from = Interval::Day.floor(now_ms) - (RANGE_DAYS - 1) * DAY_MS;
            let to = Interval::Hour.floor(now_ms) + (n as i64 + 1) * HOUR_MS;
            format!("from={}&to={}", date_label(date_of(from)), format_ms(to))
        }
    }
}

/// Measures every volume in `volumes`.
pub fn measure(volumes: &[u64], reuse: bool, machine: &Value) -> Result<Value> {
    let mut measured = Vec::new();
    for &events in volumes {
        measured.push(measure_volume(events, reuse)?);
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok());
    Ok(json!({
        "machine": machine,
        "runs": RUNS,
        "warmup": WARMUP,
        "days": DAYS,
        "range_days": RANGE_DAYS,
        "load_average_1m_after": load,
        "volumes": measured,
    }))
}

/// Seeds one volume on a fresh stack and measures every endpoint; with `reuse`, measures
/// on the state the last run of this volume seeded (`seed.json` says it finished), which
/// saves seeding again (20 minutes at 10M) when only the code changed. The seeded events
/// end at the time they were seeded, so a reused state's last days hold fewer of them.
fn measure_volume(events: u64, reuse: bool) -> Result<Value> {
    let dir = root().join(format!("target/bench-query-{events}"));
    let seeded = dir.join("seed.json");
    if reuse && seeded.exists() {
        step(&format!(
            "Query bench at {} raw events, on the state seeded before in {}",
            label(events),
            rel(&dir)
        ));
        let mut seed: Value = serde_json::from_slice(&std::fs::read(&seeded)?)?;
        seed["reused"] = json!(true);
        // The answers the last run kept in KV would be hits where this run measures
        // misses: only D1 is reused.
        let kv = dir.join("state/v3/kv");
        if kv.exists() {
            std::fs::remove_dir_all(&kv).with_context(|| format!("clearing {}", kv.display()))?;
        }
        let stack = Stack::start(config_of(&dir)?)?;
        let admin = Admin::new(&stack.url("query"), &stack.admin_token()?);
        let token = admin.create_key(PROJECT, KeyKind::Read, Some("cargo xtask bench query"))?;
        let auth = format!("Bearer {}", token.secret()?);
        return measure_seeded(&stack, &auth, events, seed);
    }
    if reuse {
        bail!(
            "{} holds no seeded state to reuse: run `cargo xtask bench query {events}` first",
            rel(&dir)
        );
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    step(&format!(
        "Query bench at {} raw events: a fresh stack, its project and read token",
        label(events)
    ));
    let mut stack = Stack::start(config_of(&dir)?)?;
    let admin = Admin::new(&stack.url("query"), &stack.admin_token()?);
    // On shard 0, the control database, whose file the seed program finds by the
    // project's keys.
    let on_shard_0 = Settings {
        shard: Some(0),
        ..Settings::default()
    };
    admin
        .create_project(PROJECT, &on_shard_0)
        .context("creating the bench project")?;
    let token = admin.create_key(PROJECT, KeyKind::Read, Some("cargo xtask bench query"))?;
    let auth = format!("Bearer {}", token.secret()?);
    stack.stop();

    let seed = seed(&dir, events)?;

    step("Restarting the stack on the seeded state");
    let stack = Stack::start(config_of(&dir)?)?;
    measure_seeded(&stack, &auth, events, seed)
}

/// The bench's stack on `dir`, on free ports.
fn config_of(dir: &Path) -> Result<Config> {
    Ok(Config {
        dir: dir.to_owned(),
        ports: Ports::free()?,
        echo: false,
        env: Env::Production,
        query_vars: Vec::new(),
        shared_vars: Vec::new(),
    })
}

/// Every endpoint's figures on a running stack whose project holds `events` seeded ones.
fn measure_seeded(stack: &Stack, auth: &str, events: u64, seed: Value) -> Result<Value> {
    let base = stack.url("query");
    let http = agent(Duration::from_secs(120));
    check_seeded(&http, &base, auth, events)?;

    let now = now_ms();
    let mut results = Vec::new();
    for endpoint in endpoints() {
        let figure = measure_endpoint(&http, &base, auth, &endpoint, now)?;
        if let Some(refused) = figure["refused"].as_str() {
            println!("{:<28} refused: {refused}", endpoint.name);
            results.push(figure);
            continue;
        }
        println!(
            "{:<28} {:>4}  p50 {:>8} ms  p95 {:>8} ms  rows read {}",
            format!("{}{}", endpoint.name, kv_suffix(endpoint.kv)),
            figure["runs"],
            ms(&figure["p50_ms"]),
            ms(&figure["p95_ms"]),
            figure["rows_read"]
        );
        results.push(figure);
    }
    let export = measure_export(&http, &base, auth)?;
    Ok(json!({
        "events": events,
        "seed": seed,
        "endpoints": results,
        "export": export,
    }))
}

/// Writes the volume's events into the stopped stack's local D1 file; answers what the
/// seed program reported (time taken, rows written).
fn seed(dir: &Path, events: u64) -> Result<Value> {
    let files = local_d1_files(&dir.join("state"))?;
    for file in &files {
        let holders = holders(file);
        if !holders.is_empty() {
            bail!(
                "processes {holders:?} still have {} open; stop them before seeding",
                rel(file)
            );
        }
    }
    // The seed program picks the control database (shard 0) among them.
    let db = dir.join("state/v3/d1/miniflare-D1DatabaseObject");
    step(&format!(
        "Seeding {} events over {DAYS} days into {} (the aggregator's pipeline, natively)",
        label(events),
        rel(&db)
    ));
    let report = dir.join("seed.json");
    let started = Instant::now();
    proc::run(
        cargo()
            .args(["run", "--release", "-q", "-p", "tally-storage"])
            .args(["--example", "seed", "--"])
            .arg(&db)
            .args([
                PROJECT.to_owned(),
                events.to_string(),
                DAYS.to_string(),
                now_ms().to_string(),
            ])
            .arg(&report)
            .env("TALLY_ID_SECRET", stack::id_secret(dir)?),
        "the seed program failed; see its output above",
    )?;
    let mut figure: Value = serde_json::from_slice(&std::fs::read(&report)?)?;
    figure["wall_s_with_build"] = json!(started.elapsed().as_secs_f64());
    Ok(figure)
}

/// The SQLite files of the local D1 databases under a stack's state directory: the
/// control database (also shard 0) and the other data shards.
fn local_d1_files(state: &Path) -> Result<Vec<PathBuf>> {
    let dir = state.join("v3/d1/miniflare-D1DatabaseObject");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "sqlite")
                && p.file_name().is_some_and(|n| n != "metadata.sqlite")
        })
        .collect();
    if files.is_empty() {
        bail!(
            "found no D1 database file in {}\n  hint: the layout of wrangler's local state \
             may have changed",
            dir.display()
        );
    }
    Ok(files)
}

/// The processes (that this user may inspect) holding `path` or its write-ahead log open.
fn holders(path: &Path) -> Vec<u32> {
    let Ok(target) = path.canonicalize() else {
        return Vec::new();
    };
    let wal = PathBuf::from(format!("{}-wal", target.display()));
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let open = fds
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|link| link == target || link == wal);
        if open {
            pids.push(pid);
        }
    }
    pids
}

/// Checks that the query API counts every seeded event: the workers read what was written.
fn check_seeded(http: &ureq::Agent, base: &str, auth: &str, events: u64) -> Result<()> {
    let url = format!(
        "{base}/v1/projects/{PROJECT}/overview?days={}",
        i64::from(DAYS) + 2
    );
    let answer = get(http, &url, auth)?;
    let seen = serde_json::from_str::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["events"].as_u64());
    if answer.status != 200 || seen != Some(events) {
        bail!(
            "the seeded stack's overview counts {seen:?} events, not {events} ({}: {})",
            answer.status,
            answer.body.chars().take(300).collect::<String>()
        );
    }
    println!("the query API counts all {events} seeded events");
    Ok(())
}

/// One answer: status, the headers the bench reads, body, and the time to read it all.
struct Answer {
    status: u16,
    rows_read: Option<u64>,
    cache: Option<String>,
    body: String,
    ms: f64,
}

fn get(http: &ureq::Agent, url: &str, auth: &str) -> Result<Answer> {
    let sent = Instant::now();
    let mut response = http
        .get(url)
        .header("authorization", auth)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .with_context(|| format!("reading the answer to GET {url}"))?;
    let ms = sent.elapsed().as_secs_f64() * 1000.0;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Ok(Answer {
        status: response.status().as_u16(),
        rows_read: header("x-tally-rows-read").and_then(|v| v.parse().ok()),
        cache: header("x-tally-cache"),
        body,
        ms,
    })
}

/// [`WARMUP`] + [`RUNS`] requests to one endpoint; the figures of the last [`RUNS`].
fn measure_endpoint(
    http: &ureq::Agent,
    base: &str,
    auth: &str,
    endpoint: &Endpoint,
    now: i64,
) -> Result<Value> {
    let mut samples = Vec::new();
    let mut example = String::new();
    for n in 0..WARMUP + RUNS {
        let path = endpoint
            .path
            .replace("{range}", &range_param(endpoint.kv, now, n));
        let answer = get(http, &format!("{base}{path}"), auth)?;
        // A documented refusal at this volume (a funnel over more step events than it
        // reads at once) is a figure of its own, not a failed bench.
        let code = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|b| b["error"]["code"].as_str().map(str::to_owned));
        if (400..500).contains(&answer.status)
            && let Some(code) = code
        {
            return Ok(json!({
                "endpoint": endpoint.name,
                "kv": endpoint.kv.name(),
                "path": path,
                "refused": format!("{} {code}", answer.status),
            }));
        }
        if answer.status != 200 {
            bail!(
                "GET {path} answered {}: {}",
                answer.status,
                answer.body.chars().take(300).collect::<String>()
            );
        }
        if n >= WARMUP {
            samples.push(Sample {
                ms: answer.ms,
                rows_read: answer.rows_read,
                bytes: answer.body.len(),
                cache: answer.cache,
            });
        }
        example = path;
    }
    let mut figure = summary(&samples);
    if let Some(expected) = endpoint.kv.name()
        && figure["kv_answers"][expected].as_u64() != Some(RUNS as u64)
    {
        bail!(
            "{example}: expected all {RUNS} answers to be KV {expected}s (x-tally-cache), got {}",
            figure["kv_answers"]
        );
    }
    figure["endpoint"] = json!(endpoint.name);
    figure["kv"] = json!(endpoint.kv.name());
    figure["path"] = json!(example);
    Ok(figure)
}

/// One measured request.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    ms: f64,
    rows_read: Option<u64>,
    bytes: usize,
    /// The `x-tally-cache` header, if any.
    cache: Option<String>,
}

/// Latency percentiles, the median rows read (and their range, should they vary), the
/// median body size and the KV answers seen.
fn summary(samples: &[Sample]) -> Value {
    let mut ms: Vec<f64> = samples.iter().map(|s| s.ms).collect();
    ms.sort_by(f64::total_cmp);
    let mut rows: Vec<u64> = samples.iter().filter_map(|s| s.rows_read).collect();
    rows.sort_unstable();
    let mut bytes: Vec<usize> = samples.iter().map(|s| s.bytes).collect();
    bytes.sort_unstable();
    let mut cache = serde_json::Map::new();
    for s in samples {
        if let Some(c) = &s.cache {
            let n = cache.get(c).and_then(Value::as_u64).unwrap_or(0);
            cache.insert(c.clone(), json!(n + 1));
        }
    }
    json!({
        "runs": samples.len(),
        "p50_ms": percentile(&ms, 0.5),
        "p95_ms": percentile(&ms, 0.95),
        "max_ms": ms.last(),
        "rows_read": rows.get(rows.len().saturating_sub(1) / 2),
        "rows_read_min": rows.first(),
        "rows_read_max": rows.last(),
        "without_rows_read": samples.len() - rows.len(),
        "body_bytes": bytes.get(bytes.len().saturating_sub(1) / 2),
        "kv_answers": cache,
    })
}

/// [`EXPORT_RUNS`] streamed NDJSON exports of the last [`EXPORT_DAYS`] days, each timed
/// from sending to its last byte.
fn measure_export(http: &ureq::Agent, base: &str, auth: &str) -> Result<Value> {
    let url = format!("{base}/v1/projects/{PROJECT}/export?days={EXPORT_DAYS}");
    let mut runs = Vec::new();
    for _ in 0..EXPORT_RUNS {
        let answer = get(http, &url, auth)?;
        if answer.status != 200 {
            bail!("the export answered {}", answer.status);
        }
        let events = answer.body.lines().filter(|l| !l.is_empty()).count();
        runs.push(json!({
            "events": events,
            "seconds": answer.ms / 1000.0,
            "events_per_s": events as f64 / (answer.ms / 1000.0),
            "bytes": answer.body.len(),
            "rows_read_first_page": answer.rows_read,
        }));
    }
    let mut rates: Vec<f64> = runs
        .iter()
        .filter_map(|r| r["events_per_s"].as_f64())
        .collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "export of {EXPORT_DAYS} days: {} events, {} events/s (median of {EXPORT_RUNS})",
        runs[0]["events"],
        ms(&json!(percentile(&rates, 0.5)))
    );
    Ok(json!({
        "days": EXPORT_DAYS,
        "runs": runs,
        "events": runs[0]["events"],
        "events_per_s_median": percentile(&rates, 0.5),
    }))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A volume as people say it: `100K`, `1M`, `2.5M`, `800`.
pub fn label(n: u64) -> String {
    let short = |x: f64| {
        let text = format!("{x:.1}");
        text.strip_suffix(".0").unwrap_or(&text).to_owned()
    };
    match n {
        0..1000 => n.to_string(),
        1000..1_000_000 => format!("{}K", short(n as f64 / 1e3)),
        _ => format!("{}M", short(n as f64 / 1e6)),
    }
}

fn kv_suffix(kv: Kv) -> &'static str {
    match kv {
        Kv::None => "",
        Kv::Miss => " (KV miss)",
        Kv::Hit => " (KV hit)",
    }
}

/// A number with one decimal, or `?`.
fn ms(v: &Value) -> String {
    v.as_f64().map_or("?".into(), |x| format!("{x:.1}"))
}

/// `b / a` with two significant digits, or `—` when either is missing or `a` is zero.
fn ratio(a: &Value, b: &Value) -> String {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) if a > 0.0 => super::significant(b / a),
        (Some(a), Some(b)) if a == 0.0 && b == 0.0 => "1.0".into(),
        _ => "—".into(),
    }
}

/// The query section of RESULTS.md.
pub fn markdown(q: &Value) -> String {
    let none = Vec::new();
    let volumes = q["volumes"].as_array().unwrap_or(&none);
    let m = &q["machine"];
    let mut md = format!(
        "## Queries through local workerd\n\n\
         Machine: nproc {}, {}; per endpoint {} sequential requests after {} warm-ups, \
         per volume{}.\n\n\
         Each volume is a fresh local D1 seeded with a mixed workload spread over {} days \
         (API requests with errors, page views with sources and campaigns, CDN images with \
         variants, installs, funnel steps, play/stop sessions; tens of thousands of users, \
         1 500 instances), written by the aggregator's own pipeline; every query asks for the \
         last {} days (`days={}`). Latency is from sending the request to reading the whole \
         answer over loopback, without `If-None-Match`. Rows read are what local D1 \
         reported for the request (`x-tally-rows-read`: every D1 call, the read token's \
         lookup included), the median over the runs. KV miss: a distinct `to` (hours \
         ahead, where no data is) per request, so each computes its answer and stores it \
         (the rows read vary a little: once `to` passes midnight, today is read as a day \
         row); KV hit: one URL repeated. Local D1 is SQLite inside workerd, not the hosted \
         service: the rows read carry over, the milliseconds do not.\n\n",
        m["nproc"],
        m["cpu"].as_str().unwrap_or("?"),
        q["runs"],
        q["warmup"],
        q["load_average_1m_after"]
            .as_f64()
            .map_or(String::new(), |l| format!(
                "; load average {l:.1} just after"
            )),
        q["days"],
        q["range_days"],
        q["range_days"],
    );
    md += &seed_table(volumes);
    md += &endpoint_table(volumes);
    md += &export_table(volumes);
    md
}

fn seed_table(volumes: &[Value]) -> String {
    let mut md = String::from(
        "| raw events | seeding, s | events/s | hour / day / month rollup rows | session marks | D1 file, MB |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    for v in volumes {
        let s = &v["seed"];
        let r = &s["rollup_rows"];
        md += &format!(
            "| {} | {} | {} | {} / {} / {} | {} | {} |\n",
            label(v["events"].as_u64().unwrap_or(0)),
            ms(&s["seconds"]),
            super::rate(&s["events_per_s"]),
            r["hour"],
            r["day"],
            r["month"],
            s["session_events"],
            s["database_bytes"]
                .as_f64()
                .map_or("?".into(), |b| format!("{:.0}", b / 1e6)),
        );
    }
    md + "\nSeeding runs natively (release build) with the workers stopped: \
          `pipeline::backfill`, i.e. the consumer's `store_events` in batches of 10 000 \
          and the cron's rolls of every day and month.\n\n"
}

fn endpoint_table(volumes: &[Value]) -> String {
    let labels: Vec<String> = volumes
        .iter()
        .map(|v| label(v["events"].as_u64().unwrap_or(0)))
        .collect();
    let mut head = String::from("| endpoint |");
    let mut rule = String::from("|---|");
    for l in &labels {
        head += &format!(" p50 ms at {l} | p95 ms at {l} |");
        rule += "---:|---:|";
    }
    for l in &labels {
        head += &format!(" rows read at {l} |");
        rule += "---:|";
    }
    let compare = labels.len() >= 2;
    if compare {
        let (first, last) = (&labels[0], &labels[labels.len() - 1]);
        head += &format!(" p50 ratio {last}/{first} | rows ratio {last}/{first} |");
        rule += "---:|---:|";
    }
    let mut md = format!("{head}\n{rule}\n");
    let none = Vec::new();
    let first = volumes
        .first()
        .map_or(&none, |v| v["endpoints"].as_array().unwrap_or(&none));
    for (i, e) in first.iter().enumerate() {
        let kv = match e["kv"].as_str() {
            Some(kv) => format!(" (KV {kv})"),
            None => String::new(),
        };
        let mut row = format!("| {}{kv} |", e["endpoint"].as_str().unwrap_or("?"));
        let at = |v: &Value| v["endpoints"][i].clone();
        for v in volumes {
            let f = at(v);
            let (p50, p95) = match f["refused"].as_str() {
                Some(refused) => (format!("refused: {refused}"), "—".to_owned()),
                None => (ms(&f["p50_ms"]), ms(&f["p95_ms"])),
            };
            row += &format!(" {p50} | {p95} |");
        }
        for v in volumes {
            row += &format!(" {} |", rows(&at(v)));
        }
        if compare {
            let (a, b) = (at(&volumes[0]), at(&volumes[volumes.len() - 1]));
            row += &format!(
                " {} | {} |",
                ratio(&a["p50_ms"], &b["p50_ms"]),
                ratio(&a["rows_read"], &b["rows_read"])
            );
        }
        md += &row;
        md += "\n";
    }
    md + "\n"
}

/// The rows read of an endpoint: the median, with the range when runs differed.
fn rows(f: &Value) -> String {
    match (&f["rows_read"], &f["rows_read_min"], &f["rows_read_max"]) {
        (Value::Null, ..) => "?".into(),
        (median, min, max) if min != max => format!("{median} ({min}–{max})"),
        (median, ..) => median.to_string(),
    }
}

fn export_table(volumes: &[Value]) -> String {
    let mut md = String::from(
        "| raw events | export of the last 7 days, events | events/s (median) | rows read, first page |\n\
         |---:|---:|---:|---:|\n",
    );
    for v in volumes {
        let x = &v["export"];
        md += &format!(
            "| {} | {} | {} | {} |\n",
            label(v["events"].as_u64().unwrap_or(0)),
            x["events"],
            super::rate(&x["events_per_s_median"]),
            x["runs"][0]["rows_read_first_page"],
        );
    }
    md + "\nThe export streams NDJSON pages of 2 000 events (one D1 query each); its \
          `x-tally-rows-read` covers the first page, read before the answer starts.\n\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: f64, rows_read: Option<u64>, cache: Option<&str>) -> Sample {
        Sample {
            ms,
            rows_read,
            bytes: 100,
            cache: cache.map(str::to_owned),
        }
    }

    #[test]
    fn volumes_are_labelled_as_people_say_them() {
        for (n, text) in [
            (800, "800"),
            (100_000, "100K"),
            (1_000_000, "1M"),
            (2_500_000, "2.5M"),
            (1_500, "1.5K"),
        ] {
            assert_eq!(label(n), text);
        }
    }

    #[test]
    fn summaries_take_nearest_rank_percentiles_and_median_rows() {
        let samples: Vec<Sample> = (1..=40u32)
            .map(|i| sample(f64::from(i), Some(100 + u64::from(i % 3)), Some("miss")))
            .collect();
        let s = summary(&samples);
        assert_eq!(s["runs"], 40);
        assert_eq!(s["p50_ms"], 20.0);
        assert_eq!(s["p95_ms"], 38.0);
        assert_eq!(s["max_ms"], 40.0);
        assert_eq!(s["rows_read"], 101);
        assert_eq!(
            (s["rows_read_min"].clone(), s["rows_read_max"].clone()),
            (json!(100), json!(102))
        );
        assert_eq!(s["without_rows_read"], 0);
        assert_eq!(s["kv_answers"], json!({"miss": 40}));

        let s = summary(&[sample(5.0, None, None), sample(7.0, Some(9), Some("hit"))]);
        assert_eq!(s["rows_read"], 9);
        assert_eq!(s["without_rows_read"], 1);
        assert_eq!(s["kv_answers"], json!({"hit": 1}));
    }

    #[test]
    fn kv_misses_ask_a_new_question_every_time() {
        // 2025-01-10T12:34:56Z.
        let now = 1_736_512_496_000;
        assert_eq!(range_param(Kv::None, now, 3), "days=30");
        assert_eq!(range_param(Kv::Hit, now, 3), "days=30");
        assert_eq!(
            range_param(Kv::Miss, now, 0),
            "from=2024-12-12&to=2025-01-10T13:00:00.000Z"
        );
        let asked: std::collections::HashSet<String> = (0..WARMUP + RUNS)
            .map(|n| range_param(Kv::Miss, now, n))
            .collect();
        assert_eq!(asked.len(), WARMUP + RUNS);
    }

    fn figure(p50: f64, p95: f64, rows: u64) -> Value {
        json!({"endpoint": "overview", "kv": null, "p50_ms": p50, "p95_ms": p95,
               "rows_read": rows, "rows_read_min": rows, "rows_read_max": rows})
    }

    #[test]
    fn the_endpoint_table_compares_the_last_volume_with_the_first() {
        let mut kv = figure(4.0, 6.0, 30);
        kv["endpoint"] = json!("timeseries, day");
        kv["kv"] = json!("miss");
        let mut varied = figure(10.0, 20.0, 500);
        varied["endpoint"] = json!("funnels");
        varied["rows_read_min"] = json!(490);
        let mut funnels = figure(10.0, 20.0, 500);
        funnels["endpoint"] = json!("funnels");
        let volumes = vec![
            json!({"events": 100_000, "endpoints": [figure(2.0, 3.0, 40), kv.clone(), funnels]}),
            json!({"events": 1_000_000, "endpoints": [figure(2.2, 3.5, 40), kv, varied]}),
        ];
        assert_eq!(
            endpoint_table(&volumes),
            "| endpoint | p50 ms at 100K | p95 ms at 100K | p50 ms at 1M | p95 ms at 1M | \
             rows read at 100K | rows read at 1M | p50 ratio 1M/100K | rows ratio 1M/100K |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n\
             | overview | 2.0 | 3.0 | 2.2 | 3.5 | 40 | 40 | 1.1 | 1.0 |\n\
             | timeseries, day (KV miss) | 4.0 | 6.0 | 4.0 | 6.0 | 30 | 30 | 1.0 | 1.0 |\n\
             | funnels | 10.0 | 20.0 | 10.0 | 20.0 | 500 | 500 (490–500) | 1.0 | 1.0 |\n\
             \n"
        );
        let one = endpoint_table(&volumes[..1]);
        assert!(
            one.starts_with("| endpoint | p50 ms at 100K | p95 ms at 100K | rows read at 100K |\n")
        );
        assert!(one.contains("| overview | 2.0 | 3.0 | 40 |\n"), "{one}");
    }

    #[test]
    fn ratios_say_when_they_cannot_be_taken() {
        assert_eq!(ratio(&json!(2.0), &json!(5.0)), "2.5");
        assert_eq!(ratio(&json!(0), &json!(0)), "1.0");
        assert_eq!(ratio(&json!(0), &json!(3)), "—");
        assert_eq!(ratio(&Value::Null, &json!(3)), "—");
    }

    #[test]
    fn the_section_renders_seeding_queries_and_exports() {
        let q = json!({
            "machine": {"nproc": 2, "cpu": "AMD EPYC"},
            "runs": 40, "warmup": 5, "days": 60, "range_days": 30,
            "load_average_1m_after": 1.5,
            "volumes": [{
                "events": 100_000,
                "seed": {"seconds": 18.7, "events_per_s": 5351.4, "session_events": 3964,
                         "database_bytes": 51_908_608,
                         "rollup_rows": {"hour": 139_523, "day": 35_038, "month": 8_143}},
                "endpoints": [figure(2.0, 3.0, 40)],
                "export": {"events": 11_000, "events_per_s_median": 20_000.4,
                           "runs": [{"rows_read_first_page": 2_001}]},
            }],
        });
        let md = markdown(&q);
        assert!(md.starts_with("## Queries through local workerd\n\nMachine: nproc 2, AMD EPYC; per endpoint 40 sequential requests after 5 warm-ups, per volume; load average 1.5 just after.\n\n"), "{md}");
        assert!(
            md.contains("| 100K | 18.7 | 5 351 | 139523 / 35038 / 8143 | 3964 | 52 |\n"),
            "{md}"
        );
        assert!(md.contains("| overview | 2.0 | 3.0 | 40 |\n"), "{md}");
        assert!(md.contains("| 100K | 11000 | 20 000 | 2001 |\n"), "{md}");
    }
}
