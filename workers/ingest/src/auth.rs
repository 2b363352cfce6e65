//! Admission: the write key (with a short-lived in-isolate cache), the browser origin
//! and the project's rate limit, checked before any body is parsed; or, for Plausible's
//! keyless trackers, the event's domain and the browser origin ([`admit_keyless`]).

use std::cell::{Cell, RefCell};

use tally_core::project::{
    ApiKey, KeyKind, Project, RateLimit, is_key_shaped, key_hash, normalize_domain,
};
use tally_edge::ApiError;
use tally_storage::cloudflare::KvCache;
use tally_storage::d1::D1Store;
use tally_storage::{AdminStore, Cache};
use worker::{Env, Request, Url};

use crate::error::internal;
use crate::key_cache::KeyCache;
use crate::{CACHE, DB, LOOKUP_LIMIT, now_ms};

/// How long a key lookup is reused: a revoked key stops working, and changed project
/// settings apply, within this time (DESIGN §3 asks for a minute).
pub const KEY_CACHE_MS: i64 = 30_000;
/// How long "no such key" is reused: long enough that a client repeating a wrong key
/// costs one D1 query per few seconds, short enough not to matter otherwise.
pub const UNKNOWN_KEY_CACHE_MS: i64 = 5_000;
/// Most lookups one isolate remembers (least recently used go first).
const KEY_CACHE_ENTRIES: usize = 10_000;
/// How often one isolate reports a missing binding, at most.
const MISSING_REPORT_MS: i64 = 60_000;

/// What a request may do once admitted.
#[derive(Debug, Clone)]
pub struct Grant {
    pub project: Project,
}

type Lookup = Option<(ApiKey, Project)>;

thread_local! {
    /// Key hash → lookup. Workers run one request at a time per isolate thread, so a
    /// thread-local cache needs no locking.
    static KEYS: RefCell<KeyCache<Lookup>> = RefCell::new(KeyCache::new(KEY_CACHE_ENTRIES));
    /// Plausible domain → the project that takes keyless events for it, or none. Bounded
    /// like the keys, and an unknown domain is remembered too, so a flood of made-up
    /// domains costs at most one D1 query per domain per few seconds, each within the
    /// client's lookup limit.
    static DOMAINS: RefCell<KeyCache<Option<Project>>> =
        RefCell::new(KeyCache::new(KEY_CACHE_ENTRIES));
    /// When this isolate last reported a missing binding.
    static REPORTED_MISSING: Cell<i64> = const { Cell::new(i64::MIN) };
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

/// Whether the request presents a write key at all (else it may be a keyless Plausible
/// event).
pub fn presents_key(req: &Request, url: &Url) -> bool {
    presented_key(req, url).is_some()
}

/// The refusal of a request without a write key.
pub fn missing_key() -> ApiError {
    ApiError::new(
        401,
        "missing_key",
        "send your project's write key as `Authorization: Bearer tw_...` (or as ?key=tw_...)",
    )
}

fn origin_not_allowed(origin: &str, project: &Project) -> ApiError {
    ApiError::new(
        403,
        "origin_not_allowed",
        format!(
            "browser origin {origin} may not send events to project {:?}; add it to the \
             project's allowed_origins",
            project.slug
        ),
    )
}

/// Admits a Plausible event without a key: the project whose `plausible_domain` is the
/// event's `domain`, from a browser origin that project allows, within its rate limit.
///
/// Without an `Origin` (a server, which can hold a key), for a domain no project took,
/// or one that is no domain, the answer is the refusal of any request without a key,
/// as before keyless events existed: it tells nothing about which domains exist.
///
/// # Errors
///
/// 401 `missing_key` as said; 403 for an origin the project does not allow; 429 when the
/// client is over the project's rate or made too many lookups.
pub async fn admit_keyless(req: &Request, env: &Env, domain: &str) -> Result<Grant, ApiError> {
    let origin = req
        .headers()
        .get("origin")
        .ok()
        .flatten()
        .ok_or_else(missing_key)?;
    let domain = normalize_domain(domain).ok_or_else(missing_key)?;
    let project = keyless_project(&domain, req, env)
        .await?
        .ok_or_else(missing_key)?;
    if !project.allows_origin(&origin) {
        return Err(origin_not_allowed(&origin, &project));
    }
    rate_limit(req, env, &project).await?;
    Ok(Grant { project })
}

/// The project that takes keyless events for `domain`, through the isolate's cache.
async fn keyless_project(
    domain: &str,
    req: &Request,
    env: &Env,
) -> Result<Option<Project>, ApiError> {
    let now = now_ms();
    if let Some(found) = DOMAINS.with(|d| d.borrow_mut().get(domain, now)) {
        return Ok(found);
    }
    limit_lookups(req, env, now).await?;
    let store = D1Store::new(env.d1(DB).map_err(internal)?);
    let found = store
        .project_by_plausible_domain(domain)
        .await
        .map_err(internal)?;
    let ttl = if found.is_some() {
        KEY_CACHE_MS
    } else {
        UNKNOWN_KEY_CACHE_MS
    };
    DOMAINS.with(|d| {
        d.borrow_mut()
            .insert(domain.to_owned(), found.clone(), now, now + ttl)
    });
    Ok(found)
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
    let key = presented_key(req, url).ok_or_else(missing_key)?;
    let project = project_of(&key, req, env).await?;
    if let Some(origin) = req.headers().get("origin").ok().flatten()
        && !project.allows_origin(&origin)
    {
        return Err(origin_not_allowed(&origin, &project));
    }
    Ok(project)
}

/// The project a write key belongs to.
async fn project_of(key: &str, req: &Request, env: &Env) -> Result<Project, ApiError> {
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
    let cached = KEYS.with(|keys| keys.borrow_mut().get(&hash, now));
    let lookup = match cached {
        Some(lookup) => lookup,
        None => {
            // Every lookup that misses the cache costs a query of the database all
            // tenants share: limit them per client address before making one, so random
            // well-formed keys cannot load D1.
            limit_lookups(req, env, now).await?;
            let store = D1Store::new(env.d1(DB).map_err(internal)?);
            let lookup = store.key_by_hash(&hash).await.map_err(internal)?;
            let ttl = if lookup.is_some() {
                KEY_CACHE_MS
            } else {
                UNKNOWN_KEY_CACHE_MS
            };
            KEYS.with(|keys| {
                keys.borrow_mut()
                    .insert(hash, lookup.clone(), now, now + ttl)
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

/// Limits key lookups that reach D1 per client address ([`LOOKUP_LIMIT`]).
///
/// # Errors
///
/// 429 when this address made too many lookups of unknown keys.
async fn limit_lookups(req: &Request, env: &Env, now: i64) -> Result<(), ApiError> {
    let Some(limiter) = limiter(env, LOOKUP_LIMIT, now).await else {
        return Ok(());
    };
    let client = client_address(req).unwrap_or_else(|| "unknown".into());
    let outcome = limiter.limit(client).await.map_err(internal)?;
    if outcome.success {
        return Ok(());
    }
    Err(ApiError::new(
        429,
        "rate_limited",
        format!(
            "too many requests with keys Tally does not know from this client in {} s; \
             check the write key, and retry after the Retry-After seconds",
            RateLimit::PERIOD_S
        ),
    )
    .with("retry_after", RateLimit::PERIOD_S.into()))
}

/// The rate limiter bound as `binding`. A missing one lets requests through (refusing
/// all traffic over a configuration slip would lose events), but not silently: it is
/// logged and reported in KV for the admin view of `/v1/health`.
async fn limiter(env: &Env, binding: &str, now: i64) -> Option<worker::RateLimiter> {
    match env.rate_limiter(binding) {
        Ok(limiter) => Some(limiter),
        Err(e) => {
            worker::console_error!("rate-limit binding {binding} missing: {e}");
            if now - REPORTED_MISSING.get() >= MISSING_REPORT_MS {
                REPORTED_MISSING.set(now);
                report_missing(env, binding, now).await;
            }
            None
        }
    }
}

/// Records in KV that `binding` is missing (for an hour, renewed while it stays so).
async fn report_missing(env: &Env, binding: &str, now: i64) {
    let Ok(kv) = env.kv(CACHE).map(KvCache::new) else {
        return;
    };
    let report = serde_json::json!({"bindings": [binding], "at": now}).to_string();
    if let Err(e) = kv
        .put(tally_core::project::MISSING_BINDINGS_KEY, &report, 3_600)
        .await
    {
        worker::console_error!("could not report the missing binding {binding}: {e}");
    }
}

/// Applies the project's rate-limit tier to this client, keyed by project and client
/// address.
async fn rate_limit(req: &Request, env: &Env, project: &Project) -> Result<(), ApiError> {
    let Some(binding) = project.rate_limit.binding() else {
        return Ok(());
    };
    let now = now_ms();
    let Some(limiter) = limiter(env, binding, now).await else {
        return Ok(());
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
