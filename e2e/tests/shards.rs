//! Projects on data shards (issue 16) through local D1: the stack binds the control
//! database (also shard 0) and shard 1. Projects placed on each count exactly and read
//! only their own data; a shard that cannot be written holds back only its projects,
//! whose events arrive once it heals, exactly once. The admin's health shows each
//! shard's bytes, rows and projects, and a new project goes to the smaller shard.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// The project's shard as the admin API answers it.
fn shard_of(p: &Project) -> u64 {
    let a = admin("GET", &format!("/projects/{}", p.slug), None);
    assert_eq!(a.status, 200, "{}", a.json);
    a.json["project"]["shard"]
        .as_u64()
        .expect("a project has a shard")
}

/// A project placed on `shard` by the admin API.
fn on_shard(prefix: &str, shard: u64) -> Project {
    let p = Project::with(prefix, &json!({"rate_limit": "off", "shard": shard}));
    assert_eq!(shard_of(&p), shard, "{} is placed where asked", p.slug);
    p
}

/// `n` events of `p` from `first`, a minute ago, every fifth an error.
fn events(p: &Project, run: u32, first: u32, n: u32) -> Value {
    let at = now_ms() - 60_000;
    (first..first + n)
        .map(|i| {
            json!({"event_id": event_id(run, i), "project": p.slug, "name": "view",
                   "timestamp": at, "route": format!("/r{}", i % 3),
                   "status": if i % 5 == 0 { 500 } else { 200 }})
        })
        .collect()
}

/// The raw rows of `slug` in the local D1 file of `holder`'s shard.
fn raw_rows_in_shard_of(holder: &Project, slug: &str) -> i64 {
    with_d1(&holder.slug, |db| {
        db.query_row(
            "SELECT COUNT(*) FROM raw_events WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)",
            [slug],
            |r| r.get(0),
        )
        .unwrap()
    })
}

#[test]
fn projects_on_both_shards_count_exactly_and_read_only_their_own() {
    let a = on_shard("shard0", 0);
    let b = on_shard("shard1", 1);
    let run = run_id();
    assert_eq!(send_events(&a, &events(&a, run, 0, 30)).status, 202);
    assert_eq!(send_events(&b, &events(&b, run, 1000, 45)).status, 202);
    // A resent batch counts once.
    assert_eq!(send_events(&b, &events(&b, run, 1000, 10)).status, 202);
    wait_for_count(&a, 30);
    wait_for_count(&b, 45);
    for (p, n) in [(&a, 30_u64), (&b, 45)] {
        let o = overview(p);
        assert_eq!(o.json["events"], n, "{}", o.json);
        assert_eq!(o.json["errors"], n / 5, "{}", o.json);
        assert_eq!(
            p.exported_ids(1).len(),
            n as usize,
            "{} exports its own events",
            p.slug
        );
    }
    let own = |first: u32, n: u32| {
        let mut ids: Vec<String> = (first..first + n)
            .map(|i| event_id(run, i).replace('-', ""))
            .collect();
        ids.sort();
        ids
    };
    let normalized = |ids: Vec<String>| -> Vec<String> {
        let mut ids: Vec<String> = ids.into_iter().map(|id| id.replace('-', "")).collect();
        ids.sort();
        ids
    };
    assert_eq!(normalized(a.exported_ids(1)), own(0, 30));
    assert_eq!(normalized(b.exported_ids(1)), own(1000, 45));

    // Each project's rows are on its shard and nowhere else.
    assert_eq!(raw_rows_in_shard_of(&b, &b.slug), 45);
    assert_eq!(raw_rows_in_shard_of(&a, &a.slug), 30);
    assert_eq!(
        raw_rows_in_shard_of(&a, &b.slug),
        0,
        "shard 0 holds nothing of b"
    );
    assert_eq!(
        raw_rows_in_shard_of(&b, &a.slug),
        0,
        "shard 1 holds nothing of a"
    );

    // The admin API lists placements, refuses an unbound shard and a change of shard.
    let listed = admin("GET", "/projects", None);
    let placed: Vec<(String, u64)> = listed.json["projects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["slug"] == a.slug.as_str() || p["slug"] == b.slug.as_str())
        .map(|p| {
            (
                p["slug"].as_str().unwrap().to_owned(),
                p["shard"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(placed.len(), 2, "{}", listed.json);
    assert!(placed.contains(&(b.slug.clone(), 1)), "{placed:?}");
    let unbound = admin(
        "POST",
        "/projects",
        Some(&json!({"slug": unique("shard9"), "shard": 9})),
    );
    assert_eq!(unbound.status, 400, "{}", unbound.json);
    assert_eq!(unbound.json["error"]["code"], "unknown_shard");
    let moved = admin(
        "PATCH",
        &format!("/projects/{}", b.slug),
        Some(&json!({"shard": 0})),
    );
    assert_eq!(moved.status, 409, "{}", moved.json);
    assert_eq!(moved.json["error"]["code"], "shard_fixed");
    let same = admin(
        "PATCH",
        &format!("/projects/{}", b.slug),
        Some(&json!({"shard": 1, "retention_days": 30})),
    );
    assert_eq!(same.status, 200, "{}", same.json);
    assert_eq!(same.json["project"]["shard"], 1);
    // A project placed by load goes to a shard the stack binds.
    let auto = admin(
        "POST",
        "/projects",
        Some(&json!({"slug": unique("shardauto")})),
    );
    assert_eq!(auto.status, 201, "{}", auto.json);
    assert!(
        auto.json["project"]["shard"].as_u64().unwrap() < 2,
        "{}",
        auto.json
    );
    // The admin's health lists both shards.
    let health = request(
        "GET",
        &format!("{}/v1/health", url("query")),
        &[("authorization", &format!("Bearer {}", admin_token()))],
        None,
    );
    assert_eq!(health.status, 200, "{}", health.json);
    let shards: Vec<u64> = health.json["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shard"].as_u64().unwrap())
        .collect();
    assert_eq!(shards, [0, 1], "{}", health.json);
}

/// The admin's `/v1/health`.
fn admin_health() -> Value {
    let health = request(
        "GET",
        &format!("{}/v1/health", url("query")),
        &[("authorization", &format!("Bearer {}", admin_token()))],
        None,
    );
    assert_eq!(health.status, 200, "{}", health.json);
    health.json
}

/// Each shard's stored bytes as the admin's health reports them (D1's `size_after`).
fn shard_bytes(health: &Value) -> Vec<u64> {
    health["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["bytes"]
                .as_u64()
                .unwrap_or_else(|| panic!("no bytes: {s}"))
        })
        .collect()
}

#[test]
fn health_shows_each_shards_bytes_rows_and_projects_and_new_projects_go_to_the_smaller() {
    let a = on_shard("sized0", 0);
    let b = on_shard("sized1", 1);
    let run = run_id();
    assert_eq!(send_events(&a, &events(&a, run, 0, 40)).status, 202);
    assert_eq!(send_events(&b, &events(&b, run, 1000, 60)).status, 202);
    wait_for_count(&a, 40);
    wait_for_count(&b, 60);

    let health = admin_health();
    let shards = health["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "{health}");
    for (n, (shard, holder)) in shards.iter().zip([&a, &b]).enumerate() {
        assert_eq!(shard["shard"], n as u64, "{shard}");
        assert_eq!(shard["error"], Value::Null, "{shard}");
        assert!(shard["bytes"].as_u64().unwrap() > 0, "{shard}");
        let projects = shard["projects"].as_u64().unwrap();
        assert!(projects >= 1, "{shard}");
        let named: Vec<&str> = shard["project_slugs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(named.len() as u64, projects.min(20), "{shard}");
        if projects <= 20 {
            assert!(named.contains(&holder.slug.as_str()), "{shard}");
        }
        // Every shard holds at least this test's raw events (others' too).
        let raw = shard["rows"]["raw_events"].as_u64().unwrap();
        assert!(raw >= if n == 0 { 40 } else { 60 }, "{shard}");
        assert!(shard["rows"]["rollups"].as_u64().unwrap() > 0, "{shard}");
    }

    // A project given no shard goes to the one storing fewer bytes. Other tests write
    // meanwhile, so it is judged when the smaller shard is the same just before and
    // just after the project is made.
    let smaller = |bytes: &[u64]| u64::from(bytes[1] < bytes[0]);
    for attempt in 0.. {
        let before = shard_bytes(&admin_health());
        let made = admin(
            "POST",
            "/projects",
            Some(&json!({"slug": unique("placed"), "rate_limit": "off"})),
        );
        assert_eq!(made.status, 201, "{}", made.json);
        let after = shard_bytes(&admin_health());
        if smaller(&before) == smaller(&after) && before[0] != before[1] {
            assert_eq!(
                made.json["project"]["shard"].as_u64().unwrap(),
                smaller(&before),
                "bytes {before:?} then {after:?}: {}",
                made.json
            );
            break;
        }
        assert!(
            attempt < 10,
            "the shards' sizes kept crossing: {before:?} {after:?}"
        );
    }
}

/// Runs alone (`xtask`'s `RUN_ALONE`): it makes all of shard 1 unwritable for a few
/// seconds, which would fail other tests' projects there.
#[test]
fn a_failing_shard_holds_back_only_its_projects_and_they_arrive_once_it_heals() {
    let a = on_shard("healthy", 0);
    let b = on_shard("failing", 1);
    let run = run_id();
    // Shard 1 refuses every raw event, as a database that cannot be written would.
    with_d1_writable(&b.slug, |db| {
        db.execute_batch(
            "CREATE TRIGGER e2e_shard_down BEFORE INSERT ON raw_events
             BEGIN SELECT RAISE(ABORT, 'shard down'); END",
        )
        .unwrap();
    });
    let heal = || {
        with_d1_writable(&b.slug, |db| {
            db.execute_batch("DROP TRIGGER IF EXISTS e2e_shard_down")
                .unwrap();
        });
    };
    let sent_b = send_events(&b, &events(&b, run, 1000, 25));
    let sent_a = send_events(&a, &events(&a, run, 0, 20));
    if sent_a.status != 202 || sent_b.status != 202 {
        heal();
        panic!("{} {}", sent_a.json, sent_b.json);
    }
    // The healthy shard's project is counted on time, while the other waits: still
    // nothing of it a while later (its messages are retried with a delay, within the
    // queue's retries), and nothing on its shard.
    let on_time = std::panic::catch_unwind(|| wait_for_count(&a, 20));
    std::thread::sleep(Duration::from_secs(3));
    let held = overview(&b);
    let stored_while_down = raw_rows_in_shard_of(&b, &b.slug);
    heal();
    on_time.unwrap();
    assert_eq!(held.json["events"], 0, "{}", held.json);
    assert_eq!(stored_while_down, 0);
    // Healed: the retried messages arrive, each event once.
    wait_for_count(&b, 25);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(overview(&b).json["events"], 25);
    assert_eq!(overview(&a).json["events"], 20);
    assert_eq!(raw_rows_in_shard_of(&b, &b.slug), 25);
    assert_eq!(b.exported_ids(1).len(), 25);
}

/// Two events of `p` in each of the two whole days before yesterday.
fn events_on_past_days(p: &Project, run: u32, first: u32) -> Value {
    let (d0, _) = two_whole_days();
    (0..4)
        .map(|i| {
            json!({"event_id": event_id(run, first + i), "project": p.slug, "name": "view",
                   "timestamp": d0 + i64::from(i / 2) * 86_400_000 + 3_600_000,
                   "route": "/"})
        })
        .collect()
}

/// The admin's health's last run of `job` on shard `shard`, if it started at `since` or
/// later.
fn shard_run(health: &Value, shard: usize, job: &str, since: i64) -> Option<Value> {
    health["shards"][shard]["jobs"]
        .as_array()?
        .iter()
        .find(|r| r["job"] == job && r["started_at"].as_i64() >= Some(since))
        .cloned()
}

/// Each trigger hands every shard its part of the job on the jobs queue, where it runs
/// in an invocation of its own and is recorded with its shard: the hourly roll, purge
/// and erasure work of both shards after one trigger, shown in the admin's health
/// beside the trigger's own run.
#[test]
fn each_shards_cron_work_runs_on_the_jobs_queue_and_is_shown_with_its_shard() {
    let before = now_ms();
    let trigger = get(&format!(
        "{}/cdn-cgi/handler/scheduled?cron=5+*+*+*+*",
        url("aggregator")
    ));
    assert!(trigger.status < 300, "{} {}", trigger.status, trigger.json);
    let runs = eventually(
        "both shards' hourly jobs are recorded",
        Duration::from_secs(60),
        || {
            let health = admin_health();
            let runs: Vec<Value> = (0..2)
                .filter_map(|n| shard_run(&health, n, &format!("hourly/shard-{n}"), before))
                .collect();
            if runs.len() == 2 {
                Ok((health, runs))
            } else {
                Err(health.to_string())
            }
        },
    );
    let (health, runs) = runs;
    for run in &runs {
        assert_eq!(run["outcome"], "ok", "{run}");
        assert_eq!(run["cron"], "5 * * * *", "{run}");
        let detail = run["detail"].as_str().unwrap();
        for part in [
            "rolled",
            "months",
            "purged",
            "expired rows",
            "erased",
            "D1 queries",
        ] {
            assert!(detail.contains(part), "{part}: {detail}");
        }
        println!("{}: {detail}", run["job"]);
    }
    // The trigger's own run says it handed the work on; shards' runs are not among the
    // triggers' (the meaning of `jobs` is unchanged).
    let hourly = health["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "hourly" && j["started_at"].as_i64() >= Some(before))
        .cloned()
        .unwrap_or_else(|| panic!("the trigger's run: {health}"));
    assert!(
        hourly["detail"]
            .as_str()
            .unwrap()
            .contains("sent a job to each of 2 shards"),
        "{hourly}"
    );
    for job in health["jobs"].as_array().unwrap() {
        assert!(!job["job"].as_str().unwrap().contains("/shard-"), "{job}");
    }
}

/// Runs alone (`xtask`'s `RUN_ALONE`): it makes shard 0's (the control database's) day
/// rolls fail for a while. Before the jobs queue, the minutely trigger walked the shards
/// in turn and the first one's error ended the run, so shard 1's days were never rolled.
#[test]
fn a_shard_whose_cron_work_fails_holds_back_no_other_shard() {
    let broken = on_shard("cronfail", 0);
    let healthy = on_shard("cronok", 1);
    let run = run_id();
    assert_eq!(
        send_events(&broken, &events_on_past_days(&broken, run, 0)).status,
        202
    );
    assert_eq!(
        send_events(&healthy, &events_on_past_days(&healthy, run, 100)).status,
        202
    );
    let stored = |p: &Project| stored_raw_events(&p.slug);
    eventually("the events are stored", Duration::from_secs(30), || {
        let n = (stored(&broken), stored(&healthy));
        if n == (4, 4) {
            Ok(())
        } else {
            Err(format!("{n:?}"))
        }
    });
    // Shard 0's roll of days fails every time it records its run (meta `roll.day`),
    // after its days are rolled: the error a shard's work ends with.
    with_d1_writable(&broken.slug, |db| {
        db.execute_batch(
            "CREATE TRIGGER e2e_roll_down_insert BEFORE INSERT ON meta WHEN NEW.key = 'roll.day'
             BEGIN SELECT RAISE(ABORT, 'roll down'); END;
             CREATE TRIGGER e2e_roll_down_update BEFORE UPDATE ON meta WHEN NEW.key = 'roll.day'
             BEGIN SELECT RAISE(ABORT, 'roll down'); END;",
        )
        .unwrap();
    });
    let heal = || {
        with_d1_writable(&broken.slug, |db| {
            db.execute_batch(
                "DROP TRIGGER IF EXISTS e2e_roll_down_insert;
                 DROP TRIGGER IF EXISTS e2e_roll_down_update;",
            )
            .unwrap();
        });
    };
    let since = now_ms();
    let while_broken = std::panic::catch_unwind(|| {
        // The healthy shard's days are rolled by its own job.
        wait_days_rolled(&healthy.slug, 2);
        eventually(
            "each shard's minutely run is shown with its outcome",
            Duration::from_secs(30),
            || {
                let health = admin_health();
                let failed = shard_run(&health, 0, "minutely/shard-0", since);
                let ok = shard_run(&health, 1, "minutely/shard-1", since);
                match (failed, ok) {
                    (Some(failed), Some(ok))
                        if failed["outcome"] == "error" && ok["outcome"] == "ok" =>
                    {
                        Ok((failed, ok, health))
                    }
                    other => Err(format!("{other:?}")),
                }
            },
        )
    });
    heal();
    let (failed, ok, health) = while_broken.unwrap();
    assert!(
        failed["detail"].as_str().unwrap().contains("roll down"),
        "{failed}"
    );
    assert!(ok["detail"].as_str().unwrap().contains("rolled"), "{ok}");
    let minutely = health["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "minutely")
        .cloned()
        .unwrap();
    assert_eq!(
        minutely["outcome"], "ok",
        "the trigger's own part: {minutely}"
    );
    // Healed, the broken shard's days roll too.
    wait_days_rolled(&broken.slug, 2);
}
