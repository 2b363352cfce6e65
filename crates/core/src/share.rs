//! Share links: a token that lets anyone holding it view one project's dashboard until
//! it expires, without a read token. The token is `<expiry>.<signature>`: the expiry in
//! epoch seconds and HMAC-SHA256, keyed by a worker secret, over the project and expiry.
//!
//! Nothing is stored: changing the secret invalidates every link at once.

use sha2::{Digest, Sha256};

use crate::hash::hex;

/// Longest lifetime a share link may be given, in seconds (one year).
pub const MAX_LIFETIME_S: i64 = 366 * 86_400;

/// Why a share token does not grant access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not of the form `<expiry>.<64 hex digits>`.
    Malformed,
    /// Well formed, but not signed for this project and expiry by this secret.
    BadSignature,
    /// Genuine, and past its expiry.
    Expired,
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The signed text: a version tag, the project and the expiry, separated by NUL bytes
/// (neither a slug nor a number contains one).
fn message(project: &str, expires_s: i64) -> Vec<u8> {
    format!("tally-share-v1\0{project}\0{expires_s}").into_bytes()
}

/// The share token for `project` that expires at `expires_s` (epoch seconds).
pub fn sign(secret: &[u8], project: &str, expires_s: i64) -> String {
    let mac = hmac_sha256(secret, &message(project, expires_s));
    format!("{expires_s}.{}", hex(&mac))
}

/// Checks a share token for `project` at `now_ms`; the answer is its expiry in epoch
/// seconds. The signature is checked before the expiry, so a token whose expiry was
/// edited is reported as forged, not as expired.
///
/// # Errors
///
/// The [`Refusal`] that applies.
pub fn verify(secret: &[u8], project: &str, token: &str, now_ms: i64) -> Result<i64, Refusal> {
    let (expiry, signature) = token.split_once('.').ok_or(Refusal::Malformed)?;
    let well_formed = !expiry.is_empty()
        && expiry.len() <= 12
        && expiry.bytes().all(|b| b.is_ascii_digit())
        && signature.len() == 64
        && signature
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        return Err(Refusal::Malformed);
    }
    let expires_s: i64 = expiry.parse().map_err(|_| Refusal::Malformed)?;
    let expected = sign(secret, project, expires_s);
    // Compare digests of both, so the time taken says nothing about a near miss.
    if Sha256::digest(expected.as_bytes()) != Sha256::digest(token.as_bytes()) {
        return Err(Refusal::BadSignature);
    }
    if now_ms.div_euclid(1000) >= expires_s {
        return Err(Refusal::Expired);
    }
    Ok(expires_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1, 2, 4 and 6 of RFC 4231 (6 has a key longer than the block).
        let cases: [(Vec<u8>, Vec<u8>, &str); 4] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, message, expected) in cases {
            assert_eq!(hex(&hmac_sha256(&key, &message)), expected);
        }
    }

    const NOW_MS: i64 = 1_737_210_600_000;

    fn check(token: &str, project: &str, expected: Result<i64, Refusal>) {
        assert_eq!(
            verify(b"secret", project, token, NOW_MS),
            expected,
            "{token} for {project}"
        );
    }

    #[test]
    fn tokens_open_their_project_until_they_expire() {
        let expires = NOW_MS / 1000 + 60;
        let token = sign(b"secret", "site", expires);
        assert!(token.starts_with(&format!("{expires}.")), "{token}");
        check(&token, "site", Ok(expires));
        // Another project, another secret, an edited expiry or signature: forged.
        check(&token, "site-2", Err(Refusal::BadSignature));
        assert_eq!(
            verify(b"other", "site", &token, NOW_MS),
            Err(Refusal::BadSignature)
        );
        let later = token.replacen(&expires.to_string(), &(expires + 3600).to_string(), 1);
        check(&later, "site", Err(Refusal::BadSignature));
        let last = token.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &token[..token.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        check(&flipped, "site", Err(Refusal::BadSignature));
        // Expired at the second it names.
        let past = sign(b"secret", "site", NOW_MS / 1000);
        check(&past, "site", Err(Refusal::Expired));
        for bad in [
            "",
            ".",
            "123",
            "abc.def",
            &format!("{expires}.{}", "A".repeat(64)),
            &format!("-5.{}", "0".repeat(64)),
            &format!("{}.{}", "9".repeat(13), "0".repeat(64)),
            &token[..token.len() - 1],
        ] {
            check(bad, "site", Err(Refusal::Malformed));
        }
    }
}
