//! The dashboard page's D1 queries, counted through an executor on a project seeded
//! with every kind of event over 90 days, some of whose days are dirty: the README
//! promises a page costs under 50 (under 100 with a funnel of ten steps), with filters
//! and without, and that it does not grow with the range's days or the dimensions'
//! values. The reads are `tally_storage::dashboard::page`, which the query worker's page
//! renders, plus the worker's own: the gate's project and session, the funnel
//! (`funnels::funnel`) and the alerts section.

use tally_core::filter::{self, Filters};
use tally_core::project::ProjectInput;
use tally_core::time::{DAY_MS, HOUR_MS, Interval};
use tally_core::workload::{FUNNEL, Workload};
use tally_storage::access::AccessStore;
use tally_storage::alerts::AlertStore;
use tally_storage::dashboard::{self, HEATMAP_DAYS, Page, Question};
use tally_storage::exec::Counted;
use tally_storage::filtered::{DEFAULT_ROW_BUDGET, Path};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{AdminStore, funnels, pipeline};

/// 2026-03-02T10:00:00Z.
const NOW: i64 = 1_772_445_600_000;
const SECRET: &[u8] = b"secret";
const RETENTION_DAYS: u32 = 90;

/// The README's figure for a page.
const PAGE_QUERIES: u32 = 50;

/// 60,000 events of the mixed workload over 90 days; every 40th arrives after the days
/// were rolled, so those days are dirty (read from their hours) as a busy project's
/// recent days are.
fn seeded() -> SqliteStore {
    let store = SqliteStore::open_in_memory().unwrap();
    let project = ProjectInput {
        slug: Some("site".to_owned()),
        retention_days: Some(RETENTION_DAYS),
        ..ProjectInput::default()
    }
    .create(NOW - 100 * DAY_MS)
    .unwrap();
    assert!(block_on(store.create_project(&project)).unwrap());
    let workload = Workload {
        project: "site",
        events: 60_000,
        days: 90,
        now_ms: NOW,
        id_secret: SECRET,
        seed: 16,
    };
    let (late, early): (Vec<_>, Vec<_>) = workload
        .iter()
        .enumerate()
        .partition(|(i, _)| i % 40 == 0);
    let early: Vec<_> = early.into_iter().map(|(_, e)| e).collect();
    let late: Vec<_> = late.into_iter().map(|(_, e)| e).collect();
    block_on(pipeline::backfill(&store, early, 1_000, NOW)).unwrap();
    for chunk in late.chunks(500) {
        block_on(pipeline::store_events(&store, chunk, NOW)).unwrap();
    }
    store
}

/// The page's buckets for its range, as the worker picks them (`report::interval_for`).
fn interval_for(from: i64, to: i64) -> Interval {
    match to - from {
        span if span <= 2 * DAY_MS => Interval::Hour,
        span if span <= 120 * DAY_MS => Interval::Day,
        _ => Interval::Week,
    }
}

/// What one page of the last `days` costs in D1 queries, and the path its range was
/// served by.
fn page_queries(store: &SqliteStore, days: i64, filters: &str, steps: &[&str]) -> (u32, Path) {
    let filters: Filters = filter::parse(filters.split('&').filter(|f| !f.is_empty())).unwrap();
    let counted = Counted::new(store);
    let to = Interval::Hour.floor(NOW) + HOUR_MS;
    let from = Interval::Hour.floor(to - days * DAY_MS);
    let oldest = Interval::Hour.floor(NOW - i64::from(RETENTION_DAYS) * DAY_MS) + HOUR_MS;
    // The gate: the project, and a dashboard session's lookup.
    assert!(block_on(counted.project("site")).unwrap().is_some());
    assert!(block_on(counted.session(&"00".repeat(32), NOW)).unwrap().is_none());
    let question = Question {
        project: "site",
        from_ms: from,
        to_ms: to,
        interval: interval_for(from, to),
        previous: (from - (to - from), from),
        heatmap_from_ms: from.max(Interval::Hour.floor(to - HEATMAP_DAYS * DAY_MS)),
        filters: &filters,
        oldest_raw_ms: oldest,
        row_budget: DEFAULT_ROW_BUDGET,
    };
    let Page::Read(sections) = block_on(dashboard::page(&counted, &question)).unwrap() else {
        panic!("the page's range was refused: {filters:?} over {days} days")
    };
    assert!(!sections.range.rows.is_empty());
    if !steps.is_empty() {
        let steps: Vec<String> = steps.iter().map(|s| (*s).to_owned()).collect();
        let funnel = block_on(funnels::funnel(
            &counted,
            "site",
            from.max(oldest),
            to,
            &steps,
            DAY_MS,
            &filters,
            DEFAULT_ROW_BUDGET,
        ))
        .unwrap();
        assert!(
            matches!(funnel, funnels::Funnel::Counted { .. }),
            "{funnel:?}"
        );
    }
    // The alerts section.
    block_on(counted.alert_rules(Some("site"))).unwrap();
    block_on(counted.alerts("site", from, to, 50)).unwrap();
    block_on(counted.campaigns("site")).unwrap();
    (counted.take_queries(), sections.range.path)
}

#[test]
fn a_dashboard_page_costs_under_50_queries_whatever_its_range_and_filters() {
    let store = seeded();
    let mut figures = Vec::new();
    for (days, filters, steps, path) in [
        // Without filters: rollups, the same queries for a week and for 90 days.
        (7, "", &[][..], Path::Rollups),
        (30, "", &[], Path::Rollups),
        (90, "", &[], Path::Rollups),
        (2, "", &[], Path::Rollups),
        // One equality a dimension's rows answer.
        (30, "country:DE", &[], Path::Rollups),
        // Filters only raw events answer, within the budget and past it.
        (7, "country!=DE&route:/api/*", &[], Path::Raw),
        (90, "country!=DE", &[], Path::Sampled { buckets: 0 }),
    ] {
        let (queries, served) = page_queries(&store, days, filters, steps);
        figures.push((days, filters, queries));
        match (path, served) {
            (Path::Sampled { .. }, Path::Sampled { .. }) => {}
            _ => assert_eq!(served, path, "{filters:?} over {days} days"),
        }
        assert!(
            queries < PAGE_QUERIES,
            "{queries} queries for a page of {days} days under {filters:?}"
        );
    }
    eprintln!("D1 queries per page (days, filters, queries): {figures:?}");
    // A page's cost does not grow with its days: a week and 90 days differ at most by
    // the dirty days a covering read takes from their hours (at most 8 reads, once).
    let of = |days, filters| {
        figures
            .iter()
            .find(|(d, f, _)| *d == days && *f == filters)
            .unwrap()
            .2
    };
    assert!(of(90, "") <= of(7, "") + 8, "{figures:?}");
    assert!(of(30, "") <= of(7, "") + 8, "{figures:?}");

    // With a funnel of the workload's four steps, and of ten: under 100.
    let (with_funnel, _) = page_queries(&store, 30, "", &FUNNEL);
    assert!(with_funnel < PAGE_QUERIES, "{with_funnel} with a funnel of four steps");
    let ten = [
        "visit", "signup", "activate", "purchase", "play", "stop", "install", "pageview",
        "request", "image",
    ];
    let (with_ten, _) = page_queries(&store, 30, "country:DE", &ten);
    assert!(with_ten < 2 * PAGE_QUERIES, "{with_ten} with a funnel of ten steps");
    eprintln!("with a funnel of four steps: {with_funnel}; of ten, filtered: {with_ten}");
}
