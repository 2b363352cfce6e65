//! Answers: JSON with `Cache-Control`, a strong ETag (`If-None-Match` → 304) and, for
//! heavy answers, the KV cache; and plain JSON answers with a status.

use serde_json::Value;
use sha2::{Digest, Sha256};
use tally_core::hash::hex;
use tally_edge::ApiError;
use tally_storage::Cache;
use tally_storage::cloudflare::KvCache;
use worker::{Request, Response};

use super::error::internal;
use super::{CACHE, RequestEnv};

/// A JSON answer with `status`, and a `Cache-Control` header when given.
///
/// # Errors
///
/// 500 when the response cannot be built, which plain JSON values never cause.
pub fn json_value(
    status: u16,
    body: &Value,
    cache_control: Option<&str>,
) -> Result<Response, ApiError> {
    let mut response = Response::from_json(body)
        .map_err(internal)?
        .with_status(status);
    if let Some(value) = cache_control {
        response
            .headers_mut()
            .set("cache-control", value)
            .map_err(internal)?;
    }
    Ok(response)
}

/// A strong ETag of a body: a quoted hex SHA-256 prefix (128 bits).
pub fn etag(body: &str) -> String {
    format!("\"{}\"", &hex(&Sha256::digest(body.as_bytes()))[..32])
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, as RFC 9110
/// prescribes for `If-None-Match`).
pub fn none_match(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A JSON answer that private caches may keep `max_age_s` seconds, with a strong ETag;
/// 304 without a body when the request's `If-None-Match` holds it.
///
/// # Errors
///
/// 500 when the response cannot be built.
pub fn json(req: &Request, body: String, max_age_s: u32) -> Result<Response, ApiError> {
    let tag = etag(&body);
    let matched = req
        .headers()
        .get("if-none-match")
        .ok()
        .flatten()
        .is_some_and(|h| none_match(&h, &tag));
    let mut response = if matched {
        Response::empty().map_err(internal)?.with_status(304)
    } else {
        let mut r = Response::ok(body).map_err(internal)?;
        r.headers_mut()
            .set("content-type", "application/json")
            .map_err(internal)?;
        r
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("etag", tag.as_str()),
        ("cache-control", &format!("private, max-age={max_age_s}")),
        ("vary", "authorization"),
    ] {
        headers.set(name, value).map_err(internal)?;
    }
    Ok(response)
}

/// Whether an answer came from the KV cache, for the `x-tally-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kv {
    /// The range is short: KV is not used.
    Bypass,
    Hit,
    Miss,
}

impl Kv {
    /// The `x-tally-cache` header's value: none when KV was not used.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Self::Bypass => None,
            Self::Hit => Some("hit"),
            Self::Miss => Some("miss"),
        }
    }
}

/// The answer body for `query` (the project and every normalized parameter that shapes
/// the answer): from KV when `heavy` and cached there, else from `compute`, then kept in
/// KV for `ttl_s` seconds. The key holds the project in the clear and a hash of the
/// whole query, so one project's answer is never another's. KV failures are logged and
/// the answer computed.
///
/// # Errors
///
/// `compute`'s error.
pub async fn cached<F>(
    env: &RequestEnv,
    project: &str,
    query: &str,
    heavy: bool,
    ttl_s: u32,
    compute: F,
) -> Result<(String, Kv), ApiError>
where
    F: AsyncFnOnce() -> Result<serde_json::Value, ApiError>,
{
    if !heavy {
        return Ok((compute().await?.to_string(), Kv::Bypass));
    }
    let key = kv_key(project, query);
    let kv = match env.kv(CACHE) {
        Ok(kv) => Some(KvCache::new(kv)),
        Err(e) => {
            worker::console_error!("no KV binding {CACHE}: {e}");
            None
        }
    };
    if let Some(kv) = &kv {
        match kv.get(&key).await {
            Ok(Some(body)) => return Ok((body, Kv::Hit)),
            Ok(None) => {}
            Err(e) => worker::console_error!("KV read of {key}: {e}"),
        }
    }
    let body = compute().await?.to_string();
    if let Some(kv) = &kv
        && let Err(e) = kv.put(&key, &body, ttl_s).await
    {
        worker::console_error!("KV write of {key}: {e}");
    }
    Ok((body, Kv::Miss))
}

/// The KV key of a query: `q1:{project}:{hash}`.
pub fn kv_key(project: &str, query: &str) -> String {
    let digest = Sha256::digest(format!("{project}\n{query}").as_bytes());
    format!("q1:{project}:{}", &hex(&digest)[..40])
}

/// [`json`] plus the `x-tally-cache` header telling whether KV answered.
///
/// # Errors
///
/// 500 when the response cannot be built.
pub fn json_cached(
    req: &Request,
    (body, kv): (String, Kv),
    max_age_s: u32,
) -> Result<Response, ApiError> {
    let mut response = json(req, body, max_age_s)?;
    let Some(value) = kv.header() else {
        return Ok(response);
    };
    response
        .headers_mut()
        .set("x-tally-cache", value)
        .map_err(internal)?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_strong_and_if_none_match_compares_weakly() {
        let tag = etag("{\"a\":1}");
        assert_eq!(tag.len(), 34);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_ne!(tag, etag("{\"a\":2}"));
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"x\"", &tag));
        assert!(!none_match("", &tag));
    }

    #[test]
    fn kv_keys_separate_projects_and_queries() {
        let a = kv_key("a", "timeseries|1|2|day");
        assert!(a.starts_with("q1:a:"));
        assert_ne!(a, kv_key("b", "timeseries|1|2|day"));
        assert_ne!(a, kv_key("a", "timeseries|1|2|week"));
        assert!(a.len() < 512, "KV keys are at most 512 bytes");
    }
}
