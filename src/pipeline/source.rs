//! Sources: where records come from. Files (globs, `.gz` transparently),
//! stdin, and Kafka topics ([`super::kafka::consumer`]).
//!
//! A source pushes [`Record`]s into a bounded channel, so a slow detector
//! slows the reader down instead of growing a buffer.

use crate::event::{Origin, Position};
use chrono::{DateTime, Utc};
use flate2::read::MultiGzDecoder;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::Shutdown;

/// One record as read, before parsing.
#[derive(Debug, Clone)]
pub struct Record {
    /// Index of the source in the pipeline's source list (selects the parser).
    pub source: usize,
    pub payload: Vec<u8>,
    pub origin: Origin,
    pub ingest_time: DateTime<Utc>,
    pub read_at: Instant,
}

impl Record {
    /// A line just read from a file or stream.
    fn line(source: usize, payload: Vec<u8>, name: &str, line: u64) -> Record {
        Record {
            source,
            payload,
            origin: Origin {
                source: name.to_string(),
                position: Position::Line { line },
            },
            ingest_time: Utc::now(),
            read_at: Instant::now(),
        }
    }
}

/// Records travel in batches: one channel operation (and at most one thread
/// wake-up) per batch instead of per record.
pub type Batch = Vec<Record>;

/// Most records in one batch.
pub const BATCH_SIZE: usize = 256;

/// What a source sends down the pipeline.
#[derive(Debug)]
pub enum Feed {
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

    pub fn release(self) {
        // The waiter may have given up (timeout); nothing to do then.
        let _ = self.0.try_send(());
    }
}

/// Problems with an input.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` matches no file")]
    NoMatch(String),
    #[error("invalid glob `{pattern}`: {message}")]
    Glob { pattern: String, message: String },
    #[error(transparent)]
    Kafka(#[from] super::kafka::KafkaError),
}

/// Expands paths and globs into files, in a stable order. A pattern that
/// matches nothing is an error: a typo should not look like a quiet input.
pub fn expand_paths(patterns: &[String]) -> Result<Vec<PathBuf>, SourceError> {
    let mut files = Vec::new();
    for pattern in patterns {
        let is_glob = pattern.contains(['*', '?', '[']);
        if !is_glob {
            let p = PathBuf::from(pattern);
            std::fs::metadata(&p).map_err(|source| SourceError::Io {
                path: pattern.clone(),
                source,
            })?;
            files.push(p);
            continue;
        }
        let paths = glob::glob(pattern).map_err(|e| SourceError::Glob {
            pattern: pattern.clone(),
            message: e.to_string(),
        })?;
        let mut matched: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        if matched.is_empty() {
            return Err(SourceError::NoMatch(pattern.clone()));
        }
        matched.sort();
        files.append(&mut matched);
    }
    Ok(files)
}

/// Opens a file, decompressing gzip when the content starts with the gzip magic bytes.
fn open(path: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut file = std::fs::File::open(path)?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    let file = std::fs::File::open(path)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(file),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
    }
}

/// Reads files line by line into the channel. Runs on a blocking thread.
pub fn read_files(
    source: usize,
    files: Vec<PathBuf>,
    tx: mpsc::Sender<Feed>,
    shutdown: Shutdown,
) -> Result<(), SourceError> {
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    for path in files {
        let name = path.display().to_string();
        let io = |source| SourceError::Io {
            path: name.clone(),
            source,
        };
        let mut reader = open(&path).map_err(io)?;
        let mut line_no = 0u64;
        loop {
            if shutdown.is_triggered() {
                return Ok(());
            }
            let mut buf = Vec::with_capacity(256);
            let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let record = Record::line(source, buf, &name, line_no);
            batch.push(record);
            if batch.len() >= BATCH_SIZE
                && tx
                    .blocking_send(Feed::Records(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(BATCH_SIZE),
                    )))
                    .is_err()
            {
                // The pipeline stopped; nothing more to deliver to.
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Feed::Records(batch));
    }
    Ok(())
}

/// Reads standard input line by line until it ends or shutdown is requested.
///
/// A batch is sent when it is full or when no more input is buffered, so an
/// interactive stream is never held back waiting for a full batch.
pub async fn read_stdin(
    source: usize,
    tx: mpsc::Sender<Feed>,
    shutdown: Shutdown,
) -> Result<(), SourceError> {
    let mut reader = tokio::io::BufReader::new(tokio::io::stdin());
    let mut line_no = 0u64;
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    loop {
        let mut buf = Vec::with_capacity(256);
        let n = tokio::select! {
            read = reader.read_until(b'\n', &mut buf) => read.map_err(|source| SourceError::Io { path: "stdin".into(), source })?,
            _ = shutdown.wait() => break,
        };
        if n == 0 {
            break;
        }
        line_no += 1;
        let record = Record::line(source, buf, "stdin", line_no);
        batch.push(record);
        if (batch.len() >= BATCH_SIZE || reader.buffer().is_empty())
            && tx
                .send(Feed::Records(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(BATCH_SIZE),
                )))
                .await
                .is_err()
        {
            return Ok(());
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Feed::Records(batch)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn globs_expand_sorted_and_typos_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.log", "a.log", "c.txt"] {
            std::fs::write(dir.path().join(name), "x\n").unwrap();
        }
        let pattern = format!("{}/*.log", dir.path().display());
        let files = expand_paths(&[pattern]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, vec!["a.log", "b.log"]);
        assert!(matches!(
            expand_paths(&[format!("{}/*.nope", dir.path().display())]),
            Err(SourceError::NoMatch(_))
        ));
        assert!(matches!(
            expand_paths(&[format!("{}/missing.log", dir.path().display())]),
            Err(SourceError::Io { .. })
        ));
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
        read_files(0, vec![path], tx, Shutdown::new()).unwrap();
        let mut lines = Vec::new();
        while let Ok(Feed::Records(batch)) = rx.try_recv() {
            for r in batch {
                lines.push((String::from_utf8(r.payload).unwrap(), r.origin.position));
            }
        }
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], ("three".to_string(), Position::Line { line: 3 }));
    }
}
