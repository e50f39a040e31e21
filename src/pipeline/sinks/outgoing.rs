//! What a sink needs of a record: its line, its JSON, its Kafka key and
//! headers. Alerts and escalations are both [`Outgoing`].

use crate::alert::{Alert, Evidence};
use crate::incident::escalation::Escalation;
use crate::pipeline::dead_letter::Whole;
use crate::vocab::Severity;
use std::borrow::Cow;

/// A record leaving the engine.
pub trait Outgoing {
    /// The text line.
    fn line(&self) -> &str;
    /// The record as one JSON object.
    fn json(&self) -> serde_json::Result<Vec<u8>>;
    /// The severity, for a webhook's `min_severity` filter; an escalation has its alert's.
    fn severity(&self) -> Severity;
    /// The Kafka record key: one story stays on one partition.
    fn key(&self) -> Cow<'_, str>;
    /// The Kafka record headers.
    fn headers(&self) -> Vec<(&'static str, Cow<'_, str>)>;
    /// A smaller JSON form that stays readable, for a topic that cannot
    /// take the whole record (`whole` is the whole record's size and hash).
    fn shrunk_json(&self, _whole: &Whole) -> Option<Vec<u8>> {
        None
    }
    /// An alert, as opposed to an escalation of one (a webhook with
    /// `alerts = false` posts escalations only).
    fn is_alert(&self) -> bool;
}

/// Longest record key written; longer group keys are replaced by their hash.
const MAX_KEY_BYTES: usize = 1024;
/// Characters of the event JSON an alert cut to fit keeps.
const EVENT_PREFIX_CHARS: usize = 2000;

impl Outgoing for Alert {
    fn line(&self) -> &str {
        &self.message
    }

    fn json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }

    fn severity(&self) -> Severity {
        self.severity
    }

    /// The correlation group (rule and group-by values), so one incident's
    /// updates stay in order on one partition; otherwise the alert id.
    fn key(&self) -> Cow<'_, str> {
        match &self.group {
            Some(group) if !group.is_empty() => {
                let mut key = self.rule.id.clone();
                for (field, value) in group {
                    key.push('|');
                    key.push_str(field);
                    key.push('=');
                    key.push_str(value);
                }
                // Still one partition per group, without a key as large as the event.
                if key.len() > MAX_KEY_BYTES {
                    key = format!(
                        "{}|sha256={}",
                        self.rule.id,
                        Whole::hash(key.as_bytes()).sha256
                    );
                }
                Cow::Owned(key)
            }
            _ => Cow::Borrowed(&self.id),
        }
    }

    fn headers(&self) -> Vec<(&'static str, Cow<'_, str>)> {
        vec![
            ("type", Cow::Borrowed(self.alert_type.as_str())),
            ("severity", Cow::Borrowed(self.severity.key())),
            ("rule_id", Cow::Borrowed(&self.rule.id)),
        ]
    }

    /// The alert with its event replaced by what identifies it: the size
    /// and SHA-256 of the whole alert record, and the event's beginning.
    fn shrunk_json(&self, whole: &Whole) -> Option<Vec<u8>> {
        let event = self.event.to_string();
        let shrunk = Alert {
            event: Evidence::from(serde_json::json!({
                "cut": {
                    "alert_bytes": whole.bytes,
                    "alert_sha256": whole.sha256,
                    "event_bytes": event.len(),
                    "event_prefix": crate::vocab::text::shorten(&event, EVENT_PREFIX_CHARS),
                }
            })),
            ..self.clone()
        };
        serde_json::to_vec(&shrunk).ok()
    }

    fn is_alert(&self) -> bool {
        true
    }
}

impl Outgoing for Escalation {
    fn line(&self) -> &str {
        &self.message
    }

    fn json(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }

    fn severity(&self) -> Severity {
        self.severity
    }

    /// The alert id, so an alert's story stays in one partition.
    fn key(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.alert_id)
    }

    fn headers(&self) -> Vec<(&'static str, Cow<'_, str>)> {
        vec![
            ("type", Cow::Borrowed("escalation")),
            ("severity", Cow::Borrowed(self.severity.key())),
            ("level", Cow::Borrowed(&self.level)),
        ]
    }

    fn is_alert(&self) -> bool {
        false
    }
}
