//! Sinks: where alerts and escalations go. Every sink takes both through
//! one [`Sink::write`]; what differs per record (its line, JSON, key,
//! headers) is the record's [`Outgoing`] side.
//!
//! A new sink is a file here (its config and its [`Sink`]) and its line in
//! [`SinkConfig`] and [`SinkConfig::open`].

mod file;
mod kafka;
mod lines;
mod outgoing;
mod stdout;
pub mod webhook;

pub use file::FileConfig;
pub use kafka::KafkaSinkConfig;
pub(crate) use lines::LineWriter;
pub use outgoing::Outgoing;
pub use stdout::StdoutConfig;
pub use webhook::{WebhookConfig, WebhookSettings, WebhookSink};

use super::kafka::producer::{KafkaProducer, Pending};
use crate::pipeline::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A failed write: the sink's name and why.
#[derive(Debug, thiserror::Error)]
#[error("sink {sink}")]
pub struct SinkError {
    /// What failed: `stdout`, `stderr`, a file path, `kafka topic <topic>`,
    /// `webhook <name>` or `alert state`.
    pub sink: String,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

impl SinkError {
    pub(crate) fn new(sink: impl Into<String>, source: impl Into<std::io::Error>) -> SinkError {
        SinkError {
            sink: sink.into(),
            source: source.into(),
        }
    }
}

/// A destination for alerts and escalations.
pub trait Sink: Send {
    /// Writes (or queues: a Kafka delivery joins `pending`) one record.
    fn write(&mut self, record: &dyn Outgoing, pending: &mut Pending) -> Result<(), SinkError>;

    /// Makes buffered lines durable. Kafka deliveries are awaited by the
    /// commit stage; webhooks deliver on their own task.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// The webhook's name, for a webhook sink: escalation levels route to
    /// webhooks by name, and alerts without a destination skip them.
    fn webhook_name(&self) -> Option<&str> {
        None
    }
}

/// How alerts are written by a sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// The alert text line.
    #[default]
    Text,
    /// The alert record as one JSON line.
    Json,
}

/// An output for alerts (`[[sinks]]`), by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    /// Standard output: text lines by default.
    Stdout(StdoutConfig),
    /// A file, appended to: JSON records by default.
    File(FileConfig),
    /// A Kafka topic, through the pipeline's one producer: JSON records by default.
    Kafka(KafkaSinkConfig),
    /// A Slack-compatible webhook: text lines, batched, posted on their own task.
    Webhook(WebhookConfig),
}

/// What opening a sink may need.
pub struct SinkContext<'a> {
    /// The producer every Kafka sink writes through (`None` without Kafka).
    pub producer: Option<&'a Arc<KafkaProducer>>,
    /// Where webhook delivery tasks run, and their handles to await.
    pub webhooks: &'a mut WebhookTasks,
}

impl SinkConfig {
    /// Opens the sink.
    pub fn open(&self, context: &mut SinkContext<'_>) -> Result<Box<dyn Sink>, SinkError> {
        match self {
            SinkConfig::Stdout(c) => c.open(),
            SinkConfig::File(c) => c.open(),
            SinkConfig::Kafka(c) => c.open(context),
            SinkConfig::Webhook(c) => c.open(context),
        }
    }

    /// The Kafka topic, for a Kafka sink.
    pub fn kafka_topic(&self) -> Option<&str> {
        match self {
            SinkConfig::Kafka(c) => Some(&c.topic),
            _ => None,
        }
    }

    /// The webhook's name, for a webhook sink.
    pub fn webhook_name(&self) -> Option<&str> {
        match self {
            SinkConfig::Webhook(c) => Some(&c.name),
            _ => None,
        }
    }
}

/// Webhook delivery tasks, started as sinks open.
pub struct WebhookTasks {
    /// The runtime the delivery tasks are spawned on.
    pub runtime: tokio::runtime::Handle,
    /// Where webhooks count their lines; `None` counts nothing.
    pub metrics: Option<Arc<Metrics>>,
    /// The delivery tasks started so far, to await once their sinks are dropped.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A sink that writes one line per record, as text or JSON.
pub(crate) struct LineSink {
    format: OutputFormat,
    out: LineWriter,
}

impl Sink for LineSink {
    fn write(&mut self, record: &dyn Outgoing, _: &mut Pending) -> Result<(), SinkError> {
        match self.format {
            OutputFormat::Text => self.out.line(record.line()),
            OutputFormat::Json => {
                let json = record
                    .json()
                    .map_err(|e| SinkError::new(self.out.name(), std::io::Error::other(e)))?;
                self.out.bytes_line(&json)
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush()
    }
}
