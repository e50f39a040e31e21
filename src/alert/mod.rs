//! Alerts: the record SOC tooling consumes, its text line, and its triage SLA.

pub mod line;
pub mod sla;
pub mod suppress;

use crate::detect::CompiledRule;
use crate::event::{Event, Origin};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::vocab::{AlertType, Severity};
pub use sla::{Sla, SlaConfig, SlaPolicy};

/// Namespace for alert ids (UUID v5), so ids are stable across runs and hosts.
const ALERT_ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x6f, 0x2b, 0x1e, 0x43, 0x8c, 0x1a, 0x4e, 0x7d, 0x9a, 0x55, 0x0b, 0x3c, 0x71, 0x20, 0xe4, 0x19,
]);

/// The rule an alert came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleRef {
    pub id: String,
    pub title: String,
    pub level: String,
    pub tags: Vec<String>,
    /// ATT&CK technique ids from the tags, e.g. `T1110.001`.
    pub attack: Vec<String>,
    pub references: Vec<String>,
}

/// An alert record, serialised as one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable: derived from rule and event content, so a replay yields the same id.
    pub id: String,
    #[serde(rename = "type")]
    pub alert_type: AlertType,
    pub severity: Severity,
    /// Anomaly score 0-100; absent for static rules.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<f64>,
    pub rule: RuleRef,
    /// The alert text line.
    pub message: String,
    pub link: String,
    pub sla: Sla,
    pub event_time: DateTime<Utc>,
    pub detected_at: DateTime<Utc>,
    /// The original event: the JSON object, or `{raw, fields}` for text.
    pub event: Value,
    pub source: Origin,
    /// The group this alert is about: a correlation's group-by values, or a
    /// detection rule's suppression `by` fields.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group: Option<std::collections::BTreeMap<String, String>>,
    /// On an update record: how many similar alerts were suppressed, until when.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub suppressed: Option<Suppressed>,
    /// On a recovery record: the id of the alert it closes (a silent source is back).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resolves: Option<String>,
}

/// The suppression summary of an update record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppressed {
    pub count: u64,
    pub last_seen: DateTime<Utc>,
}

/// How alerts are built. Serde form of the `[alert]` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// `{id}` and `{rule_id}` are replaced.
    pub link_template: String,
    /// Whether `informational` rules raise alerts.
    pub informational: bool,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            link_template: "https://siem.example.com/alerts/{id}".into(),
            informational: false,
        }
    }
}

/// Builds alerts from rule matches.
#[derive(Debug, Clone)]
pub struct AlertBuilder {
    config: AlertConfig,
    sla: SlaPolicy,
    suppression: std::sync::Arc<suppress::SuppressionPolicy>,
}

/// Fields that name who or what an event is about, shown first when present.
const ENTITY_FIELDS: &[&str] = &[
    "host",
    "Computer",
    "c-ip",
    "User",
    "SubjectUserName",
    "TargetUserName",
];

impl AlertBuilder {
    pub fn new(config: AlertConfig, sla: SlaPolicy) -> Self {
        AlertBuilder {
            config,
            sla,
            suppression: Default::default(),
        }
    }

    /// Groups detection-rule alerts by the suppression `by` fields.
    pub fn with_suppression(mut self, policy: std::sync::Arc<suppress::SuppressionPolicy>) -> Self {
        self.suppression = policy;
        self
    }

    /// The alert for a static rule match, or `None` when the rule's level does not alert.
    pub fn static_rule(
        &self,
        rule: &CompiledRule,
        event: &Event,
        detected_at: DateTime<Utc>,
    ) -> Option<Alert> {
        let r = &rule.rule;
        // Rules without a level are treated as medium, the middle of the scale.
        let severity = r.meta.level.unwrap_or(Severity::Medium);
        if severity == Severity::Informational && !self.config.informational {
            return None;
        }
        let summary = summary(rule, event);
        let text = if summary.is_empty() {
            r.meta.title.clone()
        } else {
            format!("{}: {summary}", r.meta.title)
        };
        Some(self.build(
            (AlertType::StaticRule, None),
            &r.meta,
            severity,
            alert_id(&r.meta.id, event),
            &text,
            (event.time, detected_at),
            event.original_json(),
            event.origin.clone(),
            self.group_of(r, event),
        ))
    }
}

impl AlertBuilder {
    /// The alert for a correlation firing, or `None` when its level does not alert.
    pub fn correlation(
        &self,
        corr: &crate::correlate::CompiledCorrelation,
        firing: &crate::correlate::Firing,
        detected_at: DateTime<Utc>,
    ) -> Option<Alert> {
        let c = &corr.rule;
        let severity = c.meta.level.unwrap_or(Severity::Medium);
        if severity == Severity::Informational && !self.config.informational {
            return None;
        }
        let group: Vec<String> = firing
            .group
            .iter()
            .map(|(k, v)| format!("{k}={}", line::shorten(v, line::MAX_VALUE_CHARS)))
            .collect();
        let text = format!(
            "{}: {} for {} within {} ({} to {})",
            c.meta.title,
            crate::correlate::describe(c.kind, firing.value, c.condition.field.as_deref()),
            if group.is_empty() {
                "all events".to_string()
            } else {
                group.join(", ")
            },
            c.timespan,
            firing
                .first
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            firing
                .last
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        let event = serde_json::json!({
            "correlation": {
                "type": c.kind.name(),
                "group": firing.group.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<String, Value>>(),
                "value": firing.value,
                "events": firing.events,
                "first": firing.first,
                "last": firing.last,
                "timespan_seconds": c.timespan.as_secs(),
                "evidence": firing.evidence,
            }
        });
        Some(self.build(
            (AlertType::StaticRule, None),
            &c.meta,
            severity,
            crate::correlate::correlation_id(corr, firing),
            &text,
            (firing.last, detected_at),
            event,
            firing.origin.clone(),
            Some(firing.group.iter().cloned().collect()),
        ))
    }
}

impl AlertBuilder {
    /// The `ANOMALY DETECTED` alert for an anomaly its job's rule let through:
    /// `<job title>: <entity> <function> was <actual> (typical <expected>)`.
    pub fn anomaly(
        &self,
        job: &crate::anomaly::AnomalyJob,
        anomaly: &crate::anomaly::Anomaly,
        detected_at: DateTime<Utc>,
    ) -> Alert {
        let meta = &job.rule.meta;
        let spec = &job.spec;
        let severity = Severity::from_anomaly_score(anomaly.score);
        let entity = if anomaly.entity.is_empty() {
            "all events".to_string()
        } else {
            anomaly
                .entity
                .iter()
                .map(|(k, v)| format!("{k}={}", line::shorten(v, line::MAX_VALUE_CHARS)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let function = match &spec.field {
            Some(f) => format!("{}({f})", spec.function_name()),
            None => spec.function_name(),
        };
        let shown = |m: &crate::anomaly::Measure| {
            line::shorten(&m.to_string(), line::MAX_VALUE_CHARS).into_owned()
        };
        let text = format!(
            "{}: {entity} {function} was {} (typical {})",
            meta.title,
            shown(&anomaly.actual),
            shown(&anomaly.typical)
        );
        let mut key = format!("{}\n", meta.id);
        for (_, v) in &anomaly.entity {
            key.push_str(v);
            key.push('\u{1f}');
        }
        key.push_str(&anomaly.bucket_start.timestamp().to_string());
        let id = uuid::Uuid::new_v5(&ALERT_ID_NAMESPACE, key.as_bytes()).to_string();
        let event = serde_json::json!({
            "anomaly": {
                "job": job.name(),
                "function": spec.function_name(),
                "field": spec.field,
                "entity": anomaly.entity.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<String, Value>>(),
                "bucket": {
                    "start": anomaly.bucket_start,
                    "end": anomaly.bucket_end,
                    "span_seconds": spec.bucket_span.as_secs(),
                },
                "score": anomaly.score,
                "surprise": anomaly.surprise,
                "actual": anomaly.actual,
                "typical": anomaly.typical,
                "baseline": anomaly.baseline,
                "events": anomaly.events,
                "anomalies_in_window": anomaly.anomalies_in_window,
            }
        });
        let source = anomaly.origin.clone().unwrap_or_else(|| Origin {
            source: format!("anomaly job {}", job.name()),
            position: crate::event::Position::Line { line: 0 },
        });
        self.build(
            (AlertType::Anomaly, Some(anomaly.score)),
            meta,
            severity,
            id,
            &text,
            (anomaly.bucket_end, detected_at),
            event,
            source,
            Some(anomaly.entity.iter().cloned().collect()),
        )
    }
}

/// The rule behind silent-source alerts and their recovery records.
pub const SILENCE_RULE_ID: &str = "tocsin-source-silence";

impl AlertBuilder {
    /// A watched log source has been silent longer than its maximum:
    /// `Log source silent: source=auth.log, no events since <last> (max silence 15m)`.
    pub fn source_silent(
        &self,
        watch: &crate::incident::silence::Watch,
        last_event: Option<DateTime<Utc>>,
        since: DateTime<Utc>,
        detected_at: DateTime<Utc>,
    ) -> Alert {
        let last = last_event.map_or_else(
            || format!("none since watching began at {}", rfc3339(since)),
            rfc3339,
        );
        let text = format!(
            "Log source silent: {}, last event {last}, silent longer than {}",
            watch.name, watch.max_silence
        );
        self.silence_record(
            watch,
            silence_alert_id(&watch.name, since),
            &text,
            (watch.severity, since),
            detected_at,
            last_event,
        )
    }

    /// The recovery record of a silent source, closing its silence alert.
    pub fn source_back(
        &self,
        watch: &crate::incident::silence::Watch,
        silence_started: DateTime<Utc>,
        resumed_at: DateTime<Utc>,
        detected_at: DateTime<Utc>,
    ) -> Alert {
        let text = format!(
            "Log source back: {}, events resumed at {} after silence since {}",
            watch.name,
            rfc3339(resumed_at),
            rfc3339(silence_started)
        );
        let id = uuid::Uuid::new_v5(
            &ALERT_ID_NAMESPACE,
            format!(
                "{SILENCE_RULE_ID}\nback\n{}\n{}",
                watch.name,
                silence_started.timestamp()
            )
            .as_bytes(),
        )
        .to_string();
        let mut alert = self.silence_record(
            watch,
            id,
            &text,
            (Severity::Informational, silence_started),
            detected_at,
            Some(resumed_at),
        );
        alert.resolves = Some(silence_alert_id(&watch.name, silence_started));
        alert
    }

    fn silence_record(
        &self,
        watch: &crate::incident::silence::Watch,
        id: String,
        text: &str,
        (severity, since): (Severity, DateTime<Utc>),
        detected_at: DateTime<Utc>,
        last_event: Option<DateTime<Utc>>,
    ) -> Alert {
        let meta = crate::sigma::rule::SigmaRuleMeta {
            id: SILENCE_RULE_ID.into(),
            title: "Log source silent".into(),
            level: Some(severity),
            tags: vec!["tocsin.source-health".into()],
            ..Default::default()
        };
        let event = serde_json::json!({
            "silence": {
                "source": watch.name,
                "last_event": last_event,
                "silent_since": since,
                "max_silence_seconds": watch.max_silence.as_secs(),
            }
        });
        self.build(
            (AlertType::StaticRule, None),
            &meta,
            severity,
            id,
            text,
            (last_event.unwrap_or(since), detected_at),
            event,
            Origin {
                source: "tocsin".into(),
                position: crate::event::Position::Line { line: 0 },
            },
            Some(
                [("source".to_string(), watch.name.clone())]
                    .into_iter()
                    .collect(),
            ),
        )
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The id of the silence alert for a source silent since `since`: its
/// recovery record names it without having to remember it.
fn silence_alert_id(source: &str, since: DateTime<Utc>) -> String {
    uuid::Uuid::new_v5(
        &ALERT_ID_NAMESPACE,
        format!("{SILENCE_RULE_ID}\n{source}\n{}", since.timestamp()).as_bytes(),
    )
    .to_string()
}

impl AlertBuilder {
    /// An alert: link, text line and SLA from the configuration.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        (alert_type, score): (AlertType, Option<f64>),
        rule: &crate::sigma::rule::SigmaRuleMeta,
        severity: Severity,
        id: String,
        text: &str,
        (event_time, detected_at): (DateTime<Utc>, DateTime<Utc>),
        event: Value,
        source: Origin,
        group: Option<std::collections::BTreeMap<String, String>>,
    ) -> Alert {
        let link = self
            .config
            .link_template
            .replace("{id}", &id)
            .replace("{rule_id}", &rule.id);
        Alert {
            sla: self.sla.for_alert(alert_type, severity, detected_at),
            message: line::format_line(alert_type, severity, score, text, &link),
            id,
            alert_type,
            severity,
            score,
            rule: RuleRef {
                id: rule.id.clone(),
                title: rule.title.clone(),
                level: severity.key().to_string(),
                attack: attack_ids(&rule.tags),
                tags: rule.tags.clone(),
                references: rule.references.clone(),
            },
            link,
            event_time,
            detected_at,
            event,
            source,
            group,
            suppressed: None,
            resolves: None,
        }
    }

    /// The values of a detection rule's suppression `by` fields in an event.
    fn group_of(
        &self,
        r: &crate::sigma::SigmaRule,
        event: &Event,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let fields = self.suppression.group_fields(&r.meta.id, &r.meta.title);
        if fields.is_empty() {
            return None;
        }
        Some(
            fields
                .iter()
                .map(|f| {
                    let v = event
                        .get(f)
                        .and_then(crate::event::scalar_text)
                        .map(|t| t.into_owned());
                    (f.clone(), v.unwrap_or_default())
                })
                .collect(),
        )
    }
}

/// UUID v5 over rule id and event content.
pub fn alert_id(rule_id: &str, event: &Event) -> String {
    let mut key = String::with_capacity(rule_id.len() + 256);
    key.push_str(rule_id);
    key.push('\n');
    key.push_str(&event.fingerprint_text());
    uuid::Uuid::new_v5(&ALERT_ID_NAMESPACE, key.as_bytes()).to_string()
}

/// ATT&CK technique ids from Sigma tags (`attack.t1110.001` -> `T1110.001`).
pub fn attack_ids(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter_map(|t| t.strip_prefix("attack."))
        .filter(|t| {
            let mut chars = t.chars();
            matches!(chars.next(), Some('t' | 'T'))
                && chars.next().is_some_and(|c| c.is_ascii_digit())
        })
        .map(str::to_ascii_uppercase)
        .collect()
}

/// `key=value, ...`: entity fields, then the rule's `fields:`, then fields its detection reads.
fn summary(rule: &CompiledRule, event: &Event) -> String {
    let mut names: Vec<&str> = Vec::new();
    let candidates = ENTITY_FIELDS
        .iter()
        .copied()
        .chain(rule.rule.meta.fields.iter().map(String::as_str))
        .chain(rule.detection_fields());
    for name in candidates {
        if names.len() >= line::MAX_SUMMARY_FIELDS {
            break;
        }
        if !names.contains(&name) && event.get(name).is_some_and(|v| !v.is_null()) {
            names.push(name);
        }
    }
    // Keyword rules read no field: show the message, or the raw line.
    if names.len() <= 1 {
        if let Some(name) = ["message", "CommandLine", "cs-uri-stem"]
            .into_iter()
            .find(|n| event.get(n).is_some())
        {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let mut out = String::new();
    for name in names {
        let Some(value) = event.get(name) else {
            continue;
        };
        let text = match crate::event::scalar_text(value) {
            Some(t) => t.into_owned(),
            None => value.to_string(),
        };
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        out.push_str(&line::shorten(text.trim(), line::MAX_VALUE_CHARS));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_ids_are_taken_from_technique_tags_only() {
        let tags = vec![
            "attack.credential-access".to_string(),
            "attack.t1110.001".to_string(),
            "attack.T1059".to_string(),
            "cve.2021-44228".to_string(),
        ];
        assert_eq!(attack_ids(&tags), vec!["T1110.001", "T1059"]);
    }
}
