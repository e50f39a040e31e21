//! Silent log sources: missing data is a defect to raise. Each watched
//! source (a pipeline source such as a topic, a host, or a logsource) has a
//! longest expected silence; past it an alert is raised, and when events
//! come back a recovery record follows.

use crate::alert::{Draft, Evidence, RuleRef};
use crate::event::{Event, Origin, Position};
use crate::vocab::id::stable_id;
use crate::vocab::{AlertType, Severity, Span};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One watched source (`[[incident.silence]]`): exactly one of `source`,
/// `host` or `logsource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceConfig {
    /// A pipeline source by name: the Kafka topic, or a file source's name.
    #[serde(default)]
    pub source: Option<String>,
    /// A host, as named in the events' host fields (`host`, `hostname`,
    /// `host.name`, `Computer`), compared case-insensitively.
    #[serde(default)]
    pub host: Option<String>,
    /// Logsource tags a source declares, e.g. `{ product = "linux", service = "sshd" }`.
    #[serde(default)]
    pub logsource: Option<crate::vocab::LogsourceTags>,
    /// Longest expected silence: `15m`, `1h`, `1d`.
    pub max_silence: String,
    /// Severity of the silence alert.
    #[serde(default = "default_severity")]
    pub severity: String,
}

fn default_severity() -> String {
    "high".into()
}

/// Event fields that name the host an event came from.
const HOST_FIELDS: &[&str] = &["host", "hostname", "host.name", "Computer"];

#[derive(Debug, Clone, PartialEq)]
enum Key {
    Source(String),
    Host(String),
    Logsource(Vec<(String, String)>),
}

/// A compiled watch.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    key: Key,
    /// How the source is named in alerts: `source=auth.log`, `host=web-1`,
    /// `logsource=product:linux,service:sshd`.
    pub name: String,
    /// No event for longer than this raises the silence alert.
    pub max_silence: Span,
    /// Severity of the silence alert (`high` unless configured).
    pub severity: Severity,
}

/// Compiles the watches; the error names the entry and what is wrong.
pub(crate) fn compile(configs: &[SilenceConfig]) -> Result<Vec<Watch>, String> {
    configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let context = |what: &str| format!("incident.silence[{i}]: {what}");
            let tags = c.logsource.as_ref().map(|l| l.pairs());
            let (key, name) = match (&c.source, &c.host, tags) {
                (Some(s), None, None) => (Key::Source(s.clone()), format!("source={s}")),
                (None, Some(h), None) => (Key::Host(h.to_lowercase()), format!("host={h}")),
                (None, None, Some(tags)) if !tags.is_empty() => {
                    let shown: Vec<String> = tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    (
                        Key::Logsource(tags),
                        format!("logsource={}", shown.join(",")),
                    )
                }
                _ => return Err(context(
                    "name exactly one of `source`, `host` or `logsource` (with at least one tag)",
                )),
            };
            let span = c
                .max_silence
                .parse::<Span>()
                .and_then(|s| s.nonzero("max_silence"))
                .map_err(|e| {
                    context(&format!(
                        "max_silence `{}` is not a span like 15m, 1h, 1d ({e})",
                        c.max_silence
                    ))
                })?;
            let severity = Severity::from_sigma_level(&c.severity)
                .ok_or_else(|| context(&format!("unknown severity `{}`", c.severity)))?;
            Ok(Watch {
                key,
                name,
                max_silence: span,
                severity,
            })
        })
        .collect()
}

/// Which watches an event counts for. Built once per pipeline source.
#[derive(Debug, Clone, Default)]
pub struct SourceWatches {
    /// Watches every event of the source counts for.
    always: Vec<usize>,
    /// Host watches: (index, lowercase host).
    hosts: Vec<(usize, String)>,
}

impl SourceWatches {
    pub fn new(watches: &[Watch], source_name: &str, source_tags: &[(String, String)]) -> Self {
        let mut out = SourceWatches::default();
        for (i, w) in watches.iter().enumerate() {
            match &w.key {
                Key::Source(s) if s == source_name => out.always.push(i),
                Key::Logsource(tags) if tags.iter().all(|t| source_tags.contains(t)) => {
                    out.always.push(i)
                }
                Key::Host(h) => out.hosts.push((i, h.clone())),
                _ => {}
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.always.is_empty() && self.hosts.is_empty()
    }

    /// Records that `event` was seen: the latest time per watch index.
    pub fn observe(&self, event: &Event, seen: &mut Vec<(usize, DateTime<Utc>)>) {
        for &i in &self.always {
            note(seen, i, event.time);
        }
        if self.hosts.is_empty() {
            return;
        }
        for field in HOST_FIELDS {
            let Some(host) = event.get(field).and_then(crate::event::scalar_text) else {
                continue;
            };
            for (i, h) in &self.hosts {
                if host.eq_ignore_ascii_case(h) {
                    note(seen, *i, event.time);
                }
            }
        }
    }
}

fn note(seen: &mut Vec<(usize, DateTime<Utc>)>, index: usize, time: DateTime<Utc>) {
    match seen.iter_mut().find(|(i, _)| *i == index) {
        Some((_, t)) => *t = (*t).max(time),
        None => seen.push((index, time)),
    }
}

/// A source that went quiet, or came back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SilenceChange {
    Silent {
        watch: usize,
        /// The last event's time, if any was ever seen.
        last_event: Option<DateTime<Utc>>,
        since: DateTime<Utc>,
    },
    Back {
        watch: usize,
        last_event: Option<DateTime<Utc>>,
        resumed_at: DateTime<Utc>,
        /// The silence alert this recovery closes.
        silence_started: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default)]
struct WatchState {
    /// The latest event time seen.
    last_event: Option<DateTime<Utc>>,
    /// When the engine's clock last saw an event (silence is measured from it).
    last_seen_at: Option<DateTime<Utc>>,
    /// Set while the source is reported silent: when the silence began.
    silent_since: Option<DateTime<Utc>>,
}

/// The silence state of every watch.
#[derive(Debug, Clone)]
pub(crate) struct SilenceWatch {
    watches: Vec<Watch>,
    states: Vec<WatchState>,
    /// When watching began (the first check): a source never heard from is
    /// silent since then. Set lazily, so an event-time clock has moved to
    /// the stream's time first.
    started: Option<DateTime<Utc>>,
}

impl SilenceWatch {
    pub(crate) fn new(watches: Vec<Watch>) -> SilenceWatch {
        let states = vec![WatchState::default(); watches.len()];
        SilenceWatch {
            watches,
            states,
            started: None,
        }
    }

    pub(crate) fn watches(&self) -> &[Watch] {
        &self.watches
    }

    /// Events were seen for watch `index`, the latest at `event_time`, at
    /// clock time `now`. A silent source comes back.
    pub(crate) fn seen(
        &mut self,
        index: usize,
        event_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<SilenceChange> {
        let state = self.states.get_mut(index)?;
        let previous = state.last_event;
        state.last_event = Some(previous.map_or(event_time, |t| t.max(event_time)));
        state.last_seen_at = Some(now);
        let since = state.silent_since.take()?;
        Some(SilenceChange::Back {
            watch: index,
            last_event: previous,
            resumed_at: event_time.max(previous.unwrap_or(event_time)),
            silence_started: since,
        })
    }

    /// Sources silent for longer than their maximum at `now`, each reported once per silence.
    pub(crate) fn check(&mut self, now: DateTime<Utc>) -> Vec<SilenceChange> {
        let mut out = Vec::new();
        let started = *self.started.get_or_insert(now);
        for (i, (w, s)) in self.watches.iter().zip(&mut self.states).enumerate() {
            if s.silent_since.is_some() {
                continue;
            }
            let quiet_from = s.last_seen_at.unwrap_or(started);
            if now > w.max_silence.after(quiet_from) {
                s.silent_since = Some(quiet_from);
                out.push(SilenceChange::Silent {
                    watch: i,
                    last_event: s.last_event,
                    since: quiet_from,
                });
            }
        }
        out
    }
}

/// The rule behind silent-source alerts and their recovery records.
pub(crate) const SILENCE_RULE_ID: &str = "tocsin-source-silence";

impl Watch {
    /// The alert for this source silent longer than its maximum:
    /// `Log source silent: source=auth.log, last event <t>, silent longer than 15m`.
    pub fn silent_draft(
        &self,
        last_event: Option<DateTime<Utc>>,
        since: DateTime<Utc>,
        detected_at: DateTime<Utc>,
    ) -> Draft {
        let last = last_event.map_or_else(
            || format!("none since watching began at {}", rfc3339(since)),
            rfc3339,
        );
        let text = format!(
            "Log source silent: {}, last event {last}, silent longer than {}",
            self.name, self.max_silence
        );
        self.draft(
            silence_alert_id(&self.name, since),
            text,
            (self.severity, since),
            detected_at,
            last_event,
        )
    }

    /// The recovery record of this source's silence, closing its alert.
    pub fn back_draft(
        &self,
        silence_started: DateTime<Utc>,
        resumed_at: DateTime<Utc>,
        detected_at: DateTime<Utc>,
    ) -> Draft {
        let text = format!(
            "Log source back: {}, events resumed at {} after silence since {}",
            self.name,
            rfc3339(resumed_at),
            rfc3339(silence_started)
        );
        let id = stable_id(&format!(
            "{SILENCE_RULE_ID}\nback\n{}\n{}",
            self.name,
            silence_started.timestamp()
        ));
        let mut draft = self.draft(
            id,
            text,
            (Severity::Informational, silence_started),
            detected_at,
            Some(resumed_at),
        );
        draft.resolves = Some(silence_alert_id(&self.name, silence_started));
        draft
    }

    fn draft(
        &self,
        id: String,
        text: String,
        (severity, since): (Severity, DateTime<Utc>),
        detected_at: DateTime<Utc>,
        last_event: Option<DateTime<Utc>>,
    ) -> Draft {
        Draft {
            alert_type: AlertType::StaticRule,
            severity,
            score: None,
            rule: std::sync::Arc::new(RuleRef {
                id: SILENCE_RULE_ID.into(),
                title: "Log source silent".into(),
                level: severity.key().to_string(),
                tags: vec!["tocsin.source-health".into()],
                ..RuleRef::default()
            }),
            id,
            text,
            event_time: last_event.unwrap_or(since),
            detected_at,
            event: Evidence::from(serde_json::json!({
                "silence": {
                    "source": self.name,
                    "last_event": last_event,
                    "silent_since": since,
                    "max_silence_seconds": self.max_silence.as_secs(),
                }
            })),
            source: Origin {
                source: "tocsin".into(),
                position: Position::Line { line: 0 },
            },
            group: Some(
                [("source".to_string(), self.name.clone())]
                    .into_iter()
                    .collect(),
            ),
            resolves: None,
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The id of the silence alert for a source silent since `since`: its
/// recovery record names it without having to remember it.
fn silence_alert_id(source: &str, since: DateTime<Utc>) -> String {
    stable_id(&format!(
        "{SILENCE_RULE_ID}\n{source}\n{}",
        since.timestamp()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("test instant")
    }

    fn cfg(source: Option<&str>, host: Option<&str>, max: &str) -> SilenceConfig {
        SilenceConfig {
            source: source.map(str::to_string),
            host: host.map(str::to_string),
            logsource: None,
            max_silence: max.into(),
            severity: "high".into(),
        }
    }

    #[test]
    fn a_quiet_source_is_reported_once_and_its_return_once() {
        let watches = compile(&[cfg(Some("auth"), None, "15m")]).unwrap();
        let mut w = SilenceWatch::new(watches);
        assert!(w.check(at("2026-11-20T10:00:00Z")).is_empty());
        assert!(w
            .seen(0, at("2026-11-20T10:01:00Z"), at("2026-11-20T10:01:00Z"))
            .is_none());
        assert!(
            w.check(at("2026-11-20T10:16:00Z")).is_empty(),
            "exactly 15m is allowed"
        );
        assert_eq!(
            w.check(at("2026-11-20T10:16:01Z")),
            vec![SilenceChange::Silent {
                watch: 0,
                last_event: Some(at("2026-11-20T10:01:00Z")),
                since: at("2026-11-20T10:01:00Z"),
            }]
        );
        assert!(
            w.check(at("2026-11-20T12:00:00Z")).is_empty(),
            "once per silence"
        );
        let back = w.seen(0, at("2026-11-20T12:30:00Z"), at("2026-11-20T12:30:00Z"));
        assert!(
            matches!(back, Some(SilenceChange::Back { resumed_at, .. }) if resumed_at == at("2026-11-20T12:30:00Z"))
        );
        assert!(w.check(at("2026-11-20T12:40:00Z")).is_empty());
    }

    #[test]
    fn a_source_never_heard_from_is_silent_from_the_start() {
        let watches = compile(&[cfg(None, Some("web-1"), "1h")]).unwrap();
        let mut w = SilenceWatch::new(watches);
        assert!(w.check(at("2026-11-20T10:00:00Z")).is_empty());
        let silent = w.check(at("2026-11-20T11:00:01Z"));
        assert!(matches!(
            silent[0],
            SilenceChange::Silent {
                last_event: None,
                ..
            }
        ));
    }

    #[test]
    fn events_count_for_their_source_host_and_declared_logsource() {
        let mut ls = cfg(None, None, "1h");
        ls.logsource = Some(crate::vocab::LogsourceTags {
            product: Some("linux".into()),
            ..Default::default()
        });
        let watches = compile(&[
            cfg(Some("auth"), None, "1h"),
            cfg(None, Some("WEB-1"), "1h"),
            ls,
        ])
        .unwrap();
        let tags = vec![("product".to_string(), "linux".to_string())];
        let sw = SourceWatches::new(&watches, "auth", &tags);
        let event = crate::event::parse::Parser::default()
            .parse(
                r#"{"host":"web-1","@timestamp":"2026-11-20T10:00:00Z"}"#,
                crate::event::Origin {
                    source: "auth".into(),
                    position: crate::event::Position::Line { line: 1 },
                },
                Utc::now(),
            )
            .unwrap();
        let mut seen = Vec::new();
        sw.observe(&event, &mut seen);
        seen.sort();
        let indexes: Vec<usize> = seen.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, vec![0, 1, 2]);
        assert!(SourceWatches::new(&watches, "other", &[]).hosts.len() == 1);
    }

    #[test]
    fn bad_watches_are_named() {
        let err = compile(&[cfg(Some("a"), Some("b"), "1h")]).unwrap_err();
        assert!(err.contains("exactly one of"), "{err}");
        let err = compile(&[cfg(Some("a"), None, "soon")]).unwrap_err();
        assert!(err.contains("max_silence `soon`"), "{err}");
    }
}
