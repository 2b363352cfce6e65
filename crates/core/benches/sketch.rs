//! Benchmarks of sketch (criterion); run with `cargo bench -p tally-core --bench sketch`.

use criterion::{Criterion, criterion_group, criterion_main};

fn benches(_c: &mut Criterion) {}

criterion_group!(all, benches);
criterion_main!(all);
