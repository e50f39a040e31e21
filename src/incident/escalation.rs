//! The escalation policy: levels relative to an alert's triage deadline,
//! each with a destination, and the escalation record and line.

use super::TrackedAlert;
use crate::vocab::Severity;
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One level as configured (`[[incident.escalation]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    /// The level's name, shown in the line: `reminder`, `breach`, `on-call`...
    pub level: String,
    /// When, relative to the triage deadline: `-2h` (before), `0s` (at it),
    /// `+1d` (after); or `immediately` (when the alert is raised).
    pub at: String,
    /// Severities the level applies to (`critical`, `high`, ...); empty: all.
    #[serde(default)]
    pub severities: Vec<String>,
    /// `alerts` (the alert sinks), `escalations` (incident.escalation_sink)
    /// or `webhook:<name>` (a webhook sink by name).
    pub destination: String,
}

/// The levels used when `[incident]` is enabled without any configured:
/// critical alerts page on-call at once; every alert gets a reminder two
/// hours before its deadline, a breach notice at it and a second-level
/// escalation a day after it.
pub(crate) fn default_levels() -> Vec<LevelConfig> {
    let level = |name: &str, at: &str, severities: &[&str]| LevelConfig {
        level: name.into(),
        at: at.into(),
        severities: severities.iter().map(|s| s.to_string()).collect(),
        destination: "escalations".into(),
    };
    vec![
        level("on-call", "immediately", &["critical"]),
        level("reminder", "-2h", &[]),
        level("breach", "0s", &[]),
        level("second-level", "+1d", &[]),
    ]
}

/// When a level is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// When the alert is raised.
    Immediately,
    /// This long after the triage deadline (negative: before it).
    FromDue(chrono::Duration),
}

/// Where an escalation goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Alerts,
    Escalations,
    Webhook(String),
}

impl Destination {
    fn parse(text: &str) -> Result<Destination, String> {
        match text.trim() {
            "alerts" => Ok(Destination::Alerts),
            "escalations" => Ok(Destination::Escalations),
            t => match t.strip_prefix("webhook:") {
                Some(name) if !name.trim().is_empty() => {
                    Ok(Destination::Webhook(name.trim().to_string()))
                }
                _ => Err(format!(
                    "destination `{t}` is not `alerts`, `escalations` or `webhook:<name>`"
                )),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            Destination::Alerts => "alerts".into(),
            Destination::Escalations => "escalations".into(),
            Destination::Webhook(n) => format!("webhook:{n}"),
        }
    }
}

/// A compiled level.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub name: String,
    pub when: When,
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    pub destination: Destination,
}

impl Level {
    pub fn applies_to(&self, severity: Severity) -> bool {
        self.severities.is_empty() || self.severities.contains(&severity)
    }

    /// When this level is reached for an alert.
    pub fn time_for(&self, alert: &TrackedAlert) -> DateTime<Utc> {
        match self.when {
            When::Immediately => alert.detected_at,
            When::FromDue(offset) => alert.due_at.checked_add_signed(offset).unwrap_or(
                if offset > chrono::TimeDelta::zero() {
                    DateTime::<Utc>::MAX_UTC
                } else {
                    DateTime::<Utc>::MIN_UTC
                },
            ),
        }
    }
}

/// The configured levels, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EscalationPolicy {
    /// The compiled levels, in configuration order (names are unique).
    pub levels: Vec<Level>,
}

impl EscalationPolicy {
    /// Compiles the configured levels; the error names the level and what is wrong.
    pub fn compile(configs: &[LevelConfig]) -> Result<EscalationPolicy, String> {
        let mut levels = Vec::with_capacity(configs.len());
        for (i, c) in configs.iter().enumerate() {
            let name = c.level.trim();
            let context = |what: String| format!("incident.escalation[{i}] `{name}`: {what}");
            if name.is_empty() {
                return Err(format!("incident.escalation[{i}]: `level` is empty"));
            }
            if levels.iter().any(|l: &Level| l.name == name) {
                return Err(context("the level name is used twice".into()));
            }
            let when = parse_when(&c.at).map_err(context)?;
            let severities = c
                .severities
                .iter()
                .map(|s| {
                    Severity::from_sigma_level(s)
                        .ok_or_else(|| context(format!("unknown severity `{s}`")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let destination = Destination::parse(&c.destination).map_err(context)?;
            levels.push(Level {
                name: name.to_string(),
                when,
                severities,
                destination,
            });
        }
        Ok(EscalationPolicy { levels })
    }

    /// The level named `name`, if configured.
    pub fn level(&self, name: &str) -> Option<&Level> {
        self.levels.iter().find(|l| l.name == name)
    }
}

/// `immediately`, or a signed span: `-2h`, `0s`, `+1d`, `30m`.
fn parse_when(text: &str) -> Result<When, String> {
    let t = text.trim();
    if t == "immediately" {
        return Ok(When::Immediately);
    }
    let (negative, magnitude) = match (t.strip_prefix('-'), t.strip_prefix('+')) {
        (Some(m), _) => (true, m),
        (None, Some(m)) => (false, m),
        (None, None) => (false, t),
    };
    // `0`, `0s`, `0h`: at the deadline itself.
    let zero = magnitude
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse::<u64>()
        == Ok(0);
    let span = if zero {
        Span::ZERO
    } else {
        magnitude.parse::<Span>().map_err(|e| {
            format!("`at = \"{t}\"` is not `immediately` or a signed span like -2h, 0s, +1d ({e})")
        })?
    };
    let delta = span.as_delta();
    Ok(When::FromDue(if negative { -delta } else { delta }))
}

/// Longest part of the original alert text an escalation line repeats.
pub(crate) const MAX_ESCALATED_TEXT: usize = 120;

/// An escalation record: one alert reaching one level untriaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// Always `escalation`, so consumers of a shared topic can tell records apart.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The id of the alert that escalated.
    pub alert_id: String,
    /// The level reached, by name.
    pub level: String,
    /// The alert's severity.
    pub severity: Severity,
    /// The id of the alert's rule.
    pub rule_id: String,
    /// The title of the alert's rule.
    pub rule_title: String,
    /// The alert's status when it escalated (`open` or `acknowledged`).
    pub status: super::Status,
    /// When the alert was detected.
    pub detected_at: DateTime<Utc>,
    /// The alert's triage deadline.
    pub due_at: DateTime<Utc>,
    /// When the escalation was emitted: the check that found the level due.
    pub escalated_at: DateTime<Utc>,
    /// Seconds past the deadline (negative for a reminder before it).
    pub overdue_seconds: i64,
    /// Where the record goes: `alerts`, `escalations` or `webhook:<name>`.
    pub destination: String,
    /// The alert's link.
    pub link: String,
    /// `SIEM ESCALATION -- <level> - [<severity>] <text> <when>. Check <link>`,
    /// where `<when>` says what happened: `overdue since <due_at>` once the
    /// deadline has passed, `paged at once, due by <due_at>` for a level that
    /// pages on detection, `due by <due_at>` for a reminder before it.
    pub message: String,
    /// The alert's own line.
    pub alert_message: String,
}

impl Escalation {
    /// The record of `alert` reaching `level`, emitted at `now`.
    pub fn new(alert: &TrackedAlert, level: &Level, now: DateTime<Utc>) -> Escalation {
        Escalation {
            record_type: "escalation".into(),
            alert_id: alert.id.clone(),
            level: level.name.clone(),
            severity: alert.severity,
            rule_id: alert.rule_id.clone(),
            rule_title: alert.rule_title.clone(),
            status: alert.status,
            detected_at: alert.detected_at,
            due_at: alert.due_at,
            escalated_at: now,
            overdue_seconds: (now - alert.due_at).num_seconds(),
            destination: level.destination.name(),
            link: alert.link.clone(),
            message: escalation_line(level, alert, now),
            alert_message: alert.message.clone(),
        }
    }
}

/// The escalation line for `alert` reaching `level` at `now`: it says
/// "overdue" only once the deadline has passed.
fn escalation_line(level: &Level, alert: &TrackedAlert, now: DateTime<Utc>) -> String {
    let mut line = format!(
        "SIEM ESCALATION -- {} - [{}] ",
        level.name,
        alert.severity.label()
    );
    crate::vocab::text::escape_into(
        &mut line,
        &crate::vocab::text::shorten(&alert.text, MAX_ESCALATED_TEXT),
    );
    line.push_str(
        match (now >= alert.due_at, level.when == When::Immediately) {
            (true, _) => " overdue since ",
            (false, true) => " paged at once, due by ",
            (false, false) => " due by ",
        },
    );
    line.push_str(
        &alert
            .due_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    line.push_str(". Check ");
    crate::vocab::text::escape_into(&mut line, &alert.link);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(name: &str, at: &str, sev: &[&str], dest: &str) -> LevelConfig {
        LevelConfig {
            level: name.into(),
            at: at.into(),
            severities: sev.iter().map(|s| s.to_string()).collect(),
            destination: dest.into(),
        }
    }

    #[test]
    fn levels_compile_with_signed_offsets_and_destinations() {
        let p = EscalationPolicy::compile(&[
            level("on-call", "immediately", &["critical"], "webhook:pager"),
            level("reminder", "-2h", &[], "alerts"),
            level("breach", "0s", &[], "escalations"),
            level("second", "+1d", &["high", "critical"], "escalations"),
        ])
        .unwrap();
        assert_eq!(p.levels[0].when, When::Immediately);
        assert_eq!(
            p.levels[0].destination,
            Destination::Webhook("pager".into())
        );
        assert_eq!(p.levels[1].when, When::FromDue(chrono::Duration::hours(-2)));
        assert_eq!(p.levels[2].when, When::FromDue(chrono::Duration::zero()));
        assert_eq!(p.levels[3].when, When::FromDue(chrono::Duration::days(1)));
        assert!(p.levels[3].applies_to(Severity::High) && !p.levels[3].applies_to(Severity::Low));
        assert!(p.levels[1].applies_to(Severity::Low));
        assert!(EscalationPolicy::compile(&default_levels()).is_ok());
    }

    #[test]
    fn bad_levels_name_the_level_and_the_problem() {
        let cases = [
            (
                level("x", "soon", &[], "alerts"),
                "is not `immediately` or a signed span",
            ),
            (
                level("x", "1h", &["urgent"], "alerts"),
                "unknown severity `urgent`",
            ),
            (level("x", "1h", &[], "pager"), "destination `pager`"),
            (level("", "1h", &[], "alerts"), "`level` is empty"),
        ];
        for (cfg, expected) in cases {
            let err = EscalationPolicy::compile(&[cfg]).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        let twice = EscalationPolicy::compile(&[
            level("a", "1h", &[], "alerts"),
            level("a", "2h", &[], "alerts"),
        ])
        .unwrap_err();
        assert!(twice.contains("used twice"), "{twice}");
    }
}
