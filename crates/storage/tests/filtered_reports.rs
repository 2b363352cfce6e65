//! Funnels, sessions and the realtime view under report filters, against real SQLite:
//! each answer equals a recomputation over the stored events on every path (exact
//! within the row budget, a sample of users past it), never reads more than its
//! budget, and samples the users the other filtered reports sample (a funnel, reading
//! only its steps' events, may afford more of them in the same order). A funnel over
//! more than 100,000 step events, which was refused, is answered from that sample, and
//! so are filtered sessions over some 160,000 events.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use tally_core::Event;
use tally_core::filter::{self, Filters, SAMPLE_BUCKETS};
use tally_core::funnel;
use tally_core::realtime::{self, Window};
use tally_core::rollup::Period;
use tally_core::sessions::{self, Session, Stats};
use tally_core::sql;
use tally_core::testing::SplitMix64 as Rng;
use tally_core::time::{DAY_MS, Interval, MINUTE_MS};
use tally_storage::filtered::{self, DEFAULT_ROW_BUDGET, FilteredRealtime, Path};
use tally_storage::funnels::{self, Funnel};
use tally_storage::pipeline;
use tally_storage::sessions::{FilteredSessions, filtered_session_stats, session_stats};
use tally_storage::sqlite::{SqliteStore, block_on};

use support::store_batch;

/// 2025-01-10T00:00:00Z.
const DAY0: i64 = 1_736_467_200_000;
const NOW: i64 = DAY0 + 4 * DAY_MS;

fn event(i: u64, timestamp: i64, raw: serde_json::Value) -> Event {
    let mut raw = raw;
    raw["event_id"] = json!(format!("00000000-0000-4000-8000-{i:012x}"));
    raw["project"] = json!("site");
    raw["timestamp"] = json!(timestamp);
    support::validated("site", NOW, raw)
}

/// A store holding `events` as the consumer stores them (raw rows, hour rollups, marks),
/// the days before the last rolled, so reads combine day and hour rows.
fn stored(events: &[Event]) -> SqliteStore {
    let store = SqliteStore::open_in_memory().unwrap();
    for chunk in events.chunks(5_000) {
        store_batch(&store, chunk, NOW);
    }
    block_on(pipeline::roll_dirty(&store, Period::Day, 1000, NOW)).unwrap();
    store
}

fn filters(texts: &[&str]) -> Filters {
    filter::parse(texts.iter().copied()).unwrap()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Whether an event is in the first `buckets` sample buckets.
fn in_sample(e: &Event, buckets: u32) -> bool {
    u32::from(filter::sample_bucket(e)) < buckets
}

/// The events in the first `buckets` sample buckets, and what each of their users
/// stands for: the sample a sampled answer is computed on, and its scale.
fn sample_of(events: &[Event], buckets: u32) -> (Vec<Event>, u64) {
    let sample = events
        .iter()
        .filter(|e| in_sample(e, buckets))
        .cloned()
        .collect();
    (sample, u64::from(SAMPLE_BUCKETS / buckets))
}

/// The funnel's users per step recomputed from the events: those with a user, in the
/// range, meeting the filters, as hits keyed as stored (16 hex digits of the user).
fn funnel_users(
    events: &[Event],
    (from, to): (i64, i64),
    filters: &Filters,
    steps: &[String],
    window: i64,
) -> Vec<u64> {
    let hits = events
        .iter()
        .filter(|e| (from..to).contains(&e.timestamp) && filters.matches(e))
        .filter_map(support::hit)
        .collect();
    funnel::count(hits, steps, window)
}

fn counted(answer: Funnel) -> (Vec<u64>, Path) {
    match answer {
        Funnel::Counted { steps, path, .. } => (steps.iter().map(|s| s.users).collect(), path),
        other => panic!("{other:?}"),
    }
}

/// Requests and step events of a few hundred users over two days, with countries and
/// routes to filter by.
fn funnel_workload(n: u64, users: u64, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let t = DAY0 + rng.below(2 * DAY_MS as u64 / 1000) as i64 * 1000;
            let mut raw = match rng.below(4) {
                0 => json!({"name": "request", "route": "/api/x"}),
                k => json!({"name": (["visit", "signup", "buy"][k as usize - 1]),
                            "route": (["/web/a", "/web/b", "/api/y"][rng.below(3) as usize])}),
            };
            raw["country"] = json!(["US", "DE", "FR"][rng.below(3) as usize]);
            if rng.below(10) > 0 {
                raw["user"] = json!(format!("u{}", rng.below(users)));
            }
            event(i, t, raw)
        })
        .collect()
}

#[test]
fn filtered_funnels_count_only_matching_events_as_steps_on_every_path() {
    let events = funnel_workload(12_000, 400, 1);
    let store = stored(&events);
    let steps = names(&["visit", "signup", "buy"]);
    let range = (DAY0, DAY0 + 2 * DAY_MS);
    let window = 6 * 3_600_000;
    let funnel = |filters: &Filters, budget| {
        support::funnel_of(&store, range, &steps, window, filters, budget)
    };
    for texts in [
        &[][..],
        &["country:US"][..],
        &["route:/web/*"][..],
        &["country!=FR", "route!=/web/b"][..],
        // A filter on the name keeps one step's events only: nobody gets past it.
        &["name:visit"][..],
    ] {
        let f = filters(texts);
        let want = funnel_users(&events, range, &f, &steps, window);
        let (got, path) = counted(funnel(&f, DEFAULT_ROW_BUDGET));
        assert_eq!(path, Path::Raw, "{texts:?}");
        assert_eq!(got, want, "{texts:?}");
        if texts.is_empty() {
            assert!(want[2] > 50, "{want:?}");
        }
        // Past a small budget, the sample's own funnel, scaled: the first buckets of the
        // sample every other filtered report of the range reads.
        let (got, path) = counted(funnel(&f, 6_000));
        let Path::Sampled { buckets } = path else {
            panic!("{texts:?}: {path:?}")
        };
        let (sample, scale) = sample_of(&events, buckets);
        let want: Vec<u64> = funnel_users(&sample, range, &f, &steps, window)
            .iter()
            .map(|u| u * scale)
            .collect();
        assert_eq!(got, want, "{texts:?}, {buckets} buckets");
        let overview = filtered::read(
            &store,
            "site",
            range.0,
            range.1,
            &f,
            &[tally_core::rollup::Dimension::All],
            filtered::Bucket::Whole,
            filtered::Limits {
                row_budget: 6_000,
                raw_from_ms: 0,
            },
        );
        let filtered::Read::Rows(rows) = block_on(overview).unwrap() else {
            panic!()
        };
        // The same users as the overview's sample, or more of them in the same order:
        // the funnel reads only its steps' events of each user.
        if let Path::Sampled { buckets: overview } = rows.path {
            assert!(
                buckets >= overview,
                "{texts:?}: {buckets} against {overview}"
            );
        }
    }
    // The filtered read seeks the name index per bucket and name, as the unfiltered one
    // does, and sorts nothing.
    let plan = support::query_plan(&store, sql::FILTERED_FUNNEL_HITS);
    assert!(
        plan.iter().any(|s| s.starts_with(
            "SEARCH raw_events USING INDEX raw_events_by_name \
             (project_id=? AND name=? AND <expr>=? AND timestamp>? AND timestamp<?)"
        )) && !plan.iter().any(|s| s.contains("TEMP B-TREE")),
        "{plan:?}"
    );
}

#[test]
fn a_filter_that_keeps_no_step_event_reads_no_more_than_the_budget() {
    // 9,000 step events: a filter that keeps none of them must not turn the budget's
    // bound on what is read into a bound on what is kept (and so read them all).
    let events = funnel_workload(12_000, 400, 2);
    let store = stored(&events);
    let steps = names(&["visit", "signup", "buy"]);
    let range = (DAY0, DAY0 + 2 * DAY_MS);
    let counting = support::RowsReturned::new(&store);
    let budget = 6_000;
    let answer = support::funnel_of(
        &counting,
        range,
        &steps,
        DAY_MS,
        &filters(&["country:ZZ"]),
        budget,
    );
    let Funnel::Counted {
        steps: got,
        path,
        events_read,
    } = answer
    else {
        panic!("{answer:?}")
    };
    assert_eq!(got.iter().map(|s| s.users).collect::<Vec<_>>(), [0, 0, 0]);
    let Path::Sampled { buckets } = path else {
        panic!("{path:?}: the whole would read some 9,000 events at two rows each")
    };
    let read = counting.rows.borrow()[sql::FILTERED_FUNNEL_HITS];
    let statements = counting.queries.borrow()[sql::FILTERED_FUNNEL_HITS];
    let rows = read * filtered::ROWS_PER_EVENT
        + u64::from(buckets) * (funnels::ROWS_PER_BUCKET + 3 * funnels::ROWS_PER_SEEK)
        + statements * filtered::ROWS_PER_QUERY;
    assert!(
        rows <= budget,
        "{rows} rows for {read} events in {buckets} buckets"
    );
    assert_eq!(events_read, read, "every event read is reported, none kept");
    assert!(read > 1_000, "{read}: the sample read is not empty");
}

#[test]
fn a_funnel_past_100000_step_events_is_answered_from_a_sample_within_the_budget() {
    // 130,000 step events of 30,000 users: more than a funnel holds (`MAX_HITS`), which
    // answered 400 `range_too_large` before.
    let mut rng = Rng(7);
    let steps = names(&["visit", "signup", "buy"]);
    let events: Vec<Event> = (0..130_000)
        .map(|i| {
            let user = rng.below(30_000);
            // Each user's steps tend to come in order through the day.
            let k = rng.below(3);
            let t = DAY0 + (k as i64) * 4 * 3_600_000 + rng.below(4 * 3_600_000) as i64;
            event(
                i,
                t,
                json!({"name": steps[k as usize], "user": format!("u{user}")}),
            )
        })
        .collect();
    let store = stored(&events);
    let range = (DAY0, DAY0 + DAY_MS);
    let window = DAY_MS;
    let counting = support::RowsReturned::new(&store);
    let budget = 80_000;
    let answer = support::funnel_of(&counting, range, &steps, window, &Filters::none(), budget);
    let Funnel::Counted {
        steps: got,
        path,
        events_read,
    } = answer
    else {
        panic!("{answer:?}")
    };
    // 130,000 events at one row each, and seven rows per bucket of 3 names: 128 buckets
    // (65,898 rows expected) fit 80,000, 256 do not.
    assert_eq!(path, Path::Sampled { buckets: 128 });
    assert_eq!(
        counting.rows.borrow()[sql::FUNNEL_HITS],
        events_read,
        "every step event of the sample, once"
    );
    let queries: u64 = counting.queries.borrow().values().sum();
    let rows = events_read * funnels::ROWS_PER_HIT
        + 128 * (funnels::ROWS_PER_BUCKET + 3 * funnels::ROWS_PER_SEEK)
        + counting.queries.borrow()[sql::FUNNEL_HITS] * filtered::ROWS_PER_QUERY;
    assert!(rows <= budget, "{rows} rows as D1 counts them");
    assert!(
        !counting.queries.borrow().contains_key(sql::SAMPLE_EVENTS),
        "no other event of the sampled users is read"
    );
    assert!(queries < 20, "{queries} queries");
    eprintln!(
        "sampled funnel of 130,000 step events: {events_read} events read, {rows} rows as \
         D1 counts them, {queries} queries"
    );
    let sample: Vec<Event> = events
        .iter()
        .filter(|e| in_sample(e, 128))
        .cloned()
        .collect();
    let want: Vec<u64> = funnel_users(&sample, range, &Filters::none(), &steps, window)
        .iter()
        .map(|u| u * 2)
        .collect();
    let users: Vec<u64> = got.iter().map(|s| s.users).collect();
    assert_eq!(users, want);
    // And it estimates the whole within a few percent.
    let exact = funnel_users(&events, range, &Filters::none(), &steps, window);
    eprintln!("users per step: sampled {users:?}, exact {exact:?}");
    for (estimate, exact) in users.iter().zip(&exact) {
        let error = *estimate as f64 / *exact as f64 - 1.0;
        assert!(error.abs() < 0.05, "{users:?} against {exact:?}");
    }
    // Past `MAX_HITS`, a budget of any size reads a sample: the whole would not fit in
    // memory.
    let unbounded = support::funnel_of(
        &store,
        range,
        &steps,
        window,
        &Filters::none(),
        u64::MAX / 4,
    );
    let Funnel::Counted { path, .. } = unbounded else {
        panic!("{unbounded:?}")
    };
    assert_eq!(path, Path::Sampled { buckets: 128 }, "130,000 step events");
    // A budget that not even one bucket fits is refused, not read past.
    let over = support::funnel_of(&store, range, &steps, window, &Filters::none(), 500);
    assert_eq!(over, Funnel::OverBudget { events: 130_000 });
}

/// What a play/stop session workload is made of: `sessions` sessions of `users` users
/// over three days from `seed`, each from one of `countries`, with fewer than
/// `requests_below` requests on `routes` between a play and its stop, and one session
/// in `unstopped_one_in` (if any) never stopped.
struct SessionShape {
    seed: u64,
    sessions: usize,
    users: u64,
    countries: &'static [&'static str],
    routes: &'static [&'static str],
    requests_below: u64,
    unstopped_one_in: Option<u64>,
}

/// The events of a session workload of `shape`.
fn sessions_of(shape: &SessionShape) -> Vec<Event> {
    let mut rng = Rng(shape.seed);
    let mut events = Vec::new();
    let mut i = 0;
    let mut push = |t: i64, raw: serde_json::Value| {
        i += 1;
        events.push(event(i, t, raw));
    };
    let pick = |rng: &mut Rng, list: &[&'static str]| list[rng.below(list.len() as u64) as usize];
    for _ in 0..shape.sessions {
        let user = format!("u{}", rng.below(shape.users));
        let start = DAY0 + rng.below(3 * DAY_MS as u64) as i64;
        let country = pick(&mut rng, shape.countries);
        push(
            start,
            json!({"name": "play", "user": user, "country": country}),
        );
        let length = rng.below(3_600_000) as i64;
        for _ in 0..rng.below(shape.requests_below) {
            let route = pick(&mut rng, shape.routes);
            let at = start + rng.below(length as u64 + 1) as i64;
            push(
                at,
                json!({"name": "request", "route": route, "user": user, "country": country}),
            );
        }
        if shape.unstopped_one_in.is_none_or(|n| rng.below(n) > 0) {
            push(
                start + length,
                json!({"name": "stop", "user": user, "country": country}),
            );
        }
    }
    events
}

/// Play/stop sessions of a hundred users over three days, with other events between a
/// play and its stop (requests on routes, from countries), some sessions never stopped.
fn session_workload(seed: u64) -> Vec<Event> {
    sessions_of(&SessionShape {
        seed,
        sessions: 1_500,
        users: 100,
        countries: &["US", "DE", "FR"],
        routes: &["/watch", "/browse", "/api/x"],
        requests_below: 4,
        unstopped_one_in: Some(10),
    })
}

/// The sessions the sample of `buckets` buckets keeps under `f`, scaled to all users: what
/// a sampled answer must be exactly.
fn sampled_sessions(
    events: &[Event],
    f: &Filters,
    range: (i64, i64),
    buckets: u32,
) -> BTreeMap<i64, Stats> {
    let (sample, scale) = sample_of(events, buckets);
    kept_sessions(&sample, f, range)
        .into_iter()
        .map(|(day, s)| {
            let stats = Stats {
                sessions: s.sessions * scale,
                total_ms: s.total_ms * scale as i64,
            };
            (day, stats)
        })
        .collect()
}

/// The sessions recomputed from the events: paired from every mark, each kept when an
/// event of its user from its start to its stop meets the filters.
fn kept_sessions(
    events: &[Event],
    filters: &Filters,
    (from, to): (i64, i64),
) -> BTreeMap<i64, Stats> {
    let marks: Vec<_> = support::marks(events);
    // Each user's events, keyed as marks key users (16 hex digits).
    let mut by_user: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events {
        if let Some(u) = e.user.as_deref() {
            by_user.entry(&u[..16]).or_default().push(e);
        }
    }
    let mut out: BTreeMap<i64, Stats> = BTreeMap::new();
    for session in sessions::pair(marks) {
        let Session::Closed { user, start, stop } = session else {
            continue;
        };
        let kept = by_user.get(user.as_str()).is_some_and(|mine| {
            mine.iter()
                .any(|e| (start..=stop).contains(&e.timestamp) && filters.matches(e))
        });
        if kept && (from..to).contains(&start) && stop - start <= sessions::MAX_SESSION_MS {
            let s = out.entry(Interval::Day.floor(start)).or_default();
            s.sessions += 1;
            s.total_ms += stop - start;
        }
    }
    out
}

fn session_answer(
    store: &SqliteStore,
    filters: &Filters,
    budget: u64,
) -> (BTreeMap<i64, Stats>, Path) {
    let range = (DAY0, DAY0 + 3 * DAY_MS);
    let read = filtered_session_stats(store, "site", range, Interval::Day, filters, budget);
    match block_on(read).unwrap() {
        FilteredSessions::Counted { stats, path, .. } => (stats, path),
        other => panic!("{other:?}"),
    }
}

#[test]
fn filtered_sessions_keep_sessions_with_a_matching_event_counted_whole() {
    let events = session_workload(3);
    let store = stored(&events);
    let range = (DAY0, DAY0 + 3 * DAY_MS);
    // Rolled session days answer the unfiltered read, as before.
    block_on(tally_storage::sessions::roll_session_days(&store, 100, NOW)).unwrap();
    let unfiltered = block_on(session_stats(
        &store,
        "site",
        range.0,
        range.1,
        Interval::Day,
    ))
    .unwrap();
    assert_eq!(unfiltered, kept_sessions(&events, &Filters::none(), range));
    // A filter every event meets keeps every session: the unfiltered answer.
    let (all, path) = session_answer(&store, &filters(&["name!=nothing"]), DEFAULT_ROW_BUDGET);
    assert_eq!((all, path), (unfiltered.clone(), Path::Raw));
    for texts in [
        &["route:/watch"][..],
        &["country:DE"][..],
        &["country!=DE", "route:/api/*"][..],
        // The marks themselves are the session's events.
        &["name:stop", "country:US"][..],
    ] {
        let f = filters(texts);
        let want = kept_sessions(&events, &f, range);
        let (got, path) = session_answer(&store, &f, DEFAULT_ROW_BUDGET);
        assert_eq!(path, Path::Raw, "{texts:?}");
        assert_eq!(got, want, "{texts:?}");
        let kept: u64 = want.values().map(|s| s.sessions).sum();
        let every: u64 = unfiltered.values().map(|s| s.sessions).sum();
        assert!(kept > 0 && kept < every, "{texts:?}: {kept} of {every}");
        // Past the budget, a sample of users: each user's sessions whole, scaled.
        let (got, path) = session_answer(&store, &f, 2_000);
        let Path::Sampled { buckets } = path else {
            panic!("{texts:?}: {path:?}")
        };
        let want = sampled_sessions(&events, &f, range, buckets);
        assert_eq!(got, want, "{texts:?}, {buckets} buckets");
    }
}

#[test]
fn filtered_sessions_past_the_budget_read_a_sample_within_it_at_volume() {
    // 45,000 play/stop sessions of 20,000 users over three days, with requests between
    // (some 160,000 events): more than the default budget reads exactly.
    let events = sessions_of(&SessionShape {
        seed: 11,
        sessions: 45_000,
        users: 20_000,
        countries: &["US", "DE", "FR", "BR"],
        routes: &["/watch", "/browse"],
        requests_below: 3,
        unstopped_one_in: None,
    });
    assert!(events.len() > 130_000, "{}", events.len());
    let store = stored(&events);
    let range = (DAY0, DAY0 + 3 * DAY_MS);
    let f = filters(&["route:/watch", "country!=US"]);
    let counting = support::RowsReturned::new(&store);
    let read = filtered_session_stats(
        &counting,
        "site",
        range,
        Interval::Day,
        &f,
        DEFAULT_ROW_BUDGET,
    );
    let FilteredSessions::Counted {
        stats,
        path,
        events_read,
    } = block_on(read).unwrap()
    else {
        panic!("refused")
    };
    let Path::Sampled { buckets } = path else {
        panic!("{path:?}")
    };
    // The budget holds: the sample's rows as D1 counts them, no exact read begun.
    assert!(counting.sample_rows() <= DEFAULT_ROW_BUDGET);
    assert_eq!(counting.rows.borrow()[sql::SAMPLE_EVENTS], events_read);
    assert!(!counting.queries.borrow().contains_key(sql::FILTERED_EVENTS));
    let queries: u64 = counting.queries.borrow().values().sum();
    assert!(queries < 300, "{queries} queries");
    // Exactly the sample's sessions, scaled; and near the whole.
    let want = sampled_sessions(&events, &f, range, buckets);
    assert_eq!(stats, want);
    let total = |stats: &BTreeMap<i64, Stats>| stats.values().map(|s| s.sessions).sum::<u64>();
    let exact = total(&kept_sessions(&events, &f, range));
    let error = total(&stats) as f64 / exact as f64 - 1.0;
    eprintln!(
        "sampled sessions: {buckets} buckets, {events_read} events read, {} rows as D1 \
         counts them, {queries} queries; {} sessions against {exact} exactly ({:+.2}%)",
        counting.sample_rows(),
        total(&stats),
        error * 100.0
    );
    assert!(error.abs() < 0.05, "{} against {exact}", total(&stats));
}

#[test]
fn the_filtered_realtime_view_counts_the_matching_events_of_its_minutes() {
    let now = NOW - 10_000;
    let window = Window::ending_at(now);
    let mut rng = Rng(9);
    // 45 minutes back, so some events fall before the window.
    let events: Vec<Event> = (0..3_000)
        .map(|i| {
            let t = now - rng.below(45 * MINUTE_MS as u64) as i64;
            let mut raw = json!({
                "name": "request",
                "route": (["/a", "/b", "/api/c"][rng.below(3) as usize]),
                "source": (["news", "mail"][rng.below(2) as usize]),
                "country": (["US", "DE"][rng.below(2) as usize]),
                "duration_ms": rng.below(1000) as f64,
                "user": format!("u{}", rng.below(500)),
            });
            if rng.below(5) == 0 {
                raw["status"] = json!(503);
                raw["error_class"] = json!("Timeout");
            }
            event(i, t, raw)
        })
        .collect();
    let store = stored(&events);
    for (texts, budget) in [
        (&["country:DE"][..], DEFAULT_ROW_BUDGET),
        (&["route:/api/*", "source!=mail"][..], DEFAULT_ROW_BUDGET),
        (&["country:DE"][..], 1_500),
    ] {
        let f = filters(texts);
        let read = filtered::realtime(&store, "site", window, &f, budget);
        let FilteredRealtime::View { view, path } = block_on(read).unwrap() else {
            panic!()
        };
        let (buckets, scale) = match path {
            Path::Raw => (SAMPLE_BUCKETS, 1),
            Path::Sampled { buckets } => (buckets, u64::from(SAMPLE_BUCKETS / buckets)),
            Path::Rollups => panic!("minute rows take no filter"),
        };
        assert_eq!(budget < DEFAULT_ROW_BUDGET, scale > 1, "{texts:?}");
        let matching: Vec<&Event> = events
            .iter()
            .filter(|e| e.timestamp >= window.first_minute && f.matches(e) && in_sample(e, buckets))
            .collect();
        let per_minute = |m: i64| {
            matching
                .iter()
                .filter(move |e| Interval::Minute.floor(e.timestamp) == m)
        };
        for minute in &view.minutes {
            assert_eq!(
                minute.events,
                per_minute(minute.start).count() as u64 * scale
            );
            let errors = per_minute(minute.start).filter(|e| e.is_error()).count() as u64;
            assert_eq!(minute.errors, errors * scale);
        }
        let total: u64 = view.minutes.iter().map(|m| m.events).sum();
        assert!(total > 0, "{texts:?}");
        let visitors: BTreeSet<&str> = matching
            .iter()
            .filter(|e| e.timestamp >= window.visitors_from())
            .map(|e| &e.user.as_deref().unwrap()[..16])
            .collect();
        assert_eq!(view.visitors.count, visitors.len() as u64 * scale);
        assert!(!view.visitors.truncated);
        let routes: u64 = view.routes.iter().map(|r| r.events).sum();
        assert_eq!(routes, total, "{texts:?}: every event has a route");
        assert!(view.routes.len() <= realtime::TOP_VALUES);
    }
}
