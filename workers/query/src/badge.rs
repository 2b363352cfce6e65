//! `GET /badge/{p}/{metric}.svg`: shields-style flat badges for a project's README or
//! listing, public by design (DESIGN §3) for the projects that opt in (`public_badges`,
//! on with a public dashboard): `installs` ("used by N sites", distinct
//! instances), `uptime` (the share of requests with a status that were not 5xx),
//! `p95` (latency) and `requests`, each over the last 30 days (today and the 29 before).
//!
//! Unknown projects, projects without public badges and unknown metrics get the same
//! 404 badge (or JSON when the client asks for JSON), so slugs cannot be told apart.

use std::fmt::Write;

use tally_core::rollup::Dimension;
use tally_core::time::{DAY_MS, Interval};
use tally_core::validate::is_valid_slug;
use tally_edge::ApiError;
use tally_storage::{AdminStore, read};
use worker::{Request, Response};

use crate::edge::error::internal;
use crate::edge::html::{compact, escape, millis};
use crate::edge::{RequestEnv, now_ms, store};

/// The days a badge covers.
pub const DAYS: i64 = 30;
/// The badges there are.
pub const METRICS: [&str; 4] = ["installs", "uptime", "p95", "requests"];

const BLUE: &str = "#007ec6";
const GREEN: &str = "#4c1";
const YELLOWGREEN: &str = "#97ca00";
const YELLOW: &str = "#dfb317";
const ORANGE: &str = "#fe7d37";
const RED: &str = "#e05d44";
const GREY: &str = "#9f9f9f";

/// A badge's text and colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    pub label: String,
    pub value: String,
    pub color: &'static str,
}

pub async fn get(
    req: &Request,
    env: &RequestEnv,
    project: &str,
    file: &str,
) -> Result<Response, ApiError> {
    let accept = req
        .headers()
        .get("accept")
        .ok()
        .flatten()
        .unwrap_or_default();
    let json = accept.contains("application/json") && !accept.contains("image/");
    let metric = file.strip_suffix(".svg").unwrap_or(file);
    if !METRICS.contains(&metric) || !file.ends_with(".svg") {
        return not_found(
            json,
            &format!(
                "no badge {file:?}; badges are installs.svg, uptime.svg, p95.svg, requests.svg"
            ),
        );
    }
    let store = store(env)?;
    // A project that did not opt in to badges is answered as one that does not exist,
    // so badges tell nothing of a private project, not even that it is there.
    let public = is_valid_slug(project)
        && store
            .project(project)
            .await
            .map_err(internal)?
            .is_some_and(|p| p.public_badges);
    if !public {
        return not_found(json, &format!("there is no project {project:?}"));
    }
    let now = now_ms();
    let from = Interval::Day.floor(now) - (DAYS - 1) * DAY_MS;
    let dimension = if metric == "uptime" {
        Dimension::Status
    } else {
        Dimension::All
    };
    let merged = read::merged(&store, project, from, now + 1, Some(dimension))
        .await
        .map_err(internal)?;
    let badge = match metric {
        "uptime" => {
            let total: u64 = merged.values().map(|r| r.count).sum();
            let failed = merged
                .get(&(Dimension::Status, "5xx".to_owned()))
                .map_or(0, |r| r.count);
            uptime(failed, total)
        }
        _ => {
            let all = merged.into_values().next().unwrap_or_default();
            match metric {
                "installs" => installs(all.instances.count()),
                "p95" => p95(all.durations.quantile(0.95)),
                _ => requests(all.count),
            }
        }
    };
    svg_response(&badge, 200, "public, max-age=300")
}

fn not_found(json: bool, message: &str) -> Result<Response, ApiError> {
    if json {
        return Err(ApiError::not_found(message));
    }
    let badge = Badge {
        label: "tally".into(),
        value: "not found".into(),
        color: GREY,
    };
    svg_response(&badge, 404, "public, max-age=60")
}

fn svg_response(badge: &Badge, status: u16, cache: &str) -> Result<Response, ApiError> {
    let mut response = Response::ok(render(badge))
        .map_err(internal)?
        .with_status(status);
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-type", "image/svg+xml; charset=utf-8"),
        ("cache-control", cache),
        ("x-content-type-options", "nosniff"),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ),
        ("access-control-allow-origin", "*"),
    ] {
        headers.set(name, value).map_err(internal)?;
    }
    Ok(response)
}

/// "used by N sites": distinct instances over the period.
pub fn installs(instances: u64) -> Badge {
    Badge {
        label: "used by".into(),
        value: format!(
            "{} {}",
            compact(instances),
            if instances == 1 { "site" } else { "sites" }
        ),
        color: BLUE,
    }
}

/// The share of requests that were not 5xx, rounded down to a tenth of a percent (so
/// a single failure never shows as 100%).
pub fn uptime(failed: u64, total: u64) -> Badge {
    let label = "uptime".to_owned();
    if total == 0 {
        return Badge {
            label,
            value: "no data".into(),
            color: GREY,
        };
    }
    let tenths = (total - failed.min(total)) * 1000 / total;
    let color = match tenths {
        999.. => GREEN,
        990.. => YELLOWGREEN,
        950.. => YELLOW,
        _ => RED,
    };
    Badge {
        label,
        value: format!("{}.{}%", tenths / 10, tenths % 10),
        color,
    }
}

/// Latency p95, green under 200 ms, yellow under a second, orange beyond.
pub fn p95(ms: Option<f64>) -> Badge {
    let color = match ms {
        None => GREY,
        Some(ms) if ms < 200.0 => GREEN,
        Some(ms) if ms < 1000.0 => YELLOW,
        Some(_) => ORANGE,
    };
    Badge {
        label: "p95 latency".into(),
        value: if ms.is_some() {
            millis(ms)
        } else {
            "no data".into()
        },
        color,
    }
}

/// Requests over the period.
pub fn requests(count: u64) -> Badge {
    Badge {
        label: "requests".into(),
        value: format!("{} / {DAYS} days", compact(count)),
        color: BLUE,
    }
}

/// The width of `text` in Verdana 11 px, from per-character advance widths rounded to
/// tenths of a pixel (as shields.io measures), other characters taken as wide.
pub fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 3.1,
            ' ' | 'f' | 't' | 'r' | 'I' | '(' | ')' | '/' | '[' | ']' | '-' => 4.6,
            's' | 'c' | 'z' | 'J' => 5.8,
            'k' | 'v' | 'x' | 'y' | 'a' | 'e' => 6.6,
            'b' | 'd' | 'g' | 'h' | 'n' | 'o' | 'p' | 'q' | 'u' | '0'..='9' => 7.0,
            'w' => 9.0,
            'm' | '%' => 11.0,
            'M' | 'W' => 10.5,
            'A'..='Z' => 7.6,
            _ => 8.0,
        })
        .sum()
}

/// A flat badge: grey label, coloured value, 20 px high, each half its text's width
/// plus 5 px either side.
pub fn render(badge: &Badge) -> String {
    // Whole pixels, and centres in half pixels, so no float formatting is needed.
    let label_w = (text_width(&badge.label) + 10.0).round() as u32;
    let value_w = (text_width(&badge.value) + 10.0).round() as u32;
    let width = label_w + value_w;
    let half = |twice: u32| format!("{}{}", twice / 2, if twice % 2 == 1 { ".5" } else { "" });
    let (label, value) = (escape(&badge.label), escape(&badge.value));
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{label_w}" height="20" fill="#555"/><rect x="{label_w}" width="{value_w}" height="20" fill="{color}"/><rect width="{width}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="15" fill="#010101" fill-opacity=".3">{label}</text><text x="{lx}" y="14">{label}</text><text x="{vx}" y="15" fill="#010101" fill-opacity=".3">{value}</text><text x="{vx}" y="14">{value}</text></g></svg>"##,
        color = badge.color,
        lx = half(label_w),
        vx = half(2 * label_w + value_w),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(badge: Badge, label: &str, value: &str, color: &str) {
        assert_eq!(
            (badge.label.as_str(), badge.value.as_str(), badge.color),
            (label, value, color)
        );
    }

    #[test]
    fn badge_texts() {
        check(installs(47), "used by", "47 sites", BLUE);
        check(installs(1), "used by", "1 site", BLUE);
        check(installs(12_345), "used by", "12k sites", BLUE);
        check(uptime(8, 1000), "uptime", "99.2%", YELLOWGREEN);
        check(uptime(1, 100_000), "uptime", "99.9%", GREEN);
        check(uptime(1, 1001), "uptime", "99.9%", GREEN);
        check(uptime(1, 999), "uptime", "99.8%", YELLOWGREEN);
        check(uptime(0, 10), "uptime", "100.0%", GREEN);
        check(uptime(10, 10), "uptime", "0.0%", RED);
        check(uptime(0, 0), "uptime", "no data", GREY);
        check(p95(Some(120.4)), "p95 latency", "120 ms", GREEN);
        check(p95(Some(1500.0)), "p95 latency", "1.5 s", ORANGE);
        check(p95(None), "p95 latency", "no data", GREY);
        check(requests(1234), "requests", "1.2k / 30 days", BLUE);
    }

    #[test]
    fn badges_are_as_wide_as_their_text() {
        let svg = render(&installs(47));
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" width=""#));
        assert!(svg.contains(r#"aria-label="used by: 47 sites""#));
        assert_eq!(
            svg.matches(">47 sites</text>").count(),
            2,
            "text and shadow"
        );
        let width = |b: &Badge| {
            let svg = render(b);
            let w: f64 = svg
                .split("width=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            w
        };
        let short = width(&requests(5));
        let long = width(&requests(5_000_000));
        assert!(long > short, "{long} > {short}");
        // shields.io draws "used by | 47 sites" 116 px wide; ours is close.
        let w = width(&installs(47));
        assert!((100.0..=130.0).contains(&w), "{w}");
        let evil = render(&Badge {
            label: "<b>".into(),
            value: "\"&".into(),
            color: GREY,
        });
        assert!(evil.contains("&lt;b&gt;") && evil.contains("&quot;&amp;"));
        assert!(!evil.contains("<b>"));
    }
}
