//! Any line through one explicit format, chosen by the first byte, with the
//! reference time (syslog's missing year) from the next eight.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::event::{InputFormat, Origin, Parser, Position};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (seconds, rest) = rest.split_at_checked(8).unwrap_or((&[0; 8], rest));
    let seconds = i64::from_le_bytes(seconds.try_into().unwrap_or([0; 8]));
    let Ok(line) = std::str::from_utf8(rest) else {
        return;
    };
    let format = [
        InputFormat::Json,
        InputFormat::EvtxJson,
        InputFormat::Syslog,
        InputFormat::AccessLog,
        InputFormat::Auto,
    ][usize::from(which) % 5];
    let reference =
        chrono::DateTime::from_timestamp(seconds % 400_000_000_000, 0).unwrap_or_default();
    let origin = Origin {
        source: "fuzz".into(),
        position: Position::Line { line: 1 },
    };
    let parser = Parser::new(format, Default::default());
    if let Ok(event) = parser.parse(line, origin, reference) {
        let mut fingerprint = Vec::new();
        event.fingerprint_into(&mut fingerprint);
        std::hint::black_box(fingerprint);
    }
});
