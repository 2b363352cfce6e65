//! Benchmarks of hll (criterion); run with `cargo bench -p tally-core --bench hll`.

use criterion::{Criterion, criterion_group, criterion_main};

fn benches(_c: &mut Criterion) {}

criterion_group!(all, benches);
criterion_main!(all);
