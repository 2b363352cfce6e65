//! The aggregator's cron jobs, the cron expressions that trigger them, and the messages
//! of the jobs queue that carry each shard's part of a job (issue 16, phase 2).
//!
//! The expressions must equal the `[triggers] crons` of `wrangler/aggregator.toml`;
//! a test in the xtask crate checks that they do.
//!
//! A trigger does the control database's work itself (alert evaluation, digests) and
//! sends one [`JobMessage::Shard`] per data shard, and one [`JobMessage::Move`] per
//! running move, to the jobs queue, which the aggregator consumes one message per
//! invocation: each shard's work gets a whole invocation's D1 budget ([`ShardBudget`]),
//! so adding shards adds capacity rather than cron time. A job whose work reports a
//! backlog sends itself a continuation ([`JobMessage::continuation`]), bounded by
//! [`MAX_CONTINUATIONS`] and by its trigger's period.

use serde::{Deserialize, Serialize};

use crate::Error;

/// A scheduled job of the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    /// Every minute: alert rules and rollup of the current hour.
    Minutely,
    /// Five minutes past every hour: finalize closed hours, roll days and months.
    Hourly,
    /// Once a day: retention purge.
    Daily,
}

impl Job {
    /// Every job, in schedule order.
    pub const ALL: [Job; 3] = [Job::Minutely, Job::Hourly, Job::Daily];

    /// The cron expression that triggers the job.
    pub const fn cron(self) -> &'static str {
        match self {
            Job::Minutely => "* * * * *",
            Job::Hourly => "5 * * * *",
            Job::Daily => "15 3 * * *",
        }
    }

    /// The job's name in the `job_runs` table.
    pub const fn name(self) -> &'static str {
        match self {
            Job::Minutely => "minutely",
            Job::Hourly => "hourly",
            Job::Daily => "daily",
        }
    }

    /// The job a cron expression triggers, if any.
    pub fn for_cron(cron: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|job| job.cron() == cron.trim())
    }

    /// How often the job is triggered, in milliseconds: a continuation of a trigger's
    /// work is sent only within it, since the next trigger does the same work.
    pub const fn period_ms(self) -> i64 {
        match self {
            Job::Minutely => 60_000,
            Job::Hourly => 3_600_000,
            Job::Daily => 86_400_000,
        }
    }

    /// The name one shard's part of the job is recorded under in `job_runs`, such as
    /// `hourly/shard-1`: each shard's latest run is kept apart (the table keeps every
    /// job name's latest run), and [`Job::of_shard_run`] reads it back.
    pub fn shard_run_name(self, shard: u32) -> String {
        format!("{}{SHARD_RUN_INFIX}{shard}", self.name())
    }

    /// The job and shard of a run recorded under [`Job::shard_run_name`]; `None` for a
    /// trigger's own run (`minutely`, …) or any other name.
    pub fn of_shard_run(name: &str) -> Option<(Job, u32)> {
        let (job, shard) = name.split_once(SHARD_RUN_INFIX)?;
        let job = Job::ALL.into_iter().find(|j| j.name() == job)?;
        Some((job, shard.parse().ok()?))
    }

    /// What one shard's part of the job may spend in its invocation. Minutely: days
    /// (so day rows are a minute fresh) and session days; hourly: days, months,
    /// session days, minute rows, retention and erasures; daily: retention and months.
    pub const fn shard_budget(self) -> ShardBudget {
        match self {
            Job::Minutely => ShardBudget {
                day_rolls: 300,
                month_rolls: 0,
                session_queries: 200,
                minute_purge: false,
                purge_statements: 0,
                erase_statements: 0,
            },
            Job::Hourly => ShardBudget {
                day_rolls: 80,
                month_rolls: 80,
                session_queries: 100,
                minute_purge: true,
                purge_statements: 250,
                erase_statements: 100,
            },
            Job::Daily => ShardBudget {
                day_rolls: 0,
                month_rolls: 150,
                session_queries: 0,
                minute_purge: false,
                purge_statements: 580,
                erase_statements: 0,
            },
        }
    }
}

/// What separates a job's name from its shard in [`Job::shard_run_name`].
const SHARD_RUN_INFIX: &str = "/shard-";

/// D1 queries one Worker invocation may make (Workers Paid): a job of the jobs queue
/// runs alone in its invocation (`max_batch_size = 1`), so this is each job's budget.
/// D1 counts subrequests: a read is one, and so is a batch of statements, which is how
/// the costs below count (a roll is a read and a commit).
pub const D1_QUERIES_PER_INVOCATION: u32 = 1_000;

/// Queries a shard job keeps out of its work's budgets: reading the project list twice
/// (purge and minute rows), recording its run, and statements a budget does not count
/// exactly (a roll's failure note, a purge's backlog counts of projects behind).
pub const SHARD_JOB_RESERVE: u32 = 100;

/// Commits (D1 calls) an hourly purge of minute rows makes at most: each deletes a chunk
/// of rows of a few projects, and what is left is a backlog for a continuation.
pub const MINUTE_PURGE_COMMITS: u32 = 10;

/// Continuations one trigger's shard job may send after its own run, at most: each is
/// a whole invocation, so a backlog drains at up to `MAX_CONTINUATIONS + 1` budgets per
/// trigger and shard rather than one, and a job that always reports a backlog (a
/// session day too large to pair, a period that keeps failing) costs a bounded
/// number of invocations.
pub const MAX_CONTINUATIONS: u32 = 20;

/// Continuations a move's step may send, at most, after the cron's message: the next
/// minutely trigger sends a fresh one, so a chain need not outlive its minute.
pub const MAX_MOVE_CONTINUATIONS: u32 = 100;

/// What one shard's part of a job may spend: the work runs in this order, each part
/// within its budget, the sum within one invocation's D1 queries (checked by a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardBudget {
    /// Dirty days rolled (each a read and a commit, plus four statements a run).
    pub day_rolls: u32,
    /// Dirty months rolled (the same cost).
    pub month_rolls: u32,
    /// D1 queries spent pairing session days (plus two a run).
    pub session_queries: u32,
    /// Whether minute rows older than a day are purged, in at most
    /// [`MINUTE_PURGE_COMMITS`] commits (storage's `alerts::HOURLY_MINUTE_PURGE`).
    pub minute_purge: bool,
    /// Statements of the retention purge (plus its job runs' two).
    pub purge_statements: u32,
    /// Statements spent erasing people's data.
    pub erase_statements: u32,
}

impl ShardBudget {
    /// The most D1 queries the budgeted parts make.
    pub fn budgeted_queries(&self) -> u32 {
        let rolls = |periods: u32| if periods == 0 { 0 } else { 2 * periods + 4 };
        rolls(self.day_rolls)
            + rolls(self.month_rolls)
            + if self.session_queries == 0 {
                0
            } else {
                self.session_queries + 2
            }
            + if self.purge_statements == 0 {
                0
            } else {
                self.purge_statements + 2
            }
            + self.erase_statements
            + if self.minute_purge {
                MINUTE_PURGE_COMMITS
            } else {
                0
            }
    }
}

/// A message of the jobs queue. Each names its work and the time of the trigger it
/// came from, never data: the work reads what it needs when it runs, so a message
/// delivered twice or out of order does work that is already safe to do twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum JobMessage {
    /// One shard's part of `job`, triggered at `at` (epoch milliseconds); `round` 0 is
    /// the trigger's own message, each continuation one more.
    Shard {
        job: Job,
        shard: u32,
        at: i64,
        round: u32,
    },
    /// A step of the move `id` (a row of `project_moves`), sent by the minutely trigger
    /// at `at` and continued while the move has work.
    Move { id: i64, at: i64, round: u32 },
}

impl JobMessage {
    /// The message's body on the queue: JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a job message serializes")
    }

    /// Reads a body [`JobMessage::encode`] wrote.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedMessage`] for any other text.
    pub fn decode(body: &str) -> Result<Self, Error> {
        serde_json::from_str(body).map_err(|e| Error::MalformedMessage(format!("a job: {e}")))
    }

    /// The message continuing this one's work at `now_ms`, when its work reported a
    /// backlog: the same work one round later, if the round is within its bound
    /// ([`MAX_CONTINUATIONS`], [`MAX_MOVE_CONTINUATIONS`]) and the trigger's period
    /// (a minute for moves) has not passed since `at`, after which the next trigger
    /// sends the same work afresh. `None` otherwise, so a chain always ends.
    pub fn continuation(&self, now_ms: i64) -> Option<Self> {
        match *self {
            JobMessage::Shard {
                job,
                shard,
                at,
                round,
            } => (round < MAX_CONTINUATIONS && now_ms < at + job.period_ms()).then_some(
                JobMessage::Shard {
                    job,
                    shard,
                    at,
                    round: round + 1,
                },
            ),
            JobMessage::Move { id, at, round } => (round < MAX_MOVE_CONTINUATIONS
                && now_ms < at + Job::Minutely.period_ms())
            .then_some(JobMessage::Move {
                id,
                at,
                round: round + 1,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cron_maps_back_to_its_job() {
        for job in Job::ALL {
            assert_eq!(Job::for_cron(job.cron()), Some(job));
        }
        assert_eq!(Job::for_cron("0 0 1 1 *"), None);
    }

    #[test]
    fn shard_runs_are_named_apart_and_read_back() {
        for job in Job::ALL {
            for shard in [0, 1, 63] {
                let name = job.shard_run_name(shard);
                assert_eq!(Job::of_shard_run(&name), Some((job, shard)), "{name}");
            }
        }
        assert_eq!(Job::Hourly.shard_run_name(1), "hourly/shard-1");
        for name in ["hourly", "minutely", "hourly/shard-", "weekly/shard-1", "x"] {
            assert_eq!(Job::of_shard_run(name), None, "{name}");
        }
    }

    #[test]
    fn messages_read_back_as_written() {
        let messages = [
            JobMessage::Shard {
                job: Job::Hourly,
                shard: 1,
                at: 1_772_445_900_000,
                round: 0,
            },
            JobMessage::Shard {
                job: Job::Daily,
                shard: 0,
                at: 0,
                round: 7,
            },
            JobMessage::Move {
                id: 42,
                at: 1_772_445_900_000,
                round: 3,
            },
        ];
        for m in &messages {
            assert_eq!(
                JobMessage::decode(&m.encode()).as_ref(),
                Ok(m),
                "{}",
                m.encode()
            );
        }
        assert_eq!(
            messages[0].encode(),
            r#"{"kind":"shard","job":"hourly","shard":1,"at":1772445900000,"round":0}"#
        );
        assert_eq!(
            messages[2].encode(),
            r#"{"kind":"move","id":42,"at":1772445900000,"round":3}"#
        );
    }

    #[test]
    fn other_bodies_are_refused_not_guessed() {
        for body in [
            "",
            "{}",
            r#"{"alert":"a1"}"#,
            r#"{"kind":"shard","job":"weekly","shard":1,"at":0,"round":0}"#,
            r#"{"kind":"shard","job":"hourly","shard":-1,"at":0,"round":0}"#,
            r#"{"kind":"shard","job":"hourly","at":0,"round":0}"#,
            r#"{"kind":"move","id":1,"at":0,"round":0,"extra":1}"#,
        ] {
            assert!(
                matches!(JobMessage::decode(body), Err(Error::MalformedMessage(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn continuations_stop_at_their_bound_and_at_the_next_trigger() {
        let at = 1_772_445_900_000;
        for job in Job::ALL {
            let first = JobMessage::Shard {
                job,
                shard: 1,
                at,
                round: 0,
            };
            // Continued at once, each one round later, the rest kept.
            let mut chain = vec![first.clone()];
            while let Some(next) = chain.last().unwrap().continuation(at + 1) {
                chain.push(next);
            }
            assert_eq!(chain.len() as u32, MAX_CONTINUATIONS + 1, "{job:?}");
            assert_eq!(
                chain.last(),
                Some(&JobMessage::Shard {
                    job,
                    shard: 1,
                    at,
                    round: MAX_CONTINUATIONS
                })
            );
            // Once the next trigger is due, it does the work: no continuation.
            assert!(first.continuation(at + job.period_ms() - 1).is_some());
            assert_eq!(first.continuation(at + job.period_ms()), None, "{job:?}");
        }
        let step = JobMessage::Move {
            id: 9,
            at,
            round: 0,
        };
        let mut rounds = 0;
        let mut m = step.clone();
        while let Some(next) = m.continuation(at + 30_000) {
            m = next;
            rounds += 1;
        }
        assert_eq!(rounds, MAX_MOVE_CONTINUATIONS);
        assert_eq!(step.continuation(at + 60_000), None);
    }

    #[test]
    fn every_shard_job_fits_one_invocation() {
        for job in Job::ALL {
            let budget = job.shard_budget();
            assert!(
                budget.budgeted_queries() + SHARD_JOB_RESERVE <= D1_QUERIES_PER_INVOCATION,
                "{job:?}: {} queries and {SHARD_JOB_RESERVE} reserved",
                budget.budgeted_queries()
            );
        }
        // Each does what the trigger did before it fanned out.
        assert!(Job::Minutely.shard_budget().day_rolls > 0);
        let hourly = Job::Hourly.shard_budget();
        assert!(hourly.minute_purge && hourly.purge_statements > 0 && hourly.erase_statements > 0);
        assert!(Job::Daily.shard_budget().purge_statements > 0);
    }
}
