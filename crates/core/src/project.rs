//! Projects and their keys: settings, the admin API's input rules, key format and
//! hashing, browser-origin matching and rate-limit tiers (DESIGN §3).
//!
//! Keys are random (the caller passes the bytes), shown once, and stored only as the
//! SHA-256 of their text. A key's prefix (`tw_` + 8 characters) is kept to tell keys apart.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::hash::hex;
use crate::validate::is_valid_slug;

/// Shortest and longest retention a project may set, in days.
pub const RETENTION_DAYS: std::ops::RangeInclusive<u32> = 1..=3660;
/// Most browser origins one project may allow.
pub const MAX_ORIGINS: usize = 100;
/// Random bytes in a key (160 bits).
pub const KEY_BYTES: usize = 20;
/// The KV key under which ingest reports rate-limit bindings it found missing, which
/// the admin view of the query worker's `/v1/health` shows.
pub const MISSING_BINDINGS_KEY: &str = "health:ingest:missing-bindings";
/// Longest key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 120;

/// How many requests one client may make to one project: a Workers rate-limiting
/// binding per tier, since a binding's limit and period are fixed in its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RateLimit {
    /// 10 requests per 10 s per client.
    Strict,
    /// 100 requests per 10 s per client.
    #[default]
    Standard,
    /// 1,000 requests per 10 s per client.
    High,
    /// No limit (for trusted server-side senders and load tests).
    Off,
}

impl RateLimit {
    pub const ALL: [RateLimit; 4] = [Self::Strict, Self::Standard, Self::High, Self::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Standard => "standard",
            Self::High => "high",
            Self::Off => "off",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The rate-limiting binding that enforces this tier, if any. The names must match
    /// `[[ratelimits]]` in `wrangler/ingest.toml` (a tidy test checks).
    pub fn binding(self) -> Option<&'static str> {
        match self {
            Self::Strict => Some("RATE_LIMIT_STRICT"),
            Self::Standard => Some("RATE_LIMIT_STANDARD"),
            Self::High => Some("RATE_LIMIT_HIGH"),
            Self::Off => None,
        }
    }

    /// Requests allowed per period, for messages and documentation.
    pub fn requests(self) -> Option<u32> {
        match self {
            Self::Strict => Some(10),
            Self::Standard => Some(100),
            Self::High => Some(1000),
            Self::Off => None,
        }
    }

    /// The period of every tier, in seconds (one of the two a binding allows).
    pub const PERIOD_S: u32 = 10;
}

/// A project and its settings, as stored and as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub slug: String,
    pub retention_days: u32,
    /// Browser origins allowed to send events (`https://example.com`,
    /// `https://*.example.com` or `*`). Requests without an `Origin` are not browsers'
    /// and are not subject to this list.
    pub allowed_origins: Vec<String>,
    pub rate_limit: RateLimit,
    /// Whether anyone may view the project's dashboard without a token.
    pub public_dashboard: bool,
    /// Whether anyone may fetch the project's badges (`/badge/{p}/...`); off by default,
    /// so a private project's traffic cannot be read from them.
    pub public_badges: bool,
    /// The site domain (Plausible's `data-domain`) under which `/api/event` takes events
    /// without a write key, from this project's allowed origins only; `None` (the
    /// default) refuses keyless events. Plausible's classic script and the older
    /// `plausible-tracker` package cannot carry a key. One project per domain.
    pub plausible_domain: Option<String>,
    /// Epoch milliseconds.
    pub created_at: i64,
}

impl Project {
    /// The admin API's JSON for this project.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "slug": self.slug,
            "retention_days": self.retention_days,
            "allowed_origins": self.allowed_origins,
            "rate_limit": self.rate_limit.as_str(),
            "public_dashboard": self.public_dashboard,
            "public_badges": self.public_badges,
            "plausible_domain": self.plausible_domain,
            "created_at": crate::time::format_ms(self.created_at),
        })
    }

    /// Whether a browser at `origin` may send this project's events.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|a| origin_matches(a, origin))
    }
}

/// What the admin API may set on a project; absent members keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectInput {
    pub slug: Option<String>,
    pub retention_days: Option<u32>,
    pub allowed_origins: Option<Vec<String>>,
    pub rate_limit: Option<String>,
    pub public_dashboard: Option<bool>,
    pub public_badges: Option<bool>,
    /// Absent: unchanged; `null`: keyless events off; a domain: on for that domain.
    #[serde(default, deserialize_with = "present")]
    pub plausible_domain: Option<Option<String>>,
    /// The data shard to place a new project on (issue 16); absent: the least loaded.
    /// Chosen at creation only: the worker refuses a change (moving is another
    /// operation) and a shard it does not bind.
    pub shard: Option<u32>,
}

/// Reads a member that may be `null` as `Some(None)`, so that an absent member (serde's
/// default, `None`) and an explicit `null` differ.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The longest domain name (RFC 1035).
pub const MAX_DOMAIN_LEN: usize = 253;

/// A site domain in canonical form (trimmed, lowercase, without a trailing dot), or
/// `None` if it is not a host name: dot-separated labels of `a-z`, `0-9` and `-`, none
/// empty or starting or ending with `-`, at most [`MAX_DOMAIN_LEN`] characters.
/// Browsers send hosts punycoded, so an internationalized domain is written `xn--...`.
pub fn normalize_domain(domain: &str) -> Option<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = (1..=MAX_DOMAIN_LEN).contains(&domain.len())
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    valid.then_some(domain)
}

impl ProjectInput {
    /// Parses an admin request body.
    ///
    /// # Errors
    ///
    /// An [`Error::Invalid`] naming what is wrong.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        crate::json::from_object(body).map_err(|e| {
            Error::invalid(
                "invalid_project",
                format!(
                    "project settings must be a JSON object with slug, retention_days, \
                     allowed_origins, rate_limit, public_dashboard, public_badges, \
                     plausible_domain and shard: {e}"
                ),
            )
        })
    }

    /// A new project from this input: `slug` is required, the rest has defaults.
    ///
    /// # Errors
    ///
    /// An [`Error::Invalid`] naming the setting at fault.
    pub fn create(self, now_ms: i64) -> Result<Project, Error> {
        let slug = self.slug.clone().ok_or_else(|| {
            Error::invalid(
                "invalid_project",
                "slug is required, e.g. {\"slug\": \"my-site\"}",
            )
        })?;
        if !is_valid_slug(&slug) {
            return Err(Error::invalid(
                "invalid_project",
                format!("slug {slug:?} must be 1 to 64 characters of a-z, 0-9 and -"),
            ));
        }
        let base = Project {
            slug,
            retention_days: 90,
            allowed_origins: Vec::new(),
            rate_limit: RateLimit::default(),
            public_dashboard: false,
            public_badges: false,
            plausible_domain: None,
            created_at: now_ms,
        };
        self.apply(base)
    }

    /// `project` with this input's settings applied. A slug, if given, must be the
    /// project's own (slugs never change: stored rows refer to them).
    ///
    /// # Errors
    ///
    /// An [`Error::Invalid`] naming the setting at fault.
    pub fn apply(self, mut project: Project) -> Result<Project, Error> {
        if let Some(slug) = &self.slug
            && *slug != project.slug
        {
            return Err(Error::invalid(
                "invalid_project",
                "a project's slug cannot change",
            ));
        }
        if let Some(days) = self.retention_days {
            if !RETENTION_DAYS.contains(&days) {
                return Err(Error::invalid(
                    "invalid_project",
                    format!(
                        "retention_days must be from {} to {}",
                        RETENTION_DAYS.start(),
                        RETENTION_DAYS.end()
                    ),
                ));
            }
            project.retention_days = days;
        }
        if let Some(origins) = self.allowed_origins {
            if origins.len() > MAX_ORIGINS {
                return Err(Error::invalid(
                    "invalid_project",
                    format!("allow at most {MAX_ORIGINS} origins"),
                ));
            }
            let mut normalized = Vec::with_capacity(origins.len());
            for origin in origins {
                let o = normalize_origin(&origin).ok_or_else(|| {
                    Error::invalid(
                        "invalid_project",
                        format!(
                            "allowed origin {origin:?} must be \"*\" or a scheme and host \
                             such as \"https://example.com\" or \"https://*.example.com\", \
                             without a path"
                        ),
                    )
                })?;
                if !normalized.contains(&o) {
                    normalized.push(o);
                }
            }
            project.allowed_origins = normalized;
        }
        if let Some(tier) = self.rate_limit {
            project.rate_limit = RateLimit::parse(&tier).ok_or_else(|| {
                Error::invalid(
                    "invalid_project",
                    format!("rate_limit {tier:?} must be one of strict, standard, high, off"),
                )
            })?;
        }
        if let Some(public) = self.public_dashboard {
            // Badges follow the dashboard when it opens or closes, unless this input
            // says otherwise: a public dashboard shows what the badges show, and closing
            // a dashboard must not leave its traffic readable through them.
            if public != project.public_dashboard {
                project.public_badges = public;
            }
            project.public_dashboard = public;
        }
        if let Some(badges) = self.public_badges {
            project.public_badges = badges;
        }
        if let Some(domain) = self.plausible_domain {
            project.plausible_domain = match domain {
                None => None,
                Some(domain) => Some(normalize_domain(&domain).ok_or_else(|| {
                    Error::invalid(
                        "invalid_project",
                        format!(
                            "plausible_domain {domain:?} must be a site's domain such as \
                             \"shop.example.com\" (Plausible's data-domain), or null"
                        ),
                    )
                })?),
            };
        }
        Ok(project)
    }
}

/// An origin pattern in canonical form (lowercase, no trailing slash), or `None` if it
/// is not `*` or `scheme://host[:port]` with an optional leading `*.` on the host.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if origin == "*" {
        return Some(origin);
    }
    let (scheme, rest) = origin.split_once("://")?;
    let valid_scheme = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || port.is_empty() => (name, Some(port)),
        _ => (host, None),
    };
    let valid_host = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    let valid_port = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (valid_scheme && valid_host && valid_port).then_some(origin)
}

/// Whether the request origin `origin` matches the allowed pattern `allowed`.
fn origin_matches(allowed: &str, origin: &str) -> bool {
    if allowed == "*" {
        return true;
    }
    let origin = origin.to_ascii_lowercase();
    if let Some((scheme, host)) = allowed.split_once("://*.") {
        // `https://*.example.com` matches subdomains only, at any depth.
        return origin
            .strip_prefix(scheme)
            .and_then(|o| o.strip_prefix("://"))
            .is_some_and(|o| o.ends_with(&format!(".{host}")));
    }
    allowed == origin
}

/// Whether a key lets its holder send events or read a project's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// A write key for ingest; may ship in a browser or plugin.
    Write,
    /// A read token for the query API; secret.
    Read,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Read => "read",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "write" => Some(Self::Write),
            "read" => Some(Self::Read),
            _ => None,
        }
    }

    /// The text every key of this kind starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Write => "tw_",
            Self::Read => "tr_",
        }
    }
}

/// A key as stored: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub project: String,
    pub kind: KeyKind,
    pub name: Option<String>,
    /// The first characters of the key, to tell keys apart in lists.
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    /// The admin API's JSON for this key (never the secret).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "kind": self.kind.as_str(),
            "name": self.name,
            "prefix": self.prefix,
            "created_at": crate::time::format_ms(self.created_at),
            "revoked_at": self.revoked_at.map(crate::time::format_ms),
        })
    }
}

/// A freshly made key: its text (shown once), the hash to store and its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub secret: String,
    pub hash: String,
    pub prefix: String,
}

/// Makes a key of `kind` from random bytes.
pub fn new_key(kind: KeyKind, random: &[u8; KEY_BYTES]) -> NewKey {
    let secret = format!("{}{}", kind.prefix(), hex(random));
    NewKey {
        hash: key_hash(&secret),
        prefix: secret[..kind.prefix().len() + 8].to_owned(),
        secret,
    }
}

/// The stored form of a key: SHA-256 of its text, as 64 hex digits.
pub fn key_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `text` has the shape of a key of `kind`; anything else is rejected before any
/// lookup.
pub fn is_key_shaped(kind: KeyKind, text: &str) -> bool {
    text.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == 2 * KEY_BYTES && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Parses a key-creation body: `{"kind": "write"|"read", "name": "..."}`.
///
/// # Errors
///
/// An [`Error::Invalid`] naming what is wrong.
pub fn parse_key_request(body: &[u8]) -> Result<(KeyKind, Option<String>), Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        kind: Option<String>,
        name: Option<String>,
    }
    let input: Input = crate::json::from_object(body).map_err(|e| {
        Error::invalid(
            "invalid_key",
            format!("send {{\"kind\": \"write\" or \"read\", \"name\": \"...\"}}: {e}"),
        )
    })?;
    let kind = match input.kind.as_deref() {
        None => KeyKind::Write,
        Some(k) => KeyKind::parse(k).ok_or_else(|| {
            Error::invalid(
                "invalid_key",
                format!("kind {k:?} must be \"write\" or \"read\""),
            )
        })?,
    };
    let name = input
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_KEY_NAME_CHARS)
    {
        return Err(Error::invalid(
            "invalid_key",
            format!("name is longer than {MAX_KEY_NAME_CHARS} characters"),
        ));
    }
    Ok((kind, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(origins: &[&str]) -> Project {
        ProjectInput {
            slug: Some("site".into()),
            allowed_origins: Some(origins.iter().map(|s| s.to_string()).collect()),
            ..ProjectInput::default()
        }
        .create(0)
        .unwrap()
    }

    #[test]
    fn origins_match_exactly_by_wildcard_or_by_subdomain() {
        let p = project(&[
            "https://Example.com/",
            "https://*.shop.io",
            "http://localhost:3000",
        ]);
        assert_eq!(
            p.allowed_origins,
            [
                "https://example.com",
                "https://*.shop.io",
                "http://localhost:3000"
            ]
        );
        assert!(p.allows_origin("https://example.com"));
        assert!(p.allows_origin("https://EXAMPLE.com"));
        assert!(!p.allows_origin("http://example.com"));
        assert!(!p.allows_origin("https://example.com.evil.net"));
        assert!(p.allows_origin("https://a.shop.io"));
        assert!(p.allows_origin("https://a.b.shop.io"));
        assert!(!p.allows_origin("https://shop.io"));
        assert!(!p.allows_origin("https://evilshop.io"));
        assert!(!p.allows_origin("http://a.shop.io"));
        assert!(p.allows_origin("http://localhost:3000"));
        assert!(!p.allows_origin("http://localhost:3001"));
        assert!(project(&["*"]).allows_origin("https://anything.example"));
        assert!(!project(&[]).allows_origin("https://example.com"));
    }

    #[test]
    fn bad_origins_and_settings_are_named() {
        for bad in [
            "example.com",
            "https://example.com/path",
            "https://",
            "*.example.com",
        ] {
            let e = ProjectInput {
                slug: Some("x".into()),
                allowed_origins: Some(vec![bad.into()]),
                ..ProjectInput::default()
            }
            .create(0)
            .unwrap_err();
            assert!(e.to_string().contains("allowed origin"), "{bad}: {}", e);
        }
        let e = ProjectInput::parse(br#"{"slug":"x","retention_days":0}"#)
            .unwrap()
            .create(0)
            .unwrap_err();
        assert!(e.to_string().contains("retention_days"), "{}", e);
        let e = ProjectInput::parse(br#"{"slug":"x","rate_limit":"fast"}"#)
            .unwrap()
            .create(0)
            .unwrap_err();
        assert!(
            e.to_string().contains("strict, standard, high, off"),
            "{}",
            e.to_string()
        );
        let e = ProjectInput::parse(br#"{"slug":"Bad Slug"}"#)
            .unwrap()
            .create(0)
            .unwrap_err();
        assert!(e.to_string().contains("a-z, 0-9"), "{}", e);
        let e = ProjectInput::parse(br#"{"slug":"x","colour":"red"}"#).unwrap_err();
        assert!(e.to_string().contains("colour"), "{}", e);
        // Settings are a JSON object: an empty body changes nothing, so it is refused.
        for body in ["", "[]", "[null]", "null"] {
            let e = ProjectInput::parse(body.as_bytes()).unwrap_err();
            assert!(
                e.to_string().contains("must be a JSON object"),
                "{body:?}: {e}"
            );
        }
        let e = ProjectInput::parse(b"{}").unwrap().create(0).unwrap_err();
        assert!(e.to_string().contains("slug is required"), "{}", e);
    }

    #[test]
    fn updates_keep_what_they_do_not_name() {
        let p = project(&["https://a.example"]);
        let q = ProjectInput::parse(br#"{"rate_limit":"off"}"#)
            .unwrap()
            .apply(p.clone())
            .unwrap();
        assert_eq!(q.rate_limit, RateLimit::Off);
        assert_eq!(q.allowed_origins, p.allowed_origins);
        assert_eq!(q.retention_days, 90);
        assert!(!q.public_dashboard, "dashboards are private by default");
        let r = ProjectInput::parse(br#"{"public_dashboard":true}"#)
            .unwrap()
            .apply(q.clone())
            .unwrap();
        assert!(r.public_dashboard);
        assert_eq!(r.to_json()["public_dashboard"], true);
        assert_eq!(r.rate_limit, RateLimit::Off);
        assert!(ProjectInput::parse(br#"{"public_dashboard":"yes"}"#).is_err());
        let e = ProjectInput::parse(br#"{"slug":"other"}"#)
            .unwrap()
            .apply(p)
            .unwrap_err();
        assert!(e.to_string().contains("cannot change"));
    }

    #[test]
    fn a_plausible_domain_is_off_by_default_set_normalized_and_cleared_by_null() {
        let created = ProjectInput::parse(br#"{"slug":"s"}"#)
            .unwrap()
            .create(0)
            .unwrap();
        assert_eq!(
            created.plausible_domain, None,
            "keyless events are off by default"
        );
        assert_eq!(created.to_json()["plausible_domain"], Value::Null);
        let set = |p: Project, body: &str| {
            ProjectInput::parse(body.as_bytes())
                .and_then(|input| input.apply(p))
                .map(|p| p.plausible_domain)
        };
        let on = set(
            created.clone(),
            r#"{"plausible_domain":" Shop.Example.COM. "}"#,
        )
        .unwrap();
        assert_eq!(on.as_deref(), Some("shop.example.com"));
        let with_domain = Project {
            plausible_domain: on,
            ..created.clone()
        };
        assert_eq!(
            set(with_domain.clone(), r#"{"retention_days":30}"#).unwrap(),
            with_domain.plausible_domain,
            "an absent member keeps the domain"
        );
        assert_eq!(
            set(with_domain, r#"{"plausible_domain":null}"#).unwrap(),
            None
        );
        for bad in [
            "\"\"",
            "\"https://shop.example\"",
            "\"shop..example\"",
            "\"-shop.example\"",
            "\"shop.example/blog\"",
            "\"a.b,c.d\"",
            "true",
        ] {
            let e = set(created.clone(), &format!(r#"{{"plausible_domain":{bad}}}"#)).unwrap_err();
            assert!(e.to_string().contains("plausible_domain"), "{bad}: {e}");
        }
        assert_eq!(normalize_domain(&"a".repeat(64)), None);
        let longest_label = format!("{}.example", "a".repeat(63));
        assert_eq!(normalize_domain(&longest_label), Some(longest_label));
        assert_eq!(
            normalize_domain("xn--bcher-kva.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
    }

    #[test]
    fn badges_are_private_until_opted_in_and_follow_the_dashboard() {
        let check = |before: (bool, bool), body: &str, after: (bool, bool)| {
            let p = Project {
                public_dashboard: before.0,
                public_badges: before.1,
                ..project(&[])
            };
            let q = ProjectInput::parse(body.as_bytes())
                .unwrap()
                .apply(p)
                .unwrap();
            assert_eq!((q.public_dashboard, q.public_badges), after, "{body}");
        };
        let created = ProjectInput::parse(br#"{"slug":"x"}"#)
            .unwrap()
            .create(0)
            .unwrap();
        assert!(!created.public_badges, "badges are off by default");
        assert_eq!(created.to_json()["public_badges"], false);
        // Opting in (or out) alone.
        check((false, false), r#"{"public_badges":true}"#, (false, true));
        check((false, true), r#"{"public_badges":false}"#, (false, false));
        // Opening the dashboard opens the badges; closing it closes them.
        check((false, false), r#"{"public_dashboard":true}"#, (true, true));
        check(
            (true, true),
            r#"{"public_dashboard":false}"#,
            (false, false),
        );
        // Unless the same input says otherwise, or the dashboard does not change.
        check(
            (false, false),
            r#"{"public_dashboard":true,"public_badges":false}"#,
            (true, false),
        );
        check(
            (false, true),
            r#"{"public_dashboard":false}"#,
            (false, true),
        );
        let public = ProjectInput::parse(br#"{"slug":"x","public_dashboard":true}"#)
            .unwrap()
            .create(0)
            .unwrap();
        assert!(public.public_badges, "a public project's badges are public");
        assert!(ProjectInput::parse(br#"{"public_badges":1}"#).is_err());
    }

    #[test]
    fn keys_have_a_kind_prefix_and_are_stored_hashed() {
        let k = new_key(KeyKind::Write, &[0xab; KEY_BYTES]);
        assert_eq!(k.secret, format!("tw_{}", "ab".repeat(KEY_BYTES)));
        assert_eq!(k.prefix, "tw_abababab");
        assert_eq!(k.hash, key_hash(&k.secret));
        assert_ne!(k.hash, new_key(KeyKind::Read, &[0xab; KEY_BYTES]).hash);
        assert!(is_key_shaped(KeyKind::Write, &k.secret));
        assert!(!is_key_shaped(KeyKind::Read, &k.secret));
        assert!(!is_key_shaped(KeyKind::Write, "tw_abc"));
        assert!(!is_key_shaped(KeyKind::Write, &k.secret.to_uppercase()));
        // SHA-256("tw_") computed independently with Python's hashlib.
        assert_eq!(
            key_hash("tw_"),
            "a0980a072d54c17b01f174d98d131b28e2f47b54a313ec879fc124584c72945e"
        );
    }

    #[test]
    fn key_requests_default_to_write_keys() {
        assert_eq!(parse_key_request(b"{}").unwrap(), (KeyKind::Write, None));
        // The body is required, as the API's document says: an empty one or a JSON
        // array of the fields is a mistake, not a request for a write key.
        for body in ["", " ", "[null, null]", "null"] {
            let e = parse_key_request(body.as_bytes()).unwrap_err();
            assert!(e.to_string().contains("send {\"kind\""), "{body:?}: {e}");
        }
        assert_eq!(
            parse_key_request(br#"{"kind":"read","name":" CI "}"#).unwrap(),
            (KeyKind::Read, Some("CI".into()))
        );
        assert!(parse_key_request(br#"{"kind":"admin"}"#).is_err());
        assert!(parse_key_request(br#"{"kind":"write","scope":"x"}"#).is_err());
    }

    #[test]
    fn every_tier_round_trips_and_only_off_has_no_binding() {
        for t in RateLimit::ALL {
            assert_eq!(RateLimit::parse(t.as_str()), Some(t));
            assert_eq!(t.binding().is_none(), t == RateLimit::Off);
            assert_eq!(t.requests().is_none(), t == RateLimit::Off);
        }
    }
}
