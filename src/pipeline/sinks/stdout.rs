//! The stdout sink: text lines (default) or JSON records.

use super::{LineSink, LineWriter, OutputFormat, Sink, SinkError};
use serde::{Deserialize, Serialize};

/// `[[sinks]] type = "stdout"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: OutputFormat,
}

impl StdoutConfig {
    pub(crate) fn open(&self) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(LineSink {
            format: self.format,
            out: LineWriter::stdout(),
        }))
    }
}
