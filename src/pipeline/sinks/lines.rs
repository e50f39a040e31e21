//! One line per item to a buffered stream: stdout, stderr or a file.

use super::SinkError;
use std::io::{BufWriter, Write};

pub(crate) struct LineWriter {
    name: String,
    out: BufWriter<Box<dyn Write + Send>>,
}

impl LineWriter {
    pub(crate) fn stdout() -> Self {
        LineWriter {
            name: "stdout".into(),
            out: BufWriter::with_capacity(1 << 16, Box::new(std::io::stdout())),
        }
    }

    pub(crate) fn stderr() -> Self {
        LineWriter {
            name: "stderr".into(),
            out: BufWriter::new(Box::new(std::io::stderr())),
        }
    }

    /// A file opened for appending (created if absent).
    pub(crate) fn append(path: &std::path::Path) -> Result<Self, SinkError> {
        let name = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SinkError::new(name.clone(), source))?;
        Ok(LineWriter {
            name,
            out: BufWriter::with_capacity(1 << 16, Box::new(file)),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn line(&mut self, text: &str) -> Result<(), SinkError> {
        self.bytes_line(text.as_bytes())
    }

    pub(crate) fn bytes_line(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        self.out
            .write_all(bytes)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| SinkError::new(self.name.clone(), source))
    }

    pub(crate) fn json_line<T: serde::Serialize>(&mut self, item: &T) -> Result<(), SinkError> {
        let json = serde_json::to_vec(item)
            .map_err(|e| SinkError::new(self.name.clone(), std::io::Error::other(e)))?;
        self.bytes_line(&json)
    }

    pub(crate) fn flush(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .map_err(|source| SinkError::new(self.name.clone(), source))
    }
}
