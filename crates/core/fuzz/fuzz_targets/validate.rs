//! Fuzzes the ingest path: any bytes as a JSON batch, each event decoded and validated,
//! and the same bytes as a queue message. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tally_core::{Context, RawEvent, Settings, queue, validate};

fuzz_target!(|data: &[u8]| {
    let ctx = Context {
        project: "fuzz",
        now_ms: 1_737_210_600_000,
        settings: Settings::default(),
        id_secret: b"fuzz",
    };
    if let Ok(Value::Array(events)) = serde_json::from_slice::<Value>(data) {
        let mut accepted = Vec::new();
        for value in events {
            if let Ok(raw) = serde_json::from_value::<RawEvent>(value)
                && let Ok(ok) = validate(raw, &ctx, &mut || {
                    "00000000-0000-4000-8000-000000000000".into()
                })
            {
                let size = serde_json::to_string(&ok.event.metadata).map_or(0, |s| s.len());
                assert!(
                    size <= tally_core::validate::MAX_METADATA_BYTES + 4,
                    "metadata {size}"
                );
                assert!(ok.event.timestamp <= ctx.now_ms);
                accepted.push(ok.event);
            }
        }
        for body in queue::pack(&accepted, queue::MAX_MESSAGE_BYTES) {
            assert_eq!(queue::unpack(&body).map(|m| m.v).ok(), Some(queue::VERSION));
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = queue::unpack(text);
    }
});
