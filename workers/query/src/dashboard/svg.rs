//! Charts as inline SVG, drawn in Rust: bars (with an optional overlay, such as errors
//! over requests), a line with gaps, and the heatmap. Each scales with its container
//! (`viewBox`, no fixed size) and carries `<title>`s, so hovering a bar or cell names its
//! value without JavaScript. Every label is escaped.

use std::fmt::Write;

use crate::edge::html::{Fixed, escape, truncate};

/// Every chart is drawn 600 units wide, about the width it is shown at in a half-width
/// panel, so its 12-unit text reads as 11–12 px.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;
/// Most labels on the time axis.
const AXIS_LABELS: usize = 6;

/// One bucket of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Shown on the time axis.
    pub short: String,
    /// Shown when hovering.
    pub long: String,
}

/// The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `v` (at least 1).
pub fn nice_max(v: f64) -> f64 {
    if v.is_nan() || v <= 1.0 {
        return 1.0;
    }
    let mut magnitude = 1.0;
    while magnitude * 10.0 < v {
        magnitude *= 10.0;
    }
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * magnitude >= v {
            return m * magnitude;
        }
    }
    10.0 * magnitude
}

fn open(out: &mut String, aria: &str, height: f64) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        Fixed(WIDTH, 0),
        Fixed(height, 0),
        escape(aria)
    );
}

/// Horizontal grid lines with value labels at 0, half and the top of the scale.
fn grid(out: &mut String, max: f64, format: &dyn Fn(f64) -> String) {
    let plot_h = HEIGHT - TOP - BOTTOM;
    for i in 0..=2 {
        let value = max * f64::from(i) / 2.0;
        let y = TOP + plot_h - plot_h * f64::from(i) / 2.0;
        let _ = write!(
            out,
            r##"<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#e5e7eb"/><text x="{}" y="{}" text-anchor="end" class="axis">{}</text>"##,
            Fixed(LEFT, 0),
            Fixed(WIDTH - RIGHT, 0),
            Fixed(y, 1),
            Fixed(y, 1),
            Fixed(LEFT - 6.0, 0),
            Fixed(y + 4.0, 1),
            escape(&format(value))
        );
    }
}

/// Labels under the plot at up to [`AXIS_LABELS`] evenly spread buckets.
fn time_axis(out: &mut String, buckets: &[Bucket], slot: f64) {
    let n = buckets.len();
    if n == 0 {
        return;
    }
    let step = n.div_ceil(AXIS_LABELS).max(1);
    for (i, bucket) in buckets.iter().enumerate().step_by(step) {
        let x = LEFT + slot * (i as f64 + 0.5);
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" class="axis">{}</text>"#,
            Fixed(x, 1),
            Fixed(HEIGHT - 6.0, 0),
            escape(&bucket.short)
        );
    }
}

/// The scale and slots of a chart over time buckets, as [`time_frame`] drew them.
struct TimeFrame {
    /// The value at the top of the plot.
    max: f64,
    /// The width each bucket has.
    slot: f64,
    /// The plot's height.
    plot_h: f64,
}

/// Opens a chart over `buckets` whose largest value is `top` and draws its grid.
fn time_frame(
    out: &mut String,
    aria: &str,
    top: f64,
    buckets: &[Bucket],
    format: &dyn Fn(f64) -> String,
) -> TimeFrame {
    open(out, aria, HEIGHT);
    let max = nice_max(top);
    grid(out, max, format);
    TimeFrame {
        max,
        slot: (WIDTH - LEFT - RIGHT) / buckets.len().max(1) as f64,
        plot_h: HEIGHT - TOP - BOTTOM,
    }
}

/// A bar per bucket; `overlay` (drawn over the bar from its foot, in red) is a part of
/// the value, such as the errors among requests.
pub fn bars(
    aria: &str,
    buckets: &[Bucket],
    values: &[u64],
    overlay: Option<(&str, &[u64])>,
    previous: Option<&[u64]>,
    unit: &str,
    format: &dyn Fn(f64) -> String,
) -> String {
    let mut out = String::new();
    let top = values
        .iter()
        .chain(previous.unwrap_or_default())
        .copied()
        .max()
        .unwrap_or(0);
    let TimeFrame { max, slot, plot_h } = time_frame(&mut out, aria, top as f64, buckets, format);
    let bar_w = (slot * 0.8).max(0.5);
    let height = |v: u64| v as f64 / max * plot_h;
    for (i, (bucket, &value)) in buckets.iter().zip(values).enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut title = format!("{}: {} {unit}", bucket.long, format(value as f64));
        let part = overlay.map(|(name, parts)| (name, parts.get(i).copied().unwrap_or(0)));
        if let Some((name, part)) = part {
            let _ = write!(title, ", {} {name}", format(part as f64));
        }
        let _ = write!(
            out,
            r#"<g><title>{}</title><rect class="bar" x="{}" y="{}" width="{}" height="{}"/>"#,
            escape(&title),
            Fixed(x, 2),
            Fixed(TOP + plot_h - height(value), 2),
            Fixed(bar_w, 2),
            Fixed(height(value), 2)
        );
        if let Some((_, part)) = part.filter(|(_, p)| *p > 0) {
            let _ = write!(
                out,
                r#"<rect class="bar-over" x="{}" y="{}" width="{}" height="{}"/>"#,
                Fixed(x, 2),
                Fixed(TOP + plot_h - height(part), 2),
                Fixed(bar_w, 2),
                Fixed(height(part), 2)
            );
        }
        out.push_str("</g>");
    }
    if let Some(previous) = previous {
        let points: Vec<Option<f64>> = previous.iter().map(|&v| Some(v as f64)).collect();
        previous_line(&mut out, &points, slot, max);
    }
    time_axis(&mut out, buckets, slot);
    out.push_str("</svg>");
    out
}

/// The previous period as a faint dashed line over a chart of scale `max`, broken where
/// a bucket has no value.
fn previous_line(out: &mut String, values: &[Option<f64>], slot: f64, max: f64) {
    let path = path_of(values, slot, max);
    if !path.is_empty() {
        let _ = write!(
            out,
            r#"<path class="prev" d="{path}"><title>the previous period</title></path>"#
        );
    }
}

/// The `d` of a line through the buckets that have a value (bucket `i` at its slot's
/// middle, on a scale of `max`), broken where one has none; empty without values.
fn path_of(values: &[Option<f64>], slot: f64, max: f64) -> String {
    let plot_h = HEIGHT - TOP - BOTTOM;
    let mut path = String::new();
    let mut joined = false;
    for (i, value) in values.iter().enumerate() {
        match value {
            Some(v) => {
                let _ = write!(
                    path,
                    "{}{} {} ",
                    if joined { "L" } else { "M" },
                    Fixed(LEFT + slot * (i as f64 + 0.5), 1),
                    Fixed(TOP + plot_h - (v / max).min(1.0) * plot_h, 1)
                );
                joined = true;
            }
            None => joined = false,
        }
    }
    path.trim_end().to_owned()
}

/// A line through the buckets that have a value, broken where one has none.
pub fn line(
    aria: &str,
    buckets: &[Bucket],
    values: &[Option<f64>],
    previous: Option<&[Option<f64>]>,
    format: &dyn Fn(f64) -> String,
) -> String {
    let mut out = String::new();
    let top = values
        .iter()
        .chain(previous.unwrap_or_default())
        .flatten()
        .copied()
        .fold(0.0, f64::max);
    let TimeFrame { max, slot, plot_h } = time_frame(&mut out, aria, top, buckets, format);
    let point = |i: usize, v: f64| {
        (
            LEFT + slot * (i as f64 + 0.5),
            TOP + plot_h - (v / max).min(1.0) * plot_h,
        )
    };
    if let Some(previous) = previous {
        previous_line(&mut out, previous, slot, max);
    }
    let path = path_of(values, slot, max);
    if !path.is_empty() {
        let _ = write!(out, r#"<path class="line" d="{path}"/>"#);
    }
    for (i, (bucket, value)) in buckets.iter().zip(values).enumerate() {
        if let Some(v) = value {
            let (x, y) = point(i, *v);
            let _ = write!(
                out,
                r#"<circle class="dot" cx="{}" cy="{}" r="2.5"><title>{}</title></circle>"#,
                Fixed(x, 1),
                Fixed(y, 1),
                escape(&format!("{}: {}", bucket.long, format(*v)))
            );
        }
    }
    time_axis(&mut out, buckets, slot);
    out.push_str("</svg>");
    out
}

/// The colour of a heatmap cell: pale to deep blue by the square root of its share of
/// the largest cell, so that quiet hours still show.
fn heat(count: u64, max: u64) -> String {
    if count == 0 || max == 0 {
        return "#f1f5f9".to_owned();
    }
    let t = (count as f64 / max as f64).sqrt();
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "rgb({},{},{})",
        mix(219.0, 29.0),
        mix(234.0, 78.0),
        mix(254.0, 216.0)
    )
}

/// Rows of 24 cells, one per UTC hour of day.
pub fn heatmap(aria: &str, rows: &[(String, [u64; 24])], max: u64, unit: &str) -> String {
    const LABEL_W: f64 = 150.0;
    const CELL_H: f64 = 20.0;
    let cell_w = (WIDTH - LABEL_W - RIGHT) / 24.0;
    let height = rows.len() as f64 * CELL_H + 22.0;
    let mut out = String::new();
    open(&mut out, aria, height);
    for (r, (route, hours)) in rows.iter().enumerate() {
        let y = r as f64 * CELL_H;
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end" class="label"><title>{}</title>{}</text>"#,
            Fixed(LABEL_W - 8.0, 0),
            Fixed(y + 14.0, 1),
            escape(route),
            escape(&truncate(route, 20))
        );
        for (h, &count) in hours.iter().enumerate() {
            let x = LABEL_W + h as f64 * cell_w;
            let _ = write!(
                out,
                r#"<rect{} x="{}" y="{}" width="{}" height="{}" rx="2" fill="{}"><title>{}</title></rect>"#,
                // An empty cell takes the page's colour for nothing (light or dark).
                if count == 0 { r#" class="z""# } else { "" },
                Fixed(x, 2),
                Fixed(y, 1),
                Fixed(cell_w - 2.0, 2),
                Fixed(CELL_H - 2.0, 0),
                heat(count, max),
                escape(&format!("{route}, {h:02}:00–{h:02}:59 UTC: {count} {unit}"))
            );
        }
    }
    for h in (0..24).step_by(3) {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" class="axis">{h:02}h</text>"#,
            Fixed(LABEL_W + (h as f64 + 0.5) * cell_w, 1),
            Fixed(rows.len() as f64 * CELL_H + 14.0, 1)
        );
    }
    out.push_str("</svg>");
    out
}

/// A sparkline: `values` as a small line, no axes, the largest at the top; its title says
/// the total and the peak. Sized by CSS (`.spark`), drawn 120 × 28 units.
pub fn sparkline(aria: &str, values: &[u64]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 28.0;
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 {
        W / (values.len() - 1) as f64
    } else {
        0.0
    };
    let mut points = String::new();
    for (i, &v) in values.iter().enumerate() {
        let _ = write!(
            points,
            "{}{},{}",
            if i == 0 { "" } else { " " },
            Fixed(i as f64 * step, 1),
            Fixed(H - 2.0 - (H - 4.0) * v as f64 / max, 1)
        );
    }
    let total: u64 = values.iter().sum();
    format!(
        r#"<svg class="spark" viewBox="0 0 {W} {H}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{} in all, at most {} in one bucket</title><polyline class="line" points="{points}"/></svg>"#,
        escape(aria),
        total,
        max as u64 * u64::from(total > 0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(n: usize) -> Vec<Bucket> {
        (0..n)
            .map(|i| Bucket {
                short: format!("d{i}"),
                long: format!("day <{i}>"),
            })
            .collect()
    }

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

    #[test]
    fn scales_end_on_round_numbers() {
        for (v, expected) in [
            (0.0, 1.0),
            (1.0, 1.0),
            (7.0, 10.0),
            (11.0, 20.0),
            (21.0, 25.0),
            (26.0, 50.0),
            (51.0, 100.0),
            (1234.0, 2000.0),
            (f64::NAN, 1.0),
        ] {
            assert_eq!(nice_max(v), expected, "{v}");
        }
    }

    #[test]
    fn bars_have_one_group_and_title_per_bucket_and_escape_labels() {
        let fmt = |v: f64| format!("{v}");
        let svg = bars(
            "Requests <per day>",
            &buckets(3),
            &[4, 0, 10],
            Some(("errors", &[1, 0, 0])),
            None,
            "requests",
            &fmt,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("prev"), "no previous period given");
        assert!(svg.contains(r#"aria-label="Requests &lt;per day&gt;""#));
        assert_eq!(count(&svg, "<g><title>"), 3);
        assert!(svg.contains("<title>day &lt;0&gt;: 4 requests, 1 errors</title>"));
        assert_eq!(
            count(&svg, r#"class="bar-over""#),
            1,
            "only buckets with errors"
        );
        assert!(!svg.contains("day <"), "labels are escaped");
        // The tallest bar fills the plot: 10 of a scale of 10.
        assert!(svg.contains(r#"y="10.00" width"#), "{svg}");
        assert_eq!(
            count(&svg, r#"class="axis""#),
            3 + 3,
            "3 grid and 3 time labels"
        );
    }

    #[test]
    fn lines_break_where_there_is_no_value() {
        let fmt = |v: f64| format!("{v}");
        let svg = line(
            "p95",
            &buckets(4),
            &[Some(1.0), Some(2.0), None, Some(4.0)],
            None,
            &fmt,
        );
        let path = svg
            .split(r#"d=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(path.matches('M').count(), 2, "{path}");
        assert_eq!(path.matches('L').count(), 1, "{path}");
        assert_eq!(count(&svg, "<circle"), 3);
        let empty = line("p95", &buckets(2), &[None, None], None, &fmt);
        assert!(!empty.contains("<path"));
    }

    #[test]
    fn the_previous_period_is_a_faint_line_on_the_same_scale() {
        let fmt = |v: f64| format!("{v}");
        // The previous period peaked higher (20) than now (10): the scale takes it in.
        let svg = bars(
            "Events",
            &buckets(2),
            &[10, 5],
            None,
            Some(&[20, 0]),
            "events",
            &fmt,
        );
        assert!(svg.contains(r#"<path class="prev" d="M"#), "{svg}");
        assert!(svg.contains("<title>the previous period</title>"));
        assert!(svg.contains(">20</text>"), "the scale reaches 20: {svg}");
        let p95 = line(
            "p95",
            &buckets(3),
            &[Some(1.0), None, Some(2.0)],
            Some(&[Some(3.0), None, Some(1.0)]),
            &fmt,
        );
        let previous = p95.split(r#"class="prev" d=""#).nth(1).unwrap();
        let previous = previous.split('"').next().unwrap();
        assert_eq!(
            previous.matches('M').count(),
            2,
            "broken where empty: {previous}"
        );
    }

    #[test]
    fn sparklines_put_the_largest_value_at_the_top() {
        let svg = sparkline("Events of <a>", &[0, 4, 2]);
        assert!(
            svg.contains(r#"points="0.0,26.0 60.0,2.0 120.0,14.0""#),
            "{svg}"
        );
        assert!(svg.contains("Events of &lt;a&gt;"));
        assert!(svg.contains("<title>6 in all, at most 4 in one bucket</title>"));
        assert!(sparkline("none", &[]).contains(r#"points="""#));
    }

    #[test]
    fn heatmap_cells() {
        let mut hours = [0u64; 24];
        hours[14] = 8;
        hours[15] = 2;
        let svg = heatmap(
            "Requests by route",
            &[("/a/<b>".into(), hours)],
            8,
            "requests",
        );
        assert_eq!(count(&svg, "<rect"), 24);
        assert!(svg.contains("/a/&lt;b&gt;, 14:00–14:59 UTC: 8 requests"));
        assert_eq!(heat(8, 8), "rgb(29,78,216)");
        assert_eq!(heat(0, 8), "#f1f5f9");
        assert_eq!(count(&svg, "#f1f5f9"), 22);
        assert_eq!(
            count(&svg, r#"<rect class="z""#),
            22,
            "empty cells follow the theme"
        );
        assert_eq!(count(&svg, ">00h<") + count(&svg, ">21h<"), 2);
    }
}
