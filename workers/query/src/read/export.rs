//! `GET /v1/projects/{p}/export?format=ndjson|csv`: the raw events of the range, oldest
//! first, as NDJSON (one event per line, the fields of an event sent to ingest, absent
//! ones left out) or CSV (a header, then one row per event, every column). Identifiers
//! (`user`, `instance`, `session`) are the stored hashes, never raw ids; `event_id` is
//! the event's UUID.
//!
//! Raw events are purged after the project's retention, so the range starts no earlier
//! than retention allows (`x-tally-from` and `x-tally-to` say what was exported).
//!
//! `filter`s (the grammar of `tally_core::filter`) export only the events that meet
//! them, read through the same statement as a filtered report's raw path;
//! `x-tally-filters` echoes them as JSON (non-ASCII escaped, as a header must be).
//!
//! The body is streamed: `Response::from_stream` (workers-rs 0.8.7) turns a Rust
//! `Stream` into the `ReadableStream` the runtime sends, and each chunk is one page of
//! [`PAGE`] events read when the client is ready for it, so memory stays flat however
//! long the range. The first page is read before answering, so an early failure is a
//! clean 500; a failure after that ends the stream with an error, which the client sees
//! as a truncated body. D1 allows 1,000 queries per invocation (50 on the free plan),
//! so one export holds at most about 2 million events (100,000); export longer ranges
//! in parts. It has no ETag and is not cached: a hash of the body would need the whole
//! body first.

use crate::edge::Store;
use futures_util::stream;
use serde_json::{Map, Value};
use tally_core::Event;
use tally_core::filter::Filters;
use tally_core::time::format_ms;
use tally_edge::ApiError;
use tally_storage::{EventStore, QueryStore};
use worker::{Request, Response};

use super::{filtered, scope};
use crate::edge::error::internal;
use crate::edge::params::{Params, within_retention};
use crate::edge::{RequestEnv, now_ms, store};

/// Events read per page (one D1 query, one chunk of the body).
pub const PAGE: u32 = 2000;

/// The CSV columns, in order. Columns added later (`term`, `content`) come last, so a
/// reader of the earlier columns by position keeps reading them.
pub const COLUMNS: [&str; 24] = [
    "event_id",
    "timestamp",
    "name",
    "method",
    "route",
    "status",
    "duration_ms",
    "error_class",
    "error_message",
    "instance",
    "user",
    "session",
    "version",
    "colo",
    "country",
    "source",
    "medium",
    "campaign",
    "item",
    "variant",
    "bytes",
    "metadata",
    "term",
    "content",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Csv,
}

/// What the body stream carries from one page to the next.
struct Pages {
    store: Store,
    project: String,
    from: i64,
    to: i64,
    format: Format,
    filters: Filters,
    /// A page read but not yet sent (the first one).
    pending: Option<Vec<Event>>,
    /// The `(timestamp, event_id)` of the last event sent.
    after: Option<(i64, String)>,
    done: bool,
}

pub async fn get(req: &Request, env: &RequestEnv, project: &str) -> Result<Response, ApiError> {
    let params = Params::of(req)?;
    let now = now_ms();
    let asked = params.range(now)?;
    let format = match params.get("format").unwrap_or("ndjson") {
        "ndjson" => Format::Ndjson,
        "csv" => Format::Csv,
        other => {
            return Err(ApiError::bad_request(
                "invalid_format",
                format!("format must be ndjson or csv, not {other:?}"),
            ));
        }
    };
    let filters = params.filters()?;
    let settings = scope::project(env, project).await?;
    let range = within_retention(asked, settings.retention_days, now)
        .ok_or_else(|| scope::past_retention(settings.retention_days))?;
    let mut pages = Pages {
        store: store(env)?,
        project: project.to_owned(),
        from: range.from_ms,
        to: range.to_ms,
        format,
        filters,
        done: false,
        pending: None,
        after: None,
    };
    let first = pages.page(None).await.map_err(internal)?;
    pages.done = first.len() < PAGE as usize;
    let echo = ascii_json(&filtered::filters_json(&pages.filters).to_string());
    pages.pending = Some(first);
    let body = stream::unfold(pages, next_chunk);
    let mut response = Response::from_stream(body).map_err(internal)?;
    let (content_type, extension) = match format {
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let (from, to) = (format_ms(range.from_ms), format_ms(range.to_ms));
    let filename = format!("{project}-{}.{extension}", &from[..10]);
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-type", content_type),
        (
            "content-disposition",
            &format!("attachment; filename=\"{filename}\""),
        ),
        ("cache-control", "private, no-store"),
        ("x-tally-from", &from),
        ("x-tally-to", &to),
        ("x-tally-filters", &echo),
    ] {
        headers.set(name, value).map_err(internal)?;
    }
    Ok(response)
}

impl Pages {
    /// The page after the cursor: every event, or those meeting the filters.
    async fn page(&self, after: Option<(i64, &str)>) -> Result<Vec<Event>, tally_storage::Error> {
        let (project, from, to) = (&self.project, self.from, self.to);
        if self.filters.is_empty() {
            self.store
                .events_between(project, from, to, after, PAGE)
                .await
        } else {
            let filters = &self.filters;
            self.store
                .filtered_events(project, from, to, filters, after, PAGE)
                .await
        }
    }
}

/// JSON text with every non-ASCII character escaped (`\uXXXX`, surrogate pairs past
/// the first plane), so that it fits a header value.
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The next chunk of the body: the CSV header with the first page, then a page per
/// chunk, until a short page.
async fn next_chunk(mut pages: Pages) -> Option<(Result<Vec<u8>, worker::Error>, Pages)> {
    let mut out = Vec::new();
    let events = match pages.pending.take() {
        Some(first) => {
            if pages.format == Format::Csv {
                out.extend_from_slice(COLUMNS.join(",").as_bytes());
                out.push(b'\n');
            }
            first
        }
        None if pages.done => return None,
        None => {
            let after = pages.after.clone();
            let read = pages
                .page(after.as_ref().map(|(t, id)| (*t, id.as_str())))
                .await;
            match read {
                Ok(page) => {
                    pages.done = page.len() < PAGE as usize;
                    page
                }
                Err(e) => {
                    worker::console_error!("export of {} failed midway: {e}", pages.project);
                    pages.done = true;
                    let error = worker::Error::RustError("the export failed; retry".into());
                    return Some((Err(error), pages));
                }
            }
        }
    };
    if let Some(last) = events.last() {
        pages.after = Some((last.timestamp, last.event_id.clone()));
    }
    for event in &events {
        let fields = fields(event);
        match pages.format {
            Format::Ndjson => out.extend_from_slice(Value::Object(fields).to_string().as_bytes()),
            Format::Csv => out.extend_from_slice(csv_row(&fields).as_bytes()),
        }
        out.push(b'\n');
    }
    if out.is_empty() {
        return None;
    }
    Some((Ok(out), pages))
}

/// An event's exported fields: as sent to ingest, with the UUID, an RFC 3339 time and
/// the stored identifier hashes; absent fields left out.
pub fn fields(event: &Event) -> Map<String, Value> {
    let mut map = match serde_json::to_value(event) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.remove("project");
    map.remove("received_at");
    map.insert("event_id".into(), uuid(&event.event_id).into());
    map.insert("timestamp".into(), format_ms(event.timestamp).into());
    map
}

/// A UUID from its 32 hex digits (other text unchanged).
pub fn uuid(hex: &str) -> String {
    if hex.len() != 32 || !hex.is_ascii() {
        return hex.to_owned();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// One CSV row (without the line end) of an event's fields, in [`COLUMNS`] order.
pub fn csv_row(fields: &Map<String, Value>) -> String {
    let cells: Vec<String> = COLUMNS
        .iter()
        .map(|column| match fields.get(*column) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => csv_text_cell(s),
            Some(other) => csv_cell(&other.to_string()),
        })
        .collect();
    cells.join(",")
}

/// A cell of text a client sent (routes, messages, names): [`csv_cell`], but text that
/// a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, as OWASP advises, so an `error_message` of
/// `=HYPERLINK(...)` sent with a public write key stays text in the owner's spreadsheet.
/// Numbers are never text here, so a negative number keeps its sign.
pub fn csv_text_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        csv_cell(&format!("'{text}"))
    } else {
        csv_cell(text)
    }
}

/// A CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break.
pub fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_echoes_fit_a_header() {
        assert_eq!(ascii_json(r#"["a"]"#), r#"["a"]"#);
        let escaped = ascii_json("\"café 😀\"");
        assert_eq!(escaped, r#""caf\u00e9 \ud83d\ude00""#);
        assert_eq!(
            serde_json::from_str::<String>(&escaped).unwrap(),
            "café 😀",
            "the same JSON string"
        );
    }

    use super::*;

    #[test]
    fn an_event_as_exported() {
        let mut e = Event::new(
            "0123456789abcdef0123456789abcdef",
            "site",
            "request",
            1_737_210_600_250,
        );
        e.route = Some("/a,b".into());
        e.status = Some(500);
        e.duration_ms = Some(12.5);
        e.user = Some("00112233aabbccdd".into());
        e.error_message = Some("said \"no\"\nthen left".into());
        e.metadata = Some(serde_json::from_str(r#"{"k":[1,2]}"#).unwrap());
        e.term = Some("shoes".into());
        let f = fields(&e);
        assert_eq!(
            Value::Object(f.clone()),
            serde_json::json!({
                "event_id": "01234567-89ab-cdef-0123-456789abcdef",
                "timestamp": "2025-01-18T14:30:00.250Z",
                "name": "request",
                "route": "/a,b",
                "status": 500,
                "duration_ms": 12.5,
                "user": "00112233aabbccdd",
                "error_message": "said \"no\"\nthen left",
                "metadata": {"k": [1, 2]},
                "term": "shoes",
            })
        );
        assert_eq!(
            csv_row(&f),
            "01234567-89ab-cdef-0123-456789abcdef,2025-01-18T14:30:00.250Z,request,,\"/a,b\",\
             500,12.5,,\"said \"\"no\"\"\nthen left\",,00112233aabbccdd,,,,,,,,,,,\
             \"{\"\"k\"\":[1,2]}\",shoes,"
        );
        assert_eq!(
            csv_row(&f).matches(',').count(),
            23 + 1 + 1,
            "two commas quoted"
        );
    }

    #[test]
    fn text_a_spreadsheet_would_run_is_kept_as_text() {
        for (sent, cell) in [
            (
                "=HYPERLINK(\"https://evil.example\",\"x\")",
                "\"'=HYPERLINK(\"\"https://evil.example\"\",\"\"x\"\")\"",
            ),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("/a=b", "/a=b"),
            ("plain", "plain"),
        ] {
            assert_eq!(csv_text_cell(sent), cell, "{sent:?}");
        }
        let mut e = Event::new("0123456789abcdef0123456789abcdef", "site", "n", 0);
        e.error_message = Some("=1+1".into());
        e.status = Some(500);
        let row = csv_row(&fields(&e));
        assert!(row.contains(",'=1+1,"), "{row}");
        assert!(row.contains(",500,"), "{row}");
    }
}
