//! Sources: where records come from. Files (globs, `.gz` transparently),
//! stdin, and Kafka topics ([`super::kafka::consumer`]).
//!
//! A source pushes [`Record`]s into a bounded channel, so a slow detector
//! slows the reader down instead of growing a buffer.

mod config;
mod file;
mod follow;
mod positions;
mod stdin;

pub use config::{Follow, Input, ReadFrom, RecordKind, SourceConfig};
pub use file::{read_files, read_line, LineRead, KEPT_PREFIX_BYTES};
pub use follow::{follow_files, FollowedFiles};
pub use positions::{
    FileKey, FileMark, FilePosition, FileProgress, Fingerprint, PositionsError, POSITIONS_FILE,
};
pub use stdin::read_stdin;

use super::Shutdown;
use crate::event::{Origin, Position};
use chrono::{DateTime, Utc};
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::time::Instant;
use tokio::sync::mpsc;

/// One record as read, before parsing.
#[derive(Debug, Clone)]
pub struct Record {
    /// Index of the source in the pipeline's source list (selects the parser).
    pub source: usize,
    /// The record's bytes as read: a line (with its `\n`, if any) or a Kafka message
    /// value. Only the first [`KEPT_PREFIX_BYTES`] when `fault` is `TooLong`.
    pub payload: Vec<u8>,
    /// Where the record was read: source name and line, or topic, partition and offset.
    pub origin: Origin,
    /// Wall-clock time the record was read; the event time when the record has
    /// none, or an implausible one.
    pub ingest_time: DateTime<Utc>,
    /// When the record was read, for `tocsin_detection_latency_seconds`.
    pub read_at: Instant,
    /// Why the record cannot be an event whatever its content (too long,
    /// cut short): it is dead-lettered unparsed.
    pub fault: Option<RecordFault>,
    /// For a line of a followed file: where the file stands once this
    /// record is handled (checkpointed with the output).
    pub mark: Option<FileMark>,
}

/// A record known to be unusable before it is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFault {
    /// Longer than `engine.max_record_bytes`: the payload is its beginning.
    TooLong {
        /// The record's whole length in bytes.
        bytes: u64,
        /// SHA-256 of the whole record, to find it again at its source.
        sha256: [u8; 32],
    },
    /// The input ended, or failed, inside this record.
    Unfinished(String),
}

impl Record {
    /// A line just read from a file or stream.
    pub(crate) fn line(source: usize, payload: Vec<u8>, name: &str, line: u64) -> Record {
        Record {
            source,
            payload,
            origin: Origin {
                source: name.to_string(),
                position: Position::Line { line },
            },
            ingest_time: Utc::now(),
            read_at: Instant::now(),
            fault: None,
            mark: None,
        }
    }
}

/// Records travel in batches: one channel operation (and at most one thread
/// wake-up) per batch instead of per record.
pub type Batch = Vec<Record>;

/// Most records in one batch.
pub const BATCH_SIZE: usize = 256;

/// Payload bytes at which a batch is sent before it is full. The queue
/// between the readers and the workers is counted in batches, so this is
/// what bounds the memory its records hold whatever the lines' size: 256
/// Windows events of 10-40 KB (seen in Mordor) would otherwise hold megabytes
/// per batch, tens of megabytes in the queue.
pub(crate) const BATCH_BYTES: usize = 1 << 19;

/// What a source sends down the pipeline.
#[derive(Debug)]
pub enum Feed {
    /// Records to parse, in the order they were read.
    Records(Batch),
    /// Released once everything sent before it is handled and committed.
    Barrier(Barrier),
}

/// A wait point: whoever sent it blocks until the writer has committed all
/// earlier work and releases it (used when Kafka revokes partitions).
#[derive(Debug)]
pub struct Barrier(std::sync::mpsc::SyncSender<()>);

impl Barrier {
    /// A barrier and the receiver to wait on.
    pub fn new() -> (Barrier, std::sync::mpsc::Receiver<()>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        (Barrier(tx), rx)
    }

    /// Tells the waiting sender that all earlier work is committed.
    pub fn release(self) {
        // The waiter may have given up (timeout); nothing to do then.
        let _ = self.0.try_send(());
    }
}

/// Problems with an input.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An input (file, path, or stdin) could not be opened or read.
    #[error("{path}")]
    Io {
        /// The path, pattern or `stdin` that failed.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A glob matched no file.
    #[error("`{0}` matches no file")]
    NoMatch(String),
    /// A glob pattern is not valid.
    #[error("invalid glob `{pattern}`: {message}")]
    Glob {
        /// The pattern as written.
        pattern: String,
        /// Why the glob crate rejected it.
        message: String,
    },
    /// The Kafka consumer failed.
    #[error(transparent)]
    Kafka(#[from] super::kafka::KafkaError),
}

/// Expands paths and globs into files, in a stable order. A path that does
/// not exist or a pattern that matches nothing is an error of its own (a
/// typo should not look like a quiet input); the other inputs still count.
pub fn expand_paths(patterns: &[String]) -> (Vec<PathBuf>, Vec<SourceError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for pattern in patterns {
        let is_glob = pattern.contains(['*', '?', '[']);
        if !is_glob {
            let p = PathBuf::from(pattern);
            match std::fs::metadata(&p) {
                Ok(_) => files.push(p),
                Err(source) => errors.push(SourceError::Io {
                    path: pattern.clone(),
                    source,
                }),
            }
            continue;
        }
        let paths = match glob::glob(pattern) {
            Ok(paths) => paths,
            Err(e) => {
                errors.push(SourceError::Glob {
                    pattern: pattern.clone(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut matched: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        if matched.is_empty() {
            errors.push(SourceError::NoMatch(pattern.clone()));
        }
        matched.sort();
        files.append(&mut matched);
    }
    (files, errors)
}

/// Sends records in batches down the pipeline.
pub(crate) struct Batcher {
    source: usize,
    tx: mpsc::Sender<Feed>,
    batch: Batch,
    /// Payload bytes in `batch`.
    bytes: usize,
}

impl Batcher {
    pub(crate) fn new(source: usize, tx: mpsc::Sender<Feed>) -> Self {
        Batcher {
            source,
            tx,
            batch: Vec::with_capacity(BATCH_SIZE),
            bytes: 0,
        }
    }

    /// Queues a record; sends the batch when it is full (in records or in
    /// bytes) or `flush` says so. False once the pipeline has stopped
    /// taking records.
    fn push(&mut self, record: Record, flush: bool) -> bool {
        self.bytes = self.bytes.saturating_add(record.payload.len());
        self.batch.push(record);
        if self.batch.len() < BATCH_SIZE && self.bytes < BATCH_BYTES && !flush {
            return true;
        }
        self.send()
    }

    pub(crate) fn send(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_SIZE));
        self.bytes = 0;
        self.tx.blocking_send(Feed::Records(batch)).is_ok()
    }
}

/// How one stream of lines ended.
pub(crate) enum StreamEnd {
    /// Read to its end.
    Done,
    /// The pipeline stopped taking records, or shutdown was requested.
    Stopped,
    /// A read failed; the lines before it were sent.
    Failed(std::io::Error),
}

/// Bytes a line buffer keeps between lines: a rare long line does not hold
/// its room for good.
const KEPT_LINE_CAPACITY: usize = 1 << 16;

/// The line read into `buf`, in a vector of exactly its size; `buf` is
/// emptied for the next line and keeps its room. Growing a fresh vector
/// per line instead reallocates it several times for a typical event
/// (256 bytes, doubled up to a few KiB) and leaves up to half of it
/// unused while the record waits in the queue.
pub(crate) fn take_line(buf: &mut Vec<u8>) -> Vec<u8> {
    let line = buf.as_slice().to_vec();
    buf.clear();
    buf.shrink_to(KEPT_LINE_CAPACITY);
    line
}

/// Reads `reader` line by line into `out`, each line at most `max` bytes
/// (see [`read_line`]). `flush_when_idle` sends a batch whenever no more
/// input is buffered, so an interactive stream is never held back.
pub(crate) fn read_stream<R: Read>(
    reader: &mut BufReader<R>,
    name: &str,
    out: &mut Batcher,
    shutdown: &Shutdown,
    max: usize,
    flush_when_idle: bool,
) -> StreamEnd {
    let mut line_no = 0u64;
    let mut buf = Vec::with_capacity(256);
    loop {
        if shutdown.is_triggered() {
            return StreamEnd::Stopped;
        }
        let read = read_line(reader, &mut buf, max);
        let fault = match read {
            Ok(LineRead::End) => return StreamEnd::Done,
            Ok(LineRead::Line) => None,
            Ok(LineRead::TooLong { bytes, sha256 }) => Some(RecordFault::TooLong { bytes, sha256 }),
            Err(_) if buf.is_empty() => None,
            Err(ref e) => Some(RecordFault::Unfinished(format!(
                "the input failed inside this record: {e}"
            ))),
        };
        if let Err(e) = read {
            // The bytes before the failure are a record of their own, dead-lettered.
            if !buf.is_empty() {
                line_no += 1;
                let mut record = Record::line(out.source, std::mem::take(&mut buf), name, line_no);
                record.fault = fault;
                if !out.push(record, true) {
                    return StreamEnd::Stopped;
                }
            }
            return StreamEnd::Failed(e);
        }
        line_no += 1;
        let payload = take_line(&mut buf);
        let mut record = Record::line(out.source, payload, name, line_no);
        record.fault = fault;
        let idle = flush_when_idle && reader.buffer().is_empty();
        if !out.push(record, idle) {
            return StreamEnd::Stopped;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;
    use std::io::Write;

    fn records(rx: &mut mpsc::Receiver<Feed>) -> Vec<Record> {
        let mut out = Vec::new();
        while let Ok(Feed::Records(batch)) = rx.try_recv() {
            out.extend(batch);
        }
        out
    }

    #[test]
    fn a_batch_is_sent_when_its_records_reach_the_byte_bound() {
        let (tx, mut rx) = mpsc::channel(100);
        let mut out = Batcher::new(0, tx);
        let line = vec![b'x'; BATCH_BYTES / 4];
        for n in 1..=10 {
            assert!(out.push(Record::line(0, line.clone(), "big", n), false));
        }
        out.send();
        let mut sizes = Vec::new();
        while let Ok(Feed::Records(batch)) = rx.try_recv() {
            sizes.push(batch.len());
        }
        assert_eq!(sizes, [4, 4, 2], "sent as soon as it holds BATCH_BYTES");
    }

    #[test]
    fn a_taken_line_is_exactly_its_size_and_the_buffer_keeps_bounded_room() {
        let mut buf = Vec::with_capacity(16);
        buf.extend_from_slice(&[b'x'; 3000]);
        let line = take_line(&mut buf);
        assert_eq!((line.len(), line.capacity()), (3000, 3000));
        assert!(buf.is_empty() && buf.capacity() >= 3000, "room kept");
        buf.extend(std::iter::repeat_n(b'y', 4 * KEPT_LINE_CAPACITY));
        assert_eq!(take_line(&mut buf).len(), 4 * KEPT_LINE_CAPACITY);
        assert!(
            buf.capacity() <= KEPT_LINE_CAPACITY,
            "a long line's room is let go"
        );
    }

    #[test]
    fn globs_expand_sorted_and_typos_are_errors_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.log", "a.log", "c.txt"] {
            std::fs::write(dir.path().join(name), "x\n").unwrap();
        }
        let (files, errors) = expand_paths(&[
            format!("{}/*.log", dir.path().display()),
            format!("{}/*.nope", dir.path().display()),
            format!("{}/missing.log", dir.path().display()),
        ]);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, vec!["a.log", "b.log"]);
        assert!(matches!(errors[0], SourceError::NoMatch(_)));
        assert!(matches!(errors[1], SourceError::Io { .. }));
    }

    #[test]
    fn gzip_files_are_read_transparently_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(b"one\ntwo\nthree").unwrap();
        gz.finish().unwrap();
        let (tx, mut rx) = mpsc::channel(10);
        assert!(read_files(0, vec![path], tx, Shutdown::new(), 100).is_empty());
        let lines: Vec<_> = records(&mut rx)
            .into_iter()
            .map(|r| (String::from_utf8(r.payload).unwrap(), r.origin.position))
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], ("three".to_string(), Position::Line { line: 3 }));
    }

    #[test]
    fn a_line_longer_than_the_limit_is_read_past_hashed_and_flagged() {
        use sha2::Digest;
        let long = "y".repeat(300_000);
        let text = format!("short\n{long}\nafter\n");
        // A small buffer: the long line arrives in many pieces.
        let mut reader = BufReader::with_capacity(1000, text.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"short\n");
        match read_line(&mut reader, &mut buf, 10).unwrap() {
            LineRead::TooLong { bytes, sha256 } => {
                assert_eq!(bytes, 300_000);
                assert_eq!(
                    sha256,
                    <[u8; 32]>::from(sha2::Sha256::digest(long.as_bytes()))
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(buf.len(), KEPT_PREFIX_BYTES);
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"after\n");
        assert_eq!(read_line(&mut reader, &mut buf, 10).unwrap(), LineRead::End);
        // Exactly at the limit is fine; the newline does not count.
        let mut reader = BufReader::new(&b"0123456789\n"[..]);
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).unwrap(),
            LineRead::Line
        );
    }

    #[test]
    fn a_truncated_gzip_keeps_its_lines_dead_letters_the_broken_one_and_the_next_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let gz_path = dir.path().join("cut.log.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..2000 {
            writeln!(gz, "line {i} with some text to fill the stream").unwrap();
        }
        let full = gz.finish().unwrap();
        std::fs::write(&gz_path, &full[..full.len() / 2]).unwrap();
        let good = dir.path().join("good.log");
        std::fs::write(&good, "a\nb\n").unwrap();
        let (tx, mut rx) = mpsc::channel(100);
        let errors = read_files(
            0,
            vec![gz_path, dir.path().to_path_buf(), good],
            tx,
            Shutdown::new(),
            1000,
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        let read = records(&mut rx);
        let broken: Vec<_> = read.iter().filter(|r| r.fault.is_some()).collect();
        assert!(broken.len() <= 1);
        assert!(read.len() > 100, "lines before the cut are delivered");
        assert_eq!(
            read.iter()
                .filter(|r| r.origin.source.ends_with("good.log"))
                .count(),
            2
        );
    }
}
