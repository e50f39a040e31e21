//! The producer behind the Kafka alert and dead-letter sinks. One producer
//! serves every Kafka sink, so in exactly-once mode one transaction covers
//! all of them.

use super::link::BrokerLink;
use super::{client_config, KafkaError, Role};
use crate::pipeline::dead_letter::Whole;
use crate::pipeline::health::Health;
use crate::pipeline::metrics::Metrics;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The producer's callbacks: its log lines, and whether its brokers answer.
pub(crate) type ProducerHooks = BrokerLink;

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
pub(crate) const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

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
pub(crate) struct RecordLimits {
    by_topic: HashMap<String, usize>,
    /// For topics not asked about, and when the broker would not say.
    default: usize,
}

impl RecordLimits {
    pub(crate) fn for_topic(&self, topic: &str) -> usize {
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
pub(crate) async fn record_limits(
    properties: &[(String, String)],
    topics: &[&str],
) -> RecordLimits {
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
pub(crate) fn cut_headers(headers: OwnedHeaders, whole: &Whole) -> OwnedHeaders {
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
pub(crate) fn fit<'a>(
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
pub(crate) fn create(
    properties: &[(String, String)],
    transactional_id: Option<&str>,
    limits: RecordLimits,
    metrics: Option<Arc<Metrics>>,
    health: Health,
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
            // Whether a broker is up, for readiness.
            ("statistics.interval.ms", "5000"),
        ],
        &forced,
    );
    let client: FutureProducer<ProducerHooks> = cfg
        .create_with_context(BrokerLink::new("producer", health))
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
pub(crate) fn send_keyed(
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

/// Queues a keyed record for one partition (a changelog's partition is its
/// repartition partition's; progress goes to every partition); no payload
/// is a tombstone.
pub(crate) fn send_to_partition(
    producer: &KafkaProducer,
    topic: &str,
    partition: i32,
    key: &[u8],
    payload: Option<&[u8]>,
    pending: &mut Pending,
) -> Result<(), KafkaError> {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic)
        .partition(partition)
        .key(key);
    if let Some(p) = payload {
        record = record.payload(p);
    }
    pending.push(enqueue(producer, record)?);
    Ok(())
}

/// Deliveries not yet known to be acknowledged.
pub(crate) type Pending = Vec<DeliveryFuture>;

/// Queues a record (key optional); its delivery joins `pending`.
pub(crate) fn send(
    producer: &KafkaProducer,
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
    headers: OwnedHeaders,
    pending: &mut Pending,
) -> Result<(), KafkaError> {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic)
        .payload(value)
        .headers(headers);
    if let Some(key) = key {
        record = record.key(key);
    }
    pending.push(enqueue(producer, record)?);
    Ok(())
}
