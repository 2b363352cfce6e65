//! Splitting a list into JSON arrays that each fit a byte budget, and reading a request
//! body that must be one JSON object.

use serde::Serialize;
use serde::de::{DeserializeOwned, Error as _};

/// Serializes `items` into strings of the form `head item,item,... tail`, each at most
/// `max_bytes` long, keeping the order. An item too large for any budget gets a string
/// of its own.
pub fn chunks<T: Serialize>(items: &[T], max_bytes: usize, head: &str, tail: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chunk = String::from(head);
    let mut count = 0usize;
    for item in items {
        let json = serde_json::to_string(item).expect("items serialize to JSON");
        if count > 0 && chunk.len() + 1 + json.len() + tail.len() > max_bytes {
            chunk.push_str(tail);
            out.push(std::mem::replace(&mut chunk, String::from(head)));
            count = 0;
        }
        if count > 0 {
            chunk.push(',');
        }
        chunk.push_str(&json);
        count += 1;
    }
    if count > 0 {
        chunk.push_str(tail);
        out.push(chunk);
    }
    out
}

/// Reads `body` as one JSON object into `T`. serde's derived structs also take a JSON
/// array of their fields in order (`[null, null]`), which no request means; here
/// anything but an object is refused, with the same errors `serde_json` gives.
///
/// # Errors
///
/// When `body` is not JSON, not an object, or not a `T`.
pub fn from_object<T: DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
    match serde_json::from_slice(body)? {
        object @ serde_json::Value::Object(_) => serde_json::from_value(object),
        _ => Err(serde_json::Error::custom("expected a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::{chunks, from_object};

    #[test]
    fn splits_at_budget() {
        let items: Vec<u32> = (10..40).collect();
        let parts = chunks(&items, 20, "[", "]");
        let mut back = Vec::new();
        for p in &parts {
            assert!(p.len() <= 20, "{p}");
            back.extend(serde_json::from_str::<Vec<u32>>(p).unwrap());
        }
        assert_eq!(back, items);
        assert!(chunks::<u32>(&[], 20, "[", "]").is_empty());
        assert_eq!(
            chunks(&["a-long-item"], 5, "[", "]"),
            vec![r#"["a-long-item"]"#]
        );
    }

    #[test]
    fn only_an_object_is_read_as_a_struct() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Share {
            days: Option<i64>,
            seconds: Option<i64>,
        }
        let check = |body: &str, expected: Option<Share>| {
            assert_eq!(
                from_object::<Share>(body.as_bytes()).ok(),
                expected,
                "{body}"
            );
        };
        check(
            r#"{"days": 7}"#,
            Some(Share {
                days: Some(7),
                seconds: None,
            }),
        );
        // serde_json alone reads these two as a `Share`.
        assert!(serde_json::from_slice::<Share>(b"[null, null]").is_ok());
        check("[null, null]", None);
        check("[7, 1]", None);
        check("null", None);
        check("7", None);
        check("", None);
        let e = from_object::<Share>(b"[]").unwrap_err();
        assert_eq!(e.to_string(), "expected a JSON object");
    }
}
