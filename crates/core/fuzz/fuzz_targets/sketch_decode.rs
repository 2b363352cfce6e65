//! Fuzzes the quantile sketch decoder: any bytes give an error or a sketch that
//! round-trips and answers quantiles without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_core::sketch::Sketch;

fuzz_target!(|data: &[u8]| {
    if let Ok(sketch) = Sketch::decode(data) {
        let again = Sketch::decode(&sketch.encode()).expect("an encoding decodes");
        assert_eq!(again, sketch, "decode and encode round-trip");
        for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
            let _ = sketch.quantile(q);
        }
        let mut merged = sketch.clone();
        merged.merge(&sketch);
        assert_eq!(merged.count(), sketch.count() * 2);
    }
});
