//! File sources: files by path or glob, `.gz` read transparently, each
//! line at most `engine.max_record_bytes` in memory. Windows event log files
//! (`.evtx`, by their magic bytes) are read record by record
//! (`crate::event::evtx`).

use super::{read_stream, Batcher, Feed, Record, RecordFault, SourceError, StreamEnd};
use crate::pipeline::Shutdown;
use flate2::read::MultiGzDecoder;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// How much of an over-long record is kept for its dead letter.
pub const KEPT_PREFIX_BYTES: usize = 4096;

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// No more input.
    End,
    /// A line, within the limit, in the buffer.
    Line,
    /// A line longer than the limit: the buffer holds its first
    /// [`KEPT_PREFIX_BYTES`]; the rest was read past, never held.
    TooLong {
        /// The line's whole length in bytes, its `\n` not counted.
        bytes: u64,
        /// SHA-256 of the whole line without its `\n`.
        sha256: [u8; 32],
    },
}

/// Reads one line (its `\n` included) into `buf`, holding at most `max`
/// bytes of it in memory: a longer line is hashed and read past to its end.
/// On an error the bytes read so far stay in `buf`.
pub fn read_line(
    reader: &mut (impl BufRead + ?Sized),
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    use sha2::Digest;
    buf.clear();
    let mut hasher: Option<sha2::Sha256> = None;
    // Bytes of the line without its `\n`: the limit is on the content.
    let mut content = 0u64;
    let mut read_any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        read_any = true;
        let (text, ends_line) = match memchr::memchr(b'\n', available) {
            Some(i) => (available.get(..i).unwrap_or_default(), true),
            None => (available, false),
        };
        content = content.saturating_add(text.len() as u64);
        if hasher.is_none() && content > max as u64 {
            let mut h = sha2::Sha256::new();
            h.update(&buf[..]);
            hasher = Some(h);
            buf.truncate(KEPT_PREFIX_BYTES);
        }
        match &mut hasher {
            Some(h) => {
                h.update(text);
                let room = KEPT_PREFIX_BYTES.saturating_sub(buf.len()).min(text.len());
                buf.extend_from_slice(text.get(..room).unwrap_or_default());
            }
            None => buf.extend_from_slice(text),
        }
        let used = text.len() + usize::from(ends_line);
        reader.consume(used);
        if ends_line {
            if hasher.is_none() {
                buf.push(b'\n');
            }
            break;
        }
    }
    Ok(match hasher {
        Some(h) => LineRead::TooLong {
            bytes: content,
            sha256: h.finalize().into(),
        },
        None if !read_any => LineRead::End,
        None => LineRead::Line,
    })
}

/// What a file holds, by its first bytes.
enum Content {
    /// Lines, gzip-compressed or not.
    Lines(BufReader<Box<dyn Read + Send>>),
    /// A Windows event log.
    Evtx(std::fs::File),
}

/// Opens a file: gzip is decompressed and EVTX recognised by their magic bytes.
fn open(path: &Path) -> std::io::Result<Content> {
    let mut file = std::fs::File::open(path)?;
    let mut magic = [0u8; 8];
    let mut n = 0;
    while n < magic.len() {
        match file.read(&mut magic[n..])? {
            0 => break,
            read => n += read,
        }
    }
    let head = &magic[..n];
    let file = std::fs::File::open(path)?;
    if crate::event::evtx::is_evtx(head) {
        return Ok(Content::Evtx(file));
    }
    let inner: Box<dyn Read + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Content::Lines(BufReader::with_capacity(1 << 16, inner)))
}

/// Reads an EVTX file's records into the batcher, one record per event in
/// `evtx_dump`'s JSON form; a record that cannot be decoded is dead-lettered
/// with the decoder's reason. Positions count records from 1.
fn read_evtx(
    file: std::fs::File,
    name: &str,
    out: &mut Batcher,
    shutdown: &Shutdown,
    max: usize,
) -> StreamEnd {
    let mut n = 0u64;
    let mut stopped = false;
    let read = crate::event::evtx::for_each_record(BufReader::new(file), |record| {
        if shutdown.is_triggered() {
            stopped = true;
            return false;
        }
        n += 1;
        let (payload, fault) = match record {
            Ok(r) if r.json.len() > max => {
                use sha2::Digest;
                let fault = RecordFault::TooLong {
                    bytes: r.json.len() as u64,
                    sha256: sha2::Sha256::digest(&r.json).into(),
                };
                let mut json = r.json;
                json.truncate(KEPT_PREFIX_BYTES);
                (json, Some(fault))
            }
            Ok(r) => (r.json, None),
            Err(e) => (
                Vec::new(),
                Some(RecordFault::Unfinished(format!("record {n}: {e}"))),
            ),
        };
        let mut record = Record::line(out.source, payload, name, n);
        record.fault = fault;
        if !out.push(record, false) {
            stopped = true;
            return false;
        }
        true
    });
    match read {
        Err(e) => StreamEnd::Failed(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Ok(()) if stopped => StreamEnd::Stopped,
        Ok(()) => StreamEnd::Done,
    }
}

/// Reads files line by line into the channel. Runs on a blocking thread.
/// A file that cannot be read to its end is an error in the returned list
/// (and the log); the lines read before the failure and the other files
/// are still delivered.
pub fn read_files(
    source: usize,
    files: Vec<PathBuf>,
    tx: mpsc::Sender<Feed>,
    shutdown: Shutdown,
    max_record_bytes: usize,
) -> Vec<SourceError> {
    let mut out = Batcher::new(source, tx);
    let mut errors = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let failed = |source: std::io::Error| {
            tracing::error!(file = %name, error = %source, "input could not be read to its end");
            SourceError::Io {
                path: name.clone(),
                source,
            }
        };
        let end = match open(&path) {
            Ok(Content::Lines(mut reader)) => read_stream(
                &mut reader,
                &name,
                &mut out,
                &shutdown,
                max_record_bytes,
                false,
            ),
            Ok(Content::Evtx(file)) => {
                read_evtx(file, &name, &mut out, &shutdown, max_record_bytes)
            }
            Err(e) => {
                errors.push(failed(e));
                continue;
            }
        };
        match end {
            StreamEnd::Done => {}
            StreamEnd::Stopped => return errors,
            StreamEnd::Failed(e) => errors.push(failed(e)),
        }
    }
    out.send();
    errors
}
