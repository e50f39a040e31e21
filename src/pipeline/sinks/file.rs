//! The file sink: JSON records (default) or text lines, appended.

use super::{LineSink, LineWriter, OutputFormat, Sink, SinkError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[[sinks]] type = "file"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file to append to (`path`); created if absent.
    pub path: PathBuf,
    /// `json` (default) or `text`.
    #[serde(default = "json")]
    pub format: OutputFormat,
}

pub(super) fn json() -> OutputFormat {
    OutputFormat::Json
}

impl FileConfig {
    pub(crate) fn open(&self) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(LineSink {
            format: self.format,
            out: LineWriter::append(&self.path)?,
        }))
    }
}
