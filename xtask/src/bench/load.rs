//! Ingest load for `cargo xtask bench`: [`CONNECTIONS`] threads, each with its own HTTP
//! agent, post batches of endpoint events to `POST /v1/events` for [`SECONDS`] and count
//! what comes back. Every answer should be 202 with `accepted` equal to the batch size;
//! anything else is counted and sampled, never a panic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::stack::{agent, snippet};

/// Concurrent connections, one thread and one agent each.
pub const CONNECTIONS: usize = 4;
/// How long each batch size is sent for.
pub const SECONDS: u64 = 10;
/// The batch sizes measured through workerd.
pub const BATCHES: [u64; 3] = [1, 10, 100];
/// How many unexpected answers are quoted in the results.
const SAMPLES: usize = 5;
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The body of one request: a JSON array of `batch` endpoint events whose ids are made
/// from the numbers `first..first + batch`, so they are unique across the whole bench.
pub fn body(first: u64, batch: u64) -> String {
    let mut out = String::with_capacity(batch as usize * 220 + 2);
    out.push('[');
    for n in first..first + batch {
        if n > first {
            out.push(',');
        }
        let method = if n.is_multiple_of(5) { "POST" } else { "GET" };
        let status = if n.is_multiple_of(50) {
            500
        } else if n.is_multiple_of(17) {
            404
        } else {
            200
        };
        out.push_str(&format!(
            r#"{{"event_id":"00000000-0000-4000-8000-{n:012x}","name":"request","method":"{method}","route":"/api/posts/{}","status":{status},"duration_ms":{:.1},"instance":"site-{}","version":"2.4.{}"}}"#,
            n % 40,
            (n % 5000) as f64 * 0.1 + 1.0,
            n % 300,
            n % 3,
        ));
    }
    out.push(']');
    out
}

/// The `q` quantile (0 to 1) of sorted values, by nearest rank; `None` when empty.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
}

/// What one connection (or all of them, merged) saw.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    events_accepted: u64,
    /// Answers other than 202, and requests that got no answer.
    errors: u64,
    /// 202 answers whose `accepted` was not the batch size (or was unreadable).
    short: u64,
    /// Milliseconds from sending a request to reading its whole answer, for every answer.
    latencies_ms: Vec<f64>,
    samples: Vec<String>,
}

impl Tally {
    fn sample(&mut self, what: String) {
        if self.samples.len() < SAMPLES {
            self.samples.push(what);
        }
    }

    fn merge(&mut self, other: Self) {
        self.requests += other.requests;
        self.events_accepted += other.events_accepted;
        self.errors += other.errors;
        self.short += other.short;
        self.latencies_ms.extend(other.latencies_ms);
        for s in other.samples {
            self.sample(s);
        }
    }
}

/// Sends batches of `batch` events from [`CONNECTIONS`] threads for [`SECONDS`], taking
/// event numbers from `ids`, and reports requests, events accepted, events/s, latency
/// and errors.
pub fn run(ingest: &str, authorization: &str, batch: u64, ids: &Arc<AtomicU64>) -> Value {
    let url = format!("{ingest}/v1/events");
    let start_line = Arc::new(Barrier::new(CONNECTIONS + 1));
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (url, auth) = (url.clone(), authorization.to_owned());
            let (ids, start_line) = (Arc::clone(ids), Arc::clone(&start_line));
            std::thread::spawn(move || {
                let http = agent(TIMEOUT);
                start_line.wait();
                let deadline = Instant::now() + Duration::from_secs(SECONDS);
                let mut tally = Tally::default();
                while Instant::now() < deadline {
                    let first = ids.fetch_add(batch, Ordering::Relaxed);
                    send(&http, &url, &auth, &body(first, batch), batch, &mut tally);
                }
                tally
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    let mut all = Tally::default();
    for thread in threads {
        match thread.join() {
            Ok(tally) => all.merge(tally),
            Err(_) => all.sample("a load thread panicked".into()),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    all.latencies_ms.sort_by(f64::total_cmp);
    let ms = |q: f64| percentile(&all.latencies_ms, q).map_or(Value::Null, |x| json!(x));
    json!({
        "batch": batch,
        "connections": CONNECTIONS,
        "seconds": seconds,
        "requests": all.requests,
        "events_accepted": all.events_accepted,
        "events_per_s": all.events_accepted as f64 / seconds,
        "requests_per_s": all.requests as f64 / seconds,
        "request_ms_p50": ms(0.5),
        "request_ms_p99": ms(0.99),
        "errors": all.errors,
        "short_accepts": all.short,
        "unexpected_answers": all.samples,
    })
}

/// Posts one batch and counts its answer.
fn send(http: &ureq::Agent, url: &str, auth: &str, body: &str, batch: u64, tally: &mut Tally) {
    tally.requests += 1;
    let sent = Instant::now();
    let answer = http
        .post(url)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .send(body)
        .and_then(|mut r| {
            let text = r.body_mut().read_to_string()?;
            Ok((r.status().as_u16(), text))
        });
    let (status, text) = match answer {
        Ok(answer) => answer,
        Err(e) => {
            tally.errors += 1;
            tally.sample(format!("no answer: {e}"));
            // A refused connection fails at once; do not spin on it.
            std::thread::sleep(Duration::from_millis(10));
            return;
        }
    };
    tally
        .latencies_ms
        .push(sent.elapsed().as_secs_f64() * 1000.0);
    if status != 202 {
        tally.errors += 1;
        tally.sample(format!("{status}: {}", snippet(&text)));
        return;
    }
    let accepted = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["accepted"].as_u64());
    if let Some(n) = accepted {
        tally.events_accepted += n;
    }
    if accepted != Some(batch) {
        tally.short += 1;
        tally.sample(format!(
            "202 accepting {accepted:?} of {batch}: {}",
            snippet(&text)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::{Context, RawEvent, Settings, validate};

    #[test]
    fn bodies_hold_valid_events_with_unique_ids() {
        let ctx = Context {
            project: "bench",
            now_ms: 1_737_210_600_000,
            settings: Settings::default(),
            id_secret: b"secret",
        };
        let mut ids = std::collections::HashSet::new();
        for (first, batch) in [(0, 1), (1, 10), (11, 100)] {
            let events: Vec<Value> = serde_json::from_str(&body(first, batch)).unwrap();
            assert_eq!(events.len() as u64, batch);
            for event in events {
                assert!(ids.insert(event["event_id"].as_str().unwrap().to_owned()));
                let raw: RawEvent = serde_json::from_value(event).unwrap();
                let accepted = validate(raw, &ctx, &mut || unreachable!()).unwrap();
                assert_eq!(accepted.event.name, "request");
                assert!(accepted.event.instance.is_some() && accepted.event.version.is_some());
            }
        }
        assert_eq!(ids.len(), 111);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    /// Answers every request on a local port with `status` and `body`, closing after each.
    fn serve(status: u16, body: &'static str) -> String {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut content = vec![0; length];
                let _ = reader.read_exact(&mut content);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = reader.get_mut().write_all(answer.as_bytes());
            }
        });
        base
    }

    #[test]
    fn unexpected_answers_are_counted_not_fatal() {
        let http = agent(TIMEOUT);
        let mut tally = Tally::default();
        let ok = serve(202, r#"{"accepted":10,"rejected":0,"results":[]}"#);
        send(
            &http,
            &format!("{ok}/v1/events"),
            "Bearer t",
            &body(0, 10),
            10,
            &mut tally,
        );
        let short = serve(202, r#"{"accepted":9,"rejected":1,"results":[]}"#);
        send(
            &http,
            &format!("{short}/v1/events"),
            "Bearer t",
            &body(0, 10),
            10,
            &mut tally,
        );
        let busy = serve(503, r#"{"error":{"code":"queue_unavailable"}}"#);
        send(
            &http,
            &format!("{busy}/v1/events"),
            "Bearer t",
            &body(0, 10),
            10,
            &mut tally,
        );
        assert_eq!(tally.requests, 3);
        assert_eq!(tally.events_accepted, 19);
        assert_eq!((tally.errors, tally.short), (1, 1));
        assert_eq!(tally.latencies_ms.len(), 3);
        assert!(
            tally.samples[0].starts_with("202 accepting Some(9) of 10"),
            "{:?}",
            tally.samples
        );
        assert!(tally.samples[1].starts_with("503: "), "{:?}", tally.samples);
    }
}
