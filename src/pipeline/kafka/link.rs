//! Whether a Kafka client's brokers answer: what `/readyz` reports, and
//! what the log says about it.
//!
//! librdkafka retries a lost broker for ever and reports each failed
//! attempt (a log line, an error callback, a poll error): with the brokers
//! down that is hundreds of lines a minute, which buries everything else
//! and says nothing new. Here a failure while the link is up is one line;
//! while it stays down, one summary a [`SUMMARY_EVERY`]; when a broker
//! answers again, one line. Readiness follows the same state.

use crate::pipeline::health::{Health, KafkaState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a link that stays down is summarised in the log.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// One client's view of its brokers.
pub struct BrokerLink {
    /// `consumer` or `producer`, in the log and in `/readyz`.
    client: &'static str,
    health: Health,
    state: Mutex<Link>,
}

struct Link {
    /// Since when no broker answers, if none does.
    down_since: Option<(Instant, chrono::DateTime<chrono::Utc>)>,
    /// A broker has answered at least once.
    connected: bool,
    /// Partitions assigned to this consumer.
    partitions: usize,
    /// Failed attempts since the last line about them.
    failures: u64,
    last_summary: Instant,
    last_error: String,
}

impl BrokerLink {
    /// A link not yet connected: not ready until a broker answers.
    pub(crate) fn new(client: &'static str, health: Health) -> BrokerLink {
        health.set_kafka(client, KafkaState::Connecting);
        BrokerLink {
            client,
            health,
            state: Mutex::new(Link {
                down_since: None,
                connected: false,
                partitions: 0,
                failures: 0,
                last_summary: Instant::now(),
                last_error: String::new(),
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Link) -> T) -> T {
        // A poisoned lock only means a callback panicked holding it; the state is whole.
        let mut link = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut link)
    }

    /// An attempt to reach a broker failed (`error` says how).
    pub(crate) fn failed(&self, error: &str) {
        let client = self.client;
        let state = self.with(|link| {
            link.failures += 1;
            link.last_error = error.to_string();
            match link.down_since {
                None => {
                    let now = chrono::Utc::now();
                    link.down_since = Some((Instant::now(), now));
                    link.last_summary = Instant::now();
                    link.failures = 0;
                    tracing::warn!(
                        client,
                        error,
                        "Kafka brokers unreachable; retrying (a summary every {}s until they answer)",
                        SUMMARY_EVERY.as_secs()
                    );
                    Some(KafkaState::Down {
                        since: now,
                        error: error.to_string(),
                    })
                }
                Some((since, _)) => {
                    if link.last_summary.elapsed() >= SUMMARY_EVERY {
                        tracing::warn!(
                            client,
                            down_for_s = since.elapsed().as_secs(),
                            failed_attempts = link.failures,
                            last_error = %link.last_error,
                            "Kafka brokers still unreachable"
                        );
                        link.last_summary = Instant::now();
                        link.failures = 0;
                    }
                    None
                }
            }
        });
        if let Some(state) = state {
            self.health.set_kafka(client, state);
        }
    }

    /// A broker answered (statistics show one up, a record arrived).
    pub(crate) fn answered(&self) {
        let client = self.client;
        let state = self.with(|link| {
            let changed = !link.connected || link.down_since.is_some();
            if let Some((since, _)) = link.down_since.take() {
                tracing::info!(
                    client,
                    down_for_s = since.elapsed().as_secs(),
                    failed_attempts = link.failures,
                    "Kafka brokers reachable again"
                );
            }
            link.connected = true;
            link.failures = 0;
            changed.then_some(KafkaState::Up {
                partitions: link.partitions,
            })
        });
        if let Some(state) = state {
            self.health.set_kafka(client, state);
        }
    }

    /// The group took this consumer's partitions (a session timeout does
    /// this locally: it says nothing about the brokers).
    pub(crate) fn revoked(&self) {
        let client = self.client;
        let state = self.with(|link| {
            link.partitions = 0;
            (link.connected && link.down_since.is_none())
                .then_some(KafkaState::Up { partitions: 0 })
        });
        if let Some(state) = state {
            self.health.set_kafka(client, state);
        }
    }

    /// The group gave this consumer `partitions` partitions.
    pub(crate) fn assigned(&self, partitions: usize) {
        let client = self.client;
        let state = self.with(|link| {
            link.partitions = partitions;
            // An assignment comes from a broker: it answers.
            link.down_since = None;
            link.connected = true;
            KafkaState::Up { partitions }
        });
        self.health.set_kafka(client, state);
    }

    /// Whether no broker answers now.
    #[cfg(test)]
    fn is_down(&self) -> bool {
        self.with(|link| link.down_since.is_some() || !link.connected)
    }
}

/// The producer's callbacks are the link's own; the consumer's add the
/// rebalance hooks and hand these on.
impl rdkafka::ClientContext for BrokerLink {
    /// Failed connection attempts go to the link (at debug level in the
    /// log), everything else to the log.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if fac == "FAIL" || (fac == "ERROR" && message.contains("brokers are down")) {
            tracing::debug!(client = self.client, fac, "{message}");
            self.failed(message);
        } else {
            super::log_to_tracing(self.client, level, fac, message);
        }
    }

    /// Connection failures go to the link; other errors to the log.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if is_connection_failure(error.rdkafka_error_code()) {
            self.failed(reason);
        } else {
            super::error_to_tracing(self.client, &error, reason);
        }
    }

    /// A connected broker in the periodic statistics means the link is up.
    fn stats(&self, stats: rdkafka::Statistics) {
        if any_broker_up(&stats) {
            self.answered();
        }
    }
}

/// Whether librdkafka's statistics show a broker of the cluster (not a
/// bootstrap placeholder) connected.
fn any_broker_up(stats: &rdkafka::Statistics) -> bool {
    stats
        .brokers
        .values()
        .any(|b| b.nodeid >= 0 && b.state == "UP")
}

/// Whether a librdkafka error or log line is a failed attempt to reach a
/// broker, which the link summarises instead of logging each.
pub(crate) fn is_connection_failure(code: Option<rdkafka::types::RDKafkaErrorCode>) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        code,
        Some(
            Code::BrokerTransportFailure
                | Code::AllBrokersDown
                | Code::Resolve
                | Code::BrokerNotAvailable
                | Code::NetworkException
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_link_and_repeated_failures_change_nothing() {
        let health = Health::new();
        health.set_rules_loaded(1);
        health.running("source:kafka");
        let link = BrokerLink::new("consumer", health.clone());
        let (ready, body) = health.readiness();
        assert!(!ready);
        assert!(
            body["reason"].as_str().unwrap().contains("connecting"),
            "{body}"
        );
        link.answered();
        let (ready, body) = health.readiness();
        assert!(ready, "{body}");
        assert_eq!(
            body["kafka"]["consumer"],
            "up, waiting for partition assignment"
        );
        link.assigned(3);
        assert_eq!(
            health.readiness().1["kafka"]["consumer"],
            "up, 3 partitions assigned"
        );
        for _ in 0..500 {
            link.failed("Connect to ipv4#127.0.0.1:9092 failed: Connection refused");
        }
        assert!(link.is_down());
        let (ready, body) = health.readiness();
        assert!(!ready);
        let reason = body["reason"].as_str().unwrap();
        assert!(
            reason.contains("consumer: no broker answers since"),
            "{reason}"
        );
        assert!(reason.contains("Connection refused"), "{reason}");
        assert!(health.liveness().0, "alive while the brokers are away");
        link.answered();
        assert!(health.readiness().0);
        assert!(!link.is_down());
    }
}
