//! Any line through `auto`: JSON (plain, evtx_dump, Winlogbeat), access
//! log, else syslog; and the fields a match would show in an alert.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::event::{Origin, Parser, Position};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Origin {
        source: "fuzz".into(),
        position: Position::Line { line: 1 },
    };
    let now = chrono::DateTime::from_timestamp(1_764_000_000, 0).unwrap_or_default();
    if let Ok(event) = Parser::default().parse(line, origin, now) {
        std::hint::black_box(event.fingerprint_text());
        std::hint::black_box(event.original_json());
    }
});
