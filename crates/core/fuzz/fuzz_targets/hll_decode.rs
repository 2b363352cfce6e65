//! Fuzzes the HyperLogLog decoder: any bytes give an error or an HLL that round-trips, counts, and merges with itself unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_core::hll::Hll;

fuzz_target!(|data: &[u8]| {
    if let Ok(hll) = Hll::decode(data) {
        let again = Hll::decode(&hll.encode()).expect("an encoding decodes");
        assert_eq!(again, hll, "decode and encode round-trip");
        let _ = hll.count();
        let mut merged = hll.clone();
        merged.merge(&hll);
        assert_eq!(merged, hll, "merging with itself changes nothing");
    }
});
