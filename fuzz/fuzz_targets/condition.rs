//! The Sigma condition language, within the default nesting limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let limits = tocsin::sigma::RuleLimits::default();
        let _ = std::hint::black_box(tocsin::sigma::parse_condition(
            text,
            limits.max_condition_depth,
        ));
    }
});
