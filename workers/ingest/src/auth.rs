//! Admission: the write key (with a short-lived in-isolate cache), the browser origin
//! and the project's rate limit, checked before any body is parsed.

use std::cell::RefCell;
use std::collections::HashMap;

use tally_core::ApiError;
use tally_core::project::{ApiKey, KeyKind, Project, RateLimit, is_key_shaped, key_hash};
use tally_storage::AdminStore;
use tally_storage::d1::D1Store;
use worker::{Env, Request, Url};

use crate::error::internal;
use crate::{DB, now_ms};

/// How long a key lookup is reused: a revoked key stops working, and changed project
/// settings apply, within this time (DESIGN §3 asks for a minute).
pub const KEY_CACHE_MS: i64 = 30_000;
/// Most lookups one isolate remembers; the cache is emptied when it is full.
const KEY_CACHE_ENTRIES: usize = 10_000;

/// What a request may do once admitted.
#[derive(Debug, Clone)]
pub struct Grant {
    pub project: Project,
}

type Lookup = Option<(ApiKey, Project)>;

thread_local! {
    /// Key hash → (lookup, when it was made). Workers run one request at a time per
    /// isolate thread, so a thread-local cache needs no locking.
    static KEYS: RefCell<HashMap<String, (Lookup, i64)>> = RefCell::new(HashMap::new());
}

/// The write key of a request: `Authorization: Bearer <key>`, or a `key` query
/// parameter for clients that cannot set headers (`navigator.sendBeacon`, Plausible's
/// script with `data-api`).
fn presented_key(req: &Request, url: &Url) -> Option<String> {
    let header = req.headers().get("authorization").ok().flatten();
    if let Some(value) = header {
        let value = value.trim();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value);
        return Some(token.trim().to_owned());
    }
    url.query_pairs()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.into_owned())
}

/// Checks the write key, the origin and the rate limit.
///
/// # Errors
///
/// 401 for a missing, malformed, unknown, revoked or read-only key; 403 for a browser
/// origin the project does not allow; 429 when the client is over its rate.
pub async fn admit(req: &Request, env: &Env, url: &Url) -> Result<Grant, ApiError> {
    let project = admit_origin(req, env, url).await?;
    rate_limit(req, env, &project).await?;
    Ok(Grant { project })
}

/// Checks the write key and the origin only (for preflights, which are not counted).
///
/// # Errors
///
/// As [`admit`], but never 429.
pub async fn admit_origin(req: &Request, env: &Env, url: &Url) -> Result<Project, ApiError> {
    let key = presented_key(req, url).ok_or_else(|| {
        ApiError::new(
            401,
            "missing_key",
            "send your project's write key as `Authorization: Bearer tw_...` (or as ?key=tw_...)",
        )
    })?;
    let project = project_of(&key, env).await?;
    if let Some(origin) = req.headers().get("origin").ok().flatten()
        && !project.allows_origin(&origin)
    {
        return Err(ApiError::new(
            403,
            "origin_not_allowed",
            format!(
                "browser origin {origin} may not send events to project {:?}; add it to the \
                 project's allowed_origins",
                project.slug
            ),
        ));
    }
    Ok(project)
}

/// The project a write key belongs to.
async fn project_of(key: &str, env: &Env) -> Result<Project, ApiError> {
    if is_key_shaped(KeyKind::Read, key) {
        return Err(ApiError::new(
            401,
            "wrong_key_kind",
            "this is a read token (tr_...); ingest takes the project's write key (tw_...)",
        ));
    }
    if !is_key_shaped(KeyKind::Write, key) {
        return Err(invalid_key());
    }
    let hash = key_hash(key);
    let now = now_ms();
    let cached = KEYS.with(|keys| {
        keys.borrow()
            .get(&hash)
            .filter(|(_, at)| now - at < KEY_CACHE_MS)
            .map(|(lookup, _)| lookup.clone())
    });
    let lookup = match cached {
        Some(lookup) => lookup,
        None => {
            let store = D1Store::new(env.d1(DB).map_err(internal)?);
            let lookup = store.key_by_hash(&hash).await.map_err(internal)?;
            KEYS.with(|keys| {
                let mut keys = keys.borrow_mut();
                if keys.len() >= KEY_CACHE_ENTRIES {
                    keys.clear();
                }
                keys.insert(hash, (lookup.clone(), now));
            });
            lookup
        }
    };
    match lookup {
        None => Err(invalid_key()),
        Some((key, _)) if key.kind != KeyKind::Write => Err(invalid_key()),
        Some((key, _)) if key.revoked_at.is_some() => Err(ApiError::new(
            401,
            "revoked_key",
            format!(
                "write key {} was revoked; create a new one (cargo xtask project key {})",
                key.prefix, key.project
            ),
        )),
        Some((_, project)) => Ok(project),
    }
}

fn invalid_key() -> ApiError {
    ApiError::new(
        401,
        "invalid_key",
        "the write key is not one Tally issued; copy it again from when it was created, \
         or create a new one (cargo xtask project key <project>)",
    )
}

/// Applies the project's rate-limit tier to this client, keyed by project and client
/// address. A missing binding lets the request through (and logs): refusing all
/// traffic over a configuration slip would lose events.
async fn rate_limit(req: &Request, env: &Env, project: &Project) -> Result<(), ApiError> {
    let Some(binding) = project.rate_limit.binding() else {
        return Ok(());
    };
    let limiter = match env.rate_limiter(binding) {
        Ok(limiter) => limiter,
        Err(e) => {
            worker::console_error!("rate-limit binding {binding} missing: {e}");
            return Ok(());
        }
    };
    let client = client_address(req).unwrap_or_else(|| "unknown".into());
    let outcome = limiter
        .limit(format!("{}|{client}", project.slug))
        .await
        .map_err(internal)?;
    if outcome.success {
        return Ok(());
    }
    let allowed = project.rate_limit.requests().unwrap_or(0);
    Err(ApiError::new(
        429,
        "rate_limited",
        format!(
            "more than {allowed} requests in {} s from this client to project {:?}; retry \
             after the Retry-After seconds, send larger batches, or raise the project's \
             rate_limit",
            RateLimit::PERIOD_S,
            project.slug
        ),
    )
    .with("retry_after", RateLimit::PERIOD_S.into()))
}

/// The client's address as Cloudflare reports it.
pub fn client_address(req: &Request) -> Option<String> {
    req.headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .filter(|ip| !ip.is_empty())
}
