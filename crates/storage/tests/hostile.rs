//! The consumer under hostile delivery (issue 14), against real SQLite: a mixed stream
//! of queue messages — several projects, a burst of unique values, bot records, a
//! message whose events touch a row no one can read, events carrying values past every
//! cap — delivered in batches through `pipeline::store_messages` with redeliveries and
//! injected commit failures, as the queue would. Every event is counted exactly once,
//! the bad message alone is dead-lettered, and no row exceeds its bound.

mod support;

use std::collections::{BTreeMap, VecDeque};

use serde_json::json;
use tally_core::alerts::{MINUTE_ROWS_KEPT_MS, MinuteSources};
use tally_core::queue::{Dropped, Message};
use tally_core::rollup::{self, Dimension, Key, MAX_STORED_INTEGER, Period, Rollup};
use tally_core::testing::SplitMix64 as Rng;
use tally_core::time::{HOUR_MS, Interval, MINUTE_MS};
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::pipeline;
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{EventStore, RollupStore};

use support::store_batch;

/// 2026-03-02T10:20:00Z.
const NOW: i64 = 1_772_446_800_000;
/// Deliveries of one message before the queue dead-letters it (`max_retries` 3).
const MAX_DELIVERIES: u32 = 4;

fn validated(raw: serde_json::Value) -> Event {
    let raw: RawEvent = serde_json::from_value(raw).unwrap();
    let project = raw.project.clone().unwrap();
    let ctx = Context {
        project: &project,
        now_ms: NOW,
        settings: Settings::default(),
        id_secret: b"secret",
    };
    validate(raw, &ctx, &mut || unreachable!()).unwrap().event
}

fn id(project: u64, i: u64) -> String {
    format!("{project:08x}-0000-4000-8000-{i:012x}")
}

/// A mixed event of a project of few values: requests with errors and latencies,
/// page views with campaigns, image deliveries, installs; the last 30 hours.
fn mixed(project: &str, p: u64, i: u64, rng: &mut Rng) -> Event {
    let at = NOW - rng.below(30 * HOUR_MS as u64) as i64;
    let raw = match rng.below(4) {
        0 => json!({"name": "request", "route": format!("/api/r{}", rng.below(12)),
            "status": ([200, 200, 404, 503][rng.index(4)]), "duration_ms": rng.lognormal(40.0, 0.8),
            "bytes": rng.below(100_000), "user": format!("u{}", rng.below(300)),
            "instance": format!("site-{}", rng.below(40)), "version": "2.5.0",
            "country": (["DE", "US", "JP"][rng.index(3)]), "colo": "FRA"}),
        1 => json!({"name": "error", "route": "/api/login", "status": 500,
            "error_class": "TimeoutError", "error_message": format!("upstream {}", rng.below(9))}),
        2 => json!({"name": "pageview", "route": "/pricing", "source": "newsletter",
            "medium": "email", "campaign": (["spring", "autumn"][rng.index(2)]),
            "user": format!("u{}", rng.below(300))}),
        _ => json!({"name": "serve", "item": format!("img-{}", rng.below(20)),
            "variant": (["w320", "w640"][rng.index(2)]), "country": "DE",
            "bytes": rng.below(1 << 20)}),
    };
    let mut raw = raw;
    raw["project"] = project.into();
    raw["event_id"] = id(p, i).into();
    raw["timestamp"] = at.into();
    validated(raw)
}

/// A request whose route, campaign and item no other event has, in the hour before NOW.
fn unique(i: u64) -> Event {
    validated(
        json!({"project": "flood", "event_id": id(0xf100d, i), "name": "request",
        "timestamp": NOW - HOUR_MS + i as i64 % HOUR_MS, "route": format!("/p/{i}"),
        "campaign": format!("c-{i}"), "item": format!("img-{i}"), "variant": "w1", "status": 200}),
    )
}

fn message(events: Vec<Event>) -> Message {
    Message {
        v: 1,
        events,
        dropped: Vec::new(),
    }
}

/// Counts, errors and bytes by period start and dimension.
type Sums = BTreeMap<(i64, Dimension), (u64, u64, u64)>;

fn sums<'a>(rows: impl IntoIterator<Item = (&'a Key, &'a Rollup)>) -> Sums {
    let mut sums = Sums::new();
    for (key, row) in rows {
        let s = sums.entry((key.start, key.dimension)).or_default();
        s.0 += row.count;
        s.1 += row.errors;
        s.2 = rollup::stored_sum(s.2, row.bytes);
    }
    sums
}

fn stored(store: &SqliteStore, project: &str, period: Period) -> BTreeMap<Key, Rollup> {
    block_on(store.rollups_between(project, period, 0, i64::MAX, None))
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.value))
        .collect()
}

/// Rows of `period` of `project` hold exactly `events` (summed per period and
/// dimension, whatever was folded), and no group holds more values than its bound.
fn check_exact(store: &SqliteStore, project: &str, period: Period, events: &[&Event]) {
    let rows = stored(store, project, period);
    let want = match period {
        // Without alert rules, the minute rows of the realtime view's dimensions only.
        Period::Minute => rollup::roll_minutes(
            events
                .iter()
                .copied()
                .filter(|e| e.timestamp >= NOW - MINUTE_ROWS_KEPT_MS),
        )
        .into_iter()
        .filter(|(key, _)| MinuteSources::default().wants(key))
        .collect(),
        _ => rollup::roll(events.iter().copied(), period.interval()),
    };
    assert_eq!(sums(&rows), sums(&want), "{project} {period:?}");
    let mut values: BTreeMap<(i64, Dimension), usize> = BTreeMap::new();
    for key in rows.keys() {
        *values.entry((key.start, key.dimension)).or_default() += 1;
    }
    for (group, n) in values {
        assert!(
            n <= period.max_values() + 1,
            "{project} {period:?} {group:?}: {n} rows"
        );
    }
}

/// What the simulated queue did.
#[derive(Debug, Default)]
struct Delivery {
    batches: usize,
    deliveries: usize,
    redelivered_after_ack: usize,
    retried: usize,
    injected: usize,
    calls: usize,
    dead: Vec<usize>,
}

/// Delivers `messages` as a queue would: batches of 1–25 in arrival order; a message
/// whose outcome is an error is retried (at the back) and dead-lettered after
/// [`MAX_DELIVERIES`]; one acked message in 10 is delivered again; one batch in two
/// meets a commit that fails midway (whose group is then split).
fn deliver(store: &SqliteStore, messages: &[Message], seed: u64) -> Delivery {
    let mut rng = Rng(seed);
    let mut pending: VecDeque<usize> = (0..messages.len()).collect();
    let mut deliveries = vec![0u32; messages.len()];
    let mut done = Delivery::default();
    while !pending.is_empty() {
        let n = (1 + rng.below(25) as usize).min(pending.len());
        let batch: Vec<usize> = pending.drain(..n).collect();
        let bodies: Vec<Message> = batch.iter().map(|&i| messages[i].clone()).collect();
        if rng.below(2) == 0 {
            store.fail_commit_at(rng.below(12) as usize);
            done.injected += 1;
        }
        let consumed = block_on(pipeline::store_messages(
            store,
            &bodies,
            NOW,
            &MinuteSources::default(),
        ));
        done.batches += 1;
        done.calls += consumed.calls;
        assert!(consumed.calls <= 1 + pipeline::MAX_SPLIT_CALLS + bodies.len());
        for (&i, outcome) in batch.iter().zip(consumed.outcomes) {
            deliveries[i] += 1;
            done.deliveries += 1;
            match outcome {
                Ok(()) if rng.below(10) == 0 => {
                    done.redelivered_after_ack += 1;
                    pending.push_back(i);
                }
                Ok(()) => {}
                Err(_) if deliveries[i] < MAX_DELIVERIES => {
                    done.retried += 1;
                    pending.push_back(i);
                }
                Err(_) => done.dead.push(i),
            }
        }
    }
    done
}

#[test]
fn hostile_delivery_with_failing_commits_counts_every_event_once() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut rng = Rng(14);

    // "bad" has an hour row no one can read (as one D1 refuses to decode would be):
    // any message touching that hour fails.
    let bad_before: Vec<Event> = (0..3)
        .map(|i| {
            validated(
                json!({"project": "bad", "event_id": id(0xbad, i), "name": "view",
                "timestamp": NOW - 10 * MINUTE_MS, "duration_ms": 20}),
            )
        })
        .collect();
    store_batch(&store, &bad_before, NOW);
    store.with_connection(|c| {
        c.execute(
            "UPDATE rollups SET durations = x'ffffffffffffffffff', version = version + 1 \
             WHERE project = 'bad' AND period = 'hour'",
            [],
        )
        .unwrap()
    });

    // The good stream: two projects of few values, in requests of 1–60 events.
    let mut unique_events: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    let mut messages = Vec::new();
    for (p, project) in [(1, "alpha"), (2, "beta")] {
        let events: Vec<Event> = (0..6_000).map(|i| mixed(project, p, i, &mut rng)).collect();
        let mut rest = &events[..];
        while !rest.is_empty() {
            let (m, tail) = rest.split_at((1 + rng.below(60) as usize).min(rest.len()));
            messages.push(message(m.to_vec()));
            rest = tail;
        }
        unique_events.insert(project, events);
    }
    // A burst of unique values: five requests of 1,000 in one hour.
    let flood: Vec<Event> = (0..5_000).map(unique).collect();
    messages.extend(flood.chunks(1_000).map(|c| message(c.to_vec())));
    unique_events.insert("flood", flood);
    // Values past every cap, as an older ingest could have sent them: stored, saturated.
    let mut huge: Vec<Event> = (0..3)
        .map(|i| {
            validated(
                json!({"project": "huge", "event_id": id(0x1, i), "name": "serve",
                "timestamp": NOW - MINUTE_MS, "route": "/big"}),
            )
        })
        .collect();
    for e in &mut huge {
        e.bytes = Some(u64::MAX);
        e.duration_ms = Some(f64::MAX);
    }
    messages.push(message(huge.clone()));
    unique_events.insert("huge", huge);
    // Bots' requests, answered but not stored: each record counts once.
    for i in 0..20 {
        messages.push(Message {
            v: 1,
            events: Vec::new(),
            dropped: vec![Dropped {
                event_id: id(0xb07, i),
                project: "alpha".into(),
                timestamp: NOW - i as i64 * MINUTE_MS,
                reason: "bot".into(),
            }],
        });
    }
    // The poisoned message: its events touch the unreadable hour.
    let poisoned: Vec<Event> = (10..12)
        .map(|i| {
            validated(
                json!({"project": "bad", "event_id": id(0xbad, i), "name": "view",
                "timestamp": NOW - 5 * MINUTE_MS}),
            )
        })
        .collect();
    messages.push(message(poisoned));
    // Arrival order: shuffled.
    for i in (1..messages.len()).rev() {
        messages.swap(i, rng.index(i + 1));
    }
    let bad = messages
        .iter()
        .position(|m| m.events.first().is_some_and(|e| e.project == "bad"))
        .unwrap();

    let delivery = deliver(&store, &messages, 41);
    eprintln!(
        "{} messages: {delivery:?} (bad message {bad})",
        messages.len()
    );
    assert_eq!(
        delivery.dead,
        [bad],
        "only the bad message is dead-lettered"
    );
    assert!(delivery.injected >= 10 && delivery.redelivered_after_ack >= 10);
    assert!(
        delivery.calls > delivery.batches,
        "failed groups were split"
    );
    assert!(delivery.retried >= 3, "the bad message was retried");

    // Every event once: raw rows, hours, minutes and, once rolled, days.
    loop {
        let rolled = block_on(pipeline::roll_dirty(&store, Period::Day, 100, NOW)).unwrap();
        if rolled.rolled == 0 {
            break;
        }
    }
    for (project, events) in &unique_events {
        let counted = block_on(store.count_events(project, 0, i64::MAX)).unwrap();
        assert_eq!(counted.events, events.len() as u64, "{project} raw events");
        let events: Vec<&Event> = events.iter().collect();
        for period in [Period::Hour, Period::Minute, Period::Day] {
            check_exact(&store, project, period, &events);
        }
    }
    // Projects of few values: their hour rows equal an exact recomputation, byte for
    // byte — percentiles, uniques and all.
    for project in ["alpha", "beta"] {
        assert_eq!(
            stored(&store, project, Period::Hour),
            rollup::roll(&unique_events[project], Interval::Hour),
            "{project}"
        );
    }
    // The burst folded: an hour keeps 1,000 routes and one folded row.
    let routes = stored(&store, "flood", Period::Hour)
        .into_iter()
        .filter(|(k, _)| k.dimension == Dimension::Route)
        .count();
    assert_eq!(routes, Period::Hour.max_values() + 1);
    // The saturated values stayed readable.
    let big = &stored(&store, "huge", Period::Hour);
    let all = big.values().find(|r| r.count == 3).unwrap();
    assert_eq!(all.bytes, MAX_STORED_INTEGER);
    assert_eq!(all.durations.count(), 3);
    // Durations past the cap count at the cap.
    assert_eq!(
        all.durations.max(),
        Some(tally_core::validate::MAX_DURATION_MS)
    );
    assert_eq!(
        all.durations.mean(),
        Some(tally_core::validate::MAX_DURATION_MS)
    );
    // The bad project: what was there before, nothing of the poisoned message.
    assert_eq!(
        block_on(store.count_events("bad", 0, i64::MAX))
            .unwrap()
            .events,
        3
    );
    let bots: i64 = store.with_connection(|c| {
        c.query_row("SELECT COUNT(*) FROM dropped_events", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(bots, 20);

    // The whole stream again, with new failures: nothing changes.
    let again = deliver(&store, &messages, 43);
    assert_eq!(again.dead, [bad]);
    for (project, events) in &unique_events {
        let counted = block_on(store.count_events(project, 0, i64::MAX)).unwrap();
        assert_eq!(counted.events, events.len() as u64, "{project} again");
    }
    assert_eq!(
        sums(&stored(&store, "alpha", Period::Hour)),
        sums(&rollup::roll(&unique_events["alpha"], Interval::Hour))
    );
}
