//! `GET /openapi.json`: the OpenAPI 3.1 description of every endpoint of the query and
//! ingest workers, written by hand in `workers/query/openapi.json`. The tests here check
//! that every path the routers match is described, so a new endpoint cannot be forgotten.

use tally_core::ApiError;
use worker::Response;

use crate::error::internal;

/// The document, as served.
pub const SPEC: &str = include_str!("../openapi.json");

/// The document: public, cacheable for an hour.
pub fn get() -> Result<Response, ApiError> {
    let mut response = Response::ok(SPEC).map_err(internal)?;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-type", "application/json"),
        ("cache-control", "public, max-age=3600"),
    ] {
        headers.set(name, value).map_err(internal)?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::SPEC;

    /// A route a router matches: its segments (`None` for a bound or ignored segment),
    /// whether anything may follow them, and its methods (empty for any).
    #[derive(Debug)]
    struct Route {
        segments: Vec<Option<String>>,
        open: bool,
        methods: Vec<String>,
    }

    impl Route {
        fn show(&self) -> String {
            let path: Vec<&str> = self
                .segments
                .iter()
                .map(|s| s.as_deref().unwrap_or("{}"))
                .collect();
            format!(
                "{:?} /{}{}",
                self.methods,
                path.join("/"),
                if self.open { "/..." } else { "" }
            )
        }
    }

    /// The routes of the match arms `(<methods>, [<segments>] | [...]) =>` in `source`,
    /// each under `prefix`. Arms that only answer with an error are skipped.
    fn routes(source: &str, prefix: &[Option<&str>]) -> Vec<Route> {
        let mut out = Vec::new();
        let lines: Vec<&str> = source.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let line = line.trim();
            let Some(arm) = line.strip_prefix('(') else {
                continue;
            };
            let Some(end) = arm.find(") =>").or_else(|| arm.find(") if ")) else {
                continue;
            };
            let arm = &arm[..end];
            let Some((methods, patterns)) = arm.split_once(", [") else {
                continue;
            };
            let only_errs = line.contains("=> Err(")
                || lines
                    .get(i + 1)
                    .is_some_and(|next| next.trim().starts_with("Err("));
            if only_errs {
                continue;
            }
            let methods: Vec<String> = if methods.trim() == "_" {
                Vec::new()
            } else {
                methods
                    .split('|')
                    .map(|m| m.trim().trim_start_matches("Method::").to_uppercase())
                    .collect()
            };
            for pattern in format!("[{patterns}").split('|') {
                let inner = pattern.trim().trim_start_matches('[').trim_end_matches(']');
                let mut segments: Vec<Option<String>> =
                    prefix.iter().map(|s| s.map(str::to_owned)).collect();
                let mut open = false;
                for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    if part.ends_with("..") {
                        open = true;
                    } else if let Some(literal) = part.strip_prefix('"') {
                        segments.push(Some(literal.trim_end_matches('"').to_owned()));
                    } else {
                        segments.push(None);
                    }
                }
                if segments == [Some(String::new())] {
                    segments.clear();
                }
                out.push(Route {
                    segments,
                    open,
                    methods: methods.clone(),
                });
            }
        }
        out
    }

    /// The segments of a documented path, `None` for a `{parameter}`.
    fn template(path: &str) -> Vec<Option<String>> {
        path.trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
            .collect()
    }

    fn documents(doc: &Value, route: &Route) -> bool {
        let paths = doc["paths"].as_object().unwrap();
        paths.iter().any(|(path, item)| {
            let t = template(path);
            let shape = if route.open {
                t.len() >= route.segments.len() && t[..route.segments.len()] == route.segments[..]
            } else {
                t == route.segments
            };
            shape
                && route.methods.iter().all(|m| {
                    // HEAD is answered wherever GET is.
                    let m = if m == "HEAD" { "GET" } else { m.as_str() };
                    item.get(m.to_lowercase()).is_some()
                })
        })
    }

    fn spec() -> Value {
        serde_json::from_str(SPEC).expect("openapi.json is JSON")
    }

    #[test]
    fn the_document_is_openapi_3_1_with_operations_and_schemas() {
        let doc = spec();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for (path, item) in paths {
            let operations: Vec<&str> = ["get", "post", "put", "patch", "delete"]
                .into_iter()
                .filter(|m| item.get(*m).is_some())
                .collect();
            assert!(!operations.is_empty(), "{path} has no operation");
            for m in operations {
                let op = &item[m];
                assert!(op["operationId"].is_string(), "{m} {path}: no operationId");
                assert!(op["responses"].is_object(), "{m} {path}: no responses");
            }
        }
        // Every reference resolves within the document.
        fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50, "{} references", found.len());
        for r in found {
            let pointer = r.strip_prefix('#').expect("local references only");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn every_routed_path_is_documented() {
        let doc = spec();
        let mut all = routes(include_str!("lib.rs"), &[]);
        all.extend(routes(
            include_str!("admin.rs"),
            &[Some("v1"), Some("admin")],
        ));
        all.extend(routes(
            include_str!("dashboard/mod.rs"),
            &[Some("dashboard"), None],
        ));
        for endpoint in crate::READ_ENDPOINTS {
            all.push(Route {
                segments: vec![
                    Some("v1".into()),
                    Some("projects".into()),
                    None,
                    Some(endpoint.into()),
                ],
                open: false,
                methods: vec!["GET".into()],
            });
        }
        let ingest = include_str!("../../ingest/src/lib.rs");
        for line in ingest.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("(Method::Post, \"")
                && let Some((path, _)) = rest.split_once('"')
            {
                all.push(Route {
                    segments: template(path).into_iter().collect(),
                    open: false,
                    methods: vec!["POST".into()],
                });
            }
        }
        // The parser must see the routers, or this test would pass on nothing.
        assert!(all.len() >= 40, "{} routes: {all:#?}", all.len());
        let shown: Vec<String> = all.iter().map(Route::show).collect();
        for expected in [
            "[\"GET\"] /v1/projects/{}/overview",
            "[] /api/plugins/{}/analytics/endpoints",
            "[\"GET\", \"HEAD\"] /badge/{}/{}",
            "[\"DELETE\"] /v1/admin/projects/{}/keys/{}",
            "[\"POST\"] /dashboard/{}/login",
            "[\"POST\"] /api/event",
            "[\"GET\"] /openapi.json",
        ] {
            assert!(
                shown.iter().any(|s| s == expected),
                "{expected} in {shown:#?}"
            );
        }
        let missing: Vec<String> = all
            .iter()
            .filter(|r| !documents(&doc, r))
            .map(Route::show)
            .collect();
        assert!(missing.is_empty(), "not in openapi.json: {missing:#?}");
    }

    #[test]
    fn a_forgotten_endpoint_is_caught() {
        let doc = spec();
        let source = "(Method::Get, [\"v1\", \"projects\", project, \"retention\"]) => {";
        let found = routes(source, &[]);
        assert_eq!(found.len(), 1);
        assert!(!documents(&doc, &found[0]), "{}", found[0].show());
        let source = "(Method::Patch, [\"v1\", \"projects\", project, \"overview\"]) => {";
        assert!(
            !documents(&doc, &routes(source, &[])[0]),
            "a new method too"
        );
    }
}
