//! Validation: a raw client event becomes a normalized [`Event`] or a [`Rejection`].

use serde::Serialize;
use serde_json::{Map, Value};

use crate::event::{Event, RawEvent};
use crate::time::{DAY_MS, json_kind, parse_timestamp};

/// Longest event name, in characters.
pub const MAX_NAME_CHARS: usize = 120;
/// Longest metadata object, in bytes of compact JSON.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Longest value of a short dimension (method, version, source, ...), in characters.
pub const MAX_DIMENSION_CHARS: usize = 256;
/// Longest duration; whole microseconds of it stay exact in an f64 and in D1.
pub const MAX_DURATION_MS: f64 = 1e12;
/// Largest `bytes` of one event: 2^40 (1 TiB). Sums of 8,191 such events still fit
/// the integers D1 stores exactly ([`crate::rollup::MAX_STORED_INTEGER`]).
pub const MAX_BYTES: u64 = 1 << 40;
/// Longest route, in characters.
pub const MAX_ROUTE_CHARS: usize = 512;
/// Longest error message, in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 2048;

/// The per-project settings validation depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Raw events older than this many days are rejected (and later purged).
    pub retention_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

/// Something validation changed about an accepted event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Warning {
    /// The timestamp was in the future and was set to the server time.
    ClampedTimestamp { original: i64 },
    /// The metadata was larger than allowed and was replaced by a marker with its size.
    TruncatedMetadata { original_bytes: usize },
}

/// An accepted event and what validation changed about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub event: Event,
    pub warnings: Vec<Warning>,
}

/// Why an event was rejected: a stable code, the field at fault and a message to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    pub message: String,
}

impl Rejection {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: "invalid_field",
            field: Some(field),
            message: message.into(),
        }
    }
}

/// Whether `slug` is a valid project slug: `[a-z0-9-]{1,64}`.
pub fn is_valid_slug(slug: &str) -> bool {
    (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What validation needs from outside: the time, the project's settings and the
/// secret under which raw identifiers are hashed.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The project the request's key belongs to. An event may name it, but no other.
    pub project: &'a str,
    /// Server time, epoch milliseconds.
    pub now_ms: i64,
    pub settings: Settings,
    /// Secret for [`crate::hash::identifier`]; raw instance, user and session ids are
    /// replaced by their hashes under it.
    pub id_secret: &'a [u8],
}

/// Validates and normalizes one raw event.
///
/// `fresh_id` is called only when the event has no id.
///
/// # Errors
///
/// Returns a [`Rejection`] naming the first field that breaks a rule.
pub fn validate(
    raw: RawEvent,
    ctx: &Context<'_>,
    fresh_id: &mut dyn FnMut() -> String,
) -> Result<Accepted, Rejection> {
    let (now_ms, settings) = (ctx.now_ms, ctx.settings);
    let mut warnings = Vec::new();

    if let Some(named) = raw.project
        && named != ctx.project
    {
        return Err(Rejection {
            code: "project_mismatch",
            field: Some("project"),
            message: format!(
                "this write key belongs to project {:?}, not {named:?}; omit project or use \
                 that project's key",
                ctx.project
            ),
        });
    }
    let project = ctx.project.to_owned();

    let event_id = match raw.event_id {
        Some(id) => uuid::Uuid::try_parse(&id)
            .map(|u| u.hyphenated().to_string())
            .map_err(|_| {
                Rejection::field(
                    "event_id",
                    format!("event_id {id:?} is not a UUID; omit it to have one generated"),
                )
            })?,
        None => fresh_id(),
    };

    let name = raw.name.map(|n| n.trim().to_owned()).unwrap_or_default();
    if name.is_empty() {
        return Err(Rejection::field("name", "name is required"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Rejection::field(
            "name",
            format!("name is longer than {MAX_NAME_CHARS} characters"),
        ));
    }

    let mut timestamp = match &raw.timestamp {
        None | Some(Value::Null) => now_ms,
        Some(value) => {
            parse_timestamp(value).map_err(|e| Rejection::field("timestamp", e.to_string()))?
        }
    };
    if timestamp > now_ms {
        warnings.push(Warning::ClampedTimestamp {
            original: timestamp,
        });
        timestamp = now_ms;
    }
    let oldest = now_ms - i64::from(settings.retention_days) * DAY_MS;
    if timestamp < oldest {
        return Err(Rejection::field(
            "timestamp",
            format!(
                "timestamp is older than the project's retention of {} days",
                settings.retention_days
            ),
        ));
    }

    let status = match raw.status {
        None => None,
        Some(s @ 100..=599) => Some(s as u16),
        Some(s) => {
            return Err(Rejection::field(
                "status",
                format!("status {s} is not an HTTP status in 100..=599"),
            ));
        }
    };
    let duration_ms = match raw.duration_ms {
        Some(d) if !d.is_finite() || !(0.0..=MAX_DURATION_MS).contains(&d) => {
            return Err(Rejection::field(
                "duration_ms",
                "duration_ms must be a finite number from 0 to 1e12 (about 31 years)",
            ));
        }
        // Whole microseconds: raw rows store durations as integer microseconds, so a
        // rollup rebuilt from them sees exactly the value the live rollup saw.
        d => d.map(|d| (d * 1000.0).round() / 1000.0),
    };
    let bytes = match raw.bytes.map(u64::try_from) {
        Some(Ok(b)) if b <= MAX_BYTES => Some(b),
        None => None,
        Some(_) => {
            return Err(Rejection::field(
                "bytes",
                "bytes must be an integer from 0 to 1099511627776 (2^40, 1 TiB)",
            ));
        }
    };

    // A clamped timestamp is recorded with the event, not only answered (DESIGN §4),
    // before the size cap so the record counts against it.
    let mut raw_metadata = raw.metadata;
    if let Some(Warning::ClampedTimestamp { original }) = warnings.first() {
        match &mut raw_metadata {
            None | Some(Value::Null) => {
                raw_metadata = Some(serde_json::json!({ "_clamped_timestamp": original }));
            }
            Some(Value::Object(map)) => {
                map.insert("_clamped_timestamp".into(), Value::from(*original));
            }
            Some(_) => {} // Rejected below.
        }
    }
    let metadata = match raw_metadata {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            let (kept, original_bytes) = truncate_metadata(map);
            if let Some(original_bytes) = original_bytes {
                warnings.push(Warning::TruncatedMetadata { original_bytes });
            }
            Some(kept)
        }
        Some(other) => {
            return Err(Rejection::field(
                "metadata",
                format!("metadata must be a JSON object, not {}", json_kind(&other)),
            ));
        }
    };

    let dim = |field: &'static str, value: Option<String>, max: usize| capped(field, value, max);
    let hashed =
        |raw: Option<String>| raw.map(|id| crate::hash::identifier(ctx.id_secret, &project, &id));
    let instance = hashed(dim("instance", raw.instance, MAX_DIMENSION_CHARS)?);
    let user = hashed(dim("user", raw.user, MAX_DIMENSION_CHARS)?);
    let session = hashed(dim("session", raw.session, MAX_DIMENSION_CHARS)?);
    let event = Event {
        event_id,
        project,
        name,
        timestamp,
        received_at: now_ms,
        method: dim("method", raw.method.map(|m| m.to_ascii_uppercase()), 16)?,
        route: dim("route", raw.route.map(normalize_route), MAX_ROUTE_CHARS)?,
        status,
        duration_ms,
        error_class: dim("error_class", raw.error_class, MAX_DIMENSION_CHARS)?,
        error_message: dim("error_message", raw.error_message, MAX_ERROR_MESSAGE_CHARS)?,
        instance,
        user,
        session,
        version: dim("version", raw.version, 64)?,
        colo: dim("colo", raw.colo, 16)?,
        country: dim("country", raw.country.map(|c| c.to_ascii_uppercase()), 2)?,
        source: dim("source", raw.source, MAX_DIMENSION_CHARS)?,
        medium: dim("medium", raw.medium, MAX_DIMENSION_CHARS)?,
        campaign: dim("campaign", raw.campaign, MAX_DIMENSION_CHARS)?,
        term: dim("term", raw.term, MAX_DIMENSION_CHARS)?,
        content: dim("content", raw.content, MAX_DIMENSION_CHARS)?,
        item: dim("item", raw.item, MAX_DIMENSION_CHARS)?,
        variant: dim("variant", raw.variant, MAX_DIMENSION_CHARS)?,
        bytes,
        metadata,
    };
    Ok(Accepted { event, warnings })
}

/// Keeps metadata within [`MAX_METADATA_BYTES`] of compact JSON. A larger object keeps
/// its members in order while they fit, plus `"_truncated": true` and
/// `"_original_bytes": N`; the second value returned is then the original size.
fn truncate_metadata(map: Map<String, Value>) -> (Map<String, Value>, Option<usize>) {
    let size = compact_len(&Value::Object(map.clone()));
    if size <= MAX_METADATA_BYTES {
        return (map, None);
    }
    // Room for the marker members: `,"_truncated":true,"_original_bytes":NNNNNNN`.
    let budget = MAX_METADATA_BYTES - 48;
    let mut kept = Map::new();
    let mut used = 2; // The braces.
    for (key, value) in map {
        let member = compact_len(&Value::String(key.clone())) + 1 + compact_len(&value);
        let comma = usize::from(!kept.is_empty());
        if used + comma + member <= budget {
            used += comma + member;
            kept.insert(key, value);
        }
    }
    kept.insert("_truncated".into(), Value::Bool(true));
    kept.insert("_original_bytes".into(), Value::from(size));
    (kept, Some(size))
}

fn compact_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

/// Drops empty strings and rejects values longer than `max` characters.
fn capped(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, Rejection> {
    match value {
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.chars().count() > max => Err(Rejection::field(
            field,
            format!("{field} is longer than {max} characters"),
        )),
        v => Ok(v),
    }
}

/// Strips the query string and fragment from a route: `/posts/:id?x=1` → `/posts/:id`.
///
/// A fragment that is itself a path (`#/settings`, `#!/settings`) is kept, without its
/// own query string: single-page apps with hash routing route on it, and the
/// Plausible-compatible endpoint sends such routes as `/#/settings`.
pub fn normalize_route(route: String) -> String {
    let (before, fragment) = route.split_once('#').unwrap_or((&route, ""));
    let path = before.split('?').next().unwrap_or_default();
    let fragment = fragment.split('?').next().unwrap_or_default();
    if fragment.starts_with('/') || fragment.starts_with("!/") {
        format!("{path}#{fragment}")
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_737_210_600_000;

    fn run(raw: Value) -> Result<Accepted, Rejection> {
        let raw: RawEvent = serde_json::from_value(raw).expect("raw event parses");
        let ctx = Context {
            project: "p",
            now_ms: NOW,
            settings: Settings::default(),
            id_secret: b"test-secret",
        };
        validate(raw, &ctx, &mut || {
            "00000000-0000-4000-8000-000000000000".to_owned()
        })
    }

    fn rejected(raw: Value, field: &str, fragment: &str) {
        let r = run(raw.clone()).expect_err("should be rejected");
        assert_eq!(r.field, Some(field), "{raw}");
        assert!(
            r.message.contains(fragment),
            "{:?} lacks {fragment:?}",
            r.message
        );
    }

    #[test]
    fn minimal_event_gets_defaults() {
        let a = run(json!({"name": "request"})).unwrap();
        assert_eq!(a.event.project, "p");
        assert_eq!(a.event.timestamp, NOW);
        assert_eq!(a.event.received_at, NOW);
        assert_eq!(a.event.event_id, "00000000-0000-4000-8000-000000000000");
        assert!(a.warnings.is_empty());
    }

    #[test]
    fn largest_bytes_and_duration_are_accepted() {
        let a =
            run(json!({"name": "n", "bytes": MAX_BYTES, "duration_ms": MAX_DURATION_MS})).unwrap();
        assert_eq!(a.event.bytes, Some(1 << 40));
        assert_eq!(a.event.duration_ms, Some(1e12));
        assert_eq!(
            run(json!({"name": "n", "bytes": 0})).unwrap().event.bytes,
            Some(0)
        );
    }

    #[test]
    fn event_id_is_normalized() {
        let a = run(json!({"project": "p", "name": "n",
            "event_id": "6F9619FF8B86D011B42D00C04FC964FF"}))
        .unwrap();
        assert_eq!(a.event.event_id, "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        rejected(
            json!({"project": "p", "name": "n", "event_id": "x"}),
            "event_id",
            "not a UUID",
        );
    }

    #[test]
    fn rules() {
        rejected(
            json!({"project": "other", "name": "n"}),
            "project",
            "belongs to project \"p\"",
        );
        assert_eq!(
            run(json!({"project": "other", "name": "n"}))
                .unwrap_err()
                .code,
            "project_mismatch"
        );
        rejected(json!({"project": "p"}), "name", "required");
        rejected(json!({"project": "p", "name": "  "}), "name", "required");
        rejected(
            json!({"project": "p", "name": "x".repeat(121)}),
            "name",
            "120",
        );
        rejected(
            json!({"project": "p", "name": "n", "status": 99}),
            "status",
            "100..=599",
        );
        rejected(
            json!({"project": "p", "name": "n", "status": 600}),
            "status",
            "100..=599",
        );
        rejected(
            json!({"project": "p", "name": "n", "duration_ms": -1.0}),
            "duration_ms",
            "from 0 to 1e12",
        );
        rejected(
            json!({"project": "p", "name": "n", "duration_ms": 2e12}),
            "duration_ms",
            "from 0 to 1e12",
        );
        rejected(
            json!({"project": "p", "name": "n", "bytes": -1}),
            "bytes",
            "from 0 to 1099511627776",
        );
        // Past 2^53 an integer poisoned every later read of its rows in D1.
        for bytes in [MAX_BYTES + 1, 9_007_199_254_740_993, i64::MAX as u64] {
            rejected(
                json!({"project": "p", "name": "n", "bytes": bytes}),
                "bytes",
                "from 0 to 1099511627776",
            );
        }
        rejected(
            json!({"project": "p", "name": "n", "metadata": [1]}),
            "metadata",
            "not an array",
        );
        rejected(
            json!({"project": "p", "name": "n", "timestamp": NOW - 91 * DAY_MS}),
            "timestamp",
            "retention of 90 days",
        );
        rejected(
            json!({"project": "p", "name": "n", "country": "USA"}),
            "country",
            "2",
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = serde_json::from_value::<RawEvent>(json!({"name": "n", "nmae": 1}))
            .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `nmae`"), "{err}");
    }

    #[test]
    fn future_timestamp_is_clamped_with_warning() {
        let a = run(json!({"project": "p", "name": "n", "timestamp": NOW + 5_000})).unwrap();
        assert_eq!(a.event.timestamp, NOW);
        assert_eq!(
            a.warnings,
            vec![Warning::ClampedTimestamp {
                original: NOW + 5_000
            }]
        );
        // The fact is recorded with the event too, as the track API documents.
        assert_eq!(
            a.event.metadata,
            json!({"_clamped_timestamp": NOW + 5_000})
                .as_object()
                .cloned()
        );
        let b = run(json!({"name": "n", "timestamp": NOW + 1, "metadata": {"a": 1}})).unwrap();
        assert_eq!(
            b.event.metadata,
            json!({"a": 1, "_clamped_timestamp": NOW + 1})
                .as_object()
                .cloned()
        );
    }

    #[test]
    fn large_metadata_keeps_what_fits_and_records_the_original_size() {
        let a = run(json!({"project": "p", "name": "n", "metadata": {
            "song": "s1", "blob": "x".repeat(5000), "device": "ios"}}))
        .unwrap();
        let meta = a.event.metadata.unwrap();
        assert_eq!(meta["song"], json!("s1"));
        assert_eq!(
            meta["device"],
            json!("ios"),
            "members after a too-large one still fit"
        );
        assert!(meta.get("blob").is_none());
        assert_eq!(meta["_truncated"], json!(true));
        let original = r#"{"song":"s1","blob":""#.len() + 5000 + r#"","device":"ios"}"#.len();
        assert_eq!(meta["_original_bytes"], json!(original));
        assert_eq!(
            a.warnings,
            vec![Warning::TruncatedMetadata {
                original_bytes: original
            }]
        );
    }

    #[test]
    fn truncated_metadata_always_fits() {
        let mut big = serde_json::Map::new();
        for i in 0..400 {
            big.insert(format!("key-{i:03}"), json!("v".repeat(i % 37)));
        }
        let a = run(json!({"project": "p", "name": "n", "metadata": big})).unwrap();
        let meta = a.event.metadata.unwrap();
        let size = serde_json::to_string(&meta).unwrap().len();
        assert!(size <= MAX_METADATA_BYTES, "{size}");
        assert!(
            meta.len() > 50,
            "keeps as many members as fit, kept {}",
            meta.len()
        );
        let exact = json!({"project": "p", "name": "n", "metadata": {"a": "x".repeat(4088)}});
        assert!(
            run(exact).unwrap().warnings.is_empty(),
            "4096 bytes exactly is allowed"
        );
    }

    #[test]
    fn raw_identifiers_are_replaced_by_their_hashes() {
        let a = run(json!({"project": "p", "name": "n",
            "user": "alice@example.com", "instance": "site-1", "session": "s-9"}))
        .unwrap();
        let e = a.event;
        assert_eq!(
            e.user.as_deref(),
            Some(crate::hash::identifier(b"test-secret", "p", "alice@example.com").as_str())
        );
        assert_eq!(
            e.instance,
            Some(crate::hash::identifier(b"test-secret", "p", "site-1"))
        );
        assert_eq!(
            e.session,
            Some(crate::hash::identifier(b"test-secret", "p", "s-9"))
        );
        let stored = serde_json::to_string(&e).unwrap();
        assert!(
            !stored.contains("alice") && !stored.contains("site-1"),
            "{stored}"
        );
    }

    #[test]
    fn normalizes_dimensions() {
        let a = run(json!({"project": "p", "name": "request", "method": "get",
            "route": "/posts/:id?page=2", "country": "de", "version": ""}))
        .unwrap();
        assert_eq!(a.event.method.as_deref(), Some("GET"));
        assert_eq!(a.event.route.as_deref(), Some("/posts/:id"));
        assert_eq!(a.event.country.as_deref(), Some("DE"));
        assert_eq!(a.event.version, None);
    }

    #[test]
    fn routes_lose_query_and_fragment_but_keep_hash_routes() {
        let check = |route: &str, expected: &str| {
            assert_eq!(normalize_route(route.to_owned()), expected, "{route}");
        };
        check("/posts/:id", "/posts/:id");
        check("/posts/:id?page=2", "/posts/:id");
        check("/docs#install", "/docs");
        check("/docs?x=1#install", "/docs");
        check("/#/settings", "/#/settings");
        check("/app#!/users/7", "/app#!/users/7");
        check("/app?token=t#/users/7?tab=2", "/app#/users/7");
        check("/#", "/");
        check("?q=1", "");
    }

    #[test]
    fn durations_are_whole_microseconds() {
        let a = run(json!({"project": "p", "name": "n", "duration_ms": 12.345_678})).unwrap();
        assert_eq!(a.event.duration_ms, Some(12.346));
        let us = (a.event.duration_ms.unwrap() * 1000.0).round() as i64;
        assert_eq!(
            us as f64 / 1000.0,
            a.event.duration_ms.unwrap(),
            "round-trips via µs"
        );
    }

    #[test]
    fn is_error() {
        let a = run(json!({"project": "p", "name": "request", "status": 503})).unwrap();
        assert!(a.event.is_error());
        let b = run(json!({"project": "p", "name": "request", "status": 404})).unwrap();
        assert!(!b.event.is_error());
    }
}
