//! Erasing one person's data against real SQLite: at volume, within each run's budget,
//! exactly (counts equal what was there), touching no one else, and safe to interrupt.

mod support;

use tally_core::hash;
use tally_core::time::DAY_MS;
use tally_core::{Context, RawEvent, Settings, validate};
use tally_storage::erasure::{self, EraseBudget};
use tally_storage::exec::Counted;
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{Write, Writer};

use support::store_batch;

/// 2025-01-10T00:00:00Z.
const NOW: i64 = 1_736_467_200_000;
const SECRET: &[u8] = b"secret";

fn user_hash(project: &str, user: &str) -> String {
    hash::identifier(SECRET, project, user)
}

/// Stores one event of `user` in `project` through the pipeline, which creates the
/// project as the consumer would.
fn store_one(store: &SqliteStore, project: &str, user: &str, i: u64) {
    let raw: RawEvent = serde_json::from_value(serde_json::json!({
        "event_id": format!("ffffffff-0000-4000-8000-{i:012x}"),
        "project": project, "name": "request", "user": user, "timestamp": NOW - 1000,
    }))
    .unwrap();
    let ctx = Context {
        project,
        now_ms: NOW,
        settings: Settings::default(),
        id_secret: SECRET,
    };
    let event = validate(raw, &ctx, &mut || unreachable!()).unwrap().event;
    store_batch(store, &[event], NOW);
}

/// Seeds `n` raw events of `project` in SQL, the i-th by `users[i % len]`, each with a
/// session mark: volume the pipeline would take minutes to store.
fn seed(store: &SqliteStore, project: &str, n: u32, users: &[String]) {
    store.with_connection(|c| {
        let users = serde_json::to_string(users).unwrap();
        c.execute(
            "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?2)
             INSERT INTO raw_events (project_id, event_id, timestamp, name, user)
             SELECT (SELECT id FROM projects WHERE slug = ?1),
                    unhex(printf('%016x%016x', (i * 2654435761) % 4294967296, i)),
                    ?3 - i, 'request',
                    unhex(substr(?4 ->> ('$[' || (i % json_array_length(?4)) || ']'), 1, 16))
             FROM seq",
            rusqlite::params![project, n, NOW - DAY_MS, users],
        )
        .unwrap();
        c.execute(
            "INSERT INTO session_events (project_id, event_id, timestamp, user, is_start)
             SELECT project_id, event_id, timestamp, user, 1 FROM raw_events
             WHERE project_id = (SELECT id FROM projects WHERE slug = ?1) AND user IS NOT NULL",
            rusqlite::params![project],
        )
        .unwrap();
    });
}

/// Raw events and session marks of `project` whose user is `user_hash`.
fn held(store: &SqliteStore, project: &str, user_hash: &str) -> (u64, u64) {
    store.with_connection(|c| {
        let count = |table: &str| -> u64 {
            c.query_row(
                &format!(
                    "SELECT count(*) FROM {table} WHERE project_id =
                     (SELECT id FROM projects WHERE slug = ?1) AND user = unhex(substr(?2, 1, 16))"
                ),
                rusqlite::params![project, user_hash],
                |r| r.get::<_, i64>(0),
            )
            .unwrap() as u64
        };
        (count("raw_events"), count("session_events"))
    })
}

fn totals(store: &SqliteStore) -> (u64, u64) {
    store.with_connection(|c| {
        let count = |table: &str| -> u64 {
            c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64
        };
        (count("raw_events"), count("session_events"))
    })
}

fn dead_letter(store: &SqliteStore, message_id: &str, project: &str, user_hash: &str) {
    let body = serde_json::json!({"events": [{"project": project, "user": user_hash}]}).to_string();
    block_on(store.commit(&[Write::DeadLetter {
        message_id,
        queue: "tally-events-dlq",
        body: &body,
        sent_at_ms: NOW,
        now_ms: NOW,
    }]))
    .unwrap();
}

fn dead_letters(store: &SqliteStore) -> Vec<String> {
    store.with_connection(|c| {
        let mut stmt = c
            .prepare("SELECT message_id FROM dead_letters ORDER BY message_id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    })
}

#[test]
fn a_persons_data_is_erased_at_volume_within_budget_and_no_one_elses() {
    let store = SqliteStore::open_in_memory().unwrap();
    for (i, project) in ["alpha", "beta"].into_iter().enumerate() {
        store_one(&store, project, "ann", i as u64);
    }
    let ann = user_hash("alpha", "ann");
    let others: Vec<String> = ["bob", "cy", "dee"]
        .iter()
        .map(|u| user_hash("alpha", u))
        .collect();
    let mut users = others.clone();
    users.push(ann.clone());
    seed(&store, "alpha", 120_000, &users);
    dead_letter(&store, "m-ann", "alpha", &ann);
    dead_letter(&store, "m-bob", "alpha", &others[0]);

    let (ann_raw, ann_marks) = held(&store, "alpha", &ann);
    assert_eq!((ann_raw, ann_marks), (30_001, 30_001));
    let others_before: Vec<_> = others.iter().map(|u| held(&store, "alpha", u)).collect();
    let beta_ann = user_hash("beta", "ann");
    assert_eq!(held(&store, "beta", &beta_ann), (1, 0));
    let (raw_before, marks_before) = totals(&store);

    let id = "0123456789abcdef0123456789abcdef";
    assert!(block_on(erasure::request(&store, "alpha", id, &ann, NOW)).unwrap());
    assert!(
        !block_on(erasure::request(
            &store,
            "nowhere",
            "f".repeat(32).as_str(),
            &ann,
            NOW
        ))
        .unwrap(),
        "no request for a project that does not exist"
    );
    let pending = block_on(erasure::get(&store, "alpha", id))
        .unwrap()
        .unwrap();
    assert_eq!((pending.done_at, pending.raw_deleted), (None, 0));

    // A small budget, so the erasure spans runs and resumes where each stopped.
    let budget = EraseBudget {
        window: 5_000,
        chunk: 7_000,
        statements: 16,
    };
    let mut runs = 0;
    let (mut raw, mut marks) = (0, 0);
    loop {
        runs += 1;
        let counted = Counted::new(&store);
        let erased = block_on(erasure::run(&counted, NOW + runs * 3_600_000, budget)).unwrap();
        // Measured at the executor, as D1 would bill the invocation, not as reported.
        let queries = counted.take_queries();
        assert!(
            queries <= budget.statements,
            "{queries} queries: {erased:?}"
        );
        assert_eq!(queries, erased.statements, "the run counts what it does");
        raw += erased.raw_deleted;
        marks += erased.marks_deleted;
        if erased.pending == 0 {
            break;
        }
        assert!(runs < 50, "the erasure never finishes");
    }
    assert!(runs > 2, "spanned {runs} runs");

    assert_eq!(held(&store, "alpha", &ann), (0, 0));
    assert_eq!((raw, marks), (ann_raw, ann_marks));
    let done = block_on(erasure::get(&store, "alpha", id))
        .unwrap()
        .unwrap();
    assert_eq!((done.raw_deleted, done.marks_deleted), (ann_raw, ann_marks));
    assert_eq!(done.done_at, Some(NOW + runs * 3_600_000));
    assert_eq!(done.user, ann);
    assert_eq!(
        totals(&store),
        (raw_before - ann_raw, marks_before - ann_marks),
        "nothing else was deleted"
    );
    let others_after: Vec<_> = others.iter().map(|u| held(&store, "alpha", u)).collect();
    assert_eq!(others_after, others_before);
    assert_eq!(
        held(&store, "beta", &beta_ann),
        (1, 0),
        "the same id elsewhere is another person"
    );
    assert_eq!(dead_letters(&store), ["m-bob"]);

    // A finished request is not worked on again.
    let idle = block_on(erasure::run(&store, NOW + DAY_MS, budget)).unwrap();
    assert_eq!((idle.pending, idle.raw_deleted, idle.statements), (0, 0, 1));
}

/// A store of project `alpha` where `ann` and `bob` share `n` seeded events (and `ann`
/// one stored by the pipeline), and `ann`'s erasure is requested as `id`: the start of
/// every test of an erasure interrupted or resumed. Returns `ann`'s user hash.
fn ann_requested(n: u32, id: &str) -> (SqliteStore, String) {
    let store = SqliteStore::open_in_memory().unwrap();
    store_one(&store, "alpha", "ann", 0);
    let ann = user_hash("alpha", "ann");
    seed(
        &store,
        "alpha",
        n,
        &[ann.clone(), user_hash("alpha", "bob")],
    );
    assert!(block_on(erasure::request(&store, "alpha", id, &ann, NOW)).unwrap());
    (store, ann)
}

#[test]
fn an_interrupted_erasure_step_is_taken_again_and_counts_once() {
    let id = "00000000000000000000000000000001";
    let (store, ann) = ann_requested(20_000, id);
    let (ann_raw, ann_marks) = held(&store, "alpha", &ann);
    let budget = EraseBudget {
        window: 3_000,
        chunk: 4_000,
        statements: 1_000,
    };
    // Fail the second statement group of a few batches: the step's counts were already
    // run, so a step that is not atomic would count its rows twice.
    for _ in 0..4 {
        store.fail_commit_at(1);
        assert!(block_on(erasure::run(&store, NOW, budget)).is_err());
        let runs_on = block_on(erasure::run(
            &store,
            NOW,
            EraseBudget {
                statements: 4,
                ..budget
            },
        ))
        .unwrap();
        assert!(runs_on.statements <= 4);
    }
    let last = block_on(erasure::run(&store, NOW, budget)).unwrap();
    assert_eq!(last.pending, 0);
    let done = block_on(erasure::get(&store, "alpha", id))
        .unwrap()
        .unwrap();
    assert_eq!((done.raw_deleted, done.marks_deleted), (ann_raw, ann_marks));
    assert_eq!(held(&store, "alpha", &ann), (0, 0));
}

/// Raw events of `project` in the sample bucket of `user_hash`: all of the user's
/// events and those of other users (or ids) whose hash ends in the same byte.
fn bucket(store: &SqliteStore, project: &str, user_hash: &str) -> u64 {
    store.with_connection(|c| {
        c.query_row(
            "SELECT count(*) FROM raw_events
             WHERE project_id = (SELECT id FROM projects WHERE slug = ?1)
               AND substr(coalesce(user, event_id), -1, 1) = unhex(substr(?2, 15, 2))",
            rusqlite::params![project, user_hash],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
    })
}

#[test]
fn an_erasure_reads_the_users_sample_bucket_not_the_project() {
    // The erasure walked every raw event of the project by id: erasing one person of a
    // project of 10 million events read 10 million rows over five hourly runs.
    let store = SqliteStore::open_in_memory().unwrap();
    store_one(&store, "alpha", "u0", 0);
    let users: Vec<String> = (0..512)
        .map(|i| user_hash("alpha", &format!("u{i}")))
        .collect();
    seed(&store, "alpha", 200_000, &users);
    let target = &users[0];
    let (raw, marks) = held(&store, "alpha", target);
    let in_bucket = bucket(&store, "alpha", target);
    assert!(
        raw > 300 && in_bucket >= raw && in_bucket < 2_000,
        "{raw} {in_bucket}"
    );
    assert!(
        block_on(erasure::request(
            &store,
            "alpha",
            &"a".repeat(32),
            target,
            NOW
        ))
        .unwrap()
    );

    let erased = block_on(erasure::run(&store, NOW, erasure::HOURLY_ERASE)).unwrap();
    assert_eq!((erased.finished, erased.pending), (1, 0), "{erased:?}");
    assert_eq!((erased.raw_deleted, erased.marks_deleted), (raw, marks));
    assert_eq!(erased.raw_scanned, in_bucket, "the bucket, read once");
    assert!(erased.statements <= 9, "{erased:?}");
    assert_eq!(held(&store, "alpha", target), (0, 0));
    assert_eq!(totals(&store).0, 200_001 - raw, "no one else's events");
}

#[test]
fn a_request_saved_with_a_primary_key_cursor_walks_its_bucket_from_the_start() {
    // Requests recorded before the walk went through the sample bucket hold a bare event
    // id as their cursor; they start again and still count each event once.
    let id = "00000000000000000000000000000002";
    let (store, ann) = ann_requested(2_000, id);
    let (raw, _) = held(&store, "alpha", &ann);
    store.with_connection(|c| {
        c.execute(
            "UPDATE erasures SET cursor = unhex('7fffffffffffffff0000000000000000'), marks_done = 1",
            [],
        )
        .unwrap();
    });
    let erased = block_on(erasure::run(&store, NOW, erasure::HOURLY_ERASE)).unwrap();
    assert_eq!((erased.finished, erased.raw_deleted), (1, raw));
    assert_eq!(held(&store, "alpha", &ann).0, 0);
}

#[test]
fn each_erasure_step_reads_one_window_of_the_users_sample_bucket() {
    // A step that scanned the whole project would grow with it, on the database every
    // tenant shares.
    let store = SqliteStore::open_in_memory().unwrap();
    let plan = |statement| support::query_plan(&store, statement);
    // The window query ends at its LIMIT in index order (no sort); the deletion and its
    // count read only the window's range of the bucket.
    for statement in [
        tally_core::sql::ERASURE_WINDOW,
        tally_core::sql::ERASE_RAW_WINDOW,
        tally_core::sql::ERASURE_RAW_STEP,
    ] {
        let steps = plan(statement);
        let raw_reads: Vec<&String> = steps.iter().filter(|s| s.contains("raw_events")).collect();
        assert!(!raw_reads.is_empty(), "{statement}: {steps:?}");
        for read in raw_reads {
            assert!(
                read.starts_with("SEARCH raw_events USING COVERING INDEX raw_events_by_sample")
                    || read.starts_with("SEARCH raw_events USING INDEX raw_events_by_sample"),
                "{statement}: {read}"
            );
            assert!(read.contains("(timestamp,event_id)>(?,?)"), "{read}");
        }
        assert!(
            !steps.iter().any(|s| s.contains("TEMP B-TREE")),
            "{steps:?}"
        );
    }
}

#[test]
fn one_users_session_marks_are_read_through_the_user_index() {
    // The per-user session reads and erasure filtered every mark of the project in
    // range by user; with the index by user they read only that user's marks.
    let store = SqliteStore::open_in_memory().unwrap();
    for statement in [
        tally_core::sql::USER_SESSION_MARKS_PAGE,
        tally_core::sql::ERASE_SESSION_MARKS,
    ] {
        let steps = support::query_plan(&store, statement);
        let by_user: Vec<&String> = steps
            .iter()
            .filter(|s| s.contains("session_events_by_user"))
            .collect();
        assert_eq!(by_user.len(), 1, "{statement}: {steps:?}");
        assert!(by_user[0].contains("user=?"), "{steps:?}");
        assert!(
            steps
                .iter()
                .filter(|s| s.contains("session_events"))
                .all(|s| s.starts_with("SEARCH")),
            "{statement}: {steps:?}"
        );
    }
}
