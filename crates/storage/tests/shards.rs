//! Projects on data shards (issue 16), against real SQLite databases: every statement of
//! a project goes to its shard and no other, the consumer commits each shard's messages
//! apart so that a failing shard holds back only its projects, no transaction spans two
//! databases, a single-database deployment keeps its data when shards are added, a new
//! project goes to the shard storing the fewest bytes, and runs over many projects
//! (alert evaluation, digests) read their placements once.

mod support;

use std::cell::Cell;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde_json::json;
use tally_core::Event;
use tally_core::alerts::{self, Fresh, MinuteSources};
use tally_core::digest;
use tally_core::project::{Project, ProjectInput};
use tally_core::queue::{Message, VERSION};
use tally_core::rollup::Dimension;
use tally_core::time::{DAY_MS, HOUR_MS, MINUTE_MS};
use tally_storage::alerts::AlertWrite;
use tally_storage::digests;
use tally_storage::exec::{Bound, Executor, Statement};
use tally_storage::shard::{self, OnShard, Placements, Role, Router};
use tally_storage::sqlite::{SqliteStore, block_on};
use tally_storage::{AdminStore, EventStore, RollupStore, Write, Writer, pipeline, read};

/// 2026-03-02T10:00:00Z.
const T0: i64 = 1_772_445_600_000;

fn project(slug: &str) -> Project {
    ProjectInput {
        slug: Some(slug.to_owned()),
        ..ProjectInput::default()
    }
    .create(T0)
    .unwrap()
}

/// `n` events of `project` in the hour before `T0`, ids from `first`.
fn events(project: &str, first: u64, n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            support::validated(
                project,
                T0,
                json!({
                    "project": project,
                    "event_id": format!("00000000-0000-4000-8000-{:012x}", first + i),
                    "timestamp": T0 - HOUR_MS + i64::try_from(i).unwrap() * 1000,
                    "name": "view",
                    "user": format!("user-{}", i % 7),
                }),
            )
        })
        .collect()
}

fn message(events: Vec<Event>) -> Message {
    Message {
        v: VERSION,
        events,
        dropped: Vec::new(),
    }
}

fn count(store: &SqliteStore, sql: &str) -> i64 {
    store.with_connection(|c| c.query_row(sql, [], |r| r.get(0)).unwrap())
}

/// The events of `project` the rollups count over the last day, read as the query API
/// reads them.
fn counted<S: Executor>(store: &S, project: &str) -> u64 {
    let merged = block_on(read::merged(store, project, T0 - DAY_MS, T0, None)).unwrap();
    merged
        .get(&(Dimension::All, String::new()))
        .map_or(0, |row| row.count)
}

/// Stores `batch` on its projects' shards as the consumer does at `T0`, writing the
/// minute rows of every project.
fn consume<E: Executor>(
    control: &E,
    shards: &[E],
    placements: &Placements,
    batch: &[Message],
) -> pipeline::Consumed {
    block_on(pipeline::store_messages_on_shards(
        control,
        shards,
        placements,
        batch,
        T0,
        &MinuteSources::default(),
    ))
}

/// A control database with projects `a` on shard 0 and `b` on shard 1, each recorded in
/// its shard's directory as the admin API records it.
fn two_shards() -> (SqliteStore, Vec<SqliteStore>, Rc<Placements>) {
    let control = SqliteStore::open_in_memory().unwrap();
    let shards = vec![
        SqliteStore::open_in_memory().unwrap(),
        SqliteStore::open_in_memory().unwrap(),
    ];
    assert!(block_on(control.create_project_on(&project("a"), 0)).unwrap());
    assert!(block_on(control.create_project_on(&project("b"), 1)).unwrap());
    let placements = Rc::new(Placements::new());
    let router = Router {
        control: &control,
        shards: shards.iter().collect(),
        placements: Rc::clone(&placements),
        now_ms: T0,
    };
    for slug in ["a", "b"] {
        block_on(router.commit(&[Write::EnsureProject { slug, now_ms: T0 }])).unwrap();
    }
    (control, shards, placements)
}

#[test]
fn each_projects_statements_go_to_its_shard_and_nowhere_else() {
    let (control, shards, placements) = two_shards();
    let batch = [
        message(events("a", 0, 30)),
        message(events("b", 1000, 50)),
        message(events("a", 30, 5)),
    ];
    let consumed = consume(&control, &shards, &placements, &batch);
    assert!(consumed.outcomes.iter().all(Result::is_ok));
    assert_eq!(consumed.stored.new, 85);

    // Stored where placed: the control database holds no data, each shard only its
    // project's.
    assert_eq!(count(&control, "SELECT count(*) FROM raw_events"), 0);
    assert_eq!(count(&control, "SELECT count(*) FROM rollups"), 0);
    let raw_of = |shard: &SqliteStore, slug: &str| {
        shard.with_connection(|c| {
            c.query_row(
                "SELECT count(*) FROM raw_events JOIN projects ON id = project_id WHERE slug = ?1",
                [slug],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
        })
    };
    assert_eq!((raw_of(&shards[0], "a"), raw_of(&shards[0], "b")), (35, 0));
    assert_eq!((raw_of(&shards[1], "a"), raw_of(&shards[1], "b")), (0, 50));
    assert_eq!(
        count(
            &shards[0],
            "SELECT count(*) FROM rollups WHERE project = 'b'"
        ),
        0
    );
    assert_eq!(
        count(
            &shards[1],
            "SELECT count(*) FROM rollups WHERE project = 'a'"
        ),
        0
    );

    // Read back through the router, as the query worker reads: exact per project.
    let router = Router {
        control: &control,
        shards: shards.iter().collect(),
        placements: Rc::new(Placements::new()),
        now_ms: T0,
    };
    assert_eq!(counted(&router, "a"), 35);
    assert_eq!(counted(&router, "b"), 50);
    assert_eq!(
        block_on(router.count_events("b", T0 - DAY_MS, T0))
            .unwrap()
            .events,
        50
    );
    // A slug read on the other shard finds nothing of it.
    let wrong = OnShard {
        control: &control,
        data: &shards[0],
        shard: 0,
    };
    assert_eq!(counted(&wrong, "b"), 0);

    // Each shard's cron work sees its own projects only.
    let on = |shard: usize| OnShard {
        control: &control,
        data: &shards[shard],
        shard: u32::try_from(shard).unwrap(),
    };
    let slugs = |shard| -> Vec<String> {
        block_on(on(shard).projects())
            .unwrap()
            .into_iter()
            .map(|p| p.slug)
            .collect()
    };
    assert_eq!(
        (slugs(0), slugs(1)),
        (vec!["a".to_owned()], vec!["b".to_owned()])
    );
    for shard in 0..2 {
        let rolled = block_on(pipeline::roll_dirty(
            &on(shard),
            tally_core::rollup::Period::Day,
            100,
            T0,
        ))
        .unwrap();
        assert_eq!(rolled.rolled, 1, "shard {shard} rolls its project's day");
    }
    assert_eq!(counted(&router, "b"), 50);
}

#[test]
fn a_failing_shard_holds_back_only_its_projects_and_they_count_once_when_it_heals() {
    let (control, shards, placements) = two_shards();
    shards[1].with_connection(|c| {
        c.execute_batch(
            "CREATE TRIGGER down BEFORE INSERT ON raw_events
             BEGIN SELECT RAISE(ABORT, 'shard down'); END",
        )
        .unwrap();
    });
    let batch = [
        message(events("a", 0, 20)),
        message(events("b", 1000, 40)),
        message(events("a", 20, 10)),
    ];
    let store = |batch: &[Message]| consume(&control, &shards, &placements, batch);
    let first = store(&batch);
    let ok: Vec<bool> = first.outcomes.iter().map(Result::is_ok).collect();
    assert_eq!(
        ok,
        [true, false, true],
        "only shard 1's message is held back"
    );
    let router = Router {
        control: &control,
        shards: shards.iter().collect(),
        placements: Rc::clone(&placements),
        now_ms: T0,
    };
    assert_eq!((counted(&router, "a"), counted(&router, "b")), (30, 0));

    // The shard heals; the queue redelivers what it retried (and, at least once, some
    // of what was acked): each event counts once.
    shards[1].with_connection(|c| c.execute_batch("DROP TRIGGER down").unwrap());
    let second = store(&batch);
    assert!(second.outcomes.iter().all(Result::is_ok));
    assert_eq!((counted(&router, "a"), counted(&router, "b")), (30, 40));
    assert_eq!(count(&shards[1], "SELECT count(*) FROM raw_events"), 40);
}

/// A database whose commits wait, if it is `waits`, until another's commit has begun
/// (`begun`, shared): a shard that answers only once another shard is written to.
struct WaitsForAnother<'a> {
    inner: &'a SqliteStore,
    waits: bool,
    begun: &'a Cell<bool>,
}

impl Executor for WaitsForAnother<'_> {
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, tally_storage::Error> {
        self.inner.query(sql, values).await
    }

    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, tally_storage::Error> {
        if self.waits {
            std::future::poll_fn(|_| {
                if self.begun.get() {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
        } else {
            self.begun.set(true);
        }
        self.inner.batch(groups).await
    }
}

#[test]
fn a_slow_shard_delays_no_other_shards_commit() {
    // Shard 0 commits only once shard 1's commit has begun: committed one after the
    // other, the batch would wait on shard 0 for ever (as it would on a hosted shard
    // that hangs until its 30 s timeout); committed at once, both are stored.
    let (control, shards, placements) = two_shards();
    let begun = Cell::new(false);
    let wrap = |inner, waits| WaitsForAnother {
        inner,
        waits,
        begun: &begun,
    };
    let gated = [wrap(&shards[0], true), wrap(&shards[1], false)];
    let batch = [message(events("a", 0, 20)), message(events("b", 1000, 40))];
    let (control, minutes) = (wrap(&control, false), MinuteSources::default());
    let mut consumed = std::pin::pin!(pipeline::store_messages_on_shards(
        &control,
        &gated,
        &placements,
        &batch,
        T0,
        &minutes,
    ));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    // Each poll drives every part that can go on; a few suffice when none waits on a
    // part that has not begun.
    let outcome = (0..100).find_map(|_| match consumed.as_mut().poll(&mut context) {
        std::task::Poll::Ready(outcome) => Some(outcome),
        std::task::Poll::Pending => None,
    });
    let outcome = outcome.expect("shard 0's commit waited for shard 1's, which never began");
    assert!(outcome.outcomes.iter().all(Result::is_ok));
    assert_eq!(count(&shards[0], "SELECT count(*) FROM raw_events"), 20);
    assert_eq!(count(&shards[1], "SELECT count(*) FROM raw_events"), 40);
}

#[test]
fn dropped_requests_of_a_project_its_shard_does_not_name_yet_are_kept() {
    // The admin API records a new project in its shard's directory after creating it,
    // and only logs a failure there: the project's first message then records it. That
    // message may carry only dropped requests (a bot's), which must count all the same.
    let (control, shards, placements) = two_shards();
    assert!(block_on(control.create_project_on(&project("c"), 1)).unwrap());
    let bot = |id: u64| tally_core::queue::Dropped {
        event_id: format!("00000000-0000-4000-8000-{id:012x}"),
        project: "c".to_owned(),
        timestamp: T0 - MINUTE_MS,
        reason: "bot".to_owned(),
    };
    let batch = [Message {
        v: VERSION,
        events: Vec::new(),
        dropped: vec![bot(1), bot(2)],
    }];
    for _ in 0..2 {
        let consumed = consume(&control, &shards, &placements, &batch);
        assert!(consumed.outcomes.iter().all(Result::is_ok));
    }
    let router = Router {
        control: &control,
        shards: shards.iter().collect(),
        placements: Rc::clone(&placements),
        now_ms: T0,
    };
    let dropped = block_on(router.dropped_counts("c", T0 - DAY_MS, T0)).unwrap();
    assert_eq!(dropped.get("bot"), Some(&2), "{dropped:?}");
    assert_eq!(count(&shards[1], "SELECT count(*) FROM dropped_events"), 2);
    assert_eq!(count(&shards[0], "SELECT count(*) FROM dropped_events"), 0);
}

#[test]
fn a_transaction_never_spans_two_databases() {
    let (control, shards, placements) = two_shards();
    let router = Router {
        control: &control,
        shards: shards.iter().collect(),
        placements,
        now_ms: T0,
    };
    let day = T0 - T0 % DAY_MS;
    let mark = |project| Write::MarkDirty {
        project,
        period: tally_core::rollup::Period::Day,
        start: day,
    };
    // Two projects on two shards.
    assert!(block_on(router.commit(&[mark("a"), mark("b")])).is_err());
    // A shard's write with a control one.
    let on_shard = OnShard {
        control: &control,
        data: &shards[1],
        shard: 1,
    };
    let alerts = Write::PurgeAlerts {
        project: "b",
        before_ms: 0,
        limit: 1,
    };
    assert!(block_on(on_shard.commit(&[mark("b"), alerts.clone()])).is_err());
    // Statements over several projects or a whole shard need one shard.
    assert!(block_on(router.dirty_periods(tally_core::rollup::Period::Day, 10, T0)).is_err());
    assert!(
        block_on(router.projects()).is_err(),
        "a router has no one shard"
    );
    // Nothing of the refused transactions was applied; each alone commits.
    for store in [&shards[0], &shards[1]] {
        assert_eq!(count(store, "SELECT count(*) FROM dirty_periods"), 0);
    }
    block_on(router.commit(&[mark("b")])).unwrap();
    block_on(on_shard.commit(&[alerts])).unwrap();
    assert_eq!(count(&shards[1], "SELECT count(*) FROM dirty_periods"), 1);
    assert_eq!(count(&shards[0], "SELECT count(*) FROM dirty_periods"), 0);
}

#[test]
fn a_single_database_deployment_keeps_its_data_on_shard_0_when_a_shard_is_added() {
    // Before shards: one database, a project and its events.
    let db = SqliteStore::open_in_memory().unwrap();
    assert!(block_on(db.create_project(&project("old"))).unwrap());
    let before = block_on(pipeline::store_messages(
        &db,
        &[message(events("old", 0, 25))],
        T0,
        &MinuteSources::default(),
    ));
    assert!(before.outcomes.iter().all(Result::is_ok));

    // After: the same database is the control database and shard 0; shard 1 is new.
    let added = SqliteStore::open_in_memory().unwrap();
    let shards = [&db, &added];
    assert!(block_on(db.create_project_on(&project("new"), 1)).unwrap());
    let placements = Placements::new();
    let batch = [
        message(events("old", 25, 5)),
        message(events("new", 500, 12)),
    ];
    let consumed = consume(&&db, &shards, &placements, &batch);
    assert!(consumed.outcomes.iter().all(Result::is_ok));
    let router = Router {
        control: &db,
        shards: shards.to_vec(),
        placements: Rc::new(Placements::new()),
        now_ms: T0,
    };
    assert_eq!(
        counted(&router, "old"),
        30,
        "old data where it was, new beside it"
    );
    assert_eq!(counted(&router, "new"), 12);
    assert_eq!(count(&added, "SELECT count(*) FROM raw_events"), 12);
    assert_eq!(count(&db, "SELECT count(*) FROM raw_events"), 30);
}

#[test]
fn every_write_is_in_its_role() {
    let events = events("a", 0, 2);
    let dirty = tally_storage::Dirty {
        project: "a".into(),
        period: tally_core::rollup::Period::Day,
        start: T0,
        generation: 1,
    };
    let writes = [
        Write::InsertEvents(&events),
        Write::InsertSessionEvents(&events),
        Write::KeepErrorMessages(&events),
        Write::EnsureProject {
            slug: "a",
            now_ms: T0,
        },
        Write::ClearDirty(&dirty),
        Write::MarkDirty {
            project: "a",
            period: tally_core::rollup::Period::Day,
            start: T0,
        },
        Write::RollFailed {
            mark: &dirty,
            error: "e",
            now_ms: T0,
        },
        Write::PurgeRaw {
            project: "a",
            before_ms: T0,
            limit: 1,
        },
        Write::PurgeAlerts {
            project: "a",
            before_ms: T0,
            limit: 1,
        },
        Write::PurgeJobRuns {
            before_ms: T0,
            orphans_before_ms: T0,
            limit: 1,
        },
        Write::DeadLetter {
            message_id: "m",
            queue: "q",
            body: "{}",
            sent_at_ms: T0,
            now_ms: T0,
        },
        Write::PutMeta {
            key: "k",
            value: "v".into(),
            now_ms: T0,
        },
        Write::Alert(tally_storage::alerts::AlertWrite::PurgeMinutes {
            project: "a",
            before_ms: T0,
            limit: 10,
        }),
    ];
    for write in &writes {
        let statements = write.statements();
        assert!(!statements.is_empty(), "{write:?}");
        for statement in statements {
            let role = tally_storage::shard::role(statement.sql).unwrap();
            let same = match (write.role(), role) {
                (Role::Data(_), Role::Data(_)) => true,
                (a, b) => a == b,
            };
            assert!(same, "{write:?}: a statement is {role:?}");
        }
    }
}

/// An executor that counts the placement reads (`sql::PROJECT_SHARDS`) passing through
/// it to a SQLite database.
struct PlacementReads<'a> {
    inner: &'a SqliteStore,
    reads: Cell<u32>,
}

impl<'a> PlacementReads<'a> {
    fn new(inner: &'a SqliteStore) -> Self {
        Self {
            inner,
            reads: Cell::new(0),
        }
    }
}

impl Executor for PlacementReads<'_> {
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, tally_storage::Error> {
        if sql == tally_core::sql::PROJECT_SHARDS {
            self.reads.set(self.reads.get() + 1);
        }
        self.inner.query(sql, values).await
    }

    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, tally_storage::Error> {
        self.inner.batch(groups).await
    }
}

/// Twelve projects, every other one on shard 1, each with an alert rule and a daily
/// digest, in a control database beside two shards.
fn twelve_projects_with_rules_and_digests() -> (SqliteStore, Vec<SqliteStore>, Vec<String>) {
    let control = SqliteStore::open_in_memory().unwrap();
    let shards = vec![
        SqliteStore::open_in_memory().unwrap(),
        SqliteStore::open_in_memory().unwrap(),
    ];
    let slugs: Vec<String> = (0..12).map(|i| format!("p{i:02}")).collect();
    for (i, slug) in slugs.iter().enumerate() {
        let shard = u32::try_from(i % 2).unwrap();
        assert!(block_on(control.create_project_on(&project(slug), shard)).unwrap());
        let fresh = Fresh {
            id: [u8::try_from(i).unwrap(); alerts::ID_BYTES],
            secret: [7; alerts::SECRET_BYTES],
        };
        let rule = alerts::parse_input(
            json!({"name": "errors", "comparator": ">", "threshold": 0.5,
                   "metric": {"type": "error_rate"}, "window_minutes": 15,
                   "min_volume": 1, "cooldown_minutes": 60})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
        .create(slug, &fresh, T0 - HOUR_MS)
        .unwrap();
        block_on(control.commit(&[Write::Alert(AlertWrite::InsertRule {
            rule: &rule,
            max_rules: 100,
        })]))
        .unwrap();
        let input = digest::parse_input(
            json!({"period": "daily", "hour_utc": 9, "webhook_url": "http://127.0.0.1:9/hook"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let (made, _) = input.apply(
            slug,
            None,
            format!("whsec_{}", "ab".repeat(24)),
            T0 - 3 * DAY_MS,
        );
        block_on(digests::put(&control, &made)).unwrap();
    }
    (control, shards, slugs)
}

#[test]
fn alert_evaluation_and_digests_read_every_placement_once_per_run() {
    let (control, shards, slugs) = twelve_projects_with_rules_and_digests();
    let router = Router {
        control: PlacementReads::new(&control),
        shards: shards.iter().map(PlacementReads::new).collect(),
        placements: Rc::new(Placements::new()),
        now_ms: T0,
    };
    let evaluation = block_on(tally_storage::alerts::evaluate(&router, T0)).unwrap();
    assert_eq!(evaluation.evaluated, slugs.len(), "{evaluation:?}");
    assert_eq!(
        router.control.reads.take(),
        1,
        "one placement read for a run over {} projects",
        slugs.len()
    );

    // The next run, as the next minute's cron would, in a new isolate.
    let router = Router {
        placements: Rc::new(Placements::new()),
        now_ms: T0 + MINUTE_MS,
        ..router
    };
    let composed = block_on(digests::compose_due(
        &router,
        T0 + MINUTE_MS,
        digests::DIGEST_QUERY_BUDGET,
    ))
    .unwrap();
    assert!(composed.recorded > 1, "{composed:?}");
    assert_eq!(
        composed.recorded + composed.deferred,
        slugs.len(),
        "{composed:?}"
    );
    assert_eq!(router.control.reads.take(), 1);
    // Placements already known are not read again.
    let again = block_on(router.expect_projects(&["p00", "p01"])).unwrap();
    assert_eq!((again, router.control.reads.take()), (0, 0));
}

#[test]
fn a_new_project_goes_to_the_shard_storing_the_fewest_bytes() {
    let (control, shards, placements) = two_shards();
    // Shard 1 holds more projects but fewer bytes: bytes decide.
    for slug in ["c", "d"] {
        assert!(block_on(control.create_project_on(&project(slug), 1)).unwrap());
    }
    let store = |batch: &[Message]| {
        let consumed = consume(&control, &shards, &placements, batch);
        assert!(consumed.outcomes.iter().all(Result::is_ok));
    };
    store(&[message(events("a", 0, 3_000))]);
    let loads = block_on(shard::loads(&control, &shards)).unwrap();
    let bytes: Vec<u64> = loads.iter().map(|l| l.bytes.unwrap()).collect();
    assert!(bytes[0] > bytes[1], "{loads:?}");
    assert_eq!(loads.iter().map(|l| l.projects).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(shard::emptiest(&loads), 1, "{loads:?}");

    // Shard 1 grows past shard 0: the next project goes to shard 0.
    store(&[message(events("b", 10_000, 6_000))]);
    let loads = block_on(shard::loads(&control, &shards)).unwrap();
    assert!(loads[1].bytes > loads[0].bytes, "{loads:?}");
    assert_eq!(shard::emptiest(&loads), 0);

    // What each shard holds, counted up to the limit.
    let rows = block_on(shard::stored_rows(&shards[1])).unwrap();
    assert_eq!(rows.raw_events, 6_000);
    assert!(rows.rollups > 0 && rows.session_marks == 0, "{rows:?}");

    // A router is no one database: it has no size to weigh.
    let router = Router {
        control: &control,
        shards: shards.iter().collect(),
        placements,
        now_ms: T0,
    };
    assert_eq!(block_on(router.stored_bytes()).unwrap(), None);
}
