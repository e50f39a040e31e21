//! Sinks: where alerts, escalations and dead letters go. Stdout (text
//! lines), files (JSON lines), Kafka topics and chat webhooks.

use super::dead_letter::DeadLetter;
use super::kafka::producer::{KafkaAlertSink, KafkaDeadLetterSink, KafkaProducer, Pending};
use super::kafka::KafkaError;
use super::webhook::WebhookSink;
use crate::alert::Alert;
use crate::config::{DeadLetterConfig, OutputFormat, SinkConfig};
use crate::incident::escalation::Escalation;
use std::io::{BufWriter, Write};
use std::sync::Arc;

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

/// What a sink writes to.
enum Target<K> {
    Lines(LineWriter),
    Kafka(K),
}

fn kafka_failure(topic: &str, e: KafkaError) -> SinkError {
    SinkError {
        sink: format!("kafka topic {topic}"),
        source: std::io::Error::other(e),
    }
}

fn no_producer(topic: &str) -> SinkError {
    kafka_failure(
        topic,
        KafkaError::Other("no producer (is [kafka] configured?)".into()),
    )
}

/// Where an alert sink writes.
enum AlertTarget {
    Lines(LineWriter),
    Kafka(KafkaAlertSink),
    Webhook(WebhookSink),
}

/// An alert destination.
pub struct AlertSink {
    format: OutputFormat,
    target: AlertTarget,
}

impl AlertSink {
    /// Opens the sink; Kafka sinks write through `producer`. A webhook sink's
    /// delivery task is started on `runtime` and its handle pushed to `tasks`,
    /// to be awaited once the sink is dropped.
    pub fn open(
        cfg: &SinkConfig,
        producer: Option<&Arc<KafkaProducer>>,
        webhooks: &mut WebhookTasks,
    ) -> Result<AlertSink, SinkError> {
        Ok(match cfg {
            SinkConfig::Stdout { format } => AlertSink {
                format: *format,
                target: AlertTarget::Lines(LineWriter::stdout()),
            },
            SinkConfig::File { path, format } => AlertSink {
                format: *format,
                target: AlertTarget::Lines(LineWriter::append(path)?),
            },
            SinkConfig::Kafka { topic, format } => AlertSink {
                format: *format,
                target: AlertTarget::Kafka(KafkaAlertSink::new(
                    producer.ok_or_else(|| no_producer(topic))?.clone(),
                    topic.clone(),
                    *format,
                )),
            },
            SinkConfig::Webhook { name, .. } => {
                let failed = |e: String| SinkError {
                    sink: format!("webhook {name}"),
                    source: std::io::Error::other(e),
                };
                let settings = cfg
                    .webhook_settings()
                    .map_err(|e| failed(e.to_string()))?
                    .ok_or_else(|| failed("not a webhook".into()))?;
                let (sink, task) =
                    WebhookSink::start(settings, &webhooks.runtime, webhooks.metrics.clone())
                        .map_err(failed)?;
                webhooks.tasks.push(task);
                AlertSink {
                    format: OutputFormat::Text,
                    target: AlertTarget::Webhook(sink),
                }
            }
        })
    }

    /// The webhook's name, for a webhook sink.
    pub fn webhook_name(&self) -> Option<&str> {
        match &self.target {
            AlertTarget::Webhook(w) => Some(w.name()),
            _ => None,
        }
    }

    /// Writes (or queues, for Kafka: the delivery joins `pending`) one alert.
    pub fn write(&mut self, alert: &Alert, pending: &mut Pending) -> Result<(), SinkError> {
        match &mut self.target {
            AlertTarget::Lines(w) => match self.format {
                OutputFormat::Text => w.line(&alert.message),
                OutputFormat::Json => w.json_line(alert),
            },
            AlertTarget::Kafka(k) => k
                .write(alert, pending)
                .map_err(|e| kafka_failure(k.topic(), e)),
            AlertTarget::Webhook(w) => {
                w.offer_alert(alert.severity, &alert.message);
                Ok(())
            }
        }
    }

    /// Writes one escalation record (its line, for text sinks).
    pub fn write_escalation(
        &mut self,
        escalation: &Escalation,
        pending: &mut Pending,
    ) -> Result<(), SinkError> {
        match &mut self.target {
            AlertTarget::Lines(w) => match self.format {
                OutputFormat::Text => w.line(&escalation.message),
                OutputFormat::Json => w.json_line(escalation),
            },
            AlertTarget::Kafka(k) => k
                .write_escalation(escalation, pending)
                .map_err(|e| kafka_failure(k.topic(), e)),
            AlertTarget::Webhook(w) => {
                w.offer(escalation.severity, &escalation.message);
                Ok(())
            }
        }
    }

    /// Flushes buffered lines. Kafka deliveries are awaited by the commit
    /// stage; webhooks deliver on their own task.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        match &mut self.target {
            AlertTarget::Lines(w) => w.flush(),
            AlertTarget::Kafka(_) | AlertTarget::Webhook(_) => Ok(()),
        }
    }
}

/// Webhook delivery tasks, started as sinks open.
pub struct WebhookTasks {
    pub runtime: tokio::runtime::Handle,
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The dead-letter destination: JSON lines with the reason and the record,
/// or a Kafka topic with the original bytes.
pub struct DeadLetterSink {
    target: Target<KafkaDeadLetterSink>,
}

impl DeadLetterSink {
    pub fn open(
        cfg: &DeadLetterConfig,
        producer: Option<&Arc<KafkaProducer>>,
    ) -> Result<DeadLetterSink, SinkError> {
        Ok(DeadLetterSink {
            target: match cfg {
                DeadLetterConfig::Stderr => Target::Lines(LineWriter::stderr()),
                DeadLetterConfig::File { path } => Target::Lines(LineWriter::append(path)?),
                DeadLetterConfig::Kafka { topic } => Target::Kafka(KafkaDeadLetterSink::new(
                    producer.ok_or_else(|| no_producer(topic))?.clone(),
                    topic.clone(),
                )),
            },
        })
    }

    /// A name for metrics.
    pub fn name(&self) -> &str {
        match &self.target {
            Target::Lines(w) => &w.name,
            Target::Kafka(k) => k.topic(),
        }
    }

    pub fn write(&mut self, letter: &DeadLetter, pending: &mut Pending) -> Result<(), SinkError> {
        match &mut self.target {
            Target::Lines(w) => w.json_line(letter),
            Target::Kafka(k) => k
                .write(letter, pending)
                .map_err(|e| kafka_failure(k.topic(), e)),
        }
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        match &mut self.target {
            Target::Lines(w) => w.flush(),
            Target::Kafka(_) => Ok(()),
        }
    }
}
