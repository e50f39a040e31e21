//! A triage update, as `POST /triage` and a triage topic receive it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = std::hint::black_box(tocsin::incident::TriageUpdate::parse(text));
    }
});
