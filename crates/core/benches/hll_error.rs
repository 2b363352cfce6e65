//! The HLL error table: for many independent streams of distinct random hashes, the
//! percentiles of |count − truth| / truth at each cardinality, printed as a Markdown table.
//!
//! Run with `cargo bench -p tally-core --bench hll_error`; `HLL_STREAMS` (default 300) and
//! `HLL_MAX` (default 1,000,000; 10,000,000 for the full table) size it. It measures rather than
//! asserts, so it is not part of CI; its output is recorded in `bench/RESULTS.md`.

use tally_core::hll::Hll;

/// The cardinalities a count is taken at, including both sides of the sparse→dense switch
/// (about 1,205 distinct hashes), where a count can jump.
const CHECKPOINTS: &[u64] = &[
    10, 100, 500, 1_000, 1_150, 1_200, 1_250, 1_300, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
    1_000_000, 10_000_000,
];

/// A splitmix64 stream: distinct, uniformly distributed hashes, one stream per seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The value at quantile `q` of sorted `values` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() {
    let streams = env_or("HLL_STREAMS", 300);
    let max = env_or("HLL_MAX", 1_000_000);
    let checkpoints: Vec<u64> = CHECKPOINTS.iter().copied().filter(|&n| n <= max).collect();
    // errors[i] holds every stream's |relative error| at checkpoints[i].
    let mut errors = vec![Vec::with_capacity(streams as usize); checkpoints.len()];
    // The largest drop in the count when one more distinct hash arrives at the switch.
    let mut worst_switch_drop: f64 = 0.0;
    for seed in 0..streams {
        let mut hashes = SplitMix(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed);
        let mut hll = Hll::new();
        let mut inserted = 0;
        for (slot, &checkpoint) in checkpoints.iter().enumerate() {
            while inserted < checkpoint {
                let was_sparse = hll.is_sparse();
                let before = if was_sparse { hll.count() } else { 0 };
                hll.insert_hash(hashes.next());
                inserted += 1;
                if was_sparse && !hll.is_sparse() {
                    let after = hll.count() as f64;
                    worst_switch_drop =
                        worst_switch_drop.max((before as f64 - after) / before as f64);
                }
            }
            let truth = checkpoint as f64;
            errors[slot].push((hll.count() as f64 - truth).abs() / truth);
        }
    }
    println!("HLL error: {streams} streams of distinct random hashes, precision 12\n");
    println!("| distinct | p50 | p90 | p99 | max | share > 2% |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (checkpoint, mut values) in checkpoints.iter().zip(errors) {
        values.sort_by(f64::total_cmp);
        let over = values.iter().filter(|&&e| e > 0.02).count() as f64 / values.len() as f64;
        println!(
            "| {checkpoint} | {:.2}% | {:.2}% | {:.2}% | {:.2}% | {:.1}% |",
            quantile(&values, 0.5) * 100.0,
            quantile(&values, 0.9) * 100.0,
            quantile(&values, 0.99) * 100.0,
            values[values.len() - 1] * 100.0,
            over * 100.0,
        );
    }
    println!(
        "\nLargest drop of the count when the sparse form turns dense: {:.2}%",
        worst_switch_drop * 100.0
    );
}
