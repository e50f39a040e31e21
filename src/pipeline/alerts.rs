//! Alerts from what the stages found: a rule match, a correlation firing or
//! an anomaly. Each producer tells what it found (its text, evidence and
//! id); the alert builder adds the link, the SLA and the line.

use crate::alert::{Alert, AlertBuilder, Draft, Evidence, RuleRef};
use crate::anomaly::{Anomaly, AnomalyJob};
use crate::correlate::{CompiledCorrelation, Firing};
use crate::detect::CompiledRule;
use crate::event::{Event, Original};
use crate::sigma::SigmaRuleMeta;
use crate::vocab::{AlertType, Severity};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The severity a rule (detection or correlation) alerts at: its level; a
/// rule without one alerts as medium, the middle of the scale.
fn rule_severity(meta: &SigmaRuleMeta) -> Severity {
    meta.level.unwrap_or(Severity::Medium)
}

/// The alert of a rule at its level, or `None` when that level does not
/// alert. `draft` tells what the rule found.
fn at_rule_level(
    builder: &AlertBuilder,
    meta: &SigmaRuleMeta,
    rule_ref: impl FnOnce() -> Arc<RuleRef>,
    draft: impl FnOnce(Severity, Arc<RuleRef>) -> Draft,
) -> Option<Alert> {
    let severity = rule_severity(meta);
    builder
        .raises(severity)
        .then(|| builder.build(draft(severity, rule_ref())))
}

/// Each detection rule's [`RuleRef`], made on its first alert and shared
/// by the rest: making one copies the rule's tags and references, which
/// was a third of what an alert cost beyond its detection.
#[derive(Debug, Default)]
pub(crate) struct RuleRefs(Vec<Option<Arc<RuleRef>>>);

impl RuleRefs {
    /// The reference to rule `index` of the engine in use.
    fn of(&mut self, index: usize, meta: &SigmaRuleMeta) -> Arc<RuleRef> {
        if self.0.len() <= index {
            self.0.resize(index + 1, None);
        }
        match self.0.get_mut(index) {
            Some(slot) => slot
                .get_or_insert_with(|| Arc::new(RuleRef::from_meta(meta, rule_severity(meta))))
                .clone(),
            None => Arc::new(RuleRef::from_meta(meta, rule_severity(meta))),
        }
    }

    /// Forgets every reference: the rules were replaced.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

/// An event's evidence for its alerts: the JSON text it arrived as where
/// there is one (`line` is the record the event was parsed from), else
/// its fields (with the raw line, for text formats).
pub(crate) fn evidence_of(event: &Event, line: &str) -> Evidence {
    let as_arrived = match &event.original {
        // The lazy form's text was validated when the line was read; its
        // alerts share one copy of it.
        Original::SameAsFields | Original::InFields => match event.fields.json_raw() {
            Some(raw) => Some(Evidence::from_raw(Arc::from(raw.to_owned()))),
            None => Evidence::from_json_text(line),
        },
        Original::JsonText(text) => Evidence::from_json_text(text),
        Original::Text(_) => None,
    };
    as_arrived.unwrap_or_else(|| match &event.original {
        Original::SameAsFields => Evidence::of(&event.fields),
        _ => Evidence::of(&event.original_json()),
    })
}

/// The alert for rule `index` of the engine matching `event` (`id` from
/// [`crate::alert::alert_id`], `evidence` from [`evidence_of`]), or `None`
/// when the rule's level does not alert.
pub(crate) fn rule_match(
    (builder, refs): (&AlertBuilder, &mut RuleRefs),
    (index, rule): (usize, &CompiledRule),
    event: &Event,
    (id, evidence): (String, Evidence),
    detected_at: DateTime<Utc>,
) -> Option<Alert> {
    let meta = &rule.rule.meta;
    let rule_ref = || refs.of(index, meta);
    at_rule_level(builder, meta, rule_ref, |severity, rule_ref| Draft {
        alert_type: AlertType::StaticRule,
        severity,
        score: None,
        rule: rule_ref,
        id,
        text: crate::detect::describe::alert_text(rule, event),
        event_time: event.time,
        detected_at,
        event: evidence,
        source: event.origin.clone(),
        group: builder.group_of(meta, event),
        resolves: None,
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
    let meta = &corr.rule.meta;
    let rule_ref = || Arc::new(RuleRef::from_meta(meta, rule_severity(meta)));
    at_rule_level(builder, meta, rule_ref, |severity, rule_ref| Draft {
        alert_type: AlertType::StaticRule,
        severity,
        score: None,
        rule: rule_ref,
        id: describe::correlation_id(corr, firing),
        text: describe::alert_text(corr, firing),
        event_time: firing.last,
        detected_at,
        event: describe::evidence(corr, firing).into(),
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
        rule: Arc::new(RuleRef::from_meta(&job.rule.meta, severity)),
        id: describe::anomaly_id(job, anomaly),
        text: describe::alert_text(job, anomaly),
        event_time: anomaly.bucket_end,
        detected_at,
        event: describe::evidence(job, anomaly).into(),
        source: describe::source(job, anomaly),
        group: Some(anomaly.entity.iter().cloned().collect()),
        resolves: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(title: &str, level: Option<Severity>) -> SigmaRuleMeta {
        SigmaRuleMeta {
            id: "r".into(),
            title: title.into(),
            level,
            tags: vec!["attack.t1110.001".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_rules_alerts_share_one_reference_until_the_rules_are_replaced() {
        let mut refs = RuleRefs::default();
        let first = refs.of(3, &meta("Old", Some(Severity::High)));
        assert_eq!(
            (first.title.as_str(), first.level.as_str()),
            ("Old", "high")
        );
        assert_eq!(first.attack, ["T1110.001"]);
        assert!(Arc::ptr_eq(
            &first,
            &refs.of(3, &meta("Old", Some(Severity::High)))
        ));
        refs.clear();
        let replaced = refs.of(3, &meta("New", None));
        assert_eq!(
            (replaced.title.as_str(), replaced.level.as_str()),
            ("New", "medium")
        );
    }
}
