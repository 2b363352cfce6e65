//! Funnels' raw-event read against real SQLite: it reads only the steps' events (one
//! seek of `raw_events_by_name` per sample bucket and name), so its cost stays flat
//! however many other events the project sends; its buckets are the sample buckets of
//! filtered reads; and it answers what the read it replaced (the time index, names
//! filtered afterwards) answered, exactly over all buckets and on a sample of users
//! past the budget.

mod support;

use serde_json::json;
use tally_core::Event;
use tally_core::filter::{Filters, SAMPLE_BUCKETS};
use tally_core::funnel::{self, Hit};
use tally_core::sql::FUNNEL_HITS;
use tally_core::testing::SplitMix64 as Rng;
use tally_core::time::DAY_MS;
use tally_storage::filtered::Path;
use tally_storage::funnels::{self, Funnel};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{QueryStore, Write, Writer};

use support::direct_hits;

/// 2025-01-10T00:00:00Z.
const DAY0: i64 = 1_736_467_200_000;
const NOW: i64 = DAY0 + 4 * DAY_MS;

/// The statement the funnel read used before `raw_events_by_name` (migration 0015):
/// one search of the time index over the whole range, names filtered afterwards. The
/// reference the new read must answer exactly as.
const TIME_INDEX_FUNNEL_HITS: &str = "\
SELECT lower(hex(user)) AS user, timestamp, lower(hex(event_id)) AS event_id, name
FROM raw_events
WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
  AND timestamp >= max(?2, ?4) AND timestamp < ?3
  AND (timestamp, event_id) > (?4, unhex(?5))
  AND user IS NOT NULL
  AND name IN (SELECT value FROM json_each(?6))
ORDER BY timestamp, event_id
LIMIT ?7";

fn event(i: u64, name: &str, timestamp: i64, user: Option<u64>) -> Event {
    let mut raw = json!({
        "event_id": format!("00000000-0000-4000-8000-{i:012x}"),
        "project": "site",
        "name": name,
        "timestamp": timestamp,
    });
    if let Some(user) = user {
        raw["user"] = json!(format!("u{user}"));
    }
    support::validated("site", NOW, raw)
}

/// Stores raw rows only (no rollups): the funnel read reads nothing else.
fn insert(store: &SqliteStore, events: &[Event]) {
    for chunk in events.chunks(10_000) {
        let writes = [
            Write::EnsureProject {
                slug: "site",
                now_ms: NOW,
            },
            Write::InsertEvents(chunk),
        ];
        block_on(store.commit(&writes)).unwrap();
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Every hit the replaced statement read, page by page as the read did.
fn time_index_hits(store: &SqliteStore, from: i64, to: i64, steps: &[String]) -> Vec<Hit> {
    let names = serde_json::to_string(steps).unwrap();
    let mut hits: Vec<Hit> = Vec::new();
    loop {
        let (after_ts, after_id) = hits
            .last()
            .map_or((-1, String::new()), |h| (h.timestamp, h.event_id.clone()));
        let page: Vec<Hit> = store.with_connection(|c| {
            let mut stmt = c.prepare_cached(TIME_INDEX_FUNNEL_HITS).unwrap();
            let rows = stmt
                .query_map(
                    rusqlite::params!["site", from, to, after_ts, after_id, names, 5000],
                    |r| {
                        Ok(Hit {
                            user: r.get(0)?,
                            timestamp: r.get(1)?,
                            event_id: r.get(2)?,
                            name: r.get(3)?,
                        })
                    },
                )
                .unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        });
        let done = page.len() < 5000;
        hits.extend(page);
        if done {
            return hits;
        }
    }
}

/// The sample bucket of a hit: the last byte of its user's stored hash.
fn bucket(hit: &Hit) -> u32 {
    u32::from_str_radix(&hit.user[hit.user.len() - 2..], 16).unwrap()
}

/// `hits` in the order the reference read returns them.
fn sorted(mut hits: Vec<Hit>) -> Vec<Hit> {
    hits.sort_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
    hits
}

/// The store's read of `steps`' events in `buckets`, in time order.
fn read(
    store: &SqliteStore,
    (from, to): (i64, i64),
    steps: &[String],
    buckets: std::ops::Range<u32>,
    limit: u32,
) -> Vec<Hit> {
    let names: Vec<&str> = steps.iter().map(String::as_str).collect();
    let (hits, read) =
        block_on(store.funnel_hits("site", from, to, &names, buckets, &Filters::none(), limit))
            .unwrap();
    assert_eq!(
        read,
        hits.len() as u64,
        "without filters, every event read is a hit"
    );
    sorted(hits)
}

#[test]
fn the_funnel_read_seeks_the_name_index_per_bucket_and_name_and_never_sorts() {
    // Raw events only grow: a plan that scanned the project's range, or sorted what it
    // found, would cost more with every event of any name the project sends.
    let store = SqliteStore::open_in_memory().unwrap();
    let plan = support::query_plan(&store, FUNNEL_HITS);
    assert!(
        plan.iter().any(|s| s
            == "SEARCH raw_events USING COVERING INDEX raw_events_by_name \
                (project_id=? AND name=? AND <expr>=? AND timestamp>? AND timestamp<?)"),
        "one seek per bucket and name, no table row visited: {plan:?}"
    );
    let order: Vec<usize> = ["buckets", "steps", "raw_events"]
        .iter()
        .map(|t| {
            plan.iter()
                .position(|s| {
                    s.starts_with("SCAN ") && s.contains(t) || s.starts_with(&format!("SEARCH {t}"))
                })
                .unwrap_or_else(|| panic!("{t} in {plan:?}"))
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "buckets, then names, then the seek: {plan:?}"
    );
    assert!(!plan.iter().any(|s| s.contains("TEMP B-TREE")), "{plan:?}");
}

#[test]
fn the_funnel_read_costs_the_same_when_other_events_grow_tenfold() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut rng = Rng(11);
    let steps = names(&["open", "click", "buy"]);
    let range = (DAY0, DAY0 + 2 * DAY_MS);
    let at = |rng: &mut Rng| DAY0 + rng.below(2 * DAY_MS as u64 / 1000) as i64 * 1000;
    // The steps' events, each with a user.
    let step_events: Vec<Event> = (0..6_000)
        .map(|i| {
            let name = &steps[rng.below(3) as usize];
            event(i, name, at(&mut rng), Some(rng.below(400)))
        })
        .collect();
    insert(&store, &step_events);
    // Everything else the project sends in the same range: other names with and without
    // a user, and the steps' names without one (which no funnel counts).
    let mut next = 1_000_000;
    let mut others = |n: u64, rng: &mut Rng| -> Vec<Event> {
        (0..n)
            .map(|_| {
                next += 1;
                let t = at(rng);
                match rng.below(4) {
                    0 => event(next, "request", t, None),
                    1 => event(next, "view", t, Some(rng.below(400))),
                    2 => event(next, "opened", t, Some(rng.below(400))),
                    _ => event(next, &steps[rng.below(3) as usize], t, None),
                }
            })
            .collect()
    };
    insert(&store, &others(12_000, &mut rng));

    // The VM steps of the read's statement: a measure of the rows it touched that does
    // not depend on timing.
    let measure = || {
        store.with_connection(|c| {
            let stmt = c.prepare_cached(FUNNEL_HITS).unwrap();
            stmt.reset_status(rusqlite::StatementStatus::VmStep);
        });
        let hits = read(&store, range, &steps, 0..SAMPLE_BUCKETS, 100_000);
        let steps = store.with_connection(|c| {
            let stmt = c.prepare_cached(FUNNEL_HITS).unwrap();
            stmt.get_status(rusqlite::StatementStatus::VmStep)
        });
        (hits, steps)
    };
    let (hits, before) = measure();
    assert_eq!(hits.len(), step_events.len());
    assert!(before > 0);

    insert(&store, &others(108_000, &mut rng));
    let (after_hits, after) = measure();
    eprintln!("funnel read, VM steps: {before} with 12,000 other events, {after} with 120,000");
    assert_eq!(after_hits, hits, "the same steps' events, the same hits");
    assert_eq!(after, before, "ten times the other events, the same work");
}

#[test]
fn funnel_hits_of_each_bucket_range_equal_the_time_index_read_and_the_pure_pairing() {
    for seed in 1..=6 {
        let store = SqliteStore::open_in_memory().unwrap();
        let mut rng = Rng(seed);
        let pool = ["open", "click", "buy", "pause", "view"];
        let events: Vec<Event> = (0..2_500)
            .map(|i| {
                // Few distinct milliseconds over a little more than the range, so names
                // share timestamps and some events fall outside it.
                let t = DAY0 + rng.below(400) as i64 * 250 - 5_000;
                let user = (rng.below(10) < 7).then(|| rng.below(600));
                event(i, pool[rng.below(5) as usize], t, user)
            })
            .collect();
        // Through the consumer's pipeline: the funnel sizes its read by the rollups.
        for batch in events.chunks(1_000) {
            support::store_batch(&store, batch, NOW);
        }
        let range = (DAY0, DAY0 + 90_000);
        for steps in [
            names(&["open", "click", "buy"]),
            // A repeated step reads its name once.
            names(&["open", "click", "open"]),
            names(&["buy", "view"]),
            names(&["open", "nothing", "buy", "pause", "view"]),
        ] {
            let reference = time_index_hits(&store, range.0, range.1, &steps);
            assert!(reference.len() > 200, "seed {seed}: {}", reference.len());
            let mut distinct: Vec<String> = Vec::new();
            for step in &steps {
                if !distinct.contains(step) {
                    distinct.push(step.clone());
                }
            }
            for buckets in [0..SAMPLE_BUCKETS, 0..1, 0..16, 3..9, 128..256] {
                let want: Vec<Hit> = reference
                    .iter()
                    .filter(|h| buckets.contains(&bucket(h)))
                    .cloned()
                    .collect();
                assert_eq!(
                    read(&store, range, &distinct, buckets.clone(), 100_000),
                    want,
                    "seed {seed}, {steps:?}, buckets {buckets:?}"
                );
            }
            let window = 20_000;
            let counts = funnel::count(direct_hits(&events, range.0, range.1), &steps, window);
            assert_eq!(
                funnel::count(reference.clone(), &steps, window),
                counts,
                "seed {seed}, {steps:?}"
            );
            // The answer the API and the dashboard both give: all buckets within a large
            // budget.
            let answer =
                support::funnel_of(&store, range, &steps, window, &Filters::none(), 1_000_000);
            assert_eq!(
                answer,
                Funnel::Counted {
                    steps: funnel::conversions(&steps, &counts),
                    path: Path::Raw,
                    events_read: reference.len() as u64,
                },
                "seed {seed}, {steps:?}"
            );
        }
    }
}

#[test]
fn a_limit_returns_at_most_that_many_hits_each_once() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut rng = Rng(5);
    let steps = names(&["open", "click", "buy"]);
    let events: Vec<Event> = (0..16_000)
        .map(|i| {
            let t = DAY0 + rng.below(1_500) as i64 * 1000;
            let name = ["open", "click", "buy", "other"][rng.below(4) as usize];
            event(i, name, t, (rng.below(20) > 0).then(|| rng.below(300)))
        })
        .collect();
    insert(&store, &events);
    let range = (DAY0, DAY0 + DAY_MS);
    let reference = time_index_hits(&store, range.0, range.1, &steps);
    assert!(reference.len() > 10_000, "{}", reference.len());
    assert_eq!(
        read(&store, range, &steps, 0..SAMPLE_BUCKETS, 100_000),
        reference
    );
    let capped = read(&store, range, &steps, 0..SAMPLE_BUCKETS, 6_001);
    assert_eq!(capped.len(), 6_001);
    let ids: std::collections::BTreeSet<&str> =
        capped.iter().map(|h| h.event_id.as_str()).collect();
    assert_eq!(ids.len(), capped.len());
    assert!(capped.iter().all(|h| reference.contains(h)));
}

#[test]
fn a_funnel_of_names_without_events_in_the_range_reads_no_raw_event() {
    let store = SqliteStore::open_in_memory().unwrap();
    let events: Vec<Event> = (0..50)
        .map(|i| event(i, "open", DAY0 + i as i64 * 1000, Some(i % 7)))
        .collect();
    support::store_batch(&store, &events, NOW);
    let counting = support::RowsReturned::new(&store);
    let steps = names(&["signup", "buy"]);
    let answer = support::funnel_of(
        &counting,
        (DAY0, DAY0 + DAY_MS),
        &steps,
        DAY_MS,
        &Filters::none(),
        funnels::DEFAULT_FUNNEL_ROW_BUDGET,
    );
    assert_eq!(
        answer,
        Funnel::Counted {
            steps: funnel::conversions(&steps, &[0, 0]),
            path: Path::Raw,
            events_read: 0,
        }
    );
    assert!(
        !counting.queries.borrow().contains_key(FUNNEL_HITS),
        "the rollups said there is nothing to seek"
    );
    // Events of the steps' names out of the range count neither.
    let later = support::funnel_of(
        &counting,
        (DAY0 + DAY_MS, DAY0 + 2 * DAY_MS),
        &names(&["open", "buy"]),
        DAY_MS,
        &Filters::none(),
        funnels::DEFAULT_FUNNEL_ROW_BUDGET,
    );
    let Funnel::Counted { steps, .. } = later else {
        panic!()
    };
    assert_eq!(steps[0].users, 0);
    assert!(
        !counting.queries.borrow().contains_key(FUNNEL_HITS),
        "none of the range's step events, nothing to seek"
    );
}
