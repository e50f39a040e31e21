//! Alerts from what the stages found: a rule match, a correlation firing or
//! an anomaly. Each producer tells what it found (its text, evidence and
//! id); the alert builder adds the link, the SLA and the line.

use crate::alert::{Alert, AlertBuilder, Draft, RuleRef};
use crate::anomaly::{Anomaly, AnomalyJob};
use crate::correlate::{CompiledCorrelation, Firing};
use crate::detect::CompiledRule;
use crate::event::Event;
use crate::sigma::SigmaRuleMeta;
use crate::vocab::{AlertType, Severity};
use chrono::{DateTime, Utc};

/// The alert of a rule (detection or correlation) at its level, or `None`
/// when that level does not alert; a rule without a level alerts as medium,
/// the middle of the scale. `draft` tells what the rule found.
fn at_rule_level(
    builder: &AlertBuilder,
    meta: &SigmaRuleMeta,
    draft: impl FnOnce(Severity, RuleRef) -> Draft,
) -> Option<Alert> {
    let severity = meta.level.unwrap_or(Severity::Medium);
    builder
        .raises(severity)
        .then(|| builder.build(draft(severity, RuleRef::from_meta(meta, severity))))
}

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
    at_rule_level(builder, meta, |severity, rule_ref| {
        let summary = crate::detect::describe::summary(rule, event);
        Draft {
            alert_type: AlertType::StaticRule,
            severity,
            score: None,
            rule: rule_ref,
            id,
            text: if summary.is_empty() {
                meta.title.clone()
            } else {
                format!("{}: {summary}", meta.title)
            },
            event_time: event.time,
            detected_at,
            event: event.original_json(),
            source: event.origin.clone(),
            group: builder.group_of(meta, event),
            resolves: None,
        }
    })
}

/// The alert for a correlation firing, or `None` when its level does not alert.
pub(crate) fn correlation(
    builder: &AlertBuilder,
    corr: &CompiledCorrelation,
    firing: &Firing,
    detected_at: DateTime<Utc>,
) -> Option<Alert> {
    use crate::correlate::describe;
    at_rule_level(builder, &corr.rule.meta, |severity, rule_ref| Draft {
        alert_type: AlertType::StaticRule,
        severity,
        score: None,
        rule: rule_ref,
        id: describe::correlation_id(corr, firing),
        text: describe::alert_text(corr, firing),
        event_time: firing.last,
        detected_at,
        event: describe::evidence(corr, firing),
        source: firing.origin.clone(),
        group: Some(firing.group.iter().cloned().collect()),
        resolves: None,
    })
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
