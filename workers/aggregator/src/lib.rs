//! Tally's aggregator worker: the only writer of events to D1. It consumes the `events`
//! queue ([`consumer`]), keeps dead letters ([`dead_letters`]), runs the cron jobs
//! ([`cron`]), each data shard's part of them on the jobs queue ([`jobs`]), and acts on
//! alerts ([`alerting`]).
//!
//! This module owns what the worker takes from its environment: every binding and var
//! name, the clock, and the queue dispatch. A batch says only the name of its queue, and
//! names differ per environment (`cargo xtask deploy --env staging` appends `-staging`),
//! so the dispatch compares it with the names in `[vars]`, which deploy renames together
//! with the queues.

mod alerting;
mod consumer;
mod cron;
mod dead_letters;
mod jobs;

use std::rc::Rc;

use tally_edge::ApiError;
use tally_storage::alerts::KnownRules;
use tally_storage::d1::D1Store;
use tally_storage::shard::Placements;
use worker::{Context, Date, Env, MessageBatch, Request, Response, Result, event};

/// The control database's D1 binding (see `wrangler/aggregator.toml`).
pub const DB: &str = "DB";

/// The data shards' D1 bindings, `SHARD_0` to `SHARD_{N-1}`: the first `n` of them that
/// are bound. Without `SHARD_0` the control database is shard 0 and the only one (a
/// config from before shards). Tidy checks that the configs bind them from 0 without a
/// gap and that the aggregator and the query worker bind the same.
pub fn shards(env: &Env) -> Vec<D1Store> {
    let bound: Vec<D1Store> = (0..tally_storage::d1::MAX_SHARDS)
        .map_while(|n| env.d1(&tally_storage::d1::shard_binding(n)).ok())
        .map(D1Store::new)
        .collect();
    if bound.is_empty() {
        env.d1(DB).map(D1Store::new).into_iter().collect()
    } else {
        bound
    }
}

thread_local! {
    /// Projects' shards, read from the control database and kept for a minute.
    static PLACEMENTS: Rc<Placements> = Rc::new(Placements::new());
}

/// The var saying how long isolates keep a project's placement, in milliseconds
/// (`tally_storage::shard::PLACEMENT_TTL_MS` when absent or not a number). The query
/// worker reads the same var: a move waits it, trusting that no isolate keeps a
/// placement longer. Only the local stack's end-to-end tests set it, shorter.
pub const PLACEMENT_TTL_MS: &str = "PLACEMENT_TTL_MS";

/// How long isolates keep a placement (see [`PLACEMENT_TTL_MS`]).
pub fn placement_ttl_ms(env: &Env) -> i64 {
    env.var(PLACEMENT_TTL_MS)
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .filter(|ms: &i64| *ms > 0)
        .unwrap_or(tally_storage::shard::PLACEMENT_TTL_MS)
}

/// The isolate's cache of placements, keeping them as long as `env` says.
pub fn placements(env: &Env) -> Rc<Placements> {
    let placements = PLACEMENTS.with(Rc::clone);
    placements.set_ttl(placement_ttl_ms(env));
    placements
}

thread_local! {
    /// The minute rows projects' alert rules read, from the control database, kept for
    /// a minute (`tally_core::alerts::RULES_LEARNED_WITHIN_MS`).
    static KNOWN_RULES: Rc<KnownRules> = Rc::new(KnownRules::new());
}

/// The isolate's cache of what alert rules read.
pub fn known_rules() -> Rc<KnownRules> {
    KNOWN_RULES.with(Rc::clone)
}
/// The alerts queue producer binding: the minutely cron sends alerts to act on.
pub const ALERTS: &str = "ALERTS";
/// The jobs queue producer binding: cron sends each shard's part of a job, and a job
/// its continuation.
pub const JOBS: &str = "JOBS";
/// The var naming the jobs queue, which this worker produces and consumes.
pub const JOBS_QUEUE: &str = "JOBS_QUEUE";
/// The var naming the `events` queue, which ingest fills.
pub const EVENTS_QUEUE: &str = "EVENTS_QUEUE";
/// The var naming the dead-letter queue of `events`.
pub const EVENTS_DLQ: &str = "EVENTS_DLQ";
/// The var naming the `alerts` queue, which this worker produces and consumes.
pub const ALERTS_QUEUE: &str = "ALERTS_QUEUE";
/// The var naming the dead-letter queue of `alerts`.
pub const ALERTS_DLQ: &str = "ALERTS_DLQ";

/// Milliseconds since the Unix epoch: the worker's one reading of the clock.
#[allow(
    clippy::disallowed_methods,
    reason = "the worker's one clock read (workers/clippy.toml)"
)]
pub fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}

/// The queues this worker consumes, each with its own handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Events,
    EventDeadLetters,
    Alerts,
    AlertDeadLetters,
    Jobs,
}

/// The names the consumed queues have in this deployment, from `[vars]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QueueNames {
    events: String,
    events_dlq: String,
    alerts: String,
    alerts_dlq: String,
    jobs: String,
}

impl QueueNames {
    /// Reads the names from the worker's vars.
    fn from_env(env: &Env) -> std::result::Result<Self, String> {
        let var = |name: &str| {
            env.var(name)
                .map(|v| v.to_string())
                .map_err(|e| format!("no var {name} ({e})"))
        };
        Ok(Self {
            events: var(EVENTS_QUEUE)?,
            events_dlq: var(EVENTS_DLQ)?,
            alerts: var(ALERTS_QUEUE)?,
            alerts_dlq: var(ALERTS_DLQ)?,
            jobs: var(JOBS_QUEUE)?,
        })
    }

    /// Which queue a batch of queue `name` came from; `None` for a name none of the vars
    /// give, which must not be guessed at.
    fn queue_of(&self, name: &str) -> Option<Queue> {
        [
            (&self.events, Queue::Events),
            (&self.events_dlq, Queue::EventDeadLetters),
            (&self.alerts, Queue::Alerts),
            (&self.alerts_dlq, Queue::AlertDeadLetters),
            (&self.jobs, Queue::Jobs),
        ]
        .into_iter()
        .find_map(|(configured, queue)| (configured == name).then_some(queue))
    }
}

/// Every queue's batches: passed to the queue's handler by name. A batch that cannot be
/// placed (a var missing, a queue no var names) or whose store is missing is logged as
/// an error and retried, so it reaches a dead-letter queue rather than the wrong
/// handler.
#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    let name = batch.queue();
    let queue = match QueueNames::from_env(&env) {
        Ok(names) => names.queue_of(&name).ok_or_else(|| {
            format!(
                "queue {name} is none of {EVENTS_QUEUE}={}, {EVENTS_DLQ}={}, \
                 {ALERTS_QUEUE}={}, {ALERTS_DLQ}={}, {JOBS_QUEUE}={}; check [vars] in the \
                 deployed wrangler config",
                names.events, names.events_dlq, names.alerts, names.alerts_dlq, names.jobs
            )
        }),
        Err(e) => Err(format!("{e}; the deployed wrangler config lacks [vars]")),
    };
    let queue = match queue {
        Ok(queue) => queue,
        Err(e) => {
            worker::console_error!(
                "ERROR: a batch of {} messages cannot be dispatched: {e}; retrying it",
                batch.raw_iter().count()
            );
            batch.retry_all();
            return Ok(());
        }
    };
    let store = match env.d1(DB) {
        Ok(db) => D1Store::new(db),
        Err(e) => {
            worker::console_error!("no D1 binding {DB}: {e}; retrying the batch of {name}");
            batch.retry_all();
            return Ok(());
        }
    };
    match queue {
        Queue::Events => consumer::consume(&store, &shards(&env), &placements(&env), &batch).await,
        Queue::EventDeadLetters => dead_letters::keep(&store, &batch).await,
        Queue::Alerts => alerting::consume(&store, &batch).await,
        Queue::AlertDeadLetters => {
            alerting::give_up(&store, &batch).await;
            dead_letters::keep(&store, &batch).await;
        }
        Queue::Jobs => jobs::consume(&store, &env, &batch).await,
    }
    Ok(())
}

/// The paths of the liveness probe, the aggregator's only HTTP.
const PROBE_PATHS: [&str; 2] = ["/", "/healthz"];

/// Whether a request of `method` (as the request wrote it: `worker`'s `Method` reads
/// every method it does not know, `QUERY` or `TRACE` too, as GET) to `path` is the
/// probe, or the error to answer: another method there is 405 (its `Allow` is GET),
/// another path 404. So no method nor path is answered as if it were the probe.
fn probe(method: &str, path: &str) -> std::result::Result<(), ApiError> {
    if !PROBE_PATHS.contains(&path) {
        return Err(ApiError::not_found(format!(
            "no endpoint at {path}; the aggregator answers only GET / (its liveness probe)"
        )));
    }
    if method != "GET" {
        return Err(ApiError::method_not_allowed("GET"));
    }
    Ok(())
}

/// Answers liveness probes; the aggregator serves no other HTTP.
#[event(fetch)]
async fn fetch(req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    match probe(&req.inner().method(), &req.path()) {
        Ok(()) => Response::from_json(&serde_json::json!({"worker": "aggregator", "status": "ok"})),
        Err(error) => {
            let mut response = Response::from_json(&error.body())?.with_status(error.status);
            if error.status == 405 {
                response.headers_mut().set("allow", "GET")?;
            }
            Ok(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Queue, QueueNames, probe};

    #[test]
    fn only_a_get_of_the_probe_is_answered_as_the_probe() {
        let status = |method: &str, path: &str| probe(method, path).map_err(|e| e.status);
        assert_eq!(status("GET", "/"), Ok(()));
        assert_eq!(status("GET", "/healthz"), Ok(()));
        // These were all answered 200 with the probe's body.
        for method in [
            "POST", "DELETE", "TRACE", "QUERY", "PROPFIND", "get", "HEAD",
        ] {
            assert_eq!(status(method, "/"), Err(405), "{method}");
        }
        assert_eq!(status("GET", "/v1/events"), Err(404));
        assert_eq!(status("QUERY", "/anything"), Err(404));
    }

    fn names(suffix: &str) -> QueueNames {
        QueueNames {
            events: format!("tally-events{suffix}"),
            events_dlq: format!("tally-events-dlq{suffix}"),
            alerts: format!("tally-alerts{suffix}"),
            alerts_dlq: format!("tally-alerts-dlq{suffix}"),
            jobs: format!("tally-jobs{suffix}"),
        }
    }

    #[test]
    fn batches_go_to_the_handler_their_configured_queue_names() {
        for suffix in ["", "-staging"] {
            let names = names(suffix);
            let check = |queue: &str, expected: Option<Queue>| {
                assert_eq!(names.queue_of(queue), expected, "{queue}");
            };
            check(&format!("tally-events{suffix}"), Some(Queue::Events));
            check(
                &format!("tally-events-dlq{suffix}"),
                Some(Queue::EventDeadLetters),
            );
            check(&format!("tally-alerts{suffix}"), Some(Queue::Alerts));
            check(
                &format!("tally-alerts-dlq{suffix}"),
                Some(Queue::AlertDeadLetters),
            );
            check(&format!("tally-jobs{suffix}"), Some(Queue::Jobs));
        }
    }

    #[test]
    fn a_queue_no_var_names_is_placed_nowhere() {
        let staging = names("-staging");
        // Production's names reaching a staging worker are a misconfiguration, not
        // events.
        for queue in [
            "tally-events",
            "tally-alerts",
            "tally-alerts-dlq",
            "tally-jobs",
            "",
            "other",
        ] {
            assert_eq!(staging.queue_of(queue), None, "{queue}");
        }
        assert_eq!(names("").queue_of("tally-alerts-staging"), None);
    }
}
