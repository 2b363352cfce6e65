//! Share links and dashboard sessions: the two ways to see a dashboard without sending
//! a token with every request.
//!
//! A share link's token is `<id>.<expiry>.<signature>`: the link's id (`sh_` and 16 hex
//! digits, the row that can revoke it), the expiry in epoch seconds, and HMAC-SHA256,
//! keyed by the query worker's `SHARE_SECRET`, over the project, id and expiry. The
//! signature is checked first, so a forged token costs no lookup; then the row says
//! whether the link was revoked. Changing the secret invalidates every link at once.
//!
//! A dashboard session is what the login form's cookie holds instead of the read token:
//! an opaque random id (`ts_` and 64 hex digits), stored only as its SHA-256, that names
//! the read token it was opened with.
//!
//! An admin session (the project list, and every project's dashboard) is a share token
//! of the scope [`ADMIN_SCOPE`], which no project slug can be, keyed by the admin token
//! itself rather than `SHARE_SECRET`: it needs no row, lasts [`ADMIN_SESSION_S`], and
//! rotating the admin token ends every one of them.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::hash::hex;
use crate::time::format_ms;

/// Longest lifetime a share link may be given, in seconds (one year).
pub const MAX_LIFETIME_S: i64 = 366 * 86_400;

/// The random bytes of a share link's id.
pub const ID_BYTES: usize = 8;

/// The random bytes of a session id.
pub const SESSION_BYTES: usize = 32;

/// How long a dashboard session lasts, in milliseconds (seven days).
pub const SESSION_MS: i64 = 7 * 86_400_000;

/// How long an admin session lasts, in seconds (twelve hours: the admin token opens
/// everything, so its sessions are short).
pub const ADMIN_SESSION_S: i64 = 12 * 3600;

/// The scope admin sessions are signed for: not a valid slug, so no share link of a
/// project is an admin session or the other way round.
pub const ADMIN_SCOPE: &str = "*admin*";

/// An admin session's token: link id `id` (fresh, from [`new_id`]), expiring at
/// `expires_s`, signed with the admin token.
pub fn sign_admin_session(admin_token: &[u8], id: &str, expires_s: i64) -> String {
    sign(admin_token, ADMIN_SCOPE, id, expires_s)
}

/// Whether `token` is an admin session signed with `admin_token` and unexpired at
/// `now_ms`.
pub fn is_admin_session(admin_token: &[u8], token: &str, now_ms: i64) -> bool {
    !admin_token.is_empty() && verify(admin_token, ADMIN_SCOPE, token, now_ms).is_ok()
}

/// Why a share token does not grant access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not of the form `<id>.<expiry>.<64 hex digits>`.
    Malformed,
    /// Well formed, but not signed for this project, id and expiry by this secret.
    BadSignature,
    /// Genuine, and past its expiry.
    Expired,
    /// Genuine, and revoked (or its row is gone).
    Revoked,
}

/// A share token that passed its signature and expiry checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The link's id, to look up whether it was revoked.
    pub id: String,
    /// Epoch seconds.
    pub expires_s: i64,
}

/// A stored share link (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareLink {
    pub id: String,
    pub project: String,
    /// Epoch milliseconds, as the other times.
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl ShareLink {
    /// The admin API's JSON for this link; `status` is `active`, `expired` or `revoked`
    /// at `now_ms`.
    pub fn to_json(&self, now_ms: i64) -> Value {
        let status = if self.revoked_at.is_some() {
            "revoked"
        } else if now_ms >= self.expires_at {
            "expired"
        } else {
            "active"
        };
        json!({
            "id": self.id,
            "created_at": format_ms(self.created_at),
            "expires_at": format_ms(self.expires_at),
            "revoked_at": self.revoked_at.map(format_ms),
            "status": status,
        })
    }
}

/// A new share link's id from random bytes.
pub fn new_id(random: &[u8; ID_BYTES]) -> String {
    format!("sh_{}", hex(random))
}

/// Whether `text` has the shape of a share link's id.
pub fn is_id(text: &str) -> bool {
    text.strip_prefix("sh_").is_some_and(|rest| {
        rest.len() == 2 * ID_BYTES && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A new session id from random bytes; the cookie holds it, D1 its [`session_hash`].
pub fn new_session(random: &[u8; SESSION_BYTES]) -> String {
    format!("ts_{}", hex(random))
}

/// Whether `text` has the shape of a session id (anything else is refused unread).
pub fn is_session(text: &str) -> bool {
    text.strip_prefix("ts_").is_some_and(|rest| {
        rest.len() == 2 * SESSION_BYTES
            && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// What D1 keeps of a session id: its SHA-256 in hex, so a copy of the database opens
/// no dashboard.
pub fn session_hash(session: &str) -> String {
    hex(&Sha256::digest(session.as_bytes()))
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

/// The signed text: a version tag, the project, the id and the expiry, separated by
/// NUL bytes (none of them contains one).
fn message(project: &str, id: &str, expires_s: i64) -> Vec<u8> {
    format!("tally-share-v2\0{project}\0{id}\0{expires_s}").into_bytes()
}

/// The share token of link `id` of `project` that expires at `expires_s` (epoch
/// seconds).
pub fn sign(secret: &[u8], project: &str, id: &str, expires_s: i64) -> String {
    let mac = hmac_sha256(secret, &message(project, id, expires_s));
    format!("{id}.{expires_s}.{}", hex(&mac))
}

/// Checks a share token's signature for `project`, then its expiry at `now_ms`. The
/// signature is checked before the expiry, so a token whose expiry was edited is
/// reported as forged, not as expired. Whether the link was revoked is the caller's to
/// look up, by the id.
///
/// # Errors
///
/// The [`Refusal`] that applies.
pub fn verify(secret: &[u8], project: &str, token: &str, now_ms: i64) -> Result<Verified, Refusal> {
    let mut parts = token.split('.');
    let (Some(id), Some(expiry), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let well_formed = is_id(id)
        && !expiry.is_empty()
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
    let expected = sign(secret, project, id, expires_s);
    // Compare digests of both, so the time taken says nothing about a near miss.
    if Sha256::digest(expected.as_bytes()) != Sha256::digest(token.as_bytes()) {
        return Err(Refusal::BadSignature);
    }
    if now_ms.div_euclid(1000) >= expires_s {
        return Err(Refusal::Expired);
    }
    Ok(Verified {
        id: id.to_owned(),
        expires_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_sessions_are_signed_by_the_admin_token_and_are_no_share_links() {
        let id = new_id(&[7; ID_BYTES]);
        let now_ms = 1_700_000_000_000;
        let expires_s = now_ms / 1000 + ADMIN_SESSION_S;
        let token = sign_admin_session(b"the admin token", &id, expires_s);
        assert!(is_admin_session(b"the admin token", &token, now_ms));
        assert!(!is_admin_session(b"another admin token", &token, now_ms));
        assert!(!is_admin_session(b"", &token, now_ms));
        assert!(!is_admin_session(
            b"the admin token",
            &token,
            expires_s * 1000
        ));
        let edited = token.replace(&expires_s.to_string(), &(expires_s + 1).to_string());
        assert!(!is_admin_session(b"the admin token", &edited, now_ms));
        // A share link of a project, even under the same key, opens no admin session, and
        // an admin session is no share link of any project.
        let link = sign(b"the admin token", "demo", &id, expires_s);
        assert!(!is_admin_session(b"the admin token", &link, now_ms));
        assert!(verify(b"the admin token", "demo", &token, now_ms).is_err());
        assert!(!crate::validate::is_valid_slug(ADMIN_SCOPE));
    }

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

    const ID: &str = "sh_00112233445566ff";

    fn check(token: &str, project: &str, expected: Result<i64, Refusal>) {
        assert_eq!(
            verify(b"secret", project, token, NOW_MS).map(|v| {
                assert_eq!(v.id, ID);
                v.expires_s
            }),
            expected,
            "{token} for {project}"
        );
    }

    #[test]
    fn tokens_open_their_project_until_they_expire() {
        let expires = NOW_MS / 1000 + 60;
        let token = sign(b"secret", "site", ID, expires);
        assert!(token.starts_with(&format!("{ID}.{expires}.")), "{token}");
        check(&token, "site", Ok(expires));
        // Another project, another secret, an edited id, expiry or signature: forged.
        check(&token, "site-2", Err(Refusal::BadSignature));
        assert_eq!(
            verify(b"other", "site", &token, NOW_MS),
            Err(Refusal::BadSignature)
        );
        let later = token.replacen(&expires.to_string(), &(expires + 3600).to_string(), 1);
        check(&later, "site", Err(Refusal::BadSignature));
        let other_id = token.replacen(ID, "sh_00112233445566fe", 1);
        assert_eq!(
            verify(b"secret", "site", &other_id, NOW_MS),
            Err(Refusal::BadSignature),
            "a link's signature names its id"
        );
        let last = token.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &token[..token.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        check(&flipped, "site", Err(Refusal::BadSignature));
        // Expired at the second it names.
        let past = sign(b"secret", "site", ID, NOW_MS / 1000);
        check(&past, "site", Err(Refusal::Expired));
        // The first version's tokens (`<expiry>.<signature>`, keyed by the admin token)
        // open nothing.
        let v1 = format!("{expires}.{}", "0".repeat(64));
        for bad in [
            "",
            ".",
            "..",
            "123",
            "abc.def",
            v1.as_str(),
            &format!("{ID}.{expires}.{}", "A".repeat(64)),
            &format!("{ID}.-5.{}", "0".repeat(64)),
            &format!("{ID}.{}.{}", "9".repeat(13), "0".repeat(64)),
            &format!("sh_0011.{expires}.{}", "0".repeat(64)),
            &format!("{token}.0"),
            &token[..token.len() - 1],
        ] {
            check(bad, "site", Err(Refusal::Malformed));
        }
    }

    #[test]
    fn ids_and_sessions_are_random_hex_with_a_prefix() {
        let id = new_id(&[0xab; ID_BYTES]);
        assert_eq!(id, "sh_abababababababab");
        assert!(is_id(&id));
        assert!(!is_id("sh_ABABABABABABABAB"));
        assert!(!is_id("ar_abababababababab"));
        let session = new_session(&[1; SESSION_BYTES]);
        assert!(is_session(&session), "{session}");
        assert_eq!(session.len(), 3 + 64);
        assert!(!is_session("tr_0101"));
        assert!(
            !is_session(&format!("tr_{}", "01".repeat(32))),
            "a read token is not a session"
        );
        assert_eq!(session_hash(&session).len(), 64);
        assert_ne!(
            session_hash(&session),
            session_hash(&new_session(&[2; SESSION_BYTES]))
        );
    }

    #[test]
    fn links_say_whether_they_still_work() {
        let link = ShareLink {
            id: ID.into(),
            project: "site".into(),
            created_at: 0,
            expires_at: 2_000,
            revoked_at: None,
        };
        assert_eq!(link.to_json(1_999)["status"], "active");
        assert_eq!(link.to_json(2_000)["status"], "expired");
        assert_eq!(link.to_json(0)["revoked_at"], Value::Null);
        let revoked = ShareLink {
            revoked_at: Some(1_000),
            ..link
        };
        assert_eq!(revoked.to_json(0)["status"], "revoked");
        assert_eq!(revoked.to_json(0)["revoked_at"], "1970-01-01T00:00:01.000Z");
    }
}
