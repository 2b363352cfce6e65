//! Routing, pure: every endpoint of the query worker is one row of [`TABLE`] (methods,
//! the path as `openapi.json` writes it, and the [`Route`] it is), and [`parse`] reads a
//! method and a path into a route or a [`Miss`]: a 404, or a 405 whose `Allow` lists the
//! methods of the rows whose path matched. The OpenAPI test checks the table against
//! `openapi.json`, both ways.
//!
//! Who answers a miss depends on the path's [`Area`] ([`AREAS`]): the admin API checks
//! the admin token first, the dashboard answers with an HTML page, the track seed in its
//! own shape.
//!
//! The method is read as the request wrote it ([`parse`] takes the text): `worker`'s
//! `Method` reads every method it does not know (`QUERY`, `PROPFIND`, `PURGE`) as `GET`,
//! which would answer them as reads; here they match no row, so a known path answers 405
//! with `Allow`. The read API's and the seeds' read paths also take `OPTIONS`: browsers'
//! CORS preflights, answered by `edge::cors`.

use tally_core::validate::is_valid_slug;
use tally_edge::ApiError;
use worker::Method;

/// A request the worker answers, with the path's parts it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /v1/health` (and `/`).
    Health,
    /// `GET /openapi.json`.
    OpenApi,
    /// The read API under `/v1/projects/{project}/`, which needs a read token.
    Read(&'a str, Read<'a>),
    /// The seeds' own read paths.
    Alias(Alias<'a>),
    /// The admin API under `/v1/admin/`, which needs the admin token.
    Admin(Admin<'a>),
    /// The dashboard of a project (a valid slug).
    Dashboard(&'a str, Page),
    /// The project list at `/dashboard` (the admin's): its page, or its sign-in and
    /// sign-out form posts.
    Projects(ProjectsPage),
    /// `/badge/{project}/{file}`.
    Badge(&'a str, &'a str),
}

/// An endpoint of the read API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read<'a> {
    Overview,
    Timeseries,
    /// By the dimension named in the path.
    Breakdown(&'a str),
    Errors,
    Installs,
    Metrics,
    Sessions,
    Funnels,
    Export,
    /// The alert history.
    Alerts,
    AlertRules,
    Campaigns,
    /// One campaign, percent-encoded as in the path.
    Campaign(&'a str),
    /// The last thirty minutes.
    Realtime,
    /// Revenue per currency.
    Revenue,
}

/// A path of one of the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alias<'a> {
    PluginOverview(&'a str),
    PluginTimeseries(&'a str),
    PluginEndpoints(&'a str),
    CdnOverview,
    /// One image, percent-encoded as in the path.
    CdnImage(&'a str),
    TrackMetrics,
    TrackSessions,
}

/// An endpoint of the admin API; the first `&str` is the project's slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin<'a> {
    ListProjects,
    CreateProject,
    GetProject(&'a str),
    UpdateProject(&'a str),
    ListKeys(&'a str),
    CreateKey(&'a str),
    RevokeKey(&'a str, &'a str),
    Share(&'a str),
    ListShares(&'a str),
    /// A share link's id.
    RevokeShare(&'a str, &'a str),
    ListRules(&'a str),
    CreateRule(&'a str),
    GetRule(&'a str, &'a str),
    UpdateRule(&'a str, &'a str),
    DeleteRule(&'a str, &'a str),
    GetDigest(&'a str),
    PutDigest(&'a str),
    DeleteDigest(&'a str),
    SetCampaign(&'a str, &'a str),
    /// Erase a user: the project and the user id, percent-encoded as in the path.
    ForgetUser(&'a str, &'a str),
    GetErasure(&'a str, &'a str),
    /// Start moving a project to another data shard.
    StartMove(&'a str),
    /// The project's latest move and its progress.
    GetMove(&'a str),
}

/// A page of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The dashboard itself, at the path of `Entry`.
    View(Entry),
    /// The realtime view, `/dashboard/{p}/realtime`, which reloads itself.
    Realtime,
    Login,
    Logout,
}

/// A request of the project list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectsPage {
    View,
    Post,
}

/// Which path the dashboard was asked for; the login form returns there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `/dashboard/{p}`.
    Dashboard,
    /// `/admin/plugins/{slug}/analytics`.
    Admin,
    /// `/dashboard/{p}/realtime`.
    Realtime,
}

impl Entry {
    /// The page's path for `project`.
    pub fn path(self, project: &str) -> String {
        match self {
            Self::Dashboard => format!("/dashboard/{project}"),
            Self::Admin => format!("/admin/plugins/{project}/analytics"),
            Self::Realtime => format!("/dashboard/{project}/realtime"),
        }
    }

    /// The entry's name in the login form.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dashboard => "dashboard",
            Self::Admin => "admin",
            Self::Realtime => "realtime",
        }
    }

    /// The entry a login form's `next` names; the dashboard for anything else.
    pub fn named(name: &str) -> Self {
        [Self::Admin, Self::Realtime]
            .into_iter()
            .find(|entry| entry.name() == name)
            .unwrap_or(Self::Dashboard)
    }
}

/// One endpoint: the methods it answers, its path (`{name}` for a part the route takes,
/// as `openapi.json` writes it), and the route made from those parts.
pub struct Row {
    pub methods: &'static [Method],
    pub path: &'static str,
    make: for<'a> fn(&[&'a str]) -> Route<'a>,
}

const GET: &[Method] = &[Method::Get];
const GET_HEAD: &[Method] = &[Method::Get, Method::Head];
/// A read a browser page may make with a token (CORS): `OPTIONS` is its preflight.
const GET_OPTIONS: &[Method] = &[Method::Get, Method::Options];
const POST: &[Method] = &[Method::Post];
const PUT: &[Method] = &[Method::Put];
const PATCH: &[Method] = &[Method::Patch];
const DELETE: &[Method] = &[Method::Delete];

const fn row(
    methods: &'static [Method],
    path: &'static str,
    make: for<'a> fn(&[&'a str]) -> Route<'a>,
) -> Row {
    Row {
        methods,
        path,
        make,
    }
}

/// Every endpoint. Rows of one path list their methods in the order a 405 names them.
#[rustfmt::skip]
pub const TABLE: &[Row] = &[
    row(GET, "/v1/health", |_| Route::Health),
    row(GET, "/", |_| Route::Health),
    row(GET, "/openapi.json", |_| Route::OpenApi),
    // The read API.
    row(GET_OPTIONS, "/v1/projects/{project}/overview", |a| Route::Read(a[0], Read::Overview)),
    row(GET_OPTIONS, "/v1/projects/{project}/timeseries", |a| Route::Read(a[0], Read::Timeseries)),
    row(GET_OPTIONS, "/v1/projects/{project}/breakdown/{dimension}", |a| Route::Read(a[0], Read::Breakdown(a[1]))),
    row(GET_OPTIONS, "/v1/projects/{project}/errors", |a| Route::Read(a[0], Read::Errors)),
    row(GET_OPTIONS, "/v1/projects/{project}/installs", |a| Route::Read(a[0], Read::Installs)),
    row(GET_OPTIONS, "/v1/projects/{project}/metrics", |a| Route::Read(a[0], Read::Metrics)),
    row(GET_OPTIONS, "/v1/projects/{project}/sessions", |a| Route::Read(a[0], Read::Sessions)),
    row(GET_OPTIONS, "/v1/projects/{project}/funnels", |a| Route::Read(a[0], Read::Funnels)),
    row(GET_OPTIONS, "/v1/projects/{project}/export", |a| Route::Read(a[0], Read::Export)),
    row(GET_OPTIONS, "/v1/projects/{project}/alerts", |a| Route::Read(a[0], Read::Alerts)),
    row(GET_OPTIONS, "/v1/projects/{project}/alerts/rules", |a| Route::Read(a[0], Read::AlertRules)),
    row(GET_OPTIONS, "/v1/projects/{project}/campaigns", |a| Route::Read(a[0], Read::Campaigns)),
    row(GET_OPTIONS, "/v1/projects/{project}/campaigns/{campaign}", |a| Route::Read(a[0], Read::Campaign(a[1]))),
    row(GET_OPTIONS, "/v1/projects/{project}/realtime", |a| Route::Read(a[0], Read::Realtime)),
    row(GET_OPTIONS, "/v1/projects/{project}/revenue", |a| Route::Read(a[0], Read::Revenue)),
    // The seeds' paths.
    row(GET_OPTIONS, "/api/plugins/{slug}/analytics/overview", |a| Route::Alias(Alias::PluginOverview(a[0]))),
    row(GET_OPTIONS, "/api/plugins/{slug}/analytics/timeseries", |a| Route::Alias(Alias::PluginTimeseries(a[0]))),
    row(GET_OPTIONS, "/api/plugins/{slug}/analytics/endpoints", |a| Route::Alias(Alias::PluginEndpoints(a[0]))),
    row(GET_OPTIONS, "/v1/analytics/overview", |_| Route::Alias(Alias::CdnOverview)),
    row(GET_OPTIONS, "/v1/analytics/images/{id}", |a| Route::Alias(Alias::CdnImage(a[0]))),
    row(GET_OPTIONS, "/metrics", |_| Route::Alias(Alias::TrackMetrics)),
    row(GET_OPTIONS, "/sessions", |_| Route::Alias(Alias::TrackSessions)),
    // The admin API.
    row(GET, "/v1/admin/projects", |_| Route::Admin(Admin::ListProjects)),
    row(POST, "/v1/admin/projects", |_| Route::Admin(Admin::CreateProject)),
    row(GET, "/v1/admin/projects/{project}", |a| Route::Admin(Admin::GetProject(a[0]))),
    row(PATCH, "/v1/admin/projects/{project}", |a| Route::Admin(Admin::UpdateProject(a[0]))),
    row(GET, "/v1/admin/projects/{project}/keys", |a| Route::Admin(Admin::ListKeys(a[0]))),
    row(POST, "/v1/admin/projects/{project}/keys", |a| Route::Admin(Admin::CreateKey(a[0]))),
    row(DELETE, "/v1/admin/projects/{project}/keys/{id}", |a| Route::Admin(Admin::RevokeKey(a[0], a[1]))),
    row(GET, "/v1/admin/projects/{project}/share", |a| Route::Admin(Admin::ListShares(a[0]))),
    row(POST, "/v1/admin/projects/{project}/share", |a| Route::Admin(Admin::Share(a[0]))),
    row(DELETE, "/v1/admin/projects/{project}/share/{id}", |a| Route::Admin(Admin::RevokeShare(a[0], a[1]))),
    row(GET, "/v1/admin/projects/{project}/alert-rules", |a| Route::Admin(Admin::ListRules(a[0]))),
    row(POST, "/v1/admin/projects/{project}/alert-rules", |a| Route::Admin(Admin::CreateRule(a[0]))),
    row(GET, "/v1/admin/projects/{project}/alert-rules/{id}", |a| Route::Admin(Admin::GetRule(a[0], a[1]))),
    row(PATCH, "/v1/admin/projects/{project}/alert-rules/{id}", |a| Route::Admin(Admin::UpdateRule(a[0], a[1]))),
    row(DELETE, "/v1/admin/projects/{project}/alert-rules/{id}", |a| Route::Admin(Admin::DeleteRule(a[0], a[1]))),
    row(GET, "/v1/admin/projects/{project}/digest", |a| Route::Admin(Admin::GetDigest(a[0]))),
    row(PUT, "/v1/admin/projects/{project}/digest", |a| Route::Admin(Admin::PutDigest(a[0]))),
    row(DELETE, "/v1/admin/projects/{project}/digest", |a| Route::Admin(Admin::DeleteDigest(a[0]))),
    row(PUT, "/v1/admin/projects/{project}/campaigns/{campaign}", |a| Route::Admin(Admin::SetCampaign(a[0], a[1]))),
    row(DELETE, "/v1/admin/projects/{project}/users/{user_id}", |a| Route::Admin(Admin::ForgetUser(a[0], a[1]))),
    row(GET, "/v1/admin/projects/{project}/erasures/{id}", |a| Route::Admin(Admin::GetErasure(a[0], a[1]))),
    row(GET, "/v1/admin/projects/{project}/move", |a| Route::Admin(Admin::GetMove(a[0]))),
    row(POST, "/v1/admin/projects/{project}/move", |a| Route::Admin(Admin::StartMove(a[0]))),
    // The dashboard and the badges.
    row(GET_HEAD, "/dashboard", |_| Route::Projects(ProjectsPage::View)),
    row(POST, "/dashboard", |_| Route::Projects(ProjectsPage::Post)),
    row(GET_HEAD, "/dashboard/{project}", |a| Route::Dashboard(a[0], Page::View(Entry::Dashboard))),
    row(GET_HEAD, "/dashboard/{project}/realtime", |a| Route::Dashboard(a[0], Page::Realtime)),
    row(POST, "/dashboard/{project}/login", |a| Route::Dashboard(a[0], Page::Login)),
    row(POST, "/dashboard/{project}/logout", |a| Route::Dashboard(a[0], Page::Logout)),
    row(GET_HEAD, "/admin/plugins/{slug}/analytics", |a| Route::Dashboard(a[0], Page::View(Entry::Admin))),
    row(GET_HEAD, "/badge/{project}/{file}", |a| Route::Badge(a[0], a[1])),
];

/// Who answers the failures of the paths under a prefix, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// A JSON [`ApiError`].
    Api,
    /// The admin API: the admin token is checked before anything is answered, a 404 or
    /// a 405 too, so nothing about the admin API is told to others.
    Admin,
    /// The dashboard: an HTML page; a path whose project is not a slug is not found,
    /// whatever its method.
    Dashboard,
    /// The track seed's paths: its own error shape.
    Track,
}

/// The areas other than [`Area::Api`], by path (`/...` at the end: and whatever follows).
pub const AREAS: [(&str, Area); 6] = [
    ("/v1/admin/...", Area::Admin),
    ("/dashboard", Area::Dashboard),
    ("/dashboard/{project}/...", Area::Dashboard),
    ("/admin/plugins/{slug}/analytics", Area::Dashboard),
    ("/metrics", Area::Track),
    ("/sessions", Area::Track),
];

/// A request no row answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss<'a> {
    pub area: Area,
    pub kind: MissKind<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissKind<'a> {
    /// No row has the path.
    NotFound,
    /// A dashboard path whose project is not a slug.
    NotASlug(&'a str),
    /// Rows have the path, with these methods.
    Method(Vec<Method>),
}

impl Miss<'_> {
    /// The error to answer with, for a request of `path`.
    pub fn error(&self, path: &str) -> ApiError {
        match (&self.kind, self.area) {
            (MissKind::Method(methods), _) => {
                // HEAD goes without saying where GET is answered, and OPTIONS (a
                // browser's preflight) is nothing a person sends; `Allow` lists both.
                let names: Vec<&str> = methods
                    .iter()
                    .filter(|m| !matches!(m, Method::Head | Method::Options))
                    .map(|m| m.as_ref())
                    .collect();
                let takes = match names.split_last() {
                    Some((last, [])) => (*last).to_owned(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => String::new(),
                };
                ApiError::method_not_allowed(&takes)
            }
            (MissKind::NotASlug(project), _) => {
                ApiError::not_found(format!("{project:?} is not a project slug"))
            }
            (MissKind::NotFound, Area::Admin) => ApiError::not_found(
                "admin endpoints: /v1/admin/projects[/{slug}[/keys[/{id}] | /share[/{id}] | \
                 /alert-rules[/{id}] | /digest | /campaigns/{campaign} | /users/{user_id} | \
                 /erasures/{id} | /move]]",
            ),
            (MissKind::NotFound, Area::Dashboard) => ApiError::not_found("no such dashboard page"),
            (MissKind::NotFound, Area::Api | Area::Track) => {
                ApiError::not_found(format!("no endpoint at {path}"))
            }
        }
    }

    /// The `Allow` header of a 405.
    pub fn allow(&self) -> Option<String> {
        match &self.kind {
            MissKind::Method(methods) => {
                let names: Vec<&str> = methods.iter().map(|m| m.as_ref()).collect();
                Some(names.join(", "))
            }
            _ => None,
        }
    }
}

/// The parts of `path` that fill the `{...}` of `pattern`, if it matches; a pattern
/// ending `/...` matches whatever follows it too.
fn matches<'a>(pattern: &str, path: &[&'a str]) -> Option<Vec<&'a str>> {
    let (pattern, open) = match pattern.strip_suffix("/...") {
        Some(prefix) => (prefix, true),
        None => (pattern, false),
    };
    let pattern: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    if path.len() < pattern.len() || (!open && path.len() != pattern.len()) {
        return None;
    }
    let mut parts = Vec::new();
    for (want, got) in pattern.iter().zip(path) {
        if want.starts_with('{') {
            parts.push(*got);
        } else if want != got {
            return None;
        }
    }
    Some(parts)
}

/// The method named `text`, if it is one `worker` knows by that exact name (HTTP
/// methods are case-sensitive); `None` for any other, which no row takes.
pub fn known_method(text: &str) -> Option<Method> {
    let method = Method::from(text.to_owned());
    (method.as_ref() == text).then_some(method)
}

impl<'a> Alias<'a> {
    /// The project the path names, if it names one (the plugin API's slug); the others
    /// read the project of the token.
    pub fn project(self) -> Option<&'a str> {
        match self {
            Self::PluginOverview(slug)
            | Self::PluginTimeseries(slug)
            | Self::PluginEndpoints(slug) => Some(slug),
            _ => None,
        }
    }
}

impl Route<'_> {
    /// Whether a browser page may make this request with a read token, so it answers
    /// CORS (its rows take `OPTIONS`): the read API and the seeds' read paths. The admin
    /// API, the dashboard and the badges never grant CORS.
    pub fn is_browser_read(&self) -> bool {
        matches!(self, Route::Read(..) | Route::Alias(_))
    }
}

/// The route of a request whose method is written `method`, or why there is none.
///
/// # Errors
///
/// The [`Miss`] to answer.
pub fn parse<'a>(method: &str, path: &'a str) -> Result<Route<'a>, Miss<'a>> {
    let method = known_method(method);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (area, parts) = AREAS
        .iter()
        .find_map(|(pattern, area)| matches(pattern, &segments).map(|parts| (*area, parts)))
        .unwrap_or((Area::Api, Vec::new()));
    if area == Area::Dashboard
        && let Some(project) = parts.first().filter(|p| !is_valid_slug(p))
    {
        return Err(Miss {
            area,
            kind: MissKind::NotASlug(project),
        });
    }
    let mut allowed = Vec::new();
    for row in TABLE {
        let Some(parts) = matches(row.path, &segments) else {
            continue;
        };
        if method.as_ref().is_some_and(|m| row.methods.contains(m)) {
            return Ok((row.make)(&parts));
        }
        allowed.extend(row.methods.iter().cloned());
    }
    let kind = if allowed.is_empty() {
        MissKind::NotFound
    } else {
        MissKind::Method(allowed)
    };
    Err(Miss { area, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: Method, path: &str, expected: Result<Route<'_>, (Area, u16, &str)>) {
        check_text(method.as_ref(), path, expected);
    }

    fn check_text(method: &str, path: &str, expected: Result<Route<'_>, (Area, u16, &str)>) {
        let got = parse(method, path);
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{method:?} {path}"),
            (Err(miss), Err((area, status, allow))) => {
                let error = miss.error(path);
                assert_eq!(
                    (
                        miss.area,
                        error.status,
                        miss.allow().unwrap_or_default().as_str()
                    ),
                    (area, status, allow),
                    "{method:?} {path}: {}",
                    error.message
                );
            }
            (got, expected) => panic!("{method:?} {path}: {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn read_paths() {
        use Method::*;
        check(
            Get,
            "/v1/projects/demo/overview",
            Ok(Route::Read("demo", Read::Overview)),
        );
        check(
            Get,
            "/v1/projects/demo/overview/",
            Ok(Route::Read("demo", Read::Overview)),
        );
        check(
            Get,
            "/v1/projects/demo/breakdown/route",
            Ok(Route::Read("demo", Read::Breakdown("route"))),
        );
        check(
            Get,
            "/v1/projects/demo/alerts/rules",
            Ok(Route::Read("demo", Read::AlertRules)),
        );
        check(
            Get,
            "/v1/projects/demo/campaigns/black%20friday",
            Ok(Route::Read("demo", Read::Campaign("black%20friday"))),
        );
        check(
            Get,
            "/v1/projects/demo/realtime",
            Ok(Route::Read("demo", Read::Realtime)),
        );
        check(
            Post,
            "/v1/projects/demo/realtime",
            Err((Area::Api, 405, "GET, OPTIONS")),
        );
        // The handler checks the slug and answers 400.
        check(
            Get,
            "/v1/projects//overview",
            Ok(Route::Read("", Read::Overview)),
        );
        check(
            Post,
            "/v1/projects/demo/export",
            Err((Area::Api, 405, "GET, OPTIONS")),
        );
        check(
            Head,
            "/v1/projects/demo/overview",
            Err((Area::Api, 405, "GET, OPTIONS")),
        );
        check(
            Delete,
            "/v1/projects/demo/breakdown/x",
            Err((Area::Api, 405, "GET, OPTIONS")),
        );
        check(
            Get,
            "/v1/projects/demo/breakdown",
            Err((Area::Api, 404, "")),
        );
        check(
            Post,
            "/v1/projects/demo/breakdown",
            Err((Area::Api, 404, "")),
        );
        check(
            Get,
            "/v1/projects/demo/retention",
            Err((Area::Api, 404, "")),
        );
        check(Get, "/v2/whatever", Err((Area::Api, 404, "")));
        check(Get, "/v1/health", Ok(Route::Health));
        check(Get, "/", Ok(Route::Health));
        check(Post, "/v1/health", Err((Area::Api, 405, "GET")));
        check(Get, "/openapi.json", Ok(Route::OpenApi));
    }

    #[test]
    fn alias_paths() {
        use Method::*;
        check(
            Get,
            "/api/plugins/p1/analytics/endpoints",
            Ok(Route::Alias(Alias::PluginEndpoints("p1"))),
        );
        check(
            Post,
            "/api/plugins/p1/analytics/overview",
            Err((Area::Api, 405, "GET, OPTIONS")),
        );
        check(
            Get,
            "/v1/analytics/images/a%2Fb",
            Ok(Route::Alias(Alias::CdnImage("a%2Fb"))),
        );
        check(Get, "/metrics", Ok(Route::Alias(Alias::TrackMetrics)));
        check(Post, "/sessions", Err((Area::Track, 405, "GET, OPTIONS")));
    }

    #[test]
    fn admin_paths() {
        use Method::*;
        check(
            Get,
            "/v1/admin/projects",
            Ok(Route::Admin(Admin::ListProjects)),
        );
        check(
            Post,
            "/v1/admin/projects",
            Ok(Route::Admin(Admin::CreateProject)),
        );
        check(
            Put,
            "/v1/admin/projects",
            Err((Area::Admin, 405, "GET, POST")),
        );
        check(
            Delete,
            "/v1/admin/projects/demo/keys/12",
            Ok(Route::Admin(Admin::RevokeKey("demo", "12"))),
        );
        check(
            Put,
            "/v1/admin/projects/demo/alert-rules/ar_1",
            Err((Area::Admin, 405, "GET, PATCH, DELETE")),
        );
        check(
            Put,
            "/v1/admin/projects/demo/campaigns/spring",
            Ok(Route::Admin(Admin::SetCampaign("demo", "spring"))),
        );
        check(
            Delete,
            "/v1/admin/projects/demo/users/alice%40example.com",
            Ok(Route::Admin(Admin::ForgetUser(
                "demo",
                "alice%40example.com",
            ))),
        );
        check(
            Get,
            "/v1/admin/projects/demo/users/u1",
            Err((Area::Admin, 405, "DELETE")),
        );
        check(
            Delete,
            "/v1/admin/projects/demo/users/",
            Err((Area::Admin, 404, "")),
        );
        check(
            Get,
            "/v1/admin/projects/demo/erasures/0123456789abcdef0123456789abcdef",
            Ok(Route::Admin(Admin::GetErasure(
                "demo",
                "0123456789abcdef0123456789abcdef",
            ))),
        );
        check(
            Delete,
            "/v1/admin/projects/demo/erasures/x",
            Err((Area::Admin, 405, "GET")),
        );
        check(
            Get,
            "/v1/admin/projects/demo/share",
            Ok(Route::Admin(Admin::ListShares("demo"))),
        );
        check(
            Delete,
            "/v1/admin/projects/demo/share/sh_0123456789abcdef",
            Ok(Route::Admin(Admin::RevokeShare(
                "demo",
                "sh_0123456789abcdef",
            ))),
        );
        check(
            Put,
            "/v1/admin/projects/demo/share",
            Err((Area::Admin, 405, "GET, POST")),
        );
        check(
            Put,
            "/v1/admin/projects/demo/digest",
            Ok(Route::Admin(Admin::PutDigest("demo"))),
        );
        check(
            Delete,
            "/v1/admin/projects/demo/digest",
            Ok(Route::Admin(Admin::DeleteDigest("demo"))),
        );
        check(
            Post,
            "/v1/admin/projects/demo/digest",
            Err((Area::Admin, 405, "GET, PUT, DELETE")),
        );
        check(Get, "/v1/admin", Err((Area::Admin, 404, "")));
        check(Get, "/v1/admin/users", Err((Area::Admin, 404, "")));
        let miss = parse("PATCH", "/v1/admin/projects/demo/alert-rules").unwrap_err();
        assert_eq!(miss.error("").message, "this endpoint takes GET or POST");
        let miss = parse("POST", "/v1/admin/projects/demo/alert-rules/x").unwrap_err();
        assert_eq!(
            miss.error("").message,
            "this endpoint takes GET, PATCH or DELETE"
        );
    }

    #[test]
    fn dashboard_paths() {
        use Method::*;
        let view = |entry| Page::View(entry);
        check(
            Get,
            "/dashboard/demo",
            Ok(Route::Dashboard("demo", view(Entry::Dashboard))),
        );
        check(
            Head,
            "/dashboard/demo",
            Ok(Route::Dashboard("demo", view(Entry::Dashboard))),
        );
        check(
            Post,
            "/dashboard/demo/login",
            Ok(Route::Dashboard("demo", Page::Login)),
        );
        check(
            Get,
            "/dashboard/demo/realtime",
            Ok(Route::Dashboard("demo", Page::Realtime)),
        );
        check(
            Post,
            "/dashboard/demo/realtime",
            Err((Area::Dashboard, 405, "GET, HEAD")),
        );
        check(
            Post,
            "/dashboard/demo",
            Err((Area::Dashboard, 405, "GET, HEAD")),
        );
        check(
            Get,
            "/dashboard/demo/logout",
            Err((Area::Dashboard, 405, "POST")),
        );
        check(Get, "/dashboard/demo/nope", Err((Area::Dashboard, 404, "")));
        check(
            Post,
            "/dashboard/Not_A_Slug",
            Err((Area::Dashboard, 404, "")),
        );
        check(Get, "/dashboard", Ok(Route::Projects(ProjectsPage::View)));
        check(Post, "/dashboard/", Ok(Route::Projects(ProjectsPage::Post)));
        check(
            Delete,
            "/dashboard",
            Err((Area::Dashboard, 405, "GET, HEAD, POST")),
        );
        check(
            Get,
            "/admin/plugins/demo/analytics",
            Ok(Route::Dashboard("demo", view(Entry::Admin))),
        );
        check(
            Post,
            "/admin/plugins/demo/analytics",
            Err((Area::Dashboard, 405, "GET, HEAD")),
        );
        check(
            Get,
            "/admin/plugins/x!/analytics",
            Err((Area::Dashboard, 404, "")),
        );
        check(
            Get,
            "/admin/plugins/demo/analytics/more",
            Err((Area::Api, 404, "")),
        );
        check(
            Head,
            "/badge/demo/p95.svg",
            Ok(Route::Badge("demo", "p95.svg")),
        );
        check(
            Post,
            "/badge/demo/p95.svg",
            Err((Area::Api, 405, "GET, HEAD")),
        );
        let miss = parse("GET", "/dashboard/x!").unwrap_err();
        assert_eq!(miss.error("").message, "\"x!\" is not a project slug");
        let miss = parse("POST", "/dashboard/demo").unwrap_err();
        assert_eq!(miss.error("").message, "this endpoint takes GET");
    }

    #[test]
    fn unknown_methods_match_no_row() {
        use Method::*;
        // `worker::Method` would read these as GET and answer them as reads.
        for method in ["QUERY", "PROPFIND", "PURGE", "get", "BREW"] {
            check_text(
                method,
                "/badge/demo/p95.svg",
                Err((Area::Api, 405, "GET, HEAD")),
            );
            check_text(
                method,
                "/v1/projects/demo/overview",
                Err((Area::Api, 405, "GET, OPTIONS")),
            );
            check_text(method, "/metrics", Err((Area::Track, 405, "GET, OPTIONS")));
            check_text(
                method,
                "/dashboard/demo",
                Err((Area::Dashboard, 405, "GET, HEAD")),
            );
            check_text(
                method,
                "/v1/admin/projects",
                Err((Area::Admin, 405, "GET, POST")),
            );
            check_text(method, "/v1/nothing", Err((Area::Api, 404, "")));
        }
        check(Trace, "/v1/health", Err((Area::Api, 405, "GET")));
        assert_eq!(known_method("GET"), Some(Method::Get));
        assert_eq!(known_method("OPTIONS"), Some(Method::Options));
        assert_eq!(known_method("QUERY"), None);
    }

    #[test]
    fn a_login_returns_to_the_page_it_was_asked_on() {
        for entry in [Entry::Dashboard, Entry::Admin, Entry::Realtime] {
            assert_eq!(Entry::named(entry.name()), entry);
        }
        assert_eq!(Entry::named("https://evil.example/"), Entry::Dashboard);
        assert_eq!(Entry::Realtime.path("demo"), "/dashboard/demo/realtime");
    }

    #[test]
    fn only_browser_reads_take_options() {
        use Method::*;
        for row in TABLE {
            let path = row.path.replace(['{', '}'], "");
            let route = parse(row.methods[0].as_ref(), &path).unwrap();
            assert_eq!(
                row.methods.contains(&Method::Options),
                route.is_browser_read(),
                "{}",
                row.path
            );
        }
        check(
            Options,
            "/v1/projects/demo/overview",
            Ok(Route::Read("demo", Read::Overview)),
        );
        check(Options, "/sessions", Ok(Route::Alias(Alias::TrackSessions)));
        check(
            Options,
            "/v1/admin/projects",
            Err((Area::Admin, 405, "GET, POST")),
        );
        check(
            Options,
            "/badge/demo/p95.svg",
            Err((Area::Api, 405, "GET, HEAD")),
        );
        let miss = parse("TRACE", "/v1/projects/demo/overview").unwrap_err();
        assert_eq!(miss.error("").message, "this endpoint takes GET");
    }

    #[test]
    fn every_row_is_reachable_and_in_its_area() {
        for row in TABLE {
            let path = row.path.replace(['{', '}'], "");
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            let area = AREAS
                .iter()
                .find(|(pattern, _)| matches(pattern, &segments).is_some())
                .map_or(Area::Api, |(_, area)| *area);
            for method in row.methods {
                let route = parse(method.as_ref(), &path);
                let expected = match route {
                    Ok(Route::Admin(_)) => Area::Admin,
                    Ok(Route::Dashboard(..) | Route::Projects(_)) => Area::Dashboard,
                    Ok(Route::Alias(Alias::TrackMetrics | Alias::TrackSessions)) => Area::Track,
                    Ok(_) => Area::Api,
                    Err(miss) => panic!("{method:?} {}: {miss:?}", row.path),
                };
                assert_eq!(area, expected, "{}", row.path);
            }
        }
    }
}
