//! The project list at `/dashboard`: every project with its headline numbers and a
//! sparkline of its events over the range, each linking to its dashboard — the roll-up
//! view across projects. For the admin only: the admin token in `Authorization`, or an
//! admin session opened by this page's sign-in form (a cookie signed with the admin token,
//! see `tally_core::share`), which then opens every project's dashboard too.
//!
//! Reads are bounded per page: [`PER_PAGE`] projects, one series read each (its `all`
//! rows per day or hour over the range, from which the totals are merged), side by side.

use std::collections::BTreeMap;
use std::fmt::Write;

use tally_core::range::{Limits, Query};
use tally_core::rollup::Dimension;
use tally_core::time::Interval;
use tally_edge::ApiError;
use tally_storage::{AdminStore, read};
use worker::{Request, Response};

use super::gate::{self, has_admin_session};
use super::page::head;
use super::report::{Totals, fold_all, interval_for};
use super::svg::sparkline;
use super::{Form, html_response, see_other};
use crate::access::{bearer, is_admin_token, new_admin_session};
use crate::edge::error::internal;
use crate::edge::html::{cut_link, escape, int, millis, percent};
use crate::edge::params::{Params, resolve_range};
use crate::edge::{RequestEnv, now_ms, store};
use crate::route::ProjectsPage;

/// Projects per page: each costs one D1 read of its `all` rows (a few queries), so a
/// page stays far within the 1,000 queries of an invocation.
pub const PER_PAGE: usize = 25;

/// The ranges the list offers, in days.
const DAYS: [&str; 3] = ["7", "30", "90"];

/// One project's line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub slug: String,
    pub totals: Totals,
    /// Events per bucket of the range, oldest first, empty buckets as zero.
    pub trend: Vec<u64>,
}

/// Everything the list page shows.
#[derive(Debug)]
pub struct List<'a> {
    pub days: &'a str,
    /// The `?q=` slug filter as given.
    pub search: &'a str,
    /// Zero-based page, and how many projects matched in all.
    pub page: usize,
    pub matched: usize,
    pub lines: &'a [Line],
}

/// Answers a request of the project list; failures as a small HTML page.
///
/// # Errors
///
/// When even the error page cannot be built.
pub async fn handle(
    req: Request,
    env: &RequestEnv,
    page: ProjectsPage,
) -> Result<Response, ApiError> {
    let result = match page {
        ProjectsPage::View => view(&req, env).await,
        ProjectsPage::Post => post(req, env).await,
    };
    result.or_else(|e| super::error_page(&e))
}

/// `GET /dashboard`: the list, or its sign-in form.
///
/// # Errors
///
/// When D1 fails or a parameter is refused (shown as an HTML error page by the caller).
pub async fn view(req: &Request, env: &RequestEnv) -> Result<Response, ApiError> {
    let now = now_ms();
    let admin =
        bearer(req).is_some_and(|t| is_admin_token(env, &t)) || has_admin_session(req, env, now);
    if !admin {
        return html_response(&sign_in(None), 401);
    }
    let params = Params::of(req)?;
    let days = params
        .trimmed("days")
        .filter(|d| DAYS.contains(d))
        .unwrap_or(DAYS[0]);
    let search = params.trimmed("q").unwrap_or_default().to_ascii_lowercase();
    let page: usize = params
        .trimmed("page")
        .map_or(Ok(1), str::parse)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| ApiError::bad_request("invalid_page", "page must be 1 or more"))?
        - 1;
    let range = resolve_range(
        Query {
            from: None,
            to: None,
            days: Some(days),
        },
        now,
        Limits {
            default_days: 7,
            max_days: 90,
        },
    )?;
    let (from, to) = (Interval::Hour.floor(range.from_ms), range.to_ms);
    let interval = interval_for(from, to);
    let store = store(env)?;
    // Every project of every shard, from the control database.
    let mut slugs: Vec<String> = store
        .all_projects()
        .await
        .map_err(internal)?
        .into_iter()
        .map(|p| p.slug)
        .filter(|slug| slug.contains(&search))
        .collect();
    slugs.sort();
    let matched = slugs.len();
    let shown = slugs.iter().skip(page * PER_PAGE).take(PER_PAGE);
    let reads = shown.map(|slug| {
        let store = &store;
        async move {
            let series = read::series(store, slug, from, to, interval, Some(Dimension::All))
                .await
                .map_err(internal)?;
            Ok::<Line, ApiError>(line(slug, &series, from, to, interval))
        }
    });
    let lines: Vec<Line> = futures_util::future::try_join_all(reads).await?;
    let list = List {
        days,
        search: &search,
        page,
        matched,
        lines: &lines,
    };
    html_response(&render(&list), 200)
}

/// `POST /dashboard`, from this origin only: `token` (the admin token) opens an admin
/// session; `logout` ends it.
///
/// # Errors
///
/// 403 for a form from another origin; 503 when no admin token is set.
pub async fn post(mut req: Request, env: &RequestEnv) -> Result<Response, ApiError> {
    let form = Form::posted(&mut req).await?;
    let secure = req.url().map_err(internal)?.scheme() == "https";
    let field = |name: &str| form.field(name);
    if field("logout").is_some() {
        return see_other("/dashboard", &[gate::clear_admin_cookie(secure)]);
    }
    let token = field("token").unwrap_or_default();
    if !is_admin_token(env, &token) {
        return html_response(
            &sign_in(Some(
                "That is not the admin token; a read token opens its project's dashboard at /dashboard/<project>.",
            )),
            401,
        );
    }
    let session = new_admin_session(env, now_ms())?
        .ok_or_else(|| ApiError::new(503, "misconfigured", "the ADMIN_TOKEN secret is not set"))?;
    see_other("/dashboard", &[gate::admin_cookie(&session, secure)])
}

/// A project's line: its `all` rows per bucket of `[from, to)` merged into totals, and
/// its events per bucket.
pub fn line(
    slug: &str,
    series: &BTreeMap<i64, read::Merged>,
    from: i64,
    to: i64,
    interval: Interval,
) -> Line {
    let key = (Dimension::All, String::new());
    let merged = fold_all(series);
    let trend = interval
        .buckets(from, to)
        .map(|start| {
            series
                .get(&start)
                .and_then(|m| m.get(&key))
                .map_or(0, |r| r.count)
        })
        .collect();
    Line {
        slug: slug.to_owned(),
        totals: Totals::of(&merged, 1),
        trend,
    }
}

/// The sign-in form for the admin token, with what was wrong.
pub fn sign_in(message: Option<&str>) -> String {
    let mut out = String::new();
    head(&mut out, "Tally · projects · sign in");
    out.push_str(r#"<main><form class="login" method="post" action="/dashboard"><h1>All projects</h1><p>The project list is the admin's: sign in with the admin token. A read token opens its own project at <code>/dashboard/&lt;project&gt;</code>.</p>"#);
    if let Some(message) = message {
        let _ = write!(
            out,
            r#"<p class="error" id="login-error">{}</p>"#,
            escape(message)
        );
    }
    out.push_str(r#"<label for="token">Admin token</label><input id="token" name="token" type="password" autocomplete="current-password" required><button type="submit">Sign in</button><p class="note">The session lasts twelve hours in this browser; sign out to end it sooner.</p></form></main></body></html>"#);
    out
}

/// The list page.
pub fn render(list: &List<'_>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    head(&mut out, "Tally · projects");
    out.push_str(r#"<header><h1>All projects <span>· Tally</span></h1><div class="meta"><span>Admin</span><form method="post" action="/dashboard"><button type="submit" name="logout" value="1">Sign out</button></form></div></header><main>"#);
    out.push_str(r#"<div class="picker"><form method="get" action="/dashboard">"#);
    for days in DAYS {
        let on = if days == list.days {
            r#" class="on""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<button type="submit" name="days" value="{days}"{on}>{days} days</button>"#
        );
    }
    if !list.search.is_empty() {
        let _ = write!(
            out,
            r#"<input type="hidden" name="q" value="{}">"#,
            escape(list.search)
        );
    }
    let _ = write!(
        out,
        r#"</form><form method="get" action="/dashboard" role="search"><input type="hidden" name="days" value="{}"><label>Project <input type="search" name="q" value="{}" placeholder="slug contains…" size="18"></label><button type="submit">Find</button></form></div>"#,
        escape(list.days),
        escape(list.search)
    );
    let first = list.page * PER_PAGE;
    let _ = write!(
        out,
        r#"<p id="range">Last {} days · {} project{}{}</p>"#,
        escape(list.days),
        int(list.matched as u64),
        if list.matched == 1 { "" } else { "s" },
        if list.matched > PER_PAGE {
            format!(
                ", {}–{} shown",
                first + 1,
                (first + list.lines.len()).max(first + 1)
            )
        } else {
            String::new()
        }
    );
    if list.lines.is_empty() {
        out.push_str(r#"<p class="empty" id="project-list">No project matches.</p>"#);
    } else {
        out.push_str(r#"<section class="panel"><div class="scroll"><table id="project-list"><thead><tr><th>Project</th><th>Events</th><th class="wide">Errors</th><th>Error rate</th><th class="wide">p95</th><th>Users</th><th>Trend</th></tr></thead><tbody>"#);
        for line in list.lines {
            let t = &line.totals;
            let _ = write!(out, r#"<tr id="p-{}">"#, escape(&line.slug));
            cut_link(
                &mut out,
                &format!("/dashboard/{}?days={}", line.slug, list.days),
                &line.slug,
            );
            let _ = write!(
                out,
                r#"<td class="events">{}</td><td class="wide">{}</td><td>{}</td><td class="wide">{}</td><td>{}</td><td class="trend">{}</td></tr>"#,
                int(t.requests),
                int(t.errors),
                escape(&percent(t.errors, t.requests)),
                escape(&millis(t.p95)),
                int(t.users),
                sparkline(&format!("Events of {}", line.slug), &line.trend)
            );
        }
        out.push_str("</tbody></table></div></section>");
    }
    let pages = list.matched.div_ceil(PER_PAGE);
    if pages > 1 {
        out.push_str(r#"<p class="picker" id="pages">"#);
        let link = |out: &mut String, page: usize, text: &str| {
            let _ = write!(
                out,
                r#"<a href="/dashboard?days={}&amp;q={}&amp;page={}">{text}</a>"#,
                escape(list.days),
                escape(list.search),
                page + 1
            );
        };
        if list.page > 0 {
            link(&mut out, list.page - 1, "← Previous");
        }
        let _ = write!(out, "<span>Page {} of {pages}</span>", list.page + 1);
        if list.page + 1 < pages {
            link(&mut out, list.page + 1, "Next →");
        }
        out.push_str("</p>");
    }
    out.push_str("</main><footer>From each project's hourly and daily rollups. All times are UTC.</footer></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::rollup::Rollup;
    use tally_core::time::{DAY_MS, parse_date};

    fn rollup(count: u64, errors: u64) -> Rollup {
        Rollup {
            count,
            errors,
            ..Rollup::default()
        }
    }

    #[test]
    fn a_line_merges_the_buckets_and_keeps_empty_ones_as_zero() {
        let day = parse_date("2025-01-18").unwrap();
        let key = (Dimension::All, String::new());
        let series = BTreeMap::from([
            (
                day - 2 * DAY_MS,
                read::Merged::from([(key.clone(), rollup(5, 1))]),
            ),
            (day, read::Merged::from([(key, rollup(7, 0))])),
        ]);
        let line = line(
            "demo",
            &series,
            day - 3 * DAY_MS,
            day + DAY_MS,
            Interval::Day,
        );
        assert_eq!(line.trend, [0, 5, 0, 7]);
        assert_eq!((line.totals.requests, line.totals.errors), (12, 1));
    }

    #[test]
    fn the_list_links_each_project_and_escapes_every_value() {
        let lines: Vec<Line> = ["alpha", "beta<x>"]
            .iter()
            .map(|slug| Line {
                slug: (*slug).to_owned(),
                totals: Totals {
                    requests: 1234,
                    errors: 12,
                    ..Totals::default()
                },
                trend: vec![1, 5, 2],
            })
            .collect();
        let html = render(&List {
            days: "30",
            search: "a\"",
            page: 1,
            matched: 60,
            lines: &lines,
        });
        assert!(
            html.contains(r#"title="alpha"><a href="/dashboard/alpha?days=30">alpha</a></td>"#),
            "{html}"
        );
        assert!(html.contains("beta&lt;x&gt;") && !html.contains("beta<x>"));
        assert!(
            html.contains(r#"title="alpha""#),
            "the tooltip keeps the slug"
        );
        assert!(html.contains(r#"<td class="events">1,234</td>"#));
        assert!(html.contains("<td>1.0%</td>"));
        assert!(html.contains(r#"name="days" value="30" class="on""#));
        assert!(html.contains(r#"value="a&quot;""#));
        assert!(html.contains("60 projects, 26–27 shown"));
        assert!(html.contains("Page 2 of 3"));
        assert!(html.contains(r#"page=1">← Previous"#) && html.contains(r#"page=3">Next →"#));
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(!html.contains("<script"));
    }
}
