//! The `[kafka]` properties and the `[delivery]` section.

use crate::vocab::Span;
use serde::{Deserialize, Serialize};

/// Delivery guarantee between the input topics and the alerts topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryMode {
    /// Offsets are committed only after every alert derived from the records
    /// before them is acknowledged by the broker. A crash may repeat alerts.
    #[default]
    AtLeastOnce,
    /// Alerts and offsets are committed in one Kafka transaction.
    ExactlyOnce,
}

/// The `[delivery]` section: how Kafka offsets and alerts are committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// `at-least-once` (default) or `exactly-once`.
    pub mode: DeliveryMode,
    /// Most time between two commits while records keep arriving (`1s`, `500ms`).
    pub commit_interval: Span,
    /// Exactly-once only: the producer's `transactional.id`, unique per
    /// instance and stable across its restarts (default: `tocsin-<group.id>-<hostname>`).
    pub transactional_id: Option<String>,
    /// How long a shutdown may take to drain, flush and commit before giving up.
    pub shutdown_timeout: Span,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            mode: DeliveryMode::AtLeastOnce,
            commit_interval: Span::from_secs(1),
            transactional_id: None,
            shutdown_timeout: Span::from_secs(30),
        }
    }
}

/// A librdkafka property name from a config key: the environment cannot
/// spell `.`, so `bootstrap_servers` means `bootstrap.servers` (no librdkafka
/// property has an underscore in its name).
pub fn kafka_key(key: &str) -> String {
    key.replace('_', ".")
}
