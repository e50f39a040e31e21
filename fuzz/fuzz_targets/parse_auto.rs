//! Any line through `auto`: JSON (plain, evtx_dump, Winlogbeat), access
//! log, else syslog; and the fields a match would show in an alert.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
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
    let parsed = Parser::default().parse(line, origin, now);
    if let Ok(event) = &parsed {
        let mut fingerprint = Vec::new();
        event.fingerprint_into(&mut fingerprint);
        std::hint::black_box(fingerprint);
        std::hint::black_box(event.original_json());
    }
    // Flat JSON objects are read lazily: the fields must be the tree's.
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if !line.trim_start().starts_with('{') {
        return;
    }
    let reshaped = |m: &Map<String, Value>| ["Event", "winlog", "event_id"].iter().any(|k| m.contains_key(*k));
    match serde_json::from_str::<Map<String, Value>>(line) {
        Ok(tree) if !reshaped(&tree) => {
            let event = parsed.expect("a valid flat object parses");
            assert_eq!(event.fields.to_map(), tree);
        }
        Ok(_) => {}
        Err(_) => assert!(parsed.is_err(), "an invalid object was accepted"),
    }
});
