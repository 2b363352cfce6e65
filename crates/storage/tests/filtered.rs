//! Reads narrowed to one item or one user, against real SQLite, checked against counts
//! taken straight from the events.

mod support;

use std::collections::BTreeMap;

use tally_core::hash::identifier;
use tally_core::rollup::{Dimension, Period, pair_prefix, pair_second};
use tally_core::sessions::{self, Mark};
use tally_core::testing::SplitMix64 as Rng;
use tally_core::time::{DAY_MS, HOUR_MS, Interval};
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{DayCount, FilteredReads, ValueMatch, pipeline, read};

use support::store_batch;

/// 2025-01-10T00:00:00Z.
const DAY0: i64 = 1_736_467_200_000;
const NOW: i64 = DAY0 + 3 * DAY_MS;
const SECRET: &[u8] = b"secret";

fn event(i: u64, raw: serde_json::Value) -> Event {
    let mut raw = raw;
    raw["project"] = "cdn".into();
    raw["event_id"] = format!("00000000-0000-4000-8000-{i:012x}").into();
    let raw: RawEvent = serde_json::from_value(raw).unwrap();
    let ctx = Context {
        project: "cdn",
        now_ms: NOW,
        settings: Settings::default(),
        id_secret: SECRET,
    };
    validate(raw, &ctx, &mut || unreachable!()).unwrap().event
}

/// Serves of twelve items (`img-1` and `img-10` among them, so that one item's name
/// starts another's) over three days, plus plays and stops of a few users.
fn workload() -> Vec<Event> {
    let mut rng = Rng(5);
    let mut events: Vec<Event> = (0..3000)
        .map(|i| {
            let mut raw = serde_json::json!({
                "name": "serve",
                "timestamp": DAY0 + rng.below(3 * DAY_MS as u64) as i64,
                "item": format!("img-{}", rng.below(12)),
                "country": (["DE", "US", "FR"][rng.below(3) as usize]),
                "bytes": rng.below(50_000),
                "status": ([200, 200, 404][rng.below(3) as usize]),
            });
            // Some serves name no variant: they count for the item, not for a variant.
            if rng.below(10) > 0 {
                raw["variant"] = ["orig", "w640", "thumb"][rng.below(3) as usize].into();
            }
            event(i, raw)
        })
        .collect();
    for i in 0..400 {
        let user = format!("user-{}", rng.below(4));
        let name = ["play", "stop", "pause"][rng.below(3) as usize];
        let t = DAY0 + rng.below(3 * DAY_MS as u64) as i64;
        events.push(event(
            10_000 + i,
            serde_json::json!({"name": name, "user": user, "timestamp": t}),
        ));
    }
    events
}

/// A store holding the workload, with its first two days rolled and then the second
/// made dirty again by one late serve, so that reads combine clean day rows, a dirty
/// day's hours and the unrolled last day's hours.
fn stored(events: &[Event]) -> SqliteStore {
    let store = SqliteStore::open_in_memory().unwrap();
    let (late, early) = events.split_at(1);
    store_batch(&store, early, NOW);
    block_on(pipeline::roll_dirty(&store, Period::Day, 1000, NOW)).unwrap();
    store_batch(&store, late, NOW);
    store
}

#[test]
fn one_items_totals_variants_and_days_equal_counting_its_events() {
    let events = workload();
    let store = stored(&events);
    let (from, to) = (DAY0 + 5 * HOUR_MS, DAY0 + 3 * DAY_MS);
    let in_range = |e: &&Event| e.timestamp >= from && e.timestamp < to;
    for n in [1, 10, 3] {
        let item = format!("img-{n}");
        let served: Vec<&Event> = events
            .iter()
            .filter(in_range)
            .filter(|e| e.item.as_deref() == Some(item.as_str()))
            .collect();
        assert!(served.len() > 100, "{item}: {}", served.len());

        let totals = block_on(read::merged_matching(
            &store,
            "cdn",
            from,
            to,
            Dimension::Item,
            ValueMatch::Exact(&item),
        ))
        .unwrap();
        let bytes: u64 = served.iter().map(|e| e.bytes.unwrap()).sum();
        assert_eq!(totals.len(), 1, "{item}: only its own value");
        let row = &totals[&(Dimension::Item, item.clone())];
        assert_eq!(
            (row.count, row.bytes),
            (served.len() as u64, bytes),
            "{item}"
        );

        let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for e in served.iter().filter(|e| e.variant.is_some()) {
            let v = expected.entry(e.variant.clone().unwrap()).or_default();
            v.0 += 1;
            v.1 += e.bytes.unwrap();
        }
        let variants = block_on(read::merged_matching(
            &store,
            "cdn",
            from,
            to,
            Dimension::ItemVariant,
            ValueMatch::Prefix(&pair_prefix(&item)),
        ))
        .unwrap();
        let got: BTreeMap<String, (u64, u64)> = variants
            .iter()
            .map(|((_, value), r)| (pair_second(value).unwrap(), (r.count, r.bytes)))
            .collect();
        assert_eq!(got, expected, "{item}: variants");

        let mut per_day: BTreeMap<i64, u64> = BTreeMap::new();
        for e in &served {
            *per_day.entry(e.timestamp / DAY_MS * DAY_MS).or_default() += 1;
        }
        let series = block_on(read::series_matching(
            &store,
            "cdn",
            from,
            to,
            Interval::Day,
            Dimension::Item,
            ValueMatch::Exact(&item),
        ))
        .unwrap();
        let got: BTreeMap<i64, u64> = series
            .iter()
            .map(|(day, m)| (*day, m.values().map(|r| r.count).sum()))
            .collect();
        assert_eq!(got, per_day, "{item}: per day");
    }
}

#[test]
fn one_users_events_and_sessions_equal_counting_theirs() {
    let events = workload();
    let store = stored(&events);
    for raw in ["user-0", "user-3", "nobody"] {
        let hash = identifier(SECRET, "cdn", raw);
        let theirs: Vec<&Event> = events
            .iter()
            .filter(|e| e.user.as_deref() == Some(hash.as_str()))
            .collect();
        let mut expected: BTreeMap<(i64, String), u64> = BTreeMap::new();
        for e in &theirs {
            *expected
                .entry((e.timestamp / DAY_MS * DAY_MS, e.name.clone()))
                .or_default() += 1;
        }
        let expected: Vec<DayCount> = expected
            .into_iter()
            .map(|((day, name), count)| DayCount { day, name, count })
            .collect();
        let got = block_on(store.user_event_counts("cdn", &hash, DAY0, NOW)).unwrap();
        assert_eq!(got, expected, "{raw}");
        assert_eq!(expected.is_empty(), raw == "nobody");

        let marks: Vec<Mark> = theirs
            .iter()
            .filter(|e| e.name == "play" || e.name == "stop")
            .map(|e| Mark {
                user: hash[..16].to_owned(),
                timestamp: e.timestamp,
                event_id: e.event_id.replace('-', ""),
                is_start: e.name == "play",
            })
            .collect();
        let (from, to) = (DAY0 + DAY_MS, DAY0 + 3 * DAY_MS);
        let expected = sessions::stats(&sessions::pair(marks), Interval::SundayWeek, from, to);
        let got = block_on(tally_storage::sessions::user_session_stats(
            &store,
            "cdn",
            &hash,
            from,
            to,
            Interval::SundayWeek,
        ))
        .unwrap();
        assert_eq!(got, expected, "{raw}");
        if raw != "nobody" {
            assert!(got.values().map(|s| s.sessions).sum::<u64>() > 5, "{got:?}");
        }
    }
}
