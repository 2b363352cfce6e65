//! Share links: `POST /v1/admin/projects/{p}/share` makes a link to the project's
//! dashboard that works without a token until it expires or is revoked; `GET` lists the
//! project's links (never their tokens) and `DELETE .../share/{id}` revokes one. Each
//! link is a row of `share_links` and a token signed with the `SHARE_SECRET` secret
//! ([`tally_core::share`]); changing the secret revokes every link at once.

use crate::edge::Store;
use serde::Deserialize;
use serde_json::{Value, json};
use tally_core::share::{self, ID_BYTES, MAX_LIFETIME_S, ShareLink};
use tally_core::time::{DAY_MS, format_ms};
use tally_edge::ApiError;
use tally_storage::access::AccessStore;
use worker::{Response, Url};

use crate::access::share_secret;
use crate::edge::RequestEnv;
use crate::edge::error::internal;
use crate::edge::respond::json_value;
use crate::route::Entry;

/// `POST /v1/admin/projects/{p}/share` with `{"expires_in_days": N}` or
/// `{"expires_in_seconds": N}` (default 30 days, at most 366): a link to the project's
/// dashboard that works without a token until it expires or is revoked. The caller has
/// checked the admin token and that the project exists.
///
/// # Errors
///
/// 400 for a bad body, 503 when the `SHARE_SECRET` secret is not set, 500 when D1 fails.
pub async fn mint(
    store: &Store,
    url: &Url,
    env: &RequestEnv,
    slug: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    let lifetime_s = share_lifetime(body)?;
    let secret = share_secret(env).ok_or_else(|| {
        worker::console_error!("the SHARE_SECRET secret is not set");
        ApiError::new(
            503,
            "misconfigured",
            "share links are off until the operator sets the SHARE_SECRET secret",
        )
    })?;
    let mut random = [0u8; ID_BYTES];
    getrandom::fill(&mut random).map_err(internal)?;
    let expires_s = now_ms.div_euclid(1000) + lifetime_s;
    let link = ShareLink {
        id: share::new_id(&random),
        project: slug.to_owned(),
        created_at: now_ms,
        expires_at: expires_s * 1000,
        revoked_at: None,
    };
    if !store.create_share_link(&link).await.map_err(internal)? {
        return Err(ApiError::not_found(format!("there is no project {slug:?}")));
    }
    // The token is an id, digits and hex digits joined by dots: nothing in it needs
    // escaping in a URL.
    let token = share::sign(&secret, slug, &link.id, expires_s);
    let address = format!(
        "{}{}?share={token}",
        url.origin().ascii_serialization(),
        Entry::Dashboard.path(slug)
    );
    let body = json!({"share": {
        "id": link.id,
        "url": address,
        "token": token,
        "expires_at": format_ms(expires_s * 1000),
    }});
    json_value(201, &body, None)
}

/// `GET /v1/admin/projects/{p}/share`: the project's links, newest first, with whether
/// each still works; never their tokens.
///
/// # Errors
///
/// 500 when D1 fails.
pub async fn list(store: &Store, slug: &str, now_ms: i64) -> Result<Response, ApiError> {
    let links = store.share_links(slug).await.map_err(internal)?;
    let list: Vec<Value> = links.iter().map(|l| l.to_json(now_ms)).collect();
    json_value(200, &json!({ "share_links": list }), None)
}

/// `DELETE /v1/admin/projects/{p}/share/{id}`: revokes one link at once (an earlier
/// revocation stands).
///
/// # Errors
///
/// 404 when the project has no such link, 500 when D1 fails.
pub async fn revoke(
    store: &Store,
    slug: &str,
    id: &str,
    now_ms: i64,
) -> Result<Response, ApiError> {
    let link = store
        .revoke_share_link(slug, id, now_ms)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "project {slug:?} has no share link with id {id:?}; \
                 GET /v1/admin/projects/{slug}/share lists them"
            ))
        })?;
    json_value(200, &json!({ "share_link": link.to_json(now_ms) }), None)
}

/// Reads a share request's lifetime in seconds.
fn share_lifetime(body: &[u8]) -> Result<i64, ApiError> {
    #[derive(Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ShareRequest {
        expires_in_days: Option<i64>,
        expires_in_seconds: Option<i64>,
    }
    let bad = |message: String| ApiError::bad_request("invalid_share", message);
    let request: ShareRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ShareRequest::default()
    } else {
        tally_core::json::from_object(body).map_err(|e| {
            bad(format!(
                "send a JSON object {{\"expires_in_days\": N}} or \
                 {{\"expires_in_seconds\": N}} with a whole number: {e}"
            ))
        })?
    };
    let seconds = |name: &str, n: Option<i64>, unit: i64| {
        n.map(|n| {
            n.checked_mul(unit)
                .filter(|s| (1..=MAX_LIFETIME_S).contains(s))
                .ok_or_else(|| {
                    bad(format!(
                        "{name} must give 1 s to {} days",
                        MAX_LIFETIME_S / (DAY_MS / 1000)
                    ))
                })
        })
    };
    match (
        seconds("expires_in_days", request.expires_in_days, DAY_MS / 1000),
        seconds("expires_in_seconds", request.expires_in_seconds, 1),
    ) {
        (Some(_), Some(_)) => Err(bad(
            "give expires_in_days or expires_in_seconds, not both".into()
        )),
        (Some(s), None) | (None, Some(s)) => s,
        (None, None) => Ok(30 * DAY_MS / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_lifetimes() {
        let check = |body: &str, expected: Result<i64, &str>| {
            let got = share_lifetime(body.as_bytes());
            match expected {
                Ok(s) => assert_eq!(got, Ok(s), "{body}"),
                Err(fragment) => {
                    let e = got.expect_err(body);
                    assert!(e.message.contains(fragment), "{body}: {}", e.message);
                    assert_eq!(e.status, 400);
                }
            }
        };
        check("", Ok(30 * 86_400));
        check("{}", Ok(30 * 86_400));
        check(r#"{"expires_in_days": 7}"#, Ok(7 * 86_400));
        check(r#"{"expires_in_seconds": 1}"#, Ok(1));
        check(r#"{"expires_in_days": 366}"#, Ok(366 * 86_400));
        check(r#"{"expires_in_days": 367}"#, Err("1 s to 366 days"));
        check(r#"{"expires_in_days": 0}"#, Err("1 s to 366 days"));
        check(r#"{"expires_in_days": 1.5}"#, Err("whole number"));
        check(
            r#"{"expires_in_days": 1, "expires_in_seconds": 1}"#,
            Err("not both"),
        );
        check(r#"{"days": 1}"#, Err("unknown field `days`"));
        check(r#"{"expires_in_seconds": -5}"#, Err("1 s to 366 days"));
        check("[]", Err("JSON object"));
        // serde reads a struct from an array of its fields; a share request is an object.
        check("[null, null]", Err("JSON object"));
        check("[7, null]", Err("JSON object"));
        check("nope", Err("expires_in_days"));
    }
}
