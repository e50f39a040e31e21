//! Sinks: where alerts and dead letters go. Stdout (text lines) and files
//! (JSON lines) now; Kafka later.

use super::dead_letter::DeadLetter;
use crate::alert::Alert;
use crate::config::{DeadLetterConfig, OutputFormat, SinkConfig};
use std::io::{BufWriter, Write};

/// A failed write: the sink's name and why.
#[derive(Debug, thiserror::Error)]
#[error("sink {sink}")]
pub struct SinkError {
    pub sink: String,
    #[source]
    pub source: std::io::Error,
}

/// Writes one line per item to a buffered stream.
struct LineWriter {
    name: String,
    out: BufWriter<Box<dyn Write + Send>>,
}

impl LineWriter {
    fn stdout() -> Self {
        LineWriter {
            name: "stdout".into(),
            out: BufWriter::with_capacity(1 << 16, Box::new(std::io::stdout())),
        }
    }

    fn stderr() -> Self {
        LineWriter {
            name: "stderr".into(),
            out: BufWriter::new(Box::new(std::io::stderr())),
        }
    }

    fn append(path: &std::path::Path) -> Result<Self, SinkError> {
        let name = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SinkError {
                sink: name.clone(),
                source,
            })?;
        Ok(LineWriter {
            name,
            out: BufWriter::with_capacity(1 << 16, Box::new(file)),
        })
    }

    fn line(&mut self, text: &str) -> Result<(), SinkError> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| SinkError {
                sink: self.name.clone(),
                source,
            })
    }

    fn json_line<T: serde::Serialize>(&mut self, item: &T) -> Result<(), SinkError> {
        let json = serde_json::to_string(item).map_err(|e| SinkError {
            sink: self.name.clone(),
            source: std::io::Error::other(e),
        })?;
        self.line(&json)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError {
            sink: self.name.clone(),
            source,
        })
    }
}

/// An alert destination.
pub struct AlertSink {
    format: OutputFormat,
    writer: LineWriter,
}

impl AlertSink {
    pub fn open(cfg: &SinkConfig) -> Result<AlertSink, SinkError> {
        Ok(match cfg {
            SinkConfig::Stdout { format } => AlertSink {
                format: *format,
                writer: LineWriter::stdout(),
            },
            SinkConfig::File { path, format } => AlertSink {
                format: *format,
                writer: LineWriter::append(path)?,
            },
        })
    }

    pub fn write(&mut self, alert: &Alert) -> Result<(), SinkError> {
        match self.format {
            OutputFormat::Text => self.writer.line(&alert.message),
            OutputFormat::Json => self.writer.json_line(alert),
        }
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.writer.flush()
    }
}

/// The dead-letter destination: JSON lines with the reason and the record.
pub struct DeadLetterSink {
    writer: LineWriter,
}

impl DeadLetterSink {
    pub fn open(cfg: &DeadLetterConfig) -> Result<DeadLetterSink, SinkError> {
        Ok(DeadLetterSink {
            writer: match cfg {
                DeadLetterConfig::Stderr => LineWriter::stderr(),
                DeadLetterConfig::File { path } => LineWriter::append(path)?,
            },
        })
    }

    pub fn write(&mut self, letter: &DeadLetter) -> Result<(), SinkError> {
        self.writer.json_line(letter)
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.writer.flush()
    }
}
