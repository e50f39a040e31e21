//! Alerts from what the stages found: a rule match, a correlation firing or
//! an anomaly. Each producer tells what it found (its text, evidence and
//! id); the alert builder adds the link, the SLA and the line.

use crate::alert::{Alert, AlertBuilder, Draft, RuleRef};
use crate::anomaly::{Anomaly, AnomalyJob};
use crate::correlate::{CompiledCorrelation, Firing};
use crate::detect::CompiledRule;
use crate::event::Event;
use crate::vocab::{AlertType, Severity};
use chrono::{DateTime, Utc};

/// The alert for `rule` matching `event` (`id` from [`crate::alert::alert_id`]),
/// or `None` when the rule's level does not alert.
pub(crate) fn rule_match(
    builder: &AlertBuilder,
    rule: &CompiledRule,
    event: &Event,
    id: String,
    detected_at: DateTime<Utc>,
) -> Option<Alert> {
    let meta = &rule.rule.meta;
    // Rules without a level are treated as medium, the middle of the scale.
    let severity = meta.level.unwrap_or(Severity::Medium);
    if !builder.raises(severity) {
        return None;
    }
    let summary = crate::detect::describe::summary(rule, event);
    let text = if summary.is_empty() {
        meta.title.clone()
    } else {
        format!("{}: {summary}", meta.title)
    };
    Some(builder.build(Draft {
        alert_type: AlertType::StaticRule,
        severity,
        score: None,
        rule: RuleRef::from_meta(meta, severity),
        id,
        text,
        event_time: event.time,
        detected_at,
        event: event.original_json(),
        source: event.origin.clone(),
        group: builder.group_of(meta, event),
        resolves: None,
    }))
}

/// The alert for a correlation firing, or `None` when its level does not alert.
pub(crate) fn correlation(
    builder: &AlertBuilder,
    corr: &CompiledCorrelation,
    firing: &Firing,
    detected_at: DateTime<Utc>,
) -> Option<Alert> {
    use crate::correlate::describe;
    let meta = &corr.rule.meta;
    let severity = meta.level.unwrap_or(Severity::Medium);
    if !builder.raises(severity) {
        return None;
    }
    Some(builder.build(Draft {
        alert_type: AlertType::StaticRule,
        severity,
        score: None,
        rule: RuleRef::from_meta(meta, severity),
        id: describe::correlation_id(corr, firing),
        text: describe::alert_text(corr, firing),
        event_time: firing.last,
        detected_at,
        event: describe::evidence(corr, firing),
        source: firing.origin.clone(),
        group: Some(firing.group.iter().cloned().collect()),
        resolves: None,
    }))
}

/// The `ANOMALY DETECTED` alert for an anomaly its job's rule let through.
pub(crate) fn anomaly(
    builder: &AlertBuilder,
    job: &AnomalyJob,
    anomaly: &Anomaly,
    detected_at: DateTime<Utc>,
) -> Alert {
    use crate::anomaly::describe;
    let severity = Severity::from_anomaly_score(anomaly.score);
    builder.build(Draft {
        alert_type: AlertType::Anomaly,
        severity,
        score: Some(anomaly.score),
        rule: RuleRef::from_meta(&job.rule.meta, severity),
        id: describe::anomaly_id(job, anomaly),
        text: describe::alert_text(job, anomaly),
        event_time: anomaly.bucket_end,
        detected_at,
        event: describe::evidence(job, anomaly),
        source: describe::source(job, anomaly),
        group: Some(anomaly.entity.iter().cloned().collect()),
        resolves: None,
    })
}
