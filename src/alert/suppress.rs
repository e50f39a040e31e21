//! Suppression: the same rule and group within a window gives one alert,
//! then one update (count, last seen) instead of a flood.
//!
//! The first alert of a (rule, group) opens a window of the configured
//! length in event time. Later alerts for it inside the window are counted,
//! not sent. When the window is over (an alert newer than its end arrives,
//! or the input ends) and something was suppressed, an update is sent: the
//! first alert again, same id, with `suppressed: {count, last_seen}`, so a
//! store keyed by alert id (a compacted topic) holds the updated alert.

use super::{Alert, Suppressed};
use crate::vocab::{Span, SpanError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// The `[suppression]` configuration section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuppressionConfig {
    /// Window for every rule; `0s` (the default) turns suppression off.
    pub window: String,
    /// Per-rule windows and, for detection rules, the fields that form the group.
    pub rules: Vec<RuleSuppression>,
}

/// Suppression for one rule, named by id or title.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSuppression {
    pub rule: String,
    /// Overrides the global window (`0s` turns it off for this rule).
    pub window: Option<String>,
    /// Detection rules: fields whose values form the group (correlation
    /// rules use their own `group-by`). Empty: one group per rule.
    pub by: Vec<String>,
}

/// A bad suppression setting.
#[derive(Debug, thiserror::Error)]
#[error("suppression: window `{0}` is not a number and a unit (s, m, h, d), e.g. `1h`: {1}")]
pub struct SuppressionError(String, SpanError);

/// A window; empty or zero turns suppression off.
fn parse_window(s: &str) -> Result<Span, SuppressionError> {
    if s.trim().is_empty() {
        return Ok(Span::ZERO);
    }
    s.parse().map_err(|e| SuppressionError(s.to_string(), e))
}

/// The compiled policy: windows and group fields per rule.
#[derive(Debug, Clone, Default)]
pub struct SuppressionPolicy {
    global: Span,
    rules: HashMap<String, (Span, Vec<String>)>,
}

impl SuppressionPolicy {
    /// Compiles the `[suppression]` section; fails on a window that is not a
    /// number and a unit (`30s`, `5m`, `1h`, `1d`).
    pub fn from_config(cfg: &SuppressionConfig) -> Result<Self, SuppressionError> {
        let global = parse_window(&cfg.window)?;
        let mut rules = HashMap::new();
        for r in &cfg.rules {
            let window = match &r.window {
                Some(w) => parse_window(w)?,
                None => global,
            };
            rules.insert(r.rule.clone(), (window, r.by.clone()));
        }
        Ok(SuppressionPolicy { global, rules })
    }

    fn rule(&self, id: &str, title: &str) -> Option<&(Span, Vec<String>)> {
        self.rules.get(id).or_else(|| self.rules.get(title))
    }

    fn window(&self, id: &str, title: &str) -> Span {
        self.rule(id, title).map_or(self.global, |(w, _)| *w)
    }

    /// Fields that group a detection rule's alerts (empty when not configured).
    pub fn group_fields(&self, id: &str, title: &str) -> &[String] {
        self.rule(id, title).map_or(&[], |(_, by)| by.as_slice())
    }

    /// Whether a rule's alerts are suppressed at all (a window above zero).
    pub fn suppresses(&self, id: &str, title: &str) -> bool {
        !self.window(id, title).is_zero()
    }
}

struct Open {
    alert: Alert,
    end: DateTime<Utc>,
    count: u64,
    last_seen: DateTime<Utc>,
}

type Key = (String, Option<BTreeMap<String, String>>);

/// Suppression state, on the pipeline's ordered stage.
pub(crate) struct Suppressor {
    policy: SuppressionPolicy,
    open: HashMap<Key, Open>,
    ends: BinaryHeap<Reverse<(DateTime<Utc>, u64)>>,
    keys: HashMap<u64, Key>,
    next: u64,
}

impl Suppressor {
    pub(crate) fn new(policy: SuppressionPolicy) -> Self {
        Suppressor {
            policy,
            open: HashMap::new(),
            ends: BinaryHeap::new(),
            keys: HashMap::new(),
            next: 0,
        }
    }

    /// Offers an alert; returns what to send now (updates of closed windows first).
    pub(crate) fn offer(&mut self, alert: Alert) -> Vec<Alert> {
        let mut out = self.close_before(alert.event_time);
        let window = self.policy.window(&alert.rule.id, &alert.rule.title);
        if window.is_zero() {
            out.push(alert);
            return out;
        }
        let key: Key = (alert.rule.id.clone(), alert.group.clone());
        if let Some(open) = self.open.get_mut(&key) {
            if alert.event_time < open.end {
                open.count += 1;
                open.last_seen = open.last_seen.max(alert.event_time);
                return out;
            }
        }
        if let Some(update) = self.open.remove(&key).and_then(update_of) {
            out.push(update);
        }
        let end = window.after(alert.event_time);
        self.ends.push(Reverse((end, self.next)));
        self.keys.insert(self.next, key.clone());
        self.next += 1;
        self.open.insert(
            key,
            Open {
                alert: alert.clone(),
                end,
                count: 0,
                last_seen: alert.event_time,
            },
        );
        out.push(alert);
        out
    }

    /// End of input: every window is over.
    pub(crate) fn finish(&mut self) -> Vec<Alert> {
        self.close_before(DateTime::<Utc>::MAX_UTC)
    }

    fn close_before(&mut self, now: DateTime<Utc>) -> Vec<Alert> {
        let mut out = Vec::new();
        while let Some(Reverse((end, id))) = self.ends.peek().copied() {
            if end > now {
                break;
            }
            self.ends.pop();
            let Some(key) = self.keys.remove(&id) else {
                continue;
            };
            if self.open.get(&key).is_some_and(|o| o.end == end) {
                if let Some(update) = self.open.remove(&key).and_then(update_of) {
                    out.push(update);
                }
            }
        }
        out
    }
}

/// The update record of a window that suppressed something.
fn update_of(open: Open) -> Option<Alert> {
    if open.count == 0 {
        return None;
    }
    let mut alert = open.alert;
    alert.suppressed = Some(Suppressed {
        count: open.count,
        last_seen: open.last_seen,
    });
    // The line says so, keeping its form: "<message> (+N similar until <time>). Check <link>".
    let note = format!(
        " (+{} similar until {})",
        open.count,
        open.last_seen
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if let Some(at) = alert.message.rfind(". Check ") {
        alert.message.insert_str(at, &note);
    }
    Some(alert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertType, RuleRef, Severity, Sla};
    use crate::event::{Origin, Position};

    fn alert(rule: &str, group: &str, secs: i64) -> Alert {
        let t = DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        Alert {
            id: format!("{rule}-{group}-{secs}"),
            alert_type: AlertType::StaticRule,
            severity: Severity::High,
            score: None,
            rule: std::sync::Arc::new(RuleRef {
                id: rule.into(),
                title: format!("title {rule}"),
                level: "high".into(),
                tags: vec![],
                attack: vec![],
                references: vec![],
            }),
            message: format!(
                "SIEM ALERT -- STATIC RULE - [High] title {rule}: x. Check https://l/{secs}"
            ),
            link: String::new(),
            sla: Sla {
                policy: "static_rule".into(),
                triage_within: "1 day".parse().unwrap(),
                due_at: t,
            },
            event_time: t,
            detected_at: t,
            event: serde_json::json!({}).into(),
            source: Origin {
                source: "t".into(),
                position: Position::Line { line: 1 },
            },
            group: Some(
                [("ip".to_string(), group.to_string())]
                    .into_iter()
                    .collect(),
            ),
            suppressed: None,
            resolves: None,
        }
    }

    fn suppressor(window: &str, rules: Vec<RuleSuppression>) -> Suppressor {
        Suppressor::new(
            SuppressionPolicy::from_config(&SuppressionConfig {
                window: window.into(),
                rules,
            })
            .unwrap(),
        )
    }

    #[test]
    fn without_a_window_every_alert_passes() {
        let mut s = suppressor("0s", vec![]);
        for i in 0..3 {
            assert_eq!(s.offer(alert("r", "a", i)).len(), 1);
        }
        assert!(s.finish().is_empty());
    }

    #[test]
    fn repeats_within_the_window_become_one_update() {
        let mut s = suppressor("1h", vec![]);
        assert_eq!(s.offer(alert("r", "a", 0)).len(), 1);
        assert!(s.offer(alert("r", "a", 10)).is_empty());
        assert!(s.offer(alert("r", "a", 20)).is_empty());
        // Another group is not suppressed by the first.
        assert_eq!(s.offer(alert("r", "b", 30)).len(), 1);
        let updates = s.finish();
        assert_eq!(updates.len(), 1);
        let u = &updates[0];
        assert_eq!(u.id, "r-a-0", "the update carries the first alert's id");
        let sup = u.suppressed.as_ref().unwrap();
        assert_eq!(sup.count, 2);
        assert_eq!(
            sup.last_seen,
            DateTime::from_timestamp(1_700_000_020, 0).unwrap()
        );
        assert!(
            u.message
                .contains(" (+2 similar until 2023-11-14T22:13:40Z). Check "),
            "{}",
            u.message
        );
    }

    #[test]
    fn a_later_alert_closes_the_window_and_starts_a_new_one() {
        let mut s = suppressor("1m", vec![]);
        s.offer(alert("r", "a", 0));
        s.offer(alert("r", "a", 30));
        let out = s.offer(alert("r", "a", 90));
        // The update of the first window, then the new alert.
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].suppressed.as_ref().unwrap().count, 1);
        assert!(out[1].suppressed.is_none());
        assert_eq!(out[1].id, "r-a-90");
    }

    #[test]
    fn per_rule_windows_override_the_global_one_by_id_or_title() {
        let mut s = suppressor(
            "0s",
            vec![RuleSuppression {
                rule: "title q".into(),
                window: Some("1h".into()),
                by: vec![],
            }],
        );
        assert_eq!(s.offer(alert("r", "a", 0)).len(), 1);
        assert_eq!(
            s.offer(alert("r", "a", 1)).len(),
            1,
            "rule r is not suppressed"
        );
        assert_eq!(s.offer(alert("q", "a", 0)).len(), 1);
        assert!(
            s.offer(alert("q", "a", 1)).is_empty(),
            "rule q is, by title"
        );
    }

    #[test]
    fn bad_windows_are_errors() {
        assert!(SuppressionPolicy::from_config(&SuppressionConfig {
            window: "soon".into(),
            rules: vec![],
        })
        .is_err());
    }
}
