//! The error answer every Tally endpoint gives: a status and
//! `{"error": {"code": "...", "message": "..."}}` saying what to fix.
//!
//! This is plain data; each worker turns it into an HTTP response at its edge.

use serde_json::{Map, Value, json};

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Extra top-level members of the body (for example per-event results).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// Adds a top-level member to the body.
    #[must_use]
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!("this endpoint takes {allowed}"),
        )
    }

    /// A generic 500 that reveals nothing; the caller logs the real cause.
    pub fn internal() -> Self {
        Self::new(500, "internal", "internal error; please retry")
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "error".into(),
            json!({"code": self.code, "message": self.message}),
        );
        body.extend(self.extra.clone());
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let e = ApiError::bad_request("empty_batch", "no events").with("accepted", json!(0));
        assert_eq!(
            e.body(),
            json!({"error": {"code": "empty_batch", "message": "no events"}, "accepted": 0})
        );
        assert_eq!(e.status, 400);
        assert_eq!(
            ApiError::internal().body()["error"]["message"],
            "internal error; please retry"
        );
    }
}
