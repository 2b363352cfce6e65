//! The dashboard's HTML: one self-contained page (inline CSS and SVG, no scripts, no
//! external assets) with a range picker made of GET forms, so it works with JavaScript
//! off; and the login page. Every value is escaped with [`escape`].

use std::fmt::Write;

use tally_core::filter::{self, Filter, Filters, Op};
use tally_core::funnel::DEFAULT_WINDOW;
use tally_core::revenue::{Line, Total};
use tally_core::rollup::{self, Dimension};
use tally_core::time::{Interval, date_label, date_of};
use tally_storage::filtered::Path;

use super::alerts::{self, Alerts};
use super::report::{Funnel, HEATMAP_DAYS, Previous, Report, Row, Totals};
use super::svg::{self, Bucket};
use crate::edge::html::{
    bytes, compact, cut_cell, cut_cell_to, date_time, escape, int, millis, money, percent,
};

/// The page's stylesheet: a responsive grid that is one column on a phone.
const CSS: &str = "\
:root{color-scheme:light dark;--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--card:#fff;--edge:#cbd5e1;--blue:#2563eb;--red:#dc2626;--orange:#c2410c;--barbg:#bfdbfe;--warnbg:#fef2f2;--warnline:#fecaca;--warnfg:#991b1b;--empty:#f1f5f9}\
@media (prefers-color-scheme:dark){:root{--fg:#e2e8f0;--muted:#94a3b8;--line:#334155;--bg:#0b1120;--card:#111827;--edge:#475569;--blue:#60a5fa;--red:#f87171;--orange:#fb923c;--barbg:#1e3a8a;--warnbg:#450a0a;--warnline:#7f1d1d;--warnfg:#fecaca;--empty:#1e293b}}\
*{box-sizing:border-box}\
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
header{background:#0f172a;color:#fff;padding:12px 20px;display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline;justify-content:space-between}\
header h1{font-size:18px;margin:0;min-width:0;overflow-wrap:anywhere}header h1 span{color:#94a3b8;font-weight:400}\
header .meta{color:#cbd5e1;font-size:13px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}header a{color:#bfdbfe}\
header form{display:inline}header button{background:none;border:1px solid #475569;color:#e2e8f0;padding:2px 8px}\
main{max-width:1240px;margin:0 auto;padding:16px}\
.picker{display:flex;flex-wrap:wrap;gap:8px 20px;align-items:center;margin-bottom:14px}\
.picker form{display:flex;flex-wrap:wrap;gap:6px;align-items:center}\
#range{font-weight:600;margin-bottom:10px}\
button,input{font:inherit;color:inherit}\
button{border:1px solid var(--edge);background:var(--card);border-radius:6px;padding:4px 10px;cursor:pointer}\
button.on{background:var(--blue);border-color:var(--blue);color:#fff}\
input{border:1px solid var(--edge);border-radius:6px;padding:3px 8px;background:var(--card);max-width:100%}\
a{color:var(--blue)}\
:focus-visible{outline:2px solid var(--blue);outline-offset:2px}\
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(124px,1fr));gap:10px;margin-bottom:16px}\
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;min-width:0}\
.card .k{color:var(--muted);font-size:12px}\
.card .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap}\
.card .d{font-size:12px;font-variant-numeric:tabular-nums;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.d.good{color:var(--blue)}.d.bad{color:var(--orange)}.d.same{color:var(--muted)}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,380px),1fr));gap:16px;margin-bottom:16px}\
.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;min-width:0}\
h2{font-size:15px;margin:0 0 8px}h3{font-size:13px;margin:14px 0 4px;color:var(--muted)}\
.note{color:var(--muted);font-size:12px;margin:6px 0;overflow-wrap:anywhere}\
.scroll{overflow-x:auto}.chart{width:100%;min-width:440px;height:auto;display:block}\
.end{direction:rtl}.end>*{direction:ltr}\
.chart .axis{font-size:12px;fill:var(--muted)}rect.z{fill:var(--empty)}.chart .label{font-size:12px;fill:var(--fg)}\
.bar{fill:var(--blue)}.bar-over{fill:var(--red)}.line{fill:none;stroke:var(--blue);stroke-width:2}.dot{fill:var(--blue)}\
.legend{font-size:12px;color:var(--muted)}.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 8px}.legend i.prev{height:0;width:14px;border-top:2px dashed var(--muted);border-radius:0;vertical-align:middle}\
.chart .prev{fill:none;stroke:var(--muted);stroke-width:1.5;stroke-dasharray:5 4;opacity:.8}\
details.data{margin-bottom:16px}details.data summary{cursor:pointer;color:var(--muted)}\
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}\
th,td{padding:4px 6px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}\
th:first-child,td:first-child{text-align:left}\
td.t{max-width:0;width:100%;overflow:hidden;text-overflow:ellipsis;text-align:left}\
.spark{width:120px;height:28px;display:block}\
th{font-size:12px;color:var(--muted);font-weight:500}\
td.b{background:linear-gradient(var(--barbg),var(--barbg)) no-repeat 0 100%/var(--w) 4px;padding-bottom:7px}\
.chips{display:flex;flex-wrap:wrap;gap:6px 8px;align-items:center;margin-bottom:10px;min-width:0}\
.chip{display:inline-flex;align-items:center;gap:6px;max-width:100%;min-width:0;border:1px solid var(--edge);border-radius:14px;padding:2px 4px 2px 10px;background:var(--card)}\
.chip .cv{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;min-width:0}.chip a{text-decoration:none;padding:0 6px;font-weight:600}\
.sampled{color:var(--orange);font-weight:600}\
tr.partial td{font-style:italic}.empty{color:var(--muted)}.firing{color:var(--red);font-weight:600}\
.error{background:var(--warnbg);border:1px solid var(--warnline);color:var(--warnfg);padding:8px 12px;border-radius:8px;margin-bottom:16px;overflow-wrap:anywhere}\
.login{max-width:420px;margin:10vh auto;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:24px}\
.login input{width:100%;margin:6px 0 12px;padding:6px 8px}\
footer{color:var(--muted);font-size:12px;padding:0 16px 24px;max-width:1240px;margin:0 auto}\
@media (max-width:600px){header{padding:10px 12px}main{padding:10px}.wide{display:none}.spark{width:64px}.card .v{font-size:18px}.panel{padding:10px}.chart{min-width:0}#chart-table td,#chart-table th{padding:4px 3px}#chart-table td.when{white-space:normal;text-align:left}}\
@media print{body{background:#fff;color:#000}header{background:none;color:#000;border-bottom:1px solid #999}header h1 span,header .meta{color:#333}header form,.picker,#funnel form{display:none}.grid{display:block}.panel,.card{break-inside:avoid;border-color:#999;margin-bottom:12px}.chart{min-width:0}.scroll{overflow:visible}}";

/// How the viewer got in, shown in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A session opened by the login form with a read token, its id in a cookie: offers
    /// signing out.
    Cookie,
    /// A read token or the admin token in `Authorization`.
    Header,
    /// An admin session, opened on the project list: links back to it.
    Admin,
    /// A share link, with its token and expiry (epoch seconds).
    Share { token: String, expires_s: i64 },
    /// The project's dashboard is public.
    Public,
}

/// The range as the picker shows it: `days`, or `from`/`to` as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Picked {
    pub days: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Which path the page's filtered reads took, as the API's `served_by` says it: the
/// least exact of them (a sample before raw events before rollups), and where the
/// latest of them starts (raw events cover only raw retention).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Served {
    pub path: Path,
    pub from: i64,
}

impl Served {
    /// The less exact of two reads' paths, and the later start.
    pub fn and(self, other: Self) -> Self {
        let rank = |p: Path| match p {
            Path::Rollups => (0, 0),
            Path::Raw => (1, 0),
            Path::Sampled { buckets } => (2, u32::MAX - buckets),
        };
        Self {
            path: if rank(other.path) > rank(self.path) {
                other.path
            } else {
                self.path
            },
            from: self.from.max(other.from),
        }
    }
}

/// Everything one page shows.
#[derive(Debug)]
pub struct Page<'a> {
    pub project: &'a str,
    /// The page's own path, which the GET forms submit to.
    pub path: &'a str,
    pub access: &'a Access,
    pub picked: &'a Picked,
    /// The resolved range, `[from, to)`.
    pub from: i64,
    pub to: i64,
    /// `?steps=` as given.
    pub steps: &'a str,
    /// `?window=` as given (the funnel's window; empty for the default).
    pub window: &'a str,
    /// The `filter` parameters, as read; none when they were refused (`error` says why).
    pub filters: &'a Filters,
    /// How the filtered reads were served; `None` without filters.
    pub served: Option<Served>,
    /// The data; `None` with `error` when the range was refused.
    pub report: Option<&'a Report>,
    pub error: Option<&'a str>,
    /// The alerts section; `None` when the viewer may not see it (a public dashboard's
    /// anonymous visitor) or the range was refused.
    pub alerts: Option<&'a Alerts>,
}

pub(super) fn head(out: &mut String, title: &str) {
    head_refreshing(out, title, None);
}

/// The page's head; with `refresh_s`, a `<meta http-equiv="refresh">` that reloads the
/// page (its URL, share token and all) every so many seconds: a live page without
/// script, under the same policy.
pub(super) fn head_refreshing(out: &mut String, title: &str, refresh_s: Option<u32>) {
    let refresh = refresh_s
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">{refresh}\
         <title>{}</title><style>{CSS}</style></head><body>",
        escape(title)
    );
}

fn hidden(out: &mut String, name: &str, value: &str) {
    let _ = write!(
        out,
        r#"<input type="hidden" name="{name}" value="{}">"#,
        escape(value)
    );
}

/// The dashboard page.
pub fn dashboard(page: &Page<'_>) -> String {
    let mut out = String::with_capacity(64 * 1024);
    head(&mut out, &format!("{} · Tally", page.project));
    header(&mut out, page.project, page.access);
    out.push_str("<main>");
    picker(&mut out, page);
    chips(&mut out, page);
    if let Some(error) = page.error {
        let _ = write!(
            out,
            r#"<p class="error" id="range-error">{}</p>"#,
            escape(error)
        );
    }
    if let Some(report) = page.report {
        let _ = write!(
            out,
            r#"<p id="range">{}</p>"#,
            escape(&range_text(page.picked, page.from, page.to))
        );
        if report.previous.is_some() {
            let (from, to) = super::report::previous_period(page.from, page.to);
            let _ = write!(
                out,
                r#"<p class="note" id="previous-range">Changes compare with the period of the same length before: {} – {} UTC.</p>"#,
                escape(&date_time(from)),
                escape(&date_time(to))
            );
        }
        served(&mut out, page);
        cards(&mut out, report);
        if let Some(a) = page.alerts {
            if !page.filters.is_empty() {
                out.push_str(r#"<p class="note" id="alerts-unfiltered">Alerts, rule states and paused campaigns are the project's, whatever the filters.</p>"#);
            }
            alerts::section(&mut out, a);
        }
        charts(&mut out, report);
        routes(&mut out, page, report);
        errors(&mut out, page, report);
        installs(&mut out, page, report);
        marketing(&mut out, page, report);
        revenue(&mut out, page, report);
        bandwidth(&mut out, page, report);
    }
    out.push_str(
        "</main><footer>From Tally's hourly and daily rollups. Counts are exact; \
         percentiles are within 1%; unique counts are estimates with a 1.6% standard error, \
         99% of them within 5% (merged sketches and HyperLogLogs). All times are UTC.</footer></body></html>",
    );
    out
}

/// The page's top bar: the project, how the viewer got in, and signing out.
pub(super) fn header(out: &mut String, project: &str, access: &Access) {
    let _ = write!(
        out,
        r#"<header><h1>{} <span>· Tally</span></h1><div class="meta">"#,
        escape(project)
    );
    match access {
        Access::Cookie => {
            let _ = write!(
                out,
                r#"<span>Signed in with a read token</span><form method="post" action="/dashboard/{}/logout"><button type="submit">Sign out</button></form>"#,
                escape(project)
            );
        }
        Access::Header => out.push_str("<span>Token from the request</span>"),
        Access::Admin => out.push_str(
            r#"<a href="/dashboard" id="all-projects">All projects</a><form method="post" action="/dashboard"><button type="submit" name="logout" value="1">Sign out</button></form>"#,
        ),
        Access::Share { expires_s, .. } => {
            let _ = write!(
                out,
                "<span>Shared link, valid until {} UTC</span>",
                escape(&date_time(expires_s * 1000))
            );
        }
        Access::Public => out.push_str("<span>Public dashboard</span>"),
    }
    out.push_str("</div></header>");
}

/// `path` for a viewer who got in by `access` (a share link keeps its token) under
/// `filters`: the realtime view and the dashboard link to each other under the same
/// filters.
pub(super) fn link_with_filters(path: &str, access: &Access, filters: &Filters) -> String {
    let mut query = worker::url::form_urlencoded::Serializer::new(String::new());
    for f in filters {
        query.append_pair("filter", &f.text());
    }
    if let Access::Share { token, .. } = access {
        query.append_pair("share", token);
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// The hidden fields every form carries: the share token, and what the other forms set.
fn carry(out: &mut String, page: &Page<'_>, range: bool, steps: bool) {
    if let Access::Share { token, .. } = page.access {
        hidden(out, "share", token);
    }
    if range {
        let p = page.picked;
        for (name, value) in [("days", &p.days), ("from", &p.from), ("to", &p.to)] {
            if let Some(value) = value {
                hidden(out, name, value);
            }
        }
    }
    if steps && !page.steps.is_empty() {
        hidden(out, "steps", page.steps);
    }
    if steps && !page.window.is_empty() {
        hidden(out, "window", page.window);
    }
    for f in page.filters {
        hidden(out, "filter", &f.text());
    }
}

/// The page's own URL with `filters` (grammar texts) for its filters: the range, the
/// funnel's steps and window and a share link's token kept, every value
/// percent-encoded, so every state of the page is a link.
pub fn url_with(page: &Page<'_>, filters: &[String]) -> String {
    let mut query = worker::url::form_urlencoded::Serializer::new(String::new());
    let p = page.picked;
    for (name, value) in [("days", &p.days), ("from", &p.from), ("to", &p.to)] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    for (name, value) in [("steps", page.steps), ("window", page.window)] {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    for f in filters {
        query.append_pair("filter", f);
    }
    if let Access::Share { token, .. } = page.access {
        query.append_pair("share", token);
    }
    let query = query.finish();
    if query.is_empty() {
        page.path.to_owned()
    } else {
        format!("{}?{query}", page.path)
    }
}

/// The link a breakdown value leads to: the page with `dimension` equal to `value`
/// added to its filters (escaped for the grammar). `None` for a value no filter can name
/// (the folded row, an empty value, one past the grammar's limits), so a link never
/// leads to an error page.
pub fn filter_link(page: &Page<'_>, dimension: Dimension, value: &str) -> Option<String> {
    if dimension.is_bounded() && value == rollup::FOLDED_LABEL {
        return None;
    }
    let added = Filter {
        dimension,
        op: Op::Eq,
        value: value.to_owned(),
    };
    let mut texts: Vec<String> = page.filters.iter().map(Filter::text).collect();
    texts.push(added.text());
    let filters = filter::parse(texts.iter().map(String::as_str)).ok()?;
    let texts: Vec<String> = filters.iter().map(Filter::text).collect();
    Some(url_with(page, &texts))
}

/// A filter as a person reads it: `route starts with /api/`.
fn filter_words(f: &Filter) -> String {
    let op = match f.op {
        Op::Eq => "is",
        Op::Ne => "is not",
        Op::Prefix => "starts with",
        Op::NotPrefix => "does not start with",
    };
    format!("{} {op} {}", f.dimension.name(), f.value)
}

/// The active filters above the headline numbers, each a chip whose × links to the page
/// without it, and a link that clears them all.
fn chips(out: &mut String, page: &Page<'_>) {
    if page.filters.is_empty() {
        return;
    }
    let texts: Vec<String> = page.filters.iter().map(Filter::text).collect();
    out.push_str(r#"<div class="chips" id="filters"><span class="note">Filtered:</span>"#);
    for (i, f) in page.filters.iter().enumerate() {
        let rest: Vec<String> = texts
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, t)| t.clone())
            .collect();
        let words = escape(&filter_words(f));
        let _ = write!(
            out,
            r#"<span class="chip" title="{words}"><span class="cv">{words}</span><a href="{}" aria-label="Remove the filter {words}">×</a></span>"#,
            escape(&url_with(page, &rest))
        );
    }
    let _ = write!(
        out,
        r#"<a id="clear-filters" href="{}">Clear all</a></div>"#,
        escape(&url_with(page, &[]))
    );
}

/// How the filtered numbers were read, beside the headline numbers, as the API's
/// `served_by` and `sample_rate` say it.
fn served(out: &mut String, page: &Page<'_>) {
    let Some(served) = page.served else {
        return;
    };
    let since = if served.from > page.from {
        format!(
            " since {} UTC (raw events are kept for the project's retention)",
            date_time(served.from)
        )
    } else {
        String::new()
    };
    match served.path {
        Path::Rollups => out.push_str(
            r#"<p class="note" id="served-by" data-served-by="rollups">Filtered numbers are exact, from rollups.</p>"#,
        ),
        Path::Raw => {
            let _ = write!(
                out,
                r#"<p class="note" id="served-by" data-served-by="raw">Filtered numbers are exact, from raw events{}.</p>"#,
                escape(&since)
            );
        }
        Path::Sampled { buckets } => {
            let all = filter::SAMPLE_BUCKETS;
            let _ = write!(
                out,
                r#"<p class="note sampled" id="served-by" data-served-by="sampled">Sampled: these numbers are computed on {} of users (sample rate {buckets}/{all}) and scaled up{}.</p>"#,
                escape(&percent(u64::from(buckets), u64::from(all))),
                escape(&since)
            );
        }
    }
}

fn picker(out: &mut String, page: &Page<'_>) {
    let action = escape(page.path);
    let _ = write!(
        out,
        r#"<div class="picker"><form method="get" action="{action}" id="days">"#
    );
    carry(out, page, false, true);
    for days in ["7", "30", "90"] {
        let on = page.picked.days.as_deref() == Some(days);
        let _ = write!(
            out,
            r#"<button type="submit" name="days" value="{days}"{}>{days} days</button>"#,
            if on { r#" class="on""# } else { "" }
        );
    }
    let _ = write!(
        out,
        r#"</form><form method="get" action="{action}" id="custom"><label>From <input type="date" name="from" value="{}" required></label><label>to <input type="date" name="to" value="{}" required></label>"#,
        escape(page.picked.from.as_deref().unwrap_or_default()),
        escape(page.picked.to.as_deref().unwrap_or_default())
    );
    carry(out, page, false, true);
    // The realtime view follows the page's filters.
    let _ = write!(
        out,
        r#"<button type="submit">Apply</button></form><a id="realtime-link" href="{}">Realtime: the last 30 minutes</a></div>"#,
        escape(&link_with_filters(
            &format!("/dashboard/{}/realtime", page.project),
            page.access,
            page.filters
        ))
    );
}

fn range_text(picked: &Picked, from: i64, to: i64) -> String {
    let span = format!(
        "{} – {} UTC",
        date_label(date_of(from)),
        date_label(date_of(to - 1))
    );
    match &picked.days {
        Some(days) if days == "1" => format!("Today ({span})"),
        Some(days) => format!("Last {days} days ({span})"),
        None => span,
    }
}

/// Which way a headline number is better moving, for the colour of its change (the
/// arrow and the sign say the direction without colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Up,
    Down,
    Neither,
}

/// A headline number: its id, label, value now and in the previous period (`None` when
/// there is none, e.g. a percentile without events), how to write it, and which way is
/// better. Ratios (`points`) change in percentage points, not percent.
struct Headline<'a> {
    id: &'a str,
    label: &'a str,
    now: Option<f64>,
    before: Option<f64>,
    show: &'a dyn Fn(f64) -> String,
    better: Better,
    points: bool,
}

/// The change of a headline number against the previous period, as the card's second
/// line: `▲ +12 (+4.8%)`, `▼ −2.1 pp`, `= same`, `▲ +5 (new)`; the previous value is
/// its tooltip. Nothing when either side has no value.
fn change(out: &mut String, h: &Headline<'_>) {
    let (Some(now), Some(before)) = (h.now, h.before) else {
        return;
    };
    let difference = now - before;
    let (arrow, sign, direction) = if difference > 0.0 {
        ("▲", "+", Better::Up)
    } else if difference < 0.0 {
        ("▼", "−", Better::Down)
    } else {
        ("=", "", Better::Neither)
    };
    let tone = match (direction, h.better) {
        (Better::Neither, _) | (_, Better::Neither) => "same",
        (d, b) if d == b => "good",
        _ => "bad",
    };
    let text = if direction == Better::Neither {
        "same".to_owned()
    } else if h.points {
        format!("{sign}{:.1} pp", difference.abs() * 100.0)
    } else if before == 0.0 {
        format!("{sign}{} (new)", (h.show)(difference.abs()))
    } else {
        format!(
            "{sign}{} ({sign}{:.1}%)",
            (h.show)(difference.abs()),
            difference.abs() * 100.0 / before
        )
    };
    let _ = write!(
        out,
        r#"<div class="d {tone}" title="previous period: {}">{arrow} {}</div>"#,
        escape(&(h.show)(before)),
        escape(&text)
    );
}

fn cards(out: &mut String, report: &Report) {
    let t = &report.totals;
    let p = report.previous.as_ref();
    let count = |v: f64| int(v as u64);
    let rate = |v: f64| format!("{:.1}%", v * 100.0);
    let ms = |v: f64| millis(Some(v));
    let size = |v: f64| bytes(v as u64);
    let ratio = |t: &Totals| (t.requests > 0).then(|| t.errors as f64 / t.requests as f64);
    let number = |v: u64| Some(v as f64);
    let headline = |id, label, now, before: Option<Option<f64>>, show, better, points| Headline {
        id,
        label,
        now,
        before: before.flatten(),
        show,
        better,
        points,
    };
    let cards = [
        headline(
            "events",
            "Events",
            number(t.requests),
            p.map(|p| number(p.requests)),
            &count,
            Better::Neither,
            false,
        ),
        headline(
            "errors",
            "Errors",
            number(t.errors),
            p.map(|p| number(p.errors)),
            &count,
            Better::Down,
            false,
        ),
        headline(
            "error-rate",
            "Error rate",
            ratio(t),
            p.map(ratio),
            &rate,
            Better::Down,
            true,
        ),
        headline(
            "p50",
            "Latency p50",
            t.p50,
            p.map(|p| p.p50),
            &ms,
            Better::Down,
            false,
        ),
        headline(
            "p95",
            "Latency p95",
            t.p95,
            p.map(|p| p.p95),
            &ms,
            Better::Down,
            false,
        ),
        headline(
            "p99",
            "Latency p99",
            t.p99,
            p.map(|p| p.p99),
            &ms,
            Better::Down,
            false,
        ),
        headline(
            "instances",
            "Unique instances",
            number(t.instances),
            p.map(|p| number(p.instances)),
            &count,
            Better::Up,
            false,
        ),
        headline(
            "users",
            "Unique users",
            number(t.users),
            p.map(|p| number(p.users)),
            &count,
            Better::Up,
            false,
        ),
        headline(
            "bandwidth",
            "Bandwidth",
            number(t.bytes),
            p.map(|p| number(p.bytes)),
            &size,
            Better::Neither,
            false,
        ),
    ];
    out.push_str(r#"<div class="cards">"#);
    for card in &cards {
        // The value keeps today's forms: `0.0%` error rate and `–` latency without events.
        let value = match card.id {
            "error-rate" => percent(t.errors, t.requests),
            "p50" | "p95" | "p99" => millis(card.now),
            _ => card.now.map_or_else(String::new, card.show),
        };
        let _ = write!(
            out,
            r#"<div class="card" id="{}"><div class="k">{}</div><div class="v">{}</div>"#,
            card.id,
            card.label,
            escape(&value)
        );
        change(out, card);
        out.push_str("</div>");
    }
    out.push_str("</div>");
}

fn buckets(report: &Report) -> Vec<Bucket> {
    report
        .series
        .iter()
        .map(|p| {
            let date = date_label(date_of(p.start));
            match report.interval {
                Interval::Hour => {
                    let hour = p.start.div_euclid(3_600_000).rem_euclid(24);
                    Bucket {
                        short: if hour == 0 {
                            date[5..].to_owned()
                        } else {
                            format!("{hour:02}:00")
                        },
                        long: format!("{date} {hour:02}:00 UTC"),
                    }
                }
                Interval::Day => Bucket {
                    short: date[5..].to_owned(),
                    long: date,
                },
                _ => Bucket {
                    short: date[5..].to_owned(),
                    long: format!("week of {date}"),
                },
            }
        })
        .collect()
}

fn charts(out: &mut String, report: &Report) {
    let buckets = buckets(report);
    let per = match report.interval {
        Interval::Hour => "hour",
        Interval::Day => "day",
        _ => "week",
    };
    let series = &report.series;
    let requests: Vec<u64> = series.iter().map(|p| p.requests).collect();
    let errors: Vec<u64> = series.iter().map(|p| p.errors).collect();
    let sizes: Vec<u64> = series.iter().map(|p| p.bytes).collect();
    let p95: Vec<Option<f64>> = series.iter().map(|p| p.p95).collect();
    // The previous period, when it was read: a faint line on each time chart.
    let previous: Option<Vec<&Previous>> = series.iter().map(|p| p.previous.as_ref()).collect();
    let previous = previous.filter(|p| !p.is_empty());
    let previous_requests: Option<Vec<u64>> = previous
        .as_ref()
        .map(|p| p.iter().map(|p| p.requests).collect());
    let previous_sizes: Option<Vec<u64>> = previous
        .as_ref()
        .map(|p| p.iter().map(|p| p.bytes).collect());
    let previous_p95: Option<Vec<Option<f64>>> =
        previous.as_ref().map(|p| p.iter().map(|p| p.p95).collect());
    let count = |v: f64| compact(v as u64);
    let ms = |v: f64| {
        if v == 0.0 {
            "0".to_owned()
        } else {
            millis(Some(v))
        }
    };
    let size = |v: f64| bytes(v as u64);
    let legend_previous = if previous.is_some() {
        r#"<i class="prev"></i>previous period"#
    } else {
        ""
    };
    // Time charts scroll on a phone, starting at their right end: the newest data.
    let _ = write!(
        out,
        r#"<div class="grid"><section class="panel" id="timeseries"><h2>Events per {per}</h2><div class="legend"><i style="background:#2563eb"></i>events<i style="background:#dc2626"></i>errors{legend_previous}</div><div class="scroll end">{}</div></section><section class="panel" id="latency"><h2>Latency p95 per {per}</h2><div class="legend"><i style="background:#2563eb"></i>p95{legend_previous}</div><div class="scroll end">{}</div></section></div><div class="grid">"#,
        svg::bars(
            &format!("Events and errors per {per}"),
            &buckets,
            &requests,
            Some(("errors", &errors)),
            previous_requests.as_deref(),
            "events",
            &count
        ),
        svg::line(
            &format!("Latency p95 per {per}"),
            &buckets,
            &p95,
            previous_p95.as_deref(),
            &ms
        ),
    );
    heatmap(out, report);
    let _ = write!(
        out,
        r#"<section class="panel" id="bandwidth-series"><h2>Bandwidth per {per}</h2><div class="scroll end">{}</div></section></div>"#,
        svg::bars(
            &format!("Bytes served per {per}"),
            &buckets,
            &sizes,
            None,
            previous_sizes.as_deref(),
            "",
            &size
        )
    );
    chart_table(out, report, &buckets, per);
}

/// The time charts as one table (their text alternative, for screen readers and for
/// copying numbers), folded away under the charts. On a phone the bucket wraps and the
/// bandwidth and previous-period columns give way (`wide`), as in the other tables, so the
/// table fits the screen.
fn chart_table(out: &mut String, report: &Report, buckets: &[Bucket], per: &str) {
    let with_previous = report.series.iter().any(|p| p.previous.is_some());
    let _ = write!(
        out,
        r#"<details class="panel data" id="chart-table"><summary>The charts as a table, per {per}</summary><div class="scroll"><table><thead><tr><th>{}</th><th>Events</th><th>Errors</th><th>p95</th><th class="wide">Bandwidth</th>"#,
        escape(&per[..1].to_uppercase()),
    );
    if with_previous {
        out.push_str(r#"<th class="wide">Events before</th>"#);
    }
    out.push_str("</tr></thead><tbody>");
    for (point, bucket) in report.series.iter().zip(buckets) {
        let _ = write!(
            out,
            "<tr><td class=\"when\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"wide\">{}</td>",
            escape(&bucket.long),
            int(point.requests),
            int(point.errors),
            escape(&millis(point.p95)),
            escape(&bytes(point.bytes))
        );
        if with_previous {
            let before = point.previous.as_ref().map_or(0, |p| p.requests);
            let _ = write!(out, r#"<td class="wide">{}</td>"#, int(before));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div></details>");
}

fn heatmap(out: &mut String, report: &Report) {
    let map = &report.heatmap;
    out.push_str(r#"<section class="panel" id="heatmap"><h2>Endpoints by hour of day (UTC)</h2>"#);
    if map.rows.is_empty() {
        out.push_str(r#"<p class="empty">No events with a route in this range.</p>"#);
    } else {
        let _ = write!(
            out,
            r#"<div class="scroll">{}</div>"#,
            svg::heatmap(
                "Events per route and hour of day",
                &map.rows,
                map.max(),
                "events"
            )
        );
        if let Some(since) = map.since {
            let _ = write!(
                out,
                r#"<p class="note">Over the last {} days of the range, from {}.</p>"#,
                HEATMAP_DAYS,
                escape(&date_time(since))
            );
        }
        if map.other_routes > 0 {
            let _ = write!(
                out,
                r#"<p class="note">The {} busiest routes; {} more are not shown.</p>"#,
                map.rows.len(),
                map.other_routes
            );
        }
    }
    out.push_str("</section>");
}

/// A column of a breakdown table.
type Column<'a> = (&'a str, &'a dyn Fn(&Row) -> String);

/// A table of rows, the first column the value with a bar of its share of `bar_of`,
/// each value a link to the page filtered by it (`dimension` equal to the value).
#[allow(clippy::too_many_arguments)] // One table's parts; a struct would only rename them.
fn table(
    out: &mut String,
    page: &Page<'_>,
    dimension: Dimension,
    id: &str,
    title: &str,
    rows: &[Row],
    columns: &[Column<'_>],
    bar_of: &dyn Fn(&Row) -> u64,
    empty: &str,
) {
    let _ = write!(out, r#"<h3>{}</h3>"#, escape(title));
    if rows.is_empty() {
        let _ = write!(out, r#"<p class="empty" id="{id}">{}</p>"#, escape(empty));
        return;
    }
    let _ = write!(
        out,
        r#"<div class="scroll"><table id="{id}"><thead><tr><th></th>"#
    );
    for (name, _) in columns {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr></thead><tbody>");
    let max = rows.iter().map(bar_of).max().unwrap_or(0).max(1);
    for row in rows {
        let width = (bar_of(row) as f64 * 100.0 / max as f64).round() as u64;
        out.push_str("<tr>");
        let href = filter_link(page, dimension, &row.value);
        cut_cell_to(
            out,
            "b",
            &format!("--w:{width}%"),
            if row.value.is_empty() {
                "(none)"
            } else {
                &row.value
            },
            href.as_deref(),
        );
        for (_, cell) in columns {
            let _ = write!(out, "<td>{}</td>", escape(&cell(row)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
}

/// The busiest routes, beside the heatmap that shows them by hour.
fn routes(out: &mut String, page: &Page<'_>, report: &Report) {
    let errors_of = |r: &Row| int(r.errors);
    let users = |r: &Row| int(r.users);
    out.push_str(r#"<div class="grid"><section class="panel" id="routes"><h2>Routes</h2>"#);
    table(
        out,
        page,
        Dimension::Route,
        "route-table",
        "By events",
        &report.routes,
        &[
            ("Events", &requests),
            ("Errors", &errors_of),
            ("Users", &users),
        ],
        &count_of,
        "No events with a route in this range.",
    );
    out.push_str("</section></div>");
}

fn requests(r: &Row) -> String {
    int(r.count)
}

fn errors_of(r: &Row) -> String {
    int(r.errors)
}

fn count_of(r: &Row) -> u64 {
    r.count
}

fn errors(out: &mut String, page: &Page<'_>, report: &Report) {
    let total = report.totals.errors;
    let share = move |r: &Row| percent(r.count, total);
    let rate = |r: &Row| percent(r.errors, r.count);
    let all = report.totals.requests;
    let of_all = move |r: &Row| percent(r.count, all);
    out.push_str(
        r#"<div class="grid"><section class="panel" id="error-explorer"><h2>Error explorer</h2>"#,
    );
    table(
        out,
        page,
        Dimension::ErrorClass,
        "error-classes",
        "Error classes",
        &report.error_classes,
        &[("Errors", &requests), ("Share of errors", &share)],
        &count_of,
        "No error classes in this range.",
    );
    table(
        out,
        page,
        Dimension::Route,
        "failing-routes",
        "Failing endpoints",
        &report.failing_routes,
        &[
            ("Errors", &errors_of),
            ("Events", &requests),
            ("Error rate", &rate),
        ],
        &|r| r.errors,
        "No endpoint failed in this range.",
    );
    out.push_str(r#"</section><section class="panel" id="statuses"><h2>Status classes</h2>"#);
    table(
        out,
        page,
        Dimension::Status,
        "status-classes",
        "Responses",
        &report.statuses,
        &[("Events", &requests), ("Share", &of_all)],
        &count_of,
        "No events with a status in this range.",
    );
    out.push_str("</section></div>");
}

fn installs(out: &mut String, page: &Page<'_>, report: &Report) {
    let instances = |r: &Row| int(r.instances);
    let users = |r: &Row| int(r.users);
    out.push_str(r#"<div class="grid"><section class="panel" id="versions"><h2>Versions</h2>"#);
    table(
        out,
        page,
        Dimension::Version,
        "version-table",
        "By version",
        &report.versions,
        &[
            ("Events", &requests),
            ("Instances", &instances),
            ("Errors", &errors_of),
        ],
        &count_of,
        "No versions reported in this range.",
    );
    out.push_str(r#"</section><section class="panel" id="geography"><h2>Where</h2>"#);
    table(
        out,
        page,
        Dimension::Colo,
        "colo-table",
        "Cloudflare colos",
        &report.colos,
        &[("Events", &requests), ("Instances", &instances)],
        &count_of,
        "No colos in this range.",
    );
    table(
        out,
        page,
        Dimension::Country,
        "country-table",
        "Countries",
        &report.countries,
        &[("Events", &requests), ("Users", &users)],
        &count_of,
        "No countries in this range.",
    );
    out.push_str("</section></div>");
}

fn marketing(out: &mut String, page: &Page<'_>, report: &Report) {
    let users = |r: &Row| int(r.users);
    out.push_str(
        r#"<div class="grid"><section class="panel" id="sources"><h2>Sources and campaigns</h2>"#,
    );
    for (dimension, id, title, rows, empty) in [
        (
            Dimension::Source,
            "source-table",
            "Sources",
            &report.sources,
            "No sources in this range.",
        ),
        (
            Dimension::Medium,
            "medium-table",
            "Media",
            &report.mediums,
            "No media in this range.",
        ),
        (
            Dimension::Campaign,
            "campaign-table",
            "Campaigns",
            &report.campaigns,
            "No campaigns in this range.",
        ),
        (Dimension::Term, "term-table", "Terms", &report.terms, ""),
        (
            Dimension::Content,
            "content-table",
            "Contents",
            &report.contents,
            "",
        ),
    ] {
        // Few sites tag links with utm_term or utm_content: their tables show only when
        // the range has some.
        if empty.is_empty() && rows.is_empty() {
            continue;
        }
        table(
            out,
            page,
            dimension,
            id,
            title,
            rows,
            &[("Events", &requests), ("Users", &users)],
            &count_of,
            empty,
        );
    }
    funnel(out, page, &report.funnel);
    table(
        out,
        page,
        Dimension::Name,
        "name-table",
        "Event names",
        &report.names,
        &[("Events", &requests), ("Users", &users)],
        &count_of,
        "No events in this range.",
    );
    out.push_str("</section></div>");
}

/// The revenue section, when some event of the range carried revenue: per revenue
/// dimension a table of each currency's total and its lines with the most revenue (a
/// name, source or campaign linking to the page filtered by it), currencies apart.
fn revenue(out: &mut String, page: &Page<'_>, report: &Report) {
    if report.revenue.iter().all(|(_, table)| table.is_empty()) {
        return;
    }
    out.push_str(r#"<div class="grid"><section class="panel" id="revenue"><h2>Revenue</h2>"#);
    for (dimension, currencies) in &report.revenue {
        let (id, title, filtered_by, without) = match dimension {
            Dimension::RevenueSource => (
                "revenue-source-table",
                "By source",
                Dimension::Source,
                "Direct / none",
            ),
            Dimension::RevenueCampaign => (
                "revenue-campaign-table",
                "By campaign",
                Dimension::Campaign,
                "(no campaign)",
            ),
            _ => ("revenue-name-table", "By event name", Dimension::Name, ""),
        };
        let _ = write!(out, "<h3>{title}</h3>");
        let _ = write!(
            out,
            r#"<div class="scroll"><table id="{id}"><thead><tr><th></th><th>Currency</th><th>Revenue</th><th>Events</th></tr></thead><tbody>"#
        );
        let line = |out: &mut String,
                    code: &str,
                    label: &str,
                    href: Option<String>,
                    t: &Total,
                    class: &str| {
            let _ = write!(out, r#"<tr class="{class}">"#);
            cut_cell_to(out, "", "", label, href.as_deref());
            let _ = write!(
                out,
                "<td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(code),
                money(t.thousandths),
                int(t.events)
            );
        };
        for currency in currencies {
            line(out, &currency.code, "Total", None, &currency.total, "total");
            for (value, t) in &currency.lines {
                let (label, href) = match value {
                    Line::Value(v) => (v.as_str(), filter_link(page, filtered_by, v)),
                    Line::Without => (without, None),
                };
                line(out, &currency.code, label, href, t, "");
            }
            if let Some(t) = &currency.other {
                line(out, &currency.code, rollup::FOLDED_LABEL, None, t, "");
            }
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str(
        r#"<p class="note">Revenue is summed exactly to three decimals, per currency: currencies are never converted or added together.</p></section></div>"#,
    );
}

/// The funnel section: the users who went through the steps in order within the
/// window, with their conversion from the first step and from the one before, as
/// `tally_storage::funnels::funnel` counted them (what the API's `/funnels` answers).
fn funnel(out: &mut String, page: &Page<'_>, funnel: &Funnel) {
    out.push_str(
        r#"</section><section class="panel" id="funnel"><h2>Funnel: users through the steps</h2>"#,
    );
    let _ = write!(
        out,
        r#"<form method="get" action="{}" class="picker"><label>Steps <input type="text" name="steps" value="{}" placeholder="visit,signup,purchase" size="28"></label><label>Window <input type="text" name="window" value="{}" placeholder="{DEFAULT_WINDOW}" size="4"></label>"#,
        escape(page.path),
        escape(page.steps),
        escape(page.window)
    );
    carry(out, page, true, false);
    out.push_str(r#"<button type="submit">Show</button></form>"#);
    // The funnel follows the page's filters as the API's `/funnels` does.
    if !page.filters.is_empty() {
        out.push_str(r#"<p class="note" id="funnel-filtered">Only events that meet every filter above count as steps.</p>"#);
    }
    let (steps, from, to) = match funnel {
        Funnel::Unasked => {
            out.push_str(r#"<p class="empty" id="funnel-steps">Name the steps (event names, comma-separated, in order) to see how many users went through them.</p>"#);
            return;
        }
        Funnel::Refused(why) => {
            let _ = write!(
                out,
                r#"<p class="empty" id="funnel-steps">{}</p>"#,
                escape(why)
            );
            return;
        }
        Funnel::Counted {
            steps,
            from,
            to,
            path,
        } => {
            if let Path::Sampled { buckets } = path {
                let all = filter::SAMPLE_BUCKETS;
                let _ = write!(
                    out,
                    r#"<p class="note sampled" id="funnel-sampled">Sampled: users counted on {} of users (sample rate {buckets}/{all}, the same users every time) and scaled up: the range holds more step events than one read takes.</p>"#,
                    escape(&percent(u64::from(*buckets), u64::from(all)))
                );
            }
            (steps, *from, *to)
        }
    };
    let window = if page.window.is_empty() {
        DEFAULT_WINDOW
    } else {
        page.window
    };
    let _ = write!(
        out,
        r#"<p class="note">Users who sent the steps' events in this order, each within {} of their first step, from raw events with a user ({} – {} UTC; raw events are kept for the project's retention). The API's <code>/funnels</code> answers the same.</p>"#,
        escape(window),
        date_time(from),
        date_time(to)
    );
    let first = steps.first().map_or(0, |s| s.users);
    out.push_str(r#"<div class="scroll"><table id="funnel-steps"><thead><tr><th>Step</th><th>Users</th><th>Of step 1</th><th>Of the step before</th></tr></thead><tbody>"#);
    for (i, step) in steps.iter().enumerate() {
        let previous = if i == 0 {
            step.users
        } else {
            steps[i - 1].users
        };
        let width = (step.users.min(first) * 100)
            .checked_div(first)
            .unwrap_or(0);
        out.push_str("<tr>");
        cut_cell(
            out,
            "b",
            &format!("--w:{width}%"),
            &format!("{}. {}", i + 1, step.name),
        );
        let _ = write!(
            out,
            r#"<td>{}</td><td>{}</td><td>{}</td></tr>"#,
            int(step.users),
            escape(&percent(step.users, first)),
            escape(&percent(step.users, previous))
        );
    }
    out.push_str("</tbody></table></div>");
}

fn bandwidth(out: &mut String, page: &Page<'_>, report: &Report) {
    let size = |r: &Row| bytes(r.bytes);
    let by_bytes = |r: &Row| r.bytes;
    out.push_str(
        r#"<div class="grid"><section class="panel" id="items"><h2>Top items by bandwidth</h2>"#,
    );
    table(
        out,
        page,
        Dimension::Item,
        "item-table",
        "Items",
        &report.items,
        &[("Bandwidth", &size), ("Requests", &requests)],
        &by_bytes,
        "No items in this range.",
    );
    out.push_str(r#"</section><section class="panel" id="variants"><h2>Variants</h2>"#);
    table(
        out,
        page,
        Dimension::Variant,
        "variant-table",
        "By bandwidth",
        &report.variants,
        &[("Bandwidth", &size), ("Requests", &requests)],
        &by_bytes,
        "No variants in this range.",
    );
    out.push_str("</section></div>");
}

/// The login page of a project's dashboard: a read token, posted to
/// `/dashboard/{project}/login`. `next` says which page to return to.
pub fn login(project: &str, next: &str, message: Option<&str>) -> String {
    let mut out = String::new();
    head(&mut out, &format!("{project} · Tally · sign in"));
    let _ = write!(
        out,
        r#"<main><form class="login" method="post" action="/dashboard/{p}/login"><h1>{p}</h1><p>This dashboard needs a read token of the project (<code>tr_…</code>), or a share link.</p>"#,
        p = escape(project)
    );
    if let Some(message) = message {
        let _ = write!(
            out,
            r#"<p class="error" id="login-error">{}</p>"#,
            escape(message)
        );
    }
    out.push_str(
        r#"<label for="token">Read token</label><input id="token" name="token" type="password" autocomplete="current-password" required>"#,
    );
    hidden(&mut out, "next", next);
    out.push_str(r#"<button type="submit">Sign in</button><p class="note">The token is kept in a cookie on this browser only; sign out to remove it.</p></form></main></body></html>"#);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::dashboard::report::{Funnel, Inputs, parse_steps};
    use tally_core::funnel::conversions;
    use tally_core::rollup::{Dimension, Rollup};
    use tally_core::time::{DAY_MS, parse_date};
    use tally_storage::read::{Counts, Merged};

    const EVIL: &str = r#"<script>alert("x")</script>"#;
    /// A route filter whose value is markup ending in a literal star.
    const EVIL_FILTER: &str = r"route:<script>\*";

    fn report(funnel: &Funnel) -> Report {
        let row = |count, errors, bytes| Rollup {
            count,
            errors,
            bytes,
            ..Rollup::default()
        };
        let merged: Merged = [
            ((Dimension::All, String::new()), row(1234, 56, 3 << 20)),
            ((Dimension::Route, EVIL.to_owned()), row(1234, 56, 0)),
            ((Dimension::ErrorClass, EVIL.to_owned()), row(56, 56, 0)),
            ((Dimension::Name, "visit".to_owned()), row(100, 0, 0)),
            ((Dimension::Name, "signup".to_owned()), row(25, 0, 0)),
        ]
        .into_iter()
        .collect();
        let day = parse_date("2025-01-18").unwrap();
        let hours = BTreeMap::from([(day, BTreeMap::from([(EVIL.to_owned(), 1234)]))]);
        report_of(&merged, &hours, funnel)
    }

    /// The week to 2025-01-18's report of `merged`, with `hours` for the heatmap.
    fn report_of(merged: &Merged, hours: &Counts, funnel: &Funnel) -> Report {
        let day = parse_date("2025-01-18").unwrap();
        Report::new(&Inputs {
            from: day - 6 * DAY_MS,
            to: day + DAY_MS,
            merged,
            series: &BTreeMap::new(),
            interval: Interval::Day,
            route_hours: hours,
            heatmap_from: day,
            funnel,
            previous: None,
            scale: 1,
            previous_scale: 1,
        })
    }

    fn page<'a>(
        report: &'a Report,
        access: &'a Access,
        picked: &'a Picked,
        steps: &'a str,
    ) -> String {
        dashboard(&week_page(report, access, picked, steps, &Filters::none()))
    }

    /// The page of the week to 2025-01-18 with `report`, unfiltered unless `filters`
    /// say otherwise, without a window or alerts; tests change what they look at.
    fn week_page<'a>(
        report: &'a Report,
        access: &'a Access,
        picked: &'a Picked,
        steps: &'a str,
        filters: &'a Filters,
    ) -> Page<'a> {
        let day = parse_date("2025-01-18").unwrap();
        Page {
            project: "demo",
            path: "/dashboard/demo",
            access,
            picked,
            from: day - 6 * DAY_MS,
            to: day + DAY_MS,
            steps,
            window: "",
            report: Some(report),
            error: None,
            filters,
            served: None,
            alerts: None,
        }
    }

    #[test]
    fn headline_numbers_show_their_change_against_the_previous_period() {
        let picked = Picked {
            days: Some("7".into()),
            ..Picked::default()
        };
        let mut report = report(&Funnel::Unasked);
        let html = page(&report, &Access::Cookie, &picked, "");
        assert!(!html.contains(r#"class="d "#), "nothing to compare with");
        assert!(!html.contains("previous-range"));
        report.previous = Some(Totals {
            requests: 1000,
            errors: 56,
            bytes: 0,
            p50: None,
            ..Totals::default()
        });
        let html = page(&report, &Access::Cookie, &picked, "");
        // Events rose (neither good nor bad), errors held, their rate fell (good), bandwidth
        // is new, a percentile without a previous value shows no change.
        for expected in [
            r#"<div class="d same" title="previous period: 1,000">▲ +234 (+23.4%)</div>"#,
            r#"<div class="d same" title="previous period: 56">= same</div>"#,
            r#"<div class="d good" title="previous period: 5.6%">▼ −1.1 pp</div>"#,
            r#"<div class="d same" title="previous period: 0 B">▲ +3 MiB (new)</div>"#,
            "Changes compare with the period of the same length before: 2025-01-05 00:00 – 2025-01-12 00:00 UTC.",
        ] {
            assert!(html.contains(expected), "{expected} in {html}");
        }
        report.previous = Some(Totals {
            requests: 1234,
            errors: 28,
            ..Totals::default()
        });
        let html = page(&report, &Access::Cookie, &picked, "");
        for expected in [
            r#"<div class="d bad" title="previous period: 28">▲ +28 (+100.0%)</div>"#,
            r#"<div class="d bad" title="previous period: 2.3%">▲ +2.3 pp</div>"#,
        ] {
            assert!(html.contains(expected), "{expected} in {html}");
        }
        assert_eq!(html.matches(r#"class="d "#).count(), 6, "no latency change");
    }

    #[test]
    fn the_page_shows_the_numbers_and_escapes_every_value() {
        let day = parse_date("2025-01-18").unwrap();
        let funnel = Funnel::Counted {
            steps: conversions(&parse_steps("visit,signup,buy"), &[100, 25, 20]),
            from: day - 6 * DAY_MS,
            to: day + DAY_MS,
            path: Path::Raw,
        };
        let report = report(&funnel);
        let picked = Picked {
            days: Some("7".into()),
            ..Picked::default()
        };
        let html = page(&report, &Access::Cookie, &picked, "visit,signup,buy");
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains(r#"<meta name="viewport""#));
        assert!(
            !html.contains("<script"),
            "no script, and the value is escaped"
        );
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        for external in [" src=", "<link", "<img", "@import", "url("] {
            assert!(!html.contains(external), "no external assets: {external}");
        }
        assert!(html.contains(r#"<div class="v">1,234</div>"#));
        assert!(html.contains(r#"<div class="v">4.5%</div>"#), "56 of 1,234");
        assert!(html.contains(r#"<div class="v">3 MiB</div>"#));
        assert!(html.contains("Last 7 days (2025-01-12 – 2025-01-18 UTC)"));
        assert!(html.contains(r#"name="days" value="7" class="on""#));
        assert!(html.contains(r#"<input type="hidden" name="steps" value="visit,signup,buy">"#));
        // Users per step, their share of step 1's and of the step before's.
        assert!(html.contains(
            r#"<tr><td class="t b" style="--w:100%" title="1. visit">1. visit</td><td>100</td><td>100.0%</td><td>100.0%</td></tr>"#
        ));
        assert!(html.contains(
            r#"<tr><td class="t b" style="--w:25%" title="2. signup">2. signup</td><td>25</td><td>25.0%</td><td>25.0%</td></tr>"#
        ));
        assert!(html.contains(
            r#"<tr><td class="t b" style="--w:20%" title="3. buy">3. buy</td><td>20</td><td>20.0%</td><td>80.0%</td></tr>"#
        ));
        assert!(html.contains("each within 1d of their first step"));
        assert!(html.contains(r#"name="window" value="" placeholder="1d""#));
        assert!(html.contains("action=\"/dashboard/demo/logout\""));
        assert_eq!(
            html.matches("<svg").count(),
            4,
            "three charts and the heatmap"
        );
    }

    #[test]
    fn revenue_and_term_tables_show_only_when_there_is_some_escaped_and_linked() {
        let picked = Picked {
            days: Some("7".into()),
            ..Picked::default()
        };
        let plain = report(&Funnel::Unasked);
        let html = page(&plain, &Access::Cookie, &picked, "");
        for absent in [
            r#"id="revenue""#,
            r#"id="term-table""#,
            r#"id="content-table""#,
        ] {
            assert!(!html.contains(absent), "{absent} without any");
        }
        let row = |count, revenue| Rollup {
            count,
            revenue,
            ..Rollup::default()
        };
        let value = |currency, second: Option<&str>| rollup::revenue_value(currency, second);
        let merged: Merged = [
            ((Dimension::All, String::new()), row(10, 0)),
            ((Dimension::Term, EVIL.to_owned()), row(3, 0)),
            (
                (Dimension::RevenueName, value("EUR", Some(EVIL))),
                row(3, 20_090),
            ),
            (
                (Dimension::RevenueName, value("USD", Some("buy"))),
                row(1, 5_000),
            ),
            (
                (Dimension::RevenueSource, value("EUR", Some("google"))),
                row(2, 20_000),
            ),
            ((Dimension::RevenueSource, value("EUR", None)), row(1, 90)),
            (
                (Dimension::RevenueSource, value("EUR", Some(""))),
                row(4, 1),
            ),
        ]
        .into_iter()
        .collect();
        let report = report_of(&merged, &BTreeMap::new(), &Funnel::Unasked);
        let html = page(&report, &Access::Cookie, &picked, "");
        assert!(!html.contains("<script"), "every value escaped");
        for expected in [
            r#"id="revenue""#,
            r#"id="term-table""#,
            "<td>EUR</td><td>20.09</td><td>3</td>",
            "<td>USD</td><td>5.00</td><td>1</td>",
            // The source total holds the folded row and the events without a source.
            "<td>EUR</td><td>20.091</td><td>7</td>",
            r#"title="Direct / none">Direct / none</td><td>EUR</td><td>0.09</td>"#,
            r#"title="(other)">(other)</td><td>EUR</td><td>0.001</td><td>4</td>"#,
            "filter=source%3Agoogle",
            "filter=name%3A%3Cscript%3E",
        ] {
            assert!(html.contains(expected), "{expected} in {html}");
        }
        assert_eq!(
            html.matches(r#"<tr class="total">"#).count(),
            3,
            "two currencies by name, one by source, none by campaign"
        );
    }

    #[test]
    fn a_funnel_that_cannot_be_counted_says_why_and_the_forms_keep_its_window() {
        let report = report(&Funnel::Refused(EVIL.to_owned()));
        let picked = Picked {
            days: Some("7".into()),
            ..Picked::default()
        };
        let none = Filters::none();
        let html = dashboard(&Page {
            window: "2h",
            ..week_page(&report, &Access::Cookie, &picked, "a,b", &none)
        });
        assert!(html.contains(
            r#"<p class="empty" id="funnel-steps">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</p>"#
        ));
        assert!(!html.contains("<table id=\"funnel-steps\""));
        // The range forms keep the steps and the window; the funnel's own form sets them.
        assert!(html.contains(r#"name="window" value="2h" placeholder="1d""#));
        assert_eq!(
            html.matches(r#"<input type="hidden" name="window" value="2h">"#)
                .count(),
            html.matches(r#"<input type="hidden" name="steps" value="a,b">"#)
                .count()
        );
        assert!(html.contains(r#"<input type="hidden" name="window" value="2h">"#));
    }

    #[test]
    fn the_alerts_section_shows_only_when_given() {
        let report = report(&Funnel::Unasked);
        let picked = Picked::default();
        let without = page(&report, &Access::Public, &picked, "");
        assert!(!without.contains(r#"id="alerts""#));
        let given = Alerts::default();
        let none = Filters::none();
        let with = dashboard(&Page {
            alerts: Some(&given),
            ..week_page(&report, &Access::Cookie, &picked, "", &none)
        });
        let at = |id: &str| with.find(id).unwrap_or_else(|| panic!("{id}"));
        assert!(at(r#"id="events""#) < at(r#"id="alerts""#));
        assert!(at(r#"id="alert-rules""#) < at(r#"id="timeseries""#));
    }

    #[test]
    fn a_shared_page_carries_its_token_in_every_form() {
        let report = report(&Funnel::Unasked);
        let access = Access::Share {
            token: "123.abc\"".into(),
            expires_s: 1_737_244_800,
        };
        let picked = Picked {
            from: Some("2025-01-12".into()),
            to: Some("2025-01-18".into()),
            ..Picked::default()
        };
        let html = page(&report, &access, &picked, "");
        let forms = html.matches("<form").count();
        assert_eq!(forms, 3);
        assert_eq!(
            html.matches(r#"<input type="hidden" name="share" value="123.abc&quot;">"#)
                .count(),
            forms
        );
        assert!(html.contains("valid until 2025-01-19 00:00 UTC"));
        assert!(html.contains(r#"<input type="hidden" name="from" value="2025-01-12">"#));
        assert!(html.contains(r#"name="to" value="2025-01-18" required"#));
        assert!(!html.contains("logout"));
        assert!(html.contains("Name the steps"));
    }

    #[test]
    fn the_login_page_posts_the_token() {
        let html = login("demo", "admin", Some(EVIL));
        assert!(html.contains(r#"action="/dashboard/demo/login""#));
        assert!(html.contains(r#"name="token" type="password""#));
        assert!(html.contains(r#"<input type="hidden" name="next" value="admin">"#));
        assert!(!html.contains("<script"));
    }

    /// A page over `filters` (grammar texts) with a 7-day range, for link building.
    fn filtered<'a>(access: &'a Access, picked: &'a Picked, filters: &'a Filters) -> Page<'a> {
        Page {
            project: "demo",
            path: "/dashboard/demo",
            access,
            picked,
            from: 0,
            to: DAY_MS,
            steps: "a,b",
            window: "",
            report: None,
            error: None,
            filters,
            served: None,
            alerts: None,
        }
    }

    fn filters(texts: &[&str]) -> Filters {
        tally_core::filter::parse(texts.iter().copied()).unwrap()
    }

    /// The filters and the other parameters a link's URL carries, as the page reads them.
    fn read_back(href: &str) -> (Vec<Filter>, crate::edge::params::Params) {
        let url = worker::Url::parse(&format!("https://q.example{href}")).unwrap();
        let params = crate::edge::params::Params::from_url(&url);
        let filters = params.filters().unwrap().iter().cloned().collect();
        (filters, params)
    }

    #[test]
    fn value_links_escape_the_grammar_and_the_url_and_read_back_as_the_value() {
        let picked = Picked {
            days: Some("30".into()),
            ..Picked::default()
        };
        let none = Filters::none();
        let page = filtered(&Access::Cookie, &picked, &none);
        let long = format!("/{}", "x".repeat(511));
        for value in [
            "/api/*",
            r"C:\tmp\*",
            "/a?b=1&c=2#top",
            "/café/日本/ü",
            "a b+c%2F",
            long.as_str(),
        ] {
            let href = filter_link(&page, Dimension::Route, value).unwrap();
            assert!(
                href.starts_with("/dashboard/demo?days=30&steps=a%2Cb&filter="),
                "{href}"
            );
            // The URL is one path and query: nothing a browser would split or cut off.
            assert!(
                !href.contains('#') && !href.contains(' ') && href.is_ascii(),
                "{href}"
            );
            assert_eq!(href.matches('&').count(), 2, "{href}");
            let (read, params) = read_back(&href);
            assert_eq!(
                read,
                vec![Filter {
                    dimension: Dimension::Route,
                    op: Op::Eq,
                    value: value.to_owned()
                }],
                "{href}"
            );
            assert_eq!(params.get("days"), Some("30"));
            assert_eq!(params.get("steps"), Some("a,b"));
        }
        // A literal star is escaped, so the link is an equality, not a prefix.
        assert_eq!(
            filter_link(&page, Dimension::Route, "/api/*").unwrap(),
            "/dashboard/demo?days=30&steps=a%2Cb&filter=route%3A%2Fapi%2F%5C*"
        );
        assert_eq!(
            filter_link(&page, Dimension::Route, r"a\b").unwrap(),
            "/dashboard/demo?days=30&steps=a%2Cb&filter=route%3Aa%5C%5Cb"
        );
    }

    #[test]
    fn values_no_filter_can_name_get_no_link() {
        let picked = Picked::default();
        let none = Filters::none();
        let page = filtered(&Access::Cookie, &picked, &none);
        // The folded row of a bounded dimension stands for many values.
        assert_eq!(filter_link(&page, Dimension::Route, "(other)"), None);
        assert_eq!(filter_link(&page, Dimension::Route, ""), None);
        // Longer than any stored route could be.
        let too_long = format!("/{}", "x".repeat(512));
        assert_eq!(filter_link(&page, Dimension::Route, &too_long), None);
        assert!(filter_link(&page, Dimension::Route, "/(other)x").is_some());
        // The eleventh filter would be refused.
        let texts: Vec<String> = (0..10).map(|i| format!("route!=/r{i}")).collect();
        let ten = filters(&texts.iter().map(String::as_str).collect::<Vec<_>>());
        let full = filtered(&Access::Cookie, &picked, &ten);
        assert_eq!(filter_link(&full, Dimension::Country, "DE"), None);
    }

    #[test]
    fn a_link_adds_its_filter_to_the_others_and_keeps_a_share_token() {
        let access = Access::Share {
            token: "1.a&b".into(),
            expires_s: 0,
        };
        let picked = Picked {
            from: Some("2025-01-12".into()),
            to: Some("2025-01-18".into()),
            ..Picked::default()
        };
        let active = filters(&["route:/api/x"]);
        let page = filtered(&access, &picked, &active);
        let href = filter_link(&page, Dimension::Country, "DE").unwrap();
        let (read, params) = read_back(&href);
        let texts: Vec<String> = read.iter().map(Filter::text).collect();
        assert_eq!(texts, ["route:/api/x", "country:DE"]);
        assert_eq!(params.get("share"), Some("1.a&b"));
        assert_eq!(params.get("from"), Some("2025-01-12"));
        assert_eq!(params.get("to"), Some("2025-01-18"));
    }

    #[test]
    fn active_filters_show_as_chips_that_link_to_the_page_without_them() {
        let report = report(&Funnel::Unasked);
        let picked = Picked {
            days: Some("7".into()),
            ..Picked::default()
        };
        let active = filters(&["country:DE", EVIL_FILTER]);
        let mut page = filtered(&Access::Cookie, &picked, &active);
        page.report = Some(&report);
        page.served = Some(Served {
            path: Path::Sampled { buckets: 32 },
            from: page.from,
        });
        let html = dashboard(&page);
        assert!(!html.contains("<script"));
        assert_eq!(html.matches(r#"<span class="chip""#).count(), 2);
        // Each chip's link is the page with the other filter, the page's state kept.
        assert!(html.contains(
            r#"<a href="/dashboard/demo?days=7&amp;steps=a%2Cb&amp;filter=country%3ADE" aria-label="Remove the filter route is &lt;script&gt;*"#
        ), "{html}");
        assert!(html.contains(r#"<span class="cv">country is DE</span><a href="/dashboard/demo?days=7&amp;steps=a%2Cb&amp;filter=route%3A%3Cscript%3E%5C*""#));
        assert!(html.contains(
            r#"<a id="clear-filters" href="/dashboard/demo?days=7&amp;steps=a%2Cb">Clear all</a>"#
        ));
        // Every GET form carries the filters, so changing the range keeps them.
        let forms = html.matches(r#"<form method="get""#).count();
        assert_eq!(
            html.matches(r#"<input type="hidden" name="filter" value="country:DE">"#)
                .count(),
            forms
        );
        // A sampled answer says so beside the headline numbers, with its rate.
        let note = html.find(r#"id="served-by""#).unwrap();
        assert!(note < html.find(r#"class="cards""#).unwrap());
        assert!(html.contains("computed on 12.5% of users (sample rate 32/256)"));
        // Value links add to the active filters, in the grammar's canonical order; the
        // sections that take none say so.
        assert!(html.contains(r#"<a href="/dashboard/demo?days=7&amp;steps=a%2Cb&amp;filter=name%3Avisit&amp;filter=route%3A%3Cscript%3E%5C*&amp;filter=country%3ADE""#), "{html}");
        assert!(html.contains(
            r#"<a id="realtime-link" href="/dashboard/demo/realtime?filter=route%3A%3Cscript%3E%5C*&amp;filter=country%3ADE">"#
        ), "{html}");
        assert!(html.contains(r#"id="funnel-filtered""#));
    }

    #[test]
    fn without_filters_there_are_no_chips_and_values_still_link() {
        let report = report(&Funnel::Unasked);
        let picked = Picked::default();
        let html = page(&report, &Access::Public, &picked, "");
        assert!(!html.contains(r#"id="filters""#));
        assert!(!html.contains(r#"id="served-by""#));
        assert!(html.contains(r#"<a id="realtime-link" href="/dashboard/demo/realtime">"#));
        assert!(!html.contains(r#"id="funnel-filtered""#));
        assert!(html.contains(r#"<a href="/dashboard/demo?filter=name%3Asignup">signup</a>"#));
        assert!(html.contains(r#"<table id="route-table">"#));
    }
}
