//! The transform stage: record -> event -> rule matches -> alerts, or a dead letter.
//!
//! Plain and synchronous so it can be tested without any I/O and run on a
//! worker thread.

use super::dead_letter::DeadLetter;
use super::kafka::progress::Progress;
use super::metrics::Metrics;
use super::reload::LiveRules;
use super::sources::{Feed, FileProgress, Record, RecordFault};
use super::writer::Processed;
use super::Rules;
use crate::alert::{Alert, AlertBuilder};
use crate::anomaly::AnomalySet;
use crate::correlate::{CorrelationSet, Observation};
use crate::detect::{Engine, Scratch};
use crate::event::Parser;
use chrono::Utc;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How one source's records are read.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The source's name ([`SourceConfig::name`](super::sources::SourceConfig::name)):
    /// the `source` label of its metrics.
    pub name: String,
    /// Parses the source's records into events.
    pub parser: Parser,
    /// Logsource tags the source declares for all its events.
    pub tags: Vec<(String, String)>,
    /// Events, triage updates or alert records.
    pub records: super::sources::RecordKind,
    /// The silent-source watches this source's events count for.
    pub watches: crate::incident::silence::SourceWatches,
}

/// The latest event time per silence watch index.
pub(crate) type SeenTimes = Vec<(usize, chrono::DateTime<Utc>)>;

/// What a batch's records said about event time.
#[derive(Debug, Default)]
pub struct TimeNotes {
    /// The latest event time per silence watch.
    pub(crate) seen: SeenTimes,
    /// The latest event time of all.
    pub latest: Option<chrono::DateTime<Utc>>,
    /// The latest event time per input: (source, partition or -1, time).
    pub by_input: Vec<(String, i32, chrono::DateTime<Utc>)>,
}

/// What processing a record produced.
#[derive(Debug, Clone)]
pub enum Output {
    /// An alert for a detection rule match, for the sinks.
    Alert(Box<Alert>),
    /// A record that could not be processed, for the dead-letter destination.
    DeadLetter(Box<DeadLetter>),
    /// A rule match for a correlation rule, decided later on the ordered stage.
    Observation(Box<Observation>),
    /// A match of an anomaly job's detection, bucketed on the ordered stage.
    Sample(Box<crate::anomaly::Sample>),
    /// A triage update, applied by the incident desk on the ordered stage.
    Triage(Box<super::TriageInput>),
    /// An alert record read from a source, for the incident desk to track.
    Track(Box<Alert>),
    /// A record of the repartition topic for the owner of its partition.
    Exchanged(Box<(i32, super::exchange::Exchanged)>),
}

/// Counts kept by the processor. Every record is exactly one of an
/// event, a parse failure (dead-lettered) or blank.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessStats {
    /// Records processed.
    pub records: u64,
    /// Records that became events (triage updates and alert records included).
    pub events: u64,
    /// Records dead-lettered: unparsable, too long, cut short, not UTF-8, or panicked.
    pub parse_failures: u64,
    /// Records that were empty or only whitespace.
    pub blank: u64,
    /// Detection rule matches; an anomaly job's detections are not counted.
    pub matches: u64,
    /// Records whose processing panicked (counted in `parse_failures` too:
    /// they are dead-lettered with reason `internal error`).
    pub internal_errors: u64,
}

impl std::ops::AddAssign for ProcessStats {
    fn add_assign(&mut self, o: ProcessStats) {
        self.records += o.records;
        self.events += o.events;
        self.parse_failures += o.parse_failures;
        self.blank += o.blank;
        self.matches += o.matches;
        self.internal_errors += o.internal_errors;
    }
}

/// The counts per input (file path, `stdin`, or topic).
pub(crate) type StatsByInput = std::collections::HashMap<String, ProcessStats>;

/// The fingerprint buffer keeps at most this much room between events.
const KEPT_FINGERPRINT_CAPACITY: usize = 1 << 16;

/// Parses, detects and builds alerts.
pub struct Processor {
    engine: Arc<Engine>,
    alerts: AlertBuilder,
    correlations: Arc<CorrelationSet>,
    anomalies: Arc<AnomalySet>,
    sources: Vec<SourceContext>,
    metrics: Option<Arc<Metrics>>,
    scratch: Scratch,
    rule_refs: super::alerts::RuleRefs,
    matched: Vec<usize>,
    observations: Vec<Observation>,
    /// The current event's fingerprint, in a buffer kept from event to event.
    fingerprint: Vec<u8>,
    clock: crate::vocab::clock::Clock,
    /// Since the last [`Processor::take_notes`]: the latest event time per
    /// silence watch, and overall.
    seen: SeenTimes,
    latest: Option<chrono::DateTime<Utc>>,
    /// Since the last [`Processor::take_notes`]: the newest event time per
    /// input (topic and partition, or file), which scale-out sends on as
    /// progress (`correlate::exchange`).
    latest_by_input: Vec<(String, i32, chrono::DateTime<Utc>)>,
    /// The counts over all inputs.
    pub stats: ProcessStats,
    /// The same counts per input.
    pub by_input: StatsByInput,
    /// Test builds only: a record containing this text panics, so tests
    /// can check that a panic is contained (`TOCSIN_TEST_PANIC_ON`).
    #[cfg(debug_assertions)]
    panic_marker: Option<String>,
}

impl Processor {
    /// A processor for `sources`, indexed by [`Record::source`].
    /// Without `metrics` nothing is exported; the counts are still kept.
    pub fn new(
        engine: Arc<Engine>,
        alerts: AlertBuilder,
        (correlations, anomalies): (Arc<CorrelationSet>, Arc<AnomalySet>),
        sources: Vec<SourceContext>,
        metrics: Option<Arc<Metrics>>,
        clock: crate::vocab::clock::Clock,
    ) -> Self {
        Processor {
            engine,
            alerts,
            correlations,
            anomalies,
            sources,
            metrics,
            scratch: Scratch::default(),
            fingerprint: Vec::new(),
            rule_refs: Default::default(),
            matched: Vec::new(),
            observations: Vec::new(),
            clock,
            seen: Vec::new(),
            latest: None,
            latest_by_input: Vec::new(),
            stats: ProcessStats::default(),
            by_input: StatsByInput::new(),
            #[cfg(debug_assertions)]
            panic_marker: std::env::var("TOCSIN_TEST_PANIC_ON")
                .ok()
                .filter(|m| !m.is_empty()),
        }
    }

    /// Detects with `rules` from now on (after a reload); nothing to do
    /// when they are the ones in use.
    pub(super) fn use_rules(&mut self, rules: &Rules) {
        if !Arc::ptr_eq(&self.engine, &rules.engine) {
            self.engine = rules.engine.clone();
            self.scratch = Scratch::default();
            self.rule_refs.clear();
        }
        self.correlations = rules.correlations.clone();
        self.anomalies = rules.anomalies.clone();
    }

    /// Processes one record, appending what it produced to `out`.
    ///
    /// A panic while processing is contained here: whatever the record
    /// produced is discarded, the worker's scratch state is rebuilt, and the
    /// record is dead-lettered with reason `internal error: ...` (the panic
    /// hook has logged the backtrace). One bad record never stops detection.
    pub fn process(&mut self, record: &Record, out: &mut Vec<Output>) {
        let before = (out.len(), self.stats, self.observations.len());
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.process_record(record, out)
        }));
        let counted = match outcome {
            Ok(counted) => counted,
            Err(panic) => {
                let what = panic_message(panic.as_ref());
                out.truncate(before.0);
                self.stats = before.1;
                self.stats.records += 1;
                self.observations.truncate(before.2);
                self.scratch = Scratch::default();
                self.matched.clear();
                self.stats.internal_errors += 1;
                if let Some(m) = &self.metrics {
                    m.internal_errors.with_label_values(&["detect"]).inc();
                }
                self.dead_letter(format!("internal error: {what}"), record, out);
                Counted::DeadLetter
            }
        };
        let input = match self.by_input.get_mut(&record.origin.source) {
            Some(stats) => stats,
            None => self
                .by_input
                .entry(record.origin.source.clone())
                .or_default(),
        };
        input.records += 1;
        match counted {
            Counted::Event => input.events += 1,
            Counted::DeadLetter => input.parse_failures += 1,
            Counted::Blank => input.blank += 1,
        }
    }

    fn process_record(&mut self, record: &Record, out: &mut Vec<Output>) -> Counted {
        self.stats.records += 1;
        let Some(ctx) = self.sources.get(record.source) else {
            self.dead_letter(
                format!("record from unknown source #{}", record.source),
                record,
                out,
            );
            return Counted::DeadLetter;
        };
        #[cfg(debug_assertions)]
        if let Some(marker) = &self.panic_marker {
            if memchr::memmem::find(&record.payload, marker.as_bytes()).is_some() {
                panic!("test hook: the record contains {marker:?}");
            }
        }
        if let Some(m) = &self.metrics {
            let source = [ctx.name.as_str()];
            m.events_read.with_label_values(&source).inc();
            let bytes = match &record.fault {
                Some(RecordFault::TooLong { bytes, .. }) => *bytes,
                _ => record.payload.len() as u64,
            };
            m.bytes_read.with_label_values(&source).inc_by(bytes);
        }
        if let Some(fault) = &record.fault {
            let reason = match fault {
                RecordFault::TooLong { bytes, .. } => format!(
                    "record of {bytes} bytes is longer than engine.max_record_bytes; its first {} bytes are kept",
                    record.payload.len()
                ),
                RecordFault::Unfinished(why) => why.clone(),
            };
            if let (Some(m), RecordFault::TooLong { .. }) = (&self.metrics, fault) {
                m.limit_exceeded
                    .with_label_values(&["max_record_bytes"])
                    .inc();
            }
            self.dead_letter(reason, record, out);
            return Counted::DeadLetter;
        }
        let text = match std::str::from_utf8(&record.payload) {
            Ok(t) => t,
            Err(e) => {
                self.dead_letter(format!("not valid UTF-8: {e}"), record, out);
                return Counted::DeadLetter;
            }
        };
        if text.trim().is_empty() {
            self.stats.blank += 1;
            return Counted::Blank;
        }
        match ctx.records {
            super::sources::RecordKind::Events => {}
            super::sources::RecordKind::Triage => {
                return match crate::incident::TriageUpdate::parse(text) {
                    Ok(update) => {
                        self.note_time(update.at);
                        self.stats.events += 1;
                        out.push(Output::Triage(Box::new(super::TriageInput {
                            update,
                            origin: record.origin.clone(),
                            received_at: record.ingest_time,
                            payload: record.payload.clone(),
                        })));
                        Counted::Event
                    }
                    Err(reason) => {
                        self.dead_letter(reason, record, out);
                        Counted::DeadLetter
                    }
                };
            }
            super::sources::RecordKind::Matches => {
                let partition = match record.origin.position {
                    crate::event::Position::Offset { partition, .. } => partition,
                    crate::event::Position::Line { .. } => 0,
                };
                return match serde_json::from_str(text) {
                    Ok(exchanged) => {
                        out.push(Output::Exchanged(Box::new((partition, exchanged))));
                        Counted::Event
                    }
                    Err(e) => {
                        self.dead_letter(format!("repartition record: {e}"), record, out);
                        Counted::DeadLetter
                    }
                };
            }
            super::sources::RecordKind::Alerts => {
                return match serde_json::from_str::<Alert>(text) {
                    Ok(alert) => {
                        self.note_time(alert.detected_at);
                        self.stats.events += 1;
                        out.push(Output::Track(Box::new(alert)));
                        Counted::Event
                    }
                    Err(e) => {
                        self.dead_letter(format!("alert record: {e}"), record, out);
                        Counted::DeadLetter
                    }
                };
            }
        }
        let event = match ctx
            .parser
            .parse(text, record.origin.clone(), record.ingest_time)
        {
            Ok(e) => e,
            Err(e) => {
                self.dead_letter(e.to_string(), record, out);
                return Counted::DeadLetter;
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
        note_input_time(&mut self.latest_by_input, &event.origin, event.time);
        self.engine
            .evaluate(&event, &ctx.tags, &mut self.scratch, &mut self.matched);
        if self.matched.is_empty() {
            return Counted::Event;
        }
        let detected_at = self.clock.detected_at(event.time);
        // Alert ids hash the event's content, and alerts carry it as it
        // arrived: both taken once, for all its matches.
        let mut event_key = None;
        let mut evidence = None;
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
            let id = event_key
                .get_or_insert_with(|| {
                    self.fingerprint.clear();
                    event.fingerprint_into(&mut self.fingerprint);
                    let key = crate::alert::EventKey::of(&self.fingerprint);
                    // An outsized event's room is not kept for the next.
                    self.fingerprint.shrink_to(KEPT_FINGERPRINT_CAPACITY);
                    key
                })
                .alert_id(&rule.rule.meta.id);
            self.correlations
                .observations(i, &event, &id, &mut self.observations);
            out.extend(
                self.observations
                    .drain(..)
                    .map(|o| Output::Observation(Box::new(o))),
            );
            // `generate: false` correlations keep their rules from alerting on their own.
            if self.correlations.is_silenced(i) {
                continue;
            }
            let evidence = evidence
                .get_or_insert_with(|| super::alerts::evidence_of(&event, text))
                .clone();
            if let Some(alert) = super::alerts::rule_match(
                (&self.alerts, &mut self.rule_refs),
                (i, rule),
                &event,
                (id, evidence),
                detected_at,
            ) {
                out.push(Output::Alert(Box::new(alert)));
            }
        }
        if let Some(m) = &self.metrics {
            m.detection_latency
                .with_label_values(&[ctx.name.as_str()])
                .observe(record.read_at.elapsed().as_secs_f64());
        }
        Counted::Event
    }

    fn note_time(&mut self, t: chrono::DateTime<Utc>) {
        self.latest = Some(self.latest.map_or(t, |l| l.max(t)));
    }

    /// What the records since the last call said about time: the latest
    /// event time per silence watch, overall, and per input.
    pub fn take_notes(&mut self) -> TimeNotes {
        TimeNotes {
            seen: std::mem::take(&mut self.seen),
            latest: self.latest.take(),
            by_input: std::mem::take(&mut self.latest_by_input),
        }
    }

    fn dead_letter(&mut self, reason: String, record: &Record, out: &mut Vec<Output>) {
        self.stats.parse_failures += 1;
        if let (Some(m), Some(ctx)) = (&self.metrics, self.sources.get(record.source)) {
            m.events_failed
                .with_label_values(&[ctx.name.as_str()])
                .inc();
        }
        let mut letter = DeadLetter::new(
            reason,
            record.origin.clone(),
            record.ingest_time,
            &record.payload,
        );
        if let Some(RecordFault::TooLong { bytes, sha256 }) = &record.fault {
            letter.whole = Some(super::dead_letter::Whole::of(*bytes, sha256));
        }
        out.push(Output::DeadLetter(Box::new(letter)));
    }
}

/// Notes an event time for its input (topic and partition, or -1 for a file).
fn note_input_time(
    by_input: &mut Vec<(String, i32, chrono::DateTime<Utc>)>,
    origin: &crate::event::Origin,
    t: chrono::DateTime<Utc>,
) {
    let partition = match origin.position {
        crate::event::Position::Offset { partition, .. } => partition,
        crate::event::Position::Line { .. } => -1,
    };
    // A batch comes from one or a few inputs: a short list beats a map.
    match by_input
        .iter_mut()
        .find(|(source, p, _)| *p == partition && *source == origin.source)
    {
        Some((_, _, latest)) => *latest = (*latest).max(t),
        None => by_input.push((origin.source.clone(), partition, t)),
    }
}

/// The work queue detection workers share: the feed and the sequence
/// number the next batch gets.
pub(super) type WorkQueue = std::sync::Mutex<(mpsc::Receiver<Feed>, u64)>;

/// A detection worker: takes batches in turn until the feed ends or the
/// writer stops taking results. Per-record panics are contained by
/// [`Processor::process`]; one escaping here fails the stage.
///
/// The rule set is taken with each batch, under the lock that numbers it:
/// sets change in input order, and a batch is detected with one set.
pub(super) fn detect(
    queue: &WorkQueue,
    output: &mpsc::Sender<(u64, Processed)>,
    processor: &mut Processor,
    live: &LiveRules,
) {
    loop {
        let next = match queue.lock() {
            Ok(mut q) => q.0.blocking_recv().map(|feed| {
                let seq = q.1;
                q.1 += 1;
                (seq, feed, live.load())
            }),
            Err(_) => None,
        };
        let Some((seq, feed, rules)) = next else {
            break;
        };
        processor.use_rules(&rules);
        let processed = match feed {
            Feed::Records(batch) => {
                let mut progress = Progress::default();
                let mut files = FileProgress::default();
                let records = batch.len();
                let mut outputs = Vec::new();
                for record in &batch {
                    progress.advance(&record.origin);
                    if let Some(mark) = &record.mark {
                        files.advance(mark);
                    }
                    processor.process(record, &mut outputs);
                }
                Processed {
                    rules,
                    outputs,
                    progress,
                    files,
                    records,
                    barrier: None,
                    times: processor.take_notes(),
                }
            }
            Feed::Barrier(b) => Processed {
                rules,
                outputs: Vec::new(),
                progress: Progress::default(),
                files: FileProgress::default(),
                records: 0,
                barrier: Some(b),
                times: TimeNotes::default(),
            },
        };
        if output.blocking_send((seq, processed)).is_err() {
            break;
        }
    }
}

/// What a record counted as.
enum Counted {
    Event,
    DeadLetter,
    Blank,
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
