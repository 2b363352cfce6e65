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

#[cfg(test)]
mod tests {
    use super::*;

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
