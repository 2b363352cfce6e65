//! `POST /api/event`: Plausible's Events API, so Plausible's tracker script (with
//! `data-api` pointing here and `?key=` carrying the write key) and its server-side
//! clients can send to Tally. Trackers that cannot carry a key (Plausible's classic
//! script, the `plausible-tracker` package) send without one: the event's `domain`
//! then chooses the project, if a project took that domain (`plausible_domain`), and
//! only from the browser origins it allows (`auth::admit_keyless`).
//!
//! The visitor id is the hash of IP and user agent under a salt that rotates daily and is
//! kept only in KV for two days, as Plausible does; the IP itself is never stored. Known
//! bots are answered like everyone else but only counted, never stored as events.

use std::cell::RefCell;

use tally_core::project::{Project, normalize_domain};
use tally_core::queue::{self, Dropped};
use tally_core::time::{date_label, date_of};
use tally_core::{hash, plausible};
use tally_edge::ApiError;
use tally_storage::AdminStore;
use tally_storage::Cache;
use tally_storage::cloudflare::KvCache;
use tally_storage::d1::D1Store;
use worker::{Env, Request, Response, Url};

use crate::auth::{self, client_address};
use crate::error::internal;
use crate::intake::{self, Intake};
use crate::{CACHE, DB};

/// How long an isolate reuses the day's salt before reading KV again, so isolates that
/// raced to create it converge on the stored one.
const SALT_REUSE_MS: i64 = 5 * 60_000;
/// How long KV keeps a day's salt: the day, plus a margin for late requests.
const SALT_TTL_S: u32 = 2 * 86_400;

/// The name of Plausible's page-leave events.
const ENGAGEMENT: &str = "engagement";

thread_local! {
    /// (day label, salt, read at).
    static SALT: RefCell<Option<(String, String, i64)>> = const { RefCell::new(None) };
}

pub async fn post(mut req: Request, env: &Env, url: &Url) -> Result<Response, ApiError> {
    let media_type = intake::media_type(&req);
    // Plausible's script sends text/plain, which needs no CORS preflight.
    if !matches!(media_type.as_str(), "application/json" | "text/plain") {
        return Err(intake::unsupported(
            &media_type,
            "application/json or text/plain",
        ));
    }
    let key = intake::idempotency_key(&req)?;
    let (grant, page) = if auth::presents_key(&req, url) {
        let grant = auth::admit(&req, env, url).await?;
        let body = intake::read_body(&mut req).await?;
        let page = plausible::parse(&body)?;
        check_domain(env, &page.domain, &grant.project).await?;
        (grant, page)
    } else {
        // The domain is in the body, so the body (within its limit) is read before
        // admission. A body that does not parse names no project: it is refused as any
        // request without a key is, which is what it was before keyless events.
        let body = intake::read_body(&mut req).await?;
        let page = plausible::parse(&body).map_err(|_| auth::missing_key())?;
        let grant = auth::admit_keyless(&req, env, &page.domain).await?;
        (grant, page)
    };
    if page.raw.name.as_deref() == Some(ENGAGEMENT) {
        // Sent by Plausible's script when a page is left (scroll depth, time on page):
        // not a pageview or a goal, so not an event to count.
        return accepted(Some(ENGAGEMENT));
    }
    let intake = Intake::new(&req, env, &grant, key)?;

    let user_agent = req
        .headers()
        .get("user-agent")
        .ok()
        .flatten()
        .unwrap_or_default();
    if plausible::is_bot(&user_agent) {
        let dropped = Dropped {
            event_id: intake.event_id(0),
            project: intake.project.clone(),
            timestamp: intake.now_ms(),
            reason: "bot".into(),
        };
        intake::enqueue(env, queue::pack_dropped(dropped)).await?;
        return accepted(Some("bot"));
    }

    // Cloudflare's own header only: `X-Forwarded-For` is whatever the client wrote, so
    // trusting it let anyone mint visitors (and another person's address be hashed).
    let ip = client_address(&req).unwrap_or_default();
    let salt = daily_salt(env, intake.now_ms()).await?;
    let mut raw = page.raw;
    raw.user = Some(hash::visitor(
        salt.as_bytes(),
        &intake.project,
        &ip,
        &user_agent,
    ));
    let event = intake.check(raw, 0).map_err(|r| {
        ApiError::bad_request(r.code, r.message)
            .with("field", r.field.map_or(serde_json::Value::Null, Into::into))
    })?;
    intake::enqueue_event(env, &event.event).await?;
    accepted(None)
}

/// Plausible's answer: 202 `ok`. A dropped request says so in a header only.
fn accepted(dropped: Option<&str>) -> Result<Response, ApiError> {
    let mut response = Response::ok("ok").map_err(internal)?.with_status(202);
    let headers = response.headers_mut();
    headers
        .set("content-type", "text/plain; charset=utf-8")
        .map_err(internal)?;
    if let Some(reason) = dropped {
        headers.set("x-tally-dropped", reason).map_err(internal)?;
    }
    Ok(response)
}

/// The `domain` must name the key's project: its slug, the site's domain written as the
/// slug (`example.com` for project `example-com`), or its `plausible_domain`.
async fn check_domain(env: &Env, domain: &str, project: &Project) -> Result<(), ApiError> {
    let as_slug = slugify(domain);
    let as_domain = normalize_domain(domain);
    if domain == project.slug
        || as_slug == project.slug
        || (as_domain.is_some() && as_domain == project.plausible_domain)
    {
        return Ok(());
    }
    let project = project.slug.as_str();
    let store = D1Store::new(env.d1(DB).map_err(internal)?);
    let exists = store.project(&as_slug).await.map_err(internal)?.is_some()
        || store.project(domain).await.map_err(internal)?.is_some()
        || match &as_domain {
            Some(d) => store
                .project_by_plausible_domain(d)
                .await
                .map_err(internal)?
                .is_some(),
            None => false,
        };
    if exists {
        Err(ApiError::new(
            403,
            "project_mismatch",
            format!("this write key belongs to project {project:?}, not {domain:?}"),
        ))
    } else {
        Err(ApiError::new(
            404,
            "unknown_project",
            format!(
                "there is no project {domain:?}; set domain (data-domain) to the project slug \
                 {project:?}"
            ),
        ))
    }
}

/// A domain as a project slug: lowercase, with every character outside `[a-z0-9-]`
/// replaced by `-`.
fn slugify(domain: &str) -> String {
    domain
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Today's visitor salt (UTC day): random, made by the first request of the day and
/// kept in KV for two days, so a visitor cannot be followed from one day to the next and
/// no past salt can be recomputed.
async fn daily_salt(env: &Env, now_ms: i64) -> Result<String, ApiError> {
    let day = date_label(date_of(now_ms));
    let cached = SALT.with(|s| {
        s.borrow()
            .as_ref()
            .filter(|(d, _, at)| *d == day && now_ms - at < SALT_REUSE_MS)
            .map(|(_, salt, _)| salt.clone())
    });
    if let Some(salt) = cached {
        return Ok(salt);
    }
    let kv = KvCache::new(env.kv(CACHE).map_err(internal)?);
    let key = format!("visitor-salt:{day}");
    let salt = match kv.get(&key).await.map_err(internal)? {
        Some(salt) => salt,
        None => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(internal)?;
            let salt = hash::hex(&bytes);
            kv.put(&key, &salt, SALT_TTL_S).await.map_err(internal)?;
            salt
        }
    };
    SALT.with(|s| *s.borrow_mut() = Some((day, salt.clone(), now_ms)));
    Ok(salt)
}
