//! The Kafka source: one consumer in the configured group for every Kafka
//! topic source, each topic with its own parser.
//!
//! Offsets are never committed automatically: [`super::commit`] commits
//! them once the work derived from them is safe. On a revoke the consumer
//! waits (bounded) until everything consumed so far is committed, so the
//! next owner of a partition starts where this one really stopped.

use super::link::{is_connection_failure, BrokerLink};
use super::{client_config, KafkaError, Role};
use crate::event::{Origin, Position};
use crate::pipeline::health::Health;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::sources::{Barrier, Feed, Record, RecordFault, BATCH_SIZE, KEPT_PREFIX_BYTES};
use crate::pipeline::Shutdown;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Statistics};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The consumer type the pipeline uses.
pub(crate) type KafkaConsumer = BaseConsumer<ConsumerHooks>;

/// How long a revoke waits for in-flight work to be committed before it
/// lets the partitions go anyway (the new owner may then repeat some alerts).
const REVOKE_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Callbacks librdkafka makes on the consumer's thread.
pub(crate) struct ConsumerHooks {
    /// The pipeline's input, for rebalance barriers; `None` once the source
    /// has stopped (so closing the consumer never waits on a pipeline that
    /// is gone).
    feed: Mutex<Option<mpsc::Sender<Feed>>>,
    metrics: Option<Arc<Metrics>>,
    /// Whether the brokers answer: readiness, and one log line per change.
    link: BrokerLink,
}

/// The link's callbacks, and consumer lag per partition from the statistics.
impl ClientContext for ConsumerHooks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.link.log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.link.error(error, reason);
    }

    fn stats(&self, stats: Statistics) {
        if let Some(m) = &self.metrics {
            record_lag(m, &stats);
        }
        self.link.stats(stats);
    }
}

/// Consumer lag per partition, from librdkafka's periodic statistics.
fn record_lag(m: &Metrics, stats: &Statistics) {
    for (topic, t) in &stats.topics {
        for (partition, p) in &t.partitions {
            // -1 is librdkafka's internal "unassigned" partition; lag -1 is unknown.
            if *partition < 0 || p.consumer_lag < 0 {
                continue;
            }
            m.kafka_consumer_lag
                .with_label_values(&[topic.as_str(), &partition.to_string()])
                .set(p.consumer_lag);
        }
    }
}

impl ConsumerContext for ConsumerHooks {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                tracing::info!(
                    partitions = partitions.count(),
                    "partitions revoked: committing in-flight work first"
                );
                self.drain();
                self.link.revoked();
                if let Some(m) = &self.metrics {
                    for e in partitions.elements() {
                        let _ = m
                            .kafka_consumer_lag
                            .remove_label_values(&[e.topic(), &e.partition().to_string()]);
                    }
                }
            }
            Rebalance::Assign(partitions) => {
                let list: Vec<String> = partitions
                    .elements()
                    .iter()
                    .map(|e| format!("{}[{}]", e.topic(), e.partition()))
                    .collect();
                tracing::info!(
                    partitions = partitions.count(),
                    assigned = %list.join(" "),
                    "partitions assigned"
                );
                self.link.assigned(partitions.count());
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

impl ConsumerHooks {
    /// Sends a barrier through the pipeline and waits until it is released.
    fn drain(&self) {
        let feed = match self.feed.lock() {
            Ok(f) => f.clone(),
            Err(_) => None,
        };
        let Some(feed) = feed else { return };
        let (barrier, released) = Barrier::new();
        let started = Instant::now();
        if feed.blocking_send(Feed::Barrier(barrier)).is_err() {
            return;
        }
        match released.recv_timeout(REVOKE_DRAIN_TIMEOUT) {
            Ok(()) => tracing::info!(
                waited_ms = started.elapsed().as_millis() as u64,
                "in-flight work committed before the revoke"
            ),
            Err(_) => tracing::warn!(
                "in-flight work not committed within {REVOKE_DRAIN_TIMEOUT:?}; \
                 the next owner may repeat some alerts"
            ),
        }
    }

    fn detach(&self) {
        if let Ok(mut f) = self.feed.lock() {
            *f = None;
        }
    }
}

/// Creates the group consumer and subscribes it to `topics`.
pub(crate) fn subscribe(
    properties: &[(String, String)],
    topics: &[&str],
    exactly_once: bool,
    feed: mpsc::Sender<Feed>,
    metrics: Option<Arc<Metrics>>,
    health: Health,
) -> Result<Arc<KafkaConsumer>, KafkaError> {
    let isolation = if exactly_once {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    let cfg = client_config(
        properties,
        Role::Consumer,
        &[
            ("group.id", "tocsin"),
            ("auto.offset.reset", "earliest"),
            ("statistics.interval.ms", "5000"),
            // Bounds the prefetch buffer: backpressure reaches the broker
            // instead of growing memory.
            ("queued.max.messages.kbytes", "16384"),
            // A broker that answers fetches only at the wait limit (tansu
            // does) would otherwise add up to 500 ms to every alert.
            ("fetch.wait.max.ms", "100"),
            ("isolation.level", isolation),
        ],
        &[
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "false"),
        ],
    );
    let hooks = ConsumerHooks {
        feed: Mutex::new(Some(feed)),
        metrics,
        link: BrokerLink::new("consumer", health),
    };
    let consumer: KafkaConsumer = cfg
        .create_with_context(hooks)
        .map_err(KafkaError::client("creating the consumer"))?;
    consumer
        .subscribe(topics)
        .map_err(KafkaError::client(format!("subscribing to {topics:?}")))?;
    Ok(Arc::new(consumer))
}

/// Polls records into the pipeline until shutdown. Runs on a blocking
/// thread: librdkafka calls the rebalance hooks from inside `poll`.
pub(crate) fn consume(
    consumer: Arc<KafkaConsumer>,
    topics: HashMap<String, usize>,
    feed: mpsc::Sender<Feed>,
    shutdown: Shutdown,
    metrics: Option<Arc<Metrics>>,
    max_record_bytes: usize,
    mut orphans: super::orphans::OrphanWatch,
) -> Result<(), KafkaError> {
    /// Detaches the hooks from the pipeline however this thread ends (a
    /// panic included): a hook still holding the input would keep the
    /// workers waiting for ever.
    struct Detach<'a>(&'a KafkaConsumer);
    impl Drop for Detach<'_> {
        fn drop(&mut self) {
            self.0.context().detach();
        }
    }
    let _detach = Detach(&consumer);
    poll_loop(
        &consumer,
        &topics,
        &feed,
        &shutdown,
        metrics.as_deref(),
        max_record_bytes,
        &mut orphans,
    )
}

fn poll_loop(
    consumer: &KafkaConsumer,
    topics: &HashMap<String, usize>,
    feed: &mpsc::Sender<Feed>,
    shutdown: &Shutdown,
    metrics: Option<&Metrics>,
    max_record_bytes: usize,
    orphans: &mut super::orphans::OrphanWatch,
) -> Result<(), KafkaError> {
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    while !shutdown.is_triggered() {
        let orphaned = orphans.check(consumer, Instant::now());
        if !orphaned.is_empty() {
            tracing::warn!(
                partitions = %orphaned.join(" "),
                "partitions of the group have had records and no reader for three session timeouts: a member is gone and the broker did not rebalance; leaving and rejoining the group"
            );
            let names: Vec<&str> = topics.keys().map(String::as_str).collect();
            consumer.unsubscribe();
            consumer
                .subscribe(&names)
                .map_err(KafkaError::client(format!(
                    "subscribing again to {names:?}"
                )))?;
            orphans.rejoined(Instant::now());
        }
        // Wait briefly for the first record, then take what is already
        // fetched, so a busy stream travels in full batches and a quiet one
        // is not held back.
        let mut wait = Duration::from_millis(100);
        while batch.len() < BATCH_SIZE {
            let Some(polled) = consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            match polled {
                Ok(msg) => {
                    let Some(&source) = topics.get(msg.topic()) else {
                        continue;
                    };
                    let payload = msg.payload().unwrap_or_default();
                    // An over-long record is dead-lettered by its beginning,
                    // size and hash; it is never parsed.
                    let (payload, fault) = if payload.len() > max_record_bytes {
                        use sha2::Digest;
                        let kept = payload.get(..KEPT_PREFIX_BYTES).unwrap_or(payload);
                        (
                            kept.to_vec(),
                            Some(RecordFault::TooLong {
                                bytes: payload.len() as u64,
                                sha256: sha2::Sha256::digest(payload).into(),
                            }),
                        )
                    } else {
                        (payload.to_vec(), None)
                    };
                    batch.push(Record {
                        source,
                        payload,
                        fault,
                        origin: Origin {
                            source: msg.topic().to_string(),
                            position: Position::Offset {
                                partition: msg.partition(),
                                offset: msg.offset(),
                            },
                        },
                        ingest_time: chrono::Utc::now(),
                        read_at: Instant::now(),
                        mark: None,
                    });
                }
                Err(e) => {
                    if let Some(fatal) = consumer.client().fatal_error() {
                        return Err(KafkaError::Other(format!(
                            "fatal consumer error: {} ({:?})",
                            fatal.1, fatal.0
                        )));
                    }
                    // Transport errors are retried by librdkafka (broker
                    // restarts included); the link says so once, not per poll.
                    if is_connection_failure(e.rdkafka_error_code()) {
                        consumer.context().link.failed(&e.to_string());
                    } else {
                        tracing::warn!(error = %e, "consumer error");
                    }
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        consumer.context().link.answered();
        if let Some(m) = metrics {
            m.in_flight_events.add(batch.len() as i64);
        }
        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SIZE));
        if feed.blocking_send(Feed::Records(full)).is_err() {
            break;
        }
    }
    Ok(())
}
