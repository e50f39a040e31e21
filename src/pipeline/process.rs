//! The transform stage: record -> event -> rule matches -> alerts, or a dead letter.
//!
//! Plain and synchronous so it can be tested without any I/O and run on a
//! worker thread.

use super::dead_letter::DeadLetter;
use super::source::Record;
use crate::alert::{Alert, AlertBuilder};
use crate::anomaly::AnomalySet;
use crate::correlate::{CorrelationSet, Observation};
use crate::detect::{Engine, Scratch};
use crate::event::Parser;
use crate::metrics::Metrics;
use chrono::Utc;
use std::sync::Arc;

/// How one source's records are read.
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub name: String,
    pub parser: Parser,
    /// Logsource tags the source declares for all its events.
    pub tags: Vec<(String, String)>,
    /// Events, triage updates or alert records.
    pub records: crate::config::RecordKind,
    /// The silent-source watches this source's events count for.
    pub watches: crate::incident::silence::SourceWatches,
}

/// The latest event time per silence watch index.
pub type SeenTimes = Vec<(usize, chrono::DateTime<Utc>)>;

/// What processing a record produced.
#[derive(Debug, Clone)]
pub enum Output {
    Alert(Box<Alert>),
    DeadLetter(Box<DeadLetter>),
    /// A rule match for a correlation rule, decided later on the ordered stage.
    Observation(Box<Observation>),
    /// A match of an anomaly job's detection, bucketed on the ordered stage.
    Sample(Box<crate::anomaly::Sample>),
    /// A triage update, applied by the incident desk on the ordered stage.
    Triage(Box<super::TriageInput>),
    /// An alert record read from a source, for the incident desk to track.
    Track(Box<Alert>),
}

/// Counts kept by the processor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessStats {
    pub records: u64,
    pub events: u64,
    pub parse_failures: u64,
    pub blank: u64,
    pub matches: u64,
}

impl std::ops::AddAssign for ProcessStats {
    fn add_assign(&mut self, o: ProcessStats) {
        self.records += o.records;
        self.events += o.events;
        self.parse_failures += o.parse_failures;
        self.blank += o.blank;
        self.matches += o.matches;
    }
}

/// Parses, detects and builds alerts.
pub struct Processor {
    engine: Arc<Engine>,
    alerts: AlertBuilder,
    correlations: Arc<CorrelationSet>,
    anomalies: Arc<AnomalySet>,
    sources: Vec<SourceContext>,
    metrics: Option<Arc<Metrics>>,
    scratch: Scratch,
    matched: Vec<usize>,
    observations: Vec<Observation>,
    clock: crate::clock::Clock,
    /// Since the last [`Processor::take_notes`]: the latest event time per
    /// silence watch, and overall.
    seen: SeenTimes,
    latest: Option<chrono::DateTime<Utc>>,
    pub stats: ProcessStats,
}

impl Processor {
    pub fn new(
        engine: Arc<Engine>,
        alerts: AlertBuilder,
        (correlations, anomalies): (Arc<CorrelationSet>, Arc<AnomalySet>),
        sources: Vec<SourceContext>,
        metrics: Option<Arc<Metrics>>,
        clock: crate::clock::Clock,
    ) -> Self {
        Processor {
            engine,
            alerts,
            correlations,
            anomalies,
            sources,
            metrics,
            scratch: Scratch::default(),
            matched: Vec::new(),
            observations: Vec::new(),
            clock,
            seen: Vec::new(),
            latest: None,
            stats: ProcessStats::default(),
        }
    }

    /// Processes one record, appending what it produced to `out`.
    pub fn process(&mut self, record: Record, out: &mut Vec<Output>) {
        self.stats.records += 1;
        let Some(ctx) = self.sources.get(record.source) else {
            out.push(Output::DeadLetter(Box::new(DeadLetter::new(
                format!("record from unknown source #{}", record.source),
                record.origin,
                record.ingest_time,
                &record.payload,
            ))));
            self.stats.parse_failures += 1;
            return;
        };
        if let Some(m) = &self.metrics {
            m.events_read.with_label_values(&[ctx.name.as_str()]).inc();
        }
        let text = match std::str::from_utf8(&record.payload) {
            Ok(t) => t,
            Err(e) => {
                self.dead_letter(format!("not valid UTF-8: {e}"), record, out);
                return;
            }
        };
        if text.trim().is_empty() {
            self.stats.blank += 1;
            return;
        }
        match ctx.records {
            crate::config::RecordKind::Events => {}
            crate::config::RecordKind::Triage => {
                match crate::incident::TriageUpdate::parse(text) {
                    Ok(update) => {
                        self.note_time(update.at);
                        out.push(Output::Triage(Box::new(super::TriageInput {
                            update,
                            origin: record.origin,
                            received_at: record.ingest_time,
                            payload: record.payload,
                        })))
                    }
                    Err(reason) => self.dead_letter(reason, record, out),
                }
                return;
            }
            crate::config::RecordKind::Alerts => {
                match serde_json::from_str::<Alert>(text) {
                    Ok(alert) => {
                        self.note_time(alert.detected_at);
                        out.push(Output::Track(Box::new(alert)))
                    }
                    Err(e) => self.dead_letter(format!("alert record: {e}"), record, out),
                }
                return;
            }
        }
        let event = match ctx
            .parser
            .parse(text, record.origin.clone(), record.ingest_time)
        {
            Ok(e) => e,
            Err(e) => {
                self.dead_letter(e.to_string(), record, out);
                return;
            }
        };
        self.stats.events += 1;
        if let Some(m) = &self.metrics {
            m.events_parsed
                .with_label_values(&[ctx.name.as_str()])
                .inc();
        }
        if !ctx.watches.is_empty() {
            ctx.watches.observe(&event, &mut self.seen);
        }
        self.latest = Some(self.latest.map_or(event.time, |t| t.max(event.time)));
        self.engine
            .evaluate(&event, &ctx.tags, &mut self.scratch, &mut self.matched);
        if self.matched.is_empty() {
            return;
        }
        let detected_at = self.clock.detected_at(event.time);
        for &i in &self.matched {
            // An anomaly job's detection feeds the job, never an alert.
            if self.anomalies.owns(i) {
                if let Some(sample) = self.anomalies.sample(i, &event) {
                    out.push(Output::Sample(Box::new(sample)));
                }
                continue;
            }
            let rule = &self.engine.rules()[i];
            self.stats.matches += 1;
            if let Some(m) = &self.metrics {
                let level = rule.rule.meta.level.map_or("medium", |l| l.key());
                m.rule_matches
                    .with_label_values(&[
                        rule.rule.meta.id.as_str(),
                        rule.rule.meta.title.as_str(),
                        level,
                    ])
                    .inc();
            }
            let evidence = crate::alert::alert_id(&rule.rule.meta.id, &event);
            self.correlations
                .observations(i, &event, &evidence, &mut self.observations);
            out.extend(
                self.observations
                    .drain(..)
                    .map(|o| Output::Observation(Box::new(o))),
            );
            // `generate: false` correlations keep their rules from alerting on their own.
            if self.correlations.is_silenced(i) {
                continue;
            }
            if let Some(alert) = self.alerts.static_rule(rule, &event, detected_at) {
                out.push(Output::Alert(Box::new(alert)));
            }
        }
        if let Some(m) = &self.metrics {
            m.detection_latency
                .with_label_values(&[ctx.name.as_str()])
                .observe(record.read_at.elapsed().as_secs_f64());
        }
    }

    fn note_time(&mut self, t: chrono::DateTime<Utc>) {
        self.latest = Some(self.latest.map_or(t, |l| l.max(t)));
    }

    /// What the records since the last call said about time: the latest
    /// event time per silence watch, and overall.
    pub fn take_notes(&mut self) -> (SeenTimes, Option<chrono::DateTime<Utc>>) {
        (std::mem::take(&mut self.seen), self.latest.take())
    }

    fn dead_letter(&mut self, reason: String, record: Record, out: &mut Vec<Output>) {
        self.stats.parse_failures += 1;
        if let (Some(m), Some(ctx)) = (&self.metrics, self.sources.get(record.source)) {
            m.events_failed
                .with_label_values(&[ctx.name.as_str()])
                .inc();
        }
        out.push(Output::DeadLetter(Box::new(DeadLetter::new(
            reason,
            record.origin,
            record.ingest_time,
            &record.payload,
        ))));
    }
}
