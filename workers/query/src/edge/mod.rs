//! The ground floor every wing stands on, and the only one: what the worker takes from
//! its environment (binding names, the request's [`RequestEnv`], the D1 [`store`], the
//! clock [`now_ms`]), how it reads requests ([`params`]), how it answers ([`respond`],
//! [`html`], the JSON shapes two wings share in [`shapes`], browser reads' CORS in
//! [`cors`]) and how errors become HTTP answers ([`error`]).
//!
//! Nothing here imports a wing; the wings (`admin`, `read`, `aliases`, `dashboard`,
//! `badge`, `health`, `openapi`) import this floor, [`crate::access`] and
//! [`crate::route`], never each other (`xtask/src/tidy.rs` checks it).

pub mod cors;
pub mod error;
pub mod filtered;
pub mod html;
pub mod params;
pub mod respond;
pub mod shapes;

use std::cell::RefCell;
use std::ops::Deref;
use std::rc::Rc;

use tally_core::project::Project;
use tally_edge::ApiError;
use tally_storage::d1::{D1Store, Meter};
use tally_storage::shard::{Placements, Router};
use worker::{Date, Env};

/// The control database's D1 binding (see `wrangler/query.toml`); the data shards are
/// `SHARD_0` … ([`tally_storage::d1::shard_binding`]).
pub const DB: &str = "DB";

/// The store every wing reads and writes through: the control database and every data
/// shard, each statement of a project sent to the project's shard.
pub type Store = Router<D1Store>;

thread_local! {
    /// Projects' shards, read from the control database and kept for a minute.
    static PLACEMENTS: Rc<Placements> = Rc::new(Placements::new());
}
/// The KV namespace binding that caches heavy answers.
pub const CACHE: &str = "CACHE";
/// The var saying how long isolates keep a project's placement, in milliseconds (the
/// aggregator reads the same var, and its moves wait it; absent, a minute). Only the
/// local stack's end-to-end tests set it, shorter.
pub const PLACEMENT_TTL_MS: &str = "PLACEMENT_TTL_MS";

/// How long isolates keep a placement (see [`PLACEMENT_TTL_MS`]).
fn placement_ttl_ms(env: &RequestEnv) -> i64 {
    env.var(PLACEMENT_TTL_MS)
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .filter(|ms: &i64| *ms > 0)
        .unwrap_or(tally_storage::shard::PLACEMENT_TTL_MS)
}

/// The secret that guards the admin API.
pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
/// The secret ingest hashes user ids with, to filter by a raw `user_id`.
pub const ID_SECRET: &str = "ID_SECRET";
/// The secret share links are signed with (changing it revokes every link).
pub const SHARE_SECRET: &str = "SHARE_SECRET";
/// The var that sets the rows one filtered read may read before it answers from a
/// sample of users (see `tally_storage::filtered`); its default when absent.
pub const FILTER_ROW_BUDGET: &str = "FILTER_ROW_BUDGET";
/// The var that sets the rows one funnel may read before it answers from a sample of
/// users (see `tally_storage::funnels`); its default when absent.
pub const FUNNEL_ROW_BUDGET: &str = "FUNNEL_ROW_BUDGET";

/// The environment of one request: the worker's bindings (it dereferences to
/// [`worker::Env`]) and the meter every D1 store made for this request adds to. Each
/// request has its own, since one isolate serves several requests at once. It also
/// notes the project of the read token the request was classified with, whose allowed
/// origins decide a browser read's CORS grant ([`cors::decorate`]).
pub struct RequestEnv {
    env: Env,
    meter: Meter,
    reader: RefCell<Option<Project>>,
}

impl RequestEnv {
    pub fn new(env: Env) -> Self {
        Self {
            env,
            meter: Meter::new(),
            reader: RefCell::new(None),
        }
    }

    /// Notes the project of a valid read token the request carries.
    pub fn note_reader(&self, project: Project) {
        *self.reader.borrow_mut() = Some(project);
    }

    /// The project of the request's valid read token, once classified.
    pub fn reader_project(&self) -> Option<Project> {
        self.reader.borrow().clone()
    }

    /// The rows D1 has read for this request so far.
    pub fn rows_read(&self) -> u64 {
        self.meter.rows().read
    }
}

impl Deref for RequestEnv {
    type Target = Env;

    fn deref(&self) -> &Env {
        &self.env
    }
}

/// The store for a request: the control database and the data shards bound (without
/// `SHARD_0`, the control database is the one shard). What every database reads counts
/// towards the request's rows read, through one meter.
///
/// # Errors
///
/// 500 when the control database's binding is missing.
pub fn store(env: &RequestEnv) -> Result<Store, ApiError> {
    let metered = |name: &str| {
        env.d1(name)
            .map(|db| D1Store::metered(db, env.meter.clone()))
    };
    let control = metered(DB).map_err(error::internal)?;
    let mut shards: Vec<D1Store> = (0..tally_storage::d1::MAX_SHARDS)
        .map_while(|n| metered(&tally_storage::d1::shard_binding(n)).ok())
        .collect();
    if shards.is_empty() {
        shards.push(metered(DB).map_err(error::internal)?);
    }
    Ok(Router {
        control,
        shards,
        placements: {
            let placements = PLACEMENTS.with(Rc::clone);
            placements.set_ttl(placement_ttl_ms(env));
            placements
        },
        now_ms: now_ms(),
    })
}

/// The current time, epoch milliseconds: the worker's only read of the clock.
#[allow(
    clippy::disallowed_methods,
    reason = "the worker's one clock read (workers/clippy.toml)"
)]
pub fn now_ms() -> i64 {
    Date::now().as_millis() as i64
}
