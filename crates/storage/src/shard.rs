//! Projects placed on data shards (issue 16): which database each statement belongs to,
//! and the two executors that send it there.
//!
//! # Brief overview
//!
//! - The control database (`DB`) holds projects and their placement, keys, share links,
//!   dashboard sessions, alert rules, alerts and campaigns, digests, job runs and dead
//!   letters. Each data shard (`SHARD_0` … `SHARD_{N-1}`) holds the raw events, rollups,
//!   session marks and days, error messages, dirty periods, dropped-event records and
//!   erasure requests of the projects placed on it, and its own `projects` rows (only
//!   their ids: its directory). Every database gets the same migrations; tables unused
//!   in a role stay empty. Shard 0 may be the control database itself: a deployment
//!   from before shards is that, and its projects, all on shard 0, keep their data.
//! - [`role`] classifies every statement of `tally_core::sql` ([`Role`]); a test checks
//!   that every constant there is classified, and [`Write::role`] every write.
//! - [`OnShard`] is one shard with the control database: data statements go to the
//!   shard, control ones to `DB`. The consumer commits each shard's group of messages
//!   through one, and the cron jobs that work over a whole shard (rolls, session days,
//!   retention, erasures) run once per shard through one.
//! - [`Router`] is every shard with the control database: a data statement goes to the
//!   shard of the project it names ([`ProjectAt::Param`]), found through
//!   [`Placements`]. The query worker reads through one, as do alert evaluation and
//!   digests, which start from control rows and read each project's data.
//!
//! Neither executor runs a transaction over two databases: a batch whose statements
//! belong to two is refused before anything runs, so exactly-once per project holds as
//! long as a project's data statements all go to one shard.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde::de::DeserializeOwned;
use tally_core::sql;

use crate::exec::{Bound, Executor, Statement};
use crate::{AdminStore, Error, Write};

/// Which database a statement runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The control database: settings, placement, access, alerting, job runs.
    Control,
    /// The control database, about the projects of one shard (its [`Executor::shard`]):
    /// only [`OnShard`] runs it, since a [`Router`] has no one shard.
    ControlOfShard,
    /// A data shard; the project whose shard it is named as `ProjectAt` says.
    Data(ProjectAt),
    /// Whichever database it is run against (`meta`): each keeps its own progress.
    /// [`OnShard`] runs it on its shard, [`Router`] in the control database.
    Local,
}

/// Where a data statement names its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectAt {
    /// In bound parameter `?n` (1-based), as a slug.
    Param(usize),
    /// Inside a JSON parameter, possibly several projects: only [`OnShard`] runs it,
    /// once the caller has grouped its projects by shard.
    Json,
    /// Nowhere: it works over every project of one shard (cron), so only [`OnShard`]
    /// runs it.
    Shard,
}

use ProjectAt::{Json, Param, Shard};
use Role::{Control, ControlOfShard, Data, Local};

/// Every statement of `tally_core::sql` and its role. `role_of_every_statement` checks
/// that each constant of `sql.rs` is here, so a new table or statement cannot land on a
/// database by default.
pub const ROLES: &[(&str, Role)] = &[
    // Raw events and what the consumer keeps beside them.
    (sql::INSERT_EVENTS, Data(Json)),
    (sql::EXISTING_EVENTS, Data(Json)),
    (sql::ENSURE_PROJECT, Data(Param(1))),
    (sql::COUNT_EVENTS, Data(Param(1))),
    (sql::EVENTS_BETWEEN, Data(Param(1))),
    (sql::FILTERED_EVENTS, Data(Param(1))),
    (sql::SAMPLE_EVENTS, Data(Param(1))),
    (sql::FUNNEL_HITS, Data(Param(1))),
    (sql::FILTERED_FUNNEL_HITS, Data(Param(1))),
    (sql::RECENT_VISITORS, Data(Param(1))),
    (sql::USER_EVENT_COUNTS, Data(Param(1))),
    (sql::PURGE_RAW_EVENTS, Data(Param(1))),
    (sql::OLDEST_RAW_EVENTS, Data(Shard)),
    (sql::COUNT_EXPIRED_RAW_EVENTS, Data(Param(1))),
    (sql::INSERT_DROPPED, Data(Json)),
    (sql::COUNT_DROPPED, Data(Param(1))),
    (sql::PURGE_DROPPED, Data(Param(1))),
    (sql::KEEP_ERROR_MESSAGES, Data(Json)),
    (sql::ERROR_MESSAGES, Data(Param(1))),
    (sql::PURGE_ERROR_MESSAGES, Data(Param(1))),
    // Sessions.
    (sql::INSERT_SESSION_EVENTS, Data(Json)),
    (sql::MARK_SESSION_DAYS, Data(Json)),
    (sql::DIRTY_SESSION_DAYS, Data(Shard)),
    (sql::DIRTY_SESSION_DAYS_LEFT, Data(Shard)),
    (sql::DIRTY_SESSION_DAYS_OF_PROJECT, Data(Param(1))),
    (sql::SESSION_DAYS, Data(Param(1))),
    (sql::PUT_SESSION_DAY, Data(Param(1))),
    (sql::CLEAR_SESSION_DAY, Data(Param(1))),
    (sql::SESSION_MARKS_PAGE, Data(Param(1))),
    (sql::USER_SESSION_MARKS_PAGE, Data(Param(1))),
    (sql::PURGE_SESSION_EVENTS, Data(Param(1))),
    // Rollups and the periods to roll.
    (sql::ROLLUPS_BY_KEY, Data(Json)),
    (sql::STORED_VALUES, Data(Json)),
    (sql::ROLLUPS_BETWEEN, Data(Param(1))),
    (sql::ROLLUPS_OF_DIMENSION, Data(Param(1))),
    (sql::ROLLUPS_OF_DIMENSIONS, Data(Param(1))),
    (sql::ROLLUP_COUNTS_OF_DIMENSION, Data(Param(1))),
    (sql::ROLLUPS_OF_VALUE, Data(Param(1))),
    (sql::ROLLUPS_OF_VALUE_PREFIX, Data(Param(1))),
    (sql::INSERT_ROLLUP, Data(Param(1))),
    (sql::UPDATE_ROLLUP, Data(Param(1))),
    (sql::PUT_ROLLUP, Data(Param(1))),
    (sql::DELETE_STALE_ROLLUPS, Data(Param(1))),
    (sql::MINUTE_ROWS_OF_VALUE, Data(Param(1))),
    (sql::MINUTE_ROWS_OF_SOURCES, Data(Param(1))),
    (sql::PURGE_MINUTE_ROLLUPS, Data(Param(1))),
    (sql::MARK_DIRTY, Data(Param(1))),
    (sql::DIRTY_PERIODS, Data(Shard)),
    (sql::DIRTY_FAILED, Data(Param(1))),
    (sql::DIRTY_COUNTS, Data(Shard)),
    (sql::DIRTY_STARTS, Data(Param(1))),
    (sql::CLEAR_DIRTY, Data(Param(1))),
    // Erasures: the request's progress commits with the deletions it counts.
    (sql::INSERT_ERASURE, Data(Param(2))),
    (sql::ERASURE, Data(Param(1))),
    (sql::PENDING_ERASURES, Data(Shard)),
    (sql::ERASURE_WINDOW, Data(Param(1))),
    (sql::ERASE_RAW_WINDOW, Data(Param(1))),
    (sql::ERASE_SESSION_MARKS, Data(Param(1))),
    (sql::ERASURE_RAW_STEP, Data(Param(1))),
    (sql::ERASURE_MARKS_STEP, Data(Param(2))),
    (sql::ERASURE_DONE, Data(Shard)),
    (sql::ERASE_DEAD_LETTERS, Control),
    // Each database's own progress.
    (sql::PUT_META, Local),
    (sql::ALL_META, Local),
    (sql::D1_MIGRATIONS_APPLIED, Local),
    (sql::DATABASE_BYTES, Local),
    (sql::SIZE_PROBE, Local),
    (sql::STORED_ROWS, Local),
    // Projects, placement and access.
    (sql::PROJECTS, ControlOfShard),
    (sql::PROJECT_SHARDS, Control),
    (sql::PROJECTS_PER_SHARD, Control),
    (sql::FIRST_PROJECTS_OF_SHARDS, Control),
    (sql::PROJECT_BY_SLUG, Control),
    (sql::SESSION_NAMES, Control),
    (sql::PROJECT_BY_PLAUSIBLE_DOMAIN, Control),
    (sql::ALL_PROJECTS, Control),
    (sql::CREATE_PROJECT, Control),
    (sql::UPDATE_PROJECT, Control),
    (sql::CREATE_KEY, Control),
    (sql::KEYS_OF_PROJECT, Control),
    (sql::REVOKE_KEY, Control),
    (sql::KEY_BY_HASH, Control),
    (sql::CREATE_SHARE_LINK, Control),
    (sql::SHARE_LINKS_OF_PROJECT, Control),
    (sql::SHARE_LINK, Control),
    (sql::REVOKE_SHARE_LINK, Control),
    (sql::DELETE_EXPIRED_SESSIONS, Control),
    (sql::CREATE_SESSION, Control),
    (sql::SESSION_KEY, Control),
    (sql::DELETE_SESSION, Control),
    // Operations.
    (sql::INSERT_DEAD_LETTER, Control),
    (sql::PURGE_DEAD_LETTERS, Control),
    (sql::PURGE_ORPHAN_DEAD_LETTERS, Control),
    (sql::COUNT_DEAD_LETTERS, Control),
    (sql::INSERT_JOB_RUN, Control),
    (sql::LATEST_JOB_RUNS, Control),
    (sql::PURGE_JOB_RUNS, Control),
    // Alerting and digests: rules, their state and history, campaigns.
    (sql::ALERT_RULES_OF_PROJECT, Control),
    (sql::ENABLED_ALERT_RULES, Control),
    (sql::ENABLED_ALERT_RULES_OF_PROJECTS, Control),
    (sql::INSERT_ALERT_RULE, Control),
    (sql::UPDATE_ALERT_RULE, Control),
    (sql::DELETE_ALERT_RULE, Control),
    (sql::ALERTS_EVALUATED, Control),
    (sql::ALERT_TRANSITIONS, Control),
    (sql::INSERT_ALERTS, Control),
    (sql::ALERTS_RECORDED, Control),
    (sql::ALERTS_OF_PROJECT, Control),
    (sql::ALERT_BY_ID, Control),
    (sql::ALERT_ATTEMPTS, Control),
    (sql::UNQUEUED_ALERTS, Control),
    (sql::ALERTS_QUEUED, Control),
    (sql::INSERT_ALERT_ATTEMPT, Control),
    (sql::ALERT_DELIVERY, Control),
    (sql::SET_CAMPAIGN, Control),
    (sql::ALERT_PAUSED_CAMPAIGN, Control),
    (sql::CAMPAIGNS_OF_PROJECT, Control),
    (sql::PURGE_ALERT_ATTEMPTS, Control),
    (sql::PURGE_ALERTS, Control),
    (sql::DIGEST_OF_PROJECT, Control),
    (sql::ENABLED_DIGESTS, Control),
    (sql::PUT_DIGEST, Control),
    (sql::DELETE_DIGEST, Control),
    (sql::LAST_DIGEST_RUN, Control),
    (sql::DIGEST_RUN, Control),
    (sql::INSERT_DIGEST_RUN, Control),
    (sql::UNQUEUED_DIGEST_RUNS, Control),
    (sql::DIGEST_RUNS_QUEUED, Control),
    (sql::DIGEST_RUN_ATTEMPTED, Control),
    (sql::DIGEST_RUN_FAILED, Control),
    // Moving a project between shards: the move's record and placement in the control
    // database, the pages it copies and deletes on the two shards (`moves.rs` runs each
    // on the shard it means, through that shard's own executor).
    (sql::INSERT_MOVE, Control),
    (sql::RUNNING_MOVES, Control),
    (sql::LATEST_MOVE, Control),
    (sql::UPDATE_MOVE, Control),
    (sql::SET_PLACEMENT, Control),
    (sql::MOVE_ROLLUPS_PAGE, Data(Param(1))),
    (sql::MOVE_PUT_ROLLUPS, Data(Param(1))),
    (sql::MOVE_INSERT_RAW_EVENTS, Data(Json)),
    (sql::MOVE_INSERT_SESSION_EVENTS, Data(Json)),
    (sql::MOVE_SESSION_DAYS_PAGE, Data(Param(1))),
    (sql::MOVE_PUT_SESSION_DAYS, Data(Param(1))),
    (sql::MOVE_MARK_SESSION_DAYS, Data(Param(1))),
    (sql::MOVE_DROPPED_PAGE, Data(Param(1))),
    (sql::MOVE_PUT_DROPPED, Data(Param(1))),
    (sql::MOVE_ERROR_MESSAGES_PAGE, Data(Param(1))),
    (sql::MOVE_PUT_ERROR_MESSAGES, Data(Param(1))),
    (sql::MOVE_ERASURES_PAGE, Data(Param(1))),
    (sql::MOVE_PUT_ERASURES, Data(Param(1))),
    (sql::MOVE_ROLLUP_SUMS, Data(Param(1))),
    (sql::MOVE_DELETE_RAW_EVENTS, Data(Param(1))),
    (sql::MOVE_DELETE_ROLLUPS, Data(Param(1))),
    (sql::MOVE_DELETE_SESSION_EVENTS, Data(Param(1))),
    (sql::MOVE_DELETE_SESSION_DAYS, Data(Param(1))),
    (sql::MOVE_DELETE_DIRTY_SESSION_DAYS, Data(Param(1))),
    (sql::MOVE_DELETE_DIRTY_PERIODS, Data(Param(1))),
    (sql::MOVE_DELETE_ERROR_MESSAGES, Data(Param(1))),
    (sql::MOVE_DELETE_DROPPED, Data(Param(1))),
    (sql::MOVE_DELETE_ERASURES, Data(Param(1))),
];

/// The role of a statement of `tally_core::sql`.
///
/// # Errors
///
/// [`Error::Database`] for text that is not one of [`ROLES`]: no executor guesses.
pub fn role(sql: &str) -> Result<Role, Error> {
    ROLES
        .iter()
        .find(|(text, _)| *text == sql)
        .map(|(_, role)| *role)
        .ok_or_else(|| Error::Database(format!("unclassified statement: {}", first_line(sql))))
}

fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or(sql)
}

impl Write<'_> {
    /// The database this write's statements run in: data writes on their project's
    /// shard, the rest in the control database, meta in whichever it commits with.
    /// (No wildcard: a new write must be placed here; `every_write_is_in_its_role`
    /// checks its statements agree.)
    pub fn role(&self) -> Role {
        use crate::alerts::AlertWrite as A;
        match self {
            Self::InsertEvents(_)
            | Self::InsertSessionEvents(_)
            | Self::KeepErrorMessages(_)
            | Self::InsertDropped(_) => Data(Json),
            Self::EnsureProject { .. }
            | Self::PutSessionDay { .. }
            | Self::ClearSessionDay(_)
            | Self::InsertRollup { .. }
            | Self::UpdateRollup { .. }
            | Self::PutRollup { .. }
            | Self::DeleteStaleRollups { .. }
            | Self::MarkDirty { .. }
            | Self::ClearDirty(_)
            | Self::RollFailed { .. }
            | Self::PurgeRaw { .. }
            | Self::Alert(A::PurgeMinutes { .. }) => Data(Param(1)),
            Self::PurgeAlerts { .. }
            | Self::PurgeJobRuns { .. }
            | Self::DeadLetter { .. }
            | Self::Alert(
                A::InsertRule { .. }
                | A::UpdateRule { .. }
                | A::DeleteRule { .. }
                | A::Transitions { .. }
                | A::InsertAlerts { .. }
                | A::Evaluated { .. }
                | A::Queued { .. }
                | A::Attempted { .. }
                | A::Delivery { .. }
                | A::SetCampaign { .. },
            ) => Control,
            Self::PutMeta { .. } => Local,
        }
    }
}

/// Where one statement goes: the control database or shard `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Control,
    Shard(u32),
}

/// The one target of a batch's statements (`None` for meta, which commits with the
/// rest), or `alone` when only meta is written.
///
/// # Errors
///
/// [`Error::Database`] when they belong to two databases: no transaction spans two.
fn one_target(
    targets: impl IntoIterator<Item = Option<Target>>,
    alone: Target,
) -> Result<Target, Error> {
    let mut found = None;
    for target in targets.into_iter().flatten() {
        match found {
            None => found = Some(target),
            Some(t) if t == target => {}
            Some(t) => {
                return Err(Error::Database(format!(
                    "a transaction would span {t:?} and {target:?}; commit each database's \
                     writes apart"
                )));
            }
        }
    }
    Ok(found.unwrap_or(alone))
}

/// One data shard with the control database: data statements (and meta) run on the
/// shard, control statements in `DB`. Its [`Executor::shard`] is the shard's number,
/// so [`crate::EventStore::projects`] lists the projects placed on it.
pub struct OnShard<'a, E> {
    pub control: &'a E,
    pub data: &'a E,
    pub shard: u32,
}

impl<E: Executor> OnShard<'_, E> {
    /// Where `sql` runs; `None` for meta, which goes with its batch (alone: the shard).
    fn target(&self, sql: &str) -> Result<Option<Target>, Error> {
        Ok(match role(sql)? {
            Control | ControlOfShard => Some(Target::Control),
            Data(_) => Some(Target::Shard(self.shard)),
            Local => None,
        })
    }

    fn executor(&self, target: Target) -> &E {
        match target {
            Target::Control => self.control,
            Target::Shard(_) => self.data,
        }
    }
}

impl<E: Executor> Executor for OnShard<'_, E> {
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        let target = self.target(sql)?.unwrap_or(Target::Shard(self.shard));
        self.executor(target).query(sql, values).await
    }

    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, Error> {
        let targets = groups
            .iter()
            .flatten()
            .map(|s| self.target(s.sql))
            .collect::<Result<Vec<_>, _>>()?;
        let target = one_target(targets, Target::Shard(self.shard))?;
        self.executor(target).batch(groups).await
    }

    fn shard(&self) -> u32 {
        self.shard
    }

    /// The shard's size: the control database is another's.
    async fn stored_bytes(&self) -> Result<Option<u64>, Error> {
        self.data.stored_bytes().await
    }
}

/// How long an isolate trusts a project's placement before reading it again. A move
/// (`crate::moves`) waits at least this long after every change of placement before
/// the step that relies on every isolate having seen it.
pub const PLACEMENT_TTL_MS: i64 = 60_000;

/// Where a project's data lives: its shard, and while it moves the other shard its
/// events are also committed on (after `shard`, in a transaction of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub struct Placement {
    pub shard: u32,
    #[serde(rename = "also_shard")]
    pub also: Option<u32>,
}

/// The placement of projects, read from the control database and kept for
/// [`PLACEMENT_TTL_MS`] (or the TTL the worker sets, the same in every worker: moves
/// wait it). One per isolate (share it with `Rc`); a project not found is not kept, so
/// one created a moment later is found at once.
#[derive(Debug)]
pub struct Placements {
    known: RefCell<HashMap<String, (Placement, i64)>>,
    ttl_ms: std::cell::Cell<i64>,
}

impl Default for Placements {
    fn default() -> Self {
        Self {
            known: RefCell::default(),
            ttl_ms: std::cell::Cell::new(PLACEMENT_TTL_MS),
        }
    }
}

/// Most placements kept per isolate: past it, the oldest half is forgotten.
const MAX_PLACEMENTS: usize = 10_000;

impl Placements {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps placements for `ttl_ms` from now on. A worker sets what its
    /// `PLACEMENT_TTL_MS` var says: the local stack's end-to-end tests shorten it, in
    /// every worker alike, so that a move's waits (the same var) stay short.
    pub fn set_ttl(&self, ttl_ms: i64) {
        self.ttl_ms.set(ttl_ms);
    }

    /// How long placements are kept.
    pub fn ttl_ms(&self) -> i64 {
        self.ttl_ms.get()
    }

    /// The placement of each of `slugs` at `now_ms`: from the cache, and the rest in one
    /// read of `control`. Projects that do not exist are on shard 0 (whatever they read
    /// there is empty; the consumer's `EnsureProject` records such a project there, as
    /// a single database always did).
    ///
    /// # Errors
    ///
    /// The control database's error.
    pub async fn placements_of<E: Executor>(
        &self,
        control: &E,
        slugs: &[&str],
        now_ms: i64,
    ) -> Result<BTreeMap<String, Placement>, Error> {
        let mut found = BTreeMap::new();
        let mut missing = Vec::new();
        {
            let known = self.known.borrow();
            for slug in slugs {
                match known.get(*slug) {
                    Some(&(placement, at)) if now_ms - at < self.ttl_ms.get() => {
                        found.insert((*slug).to_owned(), placement);
                    }
                    _ => missing.push(*slug),
                }
            }
        }
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            let read = control.project_shards(&missing).await?;
            let mut known = self.known.borrow_mut();
            if known.len() + read.len() > MAX_PLACEMENTS {
                let mut ages: Vec<i64> = known.values().map(|(_, at)| *at).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                known.retain(|_, (_, at)| *at > cut);
            }
            for slug in missing {
                let placement = read.get(slug).copied();
                if let Some(placement) = placement {
                    known.insert(slug.to_owned(), (placement, now_ms));
                }
                found.insert(slug.to_owned(), placement.unwrap_or_default());
            }
        }
        Ok(found)
    }

    /// Reads the placements of those of `slugs` not known fresh at `now_ms`, in one
    /// query of `control`; returns the queries made (0 when all were known). A run over
    /// many projects calls it first, so that it costs one lookup and not one a project
    /// (placements last the TTL, about the time between two cron runs).
    ///
    /// # Errors
    ///
    /// The control database's error.
    pub async fn prefetch<E: Executor>(
        &self,
        control: &E,
        slugs: &[&str],
        now_ms: i64,
    ) -> Result<u32, Error> {
        let ttl_ms = self.ttl_ms.get();
        let missing: Vec<&str> = {
            let known = self.known.borrow();
            slugs
                .iter()
                .copied()
                .filter(|slug| !matches!(known.get(*slug), Some(&(_, at)) if now_ms - at < ttl_ms))
                .collect()
        };
        if missing.is_empty() {
            return Ok(0);
        }
        self.placements_of(control, &missing, now_ms).await?;
        Ok(1)
    }

    /// The shard of each of `slugs` (see [`Placements::placements_of`]): where it is
    /// read.
    ///
    /// # Errors
    ///
    /// The control database's error.
    pub async fn shards_of<E: Executor>(
        &self,
        control: &E,
        slugs: &[&str],
        now_ms: i64,
    ) -> Result<BTreeMap<String, u32>, Error> {
        let found = self.placements_of(control, slugs, now_ms).await?;
        Ok(found.into_iter().map(|(slug, p)| (slug, p.shard)).collect())
    }

    /// The shard of one project (see [`Placements::shards_of`]).
    ///
    /// # Errors
    ///
    /// The control database's error.
    pub async fn shard_of<E: Executor>(
        &self,
        control: &E,
        slug: &str,
        now_ms: i64,
    ) -> Result<u32, Error> {
        let found = self.shards_of(control, &[slug], now_ms).await?;
        Ok(found.get(slug).copied().unwrap_or(0))
    }

    /// Forgets what is known of `slug` (after placing it).
    pub fn forget(&self, slug: &str) {
        self.known.borrow_mut().remove(slug);
    }
}

/// Every data shard with the control database: a data statement runs on the shard of
/// the project in its [`ProjectAt::Param`] parameter, control statements and meta in
/// `DB`. Statements over JSON of projects or over a whole shard are refused: they need
/// an [`OnShard`].
pub struct Router<E> {
    pub control: E,
    pub shards: Vec<E>,
    pub placements: Rc<Placements>,
    /// The time placements are judged fresh at.
    pub now_ms: i64,
}

impl<E: Executor> Router<E> {
    /// Where `sql` runs with `values`; `None` for meta, which goes with its batch
    /// (alone: the control database).
    async fn target(&self, sql: &'static str, values: &[Bound]) -> Result<Option<Target>, Error> {
        match role(sql)? {
            Control => Ok(Some(Target::Control)),
            Local => Ok(None),
            ControlOfShard => Err(Error::Database(format!(
                "a read of one shard's projects needs one shard: {}",
                first_line(sql)
            ))),
            Data(Param(n)) => match values.get(n.wrapping_sub(1)) {
                Some(Bound::Text(slug)) => Ok(Some(Target::Shard(
                    self.placements
                        .shard_of(&self.control, slug, self.now_ms)
                        .await?,
                ))),
                _ => Err(Error::Database(format!(
                    "parameter ?{n} of a data statement is not a project: {}",
                    first_line(sql)
                ))),
            },
            Data(Json | Shard) => Err(Error::Database(format!(
                "a statement over several projects or a whole shard needs one shard: {}",
                first_line(sql)
            ))),
        }
    }

    fn executor(&self, target: Target) -> Result<&E, Error> {
        match target {
            Target::Control => Ok(&self.control),
            Target::Shard(n) => self.shards.get(n as usize).ok_or_else(|| {
                Error::Database(format!(
                    "shard {n} is not bound (this worker binds {} shards)",
                    self.shards.len()
                ))
            }),
        }
    }
}

impl<E: Executor> Executor for Router<E> {
    async fn query<T: DeserializeOwned>(
        &self,
        sql: &'static str,
        values: Vec<Bound>,
    ) -> Result<Vec<T>, Error> {
        let target = self.target(sql, &values).await?.unwrap_or(Target::Control);
        self.executor(target)?.query(sql, values).await
    }

    async fn batch(&self, groups: Vec<Vec<Statement>>) -> Result<Vec<u64>, Error> {
        let mut targets = Vec::new();
        for statement in groups.iter().flatten() {
            targets.push(self.target(statement.sql, &statement.values).await?);
        }
        let target = one_target(targets, Target::Control)?;
        self.executor(target)?.batch(groups).await
    }

    /// Reads the placements of `projects` not known fresh in one query of the control
    /// database, so the statements that follow find them in [`Placements`].
    async fn expect_projects(&self, projects: &[&str]) -> Result<u32, Error> {
        self.placements
            .prefetch(&self.control, projects, self.now_ms)
            .await
    }
}

/// Projects named per shard in `/v1/health`, beside their count.
pub const PROJECTS_NAMED_PER_SHARD: u32 = 20;

/// Rows counted per table and shard in `/v1/health` ([`sql::STORED_ROWS`]): a count this
/// large means at least this many. At most three times this many rows are read per
/// shard, whatever the shard holds.
pub const ROWS_COUNTED_UP_TO: u32 = 50_000;

/// The rows of one shard's tables that grow with events, each counted up to
/// [`ROWS_COUNTED_UP_TO`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredRows {
    pub raw_events: u64,
    pub rollups: u64,
    pub session_marks: u64,
}

/// What one data shard holds: what placement weighs and `/v1/health` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLoad {
    pub shard: u32,
    /// The database's bytes, `None` when its executor cannot say
    /// ([`Executor::stored_bytes`]).
    pub bytes: Option<u64>,
    /// The projects placed on it.
    pub projects: u64,
    /// Why the shard could not be measured, if it could not: it is then no candidate
    /// for a new project.
    pub error: Option<String>,
}

/// The load of every shard: its bytes, asked of each shard, and its projects, from one
/// read of the control database. A shard that does not answer is reported with its
/// error rather than failing the others.
///
/// # Errors
///
/// The control database's error.
pub async fn loads<E: Executor>(control: &E, shards: &[E]) -> Result<Vec<ShardLoad>, Error> {
    let projects = control.projects_per_shard().await?;
    let mut loads = Vec::with_capacity(shards.len());
    for (n, shard) in (0u32..).zip(shards) {
        let (bytes, error) = match shard.stored_bytes().await {
            Ok(bytes) => (bytes, None),
            Err(e) => (None, Some(e.to_string())),
        };
        loads.push(ShardLoad {
            shard: n,
            bytes,
            projects: projects.get(&n).copied().unwrap_or(0),
            error,
        });
    }
    Ok(loads)
}

/// The rows of `shard`'s tables that grow with events, each counted up to
/// [`ROWS_COUNTED_UP_TO`] ([`sql::STORED_ROWS`] says why no further).
///
/// # Errors
///
/// The shard's error.
pub async fn stored_rows<E: Executor>(shard: &E) -> Result<StoredRows, Error> {
    let rows: Vec<StoredRows> = shard
        .query(sql::STORED_ROWS, vec![ROWS_COUNTED_UP_TO.into()])
        .await?;
    rows.into_iter()
        .next()
        .ok_or_else(|| Error::Decode("the count of stored rows answered no row".to_owned()))
}

/// The first [`PROJECTS_NAMED_PER_SHARD`] projects of each shard by slug, in one read
/// of the control database.
///
/// # Errors
///
/// The control database's error.
pub async fn named_projects<E: Executor>(control: &E) -> Result<BTreeMap<u32, Vec<String>>, Error> {
    #[derive(serde::Deserialize)]
    struct Row {
        shard: u32,
        slug: String,
    }
    let rows: Vec<Row> = control
        .query(
            sql::FIRST_PROJECTS_OF_SHARDS,
            vec![PROJECTS_NAMED_PER_SHARD.into()],
        )
        .await?;
    let mut named: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for row in rows {
        named.entry(row.shard).or_default().push(row.slug);
    }
    Ok(named)
}

/// The shard a new project goes to: of the shards measured, the one with the fewest
/// stored bytes, then the fewest projects, then the lowest number. Bytes are the load
/// that fills a shard (D1 holds 10 GB a database) and are weighed only when every
/// candidate reports them; otherwise projects are, as before bytes were known. Shard 0
/// when no shard could be measured.
pub fn emptiest(loads: &[ShardLoad]) -> u32 {
    let candidates: Vec<&ShardLoad> = loads.iter().filter(|l| l.error.is_none()).collect();
    let by_bytes = candidates.iter().all(|l| l.bytes.is_some());
    candidates
        .into_iter()
        .min_by_key(|l| {
            let bytes = if by_bytes { l.bytes } else { None };
            (bytes, l.projects, l.shard)
        })
        .map_or(0, |l| l.shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constants `tally_core::sql` declares, read from its source.
    fn declared() -> Vec<String> {
        include_str!("../../core/src/sql.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("pub const "))
            .map(|rest| rest.split(':').next().unwrap_or_default().trim().to_owned())
            .collect()
    }

    #[test]
    fn role_of_every_statement() {
        let declared = declared();
        assert!(declared.len() > 100, "read {} constants", declared.len());
        assert_eq!(
            declared.len(),
            ROLES.len(),
            "every constant of tally_core::sql has one row in ROLES: add the new one with \
             the database it runs in"
        );
        for (i, (sql, _)) in ROLES.iter().enumerate() {
            assert!(
                ROLES[..i].iter().all(|(other, _)| other != sql),
                "listed twice: {}",
                first_line(sql)
            );
        }
    }

    #[test]
    fn data_statements_name_their_project_where_the_table_says() {
        for (sql, role) in ROLES {
            if let Data(Param(n)) = role {
                let param = format!("?{n}");
                assert!(sql.contains(&param), "{} has no {param}", first_line(sql));
            }
        }
    }
}
