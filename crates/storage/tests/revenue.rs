//! Revenue and the UTM term and content through the pipeline, against real SQLite: sums
//! exact in thousandths, currencies apart, rolled days equal to their hours and to a
//! rebuild from raw events, and ordinary events write no row more than before.

mod support;

use std::collections::BTreeMap;

use tally_core::Event;
use tally_core::rollup::{self, Dimension, Period};
use tally_core::time::{DAY_MS, HOUR_MS};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{EventStore, RollupStore, pipeline};

use support::store_batch;

/// 2025-01-10T00:00:00Z.
const DAY0: i64 = 1_736_467_200_000;
const NOW: i64 = DAY0 + 2 * DAY_MS;

fn event(project: &str, i: u64, raw: serde_json::Value) -> Event {
    let mut raw = raw;
    raw["event_id"] = format!("00000000-0000-4000-8000-{i:012x}").into();
    raw["project"] = project.into();
    if raw.get("timestamp").is_none() {
        raw["timestamp"] = (DAY0 + (i as i64 % 20) * HOUR_MS + 1_000).into();
    }
    support::validated(project, NOW, raw)
}

/// `(value, events, thousandths)` of `dimension`'s rows of `period` on DAY0, merged.
fn sums(store: &SqliteStore, period: Period, dimension: Dimension) -> BTreeMap<String, (u64, u64)> {
    let rows =
        block_on(store.rollups_between("shop", period, DAY0, DAY0 + DAY_MS, Some(dimension)))
            .unwrap();
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (key, row) in rows {
        let sum = out.entry(key.value).or_default();
        sum.0 += row.value.count;
        sum.1 += row.value.revenue;
    }
    out
}

/// 300 purchases in euros of 0.10, 0.20 and 19.99 (sums a float would not keep exact),
/// 100 in yen, and 400 pageviews without revenue; some with a term and a content.
fn shop() -> Vec<Event> {
    let mut events = Vec::new();
    for i in 0..800u64 {
        let euros = [0.1, 0.2, 19.99][(i % 3) as usize];
        let raw = match i % 8 {
            0..=2 => serde_json::json!({
                "name": "purchase", "source": if i % 2 == 0 { "google" } else { "bing" },
                "campaign": "spring", "term": "running shoes",
                "metadata": {"revenue": {"currency": "EUR", "amount": euros}},
            }),
            3 => serde_json::json!({
                "name": "purchase", "content": "banner-a",
                "metadata": {"revenue": {"currency": "JPY", "amount": 1200}},
            }),
            _ => serde_json::json!({"name": "pageview", "source": "google", "campaign": "spring"}),
        };
        events.push(event("shop", i, raw));
    }
    events
}

#[test]
fn revenue_sums_are_exact_per_currency_in_hours_days_and_rebuilds() {
    let store = SqliteStore::open_in_memory().unwrap();
    let events = shop();
    for batch in events.chunks(97) {
        store_batch(&store, batch, NOW);
    }
    // Exact: every euro amount in thousandths, summed as integers.
    let mut expected_eur = 0u64;
    let mut eur_events = 0u64;
    for e in &events {
        if let Some(r) = tally_core::revenue::of(e.metadata.as_ref())
            && r.currency == "EUR"
        {
            expected_eur += r.thousandths;
            eur_events += 1;
        }
    }
    assert_eq!(eur_events, 300);
    let by_name = sums(&store, Period::Hour, Dimension::RevenueName);
    assert_eq!(
        by_name,
        BTreeMap::from([
            (
                rollup::revenue_value("EUR", Some("purchase")),
                (300, expected_eur)
            ),
            (
                rollup::revenue_value("JPY", Some("purchase")),
                (100, 120_000_000)
            ),
        ])
    );
    assert_eq!(expected_eur, 100 * (100 + 200 + 19_990));
    let by_source = sums(&store, Period::Hour, Dimension::RevenueSource);
    assert_eq!(by_source.len(), 3, "{by_source:?}");
    assert_eq!(
        by_source[&rollup::revenue_value("JPY", None)],
        (100, 120_000_000)
    );
    let eur_by_source: u64 = by_source
        .iter()
        .filter(|(v, _)| v.starts_with(r#"["EUR""#))
        .map(|(_, (_, t))| t)
        .sum();
    assert_eq!(eur_by_source, expected_eur);
    // Term and content are dimensions of their own, and raw columns.
    assert_eq!(
        sums(&store, Period::Hour, Dimension::Term),
        BTreeMap::from([("running shoes".to_owned(), (300, 0))])
    );
    assert_eq!(
        sums(&store, Period::Hour, Dimension::Content),
        BTreeMap::from([("banner-a".to_owned(), (100, 0))])
    );
    let stored = block_on(store.events_between("shop", DAY0, DAY0 + DAY_MS, None, 1_000)).unwrap();
    assert_eq!(
        stored.iter().filter(|e| e.term.is_some()).count(),
        300,
        "raw rows keep the term"
    );
    assert_eq!(stored.iter().filter(|e| e.content.is_some()).count(), 100);
    // No row of another dimension sums revenue: currencies are never added together.
    let all =
        block_on(store.rollups_between("shop", Period::Hour, DAY0, DAY0 + DAY_MS, None)).unwrap();
    assert!(
        all.iter()
            .all(|(k, r)| k.dimension.is_revenue() || r.value.revenue == 0)
    );

    // The day rolled from the hours holds the same sums.
    block_on(pipeline::roll_dirty(&store, Period::Day, 10, NOW)).unwrap();
    for d in Dimension::REVENUE {
        assert_eq!(
            sums(&store, Period::Day, d),
            sums(&store, Period::Hour, d),
            "{d:?}"
        );
    }
    // A rebuild of the hours from raw events gives the same rows.
    let before = sums(&store, Period::Hour, Dimension::RevenueCampaign);
    block_on(pipeline::rebuild_hours(&store, "shop", DAY0, DAY0 + DAY_MS)).unwrap();
    assert_eq!(
        sums(&store, Period::Hour, Dimension::RevenueCampaign),
        before
    );
}

#[test]
fn ordinary_events_write_no_revenue_term_or_content_rows() {
    let store = SqliteStore::open_in_memory().unwrap();
    let plain: Vec<Event> = shop()
        .into_iter()
        .filter(|e| e.name == "pageview")
        .collect();
    let stored = store_batch(&store, &plain, NOW);
    assert_eq!(stored.new, 400);
    // The rows written are those of the dimensions there were before: the new ones add
    // none for events without revenue, a term or a content.
    let new_dimensions = [Dimension::Term, Dimension::Content]
        .into_iter()
        .chain(Dimension::REVENUE);
    let hours = rollup::roll(&plain, tally_core::time::Interval::Hour);
    // (Events of more than 25 hours ago write no minute rows.)
    assert_eq!(stored.rollup_rows, hours.len());
    let all =
        block_on(store.rollups_between("shop", Period::Hour, DAY0, DAY0 + DAY_MS, None)).unwrap();
    assert_eq!(all.len(), hours.len());
    for d in new_dimensions {
        assert!(all.keys().all(|k| k.dimension != d), "{d:?}");
    }
    // One purchase more writes its three revenue rows (name, source, campaign) and its
    // term row: four hour rows, nothing else new.
    let purchase = event(
        "shop",
        10_000,
        serde_json::json!({"name": "pageview", "source": "google", "campaign": "spring",
            "timestamp": plain[0].timestamp, "term": "shoes",
            "metadata": {"revenue": {"currency": "EUR", "amount": 5}}}),
    );
    let before = all.len();
    store_batch(&store, &[purchase], NOW);
    let after =
        block_on(store.rollups_between("shop", Period::Hour, DAY0, DAY0 + DAY_MS, None)).unwrap();
    assert_eq!(after.len(), before + 4);
}

#[test]
fn a_flood_of_unique_campaigns_with_revenue_stays_bounded_and_sums_stay_exact() {
    let store = SqliteStore::open_in_memory().unwrap();
    let hour = DAY0 + 5 * HOUR_MS;
    let max = Period::Hour.max_values();
    let n = max as u64 + 300;
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let currency = if i % 2 == 0 { "EUR" } else { "USD" };
            event(
                "shop",
                i,
                serde_json::json!({"name": "purchase", "timestamp": hour + i as i64,
                    "campaign": format!("c-{i}"),
                    "metadata": {"revenue": {"currency": currency, "amount": 1.5}}}),
            )
        })
        .collect();
    for batch in events.chunks(400) {
        store_batch(&store, batch, NOW);
    }
    let rows = sums(&store, Period::Hour, Dimension::RevenueCampaign);
    // The bound's values, plus one folded row per currency.
    assert_eq!(rows.len(), max + 2, "{}", rows.len());
    for currency in ["EUR", "USD"] {
        let folded = rollup::revenue_value(currency, Some(""));
        assert!(rows.contains_key(&folded), "{currency} folds apart");
        let (events, thousandths) = rows
            .iter()
            .filter(|(v, _)| v.starts_with(&format!("[\"{currency}\"")))
            .fold((0, 0), |(e, t), (_, (n, r))| (e + n, t + r));
        assert_eq!((events, thousandths), (n / 2, n / 2 * 1_500), "{currency}");
    }
}
