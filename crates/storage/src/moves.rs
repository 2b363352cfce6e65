//! Moving a project from one data shard to another (issue 16, phase 2), while reads
//! stay right at every moment and no accepted event is lost or counted twice.
//!
//! # Brief overview
//!
//! A move is a row of `project_moves` in the control database, stepped on the
//! aggregator's jobs queue ([`step`], within [`JOB_MOVES`] a step, sent again as soon as
//! the move has work: [`Stopped::work_in_ms`]), through these [`Phase`]s:
//!
//! - `starting` ([`start`], the admin API): the project's events are committed on both
//!   shards from now on (`projects.also_shard`, which the consumer reads through
//!   [`crate::shard::Placements`]). Isolates keep a placement for
//!   [`PLACEMENT_TTL_MS`](crate::shard::PLACEMENT_TTL_MS), so the copy begins only that long after: by then every event
//!   committed on the old shard alone is there to be copied.
//! - `copying`: in pages, each resuming from the cursor stored with the move. Rollup
//!   and session-day rows of periods before the move's *cut* are copied as rows (their
//!   raw events may be past retention); every raw event is read in time order (so a
//!   page's replay touches the rollup rows of a few hours, not a row per event and
//!   dimension) and either copied as a row (before the cut) or replayed on the new shard through
//!   [`pipeline::store_events`], which derives hours, minutes, session marks, error
//!   messages and dirty periods as the consumer does, and skips what double writes
//!   stored already. Error messages, dropped-event records and erasure requests are
//!   copied as rows; the days and months left dirty before the cut are marked dirty on
//!   the new shard, whose own cron rolls them.
//! - `verifying`: raw events and rollup rows (per period and dimension: rows and events
//!   counted) equal on both shards. A mismatch (a write between the two reads) is
//!   tried again next run; [`MAX_MISMATCHES`] in a row fail the move.
//! - `switched`: the project is placed on the new shard, its events still written on
//!   both (stale isolates read and write the old shard, which stays complete).
//! - `draining`, [`PLACEMENT_TTL_MS`](crate::shard::PLACEMENT_TTL_MS) later: double writes stop; every isolate reads the
//!   new shard once this phase has lasted the TTL.
//! - `deleting`: the project's rows are deleted from the old shard in chunks, then
//!   `done`.
//! - `failed`: the placement is as before the move, double writes stop, and after the
//!   TTL the copy is deleted from the new shard in chunks (`finished_at` once it is).
//!
//! The cut is the day after the one the project's retention reached when the move
//! started: periods before it get no new events but late ones (which double writes
//! apply to both shards), and raw events from it on are all stored. A moving project is
//! left out of retention purges (`sql::PROJECTS`), so none of the raw events to replay
//! expires during the move.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tally_core::Event;
use tally_core::alerts::MinuteSources;
use tally_core::rollup::Period;
use tally_core::sql;
use tally_core::time::{DAY_MS, Interval};

use crate::exec::{Counted, Executor, Statement};
use crate::shard::OnShard;
use crate::{AdminStore, Error, EventStore, MAX_INSERT_JSON_BYTES, event_chunks, pipeline};

/// The phases of a move, in order (or `Failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Starting,
    Copying,
    Verifying,
    Switched,
    Draining,
    Deleting,
    Done,
    Failed,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Copying => "copying",
            Self::Verifying => "verifying",
            Self::Switched => "switched",
            Self::Draining => "draining",
            Self::Deleting => "deleting",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// What a move has done so far, for people following it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    /// Rollup rows copied as rows (periods before the cut).
    pub rollup_rows: u64,
    /// Session days copied as rows.
    pub session_days: u64,
    /// Raw events read from the old shard.
    pub raw_events: u64,
    /// Of them, those before the cut, copied as rows.
    pub raw_copied: u64,
    /// Of them, those from the cut on, replayed; `replayed_new` were not yet on the new
    /// shard (the rest double writes had stored).
    pub replayed: u64,
    pub replayed_new: u64,
    /// Error messages, dropped-event records and erasure requests copied.
    pub other_rows: u64,
    /// Rows deleted from the shard left (or, for a failed move, from the copy).
    pub deleted: u64,
    /// Cron runs that worked on the move.
    pub runs: u64,
    /// D1 queries those runs spent on it.
    pub queries: u64,
}

/// A move, as stored in `project_moves`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub id: i64,
    pub project: String,
    pub from_shard: u32,
    pub to_shard: u32,
    pub phase: Phase,
    pub started_at: i64,
    /// When the phase began: the TTL waits count from it.
    pub phase_at: i64,
    /// Periods before it are copied as rows, raw events before it as rows only.
    pub cut: i64,
    /// The table the copy (or deletion) is at, and where in it the next run resumes.
    pub stage: String,
    pub cursor: String,
    pub progress: Progress,
    /// Verifications in a row that found the shards apart.
    pub mismatches: u32,
    pub error: Option<String>,
    pub finished_at: Option<i64>,
}

#[derive(Deserialize)]
struct MoveRow {
    id: i64,
    project: String,
    from_shard: u32,
    to_shard: u32,
    phase: Phase,
    started_at: i64,
    phase_at: i64,
    cut: i64,
    stage: String,
    cursor: String,
    progress: String,
    mismatches: u32,
    error: Option<String>,
    finished_at: Option<i64>,
}

impl From<MoveRow> for Move {
    fn from(r: MoveRow) -> Self {
        Self {
            id: r.id,
            project: r.project,
            from_shard: r.from_shard,
            to_shard: r.to_shard,
            phase: r.phase,
            started_at: r.started_at,
            phase_at: r.phase_at,
            cut: r.cut,
            stage: r.stage,
            cursor: r.cursor,
            // Progress is for people: one that does not parse starts again from zero.
            progress: serde_json::from_str(&r.progress).unwrap_or_default(),
            mismatches: r.mismatches,
            error: r.error,
            finished_at: r.finished_at,
        }
    }
}

/// Verifications in a row that may find the shards apart before the move fails. Each
/// is a run (a minute) apart, and a mismatch needs a write to land between the reads of
/// the two shards, so ten in a row mean the copy is wrong, not late.
pub const MAX_MISMATCHES: u32 = 10;

/// What one run may spend on moves: D1 queries (D1 allows 1,000 per invocation) and
/// rows per page read or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveBudget {
    pub queries: u32,
    pub rows: u32,
}

/// The budget of one step of a move on the aggregator's jobs queue: a whole
/// invocation's D1 queries (1,000) but for the read of the moves and a margin, since a
/// job runs alone in its invocation. A page of 500 raw events, read in time order,
/// falls in an hour or a few, and its replay writes one statement per rollup row it
/// touches (the hour's dimensions and values: tens to a few hundred), plus a few reads;
/// the page's measured cost decides whether the next one fits. So a step replays some
/// 1,500 to 9,000 events, rollup rows copy 500 a query, and deletion takes 9 queries per
/// 500 rows of each table. Steps follow one another as fast as the queue delivers them
/// (the minutely cron's 300 queries a minute before the jobs queue), so a project of a
/// million raw events copies in some hundreds of steps; the move's progress says how far
/// it is.
pub const JOB_MOVES: MoveBudget = MoveBudget {
    queries: 900,
    rows: 500,
};

/// A time after every event's: the end of the range a move reads raw events in.
const END_OF_TIME: i64 = tally_core::rollup::MAX_STORED_INTEGER as i64;

/// The cut of a move started at `now_ms` of a project keeping raw events
/// `retention_days`: the start of the day after the one retention reaches, and no later
/// than yesterday's start (for retention of a day or two).
pub fn cut_of(now_ms: i64, retention_days: u32) -> i64 {
    let reached = Interval::Day.floor(now_ms - i64::from(retention_days) * DAY_MS) + DAY_MS;
    reached.min(Interval::Day.floor(now_ms) - DAY_MS)
}

/// What [`start`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    Started(Move),
    UnknownProject,
    /// The shard is not bound (`bound` shards are).
    UnknownShard {
        bound: u32,
    },
    AlreadyThere,
    /// A move of the project is running.
    Running(Move),
}

/// Starts moving `project` to shard `to` (of `bound` shards) at `now_ms`: records the
/// move and turns double writes on, in one transaction of the control database.
///
/// # Errors
///
/// The control database's error.
pub async fn start<E: Executor>(
    control: &E,
    bound: u32,
    project: &str,
    to: u32,
    now_ms: i64,
) -> Result<Started, Error> {
    if to >= bound {
        return Ok(Started::UnknownShard { bound });
    }
    let Some(settings) = control.project(project).await? else {
        return Ok(Started::UnknownProject);
    };
    if let Some(running) = latest(control, project).await?
        && running.finished_at.is_none()
    {
        return Ok(Started::Running(running));
    }
    let placed = control.project_shards(&[project]).await?;
    let from = placed.get(project).map_or(0, |p| p.shard);
    if from == to {
        return Ok(Started::AlreadyThere);
    }
    let cut = cut_of(now_ms, settings.retention_days);
    let recorded = control
        .batch(vec![
            vec![Statement::new(
                sql::INSERT_MOVE,
                vec![
                    project.into(),
                    from.into(),
                    to.into(),
                    now_ms.into(),
                    cut.into(),
                ],
            )],
            vec![placement(project, from, Some(to))],
        ])
        .await;
    let ours = match recorded {
        Ok(_) => true,
        // Another start won the race (the index of unfinished moves): its move runs.
        Err(Error::Conflict(_)) => false,
        Err(e) => return Err(e),
    };
    match latest(control, project).await? {
        Some(m) if ours => Ok(Started::Started(m)),
        Some(m) => Ok(Started::Running(m)),
        None => Err(Error::Database(
            "a move recorded cannot be read back".into(),
        )),
    }
}

fn placement(project: &str, shard: u32, also: Option<u32>) -> Statement {
    Statement::new(
        sql::SET_PLACEMENT,
        vec![project.into(), shard.into(), also.into()],
    )
}

/// The latest move of `project`, running or not.
///
/// # Errors
///
/// The control database's error.
pub async fn latest<E: Executor>(control: &E, project: &str) -> Result<Option<Move>, Error> {
    let rows: Vec<MoveRow> = control
        .query(sql::LATEST_MOVE, vec![project.into()])
        .await?;
    Ok(rows.into_iter().next().map(Move::from))
}

/// Every move not finished, oldest first.
///
/// # Errors
///
/// The control database's error.
pub async fn running<E: Executor>(control: &E) -> Result<Vec<Move>, Error> {
    let rows: Vec<MoveRow> = control.query(sql::RUNNING_MOVES, vec![]).await?;
    Ok(rows.into_iter().map(Move::from).collect())
}

/// Steps every running move as far as `budget` allows at `now_ms` (the first move
/// first; what is left waits for the next run) and returns them as they now stand.
/// Each wait lasts `placement_ttl_ms`, the time every worker keeps a placement
/// ([`PLACEMENT_TTL_MS`](crate::shard::PLACEMENT_TTL_MS) unless they all set another).
/// Each step is stored before the next begins, so a run that stops anywhere loses
/// nothing: the next resumes from the stored cursor, and every page is idempotent.
///
/// # Errors
///
/// The control database's error when the moves cannot be read; a move whose step fails
/// keeps its phase and cursor and records the error, and is tried again next run.
pub async fn advance<E: Executor>(
    control: &E,
    shards: &[E],
    now_ms: i64,
    budget: MoveBudget,
    placement_ttl_ms: i64,
) -> Result<Vec<Move>, Error> {
    let control = Counted::new(control);
    let moves = running(&control).await?;
    let mut spent = control.take_queries();
    let mut out = Vec::new();
    for m in moves {
        let (mv, _, used) =
            step_within(&control, shards, m, now_ms, budget, spent, placement_ttl_ms).await;
        spent = used;
        out.push(mv);
    }
    Ok(out)
}

/// Why a step of a move stopped, which says when the move has work again: what the
/// aggregator's jobs queue uses to step a move continuously rather than once a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The budget is spent and the move has work now.
    Budget,
    /// The move waits for isolates to forget a placement, until `until_ms`.
    Waiting { until_ms: i64 },
    /// A verification found the shards apart: the next is tried a trigger (a minute)
    /// later, as [`MAX_MISMATCHES`] assumes, not at once.
    Mismatch,
    /// Another run stepped the move meanwhile; that run goes on with it.
    Overtaken,
    /// Nothing to do: done, failed with its copy deleted, or its shards are not bound.
    Idle,
    /// The step failed; the error is on the move and the next trigger tries again.
    Failed,
}

impl Stopped {
    /// In how many milliseconds from `now_ms` the move has work for another step, if it
    /// has any before the next trigger would step it anyway.
    pub fn work_in_ms(self, now_ms: i64) -> Option<i64> {
        match self {
            Stopped::Budget => Some(0),
            Stopped::Waiting { until_ms } => Some((until_ms - now_ms).max(0)),
            Stopped::Mismatch | Stopped::Overtaken | Stopped::Idle | Stopped::Failed => None,
        }
    }
}

/// Steps the running move `id` as far as `budget` allows at `now_ms`, as [`advance`]
/// steps each: the move as it now stands and why the step stopped, or `None` when no
/// such move is running. Safe to run twice at once: each step is stored only if the
/// move is still where the step read it, so of two runs one goes on and the other
/// stops ([`Stopped::Overtaken`]) having rewritten at most a page the other wrote too
/// (every page is idempotent).
///
/// # Errors
///
/// The control database's error when the moves cannot be read; a failed step is
/// recorded on the move and reported as [`Stopped::Failed`].
pub async fn step<E: Executor>(
    control: &E,
    shards: &[E],
    id: i64,
    now_ms: i64,
    budget: MoveBudget,
    placement_ttl_ms: i64,
) -> Result<Option<(Move, Stopped)>, Error> {
    let control = Counted::new(control);
    let Some(m) = running(&control).await?.into_iter().find(|m| m.id == id) else {
        return Ok(None);
    };
    let spent = control.take_queries();
    let (mv, stopped, _) =
        step_within(&control, shards, m, now_ms, budget, spent, placement_ttl_ms).await;
    Ok(Some((mv, stopped)))
}

/// Steps `m` with `spent` of `budget` spent already; returns it as it now stands, why
/// it stopped and the queries spent in all.
async fn step_within<E: Executor>(
    control: &Counted<'_, E>,
    shards: &[E],
    m: Move,
    now_ms: i64,
    budget: MoveBudget,
    spent: u32,
    placement_ttl_ms: i64,
) -> (Move, Stopped, u32) {
    let (Some(from), Some(to)) = (
        shards.get(m.from_shard as usize),
        shards.get(m.to_shard as usize),
    ) else {
        return (m, Stopped::Idle, spent);
    };
    let mut stepper = Stepper {
        control,
        from: Counted::new(from),
        to: Counted::new(to),
        budget,
        spent,
        committed: spent,
        now_ms,
        ttl_ms: placement_ttl_ms,
        mv: m,
    };
    stepper.mv.progress.runs += 1;
    let result = stepper.run().await;
    let spent = stepper.spent + stepper.taken();
    let mut mv = stepper.mv;
    let stopped = match result {
        Ok(stopped) => stopped,
        Err(e) => {
            // The phase and cursor stay; the error says why the move stands still.
            mv.error = Some(e.to_string());
            let _ = store(control, &mv, &mv.clone()).await;
            Stopped::Failed
        }
    };
    (mv, stopped, spent)
}

/// Stores `next` in place of `read`, if the move is still where `read` was.
async fn store<E: Executor>(control: &E, read: &Move, next: &Move) -> Result<bool, Error> {
    let progress = serde_json::to_string(&next.progress).expect("progress serializes");
    let changed = control
        .batch(vec![vec![update(read, next, progress)]])
        .await?;
    Ok(changed.first().copied().unwrap_or(0) == 1)
}

fn update(read: &Move, next: &Move, progress: String) -> Statement {
    Statement::new(
        sql::UPDATE_MOVE,
        vec![
            next.id.into(),
            next.phase.name().into(),
            next.phase_at.into(),
            next.stage.as_str().into(),
            next.cursor.as_str().into(),
            progress.into(),
            next.mismatches.into(),
            next.error.as_deref().into(),
            next.finished_at.into(),
            read.phase.name().into(),
            read.stage.as_str().into(),
            read.cursor.as_str().into(),
        ],
    )
}

/// The copy's stages, in order.
const STAGES: [&str; 7] = [
    "rollups",
    "session_days",
    "error_messages",
    "dropped",
    "events",
    "erasures",
    "dirty",
];

/// Statements one deletion chunk runs, one per table.
const DELETE_STATEMENTS: [&str; 9] = [
    sql::MOVE_DELETE_RAW_EVENTS,
    sql::MOVE_DELETE_ROLLUPS,
    sql::MOVE_DELETE_SESSION_EVENTS,
    sql::MOVE_DELETE_SESSION_DAYS,
    sql::MOVE_DELETE_DIRTY_SESSION_DAYS,
    sql::MOVE_DELETE_DIRTY_PERIODS,
    sql::MOVE_DELETE_ERROR_MESSAGES,
    sql::MOVE_DELETE_DROPPED,
    sql::MOVE_DELETE_ERASURES,
];

/// One move being stepped within a run's budget.
struct Stepper<'a, E> {
    control: &'a Counted<'a, E>,
    from: Counted<'a, E>,
    to: Counted<'a, E>,
    budget: MoveBudget,
    /// Queries spent by this run up to the last [`Stepper::taken`].
    spent: u32,
    /// `spent` when the move was last stored (its progress counts the queries since).
    committed: u32,
    now_ms: i64,
    /// How long isolates keep a placement ([`PLACEMENT_TTL_MS`](crate::shard::PLACEMENT_TTL_MS) unless the workers
    /// set another): each wait of a move lasts that long.
    ttl_ms: i64,
    mv: Move,
}

impl<E: Executor> Stepper<'_, E> {
    /// The queries counted on the three databases since the last call.
    fn taken(&self) -> u32 {
        self.control.take_queries() + self.from.take_queries() + self.to.take_queries()
    }

    /// Stores `next` (the phase and what goes with it) with `extra` statements of the
    /// control database, in one transaction; false when another run stepped the move.
    async fn commit(&mut self, next: Move, extra: Vec<Statement>) -> Result<bool, Error> {
        let mut next = next;
        self.spent += self.taken();
        // This commit's own statements are counted with the next one.
        next.progress.queries += u64::from(self.spent - self.committed);
        self.committed = self.spent;
        let progress = serde_json::to_string(&next.progress).expect("progress serializes");
        let mut groups = vec![vec![update(&self.mv, &next, progress)]];
        groups.extend(extra.into_iter().map(|s| vec![s]));
        let changed = self.control.batch(groups).await?;
        let stored = changed.first().copied().unwrap_or(0) == 1;
        if stored {
            self.mv = next;
        }
        Ok(stored)
    }

    fn ttl_over(&self) -> bool {
        self.now_ms - self.mv.phase_at >= self.ttl_ms
    }

    /// The move waits the placement TTL from its phase's start.
    fn waiting(&self) -> Stopped {
        Stopped::Waiting {
            until_ms: self.mv.phase_at + self.ttl_ms,
        }
    }

    /// A failed move waits the TTL before deleting its copy, then has nothing to do.
    fn waiting_or_idle(&self) -> Stopped {
        if self.mv.finished_at.is_some() {
            Stopped::Idle
        } else {
            self.waiting()
        }
    }

    fn with_phase(&self, phase: Phase) -> Move {
        Move {
            phase,
            phase_at: self.now_ms,
            stage: String::new(),
            cursor: String::new(),
            error: None,
            ..self.mv.clone()
        }
    }

    /// The budget left, in queries.
    fn left(&mut self) -> u32 {
        self.spent += self.taken();
        self.budget.queries.saturating_sub(self.spent)
    }

    async fn run(&mut self) -> Result<Stopped, Error> {
        // A step's cost is measured, not predicted: the next runs only if as much is
        // left as the last one cost.
        let mut last_cost = 1;
        loop {
            let before = self.budget.queries - self.left();
            if self.left() < last_cost {
                return Ok(Stopped::Budget);
            }
            let advanced = match self.mv.phase {
                Phase::Starting => {
                    if !self.ttl_over() {
                        return Ok(self.waiting());
                    }
                    self.to
                        .batch(vec![vec![Statement::new(
                            sql::ENSURE_PROJECT,
                            vec![self.mv.project.as_str().into(), self.now_ms.into()],
                        )]])
                        .await?;
                    let mut next = self.with_phase(Phase::Copying);
                    next.stage = STAGES[0].to_owned();
                    self.commit(next, vec![]).await?
                }
                Phase::Copying => self.copy_page().await?,
                Phase::Verifying => {
                    // One verification a run: a mismatch is a write between the reads,
                    // which the next run (a minute later) should not meet again.
                    let stored = self.verify().await?;
                    if self.mv.phase == Phase::Verifying {
                        return Ok(Stopped::Mismatch);
                    }
                    stored
                }
                Phase::Switched => {
                    if !self.ttl_over() {
                        return Ok(self.waiting());
                    }
                    let next = self.with_phase(Phase::Draining);
                    let stop = placement(&self.mv.project, self.mv.to_shard, None);
                    self.commit(next, vec![stop]).await?
                }
                Phase::Draining => {
                    if !self.ttl_over() {
                        return Ok(self.waiting());
                    }
                    let next = self.with_phase(Phase::Deleting);
                    self.commit(next, vec![]).await?
                }
                Phase::Deleting => {
                    let done = self.delete_chunk(true).await?;
                    if done {
                        let mut next = self.with_phase(Phase::Done);
                        next.finished_at = Some(self.now_ms);
                        next.progress = self.mv.progress.clone();
                        self.commit(next, vec![]).await?
                    } else {
                        let mut next = self.mv.clone();
                        next.error = None;
                        self.commit(next, vec![]).await?
                    }
                }
                Phase::Failed => {
                    if self.mv.finished_at.is_some() || !self.ttl_over() {
                        return Ok(self.waiting_or_idle());
                    }
                    let done = self.delete_chunk(false).await?;
                    let mut next = self.mv.clone();
                    if done {
                        next.finished_at = Some(self.now_ms);
                    }
                    self.commit(next, vec![]).await?
                }
                Phase::Done => return Ok(Stopped::Idle),
            };
            if !advanced {
                // Another run stepped it meanwhile: leave it to that one.
                return Ok(Stopped::Overtaken);
            }
            last_cost = (self.budget.queries - self.left())
                .saturating_sub(before)
                .max(1);
        }
    }

    /// Deletes a chunk of the project's rows from the old shard (`from_old`) or, for a
    /// failed move, from the copy; true once nothing is left.
    async fn delete_chunk(&mut self, from_old: bool) -> Result<bool, Error> {
        let limit = self.budget.rows;
        let project = self.mv.project.clone();
        let groups: Vec<Vec<Statement>> = DELETE_STATEMENTS
            .iter()
            .map(|sql| {
                vec![Statement::new(
                    sql,
                    vec![project.as_str().into(), limit.into()],
                )]
            })
            .collect();
        let changed = if from_old {
            self.from.batch(groups).await?
        } else {
            self.to.batch(groups).await?
        };
        self.mv.progress.deleted += changed.iter().sum::<u64>();
        Ok(changed.iter().all(|&n| n < u64::from(limit)))
    }

    /// Copies one page of the current stage, or moves to the next stage (or to
    /// verifying).
    async fn copy_page(&mut self) -> Result<bool, Error> {
        let stage = self.mv.stage.clone();
        let project = self.mv.project.clone();
        let project = project.as_str();
        let cursor = self.mv.cursor.clone();
        let rows = self.budget.rows;
        let mut next = self.mv.clone();
        // A page that goes through clears the error a failed one left.
        next.error = None;
        let done_with_stage = match stage.as_str() {
            "rollups" => {
                let after: (String, i64, String, String) = if cursor.is_empty() {
                    (String::new(), -1, String::new(), String::new())
                } else {
                    serde_json::from_str(&cursor).map_err(|e| Error::Decode(e.to_string()))?
                };
                let page: Vec<RollupCopy> = self
                    .from
                    .query(
                        sql::MOVE_ROLLUPS_PAGE,
                        vec![
                            project.into(),
                            self.mv.cut.into(),
                            Interval::Month.floor(self.mv.cut).into(),
                            after.0.into(),
                            after.1.into(),
                            after.2.into(),
                            after.3.into(),
                            rows.into(),
                        ],
                    )
                    .await?;
                self.put_json(sql::MOVE_PUT_ROLLUPS, project, &page).await?;
                next.progress.rollup_rows += page.len() as u64;
                if let Some(last) = page.last() {
                    next.cursor = json(&(&last.period, last.start, &last.dimension, &last.value));
                }
                page.len() < rows as usize
            }
            "session_days" => {
                let after: i64 = cursor.parse().unwrap_or(-1);
                let page: Vec<SessionDayCopy> = self
                    .from
                    .query(
                        sql::MOVE_SESSION_DAYS_PAGE,
                        vec![
                            project.into(),
                            self.mv.cut.into(),
                            after.into(),
                            rows.into(),
                        ],
                    )
                    .await?;
                self.put_json(sql::MOVE_PUT_SESSION_DAYS, project, &page)
                    .await?;
                next.progress.session_days += page.len() as u64;
                if let Some(last) = page.last() {
                    next.cursor = last.day.to_string();
                }
                page.len() < rows as usize
            }
            "error_messages" => {
                let page: Vec<ErrorMessageCopy> = self
                    .from
                    .query(
                        sql::MOVE_ERROR_MESSAGES_PAGE,
                        vec![project.into(), cursor.as_str().into(), rows.into()],
                    )
                    .await?;
                self.put_json(sql::MOVE_PUT_ERROR_MESSAGES, project, &page)
                    .await?;
                next.progress.other_rows += page.len() as u64;
                if let Some(last) = page.last() {
                    next.cursor.clone_from(&last.error_class);
                }
                page.len() < rows as usize
            }
            "dropped" => {
                let page: Vec<DroppedCopy> = self
                    .from
                    .query(
                        sql::MOVE_DROPPED_PAGE,
                        vec![project.into(), cursor.as_str().into(), rows.into()],
                    )
                    .await?;
                self.put_json(sql::MOVE_PUT_DROPPED, project, &page).await?;
                next.progress.other_rows += page.len() as u64;
                if let Some(last) = page.last() {
                    next.cursor.clone_from(&last.event_id);
                }
                page.len() < rows as usize
            }
            "events" => {
                // In time order, through the time index: a page's events fall in few
                // hours, so its replay writes few rollup rows (in key order, random in
                // time, a page would touch a row per event and dimension).
                let after = match cursor.split_once(':') {
                    Some((ts, id)) => (
                        ts.parse::<i64>()
                            .map_err(|e| Error::Decode(format!("a move's cursor: {e}")))?,
                        id,
                    ),
                    None => crate::BEFORE_ALL,
                };
                let events = self
                    .from
                    .events_between(project, 0, END_OF_TIME, Some(after), rows)
                    .await?;
                let full = events.len() >= rows as usize;
                if let Some(last) = events.last() {
                    next.cursor = format!("{}:{}", last.timestamp, last.event_id);
                }
                let (old, recent): (Vec<Event>, Vec<Event>) =
                    events.into_iter().partition(|e| e.timestamp < self.mv.cut);
                if !old.is_empty() {
                    let chunks = event_chunks(&old);
                    let mut groups: Vec<Vec<Statement>> = chunks
                        .iter()
                        .map(|c| {
                            vec![Statement::new(
                                sql::MOVE_INSERT_RAW_EVENTS,
                                vec![c.as_str().into()],
                            )]
                        })
                        .collect();
                    groups.extend(chunks.into_iter().map(|c| {
                        vec![Statement::new(
                            sql::MOVE_INSERT_SESSION_EVENTS,
                            vec![c.into()],
                        )]
                    }));
                    self.to.batch(groups).await?;
                }
                if !recent.is_empty() {
                    let on_new = OnShard {
                        control: self.control,
                        data: &self.to,
                        shard: self.mv.to_shard,
                    };
                    // Every minute row of the replayed events (only those of the last
                    // day have any): a move does not read the project's rules, and a
                    // rule must find its minutes on the new shard whatever it reads.
                    let every = MinuteSources::every();
                    let stored =
                        pipeline::store_events(&on_new, &recent, self.now_ms, &every).await?;
                    next.progress.replayed_new += stored.new as u64;
                }
                next.progress.raw_events += (old.len() + recent.len()) as u64;
                next.progress.raw_copied += old.len() as u64;
                next.progress.replayed += recent.len() as u64;
                !full
            }
            "erasures" => {
                let page: Vec<ErasureCopy> = self
                    .from
                    .query(
                        sql::MOVE_ERASURES_PAGE,
                        vec![project.into(), cursor.as_str().into(), rows.into()],
                    )
                    .await?;
                self.put_json(sql::MOVE_PUT_ERASURES, project, &page)
                    .await?;
                next.progress.other_rows += page.len() as u64;
                if let Some(last) = page.last() {
                    next.cursor.clone_from(&last.id);
                }
                page.len() < rows as usize
            }
            "dirty" => {
                self.copy_dirty().await?;
                true
            }
            other => {
                return Err(Error::Database(format!(
                    "a move at an unknown stage {other:?}"
                )));
            }
        };
        if done_with_stage {
            let at = STAGES
                .iter()
                .position(|s| *s == stage)
                .unwrap_or(STAGES.len());
            match STAGES.get(at + 1) {
                Some(following) => {
                    next.stage = (*following).to_owned();
                    next.cursor = String::new();
                }
                None => {
                    let progress = next.progress.clone();
                    next = self.with_phase(Phase::Verifying);
                    next.progress = progress;
                }
            }
        }
        self.commit(next, vec![]).await
    }

    /// Writes `rows` as JSON arrays of at most [`MAX_INSERT_JSON_BYTES`] through `sql`
    /// (`?1` the project, `?2` the array) on the new shard, in one transaction.
    async fn put_json<T: Serialize>(
        &self,
        sql: &'static str,
        project: &str,
        rows: &[T],
    ) -> Result<(), Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let groups = tally_core::json::chunks(rows, MAX_INSERT_JSON_BYTES, "[", "]")
            .into_iter()
            .map(|chunk| vec![Statement::new(sql, vec![project.into(), chunk.into()])])
            .collect();
        self.to.batch(groups).await.map(drop)
    }

    /// Marks dirty on the new shard what is dirty on the old one before the cut (days,
    /// months and session days copied as rows that were not rolled yet), and the month
    /// the cut falls in, whose days the two halves of the copy wrote.
    async fn copy_dirty(&self) -> Result<(), Error> {
        #[derive(Deserialize)]
        struct Start {
            start: i64,
        }
        #[derive(Deserialize)]
        struct Day {
            day: i64,
        }
        let project = self.mv.project.as_str();
        let mut groups = Vec::new();
        for period in [Period::Day, Period::Month] {
            let starts: Vec<Start> = self
                .from
                .query(
                    sql::DIRTY_STARTS,
                    vec![
                        project.into(),
                        period.name().into(),
                        0_i64.into(),
                        self.mv.cut.into(),
                    ],
                )
                .await?;
            groups.extend(starts.iter().map(|s| vec![mark(project, period, s.start)]));
        }
        groups.push(vec![mark(
            project,
            Period::Month,
            Interval::Month.floor(self.mv.cut),
        )]);
        let days: Vec<Day> = self
            .from
            .query(
                sql::DIRTY_SESSION_DAYS_OF_PROJECT,
                vec![project.into(), 0_i64.into(), self.mv.cut.into()],
            )
            .await?;
        if !days.is_empty() {
            let days: Vec<i64> = days.iter().map(|d| d.day).collect();
            groups.push(vec![Statement::new(
                sql::MOVE_MARK_SESSION_DAYS,
                vec![project.into(), json(&days).into()],
            )]);
        }
        self.to.batch(groups).await.map(drop)
    }

    /// Compares the two shards; switches placement when they agree.
    async fn verify(&mut self) -> Result<bool, Error> {
        let project = self.mv.project.clone();
        let project = project.as_str();
        let old = sums(&self.from, project, self.mv.cut).await?;
        let new = sums(&self.to, project, self.mv.cut).await?;
        if old == new {
            let mut next = self.with_phase(Phase::Switched);
            next.progress = self.mv.progress.clone();
            next.mismatches = 0;
            let switch = placement(project, self.mv.to_shard, Some(self.mv.from_shard));
            return self.commit(next, vec![switch]).await;
        }
        let mut next = self.mv.clone();
        next.mismatches += 1;
        let reason = mismatch(&old, &new);
        if next.mismatches >= MAX_MISMATCHES {
            let mut failed = self.with_phase(Phase::Failed);
            failed.progress = self.mv.progress.clone();
            failed.mismatches = next.mismatches;
            failed.error = Some(format!(
                "the shards still differ after {} verifications: {reason}",
                next.mismatches
            ));
            let back = placement(project, self.mv.from_shard, None);
            return self.commit(failed, vec![back]).await;
        }
        next.error = Some(reason);
        self.commit(next, vec![]).await
    }
}

/// A shard's raw events of `project`, and its rollup rows per period and dimension
/// (hours, days before `cut`, months before its month): how many and the events they
/// count.
async fn sums<E: Executor>(store: &E, project: &str, cut: i64) -> Result<(i64, Vec<Sum>), Error> {
    let sums: Vec<Sum> = store
        .query(
            sql::MOVE_ROLLUP_SUMS,
            vec![
                project.into(),
                cut.into(),
                Interval::Month.floor(cut).into(),
            ],
        )
        .await?;
    let raw: Vec<RawCount> = store
        .query(
            sql::COUNT_EVENTS,
            vec![project.into(), 0_i64.into(), END_OF_TIME.into()],
        )
        .await?;
    Ok((raw.first().map_or(0, |r| r.events), sums))
}

/// What differs between the two shards' sums, for the move's error.
fn mismatch(old: &(i64, Vec<Sum>), new: &(i64, Vec<Sum>)) -> String {
    if old.0 != new.0 {
        return format!(
            "{} raw events on the old shard, {} on the new",
            old.0, new.0
        );
    }
    let index = |sums: &[Sum]| -> BTreeMap<(String, String), (i64, i64)> {
        sums.iter()
            .map(|s| ((s.period.clone(), s.dimension.clone()), (s.rows, s.events)))
            .collect()
    };
    let (a, b) = (index(&old.1), index(&new.1));
    for key in a.keys().chain(b.keys()) {
        if a.get(key) != b.get(key) {
            return format!(
                "{} rows of {}: (rows, events) {:?} on the old shard, {:?} on the new",
                key.0,
                key.1,
                a.get(key),
                b.get(key)
            );
        }
    }
    "the shards differ".to_owned()
}

fn mark(project: &str, period: Period, start: i64) -> Statement {
    Statement::new(
        sql::MARK_DIRTY,
        vec![project.into(), period.name().into(), start.into()],
    )
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain values serialize")
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
struct Sum {
    period: String,
    dimension: String,
    rows: i64,
    events: i64,
}

#[derive(Deserialize)]
struct RawCount {
    events: i64,
}

#[derive(Serialize, Deserialize)]
struct RollupCopy {
    period: String,
    start: i64,
    dimension: String,
    value: String,
    count: i64,
    errors: i64,
    bytes: i64,
    duration_sum_us: i64,
    durations: String,
    users: String,
    instances: String,
    revenue: i64,
}

#[derive(Serialize, Deserialize)]
struct SessionDayCopy {
    day: i64,
    sessions: i64,
    total_ms: i64,
    hours: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ErrorMessageCopy {
    error_class: String,
    timestamp: i64,
    message: String,
}

#[derive(Serialize, Deserialize)]
struct DroppedCopy {
    event_id: String,
    timestamp: i64,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct ErasureCopy {
    id: String,
    user: String,
    requested_at: i64,
    marks_done: i64,
    cursor: String,
    raw_deleted: i64,
    marks_deleted: i64,
    done_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_is_the_day_after_retention_reaches_and_never_later_than_yesterday() {
        // 2026-03-02T10:00:00Z.
        let now = 1_772_445_600_000;
        let today = Interval::Day.floor(now);
        assert_eq!(cut_of(now, 90), today - 89 * DAY_MS);
        assert_eq!(cut_of(now, 2), today - DAY_MS);
        assert_eq!(cut_of(now, 1), today - DAY_MS);
    }
}
