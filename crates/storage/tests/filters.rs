//! Filtered reads against real SQLite at volume: the SQL filters agree with
//! `Filters::matches` on random filters, every path (rollups, raw, sampled)
//! equals a recomputation over the stored events, a sampled read reads at most its
//! budget, a value folded past a bound is answered from raw events, and one project's
//! filter never reaches another's rows.

mod support;

use std::collections::BTreeMap;

use serde_json::json;
use tally_core::Event;
use tally_core::filter::{self, Filters, SAMPLE_BUCKETS};
use tally_core::rollup::{Dimension, Period, Rollup};
use tally_core::testing::SplitMix64 as Rng;
use tally_core::time::{DAY_MS, HOUR_MS, Interval};
use tally_storage::filtered::{self, Bucket, Filtered, Limits, Path, Read};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{pipeline, read};

use support::store_batch;

/// 2025-01-10T00:00:00Z.
const DAY0: i64 = 1_736_467_200_000;
const NOW: i64 = DAY0 + 4 * DAY_MS;
const FROM: i64 = DAY0;
const TO: i64 = DAY0 + 3 * DAY_MS;

fn event(project: &str, i: u64, raw: serde_json::Value) -> Event {
    let mut raw = raw;
    raw["event_id"] = json!(format!("00000000-0000-4000-8000-{i:012x}"));
    raw["project"] = json!(project);
    support::validated(project, NOW, raw)
}

/// `n` mixed events over three days: requests on API and web routes with statuses,
/// errors, durations and countries; serves of items in variants; clicks; most with one
/// of `users` users, some without.
fn workload(project: &str, n: u64, users: u64, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let t = DAY0 + rng.below(3 * DAY_MS as u64) as i64;
            let country = ["US", "DE", "FR", "JP"][rng.below(4) as usize];
            let mut raw = match rng.below(3) {
                0 => json!({
                    "name": "serve",
                    "item": format!("img-{}", rng.below(15)),
                    "variant": (["orig", "w640", "thumb"][rng.below(3) as usize]),
                    "bytes": rng.below(100_000),
                }),
                1 => {
                    let status = [200, 200, 200, 404, 503][rng.below(5) as usize];
                    let route = [
                        "/api/users",
                        "/api/orders",
                        "/api/orders/{id}",
                        "/web/home",
                        "/web/about",
                    ][rng.below(5) as usize];
                    let mut r = json!({"name": "request", "route": route, "status": status,
                                       "duration_ms": rng.below(2_000_000) as f64 / 1000.0});
                    if status == 503 {
                        r["error_class"] = json!(["Timeout", "DbError"][rng.below(2) as usize]);
                    }
                    r
                }
                _ => json!({"name": (["click", "click.buy"][rng.below(2) as usize]),
                            "campaign": (["spring", "fall"][rng.below(2) as usize])}),
            };
            raw["timestamp"] = json!(t);
            raw["country"] = json!(country);
            if rng.below(10) > 0 {
                raw["user"] = json!(format!("u{}", rng.below(users)));
            }
            event(project, i, raw)
        })
        .collect()
}

/// A store holding the events, the first day rolled, so reads combine day and hour rows.
fn stored(events: &[Event]) -> SqliteStore {
    let store = SqliteStore::open_in_memory().unwrap();
    store_all(&store, events);
    store
}

fn store_all(store: &SqliteStore, events: &[Event]) {
    let (first, rest): (Vec<Event>, Vec<Event>) = events
        .iter()
        .cloned()
        .partition(|e| e.timestamp < DAY0 + DAY_MS);
    for chunk in first.chunks(5_000) {
        store_batch(store, chunk, NOW);
    }
    block_on(pipeline::roll_dirty(store, Period::Day, 1000, NOW)).unwrap();
    for chunk in rest.chunks(5_000) {
        store_batch(store, chunk, NOW);
    }
}

const LIMITS: Limits = Limits {
    row_budget: 1_000_000,
    raw_from_ms: 0,
};

fn filters(texts: &[&str]) -> Filters {
    filter::parse(texts.iter().copied()).unwrap()
}

/// The read's rows, or a panic saying what came instead.
fn rows<
    S: tally_storage::RollupStore + tally_storage::FilteredReads + tally_storage::QueryStore,
>(
    store: &S,
    project: &str,
    filters: &Filters,
    wanted: &[Dimension],
    bucket: Bucket,
    limits: Limits,
) -> Filtered {
    let read = filtered::read(store, project, FROM, TO, filters, wanted, bucket, limits);
    match block_on(read).unwrap() {
        Read::Rows(f) => f,
        other => panic!("{other:?}"),
    }
}

/// The recomputation: the matching events folded per bucket start, dimension and value.
fn expected<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    filters: &Filters,
    wanted: &[Dimension],
    start: impl Fn(i64) -> i64,
) -> BTreeMap<(i64, Dimension, String), Rollup> {
    let mut out: BTreeMap<(i64, Dimension, String), Rollup> = BTreeMap::new();
    for e in events.into_iter().filter(|e| filters.matches(e)) {
        for &d in wanted {
            if let Some(v) = d.value_of(e) {
                out.entry((start(e.timestamp), d, v)).or_default().add(d, e);
            }
        }
    }
    out
}

/// The read's rows merged per bucket start, dimension and value, as `read::buckets`
/// gives them, without rows of no events.
fn got(f: &Filtered, interval: Interval) -> BTreeMap<(i64, Dimension, String), Rollup> {
    read::buckets(&f.rows, interval)
        .into_iter()
        .flat_map(|(start, merged)| {
            merged
                .into_iter()
                .filter(|(_, r)| r.count > 0)
                .map(move |((d, v), r)| ((start, d, v), r))
        })
        .collect()
}

#[test]
fn filtered_answers_equal_a_recomputation_over_the_raw_events() {
    let events = workload("site", 20_000, 3_000, 1);
    let store = stored(&events);
    use Dimension::*;
    for (texts, wanted, path) in [
        (&[][..], &[All, Route][..], Path::Rollups),
        (&["country:US"][..], &[All, Country][..], Path::Rollups),
        (
            &["item:img-3"][..],
            &[All, Variant, Country][..],
            Path::Rollups,
        ),
        (&["variant:w640"][..], &[All, Item][..], Path::Rollups),
        (
            &["error_class:Timeout"][..],
            &[All, Route][..],
            Path::Rollups,
        ),
        (
            &["route:/api/orders"][..],
            &[All, ErrorClass][..],
            Path::Rollups,
        ),
        (&["status:5xx"][..], &[All][..], Path::Rollups),
        (&["country:US"][..], &[All, Route][..], Path::Raw),
        (&["country!=US"][..], &[All, Country][..], Path::Raw),
        (&["route:/api/*"][..], &[All, Route, Status][..], Path::Raw),
        (&["route!=/api/*"][..], &[All, Route][..], Path::Raw),
        (
            &["name:click*", "campaign:spring"][..],
            &[All, Name][..],
            Path::Raw,
        ),
        (
            &["country:DE", "status!=2xx", "route:/api/orders*"][..],
            &[All, Route][..],
            Path::Raw,
        ),
        (&["country:DE", "country:US"][..], &[All][..], Path::Raw),
    ] {
        let filters = filters(texts);
        for (bucket, interval) in [
            (Bucket::Whole, None),
            (Bucket::Every(Interval::Hour), Some(Interval::Hour)),
            (Bucket::Every(Interval::Day), Some(Interval::Day)),
        ] {
            let f = rows(&store, "site", &filters, wanted, bucket, LIMITS);
            assert_eq!(f.path, path, "{texts:?}");
            assert_eq!((f.scale, f.from_ms, f.to_ms), (1, FROM, TO));
            let start = |t: i64| interval.map_or(0, |i| i.floor(t));
            let want = expected(&events, &filters, wanted, start);
            let have = match interval {
                Some(i) => got(&f, i),
                None => got(&f, Interval::Month)
                    .into_iter()
                    .map(|((_, d, v), r)| ((0, d, v), r))
                    .collect(),
            };
            assert_eq!(
                have.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{texts:?} {bucket:?}"
            );
            for (key, row) in &want {
                // Sketches and HyperLogLogs merge exactly: the same row, byte for byte.
                assert_eq!(&have[key], row, "{texts:?} {bucket:?} {key:?}");
            }
            if texts.is_empty() || texts == ["country:DE", "country:US"] {
                continue;
            }
            assert!(
                want.keys().any(|(_, d, _)| *d == All),
                "{texts:?} matches some"
            );
        }
    }
}

#[test]
fn a_value_folded_past_its_bound_is_answered_from_raw_events() {
    // 1,200 routes in one hour: the hour keeps the first 1,000 and folds the rest.
    let mut events: Vec<Event> = (0..1_200)
        .map(|i| {
            let raw = json!({"name": "request", "route": format!("/r/{i:04}"),
                             "timestamp": DAY0 + 2 * DAY_MS + HOUR_MS + i as i64});
            event("site", i, raw)
        })
        .collect();
    events.extend(workload("site", 2_000, 100, 3).into_iter().map(|mut e| {
        e.event_id = format!("1{}", &e.event_id[1..]);
        e
    }));
    let store = stored(&events);
    let folded: Vec<String> = {
        let hour = block_on(read::merged(
            &store,
            "site",
            FROM,
            TO,
            Some(Dimension::Route),
        ))
        .unwrap();
        (0..1_200)
            .map(|i| format!("/r/{i:04}"))
            .filter(|r| !hour.contains_key(&(Dimension::Route, r.clone())))
            .collect()
    };
    assert!(
        folded.len() >= 200,
        "the rest were folded: {}",
        folded.len()
    );
    for route in [&folded[0], "/r/0001"] {
        let filters = filters(&[&format!("route:{route}")]);
        let f = rows(
            &store,
            "site",
            &filters,
            &[Dimension::All],
            Bucket::Whole,
            LIMITS,
        );
        // Folded rows in the range might hide any value: raw events answer, exactly.
        assert_eq!(f.path, Path::Raw, "{route}");
        let all = read::merge(&f.rows);
        assert_eq!(all[&(Dimension::All, String::new())].count, 1, "{route}");
    }
    // A range without folded rows is answered from rollups.
    let users = filters(&["route:/api/users"]);
    let read = filtered::read(
        &store,
        "site",
        FROM,
        FROM + DAY_MS,
        &users,
        &[Dimension::All],
        Bucket::Whole,
        LIMITS,
    );
    let Read::Rows(f) = block_on(read).unwrap() else {
        panic!()
    };
    assert_eq!(f.path, Path::Rollups);
}

#[test]
fn a_sampled_read_reads_at_most_its_budget_and_equals_its_sample_scaled() {
    let events = workload("site", 60_000, 4_000, 2);
    let store = stored(&events);
    let counted = support::RowsReturned::new(&store);
    let budget = 9_000;
    let limits = Limits {
        row_budget: budget,
        raw_from_ms: 0,
    };
    let filters = filters(&["route:/api/*", "country!=JP"]);
    let wanted = [Dimension::All, Dimension::Route];
    let f = rows(&counted, "site", &filters, &wanted, Bucket::Whole, limits);
    // 60,000 events, two rows each, against 8,100 (90% of 9,000): 16 of 256 buckets.
    assert_eq!(f.path, Path::Sampled { buckets: 16 });
    assert_eq!(f.path.sample_rate(), Some(0.0625));
    assert_eq!(f.scale, 16);
    let read = counted.rows.borrow()[tally_core::sql::SAMPLE_EVENTS];
    assert_eq!(read, f.events_read);
    assert!(
        read * filtered::ROWS_PER_EVENT <= budget,
        "{read} events read"
    );
    assert!(
        !counted
            .rows
            .borrow()
            .contains_key(tally_core::sql::FILTERED_EVENTS),
        "no exact scan"
    );
    let in_sample: Vec<&Event> = events
        .iter()
        .filter(|e| u32::from(filter::sample_bucket(e)) < 16)
        .collect();
    assert_eq!(
        read,
        in_sample.len() as u64,
        "every event of the sample, once"
    );
    // The answer is the sample's exact answer, counts scaled by 16.
    let want = expected(in_sample.iter().copied(), &filters, &wanted, |_| 0);
    let have = got(&f, Interval::Month);
    assert_eq!(have.len(), want.len());
    for ((_, d, v), row) in &want {
        let h = have
            .iter()
            .find(|((_, hd, hv), _)| hd == d && hv == v)
            .unwrap()
            .1;
        assert_eq!(
            (h.count, h.errors, h.bytes),
            (row.count * 16, row.errors * 16, row.bytes * 16)
        );
        assert_eq!((&h.durations, &h.users), (&row.durations, &row.users));
    }
    // And it estimates the whole: within 20% of the exact count here.
    let exact = events.iter().filter(|e| filters.matches(e)).count() as f64;
    let merged = read::merge(&f.rows);
    let estimate = merged[&(Dimension::All, String::new())].count as f64;
    assert!(
        (estimate / exact - 1.0).abs() < 0.2,
        "{estimate} vs {exact}"
    );
    // The same users every time: the same rows again.
    let again = rows(&store, "site", &filters, &wanted, Bucket::Whole, limits);
    assert_eq!(got(&again, Interval::Month), have);

    // A budget too small for the planned sample shrinks it to the buckets read whole.
    let tight = Limits {
        row_budget: 700,
        raw_from_ms: 0,
    };
    let counted = support::RowsReturned::new(&store);
    let f = rows(&counted, "site", &filters, &wanted, Bucket::Whole, tight);
    let read = counted.rows.borrow()[tally_core::sql::SAMPLE_EVENTS];
    assert!(counted.sample_rows() <= 700, "{read}");
    let Path::Sampled { buckets } = f.path else {
        panic!("{:?}", f.path)
    };
    assert!(buckets.is_power_of_two() && buckets <= 2, "{buckets}");
    assert_eq!(f.scale, u64::from(SAMPLE_BUCKETS / buckets));
    // A budget below one bucket's events cannot answer.
    let none = Limits {
        row_budget: 50,
        raw_from_ms: 0,
    };
    let read = filtered::read(
        &store,
        "site",
        FROM,
        TO,
        &filters,
        &wanted,
        Bucket::Whole,
        none,
    );
    assert!(matches!(
        block_on(read).unwrap(),
        Read::OverBudget { events: 60_000 }
    ));
}

#[test]
fn one_projects_filter_never_reads_another_projects_rows() {
    let ours = workload("ours", 3_000, 300, 4);
    // The other project's events all match the filter, at the same times and ids.
    let theirs: Vec<Event> = workload("theirs", 3_000, 300, 4)
        .into_iter()
        .map(|mut e| {
            e.route = Some("/api/users".into());
            e.country = Some("US".into());
            e
        })
        .collect();
    let store = stored(&ours);
    store_all(&store, &theirs);
    let counted = support::RowsReturned::new(&store);
    let filters = filters(&["route:/api/users", "country:US"]);
    for budget in [1_000_000, 1_000] {
        let limits = Limits {
            row_budget: budget,
            raw_from_ms: 0,
        };
        let f = rows(
            &counted,
            "ours",
            &filters,
            &[Dimension::All],
            Bucket::Whole,
            limits,
        );
        let all = read::merge(&f.rows)[&(Dimension::All, String::new())].count;
        match f.path {
            Path::Raw => {
                let want = ours.iter().filter(|e| filters.matches(e)).count() as u64;
                assert_eq!(all, want);
            }
            Path::Sampled { buckets } => {
                let want = ours
                    .iter()
                    .filter(|e| u32::from(filter::sample_bucket(e)) < buckets)
                    .filter(|e| filters.matches(e))
                    .count() as u64;
                assert_eq!(all, want * f.scale);
                // Only our events were read: as many as our sample holds.
                let ours_read = ours
                    .iter()
                    .filter(|e| u32::from(filter::sample_bucket(e)) < buckets)
                    .count() as u64;
                assert_eq!(f.events_read, ours_read);
            }
            Path::Rollups => panic!("two filters need raw events"),
        }
    }
    let paths = counted.rows.borrow();
    assert!(paths.contains_key(tally_core::sql::FILTERED_EVENTS));
    assert!(paths.contains_key(tally_core::sql::SAMPLE_EVENTS));
}

#[test]
fn filtered_statements_bind_few_parameters_seek_their_indexes_and_never_sort() {
    let store = SqliteStore::open_in_memory().unwrap();
    // D1 binds at most 100 parameters: six, and three per filter slot.
    let parameters = |sql| store.with_connection(|c| c.prepare(sql).unwrap().parameter_count());
    assert_eq!(
        parameters(tally_core::sql::FILTERED_EVENTS),
        6 + 3 * tally_core::filter::MAX_FILTERS
    );
    assert!(parameters(tally_core::sql::FILTERED_EVENTS) <= 100);
    assert_eq!(parameters(tally_core::sql::SAMPLE_EVENTS), 7);
    let plan = |statement| support::query_plan(&store, statement).join(" | ");
    let exact = plan(tally_core::sql::FILTERED_EVENTS);
    assert!(
        exact.contains(
            "USING INDEX raw_events_by_time (project_id=? AND timestamp>? AND timestamp<?)"
        ),
        "{exact}"
    );
    let sample = plan(tally_core::sql::SAMPLE_EVENTS);
    assert!(
        sample.contains("USING INDEX raw_events_by_sample (project_id=? AND <expr>=? AND timestamp>? AND timestamp<?)"),
        "{sample}"
    );
    // A value's rollup rows: the dimension's index entries, not every dimension's rows.
    for statement in [
        tally_core::sql::ROLLUPS_OF_VALUE,
        tally_core::sql::ROLLUPS_OF_VALUE_PREFIX,
    ] {
        let p = plan(statement);
        assert!(
            p.contains(
                "USING PRIMARY KEY (project=? AND period=? AND dimension=? AND start>? AND start<?)"
            ),
            "{p}"
        );
    }
    // The index gives time order; only events of one millisecond are put in id order.
    for p in [exact, sample] {
        assert!(!p.contains("TEMP B-TREE FOR ORDER BY"), "{p}");
    }
}

#[test]
fn the_sql_filters_agree_with_filters_matches_on_random_filters() {
    let mut events = workload("site", 3_000, 200, 5);
    // Values that a byte-wise and a character-wise prefix could disagree on, a star and
    // a backslash, and events without them.
    let odd = ["/é/ü", "/é", "/éx", "/a*b", "/a\\b", "/ü/☀"];
    for (i, e) in events.iter_mut().enumerate().filter(|(i, _)| i % 7 == 0) {
        e.route = Some(odd[i % odd.len()].to_owned());
        e.campaign = (i % 2 == 0).then(|| odd[(i / 7) % odd.len()].to_owned());
    }
    let store = stored(&events);
    let texts = [
        "route:/é*",
        "route:/é",
        "route!=/é*",
        "route:/a\\*b",
        "route:/a\\\\b",
        "route:/ü/*",
        "route:/api/*",
        "route!=/api/orders",
        "campaign:/é",
        "campaign!=spring",
        "status:5xx",
        "status!=2xx",
        "country:de",
        "country!=US",
        "name:click*",
        "name!=serve",
        "error_class:Timeout",
        "item:img-1*",
        "variant!=thumb",
        "version:1.*",
        "colo!=FRA",
        "source:x",
        "medium!=y",
    ];
    let mut rng = Rng(11);
    let mut matched = 0;
    for _ in 0..150 {
        let n = 1 + rng.below(3) as usize;
        let picked: Vec<&str> = (0..n)
            .map(|_| texts[rng.below(texts.len() as u64) as usize])
            .collect();
        let filters = filters(&picked);
        let mut got = Vec::new();
        let mut after: Option<(i64, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(t, id)| (*t, id.as_str()));
            let page = block_on(tally_storage::QueryStore::filtered_events(
                &store, "site", FROM, TO, &filters, cursor, 700,
            ))
            .unwrap();
            after = page.last().map(|e| (e.timestamp, e.event_id.clone()));
            let done = page.len() < 700;
            got.extend(page.into_iter().map(|e| e.event_id));
            if done {
                break;
            }
        }
        let mut want: Vec<String> = events
            .iter()
            .filter(|e| filters.matches(e))
            .map(|e| e.event_id.replace('-', ""))
            .collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "{picked:?}");
        matched += usize::from(!want.is_empty());
    }
    assert!(
        matched > 75,
        "only {matched} of 150 filter sets matched anything"
    );
    let unicode = filters(&["route:/é*"]);
    let hits = events.iter().filter(|e| unicode.matches(e)).count();
    assert!(hits > 100, "{hits}");
}
