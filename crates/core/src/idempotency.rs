//! Idempotency keys: a client names a request with an `Idempotency-Key` header, and
//! every event of it that carries no `event_id` gets one derived from the key, the
//! project and the event's index in the request. Sending the same request again with
//! the same key gives the same ids, so the aggregator, which stores each
//! `(project, event_id)` once, counts it once.
//!
//! The id is SHA-256 over length-prefixed parts (as [`crate::hash`] hashes identifiers),
//! its first 16 bytes made a version 8 (custom) UUID and written as every event id is:
//! lowercase, hyphenated.

use sha2::{Digest, Sha256};

use crate::Error;

/// The request header.
pub const HEADER: &str = "Idempotency-Key";
/// Shortest accepted key: long enough to be unique among a project's clients if random
/// (a UUID is 36 characters), so that one client's key does not name another's events.
pub const MIN_LEN: usize = 16;
/// Longest accepted key.
pub const MAX_LEN: usize = 255;

/// Separates these hashes from every other hash of a project's inputs.
const DOMAIN: &[u8] = b"tally idempotency key v1";

/// Checks an `Idempotency-Key` header value and returns the key: [`MIN_LEN`] to
/// [`MAX_LEN`] characters of `A-Z a-z 0-9 - _ . : + / = ~`, optionally in double quotes
/// (the IETF draft writes it as a structured-field string, `"…"`; both forms are the
/// same key).
///
/// # Errors
///
/// [`Error::Invalid`] `invalid_idempotency_key` (a 400 at the edge), saying what is
/// wrong, for any other value.
pub fn check_key(header: &str) -> Result<&str, Error> {
    let key = header
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(header);
    let invalid = |what: String| {
        Error::invalid(
            "invalid_idempotency_key",
            format!(
                "the {HEADER} header {what}; send {MIN_LEN} to {MAX_LEN} characters of \
                 A-Z a-z 0-9 - _ . : + / = ~, such as a UUID made for the request"
            ),
        )
    };
    if let Some(c) = key.chars().find(|c| !allowed(*c)) {
        return Err(invalid(format!("holds {c:?}")));
    }
    if !(MIN_LEN..=MAX_LEN).contains(&key.len()) {
        return Err(invalid(format!("is {} characters long", key.len())));
    }
    Ok(key)
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.:+/=~".contains(c)
}

/// The id of the event at `index` (its position in the request, from 0) of a request
/// of `project` sent with `key` (as [`check_key`] returns it).
pub fn event_id(project: &str, key: &str, index: usize) -> String {
    let mut hasher = Sha256::new();
    let index = (index as u64).to_be_bytes();
    for part in [DOMAIN, project.as_bytes(), key.as_bytes(), &index] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "8e03978e-40d5-43e8-bc93-6894a57f9324";

    #[test]
    fn known_answer() {
        // SHA-256 of the length-prefixed parts, computed independently with Python's
        // hashlib, its first 16 bytes with the version nibble set to 8 and the variant
        // bits to 10.
        assert_eq!(
            event_id("demo", KEY, 0),
            "ad0e6002-34c3-83ce-90c2-bab675429feb"
        );
    }

    #[test]
    fn ids_are_uuids_as_ingest_writes_them() {
        let id = event_id("demo", KEY, 7);
        let parsed = uuid::Uuid::try_parse(&id).unwrap();
        assert_eq!(parsed.hyphenated().to_string(), id, "lowercase, hyphenated");
        assert_eq!(parsed.get_version_num(), 8);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn same_inputs_same_id_any_other_input_another() {
        let base = event_id("demo", KEY, 1);
        assert_eq!(base, event_id("demo", KEY, 1), "deterministic");
        let others = [
            event_id("demo", KEY, 0),
            event_id("demo", KEY, 2),
            event_id("demo", &KEY.replace('8', "9"), 1),
            event_id("demo2", KEY, 1),
            // Shifting characters between project and key changes the id.
            event_id("dem", &format!("o{KEY}"), 1),
        ];
        for other in others {
            assert_ne!(base, other);
        }
        let many: std::collections::HashSet<String> =
            (0..1000).map(|i| event_id("demo", KEY, i)).collect();
        assert_eq!(many.len(), 1000, "every index of a batch its own id");
    }

    fn check(header: &str, expected: Result<&str, &str>) {
        match (check_key(header), expected) {
            (Ok(key), Ok(want)) => assert_eq!(key, want, "{header:?}"),
            (Err(Error::Invalid { code, message, .. }), Err(want)) => {
                assert_eq!(code, "invalid_idempotency_key", "{header:?}");
                assert!(message.contains(want), "{header:?}: {message}");
            }
            (got, want) => panic!("{header:?}: {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn keys_are_checked() {
        check(KEY, Ok(KEY));
        check(&format!("\"{KEY}\""), Ok(KEY));
        check(
            "01JEXAMPLEULID0000000000AB",
            Ok("01JEXAMPLEULID0000000000AB"),
        );
        check("b64+/url_-.:=~0123", Ok("b64+/url_-.:=~0123"));
        check(&"k".repeat(MAX_LEN), Ok(&"k".repeat(MAX_LEN)));
        check(&"k".repeat(MIN_LEN), Ok(&"k".repeat(MIN_LEN)));
        check("", Err("is 0 characters long"));
        check("\"\"", Err("is 0 characters long"));
        check("too-short", Err("is 9 characters long"));
        check(&"k".repeat(MAX_LEN + 1), Err("is 256 characters long"));
        check("has a space in the key", Err("holds ' '"));
        check(&format!("{KEY}, {KEY}"), Err("holds ','"));
        check("clé-de-la-requête", Err("holds 'é'"));
        check("\"unbalanced-quote-key", Err("holds '\"'"));
        check("line\nbreak-in-the-key", Err("holds '\\n'"));
    }
}
