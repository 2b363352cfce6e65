//! Time parsing for event timestamps. All times are UTC epoch milliseconds.

use chrono::DateTime;
use serde_json::Value;

/// Milliseconds in one day.
pub const DAY_MS: i64 = 86_400_000;

/// Parses an event timestamp: RFC 3339 text, or a non-negative integer of epoch milliseconds.
///
/// # Errors
///
/// Returns a message a person can act on when the value is neither form.
pub fn parse_timestamp(value: &Value) -> Result<i64, String> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .map_err(|_| format!("timestamp {text:?} is not RFC 3339 (e.g. 2025-01-18T14:30:00Z)")),
        Value::Number(n) => match n.as_i64() {
            Some(ms) if ms >= 0 => Ok(ms),
            _ => Err(format!(
                "timestamp {n} is not a non-negative integer of epoch milliseconds"
            )),
        },
        other => Err(format!(
            "timestamp must be RFC 3339 text or epoch milliseconds, not {}",
            json_kind(other)
        )),
    }
}

/// Formats epoch milliseconds as RFC 3339 in UTC with millisecond precision.
pub fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// The JSON type name of a value, for error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(input: Value, expected: Result<i64, &str>) {
        let got = parse_timestamp(&input);
        match expected {
            Ok(ms) => assert_eq!(got, Ok(ms), "input {input}"),
            Err(fragment) => {
                let err = got.expect_err("should be rejected");
                assert!(
                    err.contains(fragment),
                    "{err:?} should contain {fragment:?}"
                );
            }
        }
    }

    #[test]
    fn timestamps() {
        check(json!("2025-01-18T14:30:00Z"), Ok(1_737_210_600_000));
        check(json!("2025-01-18T15:30:00+01:00"), Ok(1_737_210_600_000));
        check(json!("2025-01-18T14:30:00.250Z"), Ok(1_737_210_600_250));
        check(json!(1_737_210_600_000_i64), Ok(1_737_210_600_000));
        check(json!(0), Ok(0));
        check(json!("2025-01-18"), Err("not RFC 3339"));
        check(json!(-5), Err("non-negative integer"));
        check(json!(1.5), Err("non-negative integer"));
        check(json!(true), Err("not a boolean"));
    }

    #[test]
    fn formats_utc_millis() {
        assert_eq!(format_ms(1_737_210_600_250), "2025-01-18T14:30:00.250Z");
    }
}
