//! Moving a project between data shards (issue 16, phase 2) on the local two-shard
//! stack: events are sent all through the move, and the overview and the export read
//! again and again are never below what was visible before nor above what was
//! accepted; afterwards the counts are exact, the project is placed on the new shard and
//! the old one keeps nothing of it. The admin API's refusals and `/v1/health`'s list of
//! running moves are checked on the way.
//!
//! A move waits the isolates' placement cache three times (once before it copies, twice
//! after it switches); the end-to-end stack keeps placements 5 s rather than a minute
//! (`PLACEMENT_TTL_MS`, set alike in both workers). Each minutely trigger sends the move a
//! step on the jobs queue, and a step sends itself again when a wait ends, so the move
//! takes some 19 s (23 s when the cron stepped it once per trigger).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// Events per batch the sender sends, and the pause between batches.
const BATCH: u32 = 5;
const PAUSE: Duration = Duration::from_millis(400);

/// `n` events of `slug` from `first`, a minute ago, some errors, a few users.
fn events(slug: &str, run: u32, first: u32, n: u32) -> Value {
    let at = now_ms() - 60_000;
    (first..first + n)
        .map(|i| {
            json!({"event_id": event_id(run, i), "project": slug,
                   "name": if i % 7 == 0 { "play" } else { "view" },
                   "user": format!("u{}", i % 5), "timestamp": at,
                   "route": format!("/r{}", i % 3),
                   "status": if i % 5 == 0 { 500 } else { 200 }})
        })
        .collect()
}

/// The project's latest move, as the admin API answers it.
fn the_move(p: &Project) -> Value {
    let a = admin("GET", &format!("/projects/{}/move", p.slug), None);
    assert_eq!(a.status, 200, "{}", a.json);
    a.json["move"].clone()
}

/// The raw events of `slug` in each local D1 file.
fn raw_rows_per_file(slug: &str) -> Vec<i64> {
    with_every_d1(|db| {
        db.query_row(
            "SELECT COUNT(*) FROM raw_events WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)",
            [slug],
            |r| r.get(0),
        )
        .unwrap_or(0)
    })
}

/// The rollup rows of `slug` in each local D1 file.
fn rollup_rows_per_file(slug: &str) -> Vec<i64> {
    with_every_d1(|db| {
        db.query_row(
            "SELECT COUNT(*) FROM rollups WHERE project = ?1",
            [slug],
            |r| r.get(0),
        )
        .unwrap_or(0)
    })
}

#[test]
fn a_project_moves_to_another_shard_under_load_and_every_read_stays_right() {
    let p = Project::with("move", &json!({"rate_limit": "off", "shard": 0}));
    let run = run_id();
    assert_eq!(send_events(&p, &events(&p.slug, run, 0, 40)).status, 202);
    wait_for_count(&p, 40);

    // What the admin API refuses.
    let path = format!("/projects/{}/move", p.slug);
    let unbound = admin("POST", &path, Some(&json!({"to": 9})));
    assert_eq!(unbound.status, 400, "{}", unbound.json);
    assert_eq!(unbound.json["error"]["code"], "unknown_shard");
    let there = admin("POST", &path, Some(&json!({"to": 0})));
    assert_eq!(there.status, 409, "{}", there.json);
    assert_eq!(there.json["error"]["code"], "already_there");
    let never = admin("GET", &path, None);
    assert_eq!(never.status, 404, "{}", never.json);
    let fixed = admin(
        "PATCH",
        &format!("/projects/{}", p.slug),
        Some(&json!({"shard": 1})),
    );
    assert_eq!(fixed.status, 409, "{}", fixed.json);
    assert_eq!(fixed.json["error"]["code"], "shard_fixed");
    assert!(
        fixed.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/move"),
        "{}",
        fixed.json
    );

    // Events go on arriving all through the move. `accepted` counts the events sent so
    // far, counted as a batch is sent: ingest accepts (and the consumer may count) a
    // batch before its answer is back, and every batch is accepted (202, checked).
    let accepted = Arc::new(AtomicU64::new(40));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (p, accepted, stop) = (p.clone(), Arc::clone(&accepted), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut next = 40;
            while !stop.load(Ordering::SeqCst) {
                accepted.fetch_add(u64::from(BATCH), Ordering::SeqCst);
                let a = send_events(&p, &events(&p.slug, run, next, BATCH));
                assert_eq!(a.status, 202, "{}", a.json);
                next += BATCH;
                std::thread::sleep(PAUSE);
            }
            next
        })
    };

    let started = admin("POST", &path, Some(&json!({"to": 1})));
    assert_eq!(started.status, 202, "{}", started.json);
    assert_eq!(started.json["move"]["phase"], "starting");
    assert_eq!(started.json["move"]["from_shard"], 0);
    let again = admin("POST", &path, Some(&json!({"to": 1})));
    assert_eq!(again.status, 409, "{}", again.json);
    assert_eq!(again.json["error"]["code"], "move_running");
    let health = admin_get_health();
    assert!(
        health["moves"]
            .as_array()
            .is_some_and(|moves| moves.iter().any(|m| m["project"] == p.slug.as_str())),
        "/v1/health lists the running move: {health}"
    );

    // Fire the cron every 3 s until the move is done; read in between.
    let mut seen_overview = 0;
    let mut seen_export = 0;
    let mut reads = 0;
    let mut phases: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut fired = Instant::now() - Duration::from_secs(60);
    loop {
        if fired.elapsed() >= Duration::from_secs(3) {
            let trigger = get(&format!(
                "{}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*",
                url("aggregator")
            ));
            assert!(trigger.status < 300, "{} {}", trigger.status, trigger.json);
            fired = Instant::now();
        }
        let m = the_move(&p);
        let phase = m["phase"].as_str().unwrap().to_owned();
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        if phase == "done" {
            break;
        }
        assert_ne!(phase, "failed", "{m}");
        assert!(
            Instant::now() < deadline,
            "the move is done within 5 minutes: {m}"
        );

        let o = overview(&p);
        let after = accepted.load(Ordering::SeqCst);
        assert_eq!(o.status, 200, "{}", o.json);
        let counted = o.json["events"].as_u64().unwrap();
        assert!(
            counted >= seen_overview && counted <= after,
            "while {phase}: the overview counts {counted}, having shown {seen_overview}, \
             with {after} accepted"
        );
        seen_overview = counted;
        let exported = p.exported_ids(1).len() as u64;
        let after = accepted.load(Ordering::SeqCst);
        assert!(
            exported >= seen_export && exported <= after,
            "while {phase}: the export has {exported} events, having had {seen_export}, \
             with {after} accepted"
        );
        seen_export = exported;
        reads += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::SeqCst);
    let sent = sender.join().unwrap();
    let total = accepted.load(Ordering::SeqCst);
    assert_eq!(u64::from(sent), total);
    assert_eq!(
        phases.last().map(String::as_str),
        Some("done"),
        "{phases:?}"
    );
    assert!(
        phases.iter().any(|p| p == "switched" || p == "draining"),
        "{phases:?}"
    );
    assert!(reads > 5, "reads went on all through the move: {reads}");

    // Exact afterwards, on the new shard alone.
    wait_for_count(&p, total);
    let mut expected: Vec<String> = (0..sent)
        .map(|i| event_id(run, i).replace('-', ""))
        .collect();
    expected.sort();
    let mut exported: Vec<String> = p
        .exported_ids(1)
        .into_iter()
        .map(|id| id.replace('-', ""))
        .collect();
    exported.sort();
    assert_eq!(exported, expected, "every event once");
    let project = admin("GET", &format!("/projects/{}", p.slug), None);
    assert_eq!(project.json["project"]["shard"], 1, "{}", project.json);
    assert_eq!(
        stored_raw_events(&p.slug),
        total,
        "its shard's file holds them"
    );
    let raw = raw_rows_per_file(&p.slug);
    assert_eq!(
        raw.iter().sum::<i64>(),
        i64::try_from(total).unwrap(),
        "no other file keeps a raw event of it: {raw:?}"
    );
    let rollups = rollup_rows_per_file(&p.slug);
    assert_eq!(
        rollups.iter().filter(|n| **n > 0).count(),
        1,
        "one file keeps its rollups: {rollups:?}"
    );
    let done = the_move(&p);
    assert!(done["finished_at"].is_i64(), "{done}");
    assert!(done["progress"]["deleted"].as_u64().unwrap() > 0, "{done}");
}

/// `/v1/health` with the admin token.
fn admin_get_health() -> Value {
    let a = request(
        "GET",
        &format!("{}/v1/health", url("query")),
        &[("authorization", &format!("Bearer {}", admin_token()))],
        None,
    );
    assert_eq!(a.status, 200, "{}", a.json);
    a.json
}
