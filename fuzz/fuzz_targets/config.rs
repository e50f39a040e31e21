//! A configuration file: TOML, every section, every span and limit, and
//! its cross-checks (the SLA, escalation and silence policies included).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = tocsin::config::from_toml(text) {
            let _ = std::hint::black_box(tocsin::alert::SlaPolicy::from_config(&cfg.sla));
            let _ = std::hint::black_box(tocsin::alert::SuppressionPolicy::from_config(
                &cfg.suppression,
            ));
        }
    }
});
