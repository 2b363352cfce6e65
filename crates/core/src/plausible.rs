//! The Plausible Events API (`POST /api/event`) read as a Tally [`RawEvent`], and the
//! user-agent filter that keeps crawlers, monitors and scripts out of pageview counts.
//!
//! Plausible's tracker script and its Events API send one JSON object per event
//! (<https://plausible.io/docs/events-api>); the script uses one-letter field names
//! (`n`, `u`, `d`, `r`, `m`, `h`, ...), the documented API the long ones. [`parse`]
//! accepts both and maps the event onto Tally's columns: the page path becomes the
//! `route`, UTM parameters and the referrer become `source`, `medium`, `campaign`,
//! `term` and `content`,
//! custom properties, revenue and a non-interactive flag go into `metadata`. The caller
//! still hashes a visitor id, sets the project and runs [`crate::validate()`].

use serde_json::{Map, Number, Value};
use url::Url;

use crate::Error;
use crate::event::RawEvent;
use crate::time::json_kind;

/// What a Plausible request says, mapped onto Tally's event.
#[derive(Debug, Clone)]
pub struct PageEvent {
    /// The `domain` (`d`) field, trimmed: the site the event belongs to. Plausible
    /// allows a comma-separated list (one event recorded for several sites); this is
    /// the first entry.
    pub domain: String,
    /// The page URL's host, lowercase and without a leading `www.`, as Plausible's
    /// hostname. It is not stored in the event; the caller may use it, for example to
    /// ignore `localhost` or hosts that are not the project's.
    pub host: String,
    /// `name`, `route`, `source`, `medium`, `campaign`, `term`, `content` and `metadata`
    /// filled in; every
    /// other field is `None`, `project` included.
    pub raw: RawEvent,
}

/// A body member under its long name, then the other names Plausible accepts for it.
/// The first name present with a non-null value is used, so the long name wins.
struct Field(&'static [&'static str]);

const NAME: Field = Field(&["name", "n"]);
const URL: Field = Field(&["url", "u"]);
const DOMAIN: Field = Field(&["domain", "d"]);
const REFERRER: Field = Field(&["referrer", "r"]);
const PROPS: Field = Field(&["props", "meta", "p", "m"]);
const REVENUE: Field = Field(&["revenue", "$"]);
const INTERACTIVE: Field = Field(&["interactive", "i"]);
const HASH_MODE: Field = Field(&["hashMode", "h"]);

impl Field {
    fn name(&self) -> &'static str {
        self.0[0]
    }

    /// The names for messages: `props (meta, p, m)`.
    fn label(&self) -> String {
        format!("{} ({})", self.0[0], self.0[1..].join(", "))
    }

    /// Removes the field from the body and returns its value; null counts as absent.
    fn take(&self, body: &mut Map<String, Value>) -> Option<Value> {
        self.0
            .iter()
            .find_map(|name| body.remove(*name).filter(|v| !v.is_null()))
    }

    /// A `missing_field` error naming this field.
    fn missing(&self, hint: &str) -> Error {
        Error::invalid(
            "missing_field",
            format!("{} is required; {hint}", self.label()),
        )
        .at(self.name())
    }

    /// An `invalid_event` error naming this field: `{label} must be {expected}, not ...`.
    fn invalid(&self, expected: &str, got: &Value) -> Error {
        Error::invalid(
            "invalid_event",
            format!(
                "{} must be {expected}, not {}",
                self.label(),
                json_kind(got)
            ),
        )
        .at(self.name())
    }

    /// A string value, or an `invalid_event` answer for any other JSON type.
    fn string(&self, value: Value) -> Result<String, Error> {
        match value {
            Value::String(s) => Ok(s),
            other => Err(self.invalid("a string", &other)),
        }
    }
}

const EXAMPLE: &str =
    r#"{"name": "pageview", "url": "https://example.com/", "domain": "example.com"}"#;

/// Reads the body of a Plausible `POST /api/event` request.
///
/// # Errors
///
/// An [`Error::Invalid`] saying what to fix: `malformed_json` when the body is not JSON,
/// `missing_field` when `name`, `url` or `domain` is absent or empty, `invalid_event`
/// for a body that is not an object or a field of the wrong type. Field errors carry a
/// `field` with the field's long name.
pub fn parse(body: &[u8]) -> Result<PageEvent, Error> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Error::invalid(
            "malformed_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let mut body = match value {
        Value::Object(map) => map,
        other => {
            return Err(Error::invalid(
                "invalid_event",
                format!(
                    "the request body must be a JSON object such as {EXAMPLE}, not {}",
                    json_kind(&other)
                ),
            ));
        }
    };

    let name_hint = r#"send the event's name, such as "pageview""#;
    let name = match NAME.take(&mut body) {
        None => return Err(NAME.missing(name_hint)),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(NAME.missing(name_hint)),
        Some(Value::String(s)) => s,
        // Plausible accepts whole numbers as names (its 404 tracking relies on that).
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(other) => return Err(NAME.invalid("a string", &other)),
    };

    let domain_hint = r#"send the site's domain as registered, such as "example.com""#;
    let domain = match DOMAIN.take(&mut body) {
        None => return Err(DOMAIN.missing(domain_hint)),
        Some(value) => DOMAIN.string(value)?,
    };
    let domain = domain
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if domain.is_empty() {
        return Err(DOMAIN.missing(domain_hint));
    }

    let url_hint = "send the page's absolute URL, such as https://example.com/blog";
    let url = match URL.take(&mut body) {
        None => return Err(URL.missing(url_hint)),
        Some(value) => URL.string(value)?,
    };
    if url.trim().is_empty() {
        return Err(URL.missing(url_hint));
    }
    let url = page_url(&url)?;
    let host = site_host(url.host_str().unwrap_or_default());

    let referrer = match REFERRER.take(&mut body) {
        None => None,
        Some(value) => Some(REFERRER.string(value)?),
    };
    let hash_mode = match HASH_MODE.take(&mut body) {
        None => false,
        Some(value) => {
            flag(&value).ok_or_else(|| HASH_MODE.invalid("1, 0, true or false", &value))?
        }
    };
    let props = match PROPS.take(&mut body) {
        None => Map::new(),
        Some(value) => props(value)?,
    };
    let revenue = REVENUE.take(&mut body).map(revenue).transpose()?;
    let interactive = match INTERACTIVE.take(&mut body) {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(other) => return Err(INTERACTIVE.invalid("true or false", &other)),
    };

    // The path only: query strings carry tokens, emails and ids, and Plausible's
    // pathname leaves them out too. Hash-routed sites (`h: 1`) route on the fragment,
    // so it is appended as `/#/settings`, again without its own query string.
    let mut route = match url.path() {
        "" => "/".to_owned(),
        path => path.to_owned(),
    };
    if hash_mode && let Some(fragment) = url.fragment() {
        let fragment = fragment.split('?').next().unwrap_or_default();
        if !fragment.is_empty() {
            route.push('#');
            route.push_str(fragment);
        }
    }

    // Tagged links win over the referrer, in Plausible's order.
    let source = ["utm_source", "source", "ref"]
        .iter()
        .find_map(|key| query_param(&url, key))
        .or_else(|| referrer.as_deref().and_then(|r| referrer_source(r, &host)));

    // Metadata holds what has no column of its own. The page URL and the referrer URL
    // stay out of it: their query strings and paths can identify a visitor, and the
    // parts Tally needs (path, UTM parameters, referring site) are already columns.
    // The page's host is left out as well: it is almost always the project's own site,
    // so storing it on every pageview would cost bytes for nothing; it is returned in
    // `PageEvent::host` for the caller to check instead.
    let mut metadata = Map::new();
    for (key, value) in props {
        // Plausible drops empty properties; they carry nothing worth a filter.
        let blank = match &value {
            Value::Null => true,
            Value::String(s) => s.trim().is_empty(),
            _ => false,
        };
        if !key.trim().is_empty() && !blank {
            metadata.insert(key, value);
        }
    }
    // The request's own fields win over custom properties of the same name.
    if let Some(revenue) = revenue {
        metadata.insert("revenue".into(), revenue);
    }
    if interactive == Some(false) {
        metadata.insert("interactive".into(), Value::Bool(false));
    }

    let raw = RawEvent {
        name: Some(name),
        route: Some(route),
        source,
        medium: query_param(&url, "utm_medium"),
        campaign: query_param(&url, "utm_campaign"),
        term: query_param(&url, "utm_term"),
        content: query_param(&url, "utm_content"),
        metadata: (!metadata.is_empty()).then_some(Value::Object(metadata)),
        ..RawEvent::default()
    };
    Ok(PageEvent { domain, host, raw })
}

/// Parses the page URL: absolute, with a host. Besides http(s), Plausible's docs tell
/// mobile apps to send made-up URLs such as `app://localhost/login`, so any scheme with
/// a host is accepted; `data:`, `javascript:` and `mailto:` URLs have none.
fn page_url(text: &str) -> Result<Url, Error> {
    let invalid = |why: String| {
        Error::invalid(
            "invalid_event",
            format!(
                "{} must be the page's absolute URL, such as https://example.com/blog \
                 (apps may send app://localhost/screen); {why}",
                URL.label()
            ),
        )
        .at(URL.name())
    };
    let url = Url::parse(text).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => invalid("this one has no scheme".into()),
        e => invalid(format!("this one does not parse: {e}")),
    })?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("a {}: URL has no host", url.scheme())));
    }
    Ok(url)
}

/// A host as Plausible compares and shows it: lowercase, without a leading `www.`.
fn site_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.strip_prefix("www.") {
        Some(rest) => rest.to_owned(),
        None => host,
    }
}

/// The first non-empty value of a query parameter, percent-decoded.
fn query_param(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// The referring site, or `None` for internal navigation (the page's own host) and for
/// referrers that are not URLs with a host (browsers send all sorts of things).
fn referrer_source(referrer: &str, page_host: &str) -> Option<String> {
    let url = Url::parse(referrer.trim()).ok()?;
    let host = site_host(url.host_str()?);
    (!host.is_empty() && host != page_host).then_some(host)
}

/// The hash-mode flag: the script sends `1`; `true`, `0` and `false` are accepted too.
fn flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An object, given as JSON or as a string holding JSON (the script sends `m` as
/// `JSON.stringify(props)`); the value back when it is neither.
fn object_or_json_string(value: Value) -> Result<Map<String, Value>, Value> {
    match value {
        Value::Object(map) => Ok(map),
        Value::String(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Value::String(text)),
        },
        other => Err(other),
    }
}

/// Custom properties.
fn props(value: Value) -> Result<Map<String, Value>, Error> {
    object_or_json_string(value).map_err(|value| {
        PROPS.invalid(
            r#"a JSON object or a string holding one, such as {"plan": "pro"}"#,
            &value,
        )
    })
}

/// Revenue as `{"currency": "EUR", "amount": 12.5}`: the currency an ISO 4217 code
/// (uppercased), the amount a number or a string holding one (kept as that number).
fn revenue(value: Value) -> Result<Value, Error> {
    let invalid = || {
        Error::invalid(
            "invalid_event",
            format!(
                r#"{} must be an object such as {{"currency": "EUR", "amount": 12.5}} (or a string holding one): currency a 3-letter ISO 4217 code, amount a number or a string holding one"#,
                REVENUE.label()
            ),
        )
        .at(REVENUE.name())
    };
    let map = object_or_json_string(value).map_err(|_| invalid())?;
    let currency = match map.get("currency") {
        Some(Value::String(c)) => crate::revenue::currency(c).ok_or_else(invalid)?,
        _ => return Err(invalid()),
    };
    let amount = match map.get("amount") {
        Some(Value::Number(n)) => n.clone(),
        Some(Value::String(s)) => {
            serde_json::from_str::<Number>(s.trim()).map_err(|_| invalid())?
        }
        _ => return Err(invalid()),
    };
    // Summed in thousandths (`crate::revenue`): an amount past its range is refused
    // here, where the sender hears why, rather than stored and never counted.
    if amount
        .as_f64()
        .and_then(crate::revenue::thousandths)
        .is_none()
    {
        return Err(Error::invalid(
            "invalid_event",
            format!(
                "{} amount must be a number from 0 to 1000000000000 (summed to three decimals)",
                REVENUE.label()
            ),
        )
        .at(REVENUE.name()));
    }
    let mut revenue = Map::new();
    revenue.insert("currency".into(), Value::String(currency));
    revenue.insert("amount".into(), Value::Number(amount));
    Ok(Value::Object(revenue))
}

/// Lowercase substrings of user agents that belong to crawlers, link previewers,
/// uptime and performance monitors, headless browsers and HTTP libraries rather than to
/// people. Drawn from the user agents search engines, social networks and monitoring
/// services document, the defaults of common HTTP clients, and the patterns of the
/// `isbot` and Matomo device-detector lists; kept to markers that no mainstream
/// desktop or mobile browser sends.
const BOT_MARKERS: &[&str] = &[
    // Crawlers and AI fetchers: Googlebot, bingbot, AhrefsBot, GPTBot, Bytespider, ...
    "bot",
    "crawl",
    "spider",
    "slurp",
    "mediapartners-google",
    "google-inspectiontool",
    "googleother",
    "chatgpt-user",
    "feedfetcher",
    // Link previews in chats and social networks.
    "facebookexternalhit",
    "facebookcatalog",
    "preview",
    "embedly",
    "whatsapp",
    "vkshare",
    // Headless browsers, page-speed tools and prerenderers.
    "headless",
    "phantomjs",
    "lighthouse",
    "pagespeed",
    "gtmetrix",
    "ptst/",
    "prerender",
    // Uptime and synthetic monitoring.
    "pingdom",
    "uptime",
    "monitor",
    "statuscake",
    "site24x7",
    "synthetics",
    "checkly",
    // HTTP libraries and command-line clients with their default user agents.
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "scrapy",
    "go-http-client",
    "java/",
    "apache-httpclient",
    "okhttp",
    "axios/",
    "node-fetch",
    "undici",
    "libwww-perl",
    "guzzlehttp",
    "postmanruntime",
    "insomnia/",
    "httpie/",
];

/// Lowercase substrings removed before matching because they contain a marker yet name
/// real devices: Cubot phones put `CUBOT` in their browsers' user agents.
const NOT_BOT_MARKERS: &[&str] = &["cubot"];

/// Whether a request's user agent is a bot rather than a person: empty, or containing
/// one of the markers above, case-insensitively.
pub fn is_bot(user_agent: &str) -> bool {
    let mut ua = user_agent.trim().to_ascii_lowercase();
    if ua.is_empty() {
        return true;
    }
    for benign in NOT_BOT_MARKERS {
        if ua.contains(benign) {
            ua = ua.replace(benign, "");
        }
    }
    BOT_MARKERS.iter().any(|marker| ua.contains(marker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(body: Value) -> PageEvent {
        parse(body.to_string().as_bytes()).unwrap_or_else(|e| panic!("{body}: {e:?}"))
    }

    fn page(url: &str) -> Value {
        json!({"n": "pageview", "u": url, "d": "example.com"})
    }

    fn with(mut body: Value, key: &str, value: Value) -> Value {
        body[key] = value;
        body
    }

    fn metadata(event: &PageEvent) -> Value {
        event.raw.metadata.clone().unwrap_or(Value::Null)
    }

    /// Asserts a 400 with `code`, naming `field` in the `field` member and in the
    /// message along with `fragment`.
    fn rejected(body: &[u8], code: &str, field: Option<&str>, fragment: &str) {
        let e = parse(body).expect_err("should be rejected");
        let Error::Invalid {
            code: got,
            message,
            field: at,
        } = e
        else {
            panic!("{e:?} is not an input error");
        };
        assert_eq!(got, code, "{message}");
        assert_eq!(at, field, "{message}");
        if let Some(field) = field {
            assert!(message.starts_with(field), "{message:?} names {field}");
        }
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    }

    fn rejected_json(body: Value, code: &str, field: &str, fragment: &str) {
        rejected(body.to_string().as_bytes(), code, Some(field), fragment);
    }

    #[test]
    fn short_and_long_names_read_the_same() {
        let short = ok(
            json!({"n": "signup", "u": "https://example.com/join?utm_source=hn",
            "d": "example.com", "r": "https://news.ycombinator.com/", "p": {"plan": "pro"},
            "$": {"currency": "EUR", "amount": 9}, "i": false}),
        );
        let long = ok(
            json!({"name": "signup", "url": "https://example.com/join?utm_source=hn",
            "domain": "example.com", "referrer": "https://news.ycombinator.com/",
            "props": {"plan": "pro"}, "revenue": {"currency": "EUR", "amount": 9},
            "interactive": false}),
        );
        for e in [&short, &long] {
            assert_eq!(e.domain, "example.com");
            assert_eq!(e.host, "example.com");
            assert_eq!(e.raw.name.as_deref(), Some("signup"));
            assert_eq!(e.raw.route.as_deref(), Some("/join"));
            assert_eq!(e.raw.source.as_deref(), Some("hn"));
            assert_eq!(
                metadata(e),
                json!({"plan": "pro", "revenue": {"currency": "EUR", "amount": 9},
                    "interactive": false})
            );
            assert_eq!(e.raw.project, None);
            assert_eq!(e.raw.user, None);
        }
    }

    #[test]
    fn long_names_win_over_short_ones() {
        let e = ok(
            json!({"name": "long", "n": "short", "url": "https://a.example/long",
            "u": "https://a.example/short", "domain": "long.example", "d": "short.example",
            "props": {"from": "props"}, "m": "{\"from\": \"m\"}"}),
        );
        assert_eq!(e.raw.name.as_deref(), Some("long"));
        assert_eq!(e.raw.route.as_deref(), Some("/long"));
        assert_eq!(e.domain, "long.example");
        assert_eq!(metadata(&e), json!({"from": "props"}));
        // A null long field counts as absent, so the short one is used.
        let e = ok(json!({"name": null, "n": "short", "u": "https://a.example/", "d": "a"}));
        assert_eq!(e.raw.name.as_deref(), Some("short"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let e = ok(
            json!({"n": "pageview", "u": "https://example.com/", "d": "example.com",
            "w": 1666, "screen_width": 1666, "v": 3}),
        );
        assert_eq!(e.raw.route.as_deref(), Some("/"));
        assert_eq!(e.raw.metadata, None, "nothing to put in metadata");
    }

    #[test]
    fn domain_is_the_first_of_a_list_trimmed() {
        let e = ok(json!({"n": "pageview", "u": "https://example.com/",
            "d": " example.com , rollup.example"}));
        assert_eq!(e.domain, "example.com");
        rejected_json(
            json!({"n": "pageview", "u": "https://example.com/", "d": " , b"}),
            "missing_field",
            "domain",
            "domain (d) is required",
        );
    }

    #[test]
    fn props_as_an_object_or_a_json_string() {
        let object = ok(with(
            page("https://example.com/"),
            "p",
            json!({"plan": "pro", "seats": 3,
            "trial": true, "tags": ["a", "b"], "nested": {"k": 1}}),
        ));
        let string = ok(with(
            page("https://example.com/"),
            "m",
            json!(r#"{"plan":"pro","seats":3,"trial":true,"tags":["a","b"],"nested":{"k":1}}"#),
        ));
        let expected = json!({"plan": "pro", "seats": 3, "trial": true, "tags": ["a", "b"],
            "nested": {"k": 1}});
        assert_eq!(metadata(&object), expected);
        assert_eq!(metadata(&string), expected);
        // Empty and null values and blank keys are dropped, as Plausible drops them.
        let sparse = ok(with(
            page("https://example.com/"),
            "props",
            json!({"a": "", "b": null, "c": " ", " ": "x", "d": 0, "e": false}),
        ));
        assert_eq!(metadata(&sparse), json!({"d": 0, "e": false}));
        let empty = ok(with(page("https://example.com/"), "m", json!("{}")));
        assert_eq!(empty.raw.metadata, None);
    }

    #[test]
    fn props_must_be_an_object() {
        for bad in [json!("not json"), json!("[1, 2]"), json!([1]), json!(5)] {
            rejected_json(
                with(page("https://example.com/"), "m", bad),
                "invalid_event",
                "props",
                "props (meta, p, m) must be a JSON object or a string holding one",
            );
        }
    }

    #[test]
    fn revenue_is_normalized() {
        let check = |revenue: Value, expected: Value| {
            let e = ok(with(page("https://example.com/buy"), "revenue", revenue));
            assert_eq!(metadata(&e), json!({"revenue": expected}));
        };
        check(
            json!({"currency": "usd", "amount": "1322.22"}),
            json!({"currency": "USD", "amount": 1322.22}),
        );
        check(
            json!({"currency": "EUR", "amount": 10}),
            json!({"currency": "EUR", "amount": 10}),
        );
        check(
            json!(r#"{"currency":"GBP","amount":" 5 "}"#),
            json!({"currency": "GBP", "amount": 5}),
        );
        for (bad, says) in [
            (
                json!({"currency": "EUR", "amount": -1}),
                "from 0 to 1000000000000",
            ),
            (
                json!({"currency": "EUR", "amount": "1e13"}),
                "from 0 to 1000000000000",
            ),
        ] {
            rejected_json(
                with(page("https://example.com/"), "$", bad),
                "invalid_event",
                "revenue",
                says,
            );
        }
        for bad in [
            json!({"currency": "EURO", "amount": 1}),
            json!({"currency": "ABC", "amount": 1}),
            json!({"currency": "EUR"}),
            json!({"amount": 1}),
            json!({"currency": "EUR", "amount": "1,5"}),
            json!({"currency": "EUR", "amount": true}),
            json!("12 EUR"),
            json!(12),
        ] {
            rejected_json(
                with(page("https://example.com/"), "$", bad),
                "invalid_event",
                "revenue",
                "3-letter ISO 4217 code",
            );
        }
    }

    #[test]
    fn a_custom_property_cannot_pose_as_revenue() {
        let e = ok(
            json!({"n": "buy", "u": "https://example.com/", "d": "example.com",
            "p": {"revenue": "lots", "interactive": true},
            "$": {"currency": "EUR", "amount": 1}, "i": false}),
        );
        assert_eq!(
            metadata(&e),
            json!({"revenue": {"currency": "EUR", "amount": 1}, "interactive": false})
        );
    }

    #[test]
    fn interactive_is_recorded_only_when_false() {
        let yes = ok(with(page("https://example.com/"), "i", json!(true)));
        assert_eq!(yes.raw.metadata, None);
        let no = ok(with(
            page("https://example.com/"),
            "interactive",
            json!(false),
        ));
        assert_eq!(metadata(&no), json!({"interactive": false}));
        rejected_json(
            with(page("https://example.com/"), "i", json!("no")),
            "invalid_event",
            "interactive",
            "interactive (i) must be true or false, not a string",
        );
    }

    #[test]
    fn route_is_the_path_without_query_or_fragment() {
        let check = |url: &str, route: &str| {
            assert_eq!(ok(page(url)).raw.route.as_deref(), Some(route), "{url}");
        };
        check("https://example.com", "/");
        check(
            "https://example.com/blog/post-1?token=secret#top",
            "/blog/post-1",
        );
        check("https://example.com/a/b/", "/a/b/");
        check("https://example.com/caf%C3%A9", "/caf%C3%A9");
        check("app://localhost/login", "/login");
        check("app://localhost", "/");
    }

    #[test]
    fn hash_routing_appends_the_fragment() {
        let check = |h: Value, url: &str, route: &str| {
            let e = ok(with(page(url), "h", h));
            assert_eq!(e.raw.route.as_deref(), Some(route), "{url}");
        };
        check(json!(1), "https://example.com/#/settings", "/#/settings");
        check(
            json!(true),
            "https://example.com/app#/users/7",
            "/app#/users/7",
        );
        check(
            json!(1),
            "https://example.com/?x=1#/s?tab=2&token=t",
            "/#/s",
        );
        check(json!(1), "https://example.com/app", "/app");
        check(json!(1), "https://example.com/app#", "/app");
        check(json!(0), "https://example.com/#/settings", "/");
        check(json!(false), "https://example.com/#/settings", "/");
        rejected_json(
            with(page("https://example.com/"), "h", json!(2)),
            "invalid_event",
            "hashMode",
            "hashMode (h) must be 1, 0, true or false, not a number",
        );
    }

    #[test]
    fn hash_routes_survive_validation() {
        let raw = ok(with(page("https://example.com/#/settings"), "h", json!(1))).raw;
        let ctx = crate::Context {
            project: "example",
            now_ms: 1_737_210_600_000,
            settings: crate::Settings::default(),
            id_secret: b"s",
        };
        let event = crate::validate(raw, &ctx, &mut || {
            "00000000-0000-4000-8000-000000000000".into()
        })
        .unwrap()
        .event;
        assert_eq!(event.route.as_deref(), Some("/#/settings"));
        assert_eq!(event.name, "pageview");
    }

    #[test]
    fn source_medium_and_campaign() {
        // (url, referrer, source, medium, campaign)
        let check = |url: &str, referrer: Value, expected: [Option<&str>; 3]| {
            let e = ok(with(page(url), "r", referrer.clone()));
            let got = [
                e.raw.source.as_deref(),
                e.raw.medium.as_deref(),
                e.raw.campaign.as_deref(),
            ];
            assert_eq!(got, expected, "{url} from {referrer}");
        };
        let news = json!("https://news.ycombinator.com/item?id=1");
        check(
            "https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=spring%20sale",
            news.clone(),
            [Some("newsletter"), Some("email"), Some("spring sale")],
        );
        let tagged = ok(page(
            "https://example.com/?utm_campaign=spring&utm_term=running%20shoes&utm_content=banner-a",
        ));
        assert_eq!(tagged.raw.term.as_deref(), Some("running shoes"));
        assert_eq!(tagged.raw.content.as_deref(), Some("banner-a"));
        let untagged = ok(page("https://example.com/?utm_term=&utm_content="));
        assert_eq!((untagged.raw.term, untagged.raw.content), (None, None));
        // utm_source, then source, then ref, then the referrer; empty values are absent.
        check(
            "https://example.com/?ref=ph&source=tw&utm_source=",
            news.clone(),
            [Some("tw"), None, None],
        );
        check(
            "https://example.com/?ref=producthunt&utm_medium=",
            news.clone(),
            [Some("producthunt"), None, None],
        );
        check(
            "https://example.com/",
            news.clone(),
            [Some("news.ycombinator.com"), None, None],
        );
        check(
            "https://example.com/",
            json!("https://WWW.Google.COM/search?q=tally"),
            [Some("google.com"), None, None],
        );
        check(
            "https://example.com/?utm_campaign=launch",
            json!("android-app://com.slack/"),
            [Some("com.slack"), None, Some("launch")],
        );
        // Internal navigation, www. or not, is not a source.
        check(
            "https://www.example.com/b",
            json!("https://example.com/a"),
            [None; 3],
        );
        check(
            "https://example.com/b",
            json!("http://www.EXAMPLE.com/a"),
            [None; 3],
        );
        // Referrers that are not URLs with a host are ignored.
        for referrer in [
            json!(null),
            json!(""),
            json!("not a url"),
            json!("about:blank"),
        ] {
            check("https://example.com/", referrer, [None; 3]);
        }
        rejected_json(
            with(page("https://example.com/"), "r", json!(5)),
            "invalid_event",
            "referrer",
            "referrer (r) must be a string, not a number",
        );
    }

    #[test]
    fn urls_stay_out_of_metadata() {
        let e = ok(json!({"n": "pageview", "d": "example.com",
            "u": "https://example.com/reset?token=s3cret&utm_source=mail",
            "r": "https://mail.example.net/inbox?user=alice", "p": {"plan": "pro"}}));
        let stored = serde_json::to_string(&metadata(&e)).unwrap();
        assert_eq!(stored, r#"{"plan":"pro"}"#);
        assert_eq!(e.raw.source.as_deref(), Some("mail"));
    }

    #[test]
    fn host_is_lowercase_without_www() {
        assert_eq!(ok(page("https://WWW.Example.COM/")).host, "example.com");
        assert_eq!(ok(page("app://MyApp/home")).host, "myapp");
        assert_eq!(ok(page("http://localhost:8080/")).host, "localhost");
    }

    #[test]
    fn names_may_be_whole_numbers() {
        let e = ok(json!({"n": 404, "u": "https://example.com/", "d": "example.com"}));
        assert_eq!(e.raw.name.as_deref(), Some("404"));
        rejected_json(
            json!({"n": 1.5, "u": "https://example.com/", "d": "example.com"}),
            "invalid_event",
            "name",
            "name (n) must be a string, not a number",
        );
    }

    #[test]
    fn missing_and_empty_required_fields_are_named() {
        let base = json!({"n": "pageview", "u": "https://example.com/", "d": "example.com"});
        for (long, short) in [("name", "n"), ("url", "u"), ("domain", "d")] {
            let label = format!("{long} ({short}) is required");
            let mut absent = base.clone();
            absent.as_object_mut().unwrap().remove(short);
            rejected_json(absent, "missing_field", long, &label);
            for empty in [json!(""), json!("  "), json!(null)] {
                rejected_json(
                    with(base.clone(), short, empty),
                    "missing_field",
                    long,
                    &label,
                );
            }
            rejected_json(
                with(base.clone(), short, json!(["x"])),
                "invalid_event",
                long,
                "must be a string, not an array",
            );
        }
    }

    #[test]
    fn urls_must_be_absolute_with_a_host() {
        for (url, why) in [
            ("/blog", "has no scheme"),
            ("example.com/blog", "has no scheme"),
            ("https://", "does not parse"),
            ("data:text/html,hi", "data: URL has no host"),
            ("javascript:alert(1)", "javascript: URL has no host"),
            ("file:///etc/passwd", "file: URL has no host"),
        ] {
            rejected_json(
                page(url),
                "invalid_event",
                "url",
                "url (u) must be the page's absolute URL",
            );
            rejected_json(page(url), "invalid_event", "url", why);
        }
    }

    #[test]
    fn bodies_that_are_not_json_objects() {
        rejected(b"{\"n\": ", "malformed_json", None, "not valid JSON");
        rejected(b"", "malformed_json", None, "not valid JSON");
        rejected(b"name=pageview", "malformed_json", None, "not valid JSON");
        rejected(b"[]", "invalid_event", None, "must be a JSON object");
        rejected(b"\"pageview\"", "invalid_event", None, "not a string");
        rejected(b"null", "invalid_event", None, "not null");
    }

    // Real user agents of current browsers, from the vendors' documentation and
    // request logs.
    const PEOPLE: &[&str] = &[
        // Chrome, Edge, Firefox and Safari on desktops.
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/85.0.4183.121 Safari/537.36 OPR/71.0.3770.284",
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        // Phones and tablets.
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0",
        "Mozilla/5.0 (Linux; Android 11; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
        // In-app browsers are people too.
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.36.103;FBBV/627187340;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 340.0.3.22.85 (iPhone15,2; iOS 17_5; en_US; en; scale=3.00; 1179x2556; 618245432)",
    ];

    const BOTS: &[&str] = &[
        "",
        "   ",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/100.0.4896.127 Safari/537.36 Edg/100.0.1185.50 BingPreview/1.0b",
        "WhatsApp/2.23.20.0",
        "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
        "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        "curl/8.5.0",
        "Wget/1.21.4",
        "python-requests/2.32.3",
        "Python-urllib/3.12",
        "Go-http-client/2.0",
        "Java/17.0.2",
        "okhttp/4.12.0",
        "axios/1.7.7",
        "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
        "Apache-HttpClient/4.5.14 (Java/17.0.8)",
        "PostmanRuntime/7.42.0",
    ];

    #[test]
    fn people_are_not_bots() {
        for ua in PEOPLE {
            assert!(!is_bot(ua), "flagged a browser: {ua}");
        }
    }

    #[test]
    fn bots_are_bots() {
        for ua in BOTS {
            assert!(is_bot(ua), "missed a bot: {ua:?}");
        }
        assert!(is_bot("GOOGLEBOT"), "case-insensitive");
        assert!(
            is_bot("Cubot-Crawler/1.0"),
            "a Cubot exception does not hide a crawler"
        );
    }
}
