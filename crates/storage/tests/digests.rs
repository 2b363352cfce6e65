//! Digests against real SQLite: events go through the pipeline, the cron's
//! `compose_due` records each due period once (whatever overlaps it), its numbers equal
//! the query API's reads, it keeps within its query budget and carries the rest over,
//! and delivery is signed, retried and recorded as alert deliveries are.

mod support;

use std::cell::RefCell;

use serde_json::{Value, json};
use tally_core::alerts::verify_signature;
use tally_core::digest::{self, Digest};
use tally_core::rollup::Dimension;
use tally_core::time::{DAY_MS, HOUR_MS};
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::alerts::{Delivering, Handled, Sent};
use tally_storage::digests::{
    self, DIGEST_QUERY_BUDGET, MAX_QUERIES_PER_DIGEST, compose_due, give_up, handle_digest,
};
use tally_storage::exec::Counted;
use tally_storage::read;
use tally_storage::sqlite::{SqliteStore, block_on};

use support::store_batch;

/// 2026-03-10T00:00:00Z, a Tuesday.
const DAY: i64 = 1_773_100_800_000;
const SECRET: &[u8] = b"secret";

fn event(project: &str, i: u64, at: i64, raw: Value) -> Event {
    let mut raw = raw;
    raw["project"] = project.into();
    raw["event_id"] = format!("00000000-0000-4000-8000-{i:012x}").into();
    raw["timestamp"] = at.into();
    let raw: RawEvent = serde_json::from_value(raw).unwrap();
    let ctx = Context {
        project,
        now_ms: at,
        settings: Settings::default(),
        id_secret: SECRET,
    };
    validate(raw, &ctx, &mut || unreachable!()).unwrap().event
}

/// Yesterday (the day before `DAY`): 30 newsletter visits, 4 of them failing on
/// /checkout; the day before: 10 newsletter and 20 google visits.
fn seed(store: &SqliteStore, project: &str) {
    let mut events = Vec::new();
    for i in 0..30u64 {
        let mut raw = json!({"name": "request", "route": "/checkout", "source": "newsletter",
                             "duration_ms": 10 + i, "user": format!("u{i}")});
        if i < 4 {
            raw["error_class"] = "TypeError".into();
        }
        events.push(event(project, i, DAY - DAY_MS + i as i64 * 1000, raw));
    }
    for i in 0..30u64 {
        let source = if i < 10 { "newsletter" } else { "google" };
        let raw = json!({"name": "request", "route": "/", "source": source});
        events.push(event(
            project,
            100 + i,
            DAY - 2 * DAY_MS + i as i64 * 1000,
            raw,
        ));
    }
    store_batch(store, &events, DAY);
}

fn configure(store: &SqliteStore, project: &str, hour_utc: u8) -> Digest {
    let input = digest::parse_input(
        json!({"period": "daily", "hour_utc": hour_utc, "webhook_url": "http://127.0.0.1:9/hook"})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let secret = format!("whsec_{}", "ab".repeat(24));
    let (made, _) = input.apply(project, None, secret, DAY - 3 * DAY_MS);
    block_on(digests::put(store, &made)).unwrap();
    made
}

#[test]
fn a_due_period_is_recorded_once_with_the_query_apis_numbers() {
    let store = SqliteStore::open_in_memory().unwrap();
    seed(&store, "shop");
    let made = configure(&store, "shop", 9);

    // Before 09:00 the due period is the day before yesterday's; at 09:00, yesterday's.
    let early = block_on(compose_due(&store, DAY + 8 * HOUR_MS, DIGEST_QUERY_BUDGET)).unwrap();
    assert_eq!(early.recorded, 1);
    block_on(digests::queued(&store, &early.to_queue, DAY + 8 * HOUR_MS)).unwrap();
    let at = DAY + 9 * HOUR_MS + 30_000;
    let first = block_on(compose_due(&store, at, DIGEST_QUERY_BUDGET)).unwrap();
    let id = made.run_id(DAY - DAY_MS);
    assert_eq!(
        (first.recorded, first.to_queue.clone()),
        (1, vec![id.clone()])
    );
    assert!(first.queries <= MAX_QUERIES_PER_DIGEST + 2, "{first:?}");
    // An overlapping run, or the next minute's, records and queues nothing more.
    for later in [at, at + 60_000 * 30] {
        block_on(digests::queued(&store, &first.to_queue, at)).unwrap();
        let again = block_on(compose_due(&store, later, DIGEST_QUERY_BUDGET)).unwrap();
        assert_eq!((again.recorded, again.to_queue.len()), (0, 0), "{again:?}");
    }

    let run = block_on(digests::last_run(&store, "shop"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (run.id.as_str(), run.delivery.as_str()),
        (id.as_str(), "pending")
    );
    let body: Value = serde_json::from_str(&run.payload).unwrap();
    let all = block_on(read::merged(
        &store,
        "shop",
        DAY - DAY_MS,
        DAY,
        Some(Dimension::All),
    ))
    .unwrap()
    .into_values()
    .next()
    .unwrap();
    let h = &body["headline"];
    assert_eq!(h["events"], all.count);
    assert_eq!(
        (h["events"].as_u64(), h["errors"].as_u64()),
        (Some(30), Some(4))
    );
    assert_eq!(h["unique_users"], all.users.count());
    assert_eq!(h["duration_ms"]["p95"], json!(all.durations.quantile(0.95)));
    assert_eq!(body["previous"]["headline"]["events"], 30);
    assert_eq!(
        body["movers"]["sources"],
        json!([{"value": "newsletter", "current": 30, "previous": 10, "change": 20, "percent": 200.0}])
    );
    assert_eq!(body["movers"]["routes"][0]["value"], "/checkout");
    assert_eq!(body["movers"]["error_classes"][0]["value"], "TypeError");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("Events: 30 (+0, +0.0% vs previous day)")
    );
}

#[test]
fn a_run_keeps_within_its_query_budget_and_the_next_takes_the_rest() {
    let store = SqliteStore::open_in_memory().unwrap();
    let projects: Vec<String> = (0..12).map(|i| format!("p{i:02}")).collect();
    for p in &projects {
        seed(&store, p);
        configure(&store, p, 9);
    }
    let counted = Counted::new(&store);
    let at = DAY + 10 * HOUR_MS;
    let mut recorded = 0;
    let mut runs = 0;
    while recorded < projects.len() {
        let run = block_on(compose_due(&counted, at, DIGEST_QUERY_BUDGET)).unwrap();
        let used = counted.take_queries();
        assert!(used <= DIGEST_QUERY_BUDGET, "{used} queries in one run");
        assert_eq!(run.queries, used);
        assert!(run.recorded > 0, "a run made no progress: {run:?}");
        assert_eq!(run.deferred, projects.len() - recorded - run.recorded);
        recorded += run.recorded;
        runs += 1;
    }
    assert!(runs > 1, "the budget never bound; the test proves nothing");
    let done = block_on(compose_due(&counted, at, DIGEST_QUERY_BUDGET)).unwrap();
    assert_eq!((done.recorded, done.deferred), (0, 0));
}

#[test]
fn delivery_is_signed_retried_recorded_and_never_repeated() {
    let store = SqliteStore::open_in_memory().unwrap();
    seed(&store, "shop");
    let made = configure(&store, "shop", 9);
    let at = DAY + 9 * HOUR_MS;
    let id = block_on(compose_due(&store, at, DIGEST_QUERY_BUDGET))
        .unwrap()
        .to_queue[0]
        .clone();
    let sent: RefCell<Vec<Delivering>> = RefCell::new(Vec::new());
    let answer = |status: Option<u16>| {
        let sent = &sent;
        move |d: Delivering| {
            sent.borrow_mut().push(d);
            async move {
                Sent {
                    status,
                    error: status.is_none().then(|| "connection refused".to_owned()),
                    duration_ms: 3,
                }
            }
        }
    };
    assert_eq!(
        block_on(handle_digest(&store, &id, at, answer(Some(503)))).unwrap(),
        Handled::Retry { delay_s: 10 }
    );
    let run = block_on(digests::last_run(&store, "shop"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            run.delivery.as_str(),
            run.attempts,
            run.last_status,
            run.last_error.as_deref()
        ),
        ("pending", 1, Some(503), Some("HTTP 503"))
    );
    assert_eq!(
        block_on(handle_digest(&store, &id, at + 10_000, answer(None))).unwrap(),
        Handled::Retry { delay_s: 20 }
    );
    assert_eq!(
        block_on(handle_digest(&store, &id, at + 30_000, answer(Some(200)))).unwrap(),
        Handled::Done
    );
    let run = block_on(digests::last_run(&store, "shop"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (run.delivery.as_str(), run.attempts, run.delivered_at),
        ("delivered", 3, Some(at + 30_000))
    );
    assert_eq!(run.last_error, None);
    // A redelivered message sends nothing more.
    assert_eq!(
        block_on(handle_digest(&store, &id, at + 60_000, answer(Some(200)))).unwrap(),
        Handled::Done
    );
    let sent = sent.borrow().clone();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|d| d.body == run.payload && d.id == id));
    assert_eq!(sent[2].id_header, "tally-digest-id");
    assert_eq!(
        verify_signature(
            &made.secret,
            &sent[2].signature,
            &sent[2].body,
            (at + 30_000) / 1000
        ),
        Ok(())
    );
    // A run whose retries ran out reads as failed; a delivered one stays delivered.
    block_on(give_up(&store, &id)).unwrap();
    assert_eq!(
        block_on(digests::last_run(&store, "shop"))
            .unwrap()
            .unwrap()
            .delivery,
        "delivered"
    );
    assert_eq!(
        block_on(handle_digest(
            &store,
            "dg.shop.daily.0",
            at,
            answer(Some(200))
        ))
        .unwrap(),
        Handled::Unknown
    );
}

#[test]
fn a_failed_run_reads_as_failed() {
    let store = SqliteStore::open_in_memory().unwrap();
    seed(&store, "shop");
    configure(&store, "shop", 9);
    let id = block_on(compose_due(&store, DAY + 9 * HOUR_MS, DIGEST_QUERY_BUDGET))
        .unwrap()
        .to_queue[0]
        .clone();
    block_on(give_up(&store, &id)).unwrap();
    let run = block_on(digests::last_run(&store, "shop"))
        .unwrap()
        .unwrap();
    assert_eq!(run.delivery, "failed");
    // Deleting the digest leaves its runs; a later message for the run delivers nothing.
    assert!(block_on(digests::delete(&store, "shop")).unwrap());
    assert!(!block_on(digests::delete(&store, "shop")).unwrap());
    assert_eq!(block_on(digests::digest(&store, "shop")).unwrap(), None);
}
