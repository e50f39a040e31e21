//! The `[correlation]` section: bounds, lateness and where open windows
//! are kept across restarts.

use crate::vocab::Span;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The `[correlation]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorrelationConfig {
    /// Most correlation groups (rule and group key) tracked at once; past it
    /// the group expiring first is dropped (counted in a metric, logged).
    pub max_groups: usize,
    /// How far behind the newest event time an event may arrive and still be
    /// placed in its window (`90s`, `5m`); windows are final only after it.
    pub allowed_lateness: Span,
    /// Where open correlation windows are snapshotted with the Kafka
    /// positions they reflect, to resume them after a restart (off if unset).
    pub state_file: Option<PathBuf>,
    /// Or a compacted Kafka topic for the snapshots (one record per
    /// instance, written with the alerts; in exactly-once mode in the same
    /// transaction as the offsets).
    pub state_topic: Option<String>,
    /// This instance's key in `state_topic`, stable across its restarts
    /// (default `<group.id>/<hostname>`).
    pub state_key: Option<String>,
    /// A source silent this long (wall time) stops holding back the
    /// watermark that decides when windows are final.
    pub idle_source_timeout: Span,
    /// Scale-out across instances (Kafka sources only): matches feeding a
    /// correlation go to this topic keyed by (correlation, group), and the
    /// instance that owns a partition of it runs those groups. Set together
    /// with `changelog_topic`; both need the same number of partitions.
    pub repartition_topic: Option<String>,
    /// The compacted topic the owners keep their groups in, one record per
    /// key, partition for partition with `repartition_topic`.
    pub changelog_topic: Option<String>,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            max_groups: super::DEFAULT_MAX_GROUPS,
            allowed_lateness: Span::from_std(super::DEFAULT_LATENESS),
            state_file: None,
            state_topic: None,
            state_key: None,
            idle_source_timeout: Span::from_std(super::DEFAULT_IDLE_TIMEOUT),
            repartition_topic: None,
            changelog_topic: None,
        }
    }
}
