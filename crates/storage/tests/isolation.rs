//! One failure stalls no one (issue 14, defects 2 and 6), against real SQLite: a poisoned
//! row or message among good ones fails alone, and alert evaluation stays within its
//! D1 query budget however many rules there are.

mod support;

use serde_json::json;
use tally_core::alerts::{self, Fresh, MinuteSources, Rule, State};
use tally_core::rollup::Period;
use tally_core::time::{DAY_MS, HOUR_MS, MINUTE_MS};
use tally_core::{Context, Event, RawEvent, Settings, validate};
use tally_storage::alerts::{AlertStore, AlertWrite, evaluate};
use tally_storage::exec::Counted;
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{RollupStore, Write, Writer, pipeline};

use support::{Interrupted, state, store_batch};

/// 2026-03-02T10:00:00Z.
const T0: i64 = 1_772_445_600_000;

fn event(project: &str, i: u64, at: i64) -> Event {
    let raw: RawEvent = serde_json::from_value(json!({
        "project": project,
        "event_id": format!("00000000-0000-4000-8000-{i:012x}"),
        "timestamp": at,
        "name": "view",
        "duration_ms": 20.0 + i as f64,
    }))
    .unwrap();
    let ctx = Context {
        project,
        now_ms: at,
        settings: Settings::default(),
        id_secret: b"secret",
    };
    validate(raw, &ctx, &mut || unreachable!()).unwrap().event
}

/// `n` events of `project` in the minute at `at`, ids from `first`.
fn events(project: &str, first: u64, n: u64, at: i64) -> Vec<Event> {
    (0..n)
        .map(|i| event(project, first + i, at + (i as i64 * 97) % MINUTE_MS))
        .collect()
}

/// A rule of `project` that fires when the project has more than 10 events in 5 minutes.
fn busy_rule(project: &str, seed: u32) -> Rule {
    let mut id = [0; alerts::ID_BYTES];
    id[..4].copy_from_slice(&seed.to_be_bytes());
    let fresh = Fresh {
        id,
        secret: [1; alerts::SECRET_BYTES],
    };
    alerts::parse_input(
        json!({"name": format!("busy {seed}"), "metric": {"type": "count"},
               "comparator": ">", "threshold": 10, "window_minutes": 5})
        .to_string()
        .as_bytes(),
    )
    .unwrap()
    .create(project, &fresh, T0 - HOUR_MS)
    .unwrap()
}

fn add_rules(store: &SqliteStore, rules: &[Rule]) {
    let writes: Vec<Write<'_>> = rules
        .iter()
        .map(|rule| {
            Write::Alert(AlertWrite::InsertRule {
                rule,
                max_rules: 100,
            })
        })
        .collect();
    block_on(store.commit(&writes)).unwrap();
}

/// Makes every `period` rollup row of `project` unreadable: its sketch blob is garbage.
fn poison_rows(store: &SqliteStore, project: &str, period: Period) {
    let changed = store.with_connection(|c| {
        c.execute(
            "UPDATE rollups SET durations = x'ffffffffffffffffff', version = version + 1 \
             WHERE project = ?1 AND period = ?2",
            [project, period.name()],
        )
        .unwrap()
    });
    assert!(
        changed > 0,
        "no {} rows of {project} to poison",
        period.name()
    );
}

#[test]
fn a_rule_that_fails_is_recorded_and_the_others_are_evaluated() {
    let store = SqliteStore::open_in_memory().unwrap();
    let now = T0 + 30_000;
    for (i, project) in ["alpha", "bad", "zulu"].into_iter().enumerate() {
        store_batch(&store, &events(project, i as u64 * 1000, 20, T0), now);
    }
    // "bad"'s minute rows cannot be read (as a row D1 refuses to decode would be).
    poison_rows(&store, "bad", Period::Minute);
    let rules = [
        busy_rule("alpha", 1),
        busy_rule("bad", 2),
        busy_rule("zulu", 3),
        busy_rule("zulu", 4),
    ];
    add_rules(&store, &rules);
    // And one of zulu's rules was stored in a shape this version cannot read.
    store.with_connection(|c| {
        c.execute(
            "UPDATE alert_rules SET definition = '{\"metric\":' WHERE id = ?1",
            [&rules[3].id],
        )
        .unwrap()
    });

    let run = block_on(evaluate(&store, now)).unwrap();
    assert_eq!((run.rules, run.fired), (4, 2));
    assert_eq!((run.evaluated, run.failed, run.deferred), (4, 2, 0));
    assert_eq!(state(&store, &rules[0]), State::Firing);
    // (zulu's rules cannot be listed while one of them cannot be read.)
    let zulu: String = store.with_connection(|c| {
        c.query_row(
            "SELECT state FROM alert_rules WHERE id = ?1",
            [&rules[2].id],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert_eq!(zulu, "firing");
    let failed: Vec<(&str, &str)> = run
        .failures
        .iter()
        .map(|f| (f.project.as_str(), f.rule.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            ("zulu", rules[3].id.as_str()),
            ("bad", rules[1].id.as_str())
        ]
    );
    // The failure is recorded with the rule's state, where the rule is shown.
    let bad = &block_on(store.alert_rules(Some("bad"))).unwrap()[0];
    assert_eq!(bad.status.state, State::Ok);
    let error = bad.error.as_deref().unwrap();
    assert!(
        error.contains("minute row all") && error.contains("sketch"),
        "{error}"
    );
    assert_eq!(bad.last.map(|(_, _, at)| at), Some(now));
    let error: Option<String> = store.with_connection(|c| {
        c.query_row(
            "SELECT last_error FROM alert_rules WHERE id = ?1",
            [&rules[3].id],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert!(error.unwrap().contains("EOF"));
    // And in the run's record, which /v1/health shows.
    let meta = block_on(tally_storage::JobLog::meta(&store)).unwrap();
    let (_, recorded, _) = meta.iter().find(|(k, _, _)| k == "alerts").unwrap();
    let recorded: tally_storage::alerts::Evaluation = serde_json::from_str(recorded).unwrap();
    assert_eq!(recorded.failures, run.failures);

    // Once the rows are readable again, the rule is evaluated and its error cleared.
    store.with_connection(|c| {
        c.execute("DELETE FROM rollups WHERE project = 'bad'", [])
            .unwrap()
    });
    store_batch(&store, &events("bad", 100, 20, T0), now);
    let run = block_on(evaluate(&store, now + MINUTE_MS)).unwrap();
    assert_eq!((run.fired, run.failed), (1, 1));
    let bad = &block_on(store.alert_rules(Some("bad"))).unwrap()[0];
    assert_eq!(
        (bad.status.state, bad.error.as_deref()),
        (State::Firing, None)
    );
}

#[test]
fn a_thousand_rules_are_evaluated_within_the_query_budget() {
    let store = SqliteStore::open_in_memory().unwrap();
    let now = T0 + 30_000;
    let projects: Vec<String> = (0..10).map(|p| format!("p{p:02}")).collect();
    for (p, project) in projects.iter().enumerate() {
        store_batch(&store, &events(project, p as u64 * 1000, 5, T0), now);
    }
    let rules: Vec<Rule> = (0..1000)
        .map(|i| busy_rule(&projects[i as usize / 100], i))
        .collect();
    for chunk in rules.chunks(100) {
        add_rules(&store, chunk);
    }
    let counting = Counted::new(&store);
    let run = block_on(evaluate(&counting, now)).unwrap();
    let queries = counting.take_queries();
    assert_eq!((run.rules, run.evaluated, run.fired), (1000, 1000, 0));
    assert_eq!((run.failed, run.deferred), (0, 0));
    assert_eq!(run.queries, queries, "the run counts what it does");
    // Before: 2,502 (a read per rule, a statement per evaluation). Now: the rules, meta,
    // one read per project, five records, unqueued alerts and the run's meta.
    eprintln!("1,000 rules in 10 projects: {queries} D1 queries");
    assert_eq!(queries, 1 + 1 + 10 + 5 + 1 + 1);

    // Half the projects get busy: 500 rules fire at once. Two statements each is more
    // than one run's budget, so the changes are spread over the next runs, each within
    // it, starting where the last one stopped.
    for (p, project) in projects.iter().enumerate().filter(|(p, _)| p % 2 == 0) {
        store_batch(
            &store,
            &events(project, 100_000 + p as u64 * 1000, 20, T0),
            now,
        );
    }
    let run = block_on(evaluate(&counting, now + 1000)).unwrap();
    let queries = counting.take_queries();
    assert_eq!((run.fired, run.deferred, run.failed), (500, 0, 0));
    assert_eq!(run.queries, queries);
    // The rules, meta, a read per project, two statements per 100 changes, the records
    // of the other 500, unqueued alerts, the run's meta.
    eprintln!("1,000 rules in 10 projects, 500 firing at once: {queries} D1 queries");
    assert_eq!(queries, 1 + 1 + 10 + 5 * 2 + 3 + 1 + 1);
    let firing = block_on(store.alert_rules(None))
        .unwrap()
        .iter()
        .filter(|r| r.status.state == State::Firing)
        .count();
    assert_eq!(firing, 500);
}

#[test]
fn state_changes_whose_write_fails_are_written_one_by_one_within_the_budget() {
    let store = SqliteStore::open_in_memory().unwrap();
    let now = T0 + 30_000;
    let projects = ["p0", "p1", "p2"];
    for (p, project) in projects.iter().enumerate() {
        store_batch(&store, &events(project, p as u64 * 1000, 20, T0), now);
    }
    let rules: Vec<Rule> = (0..300)
        .map(|i| busy_rule(projects[i as usize / 100], i))
        .collect();
    for chunk in rules.chunks(100) {
        add_rules(&store, chunk);
    }
    // The first project's changes fail to commit together (a transient failure here):
    // they are written one by one, 200 statements, within the budget (what it could not
    // hold would be left to the next run).
    store.fail_commit_at(0);
    let counting = Counted::new(&store);
    let mut runs = Vec::new();
    let mut fired = 0;
    while fired < 300 {
        assert!(runs.len() < 3, "{runs:?}");
        let run = block_on(evaluate(&counting, now + 1000 * runs.len() as i64)).unwrap();
        let queries = counting.take_queries();
        assert_eq!(run.queries, queries);
        assert!(
            queries <= tally_storage::alerts::ALERT_QUERY_BUDGET,
            "{queries}"
        );
        assert_eq!(run.failed, 0, "{:?}", run.failures);
        assert_eq!(run.evaluated + run.deferred, 300);
        fired += run.fired;
        runs.push((run.fired, run.deferred, queries));
    }
    eprintln!("(fired, deferred, queries) per run: {runs:?}");
    assert_eq!(runs.len(), 1);
    let history: usize = projects
        .iter()
        .map(|p| block_on(store.alerts(p, 0, i64::MAX, 1000)).unwrap().len())
        .sum();
    assert_eq!(history, 300, "one alert per rule");
}

#[test]
fn rules_past_the_budget_are_deferred_to_the_next_run_which_starts_with_them() {
    let store = SqliteStore::open_in_memory().unwrap();
    // 1,000 rules in 500 projects: a read each, more than one run's budget.
    let rules: Vec<Rule> = (0..1000)
        .map(|i| busy_rule(&format!("p{:03}", i / 2), i))
        .collect();
    for chunk in rules.chunks(100) {
        add_rules(&store, chunk);
    }
    let counting = Counted::new(&store);
    let mut seen = std::collections::BTreeSet::new();
    let mut runs = Vec::new();
    for minute in 0..3 {
        let now = T0 + minute * MINUTE_MS;
        let run = block_on(evaluate(&counting, now)).unwrap();
        let queries = counting.take_queries();
        assert!(
            queries <= tally_storage::alerts::ALERT_QUERY_BUDGET,
            "{queries}"
        );
        assert_eq!(run.queries, queries);
        assert_eq!(run.evaluated + run.deferred, 1000);
        let evaluated: Vec<String> = block_on(store.alert_rules(None))
            .unwrap()
            .into_iter()
            .filter(|r| r.last.is_some_and(|(_, _, at)| at == now))
            .map(|r| r.rule.id)
            .collect();
        assert_eq!(evaluated.len(), run.evaluated);
        seen.extend(evaluated);
        runs.push((run.evaluated, run.deferred, run.next));
    }
    eprintln!("runs (evaluated, deferred, next): {runs:?}");
    assert!(
        runs[0].1 > 0 && runs[0].2.is_some(),
        "the first run defers some"
    );
    assert_eq!(
        seen.len(),
        1000,
        "within three runs every rule is evaluated"
    );
    // The health summary says so.
    let meta = block_on(tally_storage::JobLog::meta(&store)).unwrap();
    let (_, recorded, _) = meta.iter().find(|(k, _, _)| k == "alerts").unwrap();
    let recorded: tally_storage::alerts::Evaluation = serde_json::from_str(recorded).unwrap();
    assert_eq!(recorded.deferred, runs[2].1);
}

/// `n` events a day for `days` days, for projects whose day rows the cron rolls.
fn days_of(project: &str, first: u64, days: i64) -> Vec<Event> {
    (0..days)
        .flat_map(|d| events(project, first + d as u64 * 10, 3, T0 - (d + 1) * DAY_MS))
        .collect()
}

#[test]
fn a_day_that_cannot_be_rolled_holds_up_no_other() {
    let store = SqliteStore::open_in_memory().unwrap();
    // "aaa"'s hour rows are poisoned; its days are the oldest marks, so read first.
    let mut all = days_of("aaa", 0, 3);
    all.iter_mut().for_each(|e| e.timestamp -= 10 * DAY_MS);
    store_batch(&store, &all, T0);
    poison_rows(&store, "aaa", Period::Hour);
    for (i, project) in ["bbb", "ccc"].into_iter().enumerate() {
        store_batch(&store, &days_of(project, 1000 * (i as u64 + 1), 3), T0);
    }

    let run = block_on(pipeline::roll_dirty(&store, Period::Day, 100, T0)).unwrap();
    assert_eq!((run.rolled, run.failed, run.failing), (6, 3, 3));
    assert!(!run.more_pending);
    assert!(
        run.failures
            .iter()
            .all(|f| f.project == "aaa" && f.error.contains("sketch")),
        "{:?}",
        run.failures
    );
    let days = |project: &str| {
        block_on(store.rollups_between(project, Period::Day, 0, i64::MAX, None))
            .unwrap()
            .len()
    };
    assert!(days("bbb") > 0 && days("ccc") > 0);
    // The run is recorded, failures and all, where /v1/health reads it.
    let meta = block_on(tally_storage::JobLog::meta(&store)).unwrap();
    let (_, recorded, _) = meta.iter().find(|(k, _, _)| k == "roll.day").unwrap();
    let recorded: pipeline::Rolled = serde_json::from_str(recorded).unwrap();
    assert_eq!(recorded, run);

    // The next minute does not try them again; the others' new days roll.
    store_batch(&store, &events("bbb", 5000, 2, T0), T0);
    let next = block_on(pipeline::roll_dirty(&store, Period::Day, 100, T0 + 60_000)).unwrap();
    assert_eq!((next.rolled, next.failed, next.failing), (1, 0, 3));

    // Later they are tried again, but after every mark that never failed: even a
    // window of one mark is never taken by them while good marks wait.
    let later = T0 + pipeline::ROLL_RETRY_MS + 60_000;
    store_batch(&store, &events("ccc", 6000, 2, T0), T0);
    let one = block_on(pipeline::roll_dirty(&store, Period::Day, 1, later)).unwrap();
    assert_eq!((one.rolled, one.failed), (1, 0));
    assert!(one.more_pending, "the failed marks may be tried now");
    let retried = block_on(pipeline::roll_dirty(&store, Period::Day, 100, later)).unwrap();
    assert_eq!((retried.rolled, retried.failed, retried.failing), (0, 3, 3));
}

/// A queue message of `events`.
fn message(events: Vec<Event>) -> tally_core::queue::Message {
    tally_core::queue::Message {
        v: 1,
        events,
        dropped: Vec::new(),
    }
}

fn overview_count(store: &SqliteStore, project: &str) -> u64 {
    block_on(store.rollups_between(project, Period::Hour, 0, i64::MAX, None))
        .unwrap()
        .iter()
        .filter(|(k, _)| k.dimension == tally_core::rollup::Dimension::All)
        .map(|(_, v)| v.value.count)
        .sum()
}

#[test]
fn a_bad_message_fails_alone_and_the_good_ones_are_stored_once() {
    let store = SqliteStore::open_in_memory().unwrap();
    // "bad" has an hour row no one can read: any message touching it fails.
    store_batch(&store, &events("bad", 0, 3, T0), T0);
    poison_rows(&store, "bad", Period::Hour);
    // A full batch (max_batch_size 100): 99 good messages and one bad.
    let mut batch: Vec<_> = (0..99u64)
        .map(|i| message(events(&format!("good{}", i % 3), 1000 + i * 10, 5, T0)))
        .collect();
    batch.insert(63, message(events("bad", 500, 2, T0)));

    let consumed = block_on(pipeline::store_messages(
        &store,
        &batch,
        T0 + 1000,
        &MinuteSources::default(),
    ));
    let failed: Vec<usize> = consumed
        .outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        failed,
        [63],
        "only the bad message goes to the dead-letter queue"
    );
    assert!(
        consumed.calls <= 1 + pipeline::MAX_SPLIT_CALLS,
        "{}",
        consumed.calls
    );
    assert_eq!(consumed.stored.new, 99 * 5);
    for p in 0..3 {
        assert_eq!(overview_count(&store, &format!("good{p}")), 33 * 5);
    }
    // Redelivered (the queue retries the bad one, and may resend any): counted once.
    let again = block_on(pipeline::store_messages(
        &store,
        &batch,
        T0 + 2000,
        &MinuteSources::default(),
    ));
    assert_eq!(again.outcomes.iter().filter(|o| o.is_err()).count(), 1);
    assert_eq!(again.stored.new, 0);
    for p in 0..3 {
        assert_eq!(overview_count(&store, &format!("good{p}")), 33 * 5);
    }
}

#[test]
fn a_projects_sources_are_read_minute_by_minute_by_the_whole_key() {
    // A source of a dimension with many values a minute (a route) reads its own row of
    // each minute and no other value's.
    let store = SqliteStore::open_in_memory().unwrap();
    for statement in [
        tally_core::sql::MINUTE_ROWS_OF_SOURCES,
        tally_core::sql::MINUTE_ROWS_OF_VALUE,
    ] {
        let plan: Vec<String> = store.with_connection(|c| {
            let sql = format!("EXPLAIN QUERY PLAN {statement}");
            let mut stmt = c.prepare(&sql).unwrap();
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        });
        let rollups: Vec<&String> = plan.iter().filter(|s| s.contains(" r ")).collect();
        assert_eq!(
            rollups,
            [
                "SEARCH r USING PRIMARY KEY (project=? AND period=? AND dimension=? AND start=? AND value=?)"
            ],
            "{plan:?}"
        );
    }
}

#[test]
fn overlapping_runs_record_one_alert_per_change() {
    let store = SqliteStore::open_in_memory().unwrap();
    let now = T0 + 30_000;
    store_batch(&store, &events("p", 0, 20, T0), now);
    add_rules(&store, &[busy_rule("p", 1), busy_rule("p", 2)]);
    // Another evaluation runs and commits before this one's first write.
    let overlapped = Interrupted::new(&store, || {
        let other = block_on(evaluate(&store, now + 1)).unwrap();
        assert_eq!(other.fired, 2);
    });
    let run = block_on(evaluate(&overlapped, now)).unwrap();
    assert_eq!((run.fired, run.evaluated, run.failed), (0, 2, 0));
    assert!(run.to_queue.is_empty());
    let alerts = block_on(store.alerts("p", 0, i64::MAX, 10)).unwrap();
    assert_eq!(alerts.len(), 2, "one alert per rule, the other run's");
    assert!(alerts.iter().all(|a| a.at == now + 1));
}
