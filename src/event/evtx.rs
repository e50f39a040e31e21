//! Native Windows event log files (`.evtx`), read with the `evtx` crate.
//!
//! An EVTX file is recognised by its magic bytes (`ElfFile\0`), not its
//! name. Each record becomes the JSON object `evtx_dump -o json` writes
//! (`{"Event": {"System": ..., "EventData": ...}}`), which the Windows
//! parser already turns into Sigma-named events: the same detections run on
//! an `.evtx` original and on its JSON export. A record that cannot be
//! decoded (a damaged chunk, a bad template) is handed back as an error
//! with the decoder's reason, which names the offset, so the caller can
//! dead-letter it and go on with the next.
//!
//! The binary XML decoding is the `evtx` crate's (chainsaw and hayabusa
//! use it too); writing our own would be a large, risky parser for no gain.

use std::io::{Read, Seek};

/// The first bytes of an EVTX file.
pub const MAGIC: &[u8; 8] = b"ElfFile\0";

/// Whether `head` (a file's first bytes) starts an EVTX file.
pub fn is_evtx(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// One record of an EVTX file: its record id and the event as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvtxRecord {
    /// The record's id in the log (`EventRecordID`).
    pub record_id: u64,
    /// The event in `evtx_dump`'s JSON form, one line.
    pub json: Vec<u8>,
}

/// Why a file or a record could not be read as EVTX.
#[derive(Debug, thiserror::Error)]
#[error("EVTX: {0}")]
pub struct EvtxError(String);

/// An error with its causes: the decoder's outer message names the chunk,
/// the inner ones the offset and what was found there.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Hands each record of an EVTX file, in log order, to `each`, until it
/// returns false. Opening fails when the file header is unusable; a record
/// that cannot be decoded is an `Err` handed to `each`, and the records after
/// it still come. Records are decoded one at a time (a callback, because the
/// parser's iterator borrows the parser), so memory stays at one chunk.
pub fn for_each_record<R: Read + Seek>(
    file: R,
    mut each: impl FnMut(Result<EvtxRecord, EvtxError>) -> bool,
) -> Result<(), EvtxError> {
    // Built without the crate's `multithreading` feature: one thread, the
    // pipeline's workers do the rest.
    let settings = evtx::ParserSettings::new()
        .separate_json_attributes(false)
        .indent(false);
    let mut parser = evtx::EvtxParser::from_read_seek(file)
        .map_err(|e| EvtxError(causes(&e)))?
        .with_configuration(settings);
    for record in parser.records_json_value() {
        let record = record.map_err(|e| EvtxError(causes(&e))).and_then(|r| {
            let json = serde_json::to_vec(&r.data).map_err(|e| EvtxError(e.to_string()))?;
            Ok(EvtxRecord {
                record_id: r.event_record_id,
                json,
            })
        });
        if !each(record) {
            break;
        }
    }
    Ok(())
}
