//! The incident process around alerts: triage status, SLA deadlines that
//! escalate when nobody acts, silent log sources, and the monthly review.
//!
//! The [`Desk`] is the state machine: it tracks every alert from the moment
//! it is raised, applies triage updates (rejecting the ones the process does
//! not allow, with a reason), and says which escalation levels are due at a
//! given time. It does no I/O: the pipeline feeds it, persists what changed
//! ([`store`]) and routes what it emits.

pub(crate) mod escalation;
pub mod report;
pub(crate) mod silence;
pub mod store;
pub(crate) mod triage;

use crate::alert::Alert;
use crate::vocab::{AlertType, Severity};
use chrono::{DateTime, Utc};
pub use escalation::{Escalation, EscalationPolicy, LevelConfig};
use serde::{Deserialize, Serialize};
pub use silence::{SilenceConfig, Watch};
use std::collections::{BTreeSet, HashMap};
pub use triage::{Status, TriageUpdate};

/// What the desk keeps about one alert: enough to escalate it, report on it
/// and show its history. This is the record in the durable store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedAlert {
    /// The alert's `id`.
    pub id: String,
    /// `STATIC RULE` or `ANOMALY DETECTED`.
    #[serde(rename = "type")]
    pub alert_type: AlertType,
    /// The alert's severity; escalation levels and the report go by it.
    pub severity: Severity,
    /// Anomaly score 0-100; absent for static rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The id of the rule that raised it.
    pub rule_id: String,
    /// The title of the rule that raised it.
    pub rule_title: String,
    /// The source the alert's events came from (topic, file, `tocsin` ...).
    pub source: String,
    /// The alert's message without the line's prefix and link.
    pub text: String,
    /// The alert line.
    pub message: String,
    /// The alert's link.
    pub link: String,
    /// When the alert was detected; the SLA clock started here.
    pub detected_at: DateTime<Utc>,
    /// The triage deadline (the alert's `sla.due_at`).
    pub due_at: DateTime<Utc>,
    /// Where the alert stands now; `open` until the first update.
    pub status: Status,
    /// Every accepted triage update, in order.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Every escalation level reached, in order.
    #[serde(default)]
    pub escalations: Vec<EscalationEntry>,
    /// When the deadline passed untriaged (or the late triage), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached_at: Option<DateTime<Utc>>,
}

/// One accepted triage update, as kept in an alert's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The status the update set.
    pub status: Status,
    /// Who made it: an analyst or tool, or `tocsin` when a silent source is back.
    pub by: String,
    /// When it was made, as the update says.
    pub at: DateTime<Utc>,
    /// The update's free-text note, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One escalation level an alert reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationEntry {
    /// The level's name.
    pub level: String,
    /// When it was emitted.
    pub at: DateTime<Utc>,
    /// Where it went: `alerts`, `escalations` or `webhook:<name>`.
    pub destination: String,
}

impl TrackedAlert {
    /// The record of a newly raised alert: `open`, no history, no escalations.
    pub fn from_alert(alert: &Alert) -> TrackedAlert {
        TrackedAlert {
            id: alert.id.clone(),
            alert_type: alert.alert_type,
            severity: alert.severity,
            score: alert.score,
            rule_id: alert.rule.id.clone(),
            rule_title: alert.rule.title.clone(),
            source: alert.source.source.clone(),
            text: line_text(&alert.message).to_string(),
            message: alert.message.clone(),
            link: alert.link.clone(),
            detected_at: alert.detected_at,
            due_at: alert.sla.due_at,
            status: Status::Open,
            history: Vec::new(),
            escalations: Vec::new(),
            breached_at: None,
        }
    }

    /// The first triage update of any kind.
    pub fn first_response_at(&self) -> Option<DateTime<Utc>> {
        self.history.first().map(|h| h.at)
    }

    /// The first triage decision (anything but `acknowledged`).
    pub fn triaged_at(&self) -> Option<DateTime<Utc>> {
        self.history
            .iter()
            .find(|h| h.status.is_triaged())
            .map(|h| h.at)
    }

    /// When the alert was closed (`resolved` or `false_positive`).
    pub fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.history
            .iter()
            .find(|h| h.status.is_closed())
            .map(|h| h.at)
    }

    /// Whether the alert already reached the level named `level`.
    pub fn escalated(&self, level: &str) -> bool {
        self.escalations.iter().any(|e| e.level == level)
    }

    /// Whether escalation still applies: no triage decision yet.
    pub fn awaits_triage(&self) -> bool {
        !self.status.is_triaged()
    }
}

/// The message part of an alert line: between `[<severity>] ` and `. Check <link>`.
fn line_text(line: &str) -> &str {
    let start = line.find("] ").map_or(0, |i| i + 2);
    let end = line
        .rfind(". Check ")
        .filter(|&e| e >= start)
        .unwrap_or(line.len());
    &line[start..end]
}

/// Why a triage update was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No tracked alert has this id (never raised, or pruned after closing).
    #[error("unknown alert id `{0}`")]
    UnknownAlert(String),
    /// The process does not allow this status change (e.g. from a closed alert).
    #[error("alert `{id}` is {from}: it cannot become {to}")]
    BadTransition {
        /// The alert's id.
        id: String,
        /// Its current status.
        from: Status,
        /// The status the update asked for.
        to: Status,
    },
    /// The update's time is before the alert was detected.
    #[error("alert `{id}`: update time {at} is before the alert was raised ({detected_at})")]
    BeforeAlert {
        /// The alert's id.
        id: String,
        /// The update's time.
        at: DateTime<Utc>,
        /// When the alert was detected.
        detected_at: DateTime<Utc>,
    },
    /// The update's time is before the alert's previous update.
    #[error("alert `{id}`: update time {at} is before its previous update ({last})")]
    OutOfOrder {
        /// The alert's id.
        id: String,
        /// The update's time.
        at: DateTime<Utc>,
        /// The time of the previous update.
        last: DateTime<Utc>,
    },
}

impl Rejection {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::UnknownAlert(_) => "unknown_alert",
            Rejection::BadTransition { .. } => "bad_transition",
            Rejection::BeforeAlert { .. } | Rejection::OutOfOrder { .. } => "bad_time",
        }
    }
}

/// What an accepted update changed, in durations from the alert's detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Milestones {
    /// The alert's severity, for metric labels.
    pub severity: Severity,
    /// The alert's rule id, to count false positives by rule.
    pub rule_id: String,
    /// The status the update set.
    pub status: Status,
    /// Time to first response, when this is the alert's first update.
    pub first_response: Option<chrono::Duration>,
    /// Time to triage, when this is the first triage decision.
    pub triage: Option<chrono::Duration>,
    /// Time to resolution, when this update closes the alert.
    pub resolution: Option<chrono::Duration>,
    /// The triage decision came after the deadline and no breach was counted yet.
    pub late_triage: bool,
}

/// The outcome of an accepted update.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The update was applied; what it changed.
    Changed(Milestones),
    /// The same update again (at-least-once delivery): nothing to do.
    Duplicate,
}

/// What became due at a tick.
#[derive(Debug, Default)]
pub struct Due {
    /// Escalation records to emit, one per alert and level.
    pub escalations: Vec<Escalation>,
    /// Alerts whose deadline passed untriaged since the last tick.
    pub breaches: Vec<Severity>,
}

/// A change to persist.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Write this alert's record (new or changed).
    Put(Box<TrackedAlert>),
    /// Delete the record of the alert with this id (pruned).
    Delete(String),
}

/// The alert-state machine. See the module docs.
#[derive(Debug, Default)]
pub struct Desk {
    policy: EscalationPolicy,
    alerts: HashMap<String, TrackedAlert>,
    /// Pending escalations: (when, level index, alert id).
    schedule: BTreeSet<(DateTime<Utc>, usize, String)>,
    /// Untriaged alerts by deadline, to count breaches.
    deadlines: BTreeSet<(DateTime<Utc>, String)>,
    changed: BTreeSet<String>,
    deleted: Vec<String>,
}

impl Desk {
    /// An empty desk that escalates by `policy`.
    pub fn new(policy: EscalationPolicy) -> Desk {
        Desk {
            policy,
            ..Desk::default()
        }
    }

    /// The escalation policy the desk applies.
    pub fn policy(&self) -> &EscalationPolicy {
        &self.policy
    }

    /// Loads alerts from the store; levels they already reached stay done.
    pub fn restore(&mut self, alerts: impl IntoIterator<Item = TrackedAlert>) {
        for alert in alerts {
            self.schedule_for(&alert);
            self.alerts.insert(alert.id.clone(), alert);
        }
    }

    /// Starts tracking a new alert. An alert already tracked (a replay, or
    /// an update record of a suppressed group) keeps its state: returns false.
    pub fn track(&mut self, alert: TrackedAlert) -> bool {
        if self.alerts.contains_key(&alert.id) {
            return false;
        }
        self.schedule_for(&alert);
        self.changed.insert(alert.id.clone());
        self.alerts.insert(alert.id.clone(), alert);
        true
    }

    fn schedule_for(&mut self, alert: &TrackedAlert) {
        if !alert.awaits_triage() {
            return;
        }
        for (i, level) in self.policy.levels.iter().enumerate() {
            if level.applies_to(alert.severity) && !alert.escalated(&level.name) {
                self.schedule
                    .insert((level.time_for(alert), i, alert.id.clone()));
            }
        }
        if alert.breached_at.is_none() {
            self.deadlines.insert((alert.due_at, alert.id.clone()));
        }
    }

    /// The tracked alert with this id, if any.
    pub fn get(&self, id: &str) -> Option<&TrackedAlert> {
        self.alerts.get(id)
    }

    /// Applies one triage update, or says why not.
    pub fn apply(&mut self, update: &TriageUpdate) -> Result<Applied, Rejection> {
        let Some(alert) = self.alerts.get_mut(&update.alert_id) else {
            return Err(Rejection::UnknownAlert(update.alert_id.clone()));
        };
        let entry = HistoryEntry {
            status: update.status,
            by: update.by.clone(),
            at: update.at,
            note: update.note.clone(),
        };
        if alert.history.contains(&entry) {
            return Ok(Applied::Duplicate);
        }
        if !alert.status.allows(update.status) {
            return Err(Rejection::BadTransition {
                id: alert.id.clone(),
                from: alert.status,
                to: update.status,
            });
        }
        if update.at < alert.detected_at {
            return Err(Rejection::BeforeAlert {
                id: alert.id.clone(),
                at: update.at,
                detected_at: alert.detected_at,
            });
        }
        if let Some(last) = alert.history.last().filter(|h| update.at < h.at) {
            return Err(Rejection::OutOfOrder {
                id: alert.id.clone(),
                at: update.at,
                last: last.at,
            });
        }
        let since = |t: DateTime<Utc>| t - alert.detected_at;
        let mut milestones = Milestones {
            severity: alert.severity,
            rule_id: alert.rule_id.clone(),
            status: update.status,
            first_response: alert.history.is_empty().then(|| since(update.at)),
            triage: None,
            resolution: None,
            late_triage: false,
        };
        if update.status.is_triaged() && !alert.status.is_triaged() {
            milestones.triage = Some(since(update.at));
            if update.at > alert.due_at && alert.breached_at.is_none() {
                alert.breached_at = Some(alert.due_at);
                milestones.late_triage = true;
            }
        }
        if update.status.is_closed() {
            milestones.resolution = Some(since(update.at));
        }
        alert.status = update.status;
        alert.history.push(entry);
        self.changed.insert(alert.id.clone());
        Ok(Applied::Changed(milestones))
    }

    /// Everything due at `now`: escalations (once per alert and level; an
    /// alert triaged meanwhile is skipped) and deadline breaches.
    pub fn due(&mut self, now: DateTime<Utc>) -> Due {
        let mut due = Due::default();
        while let Some(first) = self.deadlines.first() {
            if first.0 > now {
                break;
            }
            let Some((_, id)) = self.deadlines.pop_first() else {
                break;
            };
            if let Some(alert) = self.alerts.get_mut(&id) {
                if alert.awaits_triage() && alert.breached_at.is_none() {
                    alert.breached_at = Some(alert.due_at);
                    due.breaches.push(alert.severity);
                    self.changed.insert(id);
                }
            }
        }
        while let Some(first) = self.schedule.first() {
            if first.0 > now {
                break;
            }
            let Some((_, level_index, id)) = self.schedule.pop_first() else {
                break;
            };
            let (Some(level), Some(alert)) = (
                self.policy.levels.get(level_index),
                self.alerts.get_mut(&id),
            ) else {
                continue;
            };
            if !alert.awaits_triage() || alert.escalated(&level.name) {
                continue;
            }
            let escalation = Escalation::new(alert, level, now);
            alert.escalations.push(EscalationEntry {
                level: level.name.clone(),
                at: now,
                destination: level.destination.name(),
            });
            self.changed.insert(id);
            due.escalations.push(escalation);
        }
        due
    }

    /// Forgets closed alerts closed before `cutoff` (the store deletes them too).
    pub fn prune_closed_before(&mut self, cutoff: DateTime<Utc>) -> usize {
        let old: Vec<String> = self
            .alerts
            .values()
            .filter(|a| a.closed_at().is_some_and(|t| t < cutoff))
            .map(|a| a.id.clone())
            .collect();
        for id in &old {
            self.alerts.remove(id);
            self.changed.remove(id);
        }
        let n = old.len();
        self.deleted.extend(old);
        n
    }

    /// What changed since the last call, for the store.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let mut out: Vec<Change> = std::mem::take(&mut self.deleted)
            .into_iter()
            .map(Change::Delete)
            .collect();
        for id in std::mem::take(&mut self.changed) {
            if let Some(a) = self.alerts.get(&id) {
                out.push(Change::Put(Box::new(a.clone())));
            }
        }
        out
    }

    /// Open (not closed) alerts by severity and SLA state at `now`.
    pub fn open_by_sla_state(&self, now: DateTime<Utc>) -> HashMap<(Severity, SlaState), u64> {
        let mut out = HashMap::new();
        for a in self.alerts.values().filter(|a| !a.status.is_closed()) {
            *out.entry((a.severity, SlaState::of(a, now))).or_default() += 1;
        }
        out
    }
}

/// Where an alert stands against its triage deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlaState {
    /// Untriaged, deadline ahead.
    Pending,
    /// Untriaged, deadline passed.
    Overdue,
    /// Triaged by the deadline.
    Met,
    /// Triaged after the deadline.
    Breached,
}

impl SlaState {
    /// Every state, in this order.
    pub const ALL: [SlaState; 4] = [
        SlaState::Pending,
        SlaState::Overdue,
        SlaState::Met,
        SlaState::Breached,
    ];

    /// The state of `alert` as known at `now` (updates after `now` are ignored).
    pub fn of(alert: &TrackedAlert, now: DateTime<Utc>) -> SlaState {
        match alert.triaged_at().filter(|&t| t <= now) {
            Some(t) if t <= alert.due_at => SlaState::Met,
            Some(_) => SlaState::Breached,
            None if now > alert.due_at => SlaState::Overdue,
            None => SlaState::Pending,
        }
    }

    /// The state's label in metrics: `pending`, `overdue`, `met` or `breached`.
    pub fn key(self) -> &'static str {
        match self {
            SlaState::Pending => "pending",
            SlaState::Overdue => "overdue",
            SlaState::Met => "met",
            SlaState::Breached => "breached",
        }
    }
}

#[cfg(test)]
mod tests;
