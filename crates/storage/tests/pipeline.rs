//! The aggregator pipeline against real SQLite: exactly-once storage, rollups equal to
//! exact recomputation, rolls, rebuilds, failures, races and retention.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use tally_core::alerts::MinuteSources;
use tally_core::rollup::{self, Dimension, Key, Period, Rollup};
use tally_core::sessions;
use tally_core::testing::SplitMix64 as Rng;
use tally_core::time::{DAY_MS, HOUR_MS, Interval};
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::pipeline::{self, PurgeBudget, Stored};
use tally_storage::read;
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{EventStore, PURGE_RAW_STATEMENTS, RollupStore, Write, Writer};

use support::{Interrupted, store_batch};

/// 2025-01-10T00:00:00Z.
const DAY0: i64 = 1_736_467_200_000;
const NOW: i64 = DAY0 + 3 * DAY_MS;

fn ctx(project: &str) -> Context<'_> {
    Context {
        project,
        now_ms: NOW,
        settings: Settings::default(),
        id_secret: b"secret",
    }
}

fn event(i: u64, rng: &mut Rng) -> Event {
    let project = ["alpha", "beta", "gamma"][rng.below(3) as usize];
    let status = match rng.below(100) {
        0..=4 => 503,
        5..=14 => 404,
        _ => 200,
    };
    // Lognormal latencies around 40 ms, with a slow tail on one route.
    let route = rng.below(20);
    let normal = (-2.0 * rng.unit().max(1e-12).ln()).sqrt()
        * (2.0 * std::f64::consts::PI * rng.unit()).cos();
    let duration = (3.7 + 0.8 * normal).exp() * if route == 7 { 10.0 } else { 1.0 };
    let name = ["request", "click", "install"][rng.below(3) as usize];
    let country = ["DE", "US", "FR", "JP"][rng.below(4) as usize];
    let raw: RawEvent = serde_json::from_value(serde_json::json!({
        "event_id": format!("{:08x}-0000-4000-8000-{i:012x}", rng.next_u64() as u32),
        "project": project,
        "name": name,
        "timestamp": DAY0 + rng.below(3 * DAY_MS as u64) as i64,
        "route": format!("/api/r{route}/:id"),
        "status": status,
        "duration_ms": duration,
        "user": format!("user-{}", rng.below(2000)),
        "instance": format!("site-{}", rng.below(150)),
        "bytes": rng.below(100_000),
        "country": country,
        "version": format!("1.{}", rng.below(4)),
    }))
    .unwrap();
    validate(raw, &ctx(project), &mut || unreachable!())
        .unwrap()
        .event
}

/// The unique events, then the delivery: shuffled, with 5% duplicates, and a slice of
/// late events (early timestamps) held back to the end.
fn workload(n: u64, seed: u64) -> (Vec<Event>, Vec<Event>) {
    let mut rng = Rng(seed);
    let unique: Vec<Event> = (0..n).map(|i| event(i, &mut rng)).collect();
    let mut delivery = unique.clone();
    for _ in 0..n / 20 {
        delivery.push(unique[rng.below(n) as usize].clone());
    }
    for i in (1..delivery.len()).rev() {
        delivery.swap(i, rng.below(i as u64 + 1) as usize);
    }
    // Late events: everything from the first six hours arrives last.
    let (late, on_time): (Vec<Event>, Vec<Event>) = delivery
        .into_iter()
        .partition(|e| e.timestamp < DAY0 + 6 * HOUR_MS);
    (unique, on_time.into_iter().chain(late).collect())
}

fn deliver(store: &SqliteStore, delivery: &[Event], seed: u64) -> Stored {
    let mut rng = Rng(seed);
    let mut total = Stored::default();
    let mut rest = delivery;
    while !rest.is_empty() {
        let n = (1 + rng.below(500) as usize).min(rest.len());
        let (batch, tail) = rest.split_at(n);
        let stored = store_batch(store, batch, NOW);
        total.received += stored.received;
        total.new += stored.new;
        rest = tail;
    }
    total
}

fn hour_rows(store: &SqliteStore, project: &str) -> BTreeMap<Key, Rollup> {
    block_on(store.rollups_between(project, Period::Hour, 0, i64::MAX, None))
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.value))
        .collect()
}

fn rows(store: &SqliteStore, project: &str, period: Period) -> BTreeMap<Key, Rollup> {
    block_on(store.rollups_between(project, period, 0, i64::MAX, None))
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.value))
        .collect()
}

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

#[test]
fn a_large_disordered_workload_gives_exact_rollups() {
    let (unique, delivery) = workload(100_000, 7);
    assert!(delivery.len() >= 105_000, "5% duplicates");
    let store = SqliteStore::open_in_memory().unwrap();
    let stored = deliver(&store, &delivery, 11);
    assert_eq!(stored.received, delivery.len());
    assert_eq!(stored.new, unique.len(), "every event stored once");

    assert_eq!(
        block_on(pipeline::roll_dirty(&store, Period::Day, 1000, NOW))
            .unwrap()
            .rolled,
        9
    );
    assert_eq!(
        block_on(pipeline::roll_dirty(&store, Period::Month, 1000, NOW))
            .unwrap()
            .rolled,
        3
    );

    for project in ["alpha", "beta", "gamma"] {
        let events: Vec<&Event> = unique.iter().filter(|e| e.project == project).collect();
        let counts = block_on(store.count_events(project, 0, i64::MAX)).unwrap();
        assert_eq!(counts.events, events.len() as u64);

        // Hourly rows equal an exact recomputation from the unique events, byte for byte.
        let exact_hours = rollup::roll(events.iter().copied(), Interval::Hour);
        assert_eq!(hour_rows(&store, project), exact_hours, "{project} hours");

        // Days and months rolled from hours equal rolls from the raw events.
        let days = rows(&store, project, Period::Day);
        assert_eq!(
            days,
            rollup::roll(events.iter().copied(), Interval::Day),
            "{project} days"
        );
        let months = rows(&store, project, Period::Month);
        assert_eq!(
            months,
            rollup::roll(events.iter().copied(), Interval::Month)
        );

        // Per day: counts exact, percentiles within 1%, uniques within 2%.
        for day in 0..3 {
            let start = DAY0 + day * DAY_MS;
            let of_day: Vec<&&Event> = events
                .iter()
                .filter(|e| Interval::Day.floor(e.timestamp) == start)
                .collect();
            let row = &days[&Key {
                project: project.into(),
                start,
                dimension: Dimension::All,
                value: String::new(),
            }];
            assert_eq!(row.count, of_day.len() as u64);
            assert_eq!(
                row.errors,
                of_day.iter().filter(|e| e.is_error()).count() as u64
            );
            let mut durations: Vec<f64> = of_day.iter().filter_map(|e| e.duration_ms).collect();
            durations.sort_by(f64::total_cmp);
            for q in [0.5, 0.95, 0.99] {
                let (got, want) = (
                    row.durations.quantile(q).unwrap(),
                    exact_quantile(&durations, q),
                );
                assert!(
                    (got - want).abs() <= 0.01 * want,
                    "{project} day {day} p{q}: {got} vs {want}"
                );
            }
            let users: HashSet<&str> = of_day.iter().filter_map(|e| e.user.as_deref()).collect();
            let estimate = row.users.count() as f64;
            let error = (estimate - users.len() as f64).abs() / users.len() as f64;
            assert!(
                error <= 0.02,
                "{project} day {day} users {estimate} vs {}",
                users.len()
            );
        }

        // Rebuilding the hours from raw events gives identical rows.
        block_on(pipeline::rebuild_hours(
            &store,
            project,
            DAY0,
            DAY0 + 3 * DAY_MS,
        ))
        .unwrap();
        assert_eq!(hour_rows(&store, project), exact_hours, "{project} rebuilt");
    }

    // Redelivering everything changes nothing.
    let again = deliver(&store, &delivery[..20_000], 13);
    assert_eq!(again.new, 0);
    assert_eq!(
        block_on(store.count_events("alpha", 0, i64::MAX))
            .unwrap()
            .events
            + block_on(store.count_events("beta", 0, i64::MAX))
                .unwrap()
                .events
            + block_on(store.count_events("gamma", 0, i64::MAX))
                .unwrap()
                .events,
        unique.len() as u64
    );
}

#[test]
fn a_failing_commit_loses_and_duplicates_nothing() {
    let (unique, _) = workload(2_000, 3);
    let store = SqliteStore::open_in_memory().unwrap();
    for fail_at in [0, 1, 7, 40] {
        store.fail_commit_at(fail_at);
        let err = block_on(pipeline::store_events(
            &store,
            &unique,
            NOW,
            &MinuteSources::default(),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        let total: u64 = ["alpha", "beta", "gamma"]
            .iter()
            .map(|p| block_on(store.count_events(p, 0, i64::MAX)).unwrap().events)
            .sum();
        assert_eq!(
            total, 0,
            "a failed commit stores nothing (failure at write {fail_at})"
        );
        assert!(hour_rows(&store, "alpha").is_empty());
    }
    let stored = store_batch(&store, &unique, NOW);
    assert_eq!(stored.new, unique.len());
    let redelivered = store_batch(&store, &unique, NOW);
    assert_eq!(redelivered.new, 0);
    let alpha: Vec<&Event> = unique.iter().filter(|e| e.project == "alpha").collect();
    assert_eq!(
        hour_rows(&store, "alpha"),
        rollup::roll(alpha, Interval::Hour)
    );
}

#[test]
fn a_lost_race_is_retried_and_counts_stay_exact() {
    let (unique, _) = workload(3_000, 5);
    let (first, second) = unique.split_at(1_500);
    // The interloper shares some events with the first batch and all its rollup rows.
    let mut interloper = second.to_vec();
    interloper.extend_from_slice(&first[..100]);
    let store = SqliteStore::open_in_memory().unwrap();
    // Another batch commits between the first batch's reads and its commit.
    let racing = Interrupted::new(&store, || {
        store_batch(&store, &interloper, NOW);
    });
    let stored = store_batch(&racing, first, NOW);
    assert_eq!(stored.attempts, 2, "the first commit lost the race");
    assert_eq!(
        stored.new, 1_400,
        "100 events were stored by the interloper"
    );
    for project in ["alpha", "beta", "gamma"] {
        let all: Vec<&Event> = unique.iter().filter(|e| e.project == project).collect();
        assert_eq!(
            hour_rows(&store, project),
            rollup::roll(all, Interval::Hour),
            "{project}"
        );
    }
}

#[test]
fn retention_purges_raw_events_in_chunks_and_keeps_rollups() {
    let (unique, _) = workload(3_000, 9);
    let store = SqliteStore::open_in_memory().unwrap();
    store_batch(&store, &unique, NOW);
    let before = hour_rows(&store, "alpha");
    let alpha = block_on(store.count_events("alpha", 0, i64::MAX))
        .unwrap()
        .events;
    // 92 days after DAY0, the first two days are past the default 90-day retention.
    let later = DAY0 + 92 * DAY_MS;
    let expired: u64 = unique
        .iter()
        .filter(|e| e.timestamp < later - 90 * DAY_MS)
        .count() as u64;
    let mut deleted = 0;
    let mut runs = 0;
    // Three chunks of 250 rows a run (and the job-runs statement).
    let budget = PurgeBudget {
        chunk: 250,
        statements: 3 * PURGE_RAW_STATEMENTS + 2,
    };
    loop {
        let purged = block_on(pipeline::purge_expired(&store, later, budget)).unwrap();
        runs += 1;
        assert!(purged.statements <= budget.statements, "within the budget");
        if purged.deleted == 0 {
            assert!(purged.backlog.is_empty(), "{purged:?}");
            break;
        }
        deleted += purged.deleted;
    }
    assert_eq!(deleted, expired);
    assert!(runs > 2, "it took several bounded runs");
    let remaining = block_on(store.count_events("alpha", 0, later - 90 * DAY_MS)).unwrap();
    assert_eq!(remaining.events, 0);
    assert!(
        block_on(store.count_events("alpha", 0, i64::MAX))
            .unwrap()
            .events
            < alpha
    );
    assert_eq!(hour_rows(&store, "alpha"), before, "rollups stay");
    let hours: BTreeSet<i64> = before.keys().map(|k| k.start).collect();
    assert_eq!(hours.len(), 72);
}

fn named(i: u64, project: &str, name: &str, user: Option<&str>, timestamp: i64) -> Event {
    let raw: RawEvent = serde_json::from_value(serde_json::json!({
        "event_id": format!("00000000-0000-4000-8000-{i:012x}"),
        "project": project, "name": name, "user": user, "timestamp": timestamp,
    }))
    .unwrap();
    validate(raw, &ctx(project), &mut || unreachable!())
        .unwrap()
        .event
}

#[test]
fn sessions_pair_from_stored_marks_whatever_the_arrival_order() {
    let mut rng = Rng(21);
    let mut events = Vec::new();
    let mut i = 0;
    let mut next = |name: &str, user: Option<&str>, t: i64| {
        i += 1;
        named(i, "music", name, user, t)
    };
    // 50 users, each with plays and stops minutes apart, some unmatched, plus noise.
    for u in 0..50 {
        let user = format!("user-{u}");
        let mut t = DAY0 + u * 60_000;
        for _ in 0..4 {
            events.push(next("play", Some(&user), t));
            t += 60_000 + (rng.below(600) as i64) * 1000;
            if rng.below(5) > 0 {
                events.push(next("stop", Some(&user), t));
            }
            t += 30_000;
        }
        events.push(next("pause", Some(&user), t));
    }
    events.push(next("stop", None, DAY0));
    let mut delivery = events.clone();
    delivery.extend_from_slice(&events[..40]);
    for k in (1..delivery.len()).rev() {
        delivery.swap(k, rng.below(k as u64 + 1) as usize);
    }
    let store = SqliteStore::open_in_memory().unwrap();
    deliver(&store, &delivery, 3);

    let expected = {
        let marks = support::marks(&events);
        assert!(marks.len() > 300);
        sessions::stats(&sessions::pair(marks), Interval::Day, DAY0, DAY0 + DAY_MS)
    };
    let got = block_on(tally_storage::sessions::session_stats(
        &store,
        "music",
        DAY0,
        DAY0 + DAY_MS,
        Interval::Day,
    ))
    .unwrap();
    assert_eq!(got, expected);
    let day = got[&DAY0];
    assert!(day.sessions >= 120 && day.sessions < 200, "{day:?}");

    // Custom names: a project whose sessions open with `open` and close with `close`.
    store.with_connection(|c| {
        c.execute(
            "INSERT INTO projects (slug, session_start, session_stop, created_at)
             VALUES ('custom', 'open', 'close', 0)",
            [],
        )
        .unwrap();
    });
    let custom = vec![
        named(9001, "custom", "open", Some("u"), DAY0 + 1000),
        named(9002, "custom", "close", Some("u"), DAY0 + 61_000),
        named(9003, "custom", "play", Some("u"), DAY0 + 70_000),
        named(9004, "custom", "stop", Some("u"), DAY0 + 80_000),
    ];
    store_batch(&store, &custom, NOW);
    let got = block_on(tally_storage::sessions::session_stats(
        &store,
        "custom",
        DAY0,
        DAY0 + DAY_MS,
        Interval::Day,
    ))
    .unwrap();
    assert_eq!(
        got[&DAY0],
        sessions::Stats {
            sessions: 1,
            total_ms: 60_000
        }
    );
}

#[test]
fn reads_over_any_range_equal_merging_the_hours() {
    let (unique, _) = workload(6_000, 13);
    let store = SqliteStore::open_in_memory().unwrap();
    store_batch(&store, &unique, NOW);
    block_on(pipeline::roll_dirty(&store, Period::Day, 1000, NOW)).unwrap();
    // One more event makes the middle day dirty: its day row now lags its hours.
    let late = named(
        999_999,
        "alpha",
        "request",
        None,
        DAY0 + DAY_MS + 5 * HOUR_MS + 7,
    );
    store_batch(&store, &[late], NOW);
    let dirty = block_on(store.dirty_starts("alpha", Period::Day, 0, i64::MAX)).unwrap();
    assert_eq!(dirty, BTreeSet::from([DAY0 + DAY_MS]));

    let hours = hour_rows(&store, "alpha");
    let from_hours = |from: i64, to: i64| {
        let mut m: read::Merged = BTreeMap::new();
        for (k, r) in hours
            .range(..)
            .filter(|(k, _)| k.start >= from && k.start < to)
        {
            m.entry((k.dimension, k.value.clone()))
                .or_default()
                .merge(r);
        }
        m
    };
    let h = HOUR_MS;
    for (from, to) in [
        (DAY0, DAY0 + 3 * DAY_MS),
        (DAY0 + 5 * h + 17, DAY0 + 2 * DAY_MS + 3 * h + 1),
        (DAY0 + DAY_MS, DAY0 + 2 * DAY_MS),
        (DAY0 + 2 * DAY_MS, DAY0 + 3 * DAY_MS),
        (DAY0 + 3 * h, DAY0 + 9 * h),
        (DAY0 - DAY_MS, DAY0 + 10 * DAY_MS),
    ] {
        let from_rows = block_on(read::merged(&store, "alpha", from, to, None)).unwrap();
        let expected = from_hours(Interval::Hour.floor(from), (to + h - 1) / h * h);
        assert_eq!(from_rows, expected, "[{from}, {to})");
    }
    let covering = block_on(read::covering_rows(
        &store,
        "alpha",
        DAY0,
        DAY0 + 3 * DAY_MS,
        None,
        false,
    ))
    .unwrap();
    let days = covering
        .iter()
        .filter(|(p, _, _)| *p == Period::Day)
        .count();
    assert!(days > 0, "clean whole days are read from day rows");
    assert!(
        covering
            .iter()
            .all(|(p, k, _)| *p == Period::Hour || k.start != DAY0 + DAY_MS),
        "the dirty day is read from its hours"
    );

    let series = block_on(read::series(
        &store,
        "alpha",
        DAY0,
        DAY0 + 3 * DAY_MS,
        Interval::Day,
        Some(Dimension::All),
    ))
    .unwrap();
    assert_eq!(series.len(), 3);
    for (start, merged) in &series {
        let mut expected = from_hours(*start, start + DAY_MS);
        expected.retain(|(d, _), _| *d == Dimension::All);
        assert_eq!(merged, &expected, "day {start}");
    }
}

/// Every row of the tables the pipeline writes, as text, without the rollups' lock
/// versions (they count updates, which differ with batching).
fn dump(store: &SqliteStore) -> BTreeMap<&'static str, Vec<String>> {
    let tables = [
        (
            "rollups",
            "SELECT project, period, start, dimension, value, count, errors, bytes, \
             duration_sum_us, hex(durations), hex(users), hex(instances) FROM rollups \
             ORDER BY 1, 2, 3, 4, 5",
        ),
        (
            "raw_events",
            "SELECT hex(event_id), timestamp, name, route, status, duration_us, hex(user) \
             FROM raw_events ORDER BY 1",
        ),
        (
            "session_events",
            "SELECT hex(event_id), timestamp, hex(user), is_start FROM session_events ORDER BY 1",
        ),
        (
            "error_messages",
            "SELECT * FROM error_messages ORDER BY 1, 2",
        ),
        ("dirty_periods", "SELECT * FROM dirty_periods"),
        (
            "session_days",
            "SELECT project_id, day, sessions, total_ms FROM session_days ORDER BY 1, 2",
        ),
        // Which days are still to pair, not how often a mark touched them.
        (
            "session_days_dirty",
            "SELECT project_id, day FROM session_days_dirty ORDER BY 1, 2",
        ),
    ];
    store.with_connection(|c| {
        tables
            .into_iter()
            .map(|(table, sql)| {
                let mut stmt = c.prepare(sql).unwrap();
                let width = stmt.column_count();
                let rows = stmt
                    .query_map([], |r| {
                        let cells: Vec<String> = (0..width)
                            .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                            .collect();
                        Ok(cells.join("|"))
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                (table, rows)
            })
            .collect()
    })
}

#[test]
fn a_backfill_writes_what_the_consumer_and_cron_write() {
    use tally_core::workload::Workload;
    let w = Workload {
        project: "bench",
        events: 6_000,
        days: 40,
        now_ms: NOW,
        id_secret: b"secret",
        seed: 3,
    };

    let loaded = SqliteStore::open_in_memory().unwrap();
    // The whole workload loaded in batches of 500, as the seed example loads one.
    let backfill = || {
        block_on(pipeline::backfill(
            &loaded,
            w.iter(),
            500,
            NOW,
            &MinuteSources::default(),
        ))
        .unwrap()
    };
    let done = backfill();
    assert_eq!((done.received, done.new), (6_000, 6_000));
    assert!(done.batches >= 10 && done.batches <= 12, "{done:?}");
    assert!(done.days_rolled >= 40, "{done:?}");
    assert_eq!(done.months_rolled, 2, "{done:?}");

    // The consumer's way: shuffled, with duplicates, in small batches of any size;
    // then the cron's rolls.
    let mut rng = Rng(5);
    let mut delivery: Vec<Event> = w.iter().collect();
    for _ in 0..300 {
        delivery.push(delivery[rng.below(6_000) as usize].clone());
    }
    for i in (1..delivery.len()).rev() {
        delivery.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let consumed = SqliteStore::open_in_memory().unwrap();
    assert_eq!(deliver(&consumed, &delivery, 9).new, 6_000);
    for period in [Period::Day, Period::Month] {
        while block_on(pipeline::roll_dirty(&consumed, period, 7, NOW))
            .unwrap()
            .rolled
            > 0
        {}
    }
    while block_on(tally_storage::sessions::roll_session_days(
        &consumed, 7, NOW,
    ))
    .unwrap()
    .rolled
        > 0
    {}

    let (a, b) = (dump(&loaded), dump(&consumed));
    assert!(done.session_days_rolled >= 38, "{done:?}");
    assert!(
        !a["session_days"].is_empty(),
        "sessions were paired per day"
    );
    assert!(a["rollups"].len() > 10_000, "{}", a["rollups"].len());
    assert!(!a["session_events"].is_empty() && !a["error_messages"].is_empty());
    assert!(a["dirty_periods"].is_empty(), "everything rolled");
    for table in a.keys() {
        assert!(a[table] == b[table], "{table} differs");
    }

    // Loading the same events again changes nothing.
    let again = backfill();
    assert_eq!((again.received, again.new), (6_000, 0));
    assert!(dump(&loaded) == a);
}

/// Inserts `n` bare raw events of `project` (which must exist), one a millisecond from
/// `from_ms`, with a session mark each: volume seeded in SQL, as the pipeline would
/// take minutes to store it.
fn seed_raw(store: &SqliteStore, project: &str, n: u32, from_ms: i64) {
    store.with_connection(|c| {
        let seeded = c
            .execute(
                "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?2)
                 INSERT INTO raw_events (project_id, event_id, timestamp, name)
                 SELECT (SELECT id FROM projects WHERE slug = ?1),
                        unhex(printf('%032x', ?4 + i)), ?3 + i, 'request'
                 FROM seq",
                rusqlite::params![project, n, from_ms, i64::from(n) * 1_000_000_000],
            )
            .unwrap();
        assert_eq!(seeded, n as usize);
        c.execute(
            "INSERT INTO session_events (project_id, event_id, timestamp, user, is_start)
             SELECT project_id, event_id, timestamp, unhex('00'), 1 FROM raw_events
             WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND timestamp < ?2",
            rusqlite::params![project, from_ms + i64::from(n)],
        )
        .unwrap();
    });
}

fn raw_count(store: &SqliteStore, project: &str, before_ms: i64) -> i64 {
    store.with_connection(|c| {
        c.query_row(
            "SELECT COUNT(*) FROM raw_events
             WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND timestamp < ?2",
            rusqlite::params![project, before_ms],
            |r| r.get(0),
        )
        .unwrap()
    })
}

#[test]
fn retention_removes_150_thousand_expired_events_within_one_day_of_runs() {
    // The daily purge used to delete at most 20,000 raw events per project: a project
    // with 100K events a day fell 80K further behind every day.
    let store = SqliteStore::open_in_memory().unwrap();
    let (unique, _) = workload(600, 4);
    store_batch(&store, &unique, NOW);
    let later = DAY0 + 91 * DAY_MS;
    // The last run's cutoff: the workload's third day is still within retention then.
    let cutoff = later + DAY_MS - 90 * DAY_MS;
    seed_raw(&store, "alpha", 150_000, DAY0 - 30 * DAY_MS);
    let kept = raw_count(&store, "beta", i64::MAX) - raw_count(&store, "beta", cutoff);
    assert!(kept > 0);

    let mut deleted = 0;
    let mut last = None;
    // One day of scheduled runs: 24 hourly ones and the daily one, each within its budget.
    for hour in 0..=24 {
        let purged = block_on(pipeline::purge_expired(
            &store,
            later + hour * HOUR_MS,
            pipeline::HOURLY_PURGE,
        ))
        .unwrap();
        assert!(purged.statements <= pipeline::HOURLY_PURGE.statements);
        deleted += purged.deleted;
        last = Some(purged);
    }
    for project in ["alpha", "beta", "gamma"] {
        assert_eq!(raw_count(&store, project, cutoff), 0, "{project}");
    }
    assert!(
        deleted >= 2 * 150_000,
        "raw events and their marks: {deleted}"
    );
    assert_eq!(last.unwrap().backlog, []);
    assert_eq!(
        raw_count(&store, "beta", i64::MAX),
        kept,
        "unexpired events stay"
    );
}

#[test]
fn a_purge_out_of_budget_resumes_where_it_stopped_and_reports_the_backlog() {
    let store = SqliteStore::open_in_memory().unwrap();
    let (unique, _) = workload(300, 5);
    store_batch(&store, &unique, NOW);
    let later = DAY0 + 120 * DAY_MS;
    for (i, project) in ["alpha", "beta", "gamma"].into_iter().enumerate() {
        seed_raw(
            &store,
            project,
            1_000,
            DAY0 - 30 * DAY_MS + i as i64 * 10_000,
        );
    }
    // Four chunks of 100 rows a run: every project needs several runs.
    let budget = PurgeBudget {
        chunk: 100,
        statements: 4 * PURGE_RAW_STATEMENTS + 2,
    };
    let first = block_on(pipeline::purge_expired(&store, later, budget)).unwrap();
    assert_eq!(
        first.statements, budget.statements,
        "four chunks and the job runs"
    );
    let behind: Vec<(&str, u64)> = first
        .backlog
        .iter()
        .map(|b| (b.project.as_str(), b.rows_left))
        .collect();
    let of = |project: &str| 1_000 + unique.iter().filter(|e| e.project == project).count() as u64;
    // Alpha lost four chunks of 100 raw events; the others were not reached.
    assert_eq!(
        behind,
        [
            ("alpha", of("alpha") - 400),
            ("beta", of("beta")),
            ("gamma", of("gamma"))
        ]
    );
    assert_eq!(first.backlog[0].oldest_expired_ms, DAY0 - 30 * DAY_MS + 400);
    assert_eq!(
        first.backlog[2].oldest_expired_ms,
        DAY0 - 30 * DAY_MS + 20_000
    );
    let mut runs = 1;
    loop {
        let purged = block_on(pipeline::purge_expired(&store, later, budget)).unwrap();
        runs += 1;
        if purged.backlog.is_empty() {
            break;
        }
        assert!(runs < 40, "the purge never caught up: {purged:?}");
    }
    for project in ["alpha", "beta", "gamma"] {
        assert_eq!(
            raw_count(&store, project, later - 90 * DAY_MS),
            0,
            "{project}"
        );
    }
    // Every project was reached although no run could visit them all.
    assert!(runs > 3, "{runs}");
}

#[test]
fn dead_letters_are_purged_with_their_projects_retention() {
    // Dead letters keep whole event bodies and were never purged.
    let store = SqliteStore::open_in_memory().unwrap();
    let (unique, _) = workload(300, 6);
    store_batch(&store, &unique, NOW);
    let alpha: Vec<Event> = unique
        .iter()
        .filter(|e| e.project == "alpha")
        .take(2)
        .cloned()
        .collect();
    let events_body = tally_core::queue::pack(&alpha, 100_000).remove(0);
    let dropped_body = tally_core::queue::pack_dropped(tally_core::queue::Dropped {
        event_id: "00000000-0000-4000-8000-000000000001".into(),
        project: "beta".into(),
        timestamp: NOW,
        reason: "bot".into(),
    });
    let letters = [
        ("m-events", events_body.as_str()),
        ("m-dropped", dropped_body.as_str()),
        ("m-garbage", "not json"),
    ];
    for (id, body) in letters {
        block_on(store.commit(&[Write::DeadLetter {
            message_id: id,
            queue: "tally-events-dlq",
            body,
            sent_at_ms: NOW,
            now_ms: NOW,
        }]))
        .unwrap();
    }
    let kept = || -> Vec<(String, Option<String>)> {
        store.with_connection(|c| {
            let mut stmt = c
                .prepare("SELECT message_id, project FROM dead_letters ORDER BY message_id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        })
    };
    assert_eq!(
        kept(),
        [
            ("m-dropped".to_owned(), Some("beta".to_owned())),
            ("m-events".to_owned(), Some("alpha".to_owned())),
            ("m-garbage".to_owned(), None),
        ]
    );
    // Alpha keeps 7 days, beta the default 90.
    store.with_connection(|c| {
        c.execute(
            "UPDATE projects SET retention_days = 7 WHERE slug = 'alpha'",
            [],
        )
        .unwrap()
    });
    block_on(pipeline::purge_expired(
        &store,
        NOW + 8 * DAY_MS,
        pipeline::HOURLY_PURGE,
    ))
    .unwrap();
    let ids = |kept: Vec<(String, Option<String>)>| {
        kept.into_iter().map(|(id, _)| id).collect::<Vec<_>>()
    };
    assert_eq!(ids(kept()), ["m-dropped", "m-garbage"]);
    block_on(pipeline::purge_expired(
        &store,
        NOW + 91 * DAY_MS,
        pipeline::HOURLY_PURGE,
    ))
    .unwrap();
    assert_eq!(
        ids(kept()),
        Vec::<String>::new(),
        "orphans go after 90 days"
    );
}
