//! Sessions paired once per day and stored, against real SQLite: whatever the arrival
//! order, lateness and roll timing, reads equal pairing every mark at once, and rolled
//! days answer from their stored rows.

use std::collections::BTreeMap;

mod support;

use tally_core::Event;
use tally_core::sessions::{self, MAX_SESSION_MS, Stats};
use tally_core::testing::SplitMix64 as Rng;
use tally_core::time::{DAY_MS, HOUR_MS, Interval};
use tally_storage::sessions::{pair_in_pages, roll_session_days, session_stats};
use tally_storage::sqlite::{SqliteStore, block_on};

use support::store_batch;

/// 2025-01-10T00:00:00Z.
const DAY0: i64 = 1_736_467_200_000;
/// Marks fall on these days from `DAY0`.
const DAYS: i64 = 9;
/// Late enough that no timestamp is in the future when it is validated.
const VALIDATED_AT: i64 = DAY0 + (DAYS + 1) * DAY_MS;

fn mark_event(i: u64, name: &str, user: &str, timestamp: i64) -> Event {
    let raw = serde_json::json!({
        "event_id": format!("00000000-0000-4000-8000-{i:012x}"),
        "project": "music", "name": name, "user": user, "timestamp": timestamp,
    });
    support::validated("music", VALIDATED_AT, raw)
}

/// Plays and stops of 30 users over [`DAYS`] days: sessions of seconds to two days
/// (some longer than [`MAX_SESSION_MS`]), overlapping starts, stray stops and starts
/// never stopped, plus pauses that are no marks.
fn marks(rng: &mut Rng) -> Vec<Event> {
    let mut events = Vec::new();
    let mut i = 0;
    let mut push = |events: &mut Vec<Event>, name: &str, user: &str, t: i64| {
        i += 1;
        if t < DAY0 + DAYS * DAY_MS {
            events.push(mark_event(i, name, user, t));
        }
    };
    for u in 0..30 {
        let user = format!("user-{u}");
        let mut t = DAY0 + rng.below(DAY_MS as u64) as i64;
        while t < DAY0 + DAYS * DAY_MS {
            let length = match rng.below(10) {
                0 => rng.below(2 * DAY_MS as u64) as i64,
                1 => MAX_SESSION_MS - 1 + rng.below(3) as i64,
                _ => rng.below(3 * HOUR_MS as u64) as i64,
            };
            match rng.below(8) {
                0 => push(&mut events, "stop", &user, t),
                1 => push(&mut events, "play", &user, t),
                2 => push(&mut events, "pause", &user, t),
                _ => {
                    push(&mut events, "play", &user, t);
                    push(&mut events, "stop", &user, t + length);
                }
            }
            t += rng.below(18 * HOUR_MS as u64) as i64;
        }
    }
    events
}

fn oracle(events: &[Event], interval: Interval, from: i64, to: i64) -> BTreeMap<i64, Stats> {
    sessions::stats(&sessions::pair(support::marks(events)), interval, from, to)
}

/// Random ranges: whole days, hours, and odd milliseconds, in days, ISO weeks and months.
fn ranges(rng: &mut Rng) -> Vec<(Interval, i64, i64)> {
    let mut out = vec![(Interval::Day, DAY0, DAY0 + DAYS * DAY_MS)];
    for _ in 0..12 {
        let unit = [DAY_MS, HOUR_MS, 1][rng.below(3) as usize];
        let span = (DAYS + 1) * DAY_MS / unit;
        let a = DAY0 - DAY_MS + rng.below(span as u64) as i64 * unit;
        let b = DAY0 - DAY_MS + rng.below(span as u64) as i64 * unit;
        let interval = [Interval::Day, Interval::Week, Interval::Month][rng.below(3) as usize];
        out.push((interval, a.min(b), a.max(b) + unit));
    }
    out
}

#[test]
fn reads_equal_pairing_every_mark_whatever_the_arrival_order_and_roll_timing() {
    for seed in [1, 2, 3] {
        let mut rng = Rng(seed);
        let events = marks(&mut rng);
        // Each event arrives at its time plus a lateness: mostly minutes, sometimes days.
        let mut arrivals: Vec<(i64, &Event)> = events
            .iter()
            .map(|e| {
                let late = match rng.below(20) {
                    0 => rng.below(4 * DAY_MS as u64),
                    _ => rng.below(10 * 60_000),
                };
                (e.timestamp + late as i64, e)
            })
            .collect();
        arrivals.sort_by_key(|(at, _)| *at);
        let store = SqliteStore::open_in_memory().unwrap();
        let mut delivered: Vec<Event> = Vec::new();
        let mut rolled = 0;
        for batch in arrivals.chunks(40) {
            let now = batch.last().unwrap().0;
            let batch: Vec<Event> = batch.iter().map(|(_, e)| (*e).clone()).collect();
            store_batch(&store, &batch, now);
            delivered.extend(batch);
            let run = block_on(roll_session_days(&store, rng.below(3) as u32 * 2, now)).unwrap();
            rolled += run.rolled;
            if rng.below(4) == 0 {
                for (interval, from, to) in ranges(&mut rng) {
                    let got = block_on(session_stats(&store, "music", from, to, interval));
                    let expected = oracle(&delivered, interval, from, to);
                    assert_eq!(got.unwrap(), expected, "seed {seed} at {now}: {from}..{to}");
                }
            }
        }
        assert!(
            rolled > 0,
            "seed {seed}: some days were rolled along the way"
        );
        assert_eq!(delivered.len(), events.len());
    }
}

#[test]
fn rolled_days_answer_from_their_rows_and_late_marks_reopen_them() {
    let mut rng = Rng(7);
    let events = marks(&mut rng);
    let store = SqliteStore::open_in_memory().unwrap();
    let (late, early): (Vec<Event>, Vec<Event>) =
        events.iter().cloned().partition(|e| e.timestamp % 13 == 0);
    let now = DAY0 + (DAYS + 3) * DAY_MS;
    store_batch(&store, &early, now);
    let everything = (Interval::Week, DAY0, DAY0 + DAYS * DAY_MS);
    let (interval, from, to) = everything;
    let before = oracle(&early, interval, from, to);
    assert!(before.values().map(|s| s.sessions).sum::<u64>() > 100);

    // Every day's window is over: one roll stores them all, and nothing is left.
    let run = block_on(roll_session_days(&store, 1000, now)).unwrap();
    assert!(run.rolled >= DAYS as usize, "{run:?}");
    let again = block_on(roll_session_days(&store, 1000, now)).unwrap();
    assert_eq!(
        (again.rolled, again.left, again.queries),
        (0, 0, 2),
        "{again:?}"
    );

    assert_eq!(
        block_on(session_stats(&store, "music", from, to, interval)).unwrap(),
        before
    );

    // Late marks make their days (and the day before each) dirty again: those days
    // are paired live until rolled, then stored again.
    store_batch(&store, &late, now);
    let after = oracle(&events, interval, from, to);
    assert_ne!(after, before, "the late marks change some days");
    assert_eq!(
        block_on(session_stats(&store, "music", from, to, interval)).unwrap(),
        after
    );
    let run = block_on(roll_session_days(&store, 1000, now)).unwrap();
    assert!(run.rolled > 0 && run.left == 0, "{run:?}");
    assert_eq!(
        block_on(session_stats(&store, "music", from, to, interval)).unwrap(),
        after
    );

    // Without their marks, rolled days still answer, from their rows alone, and so do
    // parts of them that start and end on whole hours (a range of the last 30 days
    // starts mid-day), from the rows' hours.
    store.with_connection(|c| c.execute("DELETE FROM session_events", []).unwrap());
    assert_eq!(
        block_on(session_stats(&store, "music", from, to, interval)).unwrap(),
        after
    );
    for (from, to) in [
        (DAY0 + 7 * HOUR_MS, DAY0 + 3 * DAY_MS + 5 * HOUR_MS),
        (DAY0 + DAY_MS + 13 * HOUR_MS, DAY0 + DAY_MS + 14 * HOUR_MS),
        (DAY0 + 2 * DAY_MS + 23 * HOUR_MS, DAY0 + 4 * DAY_MS),
    ] {
        for interval in [Interval::Day, Interval::Week, Interval::Month] {
            let want = oracle(&events, interval, from, to);
            assert!(!want.is_empty(), "{from}..{to}");
            assert_eq!(
                block_on(session_stats(&store, "music", from, to, interval)).unwrap(),
                want,
                "{from}..{to} by {interval:?}"
            );
        }
    }
}

#[test]
fn a_roll_takes_only_days_whose_window_is_over_and_reports_the_backlog() {
    let mut rng = Rng(11);
    let events = marks(&mut rng);
    let store = SqliteStore::open_in_memory().unwrap();
    // At the start of the last day of marks, that day and the one before are still open.
    let now = DAY0 + (DAYS - 1) * DAY_MS;
    store_batch(&store, &events, now);
    // Each day's marks fit one page: a page and a commit a day, so 6 queries roll 3.
    let first = block_on(roll_session_days(&store, 6, now)).unwrap();
    assert_eq!((first.rolled, first.queries), (3, 8));
    // The days from DAY0 - 1 day to DAYS - 3 are ready: DAYS - 1 of them, 3 rolled.
    assert_eq!(first.left, (DAYS - 1 - 3) as u64);
    let rest = block_on(roll_session_days(&store, 1000, now)).unwrap();
    assert_eq!((rest.rolled as u64, rest.left), (first.left, 0));
    let open: i64 = store.with_connection(|c| {
        c.query_row("SELECT count(*) FROM session_days_dirty", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(open, 2, "the last two days stay dirty, paired live");
}

#[test]
fn marks_read_in_small_pages_pair_as_all_at_once_even_when_they_share_an_instant() {
    let mut rng = Rng(5);
    let mut events = marks(&mut rng);
    // Marks of several users at one instant, and a start and stop of one user at
    // another: a page can end inside either group.
    let instant = DAY0 + 2 * DAY_MS + 5 * HOUR_MS;
    for (i, (name, user)) in [
        ("play", "user-1"),
        ("stop", "user-2"),
        ("play", "user-3"),
        ("stop", "user-1"),
        ("play", "user-2"),
        ("stop", "user-3"),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(mark_event(900_000 + i as u64, name, user, instant));
        events.push(mark_event(
            900_100 + i as u64,
            name,
            user,
            instant + HOUR_MS,
        ));
    }
    let store = SqliteStore::open_in_memory().unwrap();
    store_batch(&store, &events, VALIDATED_AT);
    let (from, to) = (DAY0 + DAY_MS / 3, DAY0 + 7 * DAY_MS);
    for page in [1, 2, 7, 100, 10_000] {
        for interval in [Interval::Day, Interval::Week] {
            let got = block_on(pair_in_pages(
                &store,
                "music",
                None,
                (from, to),
                interval,
                page,
            ));
            assert_eq!(
                got.unwrap(),
                oracle(&events, interval, from, to),
                "page {page}"
            );
        }
        let hash = tally_core::hash::identifier(b"secret", "music", "user-1");
        let theirs: Vec<Event> = events
            .iter()
            .filter(|e| e.user.as_deref() == Some(hash.as_str()))
            .cloned()
            .collect();
        let got = block_on(pair_in_pages(
            &store,
            "music",
            Some(&hash),
            (from, to),
            Interval::Day,
            page,
        ));
        assert_eq!(
            got.unwrap(),
            oracle(&theirs, Interval::Day, from, to),
            "page {page}"
        );
    }
}

#[test]
fn a_roll_stays_within_its_query_budget_whatever_a_day_holds() {
    // 12,000 marks in one day's window: three pages of marks, then the commit.
    let mut events = Vec::new();
    for i in 0..6_000u64 {
        let user = format!("user-{}", i % 500);
        let t = DAY0 + (i as i64) * 10_000;
        events.push(mark_event(2 * i, "play", &user, t));
        events.push(mark_event(2 * i + 1, "stop", &user, t + 5_000));
    }
    let store = SqliteStore::open_in_memory().unwrap();
    store_batch(&store, &events, VALIDATED_AT);
    let now = DAY0 + 5 * DAY_MS;
    // The day before DAY0 (marked with it) costs a page and a commit; DAY0 needs four.
    let short = block_on(roll_session_days(&store, 4, now)).unwrap();
    assert_eq!(short.rolled, 1, "{short:?}");
    assert!(short.queries <= 4 + 2, "{short:?}");
    assert_eq!(short.left, 1, "DAY0 waits for a run with room for it");
    let (from, to) = (DAY0, DAY0 + DAY_MS);
    let expected = oracle(&events, Interval::Day, from, to);
    assert_eq!(expected[&DAY0].sessions, 6_000);
    let live = block_on(session_stats(&store, "music", from, to, Interval::Day)).unwrap();
    assert_eq!(live, expected, "a day not rolled is paired live");

    let enough = block_on(roll_session_days(&store, 4, now)).unwrap();
    assert_eq!(
        (enough.rolled, enough.queries, enough.left),
        (1, 6, 0),
        "{enough:?}"
    );
    let stored = block_on(session_stats(&store, "music", from, to, Interval::Day)).unwrap();
    assert_eq!(stored, expected);
}

#[test]
fn a_page_of_a_projects_marks_walks_the_primary_key_and_sorts_nothing() {
    // D1 counts a row again as it leaves a sorter: sorting each instant's marks (starts
    // first) doubled the rows a live pairing read. The reader orders an instant instead.
    let store = SqliteStore::open_in_memory().unwrap();
    let plan = support::query_plan(&store, tally_core::sql::SESSION_MARKS_PAGE);
    assert_eq!(
        plan[0],
        "SEARCH session_events USING PRIMARY KEY (project_id=? AND timestamp>? AND timestamp<?)"
    );
    assert!(!plan.iter().any(|s| s.contains("TEMP B-TREE")), "{plan:?}");
}
