//! Fuzzes the Plausible Events API reader and what follows it at ingest: any bytes as a
//! request body, then validation of the event it yields, and the bot filter on the
//! same bytes as a user agent. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_core::{Context, Settings, plausible, validate};

fuzz_target!(|data: &[u8]| {
    let _ = plausible::is_bot(&String::from_utf8_lossy(data));
    let Ok(page) = plausible::parse(data) else {
        return;
    };
    assert!(!page.domain.is_empty());
    let ctx = Context {
        project: "fuzz",
        now_ms: 1_737_210_600_000,
        settings: Settings::default(),
        id_secret: b"fuzz",
    };
    if let Ok(ok) = validate(page.raw, &ctx, &mut || {
        "00000000-0000-4000-8000-000000000000".into()
    }) {
        assert_eq!(ok.event.project, "fuzz");
        assert!(ok.event.route.as_deref().is_none_or(|r| r.starts_with('/')), "{:?}", ok.event.route);
    }
});
