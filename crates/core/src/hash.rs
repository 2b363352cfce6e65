//! Identifier hashing: raw instance, user and session ids and visitor IPs never leave
//! ingest; only these hashes are stored.
//!
//! A hash is SHA-256 over the length-prefixed secret (or daily salt), the project slug
//! and the raw id, hex-encoded. The length prefixes make the input unambiguous, so no
//! two different (secret, project, id) triples hash the same input bytes.

use sha2::{Digest, Sha256};

/// The hash of a raw identifier, as 64 lowercase hex digits.
pub fn identifier(secret: &[u8], project: &str, raw: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [secret, project.as_bytes(), raw.as_bytes()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex(&hasher.finalize())
}

/// A visitor id for clients that send none (browsers via the Plausible-compatible
/// endpoint): the hash of IP and user agent under a salt that rotates daily, as
/// Plausible does, so a visitor cannot be followed from one day to the next.
pub fn visitor(daily_salt: &[u8], project: &str, ip: &str, user_agent: &str) -> String {
    let raw = format!("{}\n{ip}\n{user_agent}", ip.len());
    identifier(daily_salt, project, &raw)
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The value of each byte as a hex digit (either case); [`NOT_HEX`] for other bytes.
const HEX_VALUES: [u8; 256] = {
    let mut values = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        values[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        values[b'a' as usize + i] = 10 + i as u8;
        values[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    values
};
/// Marks a byte that is not a hex digit: its high bits survive an OR with any digit.
const NOT_HEX: u8 = 0xf0;

/// The bytes of hex text (either case), as [`hex`] writes them; `None` for text of odd
/// length or with a character that is not a hex digit.
///
/// Table-driven and branch-free per pair: rollup reads decode kilobytes of summaries
/// per row, several hundred rows per answer (BLOBs cross D1 as hex text).
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let mut seen = 0u8;
    let bytes: Vec<u8> = digits
        .chunks_exact(2)
        .map(|pair| {
            let (high, low) = (
                HEX_VALUES[usize::from(pair[0])],
                HEX_VALUES[usize::from(pair[1])],
            );
            seen |= high | low;
            high << 4 | low
        })
        .collect();
    (seen & NOT_HEX == 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhex_reads_what_hex_writes_and_refuses_the_rest() {
        let every: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&every)).unwrap(), every);
        assert_eq!(unhex(&hex(&every).to_uppercase()).unwrap(), every);
        // (text, expected)
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("", Some(&[])),
            ("0aFf", Some(&[0x0a, 0xff])),
            ("0", None),
            ("0g", None),
            ("g0", None),
            (" 0", None),
            ("0a:0", None),
            ("é0", None),
            ("0aff0", None),
        ];
        for (text, expected) in cases {
            assert_eq!(unhex(text).as_deref(), *expected, "{text:?}");
        }
        // Every byte that is not a digit is refused in either place of a pair.
        for byte in (0..=255u8).filter(|b| !b.is_ascii_hexdigit() && b.is_ascii()) {
            let text = String::from_utf8(vec![b'0', byte]).unwrap();
            assert_eq!(unhex(&text), None, "{byte}");
            assert_eq!(
                unhex(&text.chars().rev().collect::<String>()),
                None,
                "{byte}"
            );
        }
    }

    #[test]
    fn known_answer() {
        // SHA-256 of be64(1) "s" be64(1) "p" be64(1) "u", computed independently with
        // Python's hashlib.
        assert_eq!(
            identifier(b"s", "p", "u"),
            "b175480c2e5f30a73b5e19683562fa78709f4b19f61ffc5d485b8c5315ec0229"
        );
    }

    #[test]
    fn inputs_are_unambiguous_and_separated() {
        let base = identifier(b"secret", "proj", "user-1");
        assert_eq!(base.len(), 64);
        assert!(
            base.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(
            base,
            identifier(b"secret", "proj", "user-1"),
            "deterministic"
        );
        for other in [
            identifier(b"secret2", "proj", "user-1"),
            identifier(b"secret", "proj2", "user-1"),
            identifier(b"secret", "proj", "user-2"),
            // Shifting bytes between fields must change the hash.
            identifier(b"secretp", "roj", "user-1"),
            identifier(b"secret", "pro", "juser-1"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn visitors_rotate_with_the_salt() {
        let day1 = visitor(b"salt-1", "site", "203.0.113.9", "Mozilla/5.0");
        assert_eq!(
            day1,
            visitor(b"salt-1", "site", "203.0.113.9", "Mozilla/5.0")
        );
        assert_ne!(
            day1,
            visitor(b"salt-2", "site", "203.0.113.9", "Mozilla/5.0")
        );
        assert_ne!(
            day1,
            visitor(b"salt-1", "site", "203.0.113.90", "Mozilla/5.0")
        );
        assert!(!day1.contains("203.0.113.9"));
    }
}
