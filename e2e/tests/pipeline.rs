//! The walking skeleton: ingest → queue → aggregator → D1 → query, and the cron.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn batch(project: &str, run: u32, n: u32) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "event_id": event_id(run, i),
                "project": project,
                "name": "request",
                "method": "GET",
                "route": "/posts/:id",
                "status": if i % 10 == 0 { 500 } else { 200 },
                "duration_ms": f64::from(i % 50) + 0.5,
            })
        })
        .collect()
}

#[test]
fn a_batch_is_counted_exactly_and_a_resent_batch_changes_nothing() {
    let project = unique("exact");
    let run = run_id();
    let events = batch(&project, run, 250);

    let first = send_events(&Value::Array(events.clone()));
    assert_eq!(first.status, 202, "{}", first.json);
    assert_eq!(first.json["accepted"], 250);
    assert_eq!(first.json["rejected"], 0);
    assert_eq!(first.json["results"][7]["event_id"], event_id(run, 7));
    wait_for_count(&project, 250);
    let o = overview(&project);
    assert_eq!(o.json["errors"], 25, "{}", o.json);

    // The same 250 events again, in one request with one new marker event: the request
    // is one queue message, stored in one transaction, so once the marker is counted the
    // resent events have been processed too, and must have been ignored.
    let mut again = events.clone();
    again.push(json!({"event_id": event_id(run, 9999), "project": project, "name": "marker"}));
    let second = send_events(&Value::Array(again));
    assert_eq!(second.status, 202, "{}", second.json);
    assert_eq!(second.json["accepted"], 251);
    wait_for_count(&project, 251);

    // And the same batch once more, as a separate request, then a second marker.
    assert_eq!(send_events(&Value::Array(events)).status, 202);
    let marker = json!([{"event_id": event_id(run, 10_000), "project": project, "name": "marker"}]);
    assert_eq!(send_events(&marker).status, 202);
    wait_for_count(&project, 252);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        overview(&project).json["events"],
        252,
        "duplicates must never be counted"
    );
}

#[test]
fn duplicates_within_one_request_are_stored_once() {
    let project = unique("dup");
    let run = run_id();
    let one = json!({"event_id": event_id(run, 1), "project": project, "name": "install"});
    let answer = send_events(&json!([one, one, one]));
    assert_eq!(answer.status, 202, "{}", answer.json);
    let marker = json!([{"event_id": event_id(run, 2), "project": project, "name": "marker"}]);
    send_events(&marker);
    wait_for_count(&project, 2);
}

#[test]
fn events_without_an_id_get_one_and_are_counted() {
    let project = unique("noid");
    let answer = send_events(&json!({"events": [
        {"project": project, "name": "click"},
        {"project": project, "name": "click"},
    ]}));
    assert_eq!(answer.status, 202, "{}", answer.json);
    let ids: Vec<&str> = answer.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().expect("an id is returned"))
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "generated ids are distinct");
    wait_for_count(&project, 2);
}

#[test]
fn raw_identifiers_never_reach_d1() {
    let project = unique("privacy");
    let run = run_id();
    let raw_user = format!("alice-{run}@example.com");
    let raw_instance = format!("site-{run}.example");
    let answer = send_events(&json!([{"event_id": event_id(run, 1), "project": project,
        "name": "play", "user": raw_user, "instance": raw_instance, "session": "sess-1"}]));
    assert_eq!(answer.status, 202, "{}", answer.json);
    wait_for_count(&project, 1);
    let (user, instance, session): (String, String, String) = with_d1(|db| {
        db.query_row(
            "SELECT user, instance, session FROM events WHERE project = ?1",
            [&project],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    });
    for (stored, raw) in [(&user, &raw_user), (&instance, &raw_instance)] {
        assert_eq!(stored.len(), 64, "a SHA-256 hex hash, not {stored:?}");
        assert!(!stored.contains(raw.as_str()));
    }
    assert_eq!(session.len(), 64);
    let leaked: i64 = with_d1(|db| {
        db.query_row(
            "SELECT COUNT(*) FROM events WHERE project = ?1 AND (instr(COALESCE(metadata, ''), ?2) > 0 \
             OR user = ?2 OR instance = ?3)",
            rusqlite::params![project, raw_user, raw_instance],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert_eq!(leaked, 0);
}

#[test]
fn projects_do_not_see_each_other() {
    let (a, b) = (unique("tenant-a"), unique("tenant-b"));
    let run = run_id();
    send_events(&Value::Array(batch(&a, run, 3)));
    // Same event ids in another project are different events.
    send_events(&Value::Array(batch(&b, run, 5)));
    wait_for_count(&a, 3);
    wait_for_count(&b, 5);
}

#[test]
fn a_cron_trigger_runs_and_records_its_run() {
    let before = now_ms();
    let trigger = get(&format!(
        "{}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*",
        url("aggregator")
    ));
    assert!(trigger.status < 300, "{} {}", trigger.status, trigger.json);
    let run = eventually(
        "the minutely job's run is recorded",
        Duration::from_secs(15),
        || {
            let health = get(&format!("{}/v1/health", url("query")));
            let jobs = health.json["jobs"].as_array().cloned().unwrap_or_default();
            jobs.into_iter()
                .find(|j| j["job"] == "minutely" && j["started_at"].as_i64() >= Some(before))
                .ok_or_else(|| health.json.to_string())
        },
    );
    assert_eq!(run["cron"], "* * * * *");
    assert_eq!(run["outcome"], "ok", "{run}");
    assert!(
        run["finished_at"].as_i64() >= run["started_at"].as_i64(),
        "{run}"
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 1000
}
