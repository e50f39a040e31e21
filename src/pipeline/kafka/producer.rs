//! The producer behind the Kafka alert and dead-letter sinks. One producer
//! serves every Kafka sink, so in exactly-once mode one transaction covers
//! all of them.

use super::{client_config, error_to_tracing, log_to_tracing, KafkaError, Role};
use crate::alert::Alert;
use crate::config::OutputFormat;
use crate::metrics::Metrics;
use crate::pipeline::dead_letter::{DeadLetter, Whole};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientContext;
use std::borrow::Cow;
use std::collections::HashMap;
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

/// The producer behind every Kafka sink, with how large a record each
/// topic takes. Derefs to the librdkafka producer.
pub struct KafkaProducer {
    client: FutureProducer<ProducerHooks>,
    limits: RecordLimits,
    metrics: Option<Arc<Metrics>>,
}

impl std::ops::Deref for KafkaProducer {
    type Target = FutureProducer<ProducerHooks>;

    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

/// How long transactional calls may take before they count as failed.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka's default `max.message.bytes` for a topic.
const KAFKA_DEFAULT_MAX_MESSAGE: usize = 1_048_588;
/// librdkafka's default `message.max.bytes` for a producer.
const PRODUCER_DEFAULT_MAX_MESSAGE: usize = 1_000_000;
/// What a record costs besides its key, headers and value (record and
/// batch framing), with room to spare.
const RECORD_OVERHEAD: usize = 512;

/// How large a record each topic takes: the topic's `max.message.bytes`,
/// capped by the producer's own `message.max.bytes`.
#[derive(Debug, Clone, Default)]
pub struct RecordLimits {
    by_topic: HashMap<String, usize>,
    /// For topics not asked about, and when the broker would not say.
    default: usize,
}

impl RecordLimits {
    pub fn for_topic(&self, topic: &str) -> usize {
        self.by_topic.get(topic).copied().unwrap_or(self.default)
    }

    /// The smallest limit: batches must fit every topic they may go to.
    fn smallest(&self) -> usize {
        self.by_topic
            .values()
            .copied()
            .chain([self.default])
            .min()
            .unwrap_or(self.default)
    }
}

/// Asks the brokers for each topic's `max.message.bytes`. A topic the
/// broker says nothing about gets Kafka's default.
pub async fn record_limits(properties: &[(String, String)], topics: &[&str]) -> RecordLimits {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let producer_max = properties
        .iter()
        .find(|(k, _)| k == "message.max.bytes")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(PRODUCER_DEFAULT_MAX_MESSAGE);
    let mut limits = RecordLimits {
        by_topic: HashMap::new(),
        default: producer_max.min(KAFKA_DEFAULT_MAX_MESSAGE),
    };
    if topics.is_empty() {
        return limits;
    }
    let admin: Result<AdminClient<rdkafka::client::DefaultClientContext>, _> =
        client_config(properties, Role::Producer, &[], &[]).create();
    let Ok(admin) = admin else {
        return limits;
    };
    let resources: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    match admin.describe_configs(&resources, &options).await {
        Ok(results) => {
            for (topic, result) in topics.iter().zip(results) {
                let topic_max = result
                    .ok()
                    .and_then(|r| {
                        r.entries
                            .iter()
                            .find(|e| e.name == "max.message.bytes")
                            .and_then(|e| e.value.as_deref()?.parse::<usize>().ok())
                    })
                    .unwrap_or(KAFKA_DEFAULT_MAX_MESSAGE);
                limits
                    .by_topic
                    .insert(topic.to_string(), topic_max.min(producer_max));
            }
        }
        Err(e) => tracing::warn!(
            error = %e,
            limit = limits.default,
            "could not read the topics' max.message.bytes; assuming the default"
        ),
    }
    limits
}

/// What a record's value may take of `limit` after its key and headers.
fn room(limit: usize, key: &[u8], headers: &OwnedHeaders) -> usize {
    let header_bytes: usize = (0..headers.count())
        .map(|i| {
            let h = headers.get(i);
            h.key.len() + h.value.map_or(0, <[u8]>::len) + 8
        })
        .sum();
    // The cut headers themselves: three short keys, a number and a hash.
    let cut_headers = 160;
    limit.saturating_sub(key.len() + header_bytes + cut_headers + RECORD_OVERHEAD)
}

/// The headers of a record cut to fit: the whole value's size and SHA-256.
fn cut_headers(headers: OwnedHeaders, whole: &Whole) -> OwnedHeaders {
    headers
        .insert(Header {
            key: "tocsin-cut",
            value: Some("true"),
        })
        .insert(Header {
            key: "tocsin-original-size",
            value: Some(&whole.bytes.to_string()),
        })
        .insert(Header {
            key: "tocsin-original-sha256",
            value: Some(&whole.sha256),
        })
}

/// A record too large for its topic. `shrink` may offer a smaller form
/// that keeps the record readable (an alert without its event body); what
/// is still too large is cut. Logged and counted: the record is kept, in
/// part, instead of stalling the partition behind a refused produce.
fn fit<'a>(
    producer: &KafkaProducer,
    topic: &str,
    key: &[u8],
    headers: OwnedHeaders,
    value: Cow<'a, [u8]>,
    shrink: impl FnOnce(&Whole) -> Option<Vec<u8>>,
) -> (Cow<'a, [u8]>, OwnedHeaders) {
    let room = room(producer.limits.for_topic(topic), key, &headers);
    if value.len() <= room {
        return (value, headers);
    }
    let whole = Whole::hash(&value);
    tracing::warn!(
        topic,
        bytes = whole.bytes,
        room,
        "record larger than its topic takes: cut to fit, with its size and SHA-256 in headers"
    );
    if let Some(m) = &producer.metrics {
        m.records_cut.with_label_values(&[topic]).inc();
    }
    let mut value = match shrink(&whole) {
        Some(smaller) => Cow::Owned(smaller),
        None => value,
    };
    if value.len() > room {
        value = Cow::Owned(value.get(..room).unwrap_or_default().to_vec());
    }
    (value, cut_headers(headers, &whole))
}

/// Creates the idempotent producer; with a `transactional_id`, also starts
/// its first transaction.
/// `limits` are the topics' record limits (see [`record_limits`]): records
/// are cut to fit them, and batches are kept within the smallest.
pub fn create(
    properties: &[(String, String)],
    transactional_id: Option<&str>,
    limits: RecordLimits,
    metrics: Option<Arc<Metrics>>,
) -> Result<Arc<KafkaProducer>, KafkaError> {
    // Idempotence is the default (no duplicates or reordering from
    // retries); transactions require it, so exactly-once forces it.
    let mut forced = Vec::new();
    if let Some(id) = transactional_id {
        forced.push(("transactional.id", id));
        forced.push(("enable.idempotence", "true"));
    }
    let batch_size = limits
        .smallest()
        .saturating_sub(RECORD_OVERHEAD)
        .max(1)
        .to_string();
    let cfg = client_config(
        properties,
        Role::Producer,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            ("batch.size", &batch_size),
        ],
        &forced,
    );
    let client: FutureProducer<ProducerHooks> = cfg
        .create_with_context(ProducerHooks)
        .map_err(KafkaError::client("creating the producer"))?;
    let producer = KafkaProducer {
        client,
        limits,
        metrics,
    };
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
    let record = FutureRecord::to(topic).key(key.as_bytes());
    let delivery = match payload {
        None => enqueue(producer, record)?,
        Some(p) => {
            let (value, headers) = fit(
                producer,
                topic,
                key.as_bytes(),
                OwnedHeaders::new(),
                Cow::Borrowed(p),
                |_| None,
            );
            enqueue(producer, record.payload(value.as_ref()).headers(headers))?
        }
    };
    pending.push(delivery);
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

    /// Queues the alert; its delivery is added to `pending`. An alert too
    /// large for the topic loses its event body first (size, hash and a
    /// prefix stay), so it remains a readable alert.
    pub fn write(&self, alert: &Alert, pending: &mut Pending) -> Result<(), KafkaError> {
        let serialise = |a: &Alert| {
            serde_json::to_vec(a)
                .map_err(|e| KafkaError::Other(format!("serialising alert {}: {e}", alert.id)))
        };
        let value = match self.format {
            OutputFormat::Text => alert.message.clone().into_bytes(),
            OutputFormat::Json => serialise(alert)?,
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
        let json = self.format == OutputFormat::Json;
        let (value, headers) = fit(
            &self.producer,
            &self.topic,
            key.as_bytes(),
            headers,
            Cow::Owned(value),
            |whole| {
                json.then(|| serialise(&without_event_body(alert, whole)).ok())
                    .flatten()
            },
        );
        let record = FutureRecord::to(&self.topic)
            .key(key.as_bytes())
            .payload(value.as_ref())
            .headers(headers);
        pending.push(enqueue(&self.producer, record)?);
        Ok(())
    }
}

/// Characters of the event JSON an alert cut to fit keeps.
const EVENT_PREFIX_CHARS: usize = 2000;

/// The alert with its event replaced by what identifies it: the size and
/// SHA-256 of the whole alert record, and the event's beginning.
fn without_event_body(alert: &Alert, whole: &Whole) -> Alert {
    let event = alert.event.to_string();
    Alert {
        event: serde_json::json!({
            "cut": {
                "alert_bytes": whole.bytes,
                "alert_sha256": whole.sha256,
                "event_bytes": event.len(),
                "event_prefix": crate::vocab::text::shorten(&event, EVENT_PREFIX_CHARS),
            }
        }),
        ..alert.clone()
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
        let key = escalation.alert_id.as_bytes();
        let (value, headers) = fit(
            &self.producer,
            &self.topic,
            key,
            headers,
            Cow::Owned(value),
            |_| None,
        );
        let record = FutureRecord::to(&self.topic)
            .key(key)
            .payload(value.as_ref())
            .headers(headers);
        pending.push(enqueue(&self.producer, record)?);
        Ok(())
    }
}

/// Longest record key written; longer group keys are replaced by their hash.
const MAX_KEY_BYTES: usize = 1024;

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
            // Still one partition per group, without a key as large as the event.
            if key.len() > MAX_KEY_BYTES {
                key = format!(
                    "{}|sha256={}",
                    alert.rule.id,
                    Whole::hash(key.as_bytes()).sha256
                );
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
        // A record over engine.max_record_bytes arrives as its beginning.
        if let Some(whole) = &letter.whole {
            headers = cut_headers(headers, whole);
        }
        let (value, headers) = fit(
            &self.producer,
            &self.topic,
            &[],
            headers,
            Cow::Borrowed(letter.original.as_slice()),
            |_| None,
        );
        let record = FutureRecord::<[u8], [u8]>::to(&self.topic)
            .payload(value.as_ref())
            .headers(headers);
        pending.push(enqueue(&self.producer, record)?);
        Ok(())
    }
}
