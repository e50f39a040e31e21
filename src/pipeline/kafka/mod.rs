//! Kafka: the consumer-group source, the producer behind the alert and
//! dead-letter sinks, and the commit stage that ties input offsets to
//! acknowledged output.
//!
//! The guarantee rests on order. The pipeline's writer handles records in
//! the order they were consumed, so when it reaches a checkpoint it knows the
//! furthest offset per partition whose alerts have all been handed to the
//! producer. At-least-once: the [`commit`] stage waits for the broker to
//! acknowledge those alerts, then commits the offsets. Exactly-once: alerts
//! and offsets go into one Kafka transaction. On a rebalance the consumer
//! sends a barrier down the pipeline and waits until everything before it is
//! committed, so a partition changes owner with its work done.

pub(crate) mod capabilities;
pub mod check;
pub(crate) mod commit;
pub mod config;
pub(crate) mod consumer;
pub(crate) mod link;
pub(crate) mod orphans;
pub(crate) mod producer;
pub(crate) mod progress;
pub mod state;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::ClientConfig;

/// What the pipeline needs to know about Kafka.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// librdkafka properties (keys normalised), for consumer and producer.
    pub properties: Vec<(String, String)>,
    /// True for `delivery.mode = "exactly-once"`: alerts and offsets go into one Kafka
    /// transaction. False (default): at-least-once.
    pub exactly_once: bool,
    /// The producer's `transactional.id` (exactly-once only).
    pub transactional_id: Option<String>,
    /// Most time between commits while records keep arriving.
    pub commit_interval: std::time::Duration,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            properties: Vec::new(),
            exactly_once: false,
            transactional_id: None,
            commit_interval: std::time::Duration::from_secs(1),
        }
    }
}

/// A Kafka operation that failed, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A Kafka client call failed.
    #[error("kafka: {what}: {source}")]
    Client {
        /// What was being done.
        what: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The broker did not acknowledge a record.
    #[error("kafka: delivery to `{topic}` failed: {source}")]
    Delivery {
        /// The topic the record was for.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Any other failure, described.
    #[error("kafka: {0}")]
    Other(String),
}

impl KafkaError {
    pub(crate) fn client(
        what: impl Into<String>,
    ) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let what = what.into();
        move |source| KafkaError::Client { what, source }
    }
}

/// Who a client configuration is for: some properties belong to one side
/// only, and librdkafka warns about the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A consumer: the group reading the input topics, or a state topic's reader.
    Consumer,
    /// The producer behind Kafka sinks, dead letters and state topics.
    Producer,
}

/// Properties only one role understands, so the other is not handed them
/// (librdkafka warns about them). A name ending in `.` is a prefix.
const ROLE_ONLY: &[(&str, Role)] = &[
    ("group.", Role::Consumer),
    ("fetch.", Role::Consumer),
    ("queued.", Role::Consumer),
    ("auto.offset.reset", Role::Consumer),
    ("isolation.level", Role::Consumer),
    ("enable.auto.commit", Role::Consumer),
    ("enable.auto.offset.store", Role::Consumer),
    ("auto.commit.interval.ms", Role::Consumer),
    ("session.timeout.ms", Role::Consumer),
    ("heartbeat.interval.ms", Role::Consumer),
    ("max.poll.interval.ms", Role::Consumer),
    ("partition.assignment.strategy", Role::Consumer),
    ("enable.partition.eof", Role::Consumer),
    ("check.crcs", Role::Consumer),
    ("queue.buffering.", Role::Producer),
    ("batch.", Role::Producer),
    ("transaction.", Role::Producer),
    ("transactional.id", Role::Producer),
    ("enable.idempotence", Role::Producer),
    ("acks", Role::Producer),
    ("request.required.acks", Role::Producer),
    ("linger.ms", Role::Producer),
    ("compression.type", Role::Producer),
    ("compression.codec", Role::Producer),
    ("message.timeout.ms", Role::Producer),
    ("delivery.timeout.ms", Role::Producer),
    ("retries", Role::Producer),
    ("message.send.max.retries", Role::Producer),
    ("partitioner", Role::Producer),
];

/// The role a property belongs to alone, if it does.
fn only_for(key: &str) -> Option<Role> {
    ROLE_ONLY
        .iter()
        .find(|(name, _)| match name.strip_suffix('.') {
            Some(_) => key.starts_with(name),
            None => key == *name,
        })
        .map(|(_, role)| *role)
}

/// A librdkafka configuration: tocsin's defaults for the role, then every
/// user property that applies to it (the user wins), then the settings the
/// delivery guarantee depends on (these win).
pub fn client_config(
    properties: &[(String, String)],
    role: Role,
    defaults: &[(&str, &str)],
    forced: &[(&str, &str)],
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    // librdkafka's `debug` contexts log at debug level: let them through when asked for.
    let debug = properties.iter().any(|(k, _)| k == "debug");
    cfg.set_log_level(if debug {
        RDKafkaLogLevel::Debug
    } else {
        RDKafkaLogLevel::Warning
    });
    for (k, v) in defaults {
        cfg.set(*k, *v);
    }
    for (k, v) in properties {
        let skip = match role {
            Role::Consumer => only_for(k) == Some(Role::Producer),
            Role::Producer => only_for(k) == Some(Role::Consumer),
        };
        if !skip {
            cfg.set(k.as_str(), v.as_str());
        }
    }
    for (k, v) in forced {
        cfg.set(*k, *v);
    }
    cfg
}

/// librdkafka's error callback. Its log line for the same event is already
/// forwarded, so only what the log does not say is logged here: fatal
/// errors, loudly; everything else (broker down, transport failures, which
/// librdkafka retries) at debug level, instead of a second ERROR line.
pub(crate) fn error_to_tracing(client: &str, error: &rdkafka::error::KafkaError, reason: &str) {
    if matches!(
        error.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::Fatal)
    ) {
        tracing::error!(client, "fatal Kafka client error: {error}: {reason}");
    } else {
        tracing::debug!(client, "Kafka client error (retried): {error}: {reason}");
    }
}

/// Forwards librdkafka's log lines to `tracing`.
pub(crate) fn log_to_tracing(client: &str, level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(client, fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(client, fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(client, fac, "{message}"),
        RDKafkaLogLevel::Debug => tracing::debug!(client, fac, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::vocab::text::owned_pairs as props;

    #[test]
    fn user_properties_override_defaults_but_not_forced_settings() {
        let user = props(&[
            ("bootstrap.servers", "b:9092"),
            ("auto.offset.reset", "latest"),
            ("enable.auto.commit", "true"),
            ("security.protocol", "SASL_SSL"),
        ]);
        let cfg = client_config(
            &user,
            Role::Consumer,
            &[("auto.offset.reset", "earliest")],
            &[("enable.auto.commit", "false")],
        );
        assert_eq!(cfg.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(cfg.get("auto.offset.reset"), Some("latest"));
        assert_eq!(cfg.get("enable.auto.commit"), Some("false"));
        assert_eq!(cfg.get("security.protocol"), Some("SASL_SSL"));
    }

    #[test]
    fn each_role_gets_only_the_properties_it_understands() {
        let user = props(&[
            ("bootstrap.servers", "b:9092"),
            ("group.id", "tocsin"),
            ("linger.ms", "20"),
            ("sasl.username", "u"),
        ]);
        let consumer = client_config(&user, Role::Consumer, &[], &[]);
        let producer = client_config(&user, Role::Producer, &[], &[]);
        assert_eq!(consumer.get("group.id"), Some("tocsin"));
        assert_eq!(consumer.get("linger.ms"), None);
        assert_eq!(producer.get("group.id"), None);
        assert_eq!(producer.get("linger.ms"), Some("20"));
        assert_eq!(producer.get("sasl.username"), Some("u"));
        assert_eq!(consumer.get("sasl.username"), Some("u"));
    }
}
