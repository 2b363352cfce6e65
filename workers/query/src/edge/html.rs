//! Text for HTML and SVG: escaping every value that goes into markup, and the number
//! and time formats the dashboard and badges show.

use std::fmt::{self, Display, Write};

use tally_core::time::{date_label, date_of};

/// `text` safe to place in HTML or SVG text and in double- or single-quoted attribute
/// values: `&`, `<`, `>`, `"` and `'` become character references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A table cell for a value of any length (a route, a campaign, a rule name): it takes
/// the width the numbers beside it leave and cuts the text there with an ellipsis, keeping
/// the whole value as its tooltip, so one long value neither widens the table past its
/// panel nor squeezes the other columns. `class` adds classes (e.g. the bar's `b`), `style`
/// an inline style.
pub fn cut_cell(out: &mut String, class: &str, style: &str, text: &str) {
    cut(out, class, style, text, None);
}

/// A [`cut_cell`] whose text links to `href`.
pub fn cut_link(out: &mut String, href: &str, text: &str) {
    cut(out, "", "", text, Some(href));
}

/// A [`cut_cell`] with its classes and style whose text links to `href` when there is
/// one (a breakdown value and the filtered view it leads to).
pub fn cut_cell_to(out: &mut String, class: &str, style: &str, text: &str, href: Option<&str>) {
    cut(out, class, style, text, href);
}

fn cut(out: &mut String, class: &str, style: &str, text: &str, href: Option<&str>) {
    let text = escape(text);
    let class = if class.is_empty() {
        "t".to_owned()
    } else {
        format!("t {class}")
    };
    let style = if style.is_empty() {
        String::new()
    } else {
        format!(r#" style="{style}""#)
    };
    let _ = write!(out, r#"<td class="{class}"{style} title="{text}">"#);
    match href {
        Some(href) => {
            let _ = write!(out, r#"<a href="{}">{text}</a></td>"#, escape(href));
        }
        None => {
            let _ = write!(out, "{text}</td>");
        }
    }
}

/// A number shown with a fixed count of decimals (at most 3), written with integer
/// arithmetic: Rust's float formatting would add ~10 KiB gzip to the worker.
#[derive(Debug, Clone, Copy)]
pub struct Fixed(pub f64, pub u32);

impl Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decimals = self.1.min(3);
        let scale = 10i64.pow(decimals);
        let scaled = (self.0 * scale as f64).round() as i64;
        if scaled < 0 {
            f.write_str("-")?;
        }
        let scaled = scaled.unsigned_abs();
        let scale = scale.unsigned_abs();
        write!(f, "{}", scaled / scale)?;
        if decimals > 0 {
            write!(f, ".{:0width$}", scaled % scale, width = decimals as usize)?;
        }
        Ok(())
    }
}

/// `text` shortened to at most `max` characters, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A whole number with thousands separators: `1234567` → `1,234,567`.
pub fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An amount of thousandths of a currency's unit, in integer arithmetic: whole units
/// with thousands separators and two decimals, three when the third is not zero
/// (`1,322.22`, `0.001`).
pub fn money(thousandths: u64) -> String {
    let (units, rest) = (thousandths / 1000, thousandths % 1000);
    if rest % 10 == 0 {
        format!("{}.{:02}", int(units), rest / 10)
    } else {
        format!("{}.{rest:03}", int(units))
    }
}

/// A count in at most four characters or so: `950`, `1.2k`, `12k`, `3.4M`.
pub fn compact(n: u64) -> String {
    let (value, unit) = match n {
        0..1_000 => return n.to_string(),
        // Bounds at x99,500 so that rounding never shows `1000k`.
        1_000..999_500 => (n as f64 / 1e3, "k"),
        999_500..999_500_000 => (n as f64 / 1e6, "M"),
        _ => (n as f64 / 1e9, "G"),
    };
    one_decimal_below_ten(value, unit)
}

/// `value` with one decimal below 10 (trailing `.0` dropped) and none above, then `unit`.
fn one_decimal_below_ten(value: f64, unit: &str) -> String {
    let mut out = String::new();
    if value < 9.95 {
        let tenths = (value * 10.0).round() as u64;
        if tenths.is_multiple_of(10) {
            let _ = write!(out, "{}", tenths / 10);
        } else {
            let _ = write!(out, "{}.{}", tenths / 10, tenths % 10);
        }
    } else {
        let _ = write!(out, "{}", value.round() as u64);
    }
    out.push_str(unit);
    out
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `20 MiB`, `3.1 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = [" KiB", " MiB", " GiB", " TiB", " PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    one_decimal_below_ten(value, UNITS[unit])
}

/// A duration in milliseconds: `0.42 ms`, `8.3 ms`, `120 ms`, `1.5 s`; `–` for none.
pub fn millis(ms: Option<f64>) -> String {
    match ms {
        None => "–".to_owned(),
        Some(ms) if ms < 1.0 => format!("{} ms", Fixed(ms.max(0.0), 2)),
        Some(ms) if ms < 9.95 => format!("{} ms", Fixed(ms, 1)),
        Some(ms) if ms < 999.5 => format!("{} ms", ms.round() as u64),
        Some(ms) => one_decimal_below_ten(ms / 1000.0, " s"),
    }
}

/// A share as a percentage with one decimal: `0.25` → `25.0%`; `–` when there is no
/// whole to take a share of.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_owned();
    }
    let tenths = (part as f64 * 1000.0 / whole as f64).round() as u64;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// `YYYY-MM-DD HH:MM` of an instant, in UTC.
pub fn date_time(ms: i64) -> String {
    let hour = ms.div_euclid(3_600_000).rem_euclid(24);
    let minute = ms.div_euclid(60_000).rem_euclid(60);
    format!("{} {hour:02}:{minute:02}", date_label(date_of(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_markup_could_read() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
        assert_eq!(escape("/posts/:id ünï"), "/posts/:id ünï");
        assert_eq!(escape("&amp;"), "&amp;amp;", "escaping is not idempotent");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
        assert_eq!(truncate("äöüßé", 3), "äö…");
    }

    #[test]
    fn numbers() {
        let cases: [(u64, &str, &str); 10] = [
            (0, "0", "0"),
            (7, "7", "7"),
            (999, "999", "999"),
            (1_000, "1,000", "1k"),
            (1_250, "1,250", "1.3k"),
            (9_960, "9,960", "10k"),
            (47_000, "47,000", "47k"),
            (1_234_567, "1,234,567", "1.2M"),
            (999_700, "999,700", "1M"),
            (12_000_000_000, "12,000,000,000", "12G"),
        ];
        for (n, full, short) in cases {
            assert_eq!((int(n).as_str(), compact(n).as_str()), (full, short), "{n}");
        }
        assert_eq!(money(1_322_220), "1,322.22");
        assert_eq!(money(0), "0.00");
        assert_eq!(money(1), "0.001");
        assert_eq!(money(19_990), "19.99");
        assert_eq!(money(1_000_000_000_000_000), "1,000,000,000,000.00");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(20 * 1024 * 1024), "20 MiB");
        assert_eq!(bytes(3_300_000_000), "3.1 GiB");
        assert_eq!(millis(None), "–");
        assert_eq!(millis(Some(0.421)), "0.42 ms");
        assert_eq!(millis(Some(8.31)), "8.3 ms");
        assert_eq!(millis(Some(120.4)), "120 ms");
        assert_eq!(millis(Some(1500.0)), "1.5 s");
        assert_eq!(millis(Some(15_000.0)), "15 s");
        assert_eq!(percent(1, 4), "25.0%");
        assert_eq!(percent(992, 1000), "99.2%");
        assert_eq!(percent(0, 0), "–");
        assert_eq!(percent(2, 3), "66.7%");
        let fixed = |v, d| Fixed(v, d).to_string();
        assert_eq!(fixed(12.3456, 2), "12.35");
        assert_eq!(fixed(0.05, 1), "0.1");
        assert_eq!(fixed(-2.25, 1), "-2.3");
        assert_eq!(fixed(-0.04, 1), "0.0");
        assert_eq!(fixed(12.0, 0), "12");
        assert_eq!(fixed(7.0, 3), "7.000");
        assert_eq!(fixed(0.001, 3), "0.001");
    }
}
