//! The monthly review (`tocsin report`): what was raised, how fast it was
//! handled, which rules are noisy, what escalated. Computed from the alert
//! state alone, so anyone holding the same state gets the same numbers.
//!
//! Definitions (also in docs/incident.md):
//! - an alert is in the report when `from <= detected_at < to`;
//! - everything is judged as of `to`: updates and escalations after it are ignored;
//! - SLA: *met* when the first triage decision came by the deadline,
//!   *breached* when it came later, *overdue* when there is none and the
//!   deadline passed, *pending* when there is none and the deadline is
//!   ahead; compliance = met / (met + breached + overdue);
//! - time to triage: detection to the first decision (not `acknowledged`);
//!   time to resolve: detection to `resolved` or `false_positive`;
//! - median and p90 interpolate linearly between ranks (like numpy's default);
//! - a rule's false-positive rate = its alerts marked `false_positive` / its alerts;
//! - the trend compares with the period of the same length just before,
//!   judged as of its own end;
//! - severities are listed most urgent first everywhere.

use super::{SlaState, Status, TrackedAlert};
use crate::vocab::Severity;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

mod csv;
mod html;
mod markdown;
#[cfg(test)]
mod tests;

pub use csv::csv;
pub use html::html;
pub use markdown::markdown;

/// How many rules the noisiest-rules table shows.
pub const NOISIEST: usize = 10;

/// The monthly review of the alerts detected in `[from, to)`, judged as of `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Start of the period, included.
    pub from: DateTime<Utc>,
    /// End of the period, excluded; updates and escalations after it are ignored.
    pub to: DateTime<Utc>,
    /// How many alerts were detected in the period.
    pub alerts: u64,
    /// Alerts per type: `STATIC RULE`, `ANOMALY DETECTED`.
    pub by_type: BTreeMap<String, u64>,
    /// Alerts per severity.
    pub by_severity: BTreeMap<Severity, u64>,
    /// Alerts per source (topic, file, `tocsin` for silence alerts).
    pub by_source: BTreeMap<String, u64>,
    /// Alerts per status as of `to`.
    pub by_status: BTreeMap<Status, u64>,
    /// Every rule, noisiest first.
    pub rules: Vec<RuleRow>,
    /// SLA outcomes, one row per severity that had alerts, most urgent first.
    pub sla: Vec<SlaRow>,
    /// Per severity (most urgent first), then `all`.
    pub time_to_triage: Vec<TimeRow>,
    /// Detection to closing (`resolved` or `false_positive`): per severity, then `all`.
    pub time_to_resolve: Vec<TimeRow>,
    /// Escalations reached by `to`, per level name.
    pub escalations: BTreeMap<String, u64>,
    /// Escalations per severity and level.
    pub escalations_by_severity: BTreeMap<(Severity, String), u64>,
    /// Alerts whose SLA was breached or is overdue as of `to`, most
    /// urgent first, then by deadline.
    pub breaches: Vec<BreachRow>,
    /// The period of the same length just before, for the trend.
    pub previous: Option<Trend>,
    /// What the report was made with: set by whoever renders it.
    pub header: Option<Header>,
}

/// What an auditor needs to know about how a report was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// When the report was generated.
    pub generated_at: DateTime<Utc>,
    /// The tool and its version.
    pub tool: String,
    /// The SLA tables, time zone and holidays deadlines were computed with.
    pub sla: crate::alert::sla::SlaConfig,
    /// Anything about the period the reader must know (a `--to` in the future).
    pub note: Option<String>,
}

/// One alert whose triage deadline was missed.
#[derive(Debug, Clone, PartialEq)]
pub struct BreachRow {
    /// The alert id.
    pub id: String,
    /// The rule's title.
    pub rule: String,
    /// The alert's severity.
    pub severity: Severity,
    /// When it was detected.
    pub detected_at: DateTime<Utc>,
    /// Its triage deadline.
    pub due_at: DateTime<Utc>,
    /// When it was triaged, if it was by `to`.
    pub triaged_at: Option<DateTime<Utc>>,
    /// Who triaged it.
    pub triaged_by: Option<String>,
    /// Breached (triaged late) or overdue (not triaged).
    pub state: SlaState,
}

/// The previous period's headline numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// Start of the previous period.
    pub from: DateTime<Utc>,
    /// Its end: the report's start.
    pub to: DateTime<Utc>,
    /// Alerts detected in it.
    pub alerts: u64,
    /// Alerts per severity.
    pub by_severity: BTreeMap<Severity, u64>,
    /// Its overall SLA compliance.
    pub compliance: Option<f64>,
    /// Breached and overdue alerts.
    pub breaches: u64,
}

impl Report {
    /// met / (met + breached + overdue) over every severity.
    pub fn compliance(&self) -> Option<f64> {
        let met: u64 = self.sla.iter().map(|s| s.met).sum();
        let judged: u64 = self
            .sla
            .iter()
            .map(|s| s.met + s.breached + s.overdue)
            .sum();
        (judged > 0).then(|| met as f64 / judged as f64)
    }
}

/// The review of `alerts` for `[from, to)` with the trend against the
/// period of the same length before it, and `header`.
pub fn review(
    alerts: &[TrackedAlert],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    header: Option<Header>,
) -> Report {
    let mut report = build(alerts, from, to);
    // Checked: a period reaching back past chrono's range has no previous one.
    report.previous = from.checked_sub_signed(to - from).map(|before| {
        let previous = build(alerts, before, from);
        Trend {
            from: before,
            to: from,
            alerts: previous.alerts,
            compliance: previous.compliance(),
            breaches: previous.breaches.len() as u64,
            by_severity: previous.by_severity,
        }
    });
    report.header = header;
    report
}

/// One rule's alerts and false positives in the period.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRow {
    /// The rule's id.
    pub rule_id: String,
    /// The rule's title.
    pub title: String,
    /// Its alerts in the period.
    pub alerts: u64,
    /// Of those, how many are `false_positive` as of `to`.
    pub false_positives: u64,
}

impl RuleRow {
    /// `false_positives / alerts`, from 0 to 1; 0 when there are no alerts.
    pub fn false_positive_rate(&self) -> f64 {
        if self.alerts == 0 {
            0.0
        } else {
            self.false_positives as f64 / self.alerts as f64
        }
    }
}

/// One severity's alerts by SLA state as of `to` (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct SlaRow {
    /// The severity of the alerts counted.
    pub severity: Severity,
    /// Triage decision by the deadline.
    pub met: u64,
    /// Triage decision after the deadline.
    pub breached: u64,
    /// No decision, deadline passed.
    pub overdue: u64,
    /// No decision, deadline ahead.
    pub pending: u64,
}

impl SlaRow {
    /// met / (met + breached + overdue); `None` when nothing was decided or due.
    pub fn compliance(&self) -> Option<f64> {
        let judged = self.met + self.breached + self.overdue;
        (judged > 0).then(|| self.met as f64 / judged as f64)
    }
}

/// One group's durations (time to triage or to resolve): count, median, p90.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeRow {
    /// A severity key, or `all`.
    pub group: String,
    /// How many alerts have such a duration by `to` (the median and p90 are over them).
    pub count: u64,
    /// Seconds.
    pub median: Option<f64>,
    /// 90th percentile, in seconds; `None` when `count` is 0.
    pub p90: Option<f64>,
}

/// The `q` quantile (0..=1) of sorted values, interpolating linearly between ranks.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi.min(last)] - sorted[lo]) * frac)
}

fn time_rows(samples: &BTreeMap<Severity, Vec<f64>>) -> Vec<TimeRow> {
    let row = |group: String, values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        TimeRow {
            group,
            count: values.len() as u64,
            median: quantile(values, 0.5),
            p90: quantile(values, 0.9),
        }
    };
    // Most urgent first, as every table.
    let mut rows: Vec<TimeRow> = samples
        .iter()
        .rev()
        .map(|(s, v)| row(s.key().to_string(), &mut v.clone()))
        .collect();
    let mut all: Vec<f64> = samples.values().flatten().copied().collect();
    rows.push(row("all".into(), &mut all));
    rows
}

/// Builds the report over `alerts` for `[from, to)`.
pub fn build<'a>(
    alerts: impl IntoIterator<Item = &'a TrackedAlert>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Report {
    let mut r = Report {
        from,
        to,
        alerts: 0,
        by_type: BTreeMap::new(),
        by_severity: BTreeMap::new(),
        by_source: BTreeMap::new(),
        by_status: BTreeMap::new(),
        rules: Vec::new(),
        sla: Vec::new(),
        time_to_triage: Vec::new(),
        time_to_resolve: Vec::new(),
        escalations: BTreeMap::new(),
        escalations_by_severity: BTreeMap::new(),
        breaches: Vec::new(),
        previous: None,
        header: None,
    };
    let mut rules: BTreeMap<&str, RuleRow> = BTreeMap::new();
    let mut sla: BTreeMap<Severity, SlaRow> = BTreeMap::new();
    let mut triage: BTreeMap<Severity, Vec<f64>> = BTreeMap::new();
    let mut resolve: BTreeMap<Severity, Vec<f64>> = BTreeMap::new();
    for a in alerts {
        if a.detected_at < from || a.detected_at >= to {
            continue;
        }
        r.alerts += 1;
        *r.by_type
            .entry(a.alert_type.as_str().to_string())
            .or_default() += 1;
        *r.by_severity.entry(a.severity).or_default() += 1;
        *r.by_source.entry(a.source.clone()).or_default() += 1;
        let status = a
            .history
            .iter()
            .take_while(|h| h.at <= to)
            .last()
            .map_or(Status::Open, |h| h.status);
        *r.by_status.entry(status).or_default() += 1;
        let rule = rules.entry(&a.rule_id).or_insert_with(|| RuleRow {
            rule_id: a.rule_id.clone(),
            title: a.rule_title.clone(),
            alerts: 0,
            false_positives: 0,
        });
        rule.alerts += 1;
        if status == Status::FalsePositive {
            rule.false_positives += 1;
        }
        let row = sla.entry(a.severity).or_insert_with(|| SlaRow {
            severity: a.severity,
            met: 0,
            breached: 0,
            overdue: 0,
            pending: 0,
        });
        let state = SlaState::of(a, to);
        match state {
            SlaState::Met => row.met += 1,
            SlaState::Breached => row.breached += 1,
            SlaState::Overdue => row.overdue += 1,
            SlaState::Pending => row.pending += 1,
        }
        if matches!(state, SlaState::Breached | SlaState::Overdue) {
            let triage = a
                .history
                .iter()
                .filter(|h| h.at <= to)
                .find(|h| h.status.is_triaged());
            r.breaches.push(BreachRow {
                id: a.id.clone(),
                rule: a.rule_title.clone(),
                severity: a.severity,
                detected_at: a.detected_at,
                due_at: a.due_at,
                triaged_at: triage.map(|h| h.at),
                triaged_by: triage.map(|h| h.by.clone()),
                state,
            });
        }
        let seconds = |t: DateTime<Utc>| (t - a.detected_at).num_milliseconds() as f64 / 1000.0;
        if let Some(t) = a.triaged_at().filter(|&t| t <= to) {
            triage.entry(a.severity).or_default().push(seconds(t));
        }
        if let Some(t) = a.closed_at().filter(|&t| t <= to) {
            resolve.entry(a.severity).or_default().push(seconds(t));
        }
        for e in a.escalations.iter().filter(|e| e.at <= to) {
            *r.escalations.entry(e.level.clone()).or_default() += 1;
            *r.escalations_by_severity
                .entry((a.severity, e.level.clone()))
                .or_default() += 1;
        }
    }
    r.rules = rules.into_values().collect();
    r.rules.sort_by(|a, b| {
        b.alerts
            .cmp(&a.alerts)
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    r.sla = sla.into_values().rev().collect();
    r.breaches.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.due_at.cmp(&b.due_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    r.time_to_triage = time_rows(&triage);
    r.time_to_resolve = time_rows(&resolve);
    r
}

/// `3d 4h`, `2h 5m`, `40s`.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {}s", s % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

pub(super) fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |x| format!("{:.1}%", x * 100.0))
}

pub(super) fn opt_duration(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), human_duration)
}

pub(super) fn day(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
