//! The Worker middleware (`clients/worker-middleware`) end to end: its example Worker
//! runs under wrangler beside the stack, and what it serves shows in the query API with
//! the right routes, statuses, errors and exact counts; with ingest unreachable or
//! failing, the Worker answers as it would without the middleware, and a failed batch
//! is sent once more with the same event ids.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::example_worker::{ExampleWorker, free_port};
use crate::support::receiver::{Received, Receiver};
use crate::support::{
    Answer, Project, breakdown_events, eventually, overview, request, url, wait_for_count,
};

/// The requests the tests send the example Worker: method, path, the status it answers
/// and the route the middleware must report.
const REQUESTS: &[(&str, &str, u16, &str)] = &[
    ("GET", "/hello", 200, "/hello"),
    ("GET", "/posts/17", 200, "/posts/:id"),
    ("GET", "/hello", 200, "/hello"),
    ("GET", "/missing/4242", 404, "/missing/:id"),
    ("GET", "/boom", 500, "/boom"),
    (
        "POST",
        "/posts/first-post/comments",
        201,
        "/posts/:slug/comments",
    ),
    (
        "GET",
        "/posts/9f8e7d6c-5b4a-4321-8765-0123456789ab",
        404,
        "/posts/:id",
    ),
    ("GET", "/hello?utm_source=x", 200, "/hello"),
    ("GET", "/boom", 500, "/boom"),
    ("GET", "/missing/4243", 404, "/missing/:id"),
];

/// Sends every request of [`REQUESTS`] to `worker`, checks each answer is the one the
/// Worker gives without the middleware, and returns the slowest answer's time.
fn exercise(worker: &ExampleWorker) -> Duration {
    let mut slowest = Duration::ZERO;
    for (method, path, status, _) in REQUESTS {
        let started = Instant::now();
        let answer = request(method, &format!("{}{path}", worker.url), &[], None);
        slowest = slowest.max(started.elapsed());
        assert_eq!(
            answer.status,
            *status,
            "{method} {path}: {:?}\n{}",
            answer.json,
            worker.log_text()
        );
        if *path == "/hello" {
            assert_eq!(answer.json, "hello\n");
        }
    }
    slowest
}

fn read(p: &Project, path: &str) -> Answer {
    eventually(
        &format!("{path} answers 200"),
        Duration::from_secs(20),
        || {
            let a = p.read(path);
            if a.status == 200 {
                Ok(a)
            } else {
                Err(format!("{} {}", a.status, a.json))
            }
        },
    )
}

#[test]
fn middleware_reports_every_request_of_a_worker_with_its_route_status_and_error() {
    let p = Project::new("middleware");
    let worker = ExampleWorker::start(&[
        ("TALLY_ENDPOINT", &url("ingest")),
        ("TALLY_WRITE_KEY", &p.write_key),
        ("TALLY_INSTANCE", "site-a"),
        // Small batches and a short wait, so both ways a batch leaves are taken.
        ("TALLY_MAX_BATCH_EVENTS", "4"),
        ("TALLY_FLUSH_INTERVAL_MS", "500"),
    ]);
    exercise(&worker);
    let n = REQUESTS.len() as u64;
    wait_for_count(&p, n);
    // Nothing arrives twice, late.
    std::thread::sleep(Duration::from_secs(2));
    let o = overview(&p);
    assert_eq!(o.json["events"], n, "{}", o.json);
    assert_eq!(o.json["errors"], 2, "{}", o.json);
    assert_eq!(o.json["unique_instances"], 1, "{}", o.json);
    assert_eq!(o.json["duration_ms"]["count"], n, "{}", o.json);

    let mut routes: BTreeMap<String, u64> = BTreeMap::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for (_, _, status, route) in REQUESTS {
        *routes.entry((*route).to_owned()).or_default() += 1;
        *statuses.entry(format!("{}xx", status / 100)).or_default() += 1;
    }
    assert_eq!(
        breakdown_events(&read(&p, "breakdown/route?limit=100").json),
        routes
    );
    assert_eq!(
        breakdown_events(&read(&p, "breakdown/status?limit=100").json),
        statuses
    );
    assert_eq!(
        breakdown_events(&read(&p, "breakdown/version").json),
        BTreeMap::from([("1.4.0".to_owned(), n)])
    );
    assert_eq!(
        breakdown_events(&read(&p, "breakdown/name").json),
        BTreeMap::from([("request".to_owned(), n)])
    );

    let errors = read(&p, "errors").json;
    assert_eq!(errors["errors"], 2, "{errors}");
    assert_eq!(errors["unclassified"], 0, "{errors}");
    let classes = errors["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 1, "{errors}");
    assert_eq!(classes[0]["error_class"], "PluginError", "{errors}");
    assert_eq!(classes[0]["count"], 2, "{errors}");
    assert_eq!(
        classes[0]["last_message"]["message"], "the plugin broke on purpose",
        "{errors}"
    );
    assert_eq!(
        classes[0]["routes"],
        serde_json::json!([{"route": "/boom", "count": 2}]),
        "{errors}"
    );

    // Every event as stored: its own UUID, the request's method and a duration.
    let export = read(&p, "export");
    let lines: Vec<Value> = export
        .json
        .as_str()
        .expect("NDJSON")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, n);
    let mut methods: BTreeMap<String, u64> = BTreeMap::new();
    for line in &lines {
        let id = line["event_id"].as_str().unwrap();
        assert_eq!(id.len(), 36, "{line}");
        assert!(line["duration_ms"].is_number(), "{line}");
        *methods
            .entry(line["method"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        methods,
        BTreeMap::from([("GET".to_owned(), n - 1), ("POST".to_owned(), 1)])
    );
}

#[test]
fn middleware_never_breaks_or_slows_the_worker_when_ingest_is_unreachable() {
    // A port nothing listens on: every send fails at once, and its one retry too.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let worker = ExampleWorker::start(&[
        ("TALLY_ENDPOINT", &dead),
        ("TALLY_WRITE_KEY", "tw_unreachable"),
        ("TALLY_MAX_BATCH_EVENTS", "4"),
        ("TALLY_FLUSH_INTERVAL_MS", "300"),
    ]);
    exercise(&worker);
    // After the failed sends and their retries, the isolate still serves as before.
    std::thread::sleep(Duration::from_secs(2));
    exercise(&worker);
    let log = worker.log_text();
    assert!(
        log.contains("Tally: ") && log.contains("not sent after a retry"),
        "the failed send is logged:\n{log}"
    );

    // An ingest that takes the connection and never answers: the responses do not wait.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("http://{}", hanging.local_addr().unwrap());
    let worker = ExampleWorker::start(&[
        ("TALLY_ENDPOINT", &silent),
        ("TALLY_WRITE_KEY", "tw_silent"),
        ("TALLY_MAX_BATCH_EVENTS", "1"),
    ]);
    let slowest = exercise(&worker);
    // A silent ingest holds a send until the runtime gives up, some 20 s and more.
    assert!(
        slowest < Duration::from_secs(5),
        "a response waited for ingest: {slowest:?}"
    );
    drop(hanging);
}

#[test]
fn middleware_with_a_key_ingest_refuses_logs_the_refusal_and_stores_nothing() {
    // A read token where the write key belongs: ingest answers 401 wrong_key_kind.
    let p = Project::new("middleware-refused");
    let worker = ExampleWorker::start(&[
        ("TALLY_ENDPOINT", &url("ingest")),
        ("TALLY_WRITE_KEY", &p.read_token),
        // One batch of all the requests below, however slowly they come.
        ("TALLY_MAX_BATCH_EVENTS", &REQUESTS.len().to_string()),
        ("TALLY_FLUSH_INTERVAL_MS", "20000"),
    ]);
    exercise(&worker);
    let log = eventually("the refusal is logged", Duration::from_secs(20), || {
        let log = worker.log_text();
        if log.contains("ingest refused") {
            Ok(log)
        } else {
            Err(log)
        }
    });
    assert!(
        log.contains("401") && log.contains("wrong_key_kind"),
        "the log says why: {log}"
    );
    assert_eq!(
        log.matches("ingest refused").count(),
        1,
        "a refusal is not retried: {log}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let o = overview(&p);
    assert_eq!(o.status, 200, "{}", o.json);
    assert_eq!(o.json["events"], 0, "{}", o.json);
    // The Worker serves on.
    exercise(&worker);
}

/// The events of a request the receiver got.
fn events_of(received: &Received) -> Vec<Value> {
    serde_json::from_str::<Value>(&received.body)
        .unwrap_or_else(|e| panic!("{e}: {}", received.body))
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", received.body))
        .clone()
}

fn ids_of(received: &Received) -> Vec<String> {
    events_of(received)
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn middleware_retries_a_failed_batch_once_with_the_same_event_ids() {
    // Ingest fails the first batch and its retry, then takes everything.
    let receiver = Receiver::start(&[503, 503]);
    let worker = ExampleWorker::start(&[
        ("TALLY_ENDPOINT", &receiver.url),
        ("TALLY_WRITE_KEY", "tw_retried"),
        ("TALLY_MAX_BATCH_EVENTS", "3"),
        // Long enough that only full batches leave during the test.
        ("TALLY_FLUSH_INTERVAL_MS", "20000"),
    ]);
    let hello = || {
        let a = request("GET", &format!("{}/hello", worker.url), &[], None);
        assert_eq!(a.status, 200);
    };
    for _ in 0..3 {
        hello();
    }
    let got = eventually("the batch and its retry", Duration::from_secs(20), || {
        let got = receiver.received();
        if got.len() >= 2 {
            Ok(got)
        } else {
            Err(format!("{} requests", got.len()))
        }
    });
    assert_eq!(got[0].status, 503);
    assert_eq!(got[1].status, 503);
    assert_eq!(ids_of(&got[0]).len(), 3, "{}", got[0].body);
    assert_eq!(
        ids_of(&got[0]),
        ids_of(&got[1]),
        "a retry sends the same ids"
    );
    assert_eq!(got[0].body, got[1].body, "a retry sends the same events");
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook/v1/events");
        assert_eq!(r.header("authorization"), Some("Bearer tw_retried"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    // Retried once only: the failed batch is given up.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.received().len(), 2);

    for _ in 0..3 {
        hello();
    }
    let got = eventually("the next batch", Duration::from_secs(20), || {
        let got = receiver.received();
        if got.len() >= 3 {
            Ok(got)
        } else {
            Err(format!("{} requests", got.len()))
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        receiver.received().len(),
        3,
        "a batch taken is not sent again"
    );
    assert_eq!(got[2].status, 200);
    let fresh = ids_of(&got[2]);
    assert_eq!(fresh.len(), 3);
    assert!(fresh.iter().all(|id| !ids_of(&got[0]).contains(id)));
    for event in events_of(&got[2]) {
        assert_eq!(event["route"], "/hello", "{event}");
        assert_eq!(event["status"], 200, "{event}");
        assert_eq!(event["version"], "1.4.0", "{event}");
    }
}
