//! Hostile and heavy load (issue 14): a mixed stream at the rate the machine sustains,
//! with resent batches, id-less batches retried under an `Idempotency-Key`, poisoned
//! and over-limit events and a burst of unique values, while another project's events,
//! rollups and alert rule keep working. Exactly the accepted events are counted.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// How long the load threads send.
const SECONDS: u64 = 30;
/// Load threads (connections), besides the other project's steady sender.
const THREADS: u32 = 3;
/// Events per ordinary batch.
const BATCH: u32 = 100;
/// At most this many events are sent, so that the drain stays short on a slow machine.
const MAX_EVENTS: u64 = 300_000;
/// Requests of 1,000 events with unique routes, items and campaigns.
const BURSTS: u32 = 4;

/// Poisoned and over-limit events, each with the field it is refused for.
fn poison(i: u32) -> (Value, &'static str) {
    match i % 6 {
        0 => (json!({"name": "huge", "bytes": (1_u64 << 40) + 1}), "bytes"),
        1 => (
            json!({"name": "huge", "bytes": 9_007_199_254_740_993_u64}),
            "bytes",
        ),
        2 => (
            json!({"name": "old", "timestamp": "2001-01-01T00:00:00Z"}),
            "timestamp",
        ),
        3 => (json!({"name": "n".repeat(121)}), "name"),
        4 => (
            json!({"name": "request", "route": format!("/{}", "r".repeat(600))}),
            "route",
        ),
        _ => (
            json!({"name": "slow", "duration_ms": 1.000_000_000_001e12}),
            "duration_ms",
        ),
    }
}

/// A valid event of the mixed stream: requests with errors, page views with sources
/// and campaigns, image deliveries, installs, play/stop.
fn valid(n: u32) -> Value {
    match n % 8 {
        0..=2 => json!({"name": "request", "method": "GET", "route": format!("/api/r{}", n % 7),
            "status": if n.is_multiple_of(17) { 503 } else { 200 }, "duration_ms": f64::from(n % 300) + 0.5,
            "bytes": u64::from(n % 5000), "instance": format!("site-{}", n % 40)}),
        3 => json!({"name": "error", "error_class": "TypeError",
            "error_message": "x is undefined", "route": "/api/r1", "status": 500}),
        4 => json!({"name": "pageview", "route": "/pricing", "source": "newsletter",
            "campaign": (["spring", "autumn"][n as usize % 2]), "user": format!("u{}", n % 500)}),
        5 => json!({"name": "serve", "item": format!("img-{}", n % 30), "variant": "w640",
            "bytes": 1_u64 << 40}),
        6 => json!({"name": "install", "instance": format!("site-{}", n % 90), "version": "2.5.0"}),
        _ => json!({"name": (["play", "stop"][n as usize % 2]), "user": format!("u{}", n % 50)}),
    }
}

/// What one load thread saw.
#[derive(Default)]
struct Seen {
    /// Ids of events ingest answered `accepted`, resends included (the set dedups).
    accepted: Vec<String>,
    requests: u64,
    resent: u64,
    keyed: u64,
    keyed_retries: u64,
    poisoned: u64,
    refused_batches: u64,
    burst_events: u64,
}

impl Seen {
    /// Checks an answer to a batch whose events at `poisoned` (with their fields) are
    /// refused and the rest accepted, and keeps the accepted ids.
    fn take(&mut self, a: &Answer, sent: usize, poisoned: &[(usize, &str)]) -> Vec<String> {
        self.requests += 1;
        let results = a.json["results"]
            .as_array()
            .unwrap_or_else(|| panic!("{} {}", a.status, a.json));
        assert_eq!(results.len(), sent, "{}", a.json);
        if poisoned.len() == sent {
            assert_eq!(a.status, 400, "{}", a.json);
            assert_eq!(a.json["error"]["code"], "no_valid_events", "{}", a.json);
            self.refused_batches += 1;
        } else {
            assert_eq!(a.status, 202, "{}", a.json);
        }
        for &(i, field) in poisoned {
            let r = &results[i];
            assert_eq!(r["status"], "rejected", "event {i}: {r}");
            assert_eq!(r["error"]["field"], field, "event {i}: {r}");
            self.poisoned += 1;
        }
        let mut ids = Vec::new();
        for r in results {
            match r["status"].as_str() {
                Some("accepted") => ids.push(r["event_id"].as_str().unwrap().to_owned()),
                Some("rejected") => {}
                // Not on the queue: not accepted, so not counted (none is expected here).
                _ => assert_eq!(r["status"], "not_queued", "{r}"),
            }
        }
        self.accepted.extend(ids.iter().cloned());
        ids
    }
}

/// A batch to send again once batch `.0` has gone: its body and poisoned events.
type Resend = (u32, Value, Vec<(usize, &'static str)>);

fn post(p: &Project, body: &Value, key: Option<&str>) -> Answer {
    let auth = p.write_auth();
    let mut headers = vec![
        ("content-type", "application/json"),
        ("authorization", &auth),
    ];
    if let Some(key) = key {
        headers.push(("idempotency-key", key));
    }
    request(
        "POST",
        &format!("{}/v1/events", url("ingest")),
        &headers,
        Some(&body.to_string()),
    )
}

/// One load thread: ordinary batches with ids (every fourth with poisoned events, one
/// in twenty resent a few batches later), id-less batches under an `Idempotency-Key`
/// (every other one sent twice), batches of poison only, and on thread 0 the bursts of
/// unique values.
fn load(p: &Project, run: u32, thread: u32, deadline: Instant, sent: &AtomicU64) -> Seen {
    let mut seen = Seen::default();
    let mut to_resend: Vec<Resend> = Vec::new();
    let mut b = 0u32;
    while Instant::now() < deadline && sent.load(Ordering::Relaxed) < MAX_EVENTS {
        b += 1;
        let base = (thread << 26) | (b << 10);
        if thread == 0 && b % 10 == 5 && b / 10 < BURSTS {
            // 1,000 events with a route, item and campaign no other event has.
            let events: Vec<Value> = (0..1000)
                .map(|i| {
                    let n = base | i;
                    json!({"event_id": event_id(run, n), "name": "request",
                        "route": format!("/burst/{run:x}/{n:x}"), "item": format!("img-{n:x}"),
                        "variant": format!("w{i}"), "campaign": format!("c-{n:x}"), "status": 200})
                })
                .collect();
            let a = post(p, &Value::Array(events), None);
            seen.burst_events += seen.take(&a, 1000, &[]).len() as u64;
            sent.fetch_add(1000, Ordering::Relaxed);
            continue;
        }
        match b % 20 {
            7 | 17 => {
                // Id-less (as the track API's and Plausible's clients send), under a key.
                let key = unique(&format!("hostile-{thread}-{b}"));
                let events: Vec<Value> = (0..BATCH).map(|i| valid(base | i)).collect();
                let body = Value::Array(events);
                let first = seen.take(&post(p, &body, Some(&key)), BATCH as usize, &[]);
                seen.keyed += 1;
                if b % 20 == 7 {
                    let again = seen.take(&post(p, &body, Some(&key)), BATCH as usize, &[]);
                    assert_eq!(first, again, "the same key gives the same ids");
                    seen.keyed_retries += 1;
                }
                sent.fetch_add(u64::from(BATCH), Ordering::Relaxed);
            }
            13 => {
                let (events, fields): (Vec<Value>, Vec<(usize, &str)>) = (0..6)
                    .map(|i| {
                        let (mut e, field) = poison(b + i);
                        e["event_id"] = event_id(run, base | i).into();
                        (e, (i as usize, field))
                    })
                    .unzip();
                seen.take(&post(p, &Value::Array(events), None), 6, &fields);
            }
            k => {
                let mut poisoned = Vec::new();
                let events: Vec<Value> = (0..BATCH)
                    .map(|i| {
                        let (mut e, field) = if k % 4 == 0 && i % 33 == 10 {
                            poison(b + i)
                        } else {
                            (valid(base | i), "")
                        };
                        if !field.is_empty() {
                            poisoned.push((i as usize, field));
                        }
                        e["event_id"] = event_id(run, base | i).into();
                        e
                    })
                    .collect();
                let body = Value::Array(events);
                seen.take(&post(p, &body, None), BATCH as usize, &poisoned);
                sent.fetch_add(u64::from(BATCH), Ordering::Relaxed);
                if k == 3 {
                    to_resend.push((b + 4, body, poisoned));
                }
            }
        }
        // 5% of batches come again, a few batches later, as a client's retry would.
        if let Some(pos) = to_resend.iter().position(|(at, _, _)| *at <= b) {
            let (_, body, poisoned) = to_resend.swap_remove(pos);
            seen.take(&post(p, &body, None), BATCH as usize, &poisoned);
            seen.resent += 1;
        }
    }
    seen
}

/// Sets its flag when dropped, on success or panic.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A read that must answer 200. Locally the three workers share one SQLite file, and a
/// read that meets the consumer's write answers 500 now and then (D1 itself serializes
/// them): it is read again.
fn ok(what: &str, mut call: impl FnMut() -> Answer) -> Answer {
    eventually(what, Duration::from_secs(30), || {
        let a = call();
        if a.status == 200 {
            Ok(a)
        } else {
            Err(format!("{} {}", a.status, a.json))
        }
    })
}

fn rule_state(p: &Project, id: &str) -> Value {
    let path = format!("/projects/{}/alert-rules/{id}", p.slug);
    ok("the rule", || admin("GET", &path, None)).json["rule"].clone()
}

#[test]
fn hostile_and_heavy_load_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let notes = Mutex::new(Vec::new());
    let note = |line: String| {
        println!("hostile: {line}");
        notes.lock().unwrap().push(line);
    };
    let p = Project::new("hostile");
    let other = Project::new("bystander");
    let run = run_id();
    // The other project's rule: more than 10 events in 5 minutes, no webhook.
    let made = other.create_rule(&json!({"name": "busy", "metric": {"type": "count"},
        "comparator": ">", "threshold": 10, "window_minutes": 5}));
    let rule = made.json["rule"]["id"].as_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let sent = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let others: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let seen: Vec<Seen> = std::thread::scope(|s| {
        // The other project's sender stops with the load, or when anything here panics.
        let _stop = Stop(&done);
        let loads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (p, sent) = (&p, &sent);
                s.spawn(move || load(p, run, t, deadline, sent))
            })
            .collect();
        // The other project: 10 events every 200 ms on three routes, all load long.
        s.spawn(|| {
            let mut i = 0u32;
            while !done.load(Ordering::Relaxed) {
                let events: Vec<Value> = (0..10)
                    .map(|_| {
                        i += 1;
                        json!({"event_id": event_id(run ^ 0x5a5a_5a5a, i), "name": "request",
                            "route": format!("/b/{}", i % 3), "status": 200, "duration_ms": 5})
                    })
                    .collect();
                let a = post(&other, &Value::Array(events), None);
                assert_eq!(a.status, 202, "{}", a.json);
                let ids = a.json["results"].as_array().unwrap().iter().map(|r| {
                    assert_eq!(r["status"], "accepted", "{r}");
                    r["event_id"].as_str().unwrap().to_owned()
                });
                others.lock().unwrap().extend(ids);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        // Meanwhile the other project's rule is evaluated, under load, and fires.
        eventually(
            "the other project's events are stored under load",
            Duration::from_secs(SECONDS),
            || match overview(&other).json["events"].as_u64() {
                Some(n) if n > 10 => Ok(()),
                n => Err(format!("{n:?}")),
            },
        );
        let fired = after_cron(
            "* * * * *",
            "the other project's rule fires under load",
            Duration::from_secs(SECONDS),
            || {
                let r = rule_state(&other, &rule);
                if r["state"] == "firing" {
                    Ok(r)
                } else {
                    Err(r.to_string())
                }
            },
        );
        note(format!(
            "the other project's rule fired {:?} into the load",
            started.elapsed()
        ));
        assert!(fired["last_error"].is_null(), "{fired}");
        loads.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let sending = started.elapsed();

    let accepted: HashSet<&str> = seen
        .iter()
        .flat_map(|s| s.accepted.iter().map(String::as_str))
        .collect();
    let n = accepted.len() as u64;
    let sum = |f: fn(&Seen) -> u64| seen.iter().map(f).sum::<u64>();
    note(format!(
        "{n} distinct events accepted ({} answers of accepted) in {} requests over \
         {sending:?}: {} batches resent, {} keyed id-less batches ({} retried), {} poisoned \
         events refused ({} batches of poison only), {} burst events of unique values",
        sum(|s| s.accepted.len() as u64),
        sum(|s| s.requests),
        sum(|s| s.resent),
        sum(|s| s.keyed),
        sum(|s| s.keyed_retries),
        sum(|s| s.poisoned),
        sum(|s| s.refused_batches),
        sum(|s| s.burst_events),
    ));
    assert!(n >= 10_000, "only {n} events accepted");
    assert!(sum(|s| s.resent) > 0 && sum(|s| s.keyed_retries) > 0);
    assert!(sum(|s| s.poisoned) > 0 && sum(|s| s.refused_batches) > 0);
    assert_eq!(sum(|s| s.burst_events), u64::from(BURSTS) * 1000);

    // Exactly the accepted set is counted, and stored once.
    wait_for_count_within(&url("query"), &p, n, Duration::from_secs(180));
    note(format!(
        "all counted {:?} after the start",
        started.elapsed()
    ));
    assert_eq!(
        stored_raw_events(&p.slug),
        n,
        "raw rows equal accepted events"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        overview(&p).json["events"].as_u64(),
        Some(n),
        "nothing more"
    );

    // The unique values were bounded, and still counted: a breakdown adds up.
    let routes = ok("the route breakdown", || p.read("breakdown/route"));
    let j = &routes.json;
    let listed: u64 = j["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["events"].as_u64().unwrap())
        .sum();
    let other_events = j["other"]["events"].as_u64().unwrap_or(0);
    let without = j["without_value"].as_u64().unwrap_or(0);
    assert_eq!(listed + other_events + without, n, "{}", j["other"]);

    // The other project: exact, its rollups and breakdowns readable, its rule firing.
    let others = others.into_inner().unwrap();
    let m = others.len() as u64;
    wait_for_count(&other, m);
    let routes = ok("the other route breakdown", || {
        other.read("breakdown/route")
    });
    let counts: Vec<(String, u64)> = breakdown_events(&routes.json).into_iter().collect();
    let want: Vec<(String, u64)> = (0..3)
        .map(|r| {
            let of_route = (1..=m).filter(|i| i % 3 == r).count() as u64;
            (format!("/b/{r}"), of_route)
        })
        .collect();
    assert_eq!(counts, want);
    assert_eq!(rule_state(&other, &rule)["state"], "firing");

    // And the dashboards answer.
    for project in [&p, &other] {
        let page = format!("{}/dashboard/{}", url("query"), project.slug);
        let auth = project.read_auth();
        ok("the dashboard", || {
            request("GET", &page, &[("authorization", &auth)], None)
        });
    }
    note(format!("the whole test took {:?}", started.elapsed()));
    // What the run did, kept where `cargo xtask test` lists the tests' artifacts.
    let report = notes.into_inner().unwrap().join("\n") + "\n";
    std::fs::write(browser::artifacts_dir().join("hostile.txt"), report).unwrap();
}
