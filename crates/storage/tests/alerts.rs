//! Alert rules against real SQLite: events go through the pipeline into minute rows,
//! rules are evaluated from them, and the alerts consumer's handling is checked for
//! campaign pauses, signed delivery, retries and redelivery.

mod support;

use std::cell::RefCell;

use serde_json::{Value, json};
use tally_core::alerts::{self, Fresh, MinuteSources, Rule, State};
use tally_core::rollup::{Dimension, Key, Period, pair};
use tally_core::time::{HOUR_MS, MINUTE_MS};
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::alerts::{
    AlertStore, AlertWrite, Delivering, HOURLY_MINUTE_PURGE, Handled, KnownRules, MinutePurge,
    MinutesPurged, Sent, evaluate, give_up, handle_alert, purge_minutes,
};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{Write, Writer, pipeline};

use support::state;

/// 2026-03-02T10:00:00Z.
const T0: i64 = 1_772_445_600_000;
const SECRET: &[u8] = b"secret";

fn event(i: u64, at: i64, raw: Value) -> Event {
    let mut raw = raw;
    raw["project"] = "shop".into();
    raw["event_id"] = format!("00000000-0000-4000-8000-{i:012x}").into();
    raw["timestamp"] = at.into();
    let raw: RawEvent = serde_json::from_value(raw).unwrap();
    let ctx = Context {
        project: "shop",
        now_ms: at,
        settings: Settings::default(),
        id_secret: SECRET,
    };
    validate(raw, &ctx, &mut || unreachable!()).unwrap().event
}

/// `opens` opens and `clicks` clicks of a campaign, spread over the minute at `at`.
fn mail(first_id: u64, at: i64, campaign: &str, opens: u64, clicks: u64) -> Vec<Event> {
    (0..opens + clicks)
        .map(|i| {
            let name = if i < opens { "open" } else { "click" };
            let raw = json!({"name": name, "campaign": campaign, "source": "newsletter"});
            event(first_id + i, at + (i as i64 * 37) % MINUTE_MS, raw)
        })
        .collect()
}

/// A store holding `events`, written with every minute row: as a consumer that could
/// not read the rules writes them, or one that knew the rules the test adds next (they
/// are created an hour before `T0`).
fn store(events: &[Event], now: i64) -> SqliteStore {
    let store = SqliteStore::open_in_memory().unwrap();
    block_on(pipeline::store_events(
        &store,
        events,
        now,
        &MinuteSources::every(),
    ))
    .unwrap();
    store
}

/// Stores `events` as the consumer would at `now`: with the minute rows of the rules it
/// reads from the store (the control database and the shard in one).
fn deliver(store: &SqliteStore, events: &[Event], now: i64) {
    let projects: Vec<&str> = events.iter().map(|e| e.project.as_str()).collect();
    let minutes = block_on(KnownRules::new().minute_sources(store, &projects, now)).unwrap();
    block_on(pipeline::store_events(store, events, now, &minutes)).unwrap();
}

/// The events counted in the first campaign's hour row of project `shop` in the hour
/// from `T0`: what the hour rows keep whatever minute rows are written.
fn first_campaign_hour_count(store: &SqliteStore) -> u64 {
    let hour = block_on(tally_storage::RollupStore::rollups_between(
        store,
        "shop",
        Period::Hour,
        T0,
        T0 + HOUR_MS,
        Some(Dimension::Campaign),
    ))
    .unwrap();
    hour.values().next().unwrap().value.count
}

fn add_rule(store: &SqliteStore, body: Value, seed: u8) -> Rule {
    add_rule_at(store, body, seed, T0 - HOUR_MS)
}

/// Adds a rule created at `at`.
fn add_rule_at(store: &SqliteStore, body: Value, seed: u8, at: i64) -> Rule {
    let fresh = Fresh {
        id: [seed; alerts::ID_BYTES],
        secret: [seed; alerts::SECRET_BYTES],
    };
    let rule = alerts::parse_input(body.to_string().as_bytes())
        .unwrap()
        .create("shop", &fresh, at)
        .unwrap();
    let changed = block_on(store.commit(&[Write::Alert(AlertWrite::InsertRule {
        rule: &rule,
        max_rules: 100,
    })]))
    .unwrap();
    assert_eq!(changed, [1]);
    rule
}

fn ctr_rule(store: &SqliteStore) -> Rule {
    add_rule(
        store,
        json!({
            "name": "spring CTR", "comparator": "<", "threshold": 0.01,
            "metric": {"type": "ratio", "numerator": "click", "denominator": "open"},
            "filter": {"dimension": "campaign", "value": "spring"},
            "window_minutes": 15, "min_volume": 200, "cooldown_minutes": 60,
            "webhook": {"url": "http://127.0.0.1:9/hook"}, "pause_campaign": true,
        }),
        1,
    )
}

#[test]
fn minute_rows_hold_the_names_within_each_campaign() {
    let events = mail(0, T0, "spring", 300, 2);
    let store = store(&events, T0);
    let rows = block_on(store.minute_rows(
        "shop",
        &[
            (
                tally_core::rollup::Dimension::NameCampaign,
                tally_core::rollup::pair("open", "spring"),
            ),
            (
                tally_core::rollup::Dimension::NameCampaign,
                tally_core::rollup::pair("click", "spring"),
            ),
            (tally_core::rollup::Dimension::Campaign, "spring".to_owned()),
        ],
        T0 - MINUTE_MS,
        T0 + MINUTE_MS,
    ))
    .unwrap();
    let counts: Vec<u64> = rows.values().map(|r| r.count).collect();
    assert_eq!(rows.len(), 3);
    assert!(counts.contains(&300) && counts.contains(&2) && counts.contains(&302));
    // Minute rows keep no users or instances; hour rows are unchanged.
    assert!(
        rows.values()
            .all(|r| r.users.is_empty() && r.instances.is_empty())
    );
    assert_eq!(first_campaign_hour_count(&store), 302);
}

#[test]
fn a_click_through_drop_fires_once_and_resolves_on_recovery() {
    // 2 clicks per 300 opens: 0.67%, under the 1% threshold.
    let events = mail(0, T0, "spring", 300, 2);
    let store = store(&events, T0);
    let rule = ctr_rule(&store);
    // Another campaign doing fine is not this rule's business.
    deliver(&store, &mail(1000, T0, "autumn", 300, 60), T0);

    let now = T0 + 30_000;
    let run = block_on(evaluate(&store, now)).unwrap();
    assert_eq!((run.rules, run.fired, run.resolved), (1, 1, 0));
    assert_eq!(run.to_queue.len(), 1);
    assert_eq!(state(&store, &rule), State::Firing);
    let history = block_on(store.alerts("shop", 0, i64::MAX, 10)).unwrap();
    assert_eq!(history.len(), 1);
    let fired = &history[0];
    assert_eq!((fired.kind.as_str(), fired.volume), ("fired", 300));
    assert!((fired.value.unwrap() - 2.0 / 300.0).abs() < 1e-12);
    assert_eq!(fired.delivery, "pending");
    assert_eq!(fired.rule_name.as_deref(), Some("spring CTR"));

    // Another run a minute later, or one overlapping this one, records nothing new.
    let again = block_on(evaluate(&store, now + MINUTE_MS)).unwrap();
    assert_eq!((again.fired, again.resolved), (0, 0));
    assert!(again.to_queue.is_empty());
    // The alert was never marked queued, so it is offered again after a minute.
    let later = block_on(evaluate(&store, now + 2 * MINUTE_MS)).unwrap();
    assert_eq!(later.to_queue, run.to_queue);
    block_on(store.commit(&[Write::Alert(AlertWrite::Queued {
        alert_ids: &run.to_queue[..1],
        now_ms: now,
    })]))
    .unwrap();
    assert!(
        block_on(evaluate(&store, now + 3 * MINUTE_MS))
            .unwrap()
            .to_queue
            .is_empty()
    );

    // Clicks recover: 20 more in the window make 22 / 300 = 7.3%.
    let later = T0 + 5 * MINUTE_MS;
    let recovery: Vec<Event> = mail(2000, later, "spring", 0, 20);
    deliver(&store, &recovery, later);
    let resolved = block_on(evaluate(&store, later + 1000)).unwrap();
    assert_eq!((resolved.fired, resolved.resolved), (0, 1));
    assert_eq!(state(&store, &rule), State::Ok);
    let history = block_on(store.alerts("shop", 0, i64::MAX, 10)).unwrap();
    assert_eq!(
        history.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
        ["resolved", "fired"]
    );
    // A range that ends before the resolution holds only the firing.
    let before = block_on(store.alerts("shop", 0, later, 10)).unwrap();
    assert_eq!(
        before.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
        ["fired"]
    );
}

#[test]
fn the_window_forgets_old_minutes_and_thin_traffic_decides_nothing() {
    let store = store(&mail(0, T0, "spring", 300, 0), T0);
    let rule = ctr_rule(&store);
    // 20 minutes later the 15-minute window holds nothing: no volume, no alert.
    let run = block_on(evaluate(&store, T0 + 20 * MINUTE_MS)).unwrap();
    assert_eq!(run.fired, 0);
    // 150 opens without a click are under the minimum volume of 200.
    let thin = T0 + 21 * MINUTE_MS;
    deliver(&store, &mail(500, thin, "spring", 150, 0), thin);
    assert_eq!(block_on(evaluate(&store, thin)).unwrap().fired, 0);
    assert_eq!(state(&store, &rule), State::Ok);
    // 60 more make 210: it fires.
    deliver(&store, &mail(900, thin, "spring", 60, 0), thin);
    assert_eq!(block_on(evaluate(&store, thin + 1)).unwrap().fired, 1);
}

#[test]
fn within_the_cooldown_a_new_breach_is_suppressed() {
    let store = store(&mail(0, T0, "spring", 300, 0), T0);
    let rule = ctr_rule(&store); // cooldown 60 minutes
    assert_eq!(block_on(evaluate(&store, T0)).unwrap().fired, 1);
    // Recovery resolves it ...
    let t1 = T0 + 2 * MINUTE_MS;
    deliver(&store, &mail(1000, t1, "spring", 0, 50), t1);
    assert_eq!(block_on(evaluate(&store, t1)).unwrap().resolved, 1);
    // ... and a new breach 30 minutes after the firing is suppressed.
    let t2 = T0 + 30 * MINUTE_MS;
    deliver(&store, &mail(2000, t2, "spring", 300, 0), t2);
    let run = block_on(evaluate(&store, t2)).unwrap();
    assert_eq!((run.fired, run.suppressed), (0, 1));
    assert_eq!(state(&store, &rule), State::Ok);
    // After the cooldown, still breached, it fires again.
    let t3 = T0 + 61 * MINUTE_MS;
    deliver(&store, &mail(3000, t3, "spring", 300, 0), t3);
    assert_eq!(block_on(evaluate(&store, t3)).unwrap().fired, 1);
    let fired = block_on(store.alerts("shop", 0, i64::MAX, 10)).unwrap();
    assert_eq!(fired.iter().filter(|a| a.kind == "fired").count(), 2);
}

#[test]
fn error_rate_and_latency_rules_read_their_route() {
    let now = T0 + 10_000;
    let events: Vec<Event> = (0..100)
        .map(|i| {
            let failed = i % 10 == 0;
            event(
                i,
                T0 + i as i64 * 50,
                json!({
                    "name": "request", "route": if i % 2 == 0 { "/pay" } else { "/home" },
                    "status": if failed { 500 } else { 200 },
                    "duration_ms": if i % 2 == 0 { 900.0 } else { 20.0 },
                }),
            )
        })
        .collect();
    let store = store(&events, now);
    // /pay: 50 requests, 10 of them failed (every tenth event is on /pay).
    let errors = add_rule(
        &store,
        json!({"name": "pay errors", "metric": {"type": "error_rate"},
               "filter": {"dimension": "route", "value": "/pay"},
               "comparator": ">", "threshold": 0.1, "window_minutes": 5, "min_volume": 20}),
        2,
    );
    let slow = add_rule(
        &store,
        json!({"name": "slow", "metric": {"type": "p95"}, "comparator": ">",
               "threshold": 800, "window_minutes": 5, "min_volume": 20}),
        3,
    );
    let home = add_rule(
        &store,
        json!({"name": "home errors", "metric": {"type": "error_rate"},
               "filter": {"dimension": "route", "value": "/home"},
               "comparator": ">", "threshold": 0.01, "window_minutes": 5, "min_volume": 20}),
        4,
    );
    let run = block_on(evaluate(&store, now)).unwrap();
    assert_eq!(run.fired, 2);
    assert_eq!(state(&store, &errors), State::Firing);
    assert_eq!(state(&store, &slow), State::Firing);
    assert_eq!(state(&store, &home), State::Ok);
    let entry = block_on(store.alert_rules(Some("shop"))).unwrap();
    let home_entry = entry.iter().find(|r| r.rule.id == home.id).unwrap();
    assert_eq!(home_entry.last, Some((Some(0.0), 50, now)));
}

/// A receiver double that records what it got and answers with scripted statuses.
struct Receiver {
    got: RefCell<Vec<Delivering>>,
    statuses: RefCell<Vec<Option<u16>>>,
}

impl Receiver {
    fn new(statuses: &[Option<u16>]) -> Self {
        Receiver {
            got: RefCell::new(Vec::new()),
            statuses: RefCell::new(statuses.iter().rev().copied().collect()),
        }
    }

    fn handle(&self, store: &SqliteStore, id: &str, now: i64) -> Handled {
        block_on(handle_alert(store, id, now, |d| {
            self.got.borrow_mut().push(d);
            let status = self.statuses.borrow_mut().pop().flatten();
            async move {
                Sent {
                    status,
                    error: status.is_none().then(|| "connection refused".to_owned()),
                    duration_ms: 3,
                }
            }
        }))
        .unwrap()
    }
}

#[test]
fn delivery_pauses_the_campaign_once_signs_and_is_not_repeated() {
    let store = store(&mail(0, T0, "spring", 300, 1), T0);
    let rule = ctr_rule(&store);
    let id = block_on(evaluate(&store, T0)).unwrap().to_queue.remove(0);
    let receiver = Receiver::new(&[Some(200)]);

    assert_eq!(receiver.handle(&store, &id, T0 + 1000), Handled::Done);
    let got = receiver.got.borrow().clone();
    assert_eq!(got.len(), 1);
    let secret = &rule.webhook.as_ref().unwrap().secret;
    assert_eq!(
        alerts::verify_signature(secret, &got[0].signature, &got[0].body, T0 / 1000 + 1),
        Ok(())
    );
    assert!(
        alerts::verify_signature("whsec_other", &got[0].signature, &got[0].body, T0 / 1000)
            .is_err()
    );
    assert_eq!(got[0].url, "http://127.0.0.1:9/hook");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(
        (body["type"].as_str(), body["campaign_paused"].as_str()),
        (Some("alert.fired"), Some("spring"))
    );

    let campaigns = block_on(store.campaigns("shop")).unwrap();
    assert_eq!(campaigns.len(), 1);
    assert_eq!(
        (campaigns[0].campaign.as_str(), campaigns[0].status.as_str()),
        ("spring", "paused")
    );
    assert_eq!(campaigns[0].alert_id.as_deref(), Some(id.as_str()));
    let paused_at = campaigns[0].updated_at;

    // The queue delivers the message again: nothing is sent, the pause is unchanged.
    assert_eq!(receiver.handle(&store, &id, T0 + 60_000), Handled::Done);
    assert_eq!(receiver.got.borrow().len(), 1);
    assert_eq!(
        block_on(store.campaigns("shop")).unwrap()[0].updated_at,
        paused_at
    );
    let record = block_on(store.alerts("shop", 0, i64::MAX, 10))
        .unwrap()
        .remove(0);
    assert_eq!(
        (record.delivery.as_str(), record.attempts),
        ("delivered", 1)
    );
    assert_eq!(record.campaign_paused.as_deref(), Some("spring"));
    assert_eq!(record.attempt_log.len(), 1);
    assert_eq!(record.attempt_log[0].status, Some(200));
    assert_eq!(
        block_on(handle_alert(&store, "ar_nope", T0, |_| async {
            unreachable!()
        }))
        .unwrap(),
        Handled::Unknown
    );
}

#[test]
fn failed_deliveries_are_retried_with_backoff_and_recorded() {
    let store = store(&mail(0, T0, "spring", 300, 1), T0);
    ctr_rule(&store);
    let id = block_on(evaluate(&store, T0)).unwrap().to_queue.remove(0);
    let receiver = Receiver::new(&[Some(500), None, Some(204)]);
    assert_eq!(
        receiver.handle(&store, &id, T0),
        Handled::Retry { delay_s: 10 }
    );
    assert_eq!(
        receiver.handle(&store, &id, T0 + 10_000),
        Handled::Retry { delay_s: 20 }
    );
    assert_eq!(receiver.handle(&store, &id, T0 + 30_000), Handled::Done);
    let got = receiver.got.borrow();
    assert_eq!(got.iter().map(|d| d.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    // Every attempt carries the same body and alert id, each signed at its own time.
    assert!(got.iter().all(|d| d.body == got[0].body && d.id == id));
    assert_ne!(got[0].signature, got[2].signature);
    let record = block_on(store.alerts("shop", 0, i64::MAX, 10))
        .unwrap()
        .remove(0);
    assert_eq!(record.delivery, "delivered");
    let log: Vec<(Option<u16>, Option<&str>)> = record
        .attempt_log
        .iter()
        .map(|a| (a.status, a.error.as_deref()))
        .collect();
    assert_eq!(
        log,
        [
            (Some(500), Some("HTTP 500")),
            (None, Some("connection refused")),
            (Some(204), None)
        ]
    );
}

#[test]
fn a_message_that_exhausts_its_retries_marks_the_alert_failed() {
    let store = store(&mail(0, T0, "spring", 300, 1), T0);
    ctr_rule(&store);
    let id = block_on(evaluate(&store, T0)).unwrap().to_queue.remove(0);
    let receiver = Receiver::new(&[Some(503)]);
    assert_eq!(
        receiver.handle(&store, &id, T0),
        Handled::Retry { delay_s: 10 }
    );
    block_on(give_up(&store, &id)).unwrap();
    let record = block_on(store.alerts("shop", 0, i64::MAX, 10))
        .unwrap()
        .remove(0);
    assert_eq!((record.delivery.as_str(), record.attempts), ("failed", 1));
    // A late redelivery after giving up sends nothing.
    assert_eq!(receiver.handle(&store, &id, T0 + 1000), Handled::Done);
    assert_eq!(receiver.got.borrow().len(), 1);
}

#[test]
fn a_rule_without_webhook_still_pauses_and_delivers_nothing() {
    let store = store(&mail(0, T0, "spring", 300, 0), T0);
    add_rule(
        &store,
        json!({"name": "no clicks", "metric": {"type": "count", "name": "click"},
               "filter": {"dimension": "campaign", "value": "spring"},
               "comparator": "<", "threshold": 1, "window_minutes": 10,
               "pause_campaign": "spring"}),
        5,
    );
    let id = block_on(evaluate(&store, T0)).unwrap().to_queue.remove(0);
    let receiver = Receiver::new(&[]);
    assert_eq!(receiver.handle(&store, &id, T0), Handled::Done);
    assert!(receiver.got.borrow().is_empty());
    assert_eq!(
        block_on(store.campaigns("shop")).unwrap()[0].status,
        "paused"
    );
    assert_eq!(
        block_on(store.alerts("shop", 0, i64::MAX, 1)).unwrap()[0].delivery,
        "none"
    );
}

#[test]
fn old_minute_rows_are_purged_and_late_events_make_none() {
    let store = store(&mail(0, T0, "spring", 10, 0), T0);
    // An event two days old gets hour rows but no minute rows.
    let late = event(
        99,
        T0 - 48 * HOUR_MS,
        json!({"name": "open", "campaign": "spring"}),
    );
    deliver(&store, &[late], T0);
    let minutes = |store: &SqliteStore| {
        store.with_connection(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM rollups WHERE period = 'minute'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        })
    };
    let before = minutes(&store);
    assert!(before > 0);
    let purge = |now_ms| block_on(purge_minutes(&store, now_ms, HOURLY_MINUTE_PURGE)).unwrap();
    assert_eq!(purge(T0 + HOUR_MS).deleted, 0);
    assert_eq!(
        purge(T0 + 26 * HOUR_MS),
        MinutesPurged {
            deleted: before as u64,
            more_pending: false
        }
    );
    assert_eq!(minutes(&store), 0);
}

#[test]
fn minute_rows_are_purged_in_chunks_within_the_budget_and_the_rest_is_said_to_be_left() {
    // More expired minute rows than one run's budget deletes: each run stays within its
    // statements and chunks, says rows are left, and the next runs finish the work.
    let store = store(&mail(0, T0, "spring", 10, 0), T0);
    let minutes = || {
        store.with_connection(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM rollups WHERE period = 'minute'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        })
    };
    let before = u64::try_from(minutes()).unwrap();
    assert!(before > 2, "{before}");
    let budget = MinutePurge {
        chunk: 1,
        per_commit: 1,
        statements: 2,
    };
    let first = block_on(purge_minutes(&store, T0 + 26 * HOUR_MS, budget)).unwrap();
    assert_eq!(
        first,
        MinutesPurged {
            deleted: 2,
            more_pending: true
        }
    );
    assert_eq!(u64::try_from(minutes()).unwrap(), before - 2);
    let mut runs = 1;
    let mut deleted = first.deleted;
    loop {
        let run = block_on(purge_minutes(&store, T0 + 26 * HOUR_MS, budget)).unwrap();
        runs += 1;
        deleted += run.deleted;
        assert!(run.deleted <= 2);
        if !run.more_pending {
            break;
        }
        assert!(runs < 1000);
    }
    assert_eq!(deleted, before);
    assert_eq!(minutes(), 0);
}

#[test]
fn a_project_has_at_most_the_rule_limit() {
    let store = SqliteStore::open_in_memory().unwrap();
    let rule = |seed: u8| {
        alerts::parse_input(br#"{"name":"r","metric":{"type":"error_rate"},"comparator":">","threshold":0.1,"window_minutes":5}"#)
            .unwrap()
            .create("shop", &Fresh { id: [seed; alerts::ID_BYTES], secret: [0; alerts::SECRET_BYTES] }, T0)
            .unwrap()
    };
    let (a, b) = (rule(1), rule(2));
    let insert = |r: &Rule| {
        block_on(store.commit(&[Write::Alert(AlertWrite::InsertRule {
            rule: r,
            max_rules: 1,
        })]))
        .unwrap()
    };
    assert_eq!(insert(&a), [1]);
    assert_eq!(insert(&b), [0]);
}

#[test]
fn alerts_and_their_attempts_leave_with_the_raw_events_past_retention() {
    let store = store(&mail(0, T0, "spring", 300, 1), T0);
    ctr_rule(&store);
    let id = block_on(evaluate(&store, T0)).unwrap().to_queue.remove(0);
    let receiver = Receiver::new(&[Some(500), Some(200)]);
    receiver.handle(&store, &id, T0);
    receiver.handle(&store, &id, T0 + 10_000);
    let count = |table: &str| {
        store.with_connection(|c| {
            c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
        })
    };
    assert_eq!((count("alerts"), count("alert_attempts")), (1, 2));
    let purge_at =
        |now| block_on(pipeline::purge_expired(&store, now, pipeline::HOURLY_PURGE)).unwrap();
    // 89 days later the default retention of 90 days keeps them.
    purge_at(T0 + 89 * 24 * HOUR_MS);
    assert_eq!((count("alerts"), count("alert_attempts")), (1, 2));
    purge_at(T0 + 91 * 24 * HOUR_MS);
    assert_eq!((count("alerts"), count("alert_attempts")), (0, 0));
    // The rule stays.
    assert_eq!(block_on(store.alert_rules(Some("shop"))).unwrap().len(), 1);
}

/// The (dimension, value) of every minute row in the store, the realtime view's
/// dimensions apart.
fn minute_rows_beyond_realtime(store: &SqliteStore) -> Vec<(String, String)> {
    store.with_connection(|c| {
        let mut statement = c
            .prepare(
                "SELECT DISTINCT dimension, value FROM rollups WHERE period = 'minute'
                 AND dimension NOT IN ('all', 'route', 'source') ORDER BY 1, 2",
            )
            .unwrap();
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    })
}

fn minute_dimensions(store: &SqliteStore) -> Vec<String> {
    store.with_connection(|c| {
        let mut statement = c
            .prepare("SELECT DISTINCT dimension FROM rollups WHERE period = 'minute' ORDER BY 1")
            .unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    })
}

#[test]
fn a_project_without_rules_writes_only_the_minute_rows_realtime_reads() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut events = mail(0, T0, "spring", 30, 5);
    events.push(event(100, T0, json!({"name": "request", "route": "/pay"})));
    deliver(&store, &events, T0);
    assert_eq!(minute_dimensions(&store), ["all", "route", "source"]);
    assert!(minute_rows_beyond_realtime(&store).is_empty());
    // The hour rows keep every dimension.
    assert_eq!(first_campaign_hour_count(&store), 35);
}

#[test]
fn a_rules_pairs_are_written_and_no_others() {
    let store = SqliteStore::open_in_memory().unwrap();
    ctr_rule(&store);
    deliver(&store, &mail(0, T0, "spring", 30, 5), T0);
    deliver(&store, &mail(100, T0, "autumn", 30, 5), T0);
    assert_eq!(
        minute_rows_beyond_realtime(&store),
        [
            ("name_campaign".to_owned(), pair("click", "spring")),
            ("name_campaign".to_owned(), pair("open", "spring")),
        ]
    );
    let rows = block_on(store.minute_rows(
        "shop",
        &[(Dimension::NameCampaign, pair("open", "spring"))],
        T0,
        T0 + MINUTE_MS,
    ))
    .unwrap();
    assert_eq!(rows.values().next().unwrap().count, 30);
}

#[test]
fn the_consumer_learns_a_new_rule_within_a_minute() {
    let store = SqliteStore::open_in_memory().unwrap();
    let known = KnownRules::new();
    let key = Key {
        project: "shop".to_owned(),
        start: T0,
        dimension: Dimension::NameCampaign,
        value: pair("open", "spring"),
    };
    let wants = |now: i64| {
        block_on(known.minute_sources(&store, &["shop"], now))
            .unwrap()
            .wants(&key)
    };
    assert!(!wants(T0));
    ctr_rule(&store);
    // The project's rules (none) were read a moment ago: kept, not read again.
    assert!(!wants(T0 + alerts::RULES_LEARNED_WITHIN_MS - 1));
    assert!(wants(T0 + alerts::RULES_LEARNED_WITHIN_MS));
}

#[test]
fn a_new_rule_never_fires_on_minutes_counted_before_the_consumer_knew_it() {
    let store = SqliteStore::open_in_memory().unwrap();
    let installs = |first: u64, minute: i64| -> Vec<Event> {
        (0..20)
            .map(|i| {
                event(
                    first + i,
                    minute + i as i64 * 1000,
                    json!({"name": "install"}),
                )
            })
            .collect()
    };
    // Twenty installs a minute for ten minutes, before any rule reads them.
    for m in 0..10 {
        let minute = T0 - (10 - m) * MINUTE_MS;
        deliver(&store, &installs(m as u64 * 100, minute), minute + 30_000);
    }
    // Created at T0: fewer than 100 installs in 15 minutes is an alert. The whole
    // window holds 260 by T0 + 3 min, but only the last three minutes were counted.
    let rule = add_rule_at(
        &store,
        json!({"name": "few installs", "metric": {"type": "count", "name": "install"},
               "comparator": "<", "threshold": 100, "window_minutes": 15}),
        5,
        T0,
    );
    for m in 1..=3 {
        let minute = T0 + m * MINUTE_MS;
        deliver(
            &store,
            &installs(1000 + m as u64 * 100, minute),
            minute + 30_000,
        );
    }
    let now = T0 + 3 * MINUTE_MS + 40_000;
    let read =
        block_on(store.minute_rows("shop", &rule.sources(), rule.window_start(now), now)).unwrap();
    assert_eq!(
        read.values().next().unwrap().count,
        60,
        "three minutes counted"
    );
    let run = block_on(evaluate(&store, now)).unwrap();
    assert_eq!((run.fired, run.evaluated), (0, 1));
    assert_eq!(state(&store, &rule), State::Ok);
    // Once the window is whole, what it counts decides: nothing in the last 15 minutes.
    let quiet = T0 + 40 * MINUTE_MS;
    assert_eq!(block_on(evaluate(&store, quiet)).unwrap().fired, 1);
    assert_eq!(state(&store, &rule), State::Firing);
}
