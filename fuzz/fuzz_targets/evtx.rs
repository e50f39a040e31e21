//! Any bytes as an EVTX file (the magic is put in front, so the decoder
//! always runs): every record decodes or is an error, and each decoded one
//! parses through the Windows parser. Neither may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::event::{InputFormat, Origin, Parser, Position};

fuzz_target!(|data: &[u8]| {
    let mut file = tocsin::event::evtx::MAGIC.to_vec();
    file.extend_from_slice(data);
    let parser = Parser::new(InputFormat::EvtxJson, Default::default());
    let _ = tocsin::event::evtx::for_each_record(std::io::Cursor::new(file), |record| {
        if let Ok(record) = record {
            if let Ok(text) = std::str::from_utf8(&record.json) {
                let origin = Origin {
                    source: "fuzz".into(),
                    position: Position::Line { line: 1 },
                };
                let _ = parser.parse(text, origin, chrono::Utc::now());
            }
        }
        true
    });
});
