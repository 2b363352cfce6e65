//! The one wide event every Tally use shares (DESIGN §4), before and after validation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An event as a client sends it. Unknown fields are an error that names the field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    pub event_id: Option<String>,
    /// The project slug. Until write keys exist the client names it; later it comes from the key.
    pub project: Option<String>,
    pub name: Option<String>,
    /// RFC 3339 text or epoch milliseconds; absent means "now".
    pub timestamp: Option<Value>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub status: Option<i64>,
    pub duration_ms: Option<f64>,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub instance: Option<String>,
    pub user: Option<String>,
    pub session: Option<String>,
    pub version: Option<String>,
    pub colo: Option<String>,
    pub country: Option<String>,
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    /// The paid search term or ad keyword (`utm_term`).
    pub term: Option<String>,
    /// Which of several links or ads of one campaign (`utm_content`).
    pub content: Option<String>,
    pub item: Option<String>,
    pub variant: Option<String>,
    pub bytes: Option<i64>,
    pub metadata: Option<Value>,
}

/// A validated, normalized event: what travels on the `events` queue and lands in D1.
///
/// Field names equal the column names of the `events` table, so a JSON array of these
/// can be inserted with one bound parameter through `jsonb_each` (see [`crate::sql`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub project: String,
    pub name: String,
    /// Event time in epoch milliseconds, UTC.
    pub timestamp: i64,
    /// When ingest accepted the event, in epoch milliseconds, UTC.
    pub received_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl Event {
    /// An event with only its required fields; every optional field is empty.
    pub fn new(event_id: &str, project: &str, name: &str, timestamp: i64) -> Self {
        Self {
            event_id: event_id.to_owned(),
            project: project.to_owned(),
            name: name.to_owned(),
            timestamp,
            received_at: timestamp,
            method: None,
            route: None,
            status: None,
            duration_ms: None,
            error_class: None,
            error_message: None,
            instance: None,
            user: None,
            session: None,
            version: None,
            colo: None,
            country: None,
            source: None,
            medium: None,
            campaign: None,
            term: None,
            content: None,
            item: None,
            variant: None,
            bytes: None,
            metadata: None,
        }
    }

    /// Whether the event counts as an error: a 5xx status or a named error class.
    pub fn is_error(&self) -> bool {
        self.status.is_some_and(|s| s >= 500) || self.error_class.is_some()
    }
}
