//! Event time: a configured field format (strftime, `unix`, `unix_ms`,
//! `rfc3339`) over any value, and the default recognition.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::event::TimeOptions;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (format, value) = text.split_once('\n').unwrap_or(("", text));
    let value: serde_json::Value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.into()));
    let mut fields = serde_json::Map::new();
    fields.insert("t".into(), value.clone());
    fields.insert("@timestamp".into(), value);
    let fields = tocsin::event::Fields::from(fields);
    let configured = TimeOptions {
        field: Some("t".into()),
        format: (!format.is_empty()).then(|| format.to_string()),
    };
    std::hint::black_box(configured.extract(&fields));
    std::hint::black_box(TimeOptions::default().extract(&fields));
});
