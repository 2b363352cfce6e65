//! Who may view a project's dashboard, in this order: a valid share link (`?share=`),
//! a read token of the project or the admin token in `Authorization`, a read token in
//! the project's cookie (set by the login form), or anyone if the project made its
//! dashboard public. Every read token is looked up on each request, so revoking one
//! ends the sessions that hold it.

use tally_core::ApiError;
use tally_core::project::Project;
use tally_core::share::{self, Refusal};
use worker::Request;

use super::page::Access;
use crate::access::{Token, bearer, classify, share_secret};
use crate::edge::RequestEnv;

/// How long the login cookie lasts, in seconds (seven days).
pub const COOKIE_MAX_AGE_S: u32 = 7 * 86_400;

/// Why the dashboard is not shown; the login page says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, link or public setting.
    Nothing,
    /// A token that is not a valid, unrevoked read token (or admin token).
    Invalid(String),
    /// A read token of another project.
    WrongProject,
    /// A share link that is forged or expired.
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
            Self::Share(_) => Some("This share link is not valid.".to_owned()),
        }
    }
}

/// The name of the cookie that holds a project's read token (slugs are cookie-safe).
pub fn cookie_name(project: &str) -> String {
    format!("tally_{project}")
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// The `Set-Cookie` value that keeps `token` for the project's pages: `HttpOnly` (no
/// script can read it), `SameSite=Lax` (not sent with cross-site posts), `Secure` when
/// the site is served over HTTPS.
pub fn set_cookie(project: &str, token: &str, secure: bool) -> String {
    format!(
        "{}={token}; Path=/; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax{}",
        cookie_name(project),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the project's cookie.
pub fn clear_cookie(project: &str, secure: bool) -> String {
    format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        cookie_name(project),
        if secure { "; Secure" } else { "" }
    )
}

/// Whether a classified token opens `project`'s dashboard as a read token (the login
/// form's and the cookie's; the admin token opens it only in `Authorization`).
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

/// Checks that `token` is an unrevoked read token of `project`.
///
/// # Errors
///
/// The outer error when D1 fails; the inner one says why the token does not open the
/// dashboard.
pub async fn check_read_token(
    env: &RequestEnv,
    project: &str,
    token: &str,
) -> Result<Result<(), Denied>, ApiError> {
    Ok(opens(classify(env, token).await?, project))
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
        match share_secret(env) {
            Some(secret) => match share::verify(&secret, slug, token, now_ms) {
                Ok(expires_s) if project.is_some() => {
                    return Ok(Ok(Access::Share {
                        token: token.to_owned(),
                        expires_s,
                    }));
                }
                Ok(_) => denied = Denied::Share(Refusal::BadSignature),
                Err(refusal) => denied = Denied::Share(refusal),
            },
            None => denied = Denied::Share(Refusal::BadSignature),
        }
    }
    if let Some(token) = bearer(req) {
        return Ok(match classify(env, &token).await? {
            Token::Admin if project.is_some() => Ok(Access::Header),
            Token::Admin => Err(Denied::Nothing),
            token => opens(token, slug).map(|()| Access::Header),
        });
    }
    let cookies = req
        .headers()
        .get("cookie")
        .ok()
        .flatten()
        .unwrap_or_default();
    if let Some(token) = cookie(&cookies, &cookie_name(slug)).filter(|t| !t.is_empty()) {
        match check_read_token(env, slug, token).await? {
            Ok(()) => return Ok(Ok(Access::Cookie)),
            Err(why) if denied == Denied::Nothing => denied = why,
            Err(_) => {}
        }
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
    fn cookies() {
        let header = r#"a=1; tally_demo=tr_abc ; tally_demo-2="tr_def"; empty="#;
        assert_eq!(cookie(header, "tally_demo"), Some("tr_abc"));
        assert_eq!(cookie(header, "tally_demo-2"), Some("tr_def"));
        assert_eq!(cookie(header, "tally_dem"), None);
        assert_eq!(cookie(header, "empty"), Some(""));
        assert_eq!(cookie("", "a"), None);
        assert_eq!(
            set_cookie("demo", "tr_x", true),
            "tally_demo=tr_x; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            set_cookie("demo", "tr_x", false),
            "tally_demo=tr_x; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax"
        );
        assert!(clear_cookie("demo", false).starts_with("tally_demo=; Path=/; Max-Age=0;"));
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
