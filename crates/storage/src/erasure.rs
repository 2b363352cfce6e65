//! Erasing one person's data (GDPR Art. 17): a request is recorded at once, and the
//! aggregator's hourly cron deletes that user's raw events, session marks and dead
//! letters in bounded steps, resuming where the last run stopped.
//!
//! Raw events have no index by user (one more row per event would be written for every
//! event to serve a rare request), but every event of a user is in one bucket of the
//! filters' sample index (`raw_events_by_sample`: the last byte of the user's hash),
//! which holds about 1/256 of the project's events. So the erasure walks that bucket in
//! `(timestamp, event id)` order, in windows of [`EraseBudget::window`] events: each step
//! reads at most that many rows and commits its deletions together with the request's
//! new cursor, so a step that is cut off is simply taken again and the counts stay exact.
//!
//! What is erased is what was stored before the request; rollups keep only counts,
//! sums, quantile sketches and HyperLogLog registers, from which no one can be picked
//! out, so they stay (README: "Erasing a person's data").

use serde::{Deserialize, Serialize};
use tally_core::sql;

use crate::Error;
use crate::exec::{Bound, Executor, Statement};

/// What one cron run may spend on erasures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseBudget {
    /// Raw event ids one step scans at most (one D1 query stays far below 30 s).
    pub window: u32,
    /// Session marks one statement deletes at most.
    pub chunk: u32,
    /// Statements the run may execute, of D1's 1,000 queries per invocation.
    pub statements: u32,
}

/// The hourly cron's budget: 200 statements scan up to 100 windows, 2M raw events.
pub const HOURLY_ERASE: EraseBudget = EraseBudget {
    window: 20_000,
    chunk: 10_000,
    statements: 200,
};

/// Requests one cron run looks at; more wait for the next run.
const REQUESTS_PER_RUN: u32 = 20;

/// An erasure request as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub id: String,
    pub project: String,
    /// The identifier hash of the user, as ingest computes it.
    pub user: String,
    pub requested_at: i64,
    pub raw_deleted: u64,
    pub marks_deleted: u64,
    /// When nothing of the person was left; `None` while the erasure runs.
    pub done_at: Option<i64>,
}

/// What one run erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Erased {
    /// Requests finished in this run.
    pub finished: u32,
    /// Requests still running after it.
    pub pending: u32,
    pub raw_deleted: u64,
    pub marks_deleted: u64,
    /// Raw events the run's windows read: the user's sample bucket, not the project.
    pub raw_scanned: u64,
    pub statements: u32,
}

#[derive(Deserialize)]
struct Pending {
    id: String,
    project: String,
    user: String,
    marks_done: i64,
    cursor: String,
}

#[derive(Deserialize)]
struct Window {
    last: Option<String>,
    n: i64,
}

/// Where an erasure's walk stands: after this `(timestamp, event id)` of the user's
/// sample bucket.
struct Cursor {
    timestamp: i64,
    event_id: String,
}

impl Cursor {
    /// Before every event.
    const START: Cursor = Cursor {
        timestamp: -(1 << 53),
        event_id: String::new(),
    };

    /// The cursor stored as hex: 16 digits of timestamp, then the event id. A request
    /// saved by a version that walked the primary key holds a bare event id; it starts
    /// its walk again, which deletes and counts only what is still there.
    fn parse(hex: &str) -> Cursor {
        match (hex.get(..16), hex.get(16..)) {
            (Some(timestamp), Some(event_id)) if hex.len() == 48 => {
                match i64::from_str_radix(timestamp, 16) {
                    Ok(timestamp) => Cursor {
                        timestamp,
                        event_id: event_id.to_owned(),
                    },
                    Err(_) => Cursor::START,
                }
            }
            _ => Cursor::START,
        }
    }
}

/// Records a request, with id `id`, to erase the user whose identifier hash is
/// `user_hash` from `project`, on the project's shard (whose directory of projects names
/// it from its creation). Returns whether the project exists there.
///
/// # Errors
///
/// The store's error; [`Error::Conflict`] when the id is taken.
pub async fn request<S: Executor>(
    store: &S,
    project: &str,
    id: &str,
    user_hash: &str,
    now_ms: i64,
) -> Result<bool, Error> {
    let changed = store
        .batch(vec![vec![Statement::new(
            sql::INSERT_ERASURE,
            vec![id.into(), project.into(), user_hash.into(), now_ms.into()],
        )]])
        .await?;
    Ok(changed.iter().sum::<u64>() > 0)
}

/// The request `id` of `project`, if there is one.
///
/// # Errors
///
/// The store's error.
pub async fn get<S: Executor>(
    store: &S,
    project: &str,
    id: &str,
) -> Result<Option<Erasure>, Error> {
    let rows = store
        .query::<Erasure>(sql::ERASURE, vec![project.into(), id.into()])
        .await?;
    Ok(rows.into_iter().next())
}

/// Works through pending erasure requests, oldest first, within `budget`: for each,
/// first its session marks, then its raw events a window at a time, then its dead letters
/// (in the control database) before it is marked done.
/// Every step commits its deletions with the request's counts and cursor in one
/// transaction, so an interrupted run loses nothing and counts nothing twice.
///
/// # Errors
///
/// The store's error; steps already committed stay committed and are not repeated.
pub async fn run<S: Executor>(
    store: &S,
    now_ms: i64,
    budget: EraseBudget,
) -> Result<Erased, Error> {
    // The most statements one step takes: a window query and a batch of two.
    const STEP: u32 = 3;
    let mut erased = Erased::default();
    let pending = store
        .query::<Pending>(sql::PENDING_ERASURES, vec![REQUESTS_PER_RUN.into()])
        .await?;
    erased.statements += 1;
    erased.pending = u32::try_from(pending.len()).unwrap_or(u32::MAX);
    'requests: for request in pending {
        let id: Bound = request.id.as_str().into();
        let project: Bound = request.project.as_str().into();
        let user: Bound = request.user.as_str().into();
        let mut marks_done = request.marks_done != 0;
        let mut cursor = Cursor::parse(&request.cursor);
        while erased.statements + STEP <= budget.statements {
            if !marks_done {
                let changed = store
                    .batch(vec![
                        vec![Statement::new(
                            sql::ERASURE_MARKS_STEP,
                            vec![
                                id.clone(),
                                project.clone(),
                                user.clone(),
                                budget.chunk.into(),
                            ],
                        )],
                        vec![Statement::new(
                            sql::ERASE_SESSION_MARKS,
                            vec![project.clone(), user.clone(), budget.chunk.into()],
                        )],
                    ])
                    .await?;
                erased.statements += 2;
                let marks = changed.get(1).copied().unwrap_or(0);
                erased.marks_deleted += marks;
                marks_done = marks < u64::from(budget.chunk);
                continue;
            }
            let walk = |cursor: &Cursor| -> Vec<Bound> {
                vec![
                    project.clone(),
                    user.clone(),
                    cursor.timestamp.into(),
                    cursor.event_id.as_str().into(),
                ]
            };
            let mut values = walk(&cursor);
            values.push(budget.window.into());
            let window = store
                .query::<Window>(sql::ERASURE_WINDOW, values)
                .await?
                .into_iter()
                .next();
            erased.statements += 1;
            erased.raw_scanned += window.as_ref().map_or(0, |w| w.n.unsigned_abs());
            let Some(last) = window.filter(|w| w.n > 0).and_then(|w| w.last) else {
                // The person's dead letters, in the control database, before the request
                // (on the project's shard) is marked done: deleting them again is
                // harmless, so a failure between the two is repaired by the next run.
                store
                    .batch(vec![vec![Statement::new(
                        sql::ERASE_DEAD_LETTERS,
                        vec![project.clone(), user.clone()],
                    )]])
                    .await?;
                store
                    .batch(vec![vec![Statement::new(
                        sql::ERASURE_DONE,
                        vec![id.clone(), now_ms.into()],
                    )]])
                    .await?;
                erased.statements += 2;
                erased.finished += 1;
                erased.pending -= 1;
                continue 'requests;
            };
            let next = Cursor::parse(&last);
            let mut window = walk(&cursor);
            window.extend([next.timestamp.into(), next.event_id.as_str().into()]);
            let mut step = window.clone();
            step.extend([id.clone(), last.as_str().into()]);
            let changed = store
                .batch(vec![
                    vec![Statement::new(sql::ERASURE_RAW_STEP, step)],
                    vec![Statement::new(sql::ERASE_RAW_WINDOW, window)],
                ])
                .await?;
            erased.statements += 2;
            erased.raw_deleted += changed.get(1).copied().unwrap_or(0);
            cursor = next;
        }
        break;
    }
    Ok(erased)
}
