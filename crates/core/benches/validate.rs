//! Benchmarks of validation (criterion); run with `cargo bench -p tally-core --bench validate`.
//!
//! The baseline parses the same JSON batch with plain `serde_json` into values; the
//! measured path is what ingest does per request: parse, decode each event (unknown
//! fields checked) and validate it (normalization and identifier hashing included).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use tally_core::{Context, RawEvent, Settings, validate};

const NOW: i64 = 1_737_210_600_000;

/// A realistic mixed batch: endpoint telemetry, marketing and CDN events.
fn batch(n: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..n)
        .map(|i| match i % 3 {
            0 => json!({
                "event_id": format!("6f9619ff-8b86-4011-b42d-{i:012x}"),
                "project": "aikit-seo", "name": "request", "method": "GET",
                "route": "/api/posts/:id?draft=1", "status": if i % 20 == 0 { 500 } else { 200 },
                "duration_ms": 12.5 + (i % 97) as f64, "instance": format!("site-{}", i % 300),
                "version": "2.4.1", "colo": "FRA", "timestamp": NOW - (i as i64) * 1000,
            }),
            1 => json!({
                "project": "aikit-seo", "name": "click", "user": format!("user-{}", i % 5000),
                "source": "newsletter", "medium": "email", "campaign": "black-friday",
                "timestamp": "2025-01-18T14:29:00Z", "metadata": {"button": "cta", "page": "/pricing"},
            }),
            _ => json!({
                "project": "aikit-seo", "name": "serve", "item": format!("img-{}", i % 1000),
                "variant": "webp-800", "status": 200, "country": "de", "bytes": 48_213 + i,
            }),
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

/// What ingest does with a request body; returns how many events were accepted.
fn ingest_path(body: &[u8], ctx: &Context<'_>) -> usize {
    let values: Vec<Value> = serde_json::from_slice(body).unwrap();
    let mut accepted = 0;
    for value in values {
        let raw: RawEvent = serde_json::from_value(value).unwrap();
        accepted += usize::from(
            validate(raw, ctx, &mut || {
                "00000000-0000-4000-8000-000000000000".to_owned()
            })
            .is_ok(),
        );
    }
    accepted
}

fn benches(c: &mut Criterion) {
    let ctx = Context {
        project: "aikit-seo",
        now_ms: NOW,
        settings: Settings::default(),
        id_secret: b"bench-secret-of-32-bytes-length!",
    };
    for n in [1usize, 100, 1000] {
        let body = batch(n);
        let mut group = c.benchmark_group(format!("batch_{n}"));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function("baseline_serde_json_parse", |b| {
            b.iter(|| black_box(serde_json::from_slice::<Vec<Value>>(black_box(&body)).unwrap()))
        });
        group.bench_function("parse_and_validate", |b| {
            b.iter(|| assert_eq!(ingest_path(black_box(&body), &ctx), n))
        });
        group.finish();
        let mut bytes = c.benchmark_group(format!("batch_{n}_bytes"));
        bytes.throughput(Throughput::Bytes(body.len() as u64));
        bytes.bench_function("parse_and_validate", |b| {
            b.iter(|| ingest_path(black_box(&body), &ctx))
        });
        bytes.finish();
    }
}

criterion_group!(all, benches);
criterion_main!(all);
