//! Which worker answers a path, pure and unit-tested natively: ingest's paths go to the
//! ingest worker, every other path to the query worker (which answers the paths it does
//! not know with its own 404). The tests keep [`INGEST_PATHS`] equal to the paths
//! `openapi.json` documents on ingest's server, which the query worker's `openapi.rs`
//! test keeps equal to the paths ingest's own router alone answers: a path moved or
//! added there cannot be routed to the wrong worker here.

/// The path of an absolute URL as the runtime gives it (`https://host/path?query`),
/// without its query or fragment; `/` when it has none. The runtime has already
/// resolved dot segments, and percent-escapes are compared as written, as the workers'
/// own routers compare them.
pub fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    // The authority ends at the path, the query or the fragment, whichever comes first.
    let rest = &after_scheme[after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len())..];
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    match &rest[..end] {
        "" => "/",
        path => path,
    }
}

/// The worker a request is handed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Ingest,
    Query,
}

/// The paths the ingest worker answers, exactly (it has no path parameters). `/` is the
/// query worker's: both answer it with their health, and the query worker's names the
/// API.
pub const INGEST_PATHS: [&str; 4] = ["/v1/events", "/track", "/api/event", "/healthz"];

/// The worker that answers `path` (the URL's path, without its query).
pub fn target(path: &str) -> Target {
    if INGEST_PATHS.contains(&path) {
        Target::Ingest
    } else {
        Target::Query
    }
}

impl Target {
    /// The worker's name, for messages and logs.
    pub fn worker(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Query => "query",
        }
    }

    /// The body of the 502 answered when the worker could not be reached or threw: the
    /// shape of every Tally error, `{"error": {"code", "message"}}`.
    pub fn failure_body(self) -> &'static str {
        match self {
            Self::Ingest => {
                r#"{"error":{"code":"upstream_failed","message":"the ingest worker did not answer; please retry"}}"#
            }
            Self::Query => {
                r#"{"error":{"code":"upstream_failed","message":"the query worker did not answer; please retry"}}"#
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn check(path: &str, expected: Target) {
        assert_eq!(target(path), expected, "{path}");
    }

    #[test]
    fn ingest_paths_go_to_ingest_and_everything_else_to_query() {
        for path in INGEST_PATHS {
            check(path, Target::Ingest);
        }
        for path in [
            "/",
            "/metrics",
            "/sessions",
            "/openapi.json",
            "/v1/health",
            "/v1/projects/p/overview",
            "/dashboard/p",
            "/badge/p/installs.svg",
            // Near misses of ingest's paths are the query worker's 404s.
            "/track/",
            "/tracks",
            "/v1/events/1",
            "/api/events",
            "/TRACK",
            "",
            "/nope",
        ] {
            check(path, Target::Query);
        }
    }

    #[test]
    fn paths_are_read_from_absolute_urls() {
        let cases = [
            ("https://tally.example/track", "/track"),
            ("http://127.0.0.1:8790/track?key=tw_x#top", "/track"),
            (
                "https://tally.example/metrics?start_date=2025-01-01",
                "/metrics",
            ),
            ("https://tally.example/", "/"),
            ("https://tally.example", "/"),
            ("https://tally.example?x=/track", "/"),
            (
                "https://tally.example/v1/analytics/images/cat%20%C3%BC.jpg",
                "/v1/analytics/images/cat%20%C3%BC.jpg",
            ),
            ("https://user@tally.example:443/api/event", "/api/event"),
        ];
        for (url, path) in cases {
            assert_eq!(path_of(url), path, "{url}");
        }
    }

    #[test]
    fn the_failure_bodies_are_tallys_error_shape_naming_the_worker() {
        for target in [Target::Ingest, Target::Query] {
            let body: Value = serde_json::from_str(target.failure_body()).unwrap();
            assert_eq!(body["error"]["code"], "upstream_failed");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(target.worker()), "{message}");
            assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        }
    }

    /// The document every endpoint of both workers is written in, checked against their
    /// routers and real answers elsewhere (query's `openapi.rs`, e2e's `openapi.rs`).
    fn openapi() -> Value {
        serde_json::from_str(include_str!("../../query/openapi.json")).unwrap()
    }

    /// Whether a `servers` list names the ingest worker's own host.
    fn names_ingest(servers: &Value) -> bool {
        servers.as_array().is_some_and(|servers| {
            servers.iter().any(|s| {
                s["description"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("The ingest worker"))
            })
        })
    }

    #[test]
    fn every_documented_path_goes_to_the_worker_whose_server_documents_it() {
        let doc = openapi();
        assert!(
            !names_ingest(&doc["servers"]),
            "the document's own servers are the query worker's and the front's"
        );
        let paths = doc["paths"].as_object().unwrap();
        let mut ingest = Vec::new();
        for (path, item) in paths {
            let expected = if names_ingest(&item["servers"]) {
                ingest.push(path.as_str());
                Target::Ingest
            } else {
                Target::Query
            };
            // A templated part goes to the same worker whatever fills it.
            let filled = path.replace('{', "x").replace('}', "");
            check(&filled, expected);
        }
        ingest.sort_unstable();
        let mut mine = INGEST_PATHS.to_vec();
        mine.sort_unstable();
        assert_eq!(ingest, mine, "openapi.json's ingest paths");
    }
}
