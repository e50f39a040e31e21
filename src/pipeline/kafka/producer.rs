//! The producer behind the Kafka alert and dead-letter sinks. One producer
//! serves every Kafka sink, so in exactly-once mode one transaction covers
//! all of them.

use super::{client_config, error_to_tracing, log_to_tracing, KafkaError, Role};
use crate::alert::Alert;
use crate::config::OutputFormat;
use crate::pipeline::dead_letter::DeadLetter;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientContext;
use std::sync::Arc;
use std::time::Duration;

/// Forwards the producer's log lines to `tracing`.
pub struct ProducerHooks;

impl ClientContext for ProducerHooks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_to_tracing("producer", level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        error_to_tracing("producer", &error, reason);
    }
}

pub type KafkaProducer = FutureProducer<ProducerHooks>;

/// How long transactional calls may take before they count as failed.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates the idempotent producer; with a `transactional_id`, also starts
/// its first transaction.
pub fn create(
    properties: &[(String, String)],
    transactional_id: Option<&str>,
) -> Result<Arc<KafkaProducer>, KafkaError> {
    // Idempotence is the default (no duplicates or reordering from
    // retries); transactions require it, so exactly-once forces it.
    let mut forced = Vec::new();
    if let Some(id) = transactional_id {
        forced.push(("transactional.id", id));
        forced.push(("enable.idempotence", "true"));
    }
    let cfg = client_config(
        properties,
        Role::Producer,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
        ],
        &forced,
    );
    let producer: KafkaProducer = cfg
        .create_with_context(ProducerHooks)
        .map_err(KafkaError::client("creating the producer"))?;
    if transactional_id.is_some() {
        producer
            .init_transactions(TRANSACTION_TIMEOUT)
            .map_err(KafkaError::client("initialising transactions"))?;
        producer
            .begin_transaction()
            .map_err(KafkaError::client("beginning a transaction"))?;
    }
    Ok(Arc::new(producer))
}

/// Queues a record, waiting while the producer's queue is full (that wait
/// is the backpressure from a slow broker).
fn enqueue(
    producer: &KafkaProducer,
    mut record: FutureRecord<'_, [u8], [u8]>,
) -> Result<DeliveryFuture, KafkaError> {
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((
                rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                r,
            )) => {
                record = r;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((source, r)) => {
                return Err(KafkaError::Delivery {
                    topic: r.topic.to_string(),
                    source,
                })
            }
        }
    }
}

/// Queues a keyed record for a compacted state topic; no payload is a
/// tombstone (the key is deleted at compaction).
pub fn send_keyed(
    producer: &KafkaProducer,
    topic: &str,
    key: &str,
    payload: Option<&[u8]>,
    pending: &mut Pending,
) -> Result<(), KafkaError> {
    let mut record = FutureRecord::to(topic).key(key.as_bytes());
    if let Some(p) = payload {
        record = record.payload(p);
    }
    pending.push(enqueue(producer, record)?);
    Ok(())
}

/// Deliveries not yet known to be acknowledged.
pub type Pending = Vec<DeliveryFuture>;

/// Alerts to a topic.
pub struct KafkaAlertSink {
    producer: Arc<KafkaProducer>,
    topic: String,
    format: OutputFormat,
}

impl KafkaAlertSink {
    pub fn new(producer: Arc<KafkaProducer>, topic: String, format: OutputFormat) -> Self {
        KafkaAlertSink {
            producer,
            topic,
            format,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues the alert; its delivery is added to `pending`.
    pub fn write(&self, alert: &Alert, pending: &mut Pending) -> Result<(), KafkaError> {
        let value = match self.format {
            OutputFormat::Text => alert.message.clone().into_bytes(),
            OutputFormat::Json => serde_json::to_vec(alert)
                .map_err(|e| KafkaError::Other(format!("serialising alert {}: {e}", alert.id)))?,
        };
        let key = alert_key(alert);
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header {
                key: "type",
                value: Some(alert.alert_type.as_str()),
            })
            .insert(Header {
                key: "severity",
                value: Some(alert.severity.key()),
            })
            .insert(Header {
                key: "rule_id",
                value: Some(alert.rule.id.as_str()),
            });
        let record = FutureRecord::to(&self.topic)
            .key(key.as_bytes())
            .payload(value.as_slice())
            .headers(headers);
        pending.push(enqueue(&self.producer, record)?);
        Ok(())
    }
}

/// The record key: the correlation group (rule and group-by values), so one
/// incident's updates stay in order on one partition; otherwise the alert id.
impl KafkaAlertSink {
    /// An escalation record, keyed by its alert id so an alert's story stays
    /// in one partition.
    pub fn write_escalation(
        &self,
        escalation: &crate::incident::escalation::Escalation,
        pending: &mut Pending,
    ) -> Result<(), KafkaError> {
        let value = match self.format {
            OutputFormat::Text => escalation.message.clone().into_bytes(),
            OutputFormat::Json => serde_json::to_vec(escalation).map_err(|e| {
                KafkaError::Other(format!(
                    "serialising escalation {}: {e}",
                    escalation.alert_id
                ))
            })?,
        };
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header {
                key: "type",
                value: Some("escalation"),
            })
            .insert(Header {
                key: "severity",
                value: Some(escalation.severity.key()),
            })
            .insert(Header {
                key: "level",
                value: Some(escalation.level.as_str()),
            });
        let record = FutureRecord::to(&self.topic)
            .key(escalation.alert_id.as_bytes())
            .payload(value.as_slice())
            .headers(headers);
        pending.push(enqueue(&self.producer, record)?);
        Ok(())
    }
}

pub fn alert_key(alert: &Alert) -> String {
    match &alert.group {
        Some(group) if !group.is_empty() => {
            let mut key = alert.rule.id.clone();
            for (field, value) in group {
                key.push('|');
                key.push_str(field);
                key.push('=');
                key.push_str(value);
            }
            key
        }
        _ => alert.id.clone(),
    }
}

/// Dead letters to a topic: the original bytes, with the reason and where
/// they came from in headers.
pub struct KafkaDeadLetterSink {
    producer: Arc<KafkaProducer>,
    topic: String,
}

impl KafkaDeadLetterSink {
    pub fn new(producer: Arc<KafkaProducer>, topic: String) -> Self {
        KafkaDeadLetterSink { producer, topic }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn write(&self, letter: &DeadLetter, pending: &mut Pending) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(5)
            .insert(Header {
                key: "reason",
                value: Some(letter.reason.as_str()),
            })
            .insert(Header {
                key: "source",
                value: Some(letter.source.source.as_str()),
            });
        if let crate::event::Position::Offset { partition, offset } = letter.source.position {
            headers = headers
                .insert(Header {
                    key: "source_topic",
                    value: Some(letter.source.source.as_str()),
                })
                .insert(Header {
                    key: "source_partition",
                    value: Some(&partition.to_string()),
                })
                .insert(Header {
                    key: "source_offset",
                    value: Some(&offset.to_string()),
                });
        }
        let received = letter.received_at.to_rfc3339();
        headers = headers.insert(Header {
            key: "received_at",
            value: Some(&received),
        });
        let record = FutureRecord::to(&self.topic)
            .payload(letter.original.as_slice())
            .headers(headers);
        pending.push(enqueue(&self.producer, record)?);
        Ok(())
    }
}
