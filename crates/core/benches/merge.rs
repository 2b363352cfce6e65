//! What a range read costs per stored row: 720 rollup rows' summaries (a month of hours,
//! or a few hundred day rows of a breakdown) decoded from the hex text BLOBs cross D1 as,
//! and merged into one, as `tally_storage::read::merge` does. `cargo bench -p tally-core
//! --bench merge`.
//!
//! Each step is timed apart: hex to bytes (the table-driven `hash::unhex`, and the
//! char-by-char reading storage used before it, kept here as the reference), decoding,
//! merging, and the whole path; for dense HyperLogLogs (3,074 bytes, 6,148 hex digits)
//! and for sketches of an hour of a busy route.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tally_core::hash::{hex, unhex};
use tally_core::hll::Hll;
use tally_core::sketch::Sketch;

/// splitmix64: distinct, uniformly distributed hashes.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Rows merged per answer.
const ROWS: usize = 720;

/// The reading of hex text storage used before `hash::unhex`: one `to_digit` per
/// character, collected through a `Result` per pair.
fn unhex_by_char(text: &str) -> Result<Vec<u8>, &'static str> {
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err("odd-length hex");
    }
    bytes
        .chunks(2)
        .map(|pair| match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err("invalid hex"),
        })
        .collect()
}

/// `ROWS` dense counters of 20,000 hashes each (a day of a busy dimension value), as hex.
fn dense_rows() -> Vec<String> {
    let mut rng = SplitMix64(1);
    (0..ROWS)
        .map(|_| {
            let mut hll = Hll::new();
            for _ in 0..20_000 {
                hll.insert_hash(rng.next_u64());
            }
            assert!(!hll.is_sparse());
            hex(&hll.encode())
        })
        .collect()
}

/// `ROWS` sketches of 500 lognormal durations each (median about 50 ms), as hex.
fn sketch_rows() -> Vec<String> {
    let mut rng = SplitMix64(2);
    (0..ROWS)
        .map(|_| {
            let sketch: Sketch = (0..500)
                .map(|_| {
                    // Box–Muller from two uniforms in (0, 1].
                    let u =
                        |rng: &mut SplitMix64| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    let (a, b) = (u(&mut rng).max(1e-12), u(&mut rng));
                    let normal = (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos();
                    50.0 * (1.2 * normal).exp()
                })
                .collect();
            hex(&sketch.encode())
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let hlls = dense_rows();
    let sketches = sketch_rows();
    let hll_bytes: Vec<Vec<u8>> = hlls.iter().map(|h| unhex(h).unwrap()).collect();
    let sketch_bytes: Vec<Vec<u8>> = sketches.iter().map(|s| unhex(s).unwrap()).collect();
    let decoded: Vec<Hll> = hll_bytes.iter().map(|b| Hll::decode(b).unwrap()).collect();
    let decoded_sketches: Vec<Sketch> = sketch_bytes
        .iter()
        .map(|b| Sketch::decode(b).unwrap())
        .collect();

    let mut group = c.benchmark_group("merge 720 dense hll");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("unhex, table", |b| {
        b.iter(|| {
            for h in &hlls {
                black_box(unhex(black_box(h)));
            }
        })
    });
    group.bench_function("unhex, char by char", |b| {
        b.iter(|| {
            for h in &hlls {
                let _ = black_box(unhex_by_char(black_box(h)));
            }
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| {
            for bytes in &hll_bytes {
                black_box(Hll::decode(black_box(bytes)).unwrap());
            }
        })
    });
    group.bench_function("merge decoded", |b| {
        b.iter(|| {
            let mut merged = Hll::new();
            for hll in &decoded {
                merged.merge(black_box(hll));
            }
            merged
        })
    });
    group.bench_function("whole path: unhex, decode, merge, count", |b| {
        b.iter(|| {
            let mut merged = Hll::new();
            for h in &hlls {
                merged.merge(&Hll::decode(&unhex(black_box(h)).unwrap()).unwrap());
            }
            merged.count()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("merge 720 sketches");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("unhex, table", |b| {
        b.iter(|| {
            for s in &sketches {
                black_box(unhex(black_box(s)));
            }
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| {
            for bytes in &sketch_bytes {
                black_box(Sketch::decode(black_box(bytes)).unwrap());
            }
        })
    });
    group.bench_function("merge decoded", |b| {
        b.iter(|| {
            let mut merged = Sketch::new();
            for sketch in &decoded_sketches {
                merged.merge(black_box(sketch));
            }
            merged
        })
    });
    group.bench_function("whole path: unhex, decode, merge, p95", |b| {
        b.iter(|| {
            let mut merged = Sketch::new();
            for s in &sketches {
                merged.merge(&Sketch::decode(&unhex(black_box(s)).unwrap()).unwrap());
            }
            merged.quantile(0.95)
        })
    });
    group.finish();
}

criterion_group!(all, benches);
criterion_main!(all);
