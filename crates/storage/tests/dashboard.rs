//! The dashboard page's D1 queries, counted through an executor on a project seeded
//! with every kind of event over 90 days, some of whose days are dirty: the README
//! promises a page costs under 50 (under 100 with a funnel of ten steps) and does not
//! grow with the range's days or the dimensions' values. Under filters the row budget
//! bounds a page, not a number of queries: raw events are read in pages and a sample a
//! bucket at a time, so such a page is held to its bound within D1's 1,000 queries an
//! invocation ([`filtered_page_bound`]), and its figures are printed. The reads are `tally_storage::dashboard::page`, which the query worker's page
//! renders, plus the worker's own: the gate's project and session, the funnel
//! (`funnels::funnel`) and the alerts section.

mod support;

use tally_core::alerts::MinuteSources;
use tally_core::filter::{self, Filters, SAMPLE_BUCKETS};
use tally_core::project::ProjectInput;
use tally_core::rollup::{Dimension, Key, Period, Rollup};
use tally_core::sketch::Sketch;
use tally_core::time::{DAY_MS, HOUR_MS, Interval};
use tally_core::workload::{FUNNEL, Workload};
use tally_storage::access::AccessStore;
use tally_storage::alerts::AlertStore;
use tally_storage::dashboard::{self, HEATMAP_DAYS, Page, Question};
use tally_storage::exec::Counted;
use tally_storage::filtered::{DEFAULT_ROW_BUDGET, PAGE, Path, ROWS_PER_EVENT};
use tally_storage::read::{self, MAX_COVER_QUERIES};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{AdminStore, funnels, pipeline};

use support::store_batch;

/// 2026-03-02T10:00:00Z.
const NOW: i64 = 1_772_445_600_000;
const SECRET: &[u8] = b"secret";
const RETENTION_DAYS: u32 = 90;

/// The README's figure for a page.
const PAGE_QUERIES: u32 = 50;

/// What a page without filters is held to here: two covering reads' worth
/// ([`MAX_COVER_QUERIES`] each: the range's dimensions and the previous period's `all`),
/// into which the heatmap's counts, the gate and the alerts section fit today.
const UNFILTERED_PAGE_QUERIES: u32 = 2 * MAX_COVER_QUERIES;

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
    let (late, early): (Vec<_>, Vec<_>) =
        workload.iter().enumerate().partition(|(i, _)| i % 40 == 0);
    let early: Vec<_> = early.into_iter().map(|(_, e)| e).collect();
    let late: Vec<_> = late.into_iter().map(|(_, e)| e).collect();
    block_on(pipeline::backfill(
        &store,
        early,
        1_000,
        NOW,
        &MinuteSources::default(),
    ))
    .unwrap();
    for chunk in late.chunks(500) {
        store_batch(&store, chunk, NOW);
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
fn page_queries(
    store: &SqliteStore,
    days: i64,
    filters: &str,
    steps: &[&str],
    row_budget: u64,
) -> (u32, Path) {
    let filters: Filters = filter::parse(filters.split('&').filter(|f| !f.is_empty())).unwrap();
    let counted = Counted::new(store);
    let to = Interval::Hour.floor(NOW) + HOUR_MS;
    let from = Interval::Hour.floor(to - days * DAY_MS);
    let oldest = Interval::Hour.floor(NOW - i64::from(RETENTION_DAYS) * DAY_MS) + HOUR_MS;
    // The gate: the project, and a dashboard session's lookup.
    assert!(block_on(counted.project("site")).unwrap().is_some());
    assert!(
        block_on(counted.session(&"00".repeat(32), NOW))
            .unwrap()
            .is_none()
    );
    let question = Question {
        project: "site",
        from_ms: from,
        to_ms: to,
        interval: interval_for(from, to),
        previous: (from - (to - from), from),
        heatmap_from_ms: from.max(Interval::Hour.floor(to - HEATMAP_DAYS * DAY_MS)),
        filters: &filters,
        oldest_raw_ms: oldest,
        row_budget,
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
            row_budget,
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

/// The most D1 queries a page under filters may make with `row_budget`: each of its four
/// filtered reads counts the range's events from rollups (one covering read) and then
/// reads raw events in pages of [`PAGE`] or its sample a bucket at a time (at most 128
/// buckets, whose events share the budget's pages); the gate and the alerts section add
/// five. Rows, not queries, bound a filtered read, so this is the bound to keep within
/// D1's 1,000 queries an invocation.
fn filtered_page_bound(row_budget: u64) -> u32 {
    let pages = u32::try_from(row_budget / (ROWS_PER_EVENT * u64::from(PAGE))).unwrap() + 1;
    4 * (MAX_COVER_QUERIES + SAMPLE_BUCKETS / 2 + pages) + 5
}

#[test]
fn a_dashboard_page_costs_under_50_queries_whatever_its_range_and_within_its_bound_filtered() {
    let store = seeded();
    let mut figures = Vec::new();
    for (days, filters, budget, path) in [
        // Without filters: rollups, the same queries for a week and for 90 days.
        (7, "", DEFAULT_ROW_BUDGET, Path::Rollups),
        (30, "", DEFAULT_ROW_BUDGET, Path::Rollups),
        (90, "", DEFAULT_ROW_BUDGET, Path::Rollups),
        (2, "", DEFAULT_ROW_BUDGET, Path::Rollups),
        // Filters: raw events within the budget (an equality too: rollups hold no cross
        // dimension of the country with every shown dimension), a sample past it.
        (30, "country:DE", DEFAULT_ROW_BUDGET, Path::Raw),
        (7, "country!=DE&route:/api/*", DEFAULT_ROW_BUDGET, Path::Raw),
        (90, "country!=DE", DEFAULT_ROW_BUDGET, Path::Raw),
        (30, "country!=DE", 20_000, Path::Sampled { buckets: 64 }),
        (90, "country!=DE", 20_000, Path::Sampled { buckets: 32 }),
    ] {
        let (queries, served) = page_queries(&store, days, filters, &[], budget);
        assert_eq!(served, path, "{filters:?} over {days} days");
        if filters.is_empty() {
            assert!(
                queries < PAGE_QUERIES,
                "{queries} queries for a page of {days} days"
            );
            // Tighter than the README's figure: 14 to 17 measured with every day dirty,
            // so a query added per shown dimension (18) or per day fails here.
            assert!(
                queries <= UNFILTERED_PAGE_QUERIES,
                "{queries} queries for a page of {days} days"
            );
        } else {
            assert!(
                queries <= filtered_page_bound(budget),
                "{queries} queries for a page of {days} days under {filters:?}"
            );
        }
        figures.push((days, filters, budget, queries));
    }
    eprintln!("D1 queries per page (days, filters, row budget, queries): {figures:?}");
    assert!(filtered_page_bound(DEFAULT_ROW_BUDGET) < 1_000);
    // A page's cost does not grow with its days: a week and 90 days differ at most by
    // the dirty days a covering read takes from their hours (at most 8 reads, once).
    let of = |days| {
        figures
            .iter()
            .find(|(d, f, _, _)| *d == days && f.is_empty())
            .unwrap()
            .3
    };
    assert!(of(90) <= of(7) + 8, "{figures:?}");
    assert!(of(30) <= of(7) + 8, "{figures:?}");

    // With a funnel: of the workload's four steps, and of ten, under 100.
    let ten = [
        "visit", "signup", "activate", "purchase", "play", "stop", "install", "pageview",
        "request", "image",
    ];
    let (four, _) = page_queries(&store, 30, "", &FUNNEL, DEFAULT_ROW_BUDGET);
    let (ten_steps, _) = page_queries(&store, 30, "", &ten, DEFAULT_ROW_BUDGET);
    let (ten_filtered, _) = page_queries(&store, 30, "country:DE", &ten, DEFAULT_ROW_BUDGET);
    eprintln!(
        "with a funnel of four steps: {four}; of ten: {ten_steps}; of ten, filtered: \
         {ten_filtered}"
    );
    assert!(four < PAGE_QUERIES, "{four} with a funnel of four steps");
    assert!(
        ten_steps < 2 * PAGE_QUERIES,
        "{ten_steps} with a funnel of ten steps"
    );
}

/// Without filters the page reads the range's rows without the durations sketches of
/// other dimensions than `all` (issue 17): every row is the whole row but for them,
/// over ranges whose days are clean, dirty and partial.
#[test]
fn the_pages_range_is_the_whole_rows_but_other_dimensions_durations() {
    let store = seeded();
    let to = Interval::Hour.floor(NOW) + HOUR_MS;
    for days in [2, 30, 90] {
        let from = Interval::Hour.floor(to - days * DAY_MS);
        let question = Question {
            project: "site",
            from_ms: from,
            to_ms: to,
            interval: interval_for(from, to),
            previous: (from - (to - from), from),
            heatmap_from_ms: from,
            filters: &Filters::none(),
            oldest_raw_ms: 0,
            row_budget: DEFAULT_ROW_BUDGET,
        };
        let Page::Read(sections) = block_on(dashboard::page(&store, &question)).unwrap() else {
            panic!("refused")
        };
        let whole = block_on(read::covering_rows_of(
            &store,
            "site",
            from,
            to,
            &dashboard::DIMENSIONS,
            false,
        ))
        .unwrap();
        let sorted = |mut rows: Vec<(Period, Key, Rollup)>| {
            rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            rows
        };
        let expected: Vec<_> = whole
            .into_iter()
            .map(|(period, key, mut row)| {
                if !dashboard::TIMED.contains(&key.dimension) {
                    row.durations = Sketch::default();
                }
                (period, key, row)
            })
            .collect();
        let got = sections.range.rows.clone();
        assert!(
            got.iter()
                .any(|(_, k, r)| k.dimension == Dimension::All && r.durations.count() > 0)
        );
        assert!(got.len() > 100, "{} rows over {days} days", got.len());
        assert_eq!(sorted(got), sorted(expected), "over {days} days");
    }
}
