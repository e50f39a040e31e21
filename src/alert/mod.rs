//! Alerts: the record SOC tooling consumes, its text line, and its triage SLA.

mod config;
mod evidence;
pub(crate) mod line;
pub(crate) mod sla;
pub(crate) mod suppress;

use crate::event::{Event, Origin};
use crate::sigma::rule::SigmaRuleMeta;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::vocab::{AlertType, Severity};
pub use config::AlertConfig;
pub use evidence::Evidence;
pub use sla::{Sla, SlaConfig, SlaPolicy};
pub use suppress::{SuppressionConfig, SuppressionPolicy};

/// The rule an alert came from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleRef {
    /// The rule's `id` (a UUID for Sigma rules).
    pub id: String,
    /// The rule's `title`.
    pub title: String,
    /// The severity the alert is raised at, as a key (`high`): the Sigma `level`
    /// (medium when unset), or for an anomaly the band its score falls in.
    pub level: String,
    /// The rule's Sigma `tags`, as written.
    pub tags: Vec<String>,
    /// ATT&CK technique ids from the tags, e.g. `T1110.001`.
    pub attack: Vec<String>,
    /// The rule's `references` (URLs to background reading).
    pub references: Vec<String>,
}

/// An alert record, serialised as one JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable: derived from rule and event content, so a replay yields the same id.
    pub id: String,
    /// `STATIC RULE` or `ANOMALY DETECTED`.
    #[serde(rename = "type")]
    pub alert_type: AlertType,
    /// `low` to `critical`: the Sigma `level` (`informational` only with
    /// `alert.informational = true`), or the band of an anomaly's score.
    pub severity: Severity,
    /// Anomaly score 0-100; absent for static rules.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub score: Option<f64>,
    /// The rule or anomaly job that raised it, shared by all its alerts.
    pub rule: Arc<RuleRef>,
    /// The alert text line.
    pub message: String,
    /// The link in the line, from `alert.link_template`.
    pub link: String,
    /// The triage deadline: policy, window and `due_at`.
    pub sla: Sla,
    /// When it happened: from the event (configurable field and format), else
    /// when it was read.
    pub event_time: DateTime<Utc>,
    /// When tocsin matched it; the SLA clock starts here.
    pub detected_at: DateTime<Utc>,
    /// The original event as it arrived (a JSON object), `{raw, fields}`
    /// for text, or what the producer measured.
    pub event: Evidence,
    /// Where the event was read: file and line, or Kafka topic, partition and offset.
    pub source: Origin,
    /// The group this alert is about: a correlation's group-by values, or,
    /// for a detection rule that is suppressed, its suppression `by` fields
    /// (by default the fields that say who or what the event is about).
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
    /// How many similar alerts were held back in the window.
    pub count: u64,
    /// Event time of the last of them.
    pub last_seen: DateTime<Utc>,
}

/// Builds alerts from rule matches.
#[derive(Debug, Clone)]
pub struct AlertBuilder {
    config: AlertConfig,
    sla: SlaPolicy,
    suppression: std::sync::Arc<suppress::SuppressionPolicy>,
}

impl RuleRef {
    /// The reference to a rule (detection, correlation or anomaly job) that
    /// alerts at `severity`.
    pub fn from_meta(meta: &SigmaRuleMeta, severity: Severity) -> RuleRef {
        RuleRef {
            id: meta.id.clone(),
            title: meta.title.clone(),
            level: severity.key().to_string(),
            attack: attack_ids(&meta.tags),
            tags: meta.tags.clone(),
            references: meta.references.clone(),
        }
    }
}

/// What a producer hands the builder: what happened (a rule match, a
/// correlation firing, an anomaly, a silent source). The builder adds what
/// is policy: the link, the SLA, the text line.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// `STATIC RULE` or `ANOMALY DETECTED`.
    pub alert_type: AlertType,
    /// The severity the alert is raised at.
    pub severity: Severity,
    /// The anomaly score (anomalies only).
    pub score: Option<f64>,
    /// The rule or anomaly job it comes from.
    pub rule: Arc<RuleRef>,
    /// Stable: the same draft from a replay has the same id.
    pub id: String,
    /// The message of the line, before the link.
    pub text: String,
    /// When it happened, in event time; the alert's `event_time`.
    pub event_time: DateTime<Utc>,
    /// When it was detected; the SLA clock starts here.
    pub detected_at: DateTime<Utc>,
    /// The evidence: the original event, or what the producer measured.
    pub event: Evidence,
    /// Where the evidence was read; the alert's `source`.
    pub source: Origin,
    /// The group the alert is about (correlation group-by values, suppression `by`
    /// fields, an anomaly's entity); `None` when it has none.
    pub group: Option<BTreeMap<String, String>>,
    /// The id of an alert this record closes.
    pub resolves: Option<String>,
}

impl AlertBuilder {
    /// A builder with the `[alert]` settings and the SLA policy, grouping
    /// nothing until [`AlertBuilder::with_suppression`].
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

    /// The suppression policy alerts are grouped by.
    pub fn suppression(&self) -> &suppress::SuppressionPolicy {
        &self.suppression
    }

    /// Whether a rule of this level raises alerts (`informational` ones
    /// only with `alert.informational = true`).
    pub fn raises(&self, severity: Severity) -> bool {
        severity != Severity::Informational || self.config.informational
    }

    /// The alert: the draft with its link, text line and SLA.
    pub fn build(&self, draft: Draft) -> Alert {
        let link = fill_link(&self.config.link_template, &draft.id, &draft.rule.id);
        Alert {
            sla: self
                .sla
                .for_alert(draft.alert_type, draft.severity, draft.detected_at),
            message: line::format_line(
                draft.alert_type,
                draft.severity,
                draft.score,
                &draft.text,
                &link,
            ),
            id: draft.id,
            alert_type: draft.alert_type,
            severity: draft.severity,
            score: draft.score,
            rule: draft.rule,
            link,
            event_time: draft.event_time,
            detected_at: draft.detected_at,
            event: draft.event,
            source: draft.source,
            group: draft.group,
            suppressed: None,
            resolves: draft.resolves,
        }
    }

    /// The values of a detection rule's suppression `by` fields in an event;
    /// without `by`, of the fields that say who or what it is about (host,
    /// user, address: [`crate::event::ENTITY_FIELDS`] and
    /// [`SUPPRESSION_DEFAULT_FIELDS`]) the event has, so
    /// repeats are folded per rule and subject, not per rule. `None` when
    /// the rule is not suppressed.
    pub fn group_of(
        &self,
        meta: &SigmaRuleMeta,
        event: &Event,
    ) -> Option<BTreeMap<String, String>> {
        if !self.suppression.suppresses(&meta.id, &meta.title) {
            return None;
        }
        let configured = self.suppression.group_fields(&meta.id, &meta.title);
        let fields: Vec<&str> = match configured.is_empty() {
            false => configured.iter().map(String::as_str).collect(),
            true => crate::event::ENTITY_FIELDS
                .iter()
                .chain(SUPPRESSION_DEFAULT_FIELDS)
                .copied()
                .filter(|f| event.get(f).is_some_and(|v| !v.is_null()))
                .collect(),
        };
        Some(
            fields
                .into_iter()
                .map(|f| {
                    let v = event
                        .get(f)
                        .and_then(crate::event::scalar_text)
                        .map(|t| t.into_owned());
                    (f.to_string(), v.unwrap_or_default())
                })
                .collect(),
        )
    }
}

/// `template` with each `{id}` and `{rule_id}` filled in, in one pass: two
/// `str::replace`s would build the link twice per alert, and the second
/// would look for `{rule_id}` inside the id just put in.
fn fill_link(template: &str, id: &str, rule_id: &str) -> String {
    let mut link = String::with_capacity(template.len() + id.len() + rule_id.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        let (before, from_brace) = rest.split_at(at);
        link.push_str(before);
        rest = if let Some(after) = from_brace.strip_prefix("{id}") {
            link.push_str(id);
            after
        } else if let Some(after) = from_brace.strip_prefix("{rule_id}") {
            link.push_str(rule_id);
            after
        } else {
            link.push('{');
            from_brace.get(1..).unwrap_or_default()
        };
    }
    link.push_str(rest);
    link
}

/// What a suppressed detection rule's alerts are grouped by when the
/// configuration names no `by` fields: who or what the event is about.
/// These come after [`crate::event::ENTITY_FIELDS`]: the subject fields of
/// parsed sshd lines and the endpoint of collector-shipped Windows events.
pub const SUPPRESSION_DEFAULT_FIELDS: &[&str] = &["user", "src_ip", "Hostname"];

/// The event's part of its alerts' ids: its content (from
/// [`Event::fingerprint_into`]) hashed once, however many rules match it.
#[derive(Clone)]
pub struct EventKey(crate::vocab::id::StableKey);

impl EventKey {
    /// The key of an event whose fingerprint is `fingerprint`.
    pub fn of(fingerprint: &[u8]) -> EventKey {
        let mut key = crate::vocab::id::StableKey::new();
        key.push(fingerprint);
        key.push(b"\n");
        EventKey(key)
    }

    /// The id of rule `rule_id`'s alert on the event: UUID v5 over the
    /// event's content and the rule id.
    pub fn alert_id(&self, rule_id: &str) -> String {
        let mut key = self.0.clone();
        key.push(rule_id.as_bytes());
        key.id()
    }
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

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// For ids without braces (UUIDs, rule ids), the one pass gives
        /// what the two replacements gave.
        #[test]
        fn links_fill_as_replacing_each_placeholder_does(
            template in "[a-z/:{}_]{0,12}(\\{id\\}|\\{rule_id\\})?[a-z/{}_]{0,12}(\\{rule_id\\}|\\{id\\})?[{}a-z]{0,4}",
            id in "[a-f0-9-]{0,12}",
            rule_id in "[a-z0-9-]{0,12}",
        ) {
            proptest::prop_assert_eq!(
                super::fill_link(&template, &id, &rule_id),
                template.replace("{id}", &id).replace("{rule_id}", &rule_id)
            );
        }
    }

    use super::*;

    #[test]
    fn alert_ids_depend_on_the_event_and_the_rule() {
        let key = EventKey::of(br#"{"a":1}"#);
        let id = key.alert_id("rule-1");
        assert_eq!(id, EventKey::of(br#"{"a":1}"#).alert_id("rule-1"));
        assert_eq!(
            id,
            crate::vocab::id::stable_id(&format!("{}\nrule-1", r#"{"a":1}"#))
        );
        assert_ne!(id, key.alert_id("rule-2"));
        assert_ne!(id, EventKey::of(br#"{"a":2}"#).alert_id("rule-1"));
        // The separator keeps event and rule id apart.
        assert_ne!(
            EventKey::of(b"ab").alert_id("c"),
            EventKey::of(b"a").alert_id("bc")
        );
    }

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
