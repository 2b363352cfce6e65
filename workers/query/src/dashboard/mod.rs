//! The server-rendered dashboard: `GET /dashboard/{p}` and its alias
//! `/admin/plugins/{slug}/analytics` (the same page), `POST /dashboard/{p}/login` and
//! `/logout` (taken from the dashboard's own origin only; the login opens a session in
//! D1 whose id, not the read token, goes in the cookie). Who may look is [`gate`]'s
//! decision.
//!
//! The page reads rollups through `tally_storage::read` (clean day rows plus hour rows;
//! percentiles and uniques from merged sketches and HyperLogLogs), computes a
//! [`report::Report`] and renders it as HTML with inline CSS and SVG ([`page`]), with the
//! project's alert rules, recent alerts and paused campaigns ([`alerts`]). No
//! JavaScript: the range picker and the funnel steps are GET forms.
//!
//! `GET /dashboard/{p}/realtime` ([`realtime`]) shows the last thirty minutes from
//! minute rows (`tally_storage::read::realtime`), or under the page's filters from their
//! raw events (`edge::filtered::realtime`, as the API's `/realtime`), behind the same
//! gate, and reloads itself with a `<meta http-equiv="refresh">`. The funnel section
//! follows the filters too (`tally_storage::funnels`, as the API's `/funnels`).

pub mod alerts;
pub mod gate;
pub mod page;
pub mod projects;
pub mod realtime;
pub mod report;
pub mod svg;

use std::collections::BTreeMap;

use tally_core::filter::Filters;
use tally_core::funnel;
use tally_core::project::Project;
use tally_core::range::{Limits, Query, Range};
use tally_core::rollup::Dimension;
use tally_core::share;
use tally_core::time::{DAY_MS, Interval};
use tally_edge::ApiError;
use tally_storage::access::AccessStore;
use tally_storage::alerts::AlertStore;
use tally_storage::dashboard as page_reads;
use tally_storage::filtered::{Filtered, Read};
use tally_storage::{AdminStore, funnels, read};
use worker::{Request, Response};

use self::alerts::Alerts;
use self::gate::Denied;
use self::page::{Access, Picked, Served};
use self::report::{Funnel, HEATMAP_DAYS, Inputs, Report};
use crate::access;
use crate::edge::error::internal;
use crate::edge::params::{Params, resolve_range, whole_hours, within_retention};
use crate::edge::{self, html, respond};
use crate::edge::{RequestEnv, Store, now_ms, store};
use crate::route::{Entry, Page};

/// Days shown when the request names no range.
pub const DEFAULT_DAYS: &str = "7";
/// Longest range the dashboard shows, in days.
pub const MAX_DAYS: i64 = 366;

/// Answers a page of the dashboard of `project` (a valid slug). Failures are shown as
/// a small HTML page, not JSON.
///
/// # Errors
///
/// When even the error page cannot be built.
pub async fn handle(
    req: Request,
    env: &RequestEnv,
    project: &str,
    page: Page,
) -> Result<Response, ApiError> {
    let result = match page {
        Page::View(entry) => get(&req, env, project, entry).await,
        Page::Realtime => live(&req, env, project).await,
        Page::Login => login(req, env, project).await,
        Page::Logout => logout(&req, env, project).await,
    };
    result.or_else(|e| error_page(&e))
}

/// The funnel of the steps asked for, counted as the API's `/funnels` counts it (one
/// computation, `funnels::funnel`, under the page's filters and the row budget): over
/// the range in whole hours, its start cut to raw retention, within the window asked
/// for (a day by default). What keeps it from being counted is said in the section, and
/// the rest of the page is shown.
#[allow(clippy::too_many_arguments)] // The page's question; a struct would only rename it.
async fn funnel(
    env: &RequestEnv,
    store: &Store,
    slug: &str,
    (steps, window): (&str, &str),
    filters: &Filters,
    range: Range,
    retention_days: u32,
    now: i64,
) -> Result<Funnel, ApiError> {
    let steps = report::parse_steps(steps);
    if steps.is_empty() {
        return Ok(Funnel::Unasked);
    }
    if let Some(why) = report::refuse_steps(&steps) {
        return Ok(Funnel::Refused(why));
    }
    let window = if window.is_empty() {
        funnel::DEFAULT_WINDOW
    } else {
        window
    };
    let window_ms = match funnel::parse_window(window) {
        Ok(ms) => ms,
        Err(refused) => return Ok(Funnel::Refused(sentence(&refused.to_string()))),
    };
    let Some(range) = within_retention(whole_hours(range), retention_days, now) else {
        return Ok(Funnel::Refused(format!(
            "The range ends before this project's raw events begin (they are kept \
             {retention_days} days): pick a more recent range."
        )));
    };
    let budget = edge::filtered::funnel_row_budget(env);
    let counted = funnels::funnel(
        store,
        slug,
        range.from_ms,
        range.to_ms,
        &steps,
        window_ms,
        filters,
        budget,
    )
    .await
    .map_err(internal)?;
    Ok(match counted {
        funnels::Funnel::Counted { steps, path, .. } => Funnel::Counted {
            steps,
            from: range.from_ms,
            to: range.to_ms,
            path,
        },
        funnels::Funnel::OverBudget { events } => Funnel::Refused(sentence(
            &edge::filtered::over_budget(events, budget).message,
        )),
    })
}

/// A message of core's (lower case, no full stop) as a sentence.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).chain(['.']).collect()
    })
}

/// A failure as a small HTML page with the same status.
pub fn error_page(error: &ApiError) -> Result<Response, ApiError> {
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

/// A 303 to `path` on this host (a relative `Location`), with a `set-cookie` per
/// cookie.
fn see_other(path: &str, cookies: &[String]) -> Result<Response, ApiError> {
    let mut response = Response::empty().map_err(internal)?.with_status(303);
    let headers = response.headers_mut();
    headers.set("location", path).map_err(internal)?;
    for cookie in cookies {
        headers.append("set-cookie", cookie).map_err(internal)?;
    }
    headers.set("cache-control", "no-store").map_err(internal)?;
    Ok(response)
}

/// A viewer the gate let in to a dashboard page, with what the page read to ask it.
struct Admitted {
    params: Params,
    now: i64,
    store: Store,
    project: Option<Project>,
    access: Access,
}

/// Asks the gate whether the viewer of `req` may see project `slug`'s page `entry`:
/// the viewer let in, or the login form (which returns to `entry`) for one who must
/// sign in. Every dashboard page is gated alike.
async fn admit(
    req: &Request,
    env: &RequestEnv,
    slug: &str,
    entry: Entry,
) -> Result<Result<Admitted, Response>, ApiError> {
    let params = Params::of(req)?;
    let now = now_ms();
    let store = store(env)?;
    let project = store.project(slug).await.map_err(internal)?;
    let share_token = params.trimmed("share");
    match gate::decide(req, env, project.as_ref(), slug, share_token, now).await? {
        Ok(access) => Ok(Ok(Admitted {
            params,
            now,
            store,
            project,
            access,
        })),
        Err(denied) => login_page(slug, entry, &denied).map(Err),
    }
}

async fn get(
    req: &Request,
    env: &RequestEnv,
    slug: &str,
    entry: Entry,
) -> Result<Response, ApiError> {
    let Admitted {
        params,
        now,
        store,
        project,
        access,
    } = match admit(req, env, slug, entry).await? {
        Ok(admitted) => admitted,
        Err(login) => return Ok(login),
    };

    let mut picked = Picked {
        days: params.trimmed("days").map(str::to_owned),
        from: params.trimmed("from").map(str::to_owned),
        to: params.trimmed("to").map(str::to_owned),
    };
    if picked == Picked::default() {
        picked.days = Some(DEFAULT_DAYS.to_owned());
    }
    let steps = params.trimmed("steps").unwrap_or_default().to_owned();
    let window = params.trimmed("window").unwrap_or_default().to_owned();
    let limits = Limits {
        default_days: 30,
        max_days: MAX_DAYS,
    };
    let query = Query {
        from: picked.from.as_deref(),
        to: picked.to.as_deref(),
        days: picked.days.as_deref(),
    };
    // A refused filter shows the page's error and the page without filters, as a
    // refused range does.
    let (filters, filter_error) = match params.filters() {
        Ok(filters) => (filters, None),
        Err(refused) => (Filters::none(), Some(refused)),
    };
    let path = entry.path(slug);
    let mut page = page::Page {
        project: slug,
        path: &path,
        access: &access,
        picked: &picked,
        from: 0,
        to: 0,
        steps: &steps,
        window: &window,
        report: None,
        error: None,
        filters: &filters,
        served: None,
        alerts: None,
    };
    let range = match resolve_range(query, now, limits) {
        Ok(range) => range,
        Err(refused) => return refuse(&mut page, &refused.message),
    };
    if let Some(refused) = &filter_error {
        return refuse(&mut page, &refused.message);
    }
    // Whole hours, as the API's ranges: the range starts at the hour that holds `from`
    // and ends with the hour that holds `to`, so one question asked again within the
    // hour is the same question.
    let range = whole_hours(range);
    let (from, to) = (range.from_ms, range.to_ms);
    // Raw retention is the project's; a dashboard the gate opened has a project.
    let retention_days = project.as_ref().map_or(0, |p| p.retention_days);
    let question = format!(
        "dashboard|{from}|{to}|{}|{steps}|{window}|{retention_days}",
        filters.key()
    );
    let (body, kv) = respond::cached(env, slug, &question, true, KV_TTL_S, async || {
        let shown = compute(
            env,
            &store,
            slug,
            range,
            &filters,
            (&steps, &window),
            retention_days,
            now,
        )
        .await?;
        serde_json::to_value(&shown).map_err(internal)
    })
    .await?;
    let shown: Shown = serde_json::from_str(&body).map_err(internal)?;
    let (report, served) = match shown {
        Shown::Report { report, served } => (report, served),
        Shown::Refused(message) => return refuse(&mut page, &message),
    };
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
    page.served = served;
    page.report = Some(&report);
    page.alerts = alerts.as_ref();
    let mut response = html_response(&page::dashboard(&page), 200)?;
    if let Some(kv) = kv.header() {
        response
            .headers_mut()
            .set("x-tally-cache", kv)
            .map_err(internal)?;
    }
    Ok(response)
}

/// What the page shows of its range, computed or read back from KV: the report and the
/// paths its filtered reads took, or why the range could not be shown.
#[derive(serde::Serialize, serde::Deserialize)]
enum Shown {
    Report {
        report: Box<Report>,
        served: Option<Served>,
    },
    Refused(String),
}

/// How long a computed page stays in KV: a minute, the shortest KV keeps a key, since a
/// dashboard is looked at again and again (and by several people) while its numbers
/// move; the realtime view is the place for the last minutes.
const KV_TTL_S: u32 = 60;

/// Every section of the page over `range` (whole hours) under `filters`: the rows
/// through the read API's one filtered read (its access path is storage's decision),
/// the funnel of `steps` (names and window), and the report made of them.
#[allow(clippy::too_many_arguments)] // One page's question; a struct would only rename it.
async fn compute(
    env: &RequestEnv,
    store: &Store,
    slug: &str,
    range: Range,
    filters: &Filters,
    steps: (&str, &str),
    retention_days: u32,
    now: i64,
) -> Result<Shown, ApiError> {
    let (from, to) = (range.from_ms, range.to_ms);
    let interval = report::interval_for(from, to);
    let heatmap_from = from.max(Interval::Hour.floor(to - HEATMAP_DAYS * DAY_MS));
    // Every section's rows through the read API's one filtered read (its access path
    // is storage's decision), under the page's filters: `tally_storage::dashboard`,
    // whose D1 queries storage's tests count.
    let question = page_reads::Question {
        project: slug,
        from_ms: from,
        to_ms: to,
        interval,
        previous: report::previous_period(from, to),
        heatmap_from_ms: heatmap_from,
        filters,
        oldest_raw_ms: oldest_raw_ms(retention_days, now),
        row_budget: edge::filtered::row_budget(env),
    };
    let sections = match page_reads::page(store, &question).await.map_err(internal)? {
        page_reads::Page::Read(sections) => sections,
        page_reads::Page::Refused(Read::OverBudget { events }) => {
            let refused = edge::filtered::over_budget(events, question.row_budget);
            return Ok(Shown::Refused(refused.message));
        }
        page_reads::Page::Refused(_) => {
            let refused = edge::filtered::past_retention(retention_days);
            return Ok(Shown::Refused(refused.message));
        }
    };
    let page_reads::Sections {
        range: shown,
        previous,
        series,
        route_hours,
    } = *sections;
    let mut served = Some(serve(None, &shown, true));
    let merged = read::merge(&shown.rows);
    let scale = shown.scale;
    // The previous period of the same length, per bucket, under the same filters: the
    // headline numbers' changes and the charts' previous line. Past raw retention it
    // has no filtered answer, and the page shows no comparison.
    let (previous, previous_scale) = match previous {
        Some(rows) => {
            served = Some(serve(served, &rows, false));
            (Some(read::buckets(&rows.rows, interval)), rows.scale)
        }
        None => (None, 1),
    };
    let series = match series {
        page_reads::Series::OfRange => {
            let all_rows: Vec<_> = shown
                .rows
                .iter()
                .filter(|(_, key, _)| key.dimension == Dimension::All)
                .cloned()
                .collect();
            read::buckets(&all_rows, interval)
        }
        page_reads::Series::Read(Some(rows)) => {
            served = Some(serve(served, &rows, true));
            read::buckets(&rows.rows, interval)
        }
        page_reads::Series::Read(None) => BTreeMap::new(),
    };
    // The heatmap shows counts only: without filters from the route's hour rows read
    // without their summaries.
    let route_hours = match route_hours {
        page_reads::RouteHours::Counts(counts) => counts,
        page_reads::RouteHours::Read(Some(rows)) => {
            // The heatmap covers only the range's end: its start is not the page's.
            served = Some(serve(served, &rows, false));
            read::counts_of(&read::buckets(&rows.rows, Interval::Hour), Dimension::Route)
        }
        page_reads::RouteHours::Read(None) => read::Counts::new(),
    };
    let funnel = funnel(env, store, slug, steps, filters, range, retention_days, now).await?;
    let report = Report::new(&Inputs {
        from,
        to,
        merged: &merged,
        series: &series,
        interval,
        route_hours: &route_hours,
        heatmap_from,
        funnel: &funnel,
        previous: previous.as_ref(),
        scale,
        previous_scale,
    });
    Ok(Shown::Report {
        report: Box::new(report),
        served: served.filter(|_| !filters.is_empty()),
    })
}

/// The first whole hour whose raw events a project keeping them `retention_days` still
/// has at `now` (as the read API cuts a range to retention).
fn oldest_raw_ms(retention_days: u32, now: i64) -> i64 {
    let all = Range {
        from_ms: i64::MIN,
        to_ms: i64::MAX,
    };
    within_retention(all, retention_days, now).map_or(i64::MAX, |r| r.from_ms)
}

/// The page with `message` as its error, a 400: what a refused range or filter shows.
fn refuse<'a>(page: &mut page::Page<'a>, message: &'a str) -> Result<Response, ApiError> {
    page.error = Some(message);
    page.report = None;
    html_response(&page::dashboard(page), 400)
}

/// What the page's reads were served by so far, with `rows` added; `covers` says
/// whether the read is of the page's own range (the previous period's and the
/// heatmap's starts are not).
fn serve(served: Option<Served>, rows: &Filtered, covers: bool) -> Served {
    let this = Served {
        path: rows.path,
        from: if covers { rows.from_ms } else { i64::MIN },
    };
    served.map_or(this, |s| s.and(this))
}

/// `GET /dashboard/{p}/realtime`: the same gate as the dashboard, then the last thirty
/// minutes. A viewer who must sign in gets the dashboard's login form, which returns to
/// this page.
async fn live(req: &Request, env: &RequestEnv, slug: &str) -> Result<Response, ApiError> {
    let Admitted {
        params,
        now,
        store,
        access,
        ..
    } = match admit(req, env, slug, Entry::Realtime).await? {
        Ok(admitted) => admitted,
        Err(login) => return Ok(login),
    };
    // A refused filter is the page's error, as on the dashboard.
    let filters = params.filters()?;
    let (view, path) = edge::filtered::realtime(env, &store, slug, &filters, now).await?;
    let mut response = html_response(&realtime::page(slug, &access, &view, &filters, path), 200)?;
    // Stale a minute later: no cache keeps it, the browser's included.
    response
        .headers_mut()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    Ok(response)
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

/// The fields of a form posted from this dashboard's own origin.
struct Form(Vec<u8>);

impl Form {
    /// The form `req` posts, refused unless it came from this dashboard's own origin.
    async fn posted(req: &mut Request) -> Result<Self, ApiError> {
        check_origin(req)?;
        let body = req.bytes().await.map_err(|e| {
            ApiError::bad_request("unreadable_body", format!("could not read the form: {e}"))
        })?;
        Ok(Self(body))
    }

    /// The field `name`, trimmed, if the form has it.
    fn field(&self, name: &str) -> Option<String> {
        worker::url::form_urlencoded::parse(&self.0)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
    }
}

/// Refuses a form post that did not come from this dashboard's own origin.
fn check_origin(req: &Request) -> Result<(), ApiError> {
    let own = req.url().map_err(internal)?.origin().ascii_serialization();
    let header = |name: &str| req.headers().get(name).ok().flatten();
    gate::same_origin(
        header("origin").as_deref(),
        header("sec-fetch-site").as_deref(),
        &own,
    )
}

/// `POST /dashboard/{p}/login` with a form of `token` and `next`, from this origin only:
/// a read token of the project opens a session (its id in the cookie, never the token)
/// and returns to the page; anything else shows the form again.
async fn login(mut req: Request, env: &RequestEnv, slug: &str) -> Result<Response, ApiError> {
    let form = Form::posted(&mut req).await?;
    let url = req.url().map_err(internal)?;
    let field = |name: &str| form.field(name).unwrap_or_default();
    let (token, next) = (field("token"), field("next"));
    let entry = Entry::named(&next);
    if token.is_empty() {
        return login_page(slug, entry, &Denied::Invalid("Enter a read token.".into()));
    }
    let (kind, key_id) = access::read_key(env, &token).await?;
    match (gate::opens(kind, slug), key_id) {
        (Ok(()), Some(key_id)) => {
            let mut random = [0u8; share::SESSION_BYTES];
            getrandom::fill(&mut random).map_err(internal)?;
            let session = share::new_session(&random);
            let now = now_ms();
            store(env)?
                .open_session(
                    &share::session_hash(&session),
                    key_id,
                    now,
                    now + share::SESSION_MS,
                )
                .await
                .map_err(internal)?;
            let secure = url.scheme() == "https";
            see_other(
                &entry.path(slug),
                &gate::set_cookies(slug, &session, secure),
            )
        }
        (Err(denied), _) => login_page(slug, entry, &denied),
        (Ok(()), None) => Err(internal("a read token was classified without its key")),
    }
}

/// `POST /dashboard/{p}/logout`, from this origin only: ends the session and forgets
/// the cookie, then returns to the login form.
async fn logout(req: &Request, env: &RequestEnv, slug: &str) -> Result<Response, ApiError> {
    check_origin(req)?;
    if let Some(session) = gate::session_of(req, slug) {
        store(env)?
            .close_session(&share::session_hash(&session))
            .await
            .map_err(internal)?;
    }
    let secure = req.url().map_err(internal)?.scheme() == "https";
    see_other(
        &Entry::Dashboard.path(slug),
        &gate::clear_cookies(slug, secure),
    )
}
