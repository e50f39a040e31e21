//! Triage updates: what SOC tooling reports about an alert, and which
//! status changes the incident process allows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an alert stands in the incident process.
///
/// `open -> acknowledged -> triaged -> incident -> resolved`, where any later
/// status may be reported directly, and `false_positive` and `resolved`
/// close the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Raised; nobody has responded yet.
    Open,
    /// Someone is on it: a first response, not a decision, so escalation goes on.
    Acknowledged,
    /// Looked at and judged: a triage decision, like every later status, so
    /// escalation stops.
    Triaged,
    /// Not a threat; closes the alert.
    FalsePositive,
    /// A real incident, still to be resolved.
    Incident,
    /// Dealt with; closes the alert.
    Resolved,
}

impl Status {
    /// Every status, from `open` to `resolved`.
    pub const ALL: [Status; 6] = [
        Status::Open,
        Status::Acknowledged,
        Status::Triaged,
        Status::FalsePositive,
        Status::Incident,
        Status::Resolved,
    ];

    /// The status as written in updates, records and metrics, e.g. `false_positive`.
    pub fn key(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Triaged => "triaged",
            Status::FalsePositive => "false_positive",
            Status::Incident => "incident",
            Status::Resolved => "resolved",
        }
    }

    /// A triage decision was made: the SLA is met (or breached) at the first
    /// such status, and escalation stops. Acknowledging is a first response,
    /// not a decision.
    pub fn is_triaged(self) -> bool {
        !matches!(self, Status::Open | Status::Acknowledged)
    }

    /// The alert needs nothing more.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::FalsePositive | Status::Resolved)
    }

    /// Whether `self -> next` is a step the incident process allows.
    pub fn allows(self, next: Status) -> bool {
        use Status::*;
        match self {
            Open => next != Open,
            Acknowledged => matches!(next, Triaged | FalsePositive | Incident | Resolved),
            Triaged => matches!(next, FalsePositive | Incident | Resolved),
            Incident => next == Resolved,
            FalsePositive | Resolved => false,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Status, String> {
        Status::ALL
            .into_iter()
            .filter(|s| *s != Status::Open)
            .find(|st| st.key() == s)
            .ok_or_else(|| {
                format!(
                    "status `{s}` is not one of acknowledged, triaged, false_positive, incident, resolved"
                )
            })
    }
}

/// One triage update: `{alert_id, status, by, at, note}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriageUpdate {
    /// The `id` of the alert it is about.
    pub alert_id: String,
    /// The new status (`open` is refused).
    pub status: Status,
    /// Who reports it: an analyst or tool (`parse` keeps 200 characters).
    pub by: String,
    /// When it happened, as the sender says (RFC 3339), not when it arrived.
    pub at: DateTime<Utc>,
    /// A free-text note (`parse` keeps 4000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Longest note kept, in characters (notes are for people, not payloads).
const MAX_NOTE_CHARS: usize = 4000;
/// Longest analyst name kept.
const MAX_BY_CHARS: usize = 200;
/// Longest alert id accepted (ids are 36-character UUIDs).
const MAX_ALERT_ID_BYTES: usize = 128;

impl TriageUpdate {
    /// Parses and checks one update. The error says what is wrong.
    pub fn parse(text: &str) -> Result<TriageUpdate, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("triage update: not JSON: {e}"))?;
        let Some(obj) = value.as_object() else {
            return Err("triage update: not a JSON object".into());
        };
        let text_field = |name: &str| -> Result<String, String> {
            match obj.get(name) {
                None | Some(serde_json::Value::Null) => {
                    Err(format!("triage update: `{name}` is missing"))
                }
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                    Ok(s.trim().to_string())
                }
                Some(serde_json::Value::String(_)) => {
                    Err(format!("triage update: `{name}` is empty"))
                }
                Some(other) => Err(format!(
                    "triage update: `{name}` must be a string, not {other}"
                )),
            }
        };
        if let Some(unknown) = obj
            .keys()
            .find(|k| !["alert_id", "status", "by", "at", "note"].contains(&k.as_str()))
        {
            return Err(format!(
                "triage update: unknown field `{unknown}` (expected alert_id, status, by, at, note)"
            ));
        }
        let alert_id = text_field("alert_id")?;
        if alert_id.len() > MAX_ALERT_ID_BYTES {
            return Err(format!(
                "triage update: `alert_id` is {} bytes long; alert ids are UUIDs",
                alert_id.len()
            ));
        }
        let status = text_field("status")?
            .parse::<Status>()
            .map_err(|e| format!("triage update: {e}"))?;
        let by = crate::vocab::text::shorten(&text_field("by")?, MAX_BY_CHARS).into_owned();
        let at_text = text_field("at")?;
        let at = DateTime::parse_from_rfc3339(&at_text)
            .map_err(|e| format!("triage update: `at` `{at_text}` is not an RFC 3339 time: {e}"))?
            .with_timezone(&Utc);
        let note = match obj.get("note") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => {
                Some(crate::vocab::text::shorten(s, MAX_NOTE_CHARS).into_owned())
            }
            Some(other) => {
                return Err(format!(
                    "triage update: `note` must be a string, not {other}"
                ))
            }
        };
        Ok(TriageUpdate {
            alert_id,
            status,
            by,
            at,
            note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_update_parses() {
        let u = TriageUpdate::parse(
            r#"{"alert_id":"a1","status":"false_positive","by":"ana","at":"2026-11-20T10:00:00+01:00","note":"backup job"}"#,
        )
        .unwrap();
        assert_eq!(u.status, Status::FalsePositive);
        assert_eq!(u.at.to_rfc3339(), "2026-11-20T09:00:00+00:00");
        assert_eq!(u.note.as_deref(), Some("backup job"));
    }

    #[test]
    fn malformed_updates_say_what_is_wrong() {
        let cases = [
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (
                r#"{"status":"triaged","by":"a","at":"2026-11-20T10:00:00Z"}"#,
                "`alert_id` is missing",
            ),
            (
                r#"{"alert_id":"x","status":"closed","by":"a","at":"2026-11-20T10:00:00Z"}"#,
                "status `closed` is not one of",
            ),
            (
                r#"{"alert_id":"x","status":"open","by":"a","at":"2026-11-20T10:00:00Z"}"#,
                "status `open` is not one of",
            ),
            (
                r#"{"alert_id":"x","status":"triaged","by":"","at":"2026-11-20T10:00:00Z"}"#,
                "`by` is empty",
            ),
            (
                r#"{"alert_id":"x","status":"triaged","by":"a","at":"yesterday"}"#,
                "`at` `yesterday` is not an RFC 3339 time",
            ),
            (
                r#"{"alert_id":7,"status":"triaged","by":"a","at":"2026-11-20T10:00:00Z"}"#,
                "`alert_id` must be a string",
            ),
            (
                r#"{"alert_id":"x","status":"triaged","by":"a","at":"2026-11-20T10:00:00Z","sev":1}"#,
                "unknown field `sev`",
            ),
        ];
        for (text, expected) in cases {
            let err = TriageUpdate::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn transitions_follow_the_incident_process() {
        use Status::*;
        assert!(Open.allows(Acknowledged));
        assert!(Open.allows(Resolved), "a decision may skip steps");
        assert!(Acknowledged.allows(Triaged));
        assert!(!Acknowledged.allows(Acknowledged));
        assert!(!Triaged.allows(Acknowledged), "no going back");
        assert!(Incident.allows(Resolved));
        assert!(!Incident.allows(FalsePositive));
        for next in Status::ALL {
            assert!(!Resolved.allows(next), "resolved is final");
            assert!(!FalsePositive.allows(next), "false_positive is final");
        }
        assert!(!Acknowledged.is_triaged() && Triaged.is_triaged() && FalsePositive.is_triaged());
    }
}
