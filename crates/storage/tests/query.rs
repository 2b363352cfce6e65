//! The reads behind the query API against real SQLite: error classes with their routes
//! and last messages, first and last hours, funnel hits, the realtime view's minute rows
//! and recent visitors (and the query plans that keep them from growing with volume).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use tally_core::alerts::MinuteSources;
use tally_core::filter::{Filters, SAMPLE_BUCKETS};
use tally_core::funnel;
use tally_core::realtime::{self, Window};
use tally_core::rollup::{Dimension, Period, parse_error_route};
use tally_core::testing::SplitMix64 as Rng;
use tally_core::time::{DAY_MS, HOUR_MS, Interval, MINUTE_MS};
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::exec::Counted;
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{ErrorMessage, QueryStore, RollupStore, Write, Writer, pipeline, read};

use support::store_batch;

/// 2025-01-10T00:00:00Z.
const DAY0: i64 = 1_736_467_200_000;
const NOW: i64 = DAY0 + 4 * DAY_MS;

fn event(i: u64, raw: serde_json::Value) -> Event {
    let mut raw = raw;
    raw["event_id"] = json!(format!("00000000-0000-4000-8000-{i:012x}"));
    raw["project"] = json!("site");
    support::validated("site", NOW, raw)
}

/// Errors of three classes over three days on four routes (some without a route), with
/// messages, mixed with successful requests.
fn workload(n: u64, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let t = DAY0 + rng.below(3 * DAY_MS as u64) as i64;
            let mut raw = json!({"name": "request", "timestamp": t, "status": 200});
            if rng.below(3) == 0 {
                let class = ["TypeError", "Timeout", "DbError"][rng.below(3) as usize];
                raw["error_class"] = json!(class);
                raw["error_message"] = json!(format!("{class} #{i}"));
                raw["status"] = json!(500);
            }
            if rng.below(5) > 0 {
                raw["route"] = json!(format!("/r{}", rng.below(4)));
            }
            event(i, raw)
        })
        .collect()
}

fn store_in_batches(store: &SqliteStore, events: &[Event], batch: usize) {
    for chunk in events.chunks(batch) {
        store_batch(store, chunk, NOW);
    }
}

#[test]
fn error_routes_and_last_messages_are_exact_whatever_the_delivery() {
    let events = workload(3_000, 1);
    let store = SqliteStore::open_in_memory().unwrap();
    // Reversed, in uneven batches, and then half of it again.
    let mut delivery = events.clone();
    delivery.reverse();
    store_in_batches(&store, &delivery, 137);
    store_in_batches(&store, &events[..1_500], 401);

    let merged = block_on(read::merged(
        &store,
        "site",
        DAY0,
        DAY0 + 3 * DAY_MS,
        Some(Dimension::ErrorRoute),
    ))
    .unwrap();
    let got: BTreeMap<(String, Option<String>), u64> = merged
        .iter()
        .map(|((_, value), row)| (parse_error_route(value).unwrap(), row.count))
        .collect();
    let mut expected: BTreeMap<(String, Option<String>), u64> = BTreeMap::new();
    for e in &events {
        if let Some(class) = &e.error_class {
            *expected
                .entry((class.clone(), e.route.clone()))
                .or_default() += 1;
        }
    }
    assert_eq!(got, expected);
    assert!(expected.keys().any(|(_, route)| route.is_none()));

    let mut latest: BTreeMap<String, ErrorMessage> = BTreeMap::new();
    for e in &events {
        let (Some(class), Some(message)) = (&e.error_class, &e.error_message) else {
            continue;
        };
        let candidate = ErrorMessage {
            timestamp: e.timestamp,
            message: message.clone(),
        };
        let slot = latest.entry(class.clone()).or_insert(candidate.clone());
        if (candidate.timestamp, &candidate.message) > (slot.timestamp, &slot.message) {
            *slot = candidate;
        }
    }
    assert_eq!(latest.len(), 3);
    assert_eq!(block_on(store.error_messages("site")).unwrap(), latest);
    assert!(block_on(store.error_messages("other")).unwrap().is_empty());
}

#[test]
fn the_last_message_breaks_ties_by_text_and_is_purged_with_raw_events() {
    let store = SqliteStore::open_in_memory().unwrap();
    let t = DAY0 + 5 * HOUR_MS;
    let e = |i, message: &str, at| {
        event(
            i,
            json!({"name": "request", "error_class": "E", "error_message": message, "timestamp": at}),
        )
    };
    // Same instant: the greater text wins in either order.
    store_batch(&store, &[e(1, "b", t)], NOW);
    store_batch(&store, &[e(2, "a", t)], NOW);
    let kept = |store: &SqliteStore| block_on(store.error_messages("site")).unwrap();
    let at = |timestamp, message: &str| ErrorMessage {
        timestamp,
        message: message.into(),
    };
    assert_eq!(kept(&store)["E"], at(t, "b"));
    // An older message changes nothing; a newer one replaces it.
    store_batch(&store, &[e(3, "old", t - 1)], NOW);
    assert_eq!(kept(&store)["E"], at(t, "b"));
    store_batch(&store, &[e(4, "new", t + 1)], NOW);
    assert_eq!(kept(&store)["E"], at(t + 1, "new"));
    // An error without a message leaves it too.
    let silent = event(
        5,
        json!({"name": "request", "error_class": "E", "timestamp": t + 9}),
    );
    store_batch(&store, &[silent], NOW);
    assert_eq!(kept(&store)["E"], at(t + 1, "new"));

    let purge = |before_ms| {
        block_on(store.commit(&[Write::PurgeRaw {
            project: "site",
            before_ms,
            limit: 100,
        }]))
        .unwrap()
    };
    purge(t + 1);
    assert_eq!(kept(&store).len(), 1, "not yet past retention");
    purge(t + 2);
    assert!(kept(&store).is_empty(), "purged with the raw events");
}

#[test]
fn first_and_last_hours_equal_scanning_the_hours() {
    let events = workload(2_000, 2);
    let store = SqliteStore::open_in_memory().unwrap();
    store_in_batches(&store, &events, 500);
    block_on(pipeline::roll_dirty(&store, Period::Day, 100, NOW)).unwrap();
    // One late event makes the first day dirty again.
    let late = event(
        99_999,
        json!({"name": "request", "error_class": "Late", "timestamp": DAY0 + 7 * HOUR_MS + 5}),
    );
    store_batch(&store, std::slice::from_ref(&late), NOW);

    let mut all = events.clone();
    all.push(late);
    for (from, to) in [
        (DAY0, DAY0 + 3 * DAY_MS),
        (DAY0 + 5 * HOUR_MS + 3, DAY0 + 2 * DAY_MS + 7 * HOUR_MS),
        (DAY0 + DAY_MS, DAY0 + 2 * DAY_MS),
        (DAY0 - DAY_MS, DAY0 + 9 * DAY_MS),
    ] {
        let (lo, hi) = (
            Interval::Hour.floor(from),
            (to + HOUR_MS - 1) / HOUR_MS * HOUR_MS,
        );
        let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for e in all.iter().filter(|e| (lo..hi).contains(&e.timestamp)) {
            if let Some(class) = &e.error_class {
                let hour = Interval::Hour.floor(e.timestamp);
                let span = expected.entry(class.clone()).or_insert((hour, hour));
                span.0 = span.0.min(hour);
                span.1 = span.1.max(hour);
            }
        }
        let got = block_on(read::first_last_hours(
            &store,
            "site",
            from,
            to,
            Dimension::ErrorClass,
        ))
        .unwrap();
        assert_eq!(got, expected, "[{from}, {to})");
    }
    let day_rows = block_on(store.rollups_between("site", Period::Day, 0, i64::MAX, None)).unwrap();
    assert!(!day_rows.is_empty(), "clean days were read from day rows");
}

#[test]
fn funnel_hits_read_the_steps_events_with_a_user_only() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut rng = Rng(3);
    let names = ["open", "click", "buy", "pause"];
    let events: Vec<Event> = (0..12_000)
        .map(|i| {
            let mut raw = json!({
                "name": names[rng.below(4) as usize],
                // Many share a millisecond, so the cursor must order by id too.
                "timestamp": DAY0 + rng.below(2_000) as i64 * 1000,
            });
            if rng.below(10) > 0 {
                raw["user"] = json!(format!("u{}", rng.below(300)));
            }
            event(i, raw)
        })
        .collect();
    store_in_batches(&store, &events, 3_000);
    let steps: Vec<String> = ["open", "click", "buy"].map(String::from).to_vec();
    let (from, to) = (DAY0 + 100_000, DAY0 + 1_900_000);

    let names: Vec<&str> = steps.iter().map(String::as_str).collect();
    let read = |limit| {
        block_on(store.funnel_hits(
            "site",
            from,
            to,
            &names,
            0..SAMPLE_BUCKETS,
            &Filters::none(),
            limit,
        ))
        .unwrap()
        .0
    };
    let hits = read(100_000);
    let expected: BTreeSet<String> = events
        .iter()
        .filter(|e| e.user.is_some() && steps.contains(&e.name))
        .filter(|e| (from..to).contains(&e.timestamp))
        .map(|e| e.event_id.replace('-', ""))
        .collect();
    assert!(expected.len() > 5_000, "{}", expected.len());
    let ids: Vec<String> = hits.iter().map(|h| h.event_id.clone()).collect();
    assert_eq!(ids.len(), expected.len(), "no hit twice, none missed");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);

    // The funnel over stored hits equals the funnel over the events themselves.
    let direct = support::direct_hits(&events, from, to);
    let window = 10 * 60_000;
    let counts = funnel::count(hits, &steps, window);
    assert_eq!(counts, funnel::count(direct, &steps, window));
    assert!(counts[0] > counts[2] && counts[2] > 0, "{counts:?}");

    // A limit: that many, and no more.
    assert_eq!(read(6_001).len(), 6_001);
}

#[test]
fn realtime_reads_minute_rows_and_recent_visitors_of_the_window_only() {
    let store = SqliteStore::open_in_memory().unwrap();
    let window = Window::ending_at(NOW - 20_000);
    let now = window.now_ms;
    let at = |i: u64, ago_ms: i64, user: Option<&str>, route: &str, error: bool| {
        let mut raw = json!({"name": "request", "timestamp": now - ago_ms, "route": route,
                             "duration_ms": 10 + i});
        if let Some(user) = user {
            raw["user"] = json!(user);
        }
        if error {
            raw["error_class"] = json!("Timeout");
        }
        if i % 2 == 1 {
            raw["source"] = json!("hn");
        }
        event(i, raw)
    };
    let events = vec![
        // The last five minutes: three users (one event without any) on two routes.
        at(1, 1_000, Some("ann"), "/a", false),
        at(2, 2_000, Some("bob"), "/a", true),
        at(3, 3_000, None, "/b", false),
        at(4, 4 * MINUTE_MS, Some("cid"), "/a", false),
        at(5, 4 * MINUTE_MS + 1, Some("ann"), "/b", false),
        // Within the 30 minutes, not the five: counted by minute, not as visitors.
        at(6, 12 * MINUTE_MS, Some("dan"), "/c", false),
        // Older than the 30 minutes: in neither.
        at(7, 40 * MINUTE_MS, Some("eve"), "/old", true),
        at(8, 3 * HOUR_MS, Some("fay"), "/old", false),
    ];
    store_batch(&store, &events, now);

    let view = block_on(read::realtime(&store, "site", window)).unwrap();
    let minutes = &view.minutes;
    assert_eq!(minutes.len(), 30);
    assert_eq!(minutes.iter().map(|m| m.events).sum::<u64>(), 6);
    assert_eq!(minutes.iter().map(|m| m.errors).sum::<u64>(), 1);
    let expected_now = events[..6]
        .iter()
        .filter(|e| e.timestamp >= window.current_minute)
        .count() as u64;
    assert_eq!(minutes[29].events, expected_now);
    assert!(minutes[29].partial);
    let shown: Vec<(&str, u64)> = view
        .routes
        .iter()
        .map(|t| (t.value.as_str(), t.events))
        .collect();
    assert_eq!(shown, [("/a", 3), ("/b", 2), ("/c", 1)]);
    let sources: Vec<(&str, u64)> = view
        .sources
        .iter()
        .map(|t| (t.value.as_str(), t.events))
        .collect();
    assert_eq!(sources, [("hn", 3)], "events 1, 3 and 5; 7 is too old");
    assert_eq!((view.visitors.count, view.visitors.events_read), (3, 5));

    let visitors = |budget| {
        block_on(store.recent_visitors("site", window.visitors_from(), now + 1, budget)).unwrap()
    };
    let all_five = visitors(realtime::VISITOR_ROWS_BUDGET);
    assert_eq!((all_five.count, all_five.events_read), (3, 5));
    assert!(!all_five.truncated);
    // A budget of two reads the two most recent events: ann and bob, and says so.
    let cut = visitors(2);
    assert_eq!((cut.count, cut.events_read, cut.truncated), (2, 2, true));
    assert_eq!(
        block_on(store.recent_visitors("nobody", window.visitors_from(), now + 1, 10)).unwrap(),
        realtime::visitors(0, 0, 10)
    );
}

#[test]
fn realtime_statements_search_their_indexes_and_never_sort() {
    // Both tables only grow: a statement that scanned a project's rows, or sorted them,
    // would cost more with every event the project ever sent.
    let store = SqliteStore::open_in_memory().unwrap();
    let plan = |statement| support::query_plan(&store, statement);
    let visitors = plan(tally_core::sql::RECENT_VISITORS);
    let raw: Vec<&String> = visitors
        .iter()
        .filter(|s| s.contains("raw_events"))
        .collect();
    assert_eq!(
        raw,
        [
            "SEARCH raw_events USING INDEX raw_events_by_time (project_id=? AND timestamp>? AND timestamp<?)"
        ],
        "{visitors:?}"
    );
    let minutes = plan(tally_core::sql::ROLLUPS_OF_DIMENSION);
    assert_eq!(
        minutes,
        [
            "SEARCH rollups USING PRIMARY KEY (project=? AND period=? AND dimension=? AND start>? AND start<?)"
        ],
    );
    // The distinct count's own B-tree and the scan of the subquery hold at most the
    // budget's rows; no table is scanned and no ORDER BY sorts.
    for steps in [&visitors, &minutes] {
        assert!(
            !steps.iter().any(|s| s.contains("FOR ORDER BY")
                || s.starts_with("SCAN raw_events")
                || s.starts_with("SCAN rollups")),
            "{steps:?}"
        );
    }
}

/// The virtual-machine steps SQLite took to run `sql` with `params` to the end: a
/// measure of the rows a statement touched that does not depend on timing.
fn steps_of(store: &SqliteStore, sql: &str, params: &[rusqlite::types::Value]) -> i32 {
    store.with_connection(|c| {
        let mut stmt = c.prepare(sql).unwrap();
        let mut rows = stmt.query(rusqlite::params_from_iter(params)).unwrap();
        while rows.next().unwrap().is_some() {}
        drop(rows);
        stmt.get_status(rusqlite::StatementStatus::VmStep)
    })
}

#[test]
fn realtime_reads_cost_the_same_whatever_the_older_volume() {
    let store = SqliteStore::open_in_memory().unwrap();
    let window = Window::ending_at(NOW - 20_000);
    let now = window.now_ms;
    let mut rng = Rng(7);
    // Events older than the thirty minutes, over the last twenty hours: their minute
    // rows are still kept (for alert rules), their raw rows too.
    let mut next_id = 0;
    let mut older = |n: u64, rng: &mut Rng| -> Vec<Event> {
        (0..n)
            .map(|_| {
                next_id += 1;
                let ago = 31 * MINUTE_MS + rng.below(20 * HOUR_MS as u64) as i64;
                let raw = json!({"name": "request", "timestamp": now - ago,
                                 "route": format!("/r{}", rng.below(50)),
                                 "source": format!("s{}", rng.below(5)),
                                 "user": format!("u{}", rng.below(500))});
                event(next_id, raw)
            })
            .collect()
    };
    let recent: Vec<Event> = (0..20)
        .map(|i| {
            let raw = json!({"name": "request", "timestamp": now - i * 10_000,
                             "route": "/now", "user": format!("v{}", i % 7)});
            event(1_000_000 + i as u64, raw)
        })
        .collect();
    store_batch(&store, &recent, now);
    store_in_batches_at(&store, &older(5_000, &mut rng), now);

    let text = |v: &str| rusqlite::types::Value::Text(v.to_owned());
    let int = rusqlite::types::Value::Integer;
    let visitors = [
        text("site"),
        int(window.visitors_from()),
        int(now + 1),
        int(i64::from(realtime::VISITOR_ROWS_BUDGET)),
    ];
    let minutes = |dimension: &str| {
        [
            text("site"),
            text("minute"),
            int(window.first_minute),
            int(window.end_ms()),
            text(dimension),
        ]
    };
    let measure = || {
        [
            steps_of(&store, tally_core::sql::RECENT_VISITORS, &visitors),
            steps_of(
                &store,
                tally_core::sql::ROLLUPS_OF_DIMENSION,
                &minutes("all"),
            ),
            steps_of(
                &store,
                tally_core::sql::ROLLUPS_OF_DIMENSION,
                &minutes("route"),
            ),
        ]
    };
    let before = measure();
    // Ten times the older volume, and the reads take exactly the same steps.
    store_in_batches_at(&store, &older(45_000, &mut rng), now);
    assert_eq!(measure(), before);
    let view = block_on(read::realtime(&store, "site", window)).unwrap();
    assert_eq!(view.minutes.iter().map(|m| m.events).sum::<u64>(), 20);
    assert_eq!(view.visitors.count, 7);
}

fn store_in_batches_at(store: &SqliteStore, events: &[Event], now: i64) {
    for chunk in events.chunks(5_000) {
        store_batch(store, chunk, now);
    }
}

/// A dashboard over a year whose every other day is dirty (late events that the day roll
/// has not caught up with) reads each dimension within a fixed number of D1 queries, not
/// one per dirty day, and still answers exactly.
#[test]
fn a_year_with_every_other_day_dirty_is_covered_within_a_fixed_number_of_queries() {
    const YEAR_DAYS: i64 = 366;
    let now = DAY0 + (YEAR_DAYS + 2) * DAY_MS;
    let at = |i: u64, day: i64, hour: i64, route: &str| {
        let raw = json!({
            "event_id": format!("00000000-0000-4000-8000-{i:012x}"),
            "project": "site", "name": "request", "route": route, "status": 200,
            "duration_ms": (i % 97) as f64, "user": format!("u{}", i % 41),
            "timestamp": DAY0 + day * DAY_MS + hour * HOUR_MS + 7,
        });
        let ctx = Context {
            project: "site",
            now_ms: now,
            settings: Settings {
                retention_days: 400,
            },
            id_secret: b"secret",
        };
        let raw: RawEvent = serde_json::from_value(raw).unwrap();
        validate(raw, &ctx, &mut || unreachable!()).unwrap().event
    };
    let store = SqliteStore::open_in_memory().unwrap();
    let year: Vec<Event> = (0..YEAR_DAYS)
        .flat_map(|day| {
            let i = day as u64 * 2;
            [
                at(i, day, day % 24, "/a"),
                at(i + 1, day, 23 - day % 24, "/b"),
            ]
        })
        .collect();
    block_on(pipeline::backfill(
        &store,
        year,
        500,
        now,
        &MinuteSources::default(),
    ))
    .unwrap();
    let late: Vec<Event> = (0..YEAR_DAYS)
        .step_by(2)
        .map(|day| at(10_000 + day as u64, day, 12, "/late"))
        .collect();
    store_batch(&store, &late, now);
    let (from, to) = (DAY0 + 5 * HOUR_MS, DAY0 + YEAR_DAYS * DAY_MS);
    let dirty = block_on(store.dirty_starts("site", Period::Day, DAY0, to)).unwrap();
    assert_eq!(
        dirty.len(),
        YEAR_DAYS as usize / 2,
        "every other day is dirty"
    );

    // The exact answer: every hour row of the range, merged.
    let hours = block_on(read::covering_rows(
        &store,
        "site",
        from,
        to,
        Some(Dimension::Route),
        true,
    ))
    .unwrap();
    let expected = read::merge(&hours);
    assert_eq!(expected.len(), 3, "{:?}", expected.keys());

    let counted = Counted::new(&store);
    let merged = block_on(read::merged(
        &counted,
        "site",
        from,
        to,
        Some(Dimension::Route),
    ))
    .unwrap();
    let queries = counted.take_queries();
    assert_eq!(merged, expected);
    assert!(
        queries <= read::MAX_COVER_QUERIES,
        "{queries} queries for one dimension over the year"
    );
}

/// Reading several dimensions at once (the dashboard's and every multi-dimension
/// report's read) gives exactly the rows of one read per dimension, in the queries of
/// one covering read; the counts-only read of hour rows gives their counts.
#[test]
fn several_dimensions_are_covered_in_the_queries_of_one_read() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut events = workload(3_000, 17);
    // Late events of the first day, after its roll: that day is dirty, read from hours.
    let late = events.split_off(2_700);
    block_on(pipeline::backfill(
        &store,
        events,
        500,
        NOW,
        &MinuteSources::default(),
    ))
    .unwrap();
    store_in_batches(&store, &late, 300);
    let dimensions = [
        Dimension::All,
        Dimension::Route,
        Dimension::Status,
        Dimension::ErrorClass,
    ];
    for (from, to, finest) in [
        (DAY0 + 5 * HOUR_MS, NOW, false),
        (DAY0, DAY0 + 3 * DAY_MS, false),
        (DAY0 + 20 * HOUR_MS, DAY0 + 2 * DAY_MS + 3 * HOUR_MS, true),
    ] {
        let mut one_by_one = Vec::new();
        for d in dimensions {
            one_by_one.extend(
                block_on(read::covering_rows(
                    &store,
                    "site",
                    from,
                    to,
                    Some(d),
                    finest,
                ))
                .unwrap(),
            );
        }
        let counted = Counted::new(&store);
        let at_once = block_on(read::covering_rows_of(
            &counted,
            "site",
            from,
            to,
            &dimensions,
            finest,
        ))
        .unwrap();
        assert!(counted.take_queries() <= read::MAX_COVER_QUERIES);
        let sorted = |mut rows: Vec<(Period, tally_core::rollup::Key, _)>| {
            rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            rows
        };
        assert!(one_by_one.len() > 50, "{}", one_by_one.len());
        assert_eq!(sorted(at_once), sorted(one_by_one));
    }
    assert!(
        block_on(read::covering_rows_of(
            &store,
            "site",
            DAY0,
            NOW,
            &[],
            false
        ))
        .unwrap()
        .is_empty()
    );

    let (from, to) = (DAY0 + 90 * MINUTE_MS, DAY0 + 2 * DAY_MS + 30 * MINUTE_MS);
    let series = block_on(read::series(
        &store,
        "site",
        from,
        to,
        Interval::Hour,
        Some(Dimension::Route),
    ))
    .unwrap();
    let counts = block_on(read::hourly_counts(
        &store,
        "site",
        from,
        to,
        Dimension::Route,
    ))
    .unwrap();
    assert_eq!(counts, read::counts_of(&series, Dimension::Route));
    assert_eq!(counts.len(), 48, "every hour of the range, whole hours");
}

#[test]
fn multi_dimension_and_count_reads_search_the_primary_key_and_never_sort() {
    let store = SqliteStore::open_in_memory().unwrap();
    let search = "SEARCH rollups USING PRIMARY KEY (project=? AND period=? AND dimension=? AND start>? AND start<?)";
    let counts = support::query_plan(&store, tally_core::sql::ROLLUP_COUNTS_OF_DIMENSION);
    assert_eq!(counts, [search]);
    let several = support::query_plan(&store, tally_core::sql::ROLLUPS_OF_DIMENSIONS);
    assert!(several.iter().any(|s| s == search), "{several:?}");
    assert!(
        !several
            .iter()
            .any(|s| s.contains("FOR ORDER BY") || s.starts_with("SCAN rollups")),
        "{several:?}"
    );
}

#[test]
fn statements_over_every_dimension_seek_each_through_the_primary_key() {
    // The primary key orders by dimension before start: a statement over a period's
    // starts that named no dimension would read every row of the project and period.
    let store = SqliteStore::open_in_memory().unwrap();
    for statement in [
        tally_core::sql::ROLLUPS_BETWEEN,
        tally_core::sql::DELETE_STALE_ROLLUPS,
        tally_core::sql::PURGE_MINUTE_ROLLUPS,
    ] {
        let plan = support::query_plan(&store, statement);
        assert!(
            plan.iter().any(|s| s.starts_with(
                "SEARCH rollups USING PRIMARY KEY (project=? AND period=? AND dimension=? AND start"
            )),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|s| s.starts_with("SCAN rollups")),
            "{plan:?}"
        );
    }
}
