//! The realtime page, `/dashboard/{p}/realtime`, rendered (pure): the last thirty
//! minutes as a chart and a table (the current minute marked as still filling), the
//! visitors of the last five minutes, and the top routes and sources of the thirty
//! minutes. It reloads itself every [`REFRESH_S`] seconds with `<meta
//! http-equiv="refresh">`: no script, so the dashboard's policy stays as strict.

use std::fmt::Write;

use tally_core::filter::{self, Filter, Filters};
use tally_core::realtime::{MINUTES, Realtime, TopValue, VISITOR_WINDOW_MS};
use tally_core::time::MINUTE_MS;
use tally_storage::filtered::Path;

use super::page::{Access, head_refreshing, header, link_with_filters};
use super::svg::{self, Bucket};
use crate::edge::html::{compact, escape, int, millis};

/// Seconds between reloads.
pub const REFRESH_S: u32 = 10;

/// `HH:MM` of an instant, UTC.
fn hour_minute(ms: i64) -> String {
    let hour = ms.div_euclid(3_600_000).rem_euclid(24);
    let minute = ms.div_euclid(MINUTE_MS).rem_euclid(60);
    format!("{hour:02}:{minute:02}")
}

/// `HH:MM:SS` of an instant, UTC.
fn clock(ms: i64) -> String {
    let second = ms.div_euclid(1000).rem_euclid(60);
    format!("{}:{second:02}", hour_minute(ms))
}

/// The realtime page of `project` for a viewer who got in by `access`, under `filters`
/// (read by `path`).
pub fn page(
    project: &str,
    access: &Access,
    view: &Realtime,
    filters: &Filters,
    path: Path,
) -> String {
    let mut out = String::with_capacity(16 * 1024);
    head_refreshing(
        &mut out,
        &format!("{project} · realtime · Tally"),
        Some(REFRESH_S),
    );
    header(&mut out, project, access);
    let _ = write!(
        out,
        r#"<main><div class="picker"><a id="dashboard-link" href="{}">Back to the dashboard</a><span id="rt-updated">Updated {} UTC; this page reloads itself every {REFRESH_S} s.</span></div>"#,
        escape(&link_with_filters(
            &format!("/dashboard/{project}"),
            access,
            filters
        )),
        clock(view.window.now_ms)
    );
    if !filters.is_empty() {
        let words: Vec<String> = filters.iter().map(Filter::text).collect();
        let how = match path {
            Path::Sampled { buckets } => format!(
                "computed on a sample of {buckets}/{} of users and scaled up",
                filter::SAMPLE_BUCKETS
            ),
            _ => "exact".to_owned(),
        };
        let _ = write!(
            out,
            r#"<p class="note" id="rt-filters" data-served-by="{}">Filtered by {}: from the raw events of the {MINUTES} minutes that meet every filter, {how}.</p>"#,
            path.name(),
            escape(&words.join(", "))
        );
    }
    cards(&mut out, view);
    chart(&mut out, view);
    out.push_str(r#"<div class="grid"><section class="panel"><h2>Top now</h2>"#);
    top(&mut out, "rt-routes", "Routes and pages", &view.routes);
    top(&mut out, "rt-sources", "Sources", &view.sources);
    out.push_str("</section>");
    minutes(&mut out, view);
    out.push_str("</div>");
    let source = if filters.is_empty() {
        "minute rollups"
    } else {
        "the raw events"
    };
    let _ = write!(
        out,
        "</main><footer>Events, errors, p95 and the top lists come from {source} of \
         the last {MINUTES} minutes (counts exact, p95 within 1%); visitors are the distinct \
         users of the last {} minutes' raw events. All times are UTC.</footer></body></html>",
        VISITOR_WINDOW_MS / MINUTE_MS
    );
    out
}

fn cards(out: &mut String, view: &Realtime) {
    let events: u64 = view.minutes.iter().map(|m| m.events).sum();
    let errors: u64 = view.minutes.iter().map(|m| m.errors).sum();
    let current = view.minutes.last().map_or(0, |m| m.events);
    let visitors = if view.visitors.truncated {
        format!("≥ {}", int(view.visitors.count))
    } else {
        int(view.visitors.count)
    };
    let cards = [
        ("rt-visitors", "Visitors, last 5 min", visitors),
        ("rt-events", "Events, last 30 min", int(events)),
        ("rt-errors", "Errors, last 30 min", int(errors)),
        ("rt-current", "Events this minute", int(current)),
    ];
    out.push_str(r#"<div class="cards">"#);
    for (id, label, value) in cards {
        let _ = write!(
            out,
            r#"<div class="card" id="{id}"><div class="k">{label}</div><div class="v">{}</div></div>"#,
            escape(&value)
        );
    }
    out.push_str("</div>");
    if view.visitors.truncated {
        let _ = write!(
            out,
            r#"<p class="note" id="rt-truncated">Visitors are counted over the {} most recent events of the last five minutes only, the most one view reads; there may be more.</p>"#,
            int(view.visitors.events_read)
        );
    }
}

fn chart(out: &mut String, view: &Realtime) {
    let buckets: Vec<Bucket> = view
        .minutes
        .iter()
        .map(|m| Bucket {
            short: hour_minute(m.start),
            long: if m.partial {
                format!("{} UTC (this minute, still filling)", hour_minute(m.start))
            } else {
                format!("{} UTC", hour_minute(m.start))
            },
        })
        .collect();
    let events: Vec<u64> = view.minutes.iter().map(|m| m.events).collect();
    let errors: Vec<u64> = view.minutes.iter().map(|m| m.errors).collect();
    let count = |v: f64| compact(v as u64);
    let _ = write!(
        out,
        r#"<section class="panel" id="rt-chart"><h2>Events per minute</h2><div class="legend"><i style="background:#2563eb"></i>events<i style="background:#dc2626"></i>errors</div><div class="scroll end">{}</div></section>"#,
        svg::bars(
            "Events and errors per minute, last 30 minutes",
            &buckets,
            &events,
            Some(("errors", &errors)),
            None,
            "events",
            &count
        )
    );
}

fn top(out: &mut String, id: &str, title: &str, list: &[TopValue]) {
    let _ = write!(out, "<h3>{}</h3>", escape(title));
    if list.is_empty() {
        let _ = write!(
            out,
            r#"<p class="empty" id="{id}">Nothing in the last 30 minutes.</p>"#
        );
        return;
    }
    let _ = write!(
        out,
        r#"<div class="scroll"><table id="{id}"><thead><tr><th></th><th>Events</th><th>Errors</th></tr></thead><tbody>"#
    );
    let max = list.iter().map(|t| t.events).max().unwrap_or(0).max(1);
    for t in list {
        let width = (t.events as f64 * 100.0 / max as f64).round() as u64;
        let _ = write!(
            out,
            r#"<tr><td class="b" style="--w:{width}%">{}</td><td>{}</td><td>{}</td></tr>"#,
            escape(&t.value),
            int(t.events),
            int(t.errors)
        );
    }
    out.push_str("</tbody></table></div>");
}

/// The minutes, newest first, the current one marked.
fn minutes(out: &mut String, view: &Realtime) {
    out.push_str(
        r#"<section class="panel"><h2>Minute by minute</h2><div class="scroll"><table id="rt-minutes"><thead><tr><th>Minute (UTC)</th><th>Events</th><th>Errors</th><th>p95</th></tr></thead><tbody>"#,
    );
    for m in view.minutes.iter().rev() {
        let (class, note) = if m.partial {
            (r#" class="partial""#, " (now, still filling)")
        } else {
            ("", "")
        };
        let _ = write!(
            out,
            "<tr{class}><td>{}{note}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            hour_minute(m.start),
            int(m.events),
            int(m.errors),
            escape(&millis(m.p95_ms))
        );
    }
    out.push_str("</tbody></table></div></section>");
}

#[cfg(test)]
mod tests {
    use tally_core::realtime::{Minute, Visitors, Window, minutes as fill};

    use super::*;

    const EVIL: &str = r#"<script>alert("x")</script>"#;

    fn view(truncated: bool) -> Realtime {
        // 2026-01-01T12:00:30Z.
        let window = Window::ending_at(1_767_268_830_000);
        let mut minutes = fill(&window, []);
        minutes[29] = Minute {
            events: 3,
            errors: 1,
            p95_ms: Some(42.0),
            ..minutes[29].clone()
        };
        minutes[0].events = 2;
        Realtime {
            window,
            minutes,
            visitors: Visitors {
                count: 2,
                events_read: 5,
                truncated,
            },
            routes: vec![TopValue {
                value: EVIL.into(),
                events: 5,
                errors: 1,
            }],
            sources: Vec::new(),
        }
    }

    #[test]
    fn the_page_reloads_itself_shows_the_window_and_escapes_every_value() {
        let access = Access::Share {
            token: "s1.a&b".into(),
            expires_s: 1_767_300_000,
        };
        let html = page(
            "demo",
            &access,
            &view(false),
            &Filters::none(),
            Path::Rollups,
        );
        assert!(html.contains(r#"<meta http-equiv="refresh" content="10">"#));
        assert!(!html.contains("<script"), "no script, and values escaped");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
        assert!(
            html.contains(r#"href="/dashboard/demo?share=s1.a%26b""#),
            "{html}"
        );
        assert!(html.contains("Updated 12:00:30 UTC"));
        for (id, value) in [
            ("rt-visitors", "2"),
            ("rt-events", "5"),
            ("rt-errors", "1"),
            ("rt-current", "3"),
        ] {
            assert!(
                html.contains(&format!(r#"id="{id}"><div class="k">"#))
                    && html.contains(&format!(r#"</div><div class="v">{value}</div></div>"#)),
                "{id}"
            );
        }
        assert!(
            html.contains("<td>12:00 (now, still filling)</td><td>3</td><td>1</td><td>42 ms</td>")
        );
        assert!(html.contains("<td>11:31</td><td>2</td><td>0</td><td>–</td>"));
        assert_eq!(
            html.matches("<tr><td>").count() + 1,
            30,
            "every minute a row"
        );
        assert!(html.contains(r#"<p class="empty" id="rt-sources">"#));
        assert!(!html.contains("rt-truncated"));
    }

    #[test]
    fn a_truncated_visitor_count_is_shown_as_a_lower_bound() {
        let html = page(
            "demo",
            &Access::Cookie,
            &view(true),
            &Filters::none(),
            Path::Rollups,
        );
        assert!(html.contains(r#"<div class="v">≥ 2</div>"#));
        assert!(html.contains(r#"id="rt-truncated""#));
        assert!(html.contains(r#"href="/dashboard/demo""#));
        assert!(!html.contains("rt-filters"));
    }

    #[test]
    fn a_filtered_view_says_its_filters_and_path_and_links_back_with_them() {
        let filters = filter::parse(["country:DE", "route:/api/*"]).unwrap();
        let sampled = Path::Sampled { buckets: 64 };
        let html = page("demo", &Access::Cookie, &view(false), &filters, sampled);
        assert!(
            html.contains(
                r#"href="/dashboard/demo?filter=route%3A%2Fapi%2F*&amp;filter=country%3ADE""#
            ),
            "{html}"
        );
        assert!(html.contains(r#"id="rt-filters" data-served-by="sampled""#));
        assert!(html.contains("Filtered by route:/api/*, country:DE"));
        assert!(html.contains("a sample of 64/256 of users"));
        assert!(html.contains("come from the raw events"));
    }
}
