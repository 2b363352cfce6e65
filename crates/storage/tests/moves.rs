//! Moving a project between data shards (issue 16, phase 2), against real SQLite
//! databases: under events arriving between every step of the move (some of them
//! twice), with a budget that spreads the copy over many runs and a failure in the
//! middle of it, every read of the moved project afterwards equals the same read of a
//! single database that was given the same events, the old shard keeps nothing of it,
//! and the other projects on both shards are untouched.

mod support;

use std::rc::Rc;

use serde_json::json;
use tally_core::Event;
use tally_core::alerts::MinuteSources;
use tally_core::project::{Project, ProjectInput};
use tally_core::queue::{Dropped, Message, VERSION};
use tally_core::rollup::Period;
use tally_core::time::{DAY_MS, HOUR_MS, Interval};
use tally_storage::exec::Executor;
use tally_storage::moves::{self, Move, MoveBudget, Phase, Started};
use tally_storage::shard::{OnShard, PLACEMENT_TTL_MS, Placements, Router};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{AdminStore, EventStore, QueryStore, Write, Writer, pipeline, read, sessions};

/// 2026-03-02T10:00:00Z.
const T0: i64 = 1_772_445_600_000;

/// The moving project's retention: its raw events older than this are purged before the
/// move, so its oldest hours are rollups only.
const RETENTION_DAYS: u32 = 7;

fn project(slug: &str, retention_days: u32) -> Project {
    ProjectInput {
        slug: Some(slug.to_owned()),
        retention_days: Some(retention_days),
        ..ProjectInput::default()
    }
    .create(T0)
    .unwrap()
}

/// Event `i` of `project` at `timestamp`: views, session starts and stops of a few
/// users, and some errors with messages, over a few routes and countries.
fn event(project: &str, i: u64, timestamp: i64) -> Event {
    let name = ["view", "play", "stop", "view", "click"][(i % 5) as usize];
    let country = ["DE", "FR", "US"][(i % 3) as usize];
    let mut raw = json!({
        "project": project,
        "event_id": format!("00000000-0000-4000-8000-{i:012x}"),
        "timestamp": timestamp,
        "name": name,
        "user": format!("user-{}", i % 11),
        "route": format!("/r/{}", i % 4),
        "country": country,
        "duration_ms": (i % 17) as f64 * 3.5,
    });
    if i.is_multiple_of(13) {
        raw["status"] = json!(500);
        raw["error_class"] = json!(format!("E{}", i % 3));
        raw["error_message"] = json!(format!("failed at {i}"));
    }
    support::validated(project, timestamp.max(T0), raw)
}

/// `n` events of `project` from id `first`, spread evenly over `[from, to)`.
fn events(project: &str, first: u64, n: u64, from: i64, to: i64) -> Vec<Event> {
    let step = (to - from) / i64::try_from(n).unwrap();
    (0..n)
        .map(|k| event(project, first + k, from + i64::try_from(k).unwrap() * step))
        .collect()
}

fn message(events: Vec<Event>, dropped: Vec<Dropped>) -> Message {
    Message {
        v: VERSION,
        events,
        dropped,
    }
}

/// The stores: a control database, two shards, and a reference database given every
/// event the shards are given, which never moves.
struct Stack {
    control: SqliteStore,
    shards: Vec<SqliteStore>,
    reference: SqliteStore,
}

impl Stack {
    fn new() -> Self {
        let stack = Self {
            control: SqliteStore::open_in_memory().unwrap(),
            shards: vec![
                SqliteStore::open_in_memory().unwrap(),
                SqliteStore::open_in_memory().unwrap(),
            ],
            reference: SqliteStore::open_in_memory().unwrap(),
        };
        for (slug, shard) in [("m", 0), ("other", 0), ("far", 1)] {
            let p = project(slug, RETENTION_DAYS);
            assert!(block_on(stack.control.create_project_on(&p, shard)).unwrap());
            assert!(block_on(stack.reference.create_project(&p)).unwrap());
            // Named in its shard's directory, as the admin API does at creation.
            let ensure = [Write::EnsureProject { slug, now_ms: T0 }];
            block_on(stack.shards[shard as usize].commit(&ensure)).unwrap();
        }
        stack
    }

    /// Delivers `batch` at `now_ms` as the consumer does (a fresh isolate: placement
    /// read now), and the same to the reference.
    fn deliver(&self, batch: &[Message], now_ms: i64) {
        let consumed = block_on(pipeline::store_messages_on_shards(
            &self.control,
            &self.shards,
            &Placements::new(),
            batch,
            now_ms,
            &MinuteSources::every(),
        ));
        for outcome in &consumed.outcomes {
            outcome.as_ref().unwrap();
        }
        let reference = block_on(pipeline::store_messages(
            &self.reference,
            batch,
            now_ms,
            &MinuteSources::every(),
        ));
        assert!(reference.outcomes.iter().all(Result::is_ok));
    }

    /// One run of the moves at `now_ms` within `budget`, as the cron runs them: the
    /// moves it advanced.
    fn advance(&self, now_ms: i64, budget: MoveBudget) -> Vec<Move> {
        block_on(moves::advance(
            &self.control,
            &self.shards,
            now_ms,
            budget,
            PLACEMENT_TTL_MS,
        ))
        .unwrap()
    }

    /// One run of the moves, and where project `m`'s move stands after it (the latest
    /// move once none is running).
    fn step(&self, now_ms: i64, budget: MoveBudget) -> Move {
        match self.advance(now_ms, budget).into_iter().next() {
            Some(m) => m,
            None => block_on(moves::latest(&self.control, "m"))
                .unwrap()
                .unwrap(),
        }
    }

    fn on(&self, shard: usize) -> OnShard<'_, SqliteStore> {
        OnShard {
            control: &self.control,
            data: &self.shards[shard],
            shard: u32::try_from(shard).unwrap(),
        }
    }

    /// Each shard's cron (and the reference's): days, months and session days rolled,
    /// with `purge` retention too.
    fn cron(&self, now_ms: i64, purge: bool) {
        let budget = pipeline::PurgeBudget {
            chunk: 1000,
            statements: 1000,
        };
        for shard in 0..self.shards.len() {
            let store = self.on(shard);
            block_on(pipeline::roll_dirty(&store, Period::Day, 1000, now_ms)).unwrap();
            block_on(pipeline::roll_dirty(&store, Period::Month, 1000, now_ms)).unwrap();
            block_on(sessions::roll_session_days(&store, 1000, now_ms)).unwrap();
            if purge {
                block_on(pipeline::purge_expired(&store, now_ms, budget)).unwrap();
            }
        }
        let r = &self.reference;
        block_on(pipeline::roll_dirty(r, Period::Day, 1000, now_ms)).unwrap();
        block_on(pipeline::roll_dirty(r, Period::Month, 1000, now_ms)).unwrap();
        block_on(sessions::roll_session_days(r, 1000, now_ms)).unwrap();
        if purge {
            block_on(pipeline::purge_expired(r, now_ms, budget)).unwrap();
        }
    }

    fn router(&self, now_ms: i64) -> Router<&SqliteStore> {
        Router {
            control: &self.control,
            shards: self.shards.iter().collect(),
            placements: Rc::new(Placements::new()),
            now_ms,
        }
    }

    /// Rows of `project` in every data table of shard `shard`.
    fn rows_of(&self, shard: usize, project: &str) -> i64 {
        self.shards[shard].with_connection(|c| {
            let by_id = |table: &str| -> i64 {
                c.query_row(
                    &format!(
                        "SELECT count(*) FROM {table} WHERE project_id = \
                         (SELECT id FROM projects WHERE slug = ?1)"
                    ),
                    [project],
                    |r| r.get(0),
                )
                .unwrap()
            };
            let by_slug = |table: &str| -> i64 {
                c.query_row(
                    &format!("SELECT count(*) FROM {table} WHERE project = ?1"),
                    [project],
                    |r| r.get(0),
                )
                .unwrap()
            };
            [
                "raw_events",
                "session_events",
                "session_days",
                "session_days_dirty",
                "error_messages",
                "dropped_events",
                "erasures",
            ]
            .iter()
            .map(|t| by_id(t))
            .sum::<i64>()
                + by_slug("rollups")
                + by_slug("dirty_periods")
        })
    }
}

/// Fails with the first line that differs between two [`reads`], around where they part.
fn assert_same_reads(moved: &str, reference: &str, context: &str) {
    for (a, b) in moved.lines().zip(reference.lines()) {
        if a != b {
            let at = a
                .bytes()
                .zip(b.bytes())
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            let from = at.saturating_sub(300);
            let near = |s: &str| {
                s.get(from..(at + 300).min(s.len()))
                    .unwrap_or("")
                    .to_owned()
            };
            panic!(
                "{context}: reads differ in {:?}\nmoved:     …{}…\nreference: …{}…",
                a.split(' ').next().unwrap_or(""),
                near(a),
                near(b)
            );
        }
    }
    assert_eq!(
        moved.lines().count(),
        reference.lines().count(),
        "{context}"
    );
}

/// Everything the read API answers of `project` over the last 40 days at `now_ms`,
/// through the store traits: the overview merged per dimension and value, the daily
/// and hourly series, sessions per day, raw events counted and exported, error
/// messages, dropped requests.
fn reads<S: Executor>(store: &S, project: &str, now_ms: i64) -> String {
    let from = Interval::Day.floor(now_ms) - 40 * DAY_MS;
    let to = Interval::Day.floor(now_ms) + DAY_MS;
    let merged = block_on(read::merged(store, project, from, to, None)).unwrap();
    let daily = block_on(read::series(store, project, from, to, Interval::Day, None)).unwrap();
    let hourly = block_on(read::series(
        store,
        project,
        to - 3 * DAY_MS,
        to,
        Interval::Hour,
        None,
    ))
    .unwrap();
    let sessions = block_on(sessions::session_stats(
        store,
        project,
        from,
        to,
        Interval::Day,
    ))
    .unwrap();
    let counts = block_on(store.count_events(project, from, to)).unwrap();
    let exported = block_on(pipeline::all_events_between(store, project, from, to)).unwrap();
    let mut ids: Vec<&str> = exported.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    let errors = block_on(store.error_messages(project)).unwrap();
    let dropped = block_on(store.dropped_counts(project, from, to)).unwrap();
    format!(
        "merged {merged:?}\ndaily {daily:?}\nhourly {hourly:?}\nsessions {sessions:?}\n\
         counts {counts:?}\nexport {ids:?}\nerrors {errors:?}\ndropped {dropped:?}"
    )
}

#[test]
fn a_project_moves_under_concurrent_events_and_reads_as_if_it_never_had() {
    let stack = Stack::new();
    // Ten days of history before T0, the oldest days past retention once purged; the
    // other projects beside it on both shards.
    let history = [
        message(
            events("m", 0, 400, T0 - 10 * DAY_MS, T0),
            vec![Dropped {
                event_id: "00000000-0000-4000-9000-000000000001".into(),
                project: "m".into(),
                timestamp: T0 - 2 * DAY_MS,
                reason: "bot".into(),
            }],
        ),
        message(events("other", 10_000, 60, T0 - 3 * DAY_MS, T0), vec![]),
        message(events("far", 20_000, 50, T0 - 3 * DAY_MS, T0), vec![]),
    ];
    stack.deliver(&history, T0);
    stack.cron(T0, true);
    let purged = stack.shards[0].with_connection(|c| {
        c.query_row("SELECT count(*) FROM raw_events", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    });
    assert!(
        purged < 460,
        "retention purged the oldest raw events ({purged} left): their hours are rollups only"
    );

    // The move starts; events arrive between every run of the cron, some twice.
    let start = T0 + 5 * 60_000;
    let started = block_on(moves::start(&stack.control, 2, "m", 1, start)).unwrap();
    let Started::Started(first) = started else {
        panic!("not started: {started:?}")
    };
    assert_eq!(
        (first.phase, first.from_shard, first.to_shard),
        (Phase::Starting, 0, 1)
    );
    assert_eq!(
        block_on(moves::start(&stack.control, 2, "m", 1, start)).unwrap(),
        Started::Running(first.clone()),
        "one move at a time"
    );
    assert_eq!(
        block_on(moves::start(&stack.control, 2, "other", 0, start)).unwrap(),
        Started::AlreadyThere
    );
    assert_eq!(
        block_on(moves::start(&stack.control, 2, "other", 2, start)).unwrap(),
        Started::UnknownShard { bound: 2 }
    );

    let budget = MoveBudget {
        queries: 25,
        rows: 15,
    };
    let mut now = start;
    let mut next_id = 1000;
    let mut phases = vec![Phase::Starting];
    let mut runs: u32 = 0;
    let mut failed_once = false;
    let mut last = first;
    while last.phase != Phase::Done {
        runs += 1;
        assert!(runs < 400, "the move ends: {last:?}");
        now += 20_000;
        // New events of the moving project (within the last hours, one of them late by
        // a day) and of the others; every third batch delivered again.
        let mut fresh = events("m", next_id, 5, now - 3 * HOUR_MS, now);
        fresh.push(event("m", next_id + 5, now - DAY_MS - 7 * HOUR_MS));
        // Late by six and a half days: before the cut, in periods copied as rows.
        fresh.push(event("m", next_id + 6, now - 6 * DAY_MS - 14 * HOUR_MS));
        let batch = [
            message(fresh, vec![]),
            message(
                events("other", next_id + 50_000, 2, now - HOUR_MS, now),
                vec![],
            ),
            message(
                events("far", next_id + 60_000, 2, now - HOUR_MS, now),
                vec![],
            ),
        ];
        next_id += 7;
        stack.deliver(&batch, now);
        if runs.is_multiple_of(3) {
            stack.deliver(&batch, now);
        }
        // A failure in the middle of the copy: the run records it and the next resumes.
        if last.phase == Phase::Copying && last.stage == "events" && !failed_once {
            failed_once = true;
            stack.shards[1].fail_commit_at(0);
            let failed = stack.advance(now, budget).remove(0);
            assert!(
                failed.error.is_some(),
                "the failure is recorded: {failed:?}"
            );
            assert_eq!(failed.phase, Phase::Copying);
        }
        last = stack.step(now, budget);
        if phases.last() != Some(&last.phase) {
            phases.push(last.phase);
        }
        stack.cron(now, false);
        // Reads are right at every moment: wherever the project is read from now.
        let router = stack.router(now);
        let placed = block_on(stack.control.project_shards(&["m"])).unwrap()["m"];
        assert_same_reads(
            &reads(&router, "m", now),
            &reads(&stack.reference, "m", now),
            &format!("run {runs}, {:?}, placed {placed:?}", last.phase),
        );
    }
    assert!(failed_once, "the copy went through the failure");
    println!("{runs} runs, {:?}", last.progress);
    // Verification may pass in the run that ends the copy.
    phases.retain(|p| *p != Phase::Verifying);
    assert_eq!(
        phases,
        [
            Phase::Starting,
            Phase::Copying,
            Phase::Switched,
            Phase::Draining,
            Phase::Deleting,
            Phase::Done
        ]
    );
    assert!(
        last.progress.runs > 10,
        "the budget spread the copy over many runs: {:?}",
        last.progress
    );
    assert!(last.progress.queries > 0, "{:?}", last.progress);
    assert!(last.progress.raw_copied > 0, "{:?}", last.progress);
    assert!(last.progress.replayed_new > 0, "{:?}", last.progress);
    assert!(last.progress.rollup_rows > 0, "{:?}", last.progress);

    // Placed on the new shard, nothing of it left on the old one; the others untouched.
    let placed = block_on(stack.control.project_shards(&["m", "other", "far"])).unwrap();
    assert_eq!(
        (placed["m"].shard, placed["m"].also),
        (1, None),
        "placed on the new shard, written there alone"
    );
    assert_eq!(
        stack.rows_of(0, "m"),
        0,
        "the old shard keeps nothing of it"
    );
    assert!(stack.rows_of(1, "m") > 0);
    assert_eq!(stack.rows_of(1, "other"), 0);
    assert_eq!(stack.rows_of(0, "far"), 0);
    let router = stack.router(now);
    for slug in ["m", "other", "far"] {
        assert_same_reads(
            &reads(&router, slug, now),
            &reads(&stack.reference, slug, now),
            slug,
        );
    }
    // Exactly once: every event the moving project was sent is stored once on its shard.
    let stored: i64 = stack.shards[1].with_connection(|c| {
        c.query_row(
            "SELECT count(*) FROM raw_events JOIN projects ON id = project_id WHERE slug = 'm'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    let expected: i64 = stack.reference.with_connection(|c| {
        c.query_row(
            "SELECT count(*) FROM raw_events JOIN projects ON id = project_id WHERE slug = 'm'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    });
    assert_eq!(stored, expected);
    assert!(
        block_on(moves::running(&stack.control)).unwrap().is_empty(),
        "nothing runs once done"
    );
    // Moving it back is a new move; moving it where it is is refused.
    assert_eq!(
        block_on(moves::start(&stack.control, 2, "m", 1, now)).unwrap(),
        Started::AlreadyThere
    );
}

#[test]
fn a_move_whose_copy_never_matches_fails_and_deletes_its_copy() {
    let stack = Stack::new();
    stack.deliver(&[message(events("m", 0, 40, T0 - DAY_MS, T0), vec![])], T0);
    let Started::Started(_) = block_on(moves::start(&stack.control, 2, "m", 1, T0)).unwrap() else {
        panic!("not started")
    };
    let budget = MoveBudget {
        queries: 200,
        rows: 100,
    };
    let mut now = T0;
    let mut last = None;
    for _ in 0..40 {
        now += 61_000;
        // The new shard loses a row of the copy before every verification: it never
        // matches the old one.
        stack.shards[1].with_connection(|c| {
            c.execute_batch(
                "DELETE FROM raw_events WHERE event_id = (SELECT max(event_id) FROM raw_events)",
            )
            .unwrap();
        });
        let m = stack.step(now, budget);
        let done = m.finished_at.is_some();
        last = Some(m);
        if done {
            break;
        }
    }
    let last = last.unwrap();
    assert_eq!(last.phase, Phase::Failed, "{last:?}");
    assert!(last.finished_at.is_some(), "{last:?}");
    assert!(
        last.error
            .as_deref()
            .unwrap_or_default()
            .contains("raw events"),
        "{last:?}"
    );
    let placed = block_on(stack.control.project_shards(&["m"])).unwrap()["m"];
    assert_eq!(
        (placed.shard, placed.also),
        (0, None),
        "placement unchanged"
    );
    assert_eq!(stack.rows_of(1, "m"), 0, "the copy is deleted");
    assert!(
        stack.rows_of(0, "m") > 0,
        "the project stays whole where it was"
    );
    assert_same_reads(
        &reads(&stack.router(now), "m", now),
        &reads(&stack.reference, "m", now),
        "after the failed move",
    );
}

/// The aggregator's jobs queue steps a move again as soon as its step says it has work
/// (at once after a spent budget, when a wait ends), not once a minute: a move of many
/// pages ends within its three waits and the time its steps take, however many steps
/// it needs, with every guarantee of [`moves::advance`] (some messages delivered twice).
#[test]
fn a_move_stepped_whenever_it_has_work_ends_within_its_waits() {
    let stack = Stack::new();
    stack.deliver(
        &[message(events("m", 0, 300, T0 - 2 * DAY_MS, T0), vec![])],
        T0,
    );
    stack.cron(T0, false);
    let Started::Started(first) = block_on(moves::start(&stack.control, 2, "m", 1, T0)).unwrap()
    else {
        panic!("not started")
    };
    let budget = MoveBudget {
        queries: 30,
        rows: 20,
    };
    let mut now = T0;
    let mut steps = 0;
    let mut waits = 0;
    let mut last = first.clone();
    loop {
        steps += 1;
        assert!(steps < 500, "the move ends: {last:?}");
        let step = || {
            block_on(moves::step(
                &stack.control,
                &stack.shards,
                first.id,
                now,
                budget,
                PLACEMENT_TTL_MS,
            ))
            .unwrap()
        };
        let Some((m, stopped)) = step() else {
            break;
        };
        // A message delivered twice: the duplicate finds the move where the first left
        // it and goes on from there.
        if steps % 7 == 0 {
            step();
        }
        last = m;
        match stopped.work_in_ms(now) {
            Some(0) => now += 50,
            Some(wait) => {
                assert!(
                    matches!(stopped, moves::Stopped::Waiting { until_ms } if until_ms == last.phase_at + PLACEMENT_TTL_MS),
                    "{stopped:?} {last:?}"
                );
                waits += 1;
                now += wait;
            }
            None => {
                assert!(
                    matches!(stopped, moves::Stopped::Idle) && last.phase == Phase::Done,
                    "no work but not done: {stopped:?} {last:?}"
                );
                break;
            }
        }
    }
    let last = block_on(moves::latest(&stack.control, "m"))
        .unwrap()
        .unwrap();
    assert_eq!(last.phase, Phase::Done, "{last:?}");
    assert!(last.progress.runs > 10, "many steps: {:?}", last.progress);
    assert_eq!(
        waits, 3,
        "starting, switched and draining each wait the TTL once"
    );
    assert!(
        now - T0 < 3 * PLACEMENT_TTL_MS + 60_000,
        "ended {} s after it started, its waits being {} s",
        (now - T0) / 1000,
        3 * PLACEMENT_TTL_MS / 1000
    );
    let placed = block_on(stack.control.project_shards(&["m"])).unwrap()["m"];
    assert_eq!((placed.shard, placed.also), (1, None));
    assert_eq!(
        stack.rows_of(0, "m"),
        0,
        "the old shard keeps nothing of it"
    );
    assert_same_reads(
        &reads(&stack.router(now), "m", now),
        &reads(&stack.reference, "m", now),
        "after the move",
    );
}
