//! Report filters: the `filter=` query-string grammar every read of the read API (and,
//! later, the dashboard) shares, what an event matches, the deterministic sample of
//! users a read over budget answers from, and which rollup rows answer a report under a
//! filter exactly.
//!
//! # Grammar
//!
//! Each `filter` parameter is one condition; several are ANDed.
//!
//! ```text
//! filter    = dimension ( ":" | "!=" ) value
//! dimension = name | route | status | error_class | version | colo | country
//!           | source | medium | campaign | term | content | item | variant
//! value     = one or more characters; "\*" is a literal star, "\\" a literal backslash
//! ```
//!
//! - `country:US` — equals. `country!=US` — not equal; events without a country match it
//!   (they are not `US`).
//! - A value ending in an unescaped `*` is a prefix: `route:/api/*` matches every route
//!   that starts with `/api/`, `route!=/api/*` every event whose route does not (events
//!   without a route included). Only [`PREFIX_DIMENSIONS`] take a prefix; a `*` anywhere
//!   else must be escaped (`\*`), so that a later grammar may give it a meaning.
//! - `status` takes a status class (`5xx`); `country` is compared upper-cased, as
//!   events store it. Everything else is compared exactly, case and all.
//! - At most [`MAX_FILTERS`] filters; a value at most as long as the dimension's stored
//!   values can be ([`max_chars`]). Filters are kept in one canonical order, duplicates
//!   once, so the same filters in any order ask the same question.
//!
//! The text reaches [`parse`] already percent-decoded (the query string's own
//! decoding); nothing here decodes again, so `%2F` in a value is those three characters.

use crate::Error;
use crate::event::Event;
use crate::rollup::Dimension;
use crate::validate::{MAX_DIMENSION_CHARS, MAX_NAME_CHARS, MAX_ROUTE_CHARS};

/// The most filters one read takes.
pub const MAX_FILTERS: usize = 10;

/// The longest `filter` parameter read at all, in bytes: a longer one is refused before
/// it is looked at (the longest value, a route, is 512 characters of up to 4 bytes).
pub const MAX_FILTER_BYTES: usize = 2_100;

/// The dimensions a filter may name, in the order answers list filters.
pub const DIMENSIONS: [Dimension; 14] = Dimension::OF_ONE_FIELD;

/// The dimensions whose values have a structure a prefix follows: paths, item ids,
/// dotted event names and versions.
pub const PREFIX_DIMENSIONS: [Dimension; 4] = [
    Dimension::Route,
    Dimension::Item,
    Dimension::Name,
    Dimension::Version,
];

/// The longest value a filter of `dimension` may give: the longest value an event can
/// store there, so a longer one could never match.
pub const fn max_chars(dimension: Dimension) -> usize {
    match dimension {
        Dimension::Name => MAX_NAME_CHARS,
        Dimension::Route => MAX_ROUTE_CHARS,
        Dimension::Status => 3,
        Dimension::Country => 2,
        _ => MAX_DIMENSION_CHARS,
    }
}

/// How a filter compares an event's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// The value equals.
    Eq,
    /// The value differs, or the event has none.
    Ne,
    /// The value starts with.
    Prefix,
    /// The value does not start with, or the event has none.
    NotPrefix,
}

impl Op {
    /// The operator's name in answers and in the SQL that evaluates it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Prefix => "prefix",
            Self::NotPrefix => "not_prefix",
        }
    }

    /// Whether the operator holds for `value` (`None`: the event has no value).
    pub fn holds(self, value: Option<&str>, operand: &str) -> bool {
        match (self, value) {
            (Self::Eq, Some(v)) => v == operand,
            (Self::Prefix, Some(v)) => v.starts_with(operand),
            (Self::Eq | Self::Prefix, None) => false,
            (Self::Ne, v) => v != Some(operand),
            (Self::NotPrefix, v) => !v.is_some_and(|v| v.starts_with(operand)),
        }
    }
}

/// One condition on one dimension.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Filter {
    pub dimension: Dimension,
    pub op: Op,
    /// The value compared with (for a prefix, without its `*`; unescaped).
    pub value: String,
}

impl Filter {
    /// Whether `event` meets the condition.
    pub fn matches(&self, event: &Event) -> bool {
        let value = self.dimension.value_of(event);
        self.op.holds(value.as_deref(), &self.value)
    }

    /// The filter as the grammar writes it (escaped), as [`parse`] reads it back.
    pub fn text(&self) -> String {
        let mut out = String::from(self.dimension.name());
        out.push_str(match self.op {
            Op::Eq | Op::Prefix => ":",
            Op::Ne | Op::NotPrefix => "!=",
        });
        for c in self.value.chars() {
            if c == '*' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        if matches!(self.op, Op::Prefix | Op::NotPrefix) {
            out.push('*');
        }
        out
    }
}

/// The filters of one read, ANDed: canonical order, each once, at most
/// [`MAX_FILTERS`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filters(Vec<Filter>);

impl Filters {
    /// No filter.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The filters in canonical order.
    pub fn iter(&self) -> std::slice::Iter<'_, Filter> {
        self.0.iter()
    }

    /// Whether `event` meets every filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.0.iter().all(|f| f.matches(event))
    }

    /// The filters as one text, the same for the same filters however they were
    /// written: for cache keys.
    pub fn key(&self) -> String {
        let texts: Vec<String> = self.0.iter().map(Filter::text).collect();
        serde_json::Value::from(texts).to_string()
    }
}

impl<'a> IntoIterator for &'a Filters {
    type Item = &'a Filter;
    type IntoIter = std::slice::Iter<'a, Filter>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The error every refusal of a filter is: code `invalid_filter`, field `filter`.
fn invalid(message: String) -> Error {
    Error::invalid("invalid_filter", message).at("filter")
}

/// Reads the `filter` parameters of a request (already percent-decoded).
///
/// # Errors
///
/// [`Error::Invalid`] with code `invalid_filter` and a message naming the problem: more
/// than [`MAX_FILTERS`] filters, an unknown dimension, no operator, an empty value, a
/// value longer than the dimension's values can be, a prefix on a dimension that has
/// none, a misplaced `*` or `\`, a status that is not a class.
pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Filters, Error> {
    let mut filters = Vec::new();
    for (i, text) in texts.into_iter().enumerate() {
        if i == MAX_FILTERS {
            return Err(invalid(format!(
                "at most {MAX_FILTERS} filters may be given; drop some"
            )));
        }
        filters.push(parse_one(text)?);
    }
    filters.sort_unstable();
    filters.dedup();
    Ok(Filters(filters))
}

/// Reads one filter.
fn parse_one(text: &str) -> Result<Filter, Error> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(invalid(format!(
            "a filter is at most {MAX_FILTER_BYTES} bytes long; this one is {}",
            text.len()
        )));
    }
    let names = || {
        DIMENSIONS
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let at = text.find([':', '!']).ok_or_else(|| {
        invalid(format!(
            "filter {text:?} has no operator; write dimension:value or dimension!=value"
        ))
    })?;
    let (name, rest) = text.split_at(at);
    let (negated, raw) = if let Some(raw) = rest.strip_prefix("!=") {
        (true, raw)
    } else if let Some(raw) = rest.strip_prefix(':') {
        (false, raw)
    } else {
        return Err(invalid(format!(
            "filter {text:?} has no operator; write dimension:value or dimension!=value"
        )));
    };
    let dimension = DIMENSIONS
        .into_iter()
        .find(|d| d.name() == name)
        .ok_or_else(|| {
            invalid(format!(
                "there is no filter by {name:?}; dimensions: {}",
                names()
            ))
        })?;
    let (mut value, prefix) = unescape(text, raw)?;
    if value.is_empty() {
        return Err(invalid(if prefix {
            format!("filter {text:?} has an empty prefix, which matches everything; drop it")
        } else {
            format!("filter {text:?} has an empty value")
        }));
    }
    if prefix && !PREFIX_DIMENSIONS.contains(&dimension) {
        let with: Vec<&str> = PREFIX_DIMENSIONS.iter().map(|d| d.name()).collect();
        return Err(invalid(format!(
            "{} takes no prefix (only {} do); write \\* for a literal star",
            dimension.name(),
            with.join(", ")
        )));
    }
    let max = max_chars(dimension);
    let chars = value.chars().count();
    if chars > max {
        return Err(invalid(format!(
            "a {} filter's value is at most {max} characters; this one is {chars}",
            dimension.name()
        )));
    }
    match dimension {
        Dimension::Status => {
            let b = value.as_bytes();
            if !(b.len() == 3 && (b'1'..=b'9').contains(&b[0]) && &b[1..] == b"xx") {
                return Err(invalid(format!(
                    "a status filter takes a status class such as 5xx, not {value:?}"
                )));
            }
        }
        Dimension::Country => value.make_ascii_uppercase(),
        _ => {}
    }
    let op = match (negated, prefix) {
        (false, false) => Op::Eq,
        (true, false) => Op::Ne,
        (false, true) => Op::Prefix,
        (true, true) => Op::NotPrefix,
    };
    Ok(Filter {
        dimension,
        op,
        value,
    })
}

/// A value without its escapes, and whether it ended in an unescaped `*` (a prefix).
fn unescape(text: &str, raw: &str) -> Result<(String, bool), Error> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('*' | '\\')) => value.push(escaped),
                _ => {
                    return Err(invalid(format!(
                        "filter {text:?}: a backslash escapes only * or \\ (write \\\\ for one)"
                    )));
                }
            },
            '*' if chars.peek().is_none() => return Ok((value, true)),
            '*' => {
                return Err(invalid(format!(
                    "filter {text:?}: * may only end a value (a prefix); write \\* for a literal star"
                )));
            }
            c => value.push(c),
        }
    }
    Ok((value, false))
}

/// How many sample buckets there are: users (events without one, by their id) fall in
/// one of 256 by a byte of their hash.
pub const SAMPLE_BUCKETS: u32 = 256;

/// The sample bucket of an event: the last stored byte of its user's identifier hash
/// (raw rows keep 8 bytes), or of its event id when it has no user, as the
/// `raw_events_by_sample` index keys it. A user's events are all in one bucket, so a sample of
/// buckets is a sample of users; the hash's bytes are uniform, and an event id's last
/// byte is uniform for random ids and cycles for sequential ones.
pub fn sample_bucket(event: &Event) -> u8 {
    // Raw rows keep the first 8 bytes (16 hex digits) of a user's hash.
    let hex = match event.user.as_deref() {
        Some(user) => user.get(..16).unwrap_or(user),
        None => &event.event_id,
    };
    let last = hex.get(hex.len().saturating_sub(2)..).unwrap_or("");
    u8::from_str_radix(last, 16).unwrap_or(0)
}

/// The cross dimension that holds `a` and `b` together, and whether `a` is its first
/// value.
pub fn cross(a: Dimension, b: Dimension) -> Option<(Dimension, bool)> {
    use Dimension::{
        Country, ErrorClass, ErrorRoute, Item, ItemCountry, ItemVariant, Route, Variant,
    };
    match (a, b) {
        (Item, Variant) => Some((ItemVariant, true)),
        (Variant, Item) => Some((ItemVariant, false)),
        (Item, Country) => Some((ItemCountry, true)),
        (Country, Item) => Some((ItemCountry, false)),
        (ErrorClass, Route) => Some((ErrorRoute, true)),
        (Route, ErrorClass) => Some((ErrorRoute, false)),
        _ => None,
    }
}

/// Which values of the dimension read a [`RollupRead`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// Every value (no filter).
    Every,
    /// This value only.
    Value(String),
    /// The cross values whose first value is this.
    First(String),
    /// The cross values whose second value is this.
    Second(String),
}

/// What the rows a [`RollupRead`] takes are shown as in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// As they are.
    Whole,
    /// As the report's `all` row (value empty).
    Empty,
    /// As the first value of a cross value.
    First,
    /// As the second value of a cross value.
    Second,
}

/// Rollup rows that answer one dimension of a report exactly under some filters: read
/// `read`'s rows of `select`, shown as `wanted` by `part`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRead {
    pub wanted: Dimension,
    pub read: Dimension,
    pub select: Select,
    pub part: Part,
}

/// How rollups answer the `wanted` dimensions of a report under `filters`, if they can:
/// without filters, each from its own rows; with one equality filter on `F`, the `all`
/// row from `F`'s row of the value, `F` itself from that row, and a dimension that `F`
/// has a cross dimension with ([`cross`]) from the cross rows of the value. `None` when
/// any wanted dimension needs raw events (a `!=`, a prefix, two filters, a pair without
/// a cross dimension).
///
/// The caller must still check that the value was never folded past a bound
/// ([`crate::rollup::FOLDED_VALUE`]) in the rows it reads: then the rows miss part of it.
pub fn rollup_reads(filters: &Filters, wanted: &[Dimension]) -> Option<Vec<RollupRead>> {
    let read = |wanted, read, select, part| RollupRead {
        wanted,
        read,
        select,
        part,
    };
    match filters.0.as_slice() {
        [] => Some(
            wanted
                .iter()
                .map(|&d| read(d, d, Select::Every, Part::Whole))
                .collect(),
        ),
        [
            Filter {
                dimension: f,
                op: Op::Eq,
                value,
            },
        ] => wanted
            .iter()
            .map(|&d| {
                let v = value.clone();
                if d == Dimension::All {
                    Some(read(d, *f, Select::Value(v), Part::Empty))
                } else if d == *f {
                    Some(read(d, d, Select::Value(v), Part::Whole))
                } else {
                    let (pair, filter_first) = cross(*f, d)?;
                    Some(if filter_first {
                        read(d, pair, Select::First(v), Part::Second)
                    } else {
                        read(d, pair, Select::Second(v), Part::First)
                    })
                }
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, RawEvent, Settings, validate};
    use serde_json::json;

    fn check(texts: &[&str], expected: &[(&str, Op, &str)]) {
        let got = parse(texts.iter().copied()).unwrap();
        let got: Vec<(&str, Op, &str)> = got
            .iter()
            .map(|f| (f.dimension.name(), f.op, f.value.as_str()))
            .collect();
        assert_eq!(got, expected, "{texts:?}");
    }

    fn refused(texts: &[&str], says: &str) {
        match parse(texts.iter().copied()) {
            Err(Error::Invalid {
                code,
                message,
                field,
            }) => {
                assert_eq!((code, field), ("invalid_filter", Some("filter")));
                assert!(message.contains(says), "{texts:?}: {message}");
            }
            other => panic!("{texts:?}: {other:?}"),
        }
    }

    #[test]
    fn filters_parse() {
        check(&["country:US"], &[("country", Op::Eq, "US")]);
        check(&["country:us"], &[("country", Op::Eq, "US")]);
        check(&["country!=US"], &[("country", Op::Ne, "US")]);
        check(&["route:/api/*"], &[("route", Op::Prefix, "/api/")]);
        check(&["route!=/api/*"], &[("route", Op::NotPrefix, "/api/")]);
        check(&["status:5xx"], &[("status", Op::Eq, "5xx")]);
        // The first operator decides: the rest is value.
        check(&["route:/a!=b:c"], &[("route", Op::Eq, "/a!=b:c")]);
        check(&["campaign!=a:b"], &[("campaign", Op::Ne, "a:b")]);
        // Escapes: a literal star, a literal backslash, a star-ended literal.
        check(&[r"item:a\*b"], &[("item", Op::Eq, "a*b")]);
        check(&[r"item:a\\"], &[("item", Op::Eq, r"a\")]);
        check(&[r"item:a\**"], &[("item", Op::Prefix, "a*")]);
        check(&[r"colo:x\*"], &[("colo", Op::Eq, "x*")]);
        // Values keep white space, case and anything else.
        check(&["source: News "], &[("source", Op::Eq, " News ")]);
        // Canonical order, duplicates once.
        check(
            &["route:/a", "country:DE", "route:/a", "name:click"],
            &[
                ("name", Op::Eq, "click"),
                ("route", Op::Eq, "/a"),
                ("country", Op::Eq, "DE"),
            ],
        );
        assert!(parse([]).unwrap().is_empty());
    }

    #[test]
    fn bad_filters_name_the_problem() {
        refused(&["planet:mars"], "there is no filter by \"planet\"");
        refused(&["planet:mars"], "dimensions: name, route, status");
        refused(&["all:"], "there is no filter by \"all\"");
        refused(&["item_variant:x"], "no filter by \"item_variant\"");
        refused(&["country"], "has no operator");
        refused(&["country!US"], "has no operator");
        refused(&["country:"], "has an empty value");
        refused(&["country!="], "has an empty value");
        refused(&["route:*"], "empty prefix");
        refused(
            &["country:U*"],
            "country takes no prefix (only route, item, name, version",
        );
        refused(&["status:5*"], "takes no prefix");
        refused(&["route:/a*/b"], "* may only end a value");
        refused(&["route:/a\\b"], "a backslash escapes only");
        refused(&["route:/a\\"], "a backslash escapes only");
        refused(&["status:500"], "status class such as 5xx");
        refused(&["status:0xx"], "status class");
        refused(&["country:USA"], "at most 2 characters; this one is 3");
        let many: Vec<String> = (0..=MAX_FILTERS).map(|i| format!("route:/{i}")).collect();
        refused(
            &many.iter().map(String::as_str).collect::<Vec<_>>(),
            "at most 10 filters",
        );
        // Ten are fine, even when some repeat.
        let ten: Vec<&str> = many.iter().take(MAX_FILTERS).map(String::as_str).collect();
        assert_eq!(parse(ten).unwrap().len(), MAX_FILTERS);
    }

    #[test]
    fn hostile_values_are_bounded_and_taken_literally() {
        // No second percent-decoding: the query string was decoded once already.
        check(&["route:/a%2Fb"], &[("route", Op::Eq, "/a%2Fb")]);
        check(&["route:%2A"], &[("route", Op::Eq, "%2A")]);
        // Unicode counts by characters, not bytes, and prefixes stay whole characters.
        let long = "ü".repeat(MAX_ROUTE_CHARS);
        check(&[&format!("route:{long}")], &[("route", Op::Eq, &long)]);
        refused(&[&format!("route:{long}ü")], "at most 512 characters");
        check(&["name:café*"], &[("name", Op::Prefix, "café")]);
        // A huge parameter is refused before it is read.
        let huge = format!("route:/{}", "x".repeat(1 << 20));
        refused(&[&huge], "at most 2100 bytes");
        assert!(
            parse(["name:\u{0}"]).is_ok(),
            "control characters are values too"
        );
        // Only ASCII is upper-cased; a country no event can have simply matches nothing.
        check(&["country:üs"], &[("country", Op::Eq, "üS")]);
    }

    fn event(raw: serde_json::Value) -> Event {
        let mut raw = raw;
        raw["project"] = json!("p");
        raw["event_id"] = json!("00000000-0000-4000-8000-0000000000ab");
        let raw: RawEvent = serde_json::from_value(raw).unwrap();
        let ctx = Context {
            project: "p",
            now_ms: 1_737_158_400_000,
            settings: Settings::default(),
            id_secret: b"s",
        };
        validate(raw, &ctx, &mut || unreachable!()).unwrap().event
    }

    #[test]
    fn events_match_every_operator() {
        let e = event(json!({"name": "click", "route": "/api/x", "status": 503, "country": "de"}));
        let bare = event(json!({"name": "click"}));
        let matches = |text: &str, e: &Event| parse([text]).unwrap().matches(e);
        for (text, on_e, on_bare) in [
            ("country:DE", true, false),
            ("country:de", true, false),
            ("country!=DE", false, true),
            ("country!=US", true, true),
            ("route:/api/*", true, false),
            ("route:/api/x", true, false),
            ("route:/api", false, false),
            ("route!=/api/*", false, true),
            ("status:5xx", true, false),
            ("status!=5xx", false, true),
            ("name:cl*", true, true),
            ("item!=x", true, true),
        ] {
            assert_eq!(matches(text, &e), on_e, "{text} on e");
            assert_eq!(matches(text, &bare), on_bare, "{text} on bare");
        }
        let both = parse(["country:DE", "route:/api/*"]).unwrap();
        assert!(both.matches(&e) && !both.matches(&bare));
        let contradiction = parse(["country:DE", "country:US"]).unwrap();
        assert!(!contradiction.matches(&e), "ANDed");
    }

    #[test]
    fn texts_read_back_as_the_same_filters() {
        for text in ["route:/a\\*b*", "item!=x\\\\*", "country!=US", "name:a:b"] {
            let once = parse([text]).unwrap();
            let again = parse([once.iter().next().unwrap().text().as_str()]).unwrap();
            assert_eq!(once, again, "{text}");
        }
        let a = parse(["route:/a", "country:US"]).unwrap();
        let b = parse(["country:us", "route:/a", "route:/a"]).unwrap();
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), parse(["route:/a"]).unwrap().key());
    }

    #[test]
    fn sample_buckets_follow_the_user_then_the_event_id() {
        let anonymous = event(json!({"name": "n"}));
        assert_eq!(sample_bucket(&anonymous), 0xab);
        let a = event(json!({"name": "n", "user": "u-1"}));
        let mut b = event(json!({"name": "m", "user": "u-1"}));
        b.event_id = "00000000000040008000000000000001".into();
        assert_eq!(sample_bucket(&a), sample_bucket(&b), "one user, one bucket");
        let user = a.user.as_deref().unwrap();
        assert_eq!(
            sample_bucket(&a),
            u8::from_str_radix(&user[14..16], 16).unwrap(),
            "the last byte stored of the hash"
        );
    }

    #[test]
    fn rollups_answer_no_filter_and_one_equality() {
        use Dimension::*;
        let reads = |texts: &[&str], wanted: &[Dimension]| {
            rollup_reads(&parse(texts.iter().copied()).unwrap(), wanted)
        };
        let r = reads(&[], &[All, Route]).unwrap();
        assert_eq!(r[1].select, Select::Every);
        let r = reads(&["country:US"], &[All, Country, Item]).unwrap();
        assert_eq!(
            (r[0].read, &r[0].select, r[0].part),
            (Country, &Select::Value("US".into()), Part::Empty)
        );
        assert_eq!((r[1].read, r[1].part), (Country, Part::Whole));
        assert_eq!(
            (r[2].read, &r[2].select, r[2].part),
            (ItemCountry, &Select::Second("US".into()), Part::First)
        );
        let r = reads(&["item:img"], &[Variant]).unwrap();
        assert_eq!(
            (r[0].read, &r[0].select, r[0].part),
            (ItemVariant, &Select::First("img".into()), Part::Second)
        );
        let r = reads(&["error_class:Timeout"], &[Route]).unwrap();
        assert_eq!((r[0].read, r[0].part), (ErrorRoute, Part::Second));
        // Raw events for the rest.
        assert_eq!(reads(&["country:US"], &[All, Route]), None);
        assert_eq!(reads(&["country!=US"], &[All]), None);
        assert_eq!(reads(&["route:/a*"], &[All]), None);
        assert_eq!(reads(&["country:US", "route:/a"], &[All]), None);
    }
}
