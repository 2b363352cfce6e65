//! Benchmarks of hll (criterion); run with `cargo bench -p tally-core --bench hll`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tally_core::hll::Hll;

/// splitmix64 hashes: distinct and uniformly distributed.
fn hashes(seed: u64, n: usize) -> Vec<u64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
        .collect()
}

fn hll_of(hashes: &[u64]) -> Hll {
    let mut hll = Hll::default();
    for &hash in hashes {
        hll.insert_hash(hash);
    }
    hll
}

fn benches(c: &mut Criterion) {
    // 500 distinct hashes stay sparse; 100,000 are dense.
    let sparse_hashes = hashes(1, 500);
    let sparse = hll_of(&sparse_hashes);
    let dense = hll_of(&hashes(2, 100_000));
    let other_dense = hll_of(&hashes(3, 100_000));
    assert!(sparse.is_sparse() && !dense.is_sparse() && !other_dense.is_sparse());

    let mut insert = c.benchmark_group("hll/insert");
    insert.throughput(Throughput::Elements(sparse_hashes.len() as u64));
    insert.bench_function("sparse (0 to 500 distinct)", |b| {
        b.iter(|| hll_of(black_box(&sparse_hashes)))
    });
    let fresh = hashes(4, 10_000);
    insert.throughput(Throughput::Elements(fresh.len() as u64));
    insert.bench_function("dense", |b| {
        let mut hll = dense.clone();
        b.iter(|| {
            for &hash in &fresh {
                hll.insert_hash(black_box(hash));
            }
        })
    });
    insert.finish();

    c.bench_function("hll/merge/dense+dense", |b| {
        let mut hll = dense.clone();
        b.iter(|| hll.merge(black_box(&other_dense)))
    });
    c.bench_function("hll/merge/sparse+sparse (500+500)", |b| {
        let other = hll_of(&hashes(5, 500));
        b.iter_batched(
            || sparse.clone(),
            |mut hll| {
                hll.merge(black_box(&other));
                hll
            },
            BatchSize::SmallInput,
        )
    });

    for (form, hll) in [("sparse", &sparse), ("dense", &dense)] {
        let bytes = hll.encode();
        c.bench_function(&format!("hll/encode/{form} ({} B)", bytes.len()), |b| {
            b.iter(|| black_box(hll).encode())
        });
        c.bench_function(&format!("hll/decode/{form} ({} B)", bytes.len()), |b| {
            b.iter(|| Hll::decode(black_box(&bytes)).unwrap())
        });
        c.bench_function(&format!("hll/count/{form}"), |b| {
            b.iter(|| black_box(hll).count())
        });
    }
}

criterion_group!(all, benches);
criterion_main!(all);
