//! Fuzzes query range resolution and time buckets with arbitrary parameters.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_core::range::{Limits, Query, resolve};
use tally_core::time::Interval;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (a, b, c) = (parts.next(), parts.next(), parts.next());
    let now = 1_737_210_600_000;
    for query in [
        Query {
            from: a,
            to: b,
            days: None,
        },
        Query {
            from: None,
            to: None,
            days: a,
        },
        Query {
            from: a,
            to: None,
            days: c,
        },
    ] {
        if let Ok(range) = resolve(query, now, Limits::default()) {
            assert!(range.from_ms < range.to_ms);
            for interval in [
                Interval::Hour,
                Interval::Day,
                Interval::Week,
                Interval::SundayWeek,
                Interval::Month,
            ] {
                let mut last = i64::MIN;
                for start in interval.buckets(range.from_ms, range.to_ms).take(200) {
                    assert!(start > last);
                    assert_eq!(interval.floor(start), start);
                    last = start;
                }
            }
        }
    }
});
