//! Whether the process is alive and whether it is doing its job: what
//! `/healthz` (liveness) and `/readyz` (readiness) answer.
//!
//! Every pipeline stage reports here when it starts, ends and fails. A
//! failed stage makes both answers false at once, with the reason, so an
//! orchestrator never sees "ok" from a process that has stopped detecting.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A shared health record. Cheap to clone; all clones are one record.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Stages in the order they started.
    stages: Mutex<Vec<(String, StageState)>>,
    rules_loaded: AtomicU64,
    rules: std::sync::Mutex<Option<super::RuleCounts>>,
    /// Each Kafka client's view of its brokers.
    kafka: Mutex<Vec<(&'static str, KafkaState)>>,
    draining: AtomicBool,
    /// Set once any stage failed; never cleared (the process exits).
    failed: AtomicBool,
}

/// Where a stage is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageState {
    /// Started and working.
    Running,
    /// Ended normally (its input ended).
    Finished,
    /// Stopped on an error, with the error text. The process is then neither live nor ready.
    Failed(String),
}

/// What a Kafka client knows of its brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaState {
    /// No broker has answered yet.
    Connecting,
    /// A broker answers; `partitions` assigned to this consumer (0: waiting
    /// for an assignment, which is ready: the group may have more members
    /// than partitions).
    Up {
        /// Partitions assigned to the consumer (always 0 for the producer).
        partitions: usize,
    },
    /// No broker answers.
    Down {
        /// Since when.
        since: chrono::DateTime<chrono::Utc>,
        /// The last failure.
        error: String,
    },
}

impl KafkaState {
    fn shown(&self, client: &str) -> String {
        match self {
            KafkaState::Connecting => "connecting".into(),
            KafkaState::Up { partitions: 0 } if client == "consumer" => {
                "up, waiting for partition assignment".into()
            }
            KafkaState::Up { partitions: 0 } => "up".into(),
            KafkaState::Up { partitions } => format!("up, {partitions} partitions assigned"),
            KafkaState::Down { since, error } => format!(
                "no broker answers since {}: {error}",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

impl Health {
    /// A record with no stages and no rules loaded: not ready yet.
    pub fn new() -> Health {
        Health::default()
    }

    fn set(&self, stage: &str, state: StageState) {
        if let StageState::Failed(_) = state {
            self.0.failed.store(true, Ordering::SeqCst);
        }
        // A poisoned lock only means another thread panicked while holding
        // it; the list itself is always whole.
        let mut stages = self.0.stages.lock().unwrap_or_else(|p| p.into_inner());
        match stages.iter_mut().find(|(name, _)| name == stage) {
            Some((_, s)) => *s = state,
            None => stages.push((stage.to_string(), state)),
        }
    }

    /// Records that `stage` runs; stages are listed in the order they first report.
    pub fn running(&self, stage: &str) {
        self.set(stage, StageState::Running);
    }

    /// Records that `stage` ended normally. The process stays live but is no longer ready.
    pub fn finished(&self, stage: &str) {
        self.set(stage, StageState::Finished);
    }

    /// Records that `stage` failed with `error`: from now on neither live nor ready.
    pub fn failed(&self, stage: &str, error: impl Into<String>) {
        self.set(stage, StageState::Failed(error.into()));
    }

    /// Records how many rules run; readiness needs at least one.
    pub fn set_rules_loaded(&self, n: usize) {
        self.0.rules_loaded.store(n as u64, Ordering::Relaxed);
    }

    /// Records how many rules of each kind run (`rules_loaded` is their total).
    pub fn set_rules(&self, counts: super::RuleCounts) {
        self.set_rules_loaded(counts.total());
        *self.0.rules.lock().unwrap_or_else(|p| p.into_inner()) = Some(counts);
    }

    fn rules_json(&self) -> Value {
        match *self.0.rules.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(counts) => json!(counts),
            None => Value::Null,
        }
    }

    /// Records what the Kafka `client` (`consumer`, `producer`) knows of its brokers.
    pub fn set_kafka(&self, client: &'static str, state: KafkaState) {
        let mut kafka = self.0.kafka.lock().unwrap_or_else(|p| p.into_inner());
        match kafka.iter_mut().find(|(name, _)| *name == client) {
            Some((_, s)) => *s = state,
            None => kafka.push((client, state)),
        }
    }

    fn kafka(&self) -> Vec<(&'static str, KafkaState)> {
        self.0
            .kafka
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Shutdown has begun: no longer ready for new work.
    pub fn draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    /// Whether any stage failed.
    pub fn has_failed(&self) -> bool {
        self.0.failed.load(Ordering::SeqCst)
    }

    fn stages(&self) -> Vec<(String, StageState)> {
        self.0
            .stages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn stages_json(stages: &[(String, StageState)]) -> Value {
        Value::Object(
            stages
                .iter()
                .map(|(name, state)| {
                    let shown = match state {
                        StageState::Running => "running".to_string(),
                        StageState::Finished => "finished".to_string(),
                        StageState::Failed(e) => format!("failed: {e}"),
                    };
                    (name.clone(), Value::String(shown))
                })
                .collect(),
        )
    }

    fn first_failure(stages: &[(String, StageState)]) -> Option<String> {
        stages.iter().find_map(|(name, state)| match state {
            StageState::Failed(e) => Some(format!("stage {name} failed: {e}")),
            _ => None,
        })
    }

    /// Liveness: the process and its pipeline stages are alive (no stage
    /// has failed). The JSON says why not.
    pub fn liveness(&self) -> (bool, Value) {
        let stages = self.stages();
        let rules = self.0.rules_loaded.load(Ordering::Relaxed);
        match Self::first_failure(&stages) {
            None => (
                true,
                json!({"status": "ok", "rules_loaded": rules, "rules": self.rules_json(), "stages": Self::stages_json(&stages)}),
            ),
            Some(reason) => (
                false,
                json!({"status": "failed", "reason": reason, "rules_loaded": rules, "rules": self.rules_json(), "stages": Self::stages_json(&stages)}),
            ),
        }
    }

    /// Readiness: doing its job. Rules are loaded, every stage runs, every
    /// Kafka client reaches a broker (a consumer waiting for its partition
    /// assignment is ready, and says so), and the process is not shutting
    /// down. The JSON says why not.
    pub fn readiness(&self) -> (bool, Value) {
        let stages = self.stages();
        let kafka = self.kafka();
        let rules = self.0.rules_loaded.load(Ordering::Relaxed);
        let reason = if let Some(failure) = Self::first_failure(&stages) {
            Some(failure)
        } else if self.0.draining.load(Ordering::SeqCst) {
            Some("shutting down: draining, flushing and committing".to_string())
        } else if rules == 0 {
            Some("no rules loaded".to_string())
        } else if stages.is_empty() {
            Some("the pipeline has not started".to_string())
        } else if let Some(stage) = stages.iter().find(|(_, s)| *s != StageState::Running) {
            Some(format!(
                "stage {} is not running (its input ended)",
                stage.0
            ))
        } else {
            kafka.iter().find_map(|(client, state)| match state {
                KafkaState::Up { .. } => None,
                _ => Some(format!("kafka {client}: {}", state.shown(client))),
            })
        };
        let stages = Self::stages_json(&stages);
        let kafka = Value::Object(
            kafka
                .iter()
                .map(|(client, state)| (client.to_string(), Value::String(state.shown(client))))
                .collect(),
        );
        match reason {
            None => (
                true,
                json!({"status": "ready", "rules_loaded": rules, "rules": self.rules_json(), "stages": stages, "kafka": kafka}),
            ),
            Some(reason) => (
                false,
                json!({"status": "not ready", "reason": reason, "rules_loaded": rules, "rules": self.rules_json(), "stages": stages, "kafka": kafka}),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_stage_makes_the_process_neither_live_nor_ready_and_says_why() {
        let h = Health::new();
        h.set_rules_loaded(3);
        assert!(!h.readiness().0, "nothing started yet");
        h.running("detect");
        h.running("writer");
        assert!(h.liveness().0);
        assert!(h.readiness().0);
        h.failed("detect", "boom");
        let (live, body) = h.liveness();
        assert!(!live);
        assert_eq!(body["reason"], "stage detect failed: boom");
        assert!(!h.readiness().0);
        assert!(h.has_failed());
    }

    #[test]
    fn rules_are_counted_by_kind_and_in_total() {
        let h = Health::new();
        h.set_rules(crate::pipeline::RuleCounts {
            detection: 27,
            correlation: 7,
            anomaly_jobs: 7,
            filters: 1,
        });
        let (_, body) = h.liveness();
        assert_eq!(body["rules_loaded"], 41);
        assert_eq!(
            body["rules"],
            json!({"detection": 27, "correlation": 7, "anomaly_jobs": 7, "filters": 1})
        );
    }

    #[test]
    fn draining_or_no_rules_is_alive_but_not_ready() {
        let h = Health::new();
        h.running("writer");
        assert_eq!(h.readiness().1["reason"], "no rules loaded");
        h.set_rules_loaded(1);
        assert!(h.readiness().0);
        h.draining();
        let (ready, body) = h.readiness();
        assert!(!ready);
        assert!(body["reason"].as_str().unwrap().contains("shutting down"));
        assert!(h.liveness().0);
    }
}
