//! Benchmarks of sketch (criterion); run with `cargo bench -p tally-core --bench sketch`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tally_core::sketch::Sketch;

/// Values in one hour of one busy route.
const HOUR: usize = 10_000;

/// Lognormal latencies (median 50 ms, sigma 1) from a splitmix64 stream and Box-Muller.
fn latencies(seed: u64, n: usize) -> Vec<f64> {
    let mut state = seed;
    let mut unit = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (1.0 - unit(), unit());
            let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            50.0 * normal.exp()
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let values = latencies(1, HOUR);
    let a: Sketch = values.iter().copied().collect();
    let b: Sketch = latencies(2, HOUR).into_iter().collect();
    let bytes = a.encode();

    let mut group = c.benchmark_group("sketch");
    group.throughput(Throughput::Elements(HOUR as u64));
    group.bench_function("insert 10k lognormal", |bench| {
        bench.iter(|| {
            let mut s = Sketch::new();
            for &v in black_box(&values) {
                s.insert(v);
            }
            s
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("merge two hours", |bench| {
        bench.iter_batched(
            || a.clone(),
            |mut s| {
                s.merge(black_box(&b));
                s
            },
            BatchSize::SmallInput,
        )
    });
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode an hour", |bench| {
        bench.iter(|| black_box(&a).encode())
    });
    group.bench_function("decode an hour", |bench| {
        bench.iter(|| Sketch::decode(black_box(&bytes)).unwrap())
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("p99 of an hour", |bench| {
        bench.iter(|| black_box(&a).quantile(black_box(0.99)))
    });
    group.finish();
}

criterion_group!(all, benches);
criterion_main!(all);
