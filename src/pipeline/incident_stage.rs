//! The writer's incident side: every alert written is tracked by the desk,
//! triage updates are applied (or dead-lettered with the reason), and on
//! each tick the desk's due escalations and the silence watch's findings
//! are emitted. The desk's changes are persisted to a journal file or a
//! compacted topic as they happen, and made durable at each checkpoint.

use super::kafka::producer::{KafkaProducer, Pending};
use super::metrics::Metrics;
use super::sinks::{Sink, SinkConfig, SinkContext, SinkError, WebhookTasks};
use crate::alert::{Alert, AlertBuilder};
use crate::incident::escalation::{Destination, Escalation, EscalationPolicy, LevelConfig};
use crate::incident::silence::{SilenceChange, SilenceConfig, SilenceWatch, Watch};
use crate::incident::store::Journal;
use crate::incident::{Applied, Desk, Rejection, SlaState, Status, TrackedAlert, TriageUpdate};
use crate::vocab::clock::Clock;
use crate::vocab::Span;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `[incident]` section: the alert lifecycle (docs/incident.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// Track alerts through triage and escalate missed deadlines.
    pub enabled: bool,
    /// Local alert-state journal, hash-chained: the state without a
    /// state_topic, the tamper-evident record of every change beside one.
    pub state_file: Option<PathBuf>,
    /// Compacted Kafka topic keyed by alert id, for runs on Kafka.
    pub state_topic: Option<String>,
    /// How often (real time) deadlines and silences are checked.
    pub check_interval: Span,
    /// Closed alerts are forgotten this long after closing.
    pub retention: Span,
    /// Escalation levels; empty: the defaults (docs/incident.md).
    pub escalation: Vec<LevelConfig>,
    /// Where the `escalations` destination writes; unset: the alert sinks.
    pub escalation_sink: Option<SinkConfig>,
    /// Watched log sources and their longest expected silence.
    pub silence: Vec<SilenceConfig>,
    /// Bearer token for `POST /triage` on the metrics listener; unset: no endpoint.
    pub http_token: Option<String>,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            enabled: false,
            state_file: None,
            state_topic: None,
            check_interval: Span::from_secs(1),
            retention: Span::from_secs(90 * 86_400),
            escalation: Vec::new(),
            escalation_sink: None,
            silence: Vec::new(),
            http_token: None,
        }
    }
}

/// An `[incident]` section that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentConfigError {
    /// The `incident.escalation` levels are invalid; the text says why.
    #[error("incident.escalation: {0}")]
    Escalation(String),
    /// An `incident.silence` entry is invalid; the text names it
    /// (`incident.silence[i]`) and says why.
    #[error("{0}")]
    Silence(String),
}

impl IncidentConfig {
    /// The configured escalation levels, or the defaults.
    pub fn policy(&self) -> Result<EscalationPolicy, IncidentConfigError> {
        let levels = if self.escalation.is_empty() {
            crate::incident::escalation::default_levels()
        } else {
            self.escalation.clone()
        };
        EscalationPolicy::compile(&levels).map_err(IncidentConfigError::Escalation)
    }

    /// The compiled silence watches of `incident.silence`.
    pub fn watches(&self) -> Result<Vec<Watch>, IncidentConfigError> {
        crate::incident::silence::compile(&self.silence).map_err(IncidentConfigError::Silence)
    }

    /// The settings a pipeline runs with; `None` when tracking is off.
    pub fn settings(&self) -> Result<Option<IncidentSettings>, IncidentConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        Ok(Some(IncidentSettings {
            policy: self.policy()?,
            watches: self.watches()?,
            state_file: self.state_file.clone(),
            state_topic: self.state_topic.clone(),
            check_interval: self.check_interval.as_std(),
            retention: self.retention.as_std(),
            escalation_sink: self.escalation_sink.clone(),
        }))
    }
}

/// The incident configuration a pipeline runs with.
#[derive(Debug, Clone)]
pub struct IncidentSettings {
    /// The escalation levels, compiled (the defaults when none are configured).
    pub policy: EscalationPolicy,
    /// The silent-source watches, compiled.
    pub watches: Vec<Watch>,
    /// Local journal: the state without a topic, the evidence beside one.
    pub state_file: Option<PathBuf>,
    /// Compacted topic keyed by alert id.
    pub state_topic: Option<String>,
    /// How often (real time) deadlines and silences are checked.
    pub check_interval: Duration,
    /// Closed alerts are forgotten this long after closing.
    pub retention: Duration,
    /// Where the `escalations` destination writes (unset: the alert sinks).
    pub escalation_sink: Option<SinkConfig>,
}

/// A triage update read from a source, with what a dead letter needs.
#[derive(Debug, Clone)]
pub struct TriageInput {
    /// The update as parsed.
    pub update: TriageUpdate,
    /// Where the update was read.
    pub origin: crate::event::Origin,
    /// When the record was read (wall clock).
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// The record as read, for the dead letter if the update is rejected.
    pub payload: Vec<u8>,
}

/// A triage update posted over HTTP, and where its verdict goes.
pub type TriageRequest = (
    TriageUpdate,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

/// The producer and client properties, for alert state on a topic.
pub(super) type KafkaAccess<'a> = (&'a Arc<KafkaProducer>, &'a [(String, String)]);

/// Where alert state goes: a compacted topic (the state, with Kafka), a
/// journal (the state without Kafka; beside a topic, the tamper-evident
/// record of every change, which a compacted topic cannot be), or both.
#[derive(Default)]
struct Store {
    topic: Option<(String, Arc<KafkaProducer>)>,
    journal: Option<Journal>,
}

pub(super) struct IncidentStage {
    desk: Desk,
    silence: SilenceWatch,
    store: Store,
    /// The `escalations` destination, when configured apart from the alert sinks.
    pub(super) escalation_sink: Option<Box<dyn Sink>>,
    clock: Clock,
    metrics: Option<Arc<Metrics>>,
    check_interval: Duration,
    last_check: Option<Instant>,
    retention: chrono::Duration,
}

/// What a tick produced.
pub(super) struct Tick {
    pub alerts: Vec<Alert>,
    pub escalations: Vec<(Escalation, Destination)>,
}

impl IncidentStage {
    /// Loads the alert state and opens the escalation sink.
    pub(super) fn open(
        settings: &IncidentSettings,
        clock: Clock,
        kafka: Option<KafkaAccess<'_>>,
        webhooks: &mut WebhookTasks,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<IncidentStage, super::PipelineError> {
        let mut desk = Desk::new(settings.policy.clone());
        let mut store = Store::default();
        let topic = match (&settings.state_topic, kafka) {
            (Some(topic), Some((producer, properties))) => {
                let (alerts, problems) = super::kafka::state::read_alert_state(properties, topic)?;
                for p in &problems {
                    tracing::warn!(problem = %p, "unreadable alert state record skipped");
                }
                tracing::info!(topic, alerts = alerts.len(), "alert state loaded");
                store.topic = Some((topic.clone(), producer.clone()));
                Some(alerts)
            }
            (Some(_), None) => {
                tracing::warn!("incident.state_topic needs Kafka: alert state is kept in incident.state_file only, if set");
                None
            }
            (None, _) => None,
        };
        if let Some(path) = &settings.state_file {
            let (journal, alerts, problems) =
                Journal::open(path).map_err(|e| super::PipelineError::Stage(e.to_string()))?;
            for p in &problems {
                tracing::warn!(problem = %p, "alert state: a line skipped or the hash chain broken");
            }
            let role = if topic.is_some() {
                "audit journal beside the state topic"
            } else {
                "alert state loaded"
            };
            tracing::info!(
                file = %path.display(),
                alerts = alerts.len(),
                chain_head = %journal.head(),
                "{role}"
            );
            // Beside a topic, the topic holds the state; the journal is evidence.
            if topic.is_none() {
                desk.restore(alerts);
            }
            store.journal = Some(journal);
        } else if topic.is_none() {
            tracing::warn!("neither incident.state_file nor incident.state_topic is set: alert state will not survive a restart");
        }
        if let Some(alerts) = topic {
            desk.restore(alerts);
        }
        let escalation_sink = settings
            .escalation_sink
            .as_ref()
            .map(|cfg| {
                cfg.open(&mut SinkContext {
                    producer: kafka.map(|k| k.0),
                    webhooks,
                })
            })
            .transpose()?;
        Ok(IncidentStage {
            desk,
            silence: SilenceWatch::new(settings.watches.clone()),
            store,
            escalation_sink,
            clock,
            metrics,
            check_interval: settings.check_interval,
            last_check: None,
            retention: chrono::Duration::from_std(settings.retention)
                .unwrap_or(chrono::Duration::days(90)),
        })
    }

    pub(super) fn check_interval(&self) -> Duration {
        self.check_interval
    }

    /// An alert was written: track it, or, for a recovery record, close the
    /// alert it names.
    pub(super) fn track(&mut self, alert: &Alert) {
        self.clock.observe(alert.detected_at);
        if let Some(silenced) = &alert.resolves {
            let update = TriageUpdate {
                alert_id: silenced.clone(),
                status: Status::Resolved,
                by: "tocsin".into(),
                at: alert.detected_at,
                note: Some("the source is sending events again".into()),
            };
            if let Err(e) = self.apply(&update) {
                tracing::debug!(error = %e, "recovery record: silence alert not closed");
            }
            return;
        }
        self.desk.track(TrackedAlert::from_alert(alert));
    }

    /// Applies a triage update; the rejection says why not.
    pub(super) fn apply(&mut self, update: &TriageUpdate) -> Result<(), Rejection> {
        self.clock.observe(update.at);
        let applied = self.desk.apply(update);
        let Some(m) = &self.metrics else {
            return applied.map(|_| ());
        };
        match applied {
            Err(e) => {
                m.incident_triage_rejected
                    .with_label_values(&[e.kind()])
                    .inc();
                Err(e)
            }
            Ok(Applied::Duplicate) => Ok(()),
            Ok(Applied::Changed(ms)) => {
                m.incident_triage_updates
                    .with_label_values(&[ms.status.key()])
                    .inc();
                let sev = [ms.severity.key()];
                let secs = |d: chrono::Duration| d.num_milliseconds().max(0) as f64 / 1000.0;
                if let Some(d) = ms.first_response {
                    m.incident_time_to_first_response
                        .with_label_values(&sev)
                        .observe(secs(d));
                }
                if let Some(d) = ms.triage {
                    m.incident_time_to_triage
                        .with_label_values(&sev)
                        .observe(secs(d));
                }
                if let Some(d) = ms.resolution {
                    m.incident_time_to_resolution
                        .with_label_values(&sev)
                        .observe(secs(d));
                }
                if ms.late_triage {
                    m.incident_sla_breaches.with_label_values(&sev).inc();
                }
                if ms.status == Status::FalsePositive {
                    m.incident_false_positives
                        .with_label_values(&[ms.rule_id.as_str()])
                        .inc();
                }
                Ok(())
            }
        }
    }

    /// Events were seen for silence watches: the latest event time per watch.
    pub(super) fn seen(
        &mut self,
        seen: &[(usize, chrono::DateTime<chrono::Utc>)],
        builder: &AlertBuilder,
    ) -> Vec<Alert> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for &(watch, time) in seen {
            // Event-time mode measures silence between event times; otherwise
            // from when events arrived, so delayed events do not look silent.
            let seen_at = self.clock.detected_at(time);
            if let Some(SilenceChange::Back {
                watch,
                resumed_at,
                silence_started,
                ..
            }) = self.silence.seen(watch, time, seen_at)
            {
                let Some(w) = self.silence.watches().get(watch) else {
                    continue;
                };
                if let Some(m) = &self.metrics {
                    m.source_silent.with_label_values(&[w.name.as_str()]).set(0);
                }
                out.push(builder.build(w.back_draft(silence_started, resumed_at, now)));
            }
        }
        out
    }

    /// Whether a check is due (real time since the last one).
    pub(super) fn check_due(&self) -> bool {
        self.last_check
            .is_none_or(|t| t.elapsed() >= self.check_interval)
    }

    /// Deadlines and silences at the clock's now.
    pub(super) fn tick(&mut self, builder: &AlertBuilder) -> Tick {
        let now = self.clock.now();
        let mut tick = Tick {
            alerts: Vec::new(),
            escalations: Vec::new(),
        };
        // Before an event-time clock has seen any time, silence has no measure.
        let silences = if self.clock.is_running() {
            self.silence.check(now)
        } else {
            Vec::new()
        };
        for change in silences {
            if let SilenceChange::Silent {
                watch,
                last_event,
                since,
            } = change
            {
                let Some(w) = self.silence.watches().get(watch) else {
                    continue;
                };
                if let Some(m) = &self.metrics {
                    m.source_silent.with_label_values(&[w.name.as_str()]).set(1);
                }
                tick.alerts
                    .push(builder.build(w.silent_draft(last_event, since, now)));
            }
        }
        let due = self.desk.due(now);
        for e in due.escalations {
            let Some(level) = self.desk.policy().level(&e.level) else {
                continue;
            };
            if let Some(m) = &self.metrics {
                m.incident_escalations
                    .with_label_values(&[e.level.as_str()])
                    .inc();
            }
            tracing::info!(alert = %e.alert_id, level = %e.level, "escalation");
            tick.escalations.push((e, level.destination.clone()));
        }
        if let Some(m) = &self.metrics {
            for severity in due.breaches {
                m.incident_sla_breaches
                    .with_label_values(&[severity.key()])
                    .inc();
            }
        }
        if self.check_due() {
            self.last_check = Some(Instant::now());
            let cutoff = now.checked_sub_signed(self.retention).unwrap_or(now);
            self.desk.prune_closed_before(cutoff);
            self.update_gauges(now);
        }
        tick
    }

    fn update_gauges(&self, now: chrono::DateTime<chrono::Utc>) {
        let Some(m) = &self.metrics else { return };
        let counts = self.desk.open_by_sla_state(now);
        for severity in crate::vocab::Severity::ALL {
            for state in SlaState::ALL {
                let n = counts.get(&(severity, state)).copied().unwrap_or(0);
                m.incident_open_alerts
                    .with_label_values(&[severity.key(), state.key()])
                    .set(n as i64);
            }
        }
    }

    /// Writes what changed to the store (buffered; see [`Self::sync`]).
    pub(super) fn persist(&mut self, pending: &mut Pending) -> Result<(), SinkError> {
        let changes = self.desk.take_changes();
        if changes.is_empty() {
            return Ok(());
        }
        if let Some(journal) = &mut self.store.journal {
            journal.write(&changes).map_err(store_failure)?;
        }
        if let Some((topic, producer)) = &self.store.topic {
            for change in &changes {
                let (key, value) = crate::incident::store::encode(change);
                super::kafka::producer::send_keyed(
                    producer,
                    topic,
                    &key,
                    value.as_deref(),
                    pending,
                )
                .map_err(|e| SinkError {
                    sink: format!("kafka topic {topic}"),
                    source: std::io::Error::other(e),
                })?;
            }
        }
        Ok(())
    }

    /// Makes the journal durable (Kafka records are awaited by the checkpoint).
    pub(super) fn sync(&mut self) -> Result<(), SinkError> {
        if let Some(s) = &mut self.escalation_sink {
            s.flush()?;
        }
        match &mut self.store.journal {
            Some(j) => j.sync().map_err(store_failure),
            None => Ok(()),
        }
    }

    /// Applies an update from a source; a rejection becomes a dead letter.
    pub(super) fn apply_input(
        &mut self,
        input: TriageInput,
    ) -> Option<super::dead_letter::DeadLetter> {
        match self.apply(&input.update) {
            Ok(()) => None,
            Err(e) => Some(super::dead_letter::DeadLetter::new(
                format!("triage update rejected: {e}"),
                input.origin,
                input.received_at,
                &input.payload,
            )),
        }
    }

    /// Applies an update posted over HTTP; answers the poster, and returns
    /// the dead letter of a rejection.
    pub(super) fn apply_request(
        &mut self,
        (update, reply): TriageRequest,
    ) -> Option<super::dead_letter::DeadLetter> {
        let payload = serde_json::to_vec(&update).unwrap_or_default();
        let input = TriageInput {
            update,
            origin: crate::event::Origin {
                source: "http /triage".into(),
                position: crate::event::Position::Line { line: 0 },
            },
            received_at: chrono::Utc::now(),
            payload,
        };
        let letter = self.apply_input(input);
        let _ = reply.send(match &letter {
            None => Ok(()),
            Some(l) => Err(l.reason.clone()),
        });
        letter
    }
}

fn store_failure(e: crate::incident::store::StoreError) -> SinkError {
    SinkError {
        sink: "alert state".into(),
        source: std::io::Error::other(e),
    }
}
