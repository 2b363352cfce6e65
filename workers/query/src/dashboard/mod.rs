//! The server-rendered dashboard: `GET /dashboard/{p}` and its alias
//! `/admin/plugins/{slug}/analytics` (the same page), `POST /dashboard/{p}/login` and
//! `/logout`; and minting share links for the admin API.
//!
//! The page reads rollups through `tally_storage::read` (clean day rows plus hour rows;
//! percentiles and uniques from merged sketches and HyperLogLogs), computes a
//! [`report::Report`] and renders it as HTML with inline CSS and SVG ([`page`]), with the
//! project's alert rules, recent alerts and paused campaigns ([`alerts`]). No
//! JavaScript: the range picker and the funnel steps are GET forms.

pub mod access;
pub mod alerts;
pub mod html;
pub mod page;
pub mod report;
pub mod svg;

use serde::Deserialize;
use serde_json::json;
use tally_core::ApiError;
use tally_core::range::{self, Limits, Query};
use tally_core::rollup::Dimension;
use tally_core::share::{self, MAX_LIFETIME_S};
use tally_core::time::{DAY_MS, Interval, format_ms};
use tally_core::validate::is_valid_slug;
use tally_storage::alerts::AlertStore;
use tally_storage::{AdminStore, read};
use worker::{Date, Method, Request, Response, Url};

use crate::RequestEnv;

use self::access::Denied;
use self::alerts::Alerts;
use self::page::{Access, Page, Picked};
use self::report::{Inputs, Report};
use crate::error::internal;

/// Which path the page was asked for; the login form returns there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `/dashboard/{p}`.
    Dashboard,
    /// `/admin/plugins/{slug}/analytics`.
    Admin,
}

impl Entry {
    fn path(self, project: &str) -> String {
        match self {
            Self::Dashboard => format!("/dashboard/{project}"),
            Self::Admin => format!("/admin/plugins/{project}/analytics"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Dashboard => "dashboard",
            Self::Admin => "admin",
        }
    }
}

/// Days shown when the request names no range.
pub const DEFAULT_DAYS: &str = "7";
/// Longest range the dashboard shows, in days.
pub const MAX_DAYS: i64 = 366;
/// Most days the heatmap covers: it reads hour rows, 24 per day and route.
pub const HEATMAP_DAYS: i64 = 28;

/// Routes the dashboard's paths; `rest` is what follows the project. Failures are shown
/// as a small HTML page, not JSON.
pub async fn route(
    req: Request,
    env: &RequestEnv,
    project: &str,
    rest: &[&str],
    entry: Entry,
) -> Result<Response, ApiError> {
    let result = match (req.method(), rest) {
        _ if !is_valid_slug(project) => Err(ApiError::not_found(format!(
            "{project:?} is not a project slug"
        ))),
        (Method::Get | Method::Head, []) => get(&req, env, project, entry).await,
        (Method::Post, ["login"]) if entry == Entry::Dashboard => login(req, env, project).await,
        (Method::Post, ["logout"]) if entry == Entry::Dashboard => logout(&req, project),
        (_, []) => Err(ApiError::method_not_allowed("GET")),
        (_, ["login" | "logout"]) => Err(ApiError::method_not_allowed("POST")),
        _ => Err(ApiError::not_found("no such dashboard page")),
    };
    result.or_else(|e| error_page(&e))
}

/// A failure as a small HTML page with the same status.
fn error_page(error: &ApiError) -> Result<Response, ApiError> {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Tally</title></head><body style=\"font:15px system-ui,sans-serif;margin:10vh auto;max-width:32em;padding:0 16px\">\
         <h1>{}</h1><p>{}</p></body></html>",
        error.status,
        html::escape(&error.message)
    );
    html_response(&body, error.status)
}

/// An HTML answer with the headers every dashboard page has: never cached by others,
/// no scripts, no framing, no referrer (a share link must not leak through one).
fn html_response(body: &str, status: u16) -> Result<Response, ApiError> {
    let mut response = Response::from_html(body)
        .map_err(internal)?
        .with_status(status);
    let headers = response.headers_mut();
    for (name, value) in [
        ("cache-control", "private, no-cache"),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ] {
        headers.set(name, value).map_err(internal)?;
    }
    Ok(response)
}

/// A 303 to `path` on this host (a relative `Location`), with `set-cookie`.
fn see_other(path: &str, cookie: &str) -> Result<Response, ApiError> {
    let mut response = Response::empty().map_err(internal)?.with_status(303);
    let headers = response.headers_mut();
    headers.set("location", path).map_err(internal)?;
    headers.append("set-cookie", cookie).map_err(internal)?;
    headers.set("cache-control", "no-store").map_err(internal)?;
    Ok(response)
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

async fn get(
    req: &Request,
    env: &RequestEnv,
    slug: &str,
    entry: Entry,
) -> Result<Response, ApiError> {
    let url = req.url().map_err(internal)?;
    let now = Date::now().as_millis() as i64;
    let store = crate::store(env)?;
    let project = store.project(slug).await.map_err(internal)?;
    let share_token = param(&url, "share");
    let access = access::decide(
        req,
        env,
        &store,
        project.as_ref(),
        slug,
        share_token.as_deref(),
        now,
    )
    .await?;
    let access = match access {
        Ok(access) => access,
        Err(denied) => return login_page(slug, entry, &denied),
    };

    let mut picked = Picked {
        days: param(&url, "days"),
        from: param(&url, "from"),
        to: param(&url, "to"),
    };
    if picked == Picked::default() {
        picked.days = Some(DEFAULT_DAYS.to_owned());
    }
    let steps = param(&url, "steps").unwrap_or_default();
    let limits = Limits {
        default_days: 30,
        max_days: MAX_DAYS,
    };
    let query = Query {
        from: picked.from.as_deref(),
        to: picked.to.as_deref(),
        days: picked.days.as_deref(),
    };
    let path = entry.path(slug);
    let mut page = Page {
        project: slug,
        path: &path,
        access: &access,
        picked: &picked,
        from: 0,
        to: 0,
        steps: &steps,
        report: None,
        error: None,
        alerts: None,
    };
    let range = match range::resolve(query, now, limits) {
        Ok(range) => range,
        Err(error) => {
            let message = error.to_string();
            page.error = Some(&message);
            return html_response(&page::dashboard(&page), 400);
        }
    };
    // Whole hours: the range starts at the hour that holds `from`.
    let (from, to) = (Interval::Hour.floor(range.from_ms), range.to_ms);
    let interval = report::interval_for(from, to);
    // One read per dimension the page shows, side by side: reading every dimension at
    // once would also load the cross dimensions (`item_country`, `item_variant`,
    // `error_route`), most of the rows of a busy project and none of them shown.
    let reads = report::DIMENSIONS
        .iter()
        .map(|d| read::merged(&store, slug, from, to, Some(*d)));
    let merged: read::Merged = futures_util::future::try_join_all(reads)
        .await
        .map_err(internal)?
        .into_iter()
        .flatten()
        .collect();
    let series = read::series(&store, slug, from, to, interval, Some(Dimension::All))
        .await
        .map_err(internal)?;
    let heatmap_from = from.max(Interval::Hour.floor(to - HEATMAP_DAYS * DAY_MS));
    let route_hours = read::series(
        &store,
        slug,
        heatmap_from,
        to,
        Interval::Hour,
        Some(Dimension::Route),
    )
    .await
    .map_err(internal)?;
    let step_names = report::parse_steps(&steps);
    let report = Report::new(&Inputs {
        from,
        to,
        merged: &merged,
        series: &series,
        interval,
        route_hours: &route_hours,
        heatmap_from,
        steps: &step_names,
    });
    // Alerts are operations, not analytics: shown to holders of a token or a share link,
    // not to every visitor of a public dashboard.
    let alerts = if access == Access::Public {
        None
    } else {
        Some(Alerts {
            rules: store.alert_rules(Some(slug)).await.map_err(internal)?,
            history: store
                .alerts(slug, from, to, alerts::HISTORY)
                .await
                .map_err(internal)?,
            campaigns: store.campaigns(slug).await.map_err(internal)?,
        })
    };
    page.from = from;
    page.to = to;
    page.report = Some(&report);
    page.alerts = alerts.as_ref();
    html_response(&page::dashboard(&page), 200)
}

fn login_page(slug: &str, entry: Entry, denied: &Denied) -> Result<Response, ApiError> {
    let message = denied.message();
    let body = page::login(slug, entry.name(), message.as_deref());
    let mut response = html_response(&body, denied.status())?;
    response
        .headers_mut()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    Ok(response)
}

/// `POST /dashboard/{p}/login` with a form of `token` and `next`: a read token of the
/// project sets the cookie and returns to the page; anything else shows the form again.
async fn login(mut req: Request, env: &RequestEnv, slug: &str) -> Result<Response, ApiError> {
    let url = req.url().map_err(internal)?;
    let body = req.bytes().await.map_err(|e| {
        ApiError::bad_request("unreadable_body", format!("could not read the form: {e}"))
    })?;
    let field = |name: &str| {
        worker::url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (token, next) = (field("token"), field("next"));
    let entry = if next == Entry::Admin.name() {
        Entry::Admin
    } else {
        Entry::Dashboard
    };
    if token.is_empty() {
        return login_page(slug, entry, &Denied::Invalid("Enter a read token.".into()));
    }
    let store = crate::store(env)?;
    match access::check_read_token(&store, slug, &token).await? {
        Ok(()) => {
            let secure = url.scheme() == "https";
            see_other(&entry.path(slug), &access::set_cookie(slug, &token, secure))
        }
        Err(denied) => login_page(slug, entry, &denied),
    }
}

/// `POST /dashboard/{p}/logout`: forgets the cookie and returns to the login form.
fn logout(req: &Request, slug: &str) -> Result<Response, ApiError> {
    let secure = req.url().map_err(internal)?.scheme() == "https";
    see_other(
        &Entry::Dashboard.path(slug),
        &access::clear_cookie(slug, secure),
    )
}

/// `POST /v1/admin/projects/{p}/share` with `{"expires_in_days": N}` or
/// `{"expires_in_seconds": N}` (default 30 days, at most 366): a link to the project's
/// dashboard that works without a token until it expires. The caller has checked the
/// admin token and that the project exists.
///
/// # Errors
///
/// 400 for a bad body, 503 when no signing secret is set.
pub fn mint_share(
    url: &Url,
    env: &RequestEnv,
    slug: &str,
    body: &[u8],
    now_ms: i64,
) -> Result<Response, ApiError> {
    let lifetime_s = share_lifetime(body)?;
    let secret = access::share_secret(env).ok_or_else(|| {
        ApiError::new(
            503,
            "misconfigured",
            "share links are off until the operator sets the ADMIN_TOKEN secret",
        )
    })?;
    let expires_s = now_ms.div_euclid(1000) + lifetime_s;
    // The token is digits, a dot and hex digits: nothing in it needs escaping in a URL.
    let token = share::sign(&secret, slug, expires_s);
    let link = format!(
        "{}{}?share={token}",
        url.origin().ascii_serialization(),
        Entry::Dashboard.path(slug)
    );
    let body = json!({"share": {
        "url": link,
        "token": token,
        "expires_at": format_ms(expires_s * 1000),
    }});
    Ok(Response::from_json(&body)
        .map_err(internal)?
        .with_status(201))
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
        serde_json::from_slice(body).map_err(|e| {
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
        check("nope", Err("expires_in_days"));
    }
}
