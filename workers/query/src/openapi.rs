//! `GET /openapi.json`: the OpenAPI 3.1 description of every endpoint of the query and
//! ingest workers, written by hand in `workers/query/openapi.json`. The tests here check
//! it against the routing table ([`crate::route::TABLE`]) and ingest's router both ways:
//! every endpoint is described, so a new one cannot be forgotten, and every described
//! path is routed.

use tally_edge::ApiError;
use worker::Response;

use crate::edge::error::internal;

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
    use crate::route::TABLE;

    /// An endpoint: its method and its path, `{}` for every templated part.
    type Endpoint = (String, String);

    /// A path with every `{name}` as `{}`.
    fn template(path: &str) -> String {
        let parts: Vec<&str> = path
            .split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect();
        parts.join("/")
    }

    fn spec() -> Value {
        serde_json::from_str(SPEC).expect("openapi.json is JSON")
    }

    /// Every operation of the document.
    fn documented(doc: &Value) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "patch", "delete", "options"] {
                if item.get(method).is_some() {
                    out.push((method.to_uppercase(), template(path)));
                }
            }
        }
        out
    }

    /// Every endpoint the query worker's table routes (HEAD goes with GET, which the
    /// document describes) and ingest's router matches.
    fn routed() -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = TABLE
            .iter()
            .flat_map(|row| {
                row.methods
                    .iter()
                    .filter(|m| **m != worker::Method::Head)
                    .map(|m| (m.as_ref().to_owned(), template(row.path)))
            })
            .collect();
        out.extend(ingest_routed());
        out
    }

    /// Every endpoint ingest's router matches.
    fn ingest_routed() -> Vec<Endpoint> {
        let mut out = Vec::new();
        let ingest = include_str!("../../ingest/src/lib.rs");
        // Its arms: `(Some(Method::Post), "/track") =>`, `(Some(Method::Get), "/" |
        // "/healthz") =>`.
        for line in ingest.lines().map(str::trim) {
            let Some((method, paths)) = line
                .strip_prefix("(Some(Method::")
                .and_then(|arm| arm.split_once(") =>"))
                .and_then(|(arm, _)| arm.split_once("), "))
            else {
                continue;
            };
            for path in paths.split('|').map(str::trim) {
                if let Some(path) = path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                    out.push((method.to_uppercase(), template(path)));
                }
            }
        }
        out
    }

    #[test]
    fn the_document_is_openapi_3_1_with_operations_and_schemas() {
        let doc = spec();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for (path, item) in paths {
            let operations: Vec<&str> = ["get", "post", "put", "patch", "delete", "options"]
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
    fn every_routed_endpoint_is_documented_and_every_documented_one_routed() {
        let documented = documented(&spec());
        let routed = routed();
        // The routers must be seen, or this test would pass on nothing.
        assert!(routed.len() >= 40, "{} routes: {routed:#?}", routed.len());
        for expected in [
            ("GET", "/v1/projects/{}/overview"),
            ("DELETE", "/v1/admin/projects/{}/keys/{}"),
            ("POST", "/dashboard/{}/login"),
            ("GET", "/badge/{}/{}"),
            ("POST", "/api/event"),
            ("OPTIONS", "/api/event"),
            ("OPTIONS", "/metrics"),
            ("GET", "/healthz"),
        ] {
            let expected = (expected.0.to_owned(), expected.1.to_owned());
            assert!(routed.contains(&expected), "{expected:?} in {routed:#?}");
        }
        let undocumented: Vec<&Endpoint> =
            routed.iter().filter(|e| !documented.contains(e)).collect();
        assert!(
            undocumented.is_empty(),
            "not in openapi.json: {undocumented:#?}"
        );
        let unrouted: Vec<&Endpoint> = documented.iter().filter(|e| !routed.contains(e)).collect();
        assert!(
            unrouted.is_empty(),
            "in openapi.json, routed nowhere: {unrouted:#?}"
        );
    }

    /// The paths the document puts on the ingest worker's server (its `servers`) are the
    /// paths ingest routes and the query worker does not (`/` both answer, as query's):
    /// the front worker hands exactly those to ingest, checked against this document.
    #[test]
    fn the_paths_documented_on_ingests_server_are_the_ones_ingest_alone_routes() {
        let doc = spec();
        let mut on_ingest: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, item)| {
                item["servers"].as_array().is_some_and(|servers| {
                    servers.iter().any(|s| {
                        s["description"]
                            .as_str()
                            .is_some_and(|d| d.starts_with("The ingest worker"))
                    })
                })
            })
            .map(|(path, _)| template(path))
            .collect();
        let query: Vec<String> = TABLE.iter().map(|row| template(row.path)).collect();
        let mut ingest_only: Vec<String> = ingest_routed()
            .into_iter()
            .map(|(_, path)| path)
            .filter(|path| !query.contains(path))
            .collect();
        for paths in [&mut on_ingest, &mut ingest_only] {
            paths.sort();
            paths.dedup();
        }
        assert!(ingest_only.len() >= 4, "{ingest_only:?}");
        assert_eq!(on_ingest, ingest_only);
    }

    #[test]
    fn a_forgotten_endpoint_is_caught() {
        let documented = documented(&spec());
        for forgotten in [
            ("GET", "/v1/projects/{project}/retention"),
            ("PATCH", "/v1/projects/{project}/overview"),
        ] {
            let endpoint = (forgotten.0.to_owned(), template(forgotten.1));
            assert!(!documented.contains(&endpoint), "{forgotten:?}");
        }
    }
}
