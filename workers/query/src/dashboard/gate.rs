//! Who may view a project's dashboard, in this order: a valid, unrevoked share link
//! (`?share=`), a read token of the project or the admin token in `Authorization`, a
//! session of the project's cookie (opened by the login form with a read token), or
//! anyone if the project made its dashboard public. A session names its read token and
//! every read token is looked up on each request, so revoking one ends the sessions
//! opened with it.
//!
//! An admin session ([`ADMIN_COOKIE`], opened on the project list at `/dashboard` with
//! the admin token) opens every project's dashboard too, after a project's own session.
//!
//! The cookie holds an opaque session id, never the token, and is sent only to the
//! project's dashboard paths (`/dashboard/{p}` and `/admin/plugins/{p}/analytics`). The
//! login and logout forms are taken only from the dashboard's own origin
//! ([`same_origin`]).

use tally_core::project::Project;
use tally_core::share::{self, Refusal, is_session, session_hash};
use tally_edge::ApiError;
use tally_storage::access::AccessStore;
use worker::Request;

use super::page::Access;
use crate::access::{Token, bearer, classify, grant, is_admin_session, share_secret};
use crate::edge::error::internal;
use crate::edge::{RequestEnv, store};
use crate::route::Entry;

/// How long the login cookie lasts, in seconds (seven days, as the session).
pub const COOKIE_MAX_AGE_S: i64 = share::SESSION_MS / 1000;

/// Why the dashboard is not shown; the login page says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, link or public setting.
    Nothing,
    /// A token that is not a valid, unrevoked read token (or admin token).
    Invalid(String),
    /// A read token of another project.
    WrongProject,
    /// A share link that is forged, expired or revoked.
    Share(Refusal),
}

impl Denied {
    /// The HTTP status of the login page shown instead.
    pub fn status(&self) -> u16 {
        match self {
            Self::Nothing | Self::Invalid(_) => 401,
            Self::WrongProject | Self::Share(_) => 403,
        }
    }

    /// What the login page says, if anything.
    pub fn message(&self) -> Option<String> {
        match self {
            Self::Nothing => None,
            Self::Invalid(why) => Some(why.clone()),
            Self::WrongProject => {
                Some("That read token belongs to another project, not this one.".to_owned())
            }
            Self::Share(Refusal::Expired) => {
                Some("This share link has expired; ask whoever shared it for a new one.".to_owned())
            }
            Self::Share(Refusal::Revoked) => {
                Some("This share link was revoked; ask whoever shared it for a new one.".to_owned())
            }
            Self::Share(_) => Some("This share link is not valid.".to_owned()),
        }
    }
}

/// The name of the cookie that holds a project's session id (slugs are cookie-safe).
pub fn cookie_name(project: &str) -> String {
    format!("tally_{project}")
}

/// The values of cookie `name` in a `Cookie` header, in the order sent (a browser sends
/// the one of the longest path first).
pub fn cookies<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// The cookie of an admin session: a name no project's cookie can have (`.` is not in
/// slugs).
pub const ADMIN_COOKIE: &str = "tally.admin";

/// The `Set-Cookie` value that keeps an admin session for the dashboard's paths
/// (`/dashboard` and every project's page under it) for [`share::ADMIN_SESSION_S`]:
/// `HttpOnly`, `SameSite=Strict` (the admin token opens everything, so not even a link
/// from another site carries it), `Secure` over HTTPS.
pub fn admin_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{ADMIN_COOKIE}={token}; Path=/dashboard; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        share::ADMIN_SESSION_S
    )
}

/// The `Set-Cookie` value that removes the admin session.
pub fn clear_admin_cookie(secure: bool) -> String {
    admin_cookie("", secure).replace(&format!("Max-Age={}", share::ADMIN_SESSION_S), "Max-Age=0")
}

/// Whether the request holds an unexpired admin session of this deployment.
pub fn has_admin_session(req: &Request, env: &RequestEnv, now_ms: i64) -> bool {
    let Some(header) = req.headers().get("cookie").ok().flatten() else {
        return false;
    };
    cookies(&header, ADMIN_COOKIE).any(|token| is_admin_session(env, token, now_ms))
}

/// The paths a project's cookie is sent to: the dashboard (with its login and logout
/// forms) and the same page at the seed's path. Nothing else of the host sees it.
fn cookie_paths(project: &str) -> [String; 2] {
    [Entry::Dashboard.path(project), Entry::Admin.path(project)]
}

/// The `Set-Cookie` values that keep `session` for the project's pages: one per
/// dashboard path, `HttpOnly` (no script can read it), `SameSite=Lax` (not sent with
/// cross-site posts), `Secure` when the site is served over HTTPS; and one that
/// removes the cookie that earlier versions kept at `Path=/` (it held the read token).
pub fn set_cookies(project: &str, session: &str, secure: bool) -> Vec<String> {
    let secure = if secure { "; Secure" } else { "" };
    let name = cookie_name(project);
    let mut values: Vec<String> = cookie_paths(project)
        .iter()
        .map(|path| {
            format!(
                "{name}={session}; Path={path}; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; \
                 SameSite=Lax{secure}"
            )
        })
        .collect();
    values.push(format!(
        "{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
    ));
    values
}

/// The `Set-Cookie` values that remove the project's cookies, at every path.
pub fn clear_cookies(project: &str, secure: bool) -> Vec<String> {
    let secure = if secure { "; Secure" } else { "" };
    let name = cookie_name(project);
    cookie_paths(project)
        .iter()
        .map(String::as_str)
        .chain(["/"])
        .map(|path| format!("{name}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Lax{secure}"))
        .collect()
}

/// The session id in the request's cookie for `project`, if one of its values has the
/// shape of one (a read token kept by an earlier version is not one).
pub fn session_of(req: &Request, project: &str) -> Option<String> {
    let header = req.headers().get("cookie").ok().flatten()?;
    let name = cookie_name(project);
    cookies(&header, &name)
        .find(|v| is_session(v))
        .map(str::to_owned)
}

/// Refuses a form post from another origin. A browser sends `Origin` with every post;
/// it must be this site's own (`own`, scheme, host and port). The dashboard's pages say
/// `Referrer-Policy: no-referrer`, under which browsers send `Origin: null` even for
/// their own forms: `null` is taken only with `Sec-Fetch-Site: same-origin`, which a
/// browser sets and no page can forge (a cross-site page that hides its origin still
/// gets `cross-site`). A post without `Origin` is taken only when `Sec-Fetch-Site` does
/// not say it came from another site: a client that sends neither is no browser.
///
/// # Errors
///
/// 403 `cross_origin`, which the dashboard shows as an error page.
pub fn same_origin(
    origin: Option<&str>,
    fetch_site: Option<&str>,
    own: &str,
) -> Result<(), ApiError> {
    let refuse = |from: &str| {
        Err(ApiError::new(
            403,
            "cross_origin",
            format!(
                "This form was sent from {from}, not from this dashboard; sign in and \
                 out from the dashboard's own page."
            ),
        ))
    };
    let fetch_site = fetch_site.map(str::trim);
    match origin.map(str::trim) {
        Some(origin) if origin.eq_ignore_ascii_case(own) => Ok(()),
        Some("null") if fetch_site == Some("same-origin") => Ok(()),
        Some("null") => refuse("a page that hides its origin"),
        Some(origin) => refuse(&format!("another origin ({origin})")),
        None => match fetch_site {
            Some(site @ ("cross-site" | "same-site")) => refuse(&format!("a {site} page")),
            _ => Ok(()),
        },
    }
}

/// Whether a classified token opens `project`'s dashboard as a read token (the login
/// form's and the session's; the admin token opens it only in `Authorization`).
pub fn opens(token: Token, project: &str) -> Result<(), Denied> {
    match token {
        Token::Read(p) if p == project => Ok(()),
        Token::Read(_) => Err(Denied::WrongProject),
        Token::Write => Err(Denied::Invalid(
            "That is a write key (tw_…); the dashboard takes a read token (tr_…).".to_owned(),
        )),
        Token::Revoked(prefix) => Err(Denied::Invalid(format!(
            "Read token {prefix}… was revoked; sign in with another."
        ))),
        Token::Admin | Token::Unknown => Err(Denied::Invalid(
            "That is not a read token Tally issued; create one with \
             `cargo xtask project key <project> --read`."
                .to_owned(),
        )),
    }
}

/// Checks a share token for `slug`: its signature and expiry, then its row.
async fn check_share(
    env: &RequestEnv,
    slug: &str,
    token: &str,
    now_ms: i64,
) -> Result<Result<i64, Refusal>, ApiError> {
    let Some(secret) = share_secret(env) else {
        return Ok(Err(Refusal::BadSignature));
    };
    let verified = match share::verify(&secret, slug, token, now_ms) {
        Ok(verified) => verified,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let link = store(env)?
        .share_link(slug, &verified.id)
        .await
        .map_err(internal)?;
    Ok(match link {
        Some(link) if link.revoked_at.is_none() => Ok(verified.expires_s),
        _ => Err(Refusal::Revoked),
    })
}

/// Decides whether the request may view `project` (`None` if it does not exist),
/// given its `?share=` value and `now_ms`.
///
/// # Errors
///
/// When D1 fails.
pub async fn decide(
    req: &Request,
    env: &RequestEnv,
    project: Option<&Project>,
    slug: &str,
    share_token: Option<&str>,
    now_ms: i64,
) -> Result<Result<Access, Denied>, ApiError> {
    let mut denied = Denied::Nothing;
    if let Some(token) = share_token.filter(|t| !t.is_empty()) {
        match check_share(env, slug, token, now_ms).await? {
            Ok(expires_s) if project.is_some() => {
                return Ok(Ok(Access::Share {
                    token: token.to_owned(),
                    expires_s,
                }));
            }
            Ok(_) => denied = Denied::Share(Refusal::BadSignature),
            Err(refusal) => denied = Denied::Share(refusal),
        }
    }
    if let Some(token) = bearer(req) {
        return Ok(match classify(env, &token).await? {
            Token::Admin if project.is_some() => Ok(Access::Header),
            Token::Admin => Err(Denied::Nothing),
            token => opens(token, slug).map(|()| Access::Header),
        });
    }
    if let Some(session) = session_of(req, slug) {
        let found = store(env)?
            .session(&session_hash(&session), now_ms)
            .await
            .map_err(internal)?;
        let verdict = match found {
            Some((key, _)) => opens(grant(Some(key)), slug),
            None => Err(Denied::Invalid(
                "Your session has ended; sign in again.".to_owned(),
            )),
        };
        match verdict {
            Ok(()) => return Ok(Ok(Access::Cookie)),
            Err(why) if denied == Denied::Nothing => denied = why,
            Err(_) => {}
        }
    }
    if project.is_some() && has_admin_session(req, env, now_ms) {
        return Ok(Ok(Access::Admin));
    }
    if project.is_some_and(|p| p.public_dashboard) {
        return Ok(Ok(Access::Public));
    }
    Ok(Err(denied))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_hold_a_session_for_the_dashboard_paths_only() {
        let first = |header, name| cookies(header, name).next();
        let header = r#"a=1; tally_demo=ts_abc ; tally_demo-2="ts_def"; empty="#;
        assert_eq!(first(header, "tally_demo"), Some("ts_abc"));
        assert_eq!(first(header, "tally_demo-2"), Some("ts_def"));
        assert_eq!(first(header, "tally_dem"), None);
        assert_eq!(first(header, "empty"), Some(""));
        assert_eq!(first("", "a"), None);
        let both = "tally_demo=ts_new; tally_demo=tr_old";
        assert_eq!(
            cookies(both, "tally_demo").collect::<Vec<_>>(),
            ["ts_new", "tr_old"]
        );
        assert_eq!(
            set_cookies("demo", "ts_x", true),
            [
                "tally_demo=ts_x; Path=/dashboard/demo; Max-Age=604800; HttpOnly; SameSite=Lax; Secure",
                "tally_demo=ts_x; Path=/admin/plugins/demo/analytics; Max-Age=604800; HttpOnly; SameSite=Lax; Secure",
                "tally_demo=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure",
            ]
        );
        let plain = set_cookies("demo", "ts_x", false);
        assert!(plain.iter().all(|c| !c.contains("Secure")), "{plain:?}");
        assert!(
            plain
                .iter()
                .all(|c| !c.contains("Path=/;") || c.contains("Max-Age=0")),
            "nothing is kept for the whole host: {plain:?}"
        );
        assert_eq!(
            clear_cookies("demo", false),
            [
                "tally_demo=; Path=/dashboard/demo; Max-Age=0; HttpOnly; SameSite=Lax",
                "tally_demo=; Path=/admin/plugins/demo/analytics; Max-Age=0; HttpOnly; SameSite=Lax",
                "tally_demo=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
            ]
        );
    }

    #[test]
    fn forms_are_taken_from_the_dashboards_own_origin_only() {
        let own = "https://tally.example";
        let check = |origin, site, ok: bool| {
            let got = same_origin(origin, site, own);
            match (got, ok) {
                (Ok(()), true) => {}
                (Err(e), false) => {
                    assert_eq!((e.status, e.code), (403, "cross_origin"));
                    assert!(
                        e.message.contains("not from this dashboard"),
                        "{}",
                        e.message
                    );
                }
                (got, _) => panic!("{origin:?} {site:?}: {got:?}"),
            }
        };
        check(Some("https://tally.example"), Some("same-origin"), true);
        check(Some("HTTPS://TALLY.example"), None, true);
        check(Some("https://evil.example"), Some("cross-site"), false);
        check(Some("https://evil.example"), None, false);
        check(Some("http://tally.example"), None, false);
        check(Some("https://tally.example:8443"), None, false);
        check(Some("https://sub.tally.example"), Some("same-site"), false);
        // The dashboard's own forms, under `Referrer-Policy: no-referrer`.
        check(Some("null"), Some("same-origin"), true);
        check(Some("null"), None, false);
        check(Some("null"), Some("cross-site"), false);
        check(Some("null"), Some("same-site"), false);
        // No Origin: a client that is no browser, unless the browser says where from.
        check(None, None, true);
        check(None, Some("same-origin"), true);
        check(None, Some("none"), true);
        check(None, Some("cross-site"), false);
        check(None, Some("same-site"), false);
    }

    #[test]
    fn refusals_say_what_happened() {
        assert_eq!(Denied::Nothing.status(), 401);
        assert_eq!(Denied::Nothing.message(), None);
        assert_eq!(Denied::WrongProject.status(), 403);
        assert!(
            Denied::Share(Refusal::Expired)
                .message()
                .unwrap()
                .contains("expired")
        );
        assert!(
            Denied::Share(Refusal::Revoked)
                .message()
                .unwrap()
                .contains("was revoked")
        );
        assert!(
            Denied::Share(Refusal::BadSignature)
                .message()
                .unwrap()
                .contains("not valid")
        );
    }

    #[test]
    fn read_tokens_open_their_own_project_only() {
        assert_eq!(opens(Token::Read("demo".into()), "demo"), Ok(()));
        assert_eq!(
            opens(Token::Read("other".into()), "demo"),
            Err(Denied::WrongProject)
        );
        let why = |token| match opens(token, "demo") {
            Err(Denied::Invalid(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(why(Token::Write).contains("write key"));
        assert!(why(Token::Revoked("tr_ab12".into())).contains("tr_ab12… was revoked"));
        // The admin token opens the dashboard in `Authorization`, not as a read token.
        assert!(why(Token::Admin).contains("not a read token"));
        assert!(why(Token::Unknown).contains("not a read token"));
    }
}
