//! The streaming pipeline: sources -> parse/detect/alert -> sinks.
//!
//! Stages are connected by bounded channels (backpressure, no unbounded
//! buffering). Shutdown stops the sources; everything already read is still
//! processed and flushed before `run` returns.

mod alerts;
mod anomaly_stage;
pub mod dead_letter;
mod incident_stage;
pub mod kafka;
pub mod process;
pub mod sink;
pub mod source;
pub mod triage_http;
pub mod webhook;

use crate::alert::AlertBuilder;
use crate::config::{DeadLetterConfig, SinkConfig, SourceConfig};
use crate::detect::Engine;
use crate::event::Parser;
use crate::metrics::Metrics;
use crate::vocab::Severity;
pub use anomaly_stage::{load_models, save_models};
use incident_stage::IncidentStage;
pub use incident_stage::{IncidentSettings, TriageInput, TriageRequest};
use kafka::commit::{Checkpoint, Checkpointer, Committer};
use kafka::producer::Pending;
use kafka::progress::Progress;
use kafka::KafkaSettings;
use process::{Output, ProcessStats, Processor, SourceContext};
use sink::{AlertSink, DeadLetterSink, SinkError, WebhookTasks};
use source::Feed;
use source::SourceError;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// A shutdown request shared by every stage.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<(AtomicBool, Notify)>);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn trigger(&self) {
        self.0 .0.store(true, Ordering::SeqCst);
        self.0 .1.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.0 .0.load(Ordering::SeqCst)
    }

    /// Resolves once shutdown is triggered.
    pub async fn wait(&self) {
        loop {
            let notified = self.0 .1.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

/// Errors that stop the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaError),
    #[error("pipeline stage failed: {0}")]
    Stage(String),
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    pub process: ProcessStats,
    /// The same counts per input (file path, `stdin`, topic), by name.
    pub inputs: BTreeMap<String, ProcessStats>,
    /// Inputs that could not be opened or read to their end; the others
    /// were read, and so were the lines of these before the failure.
    pub input_errors: Vec<String>,
    pub alerts_by_severity: BTreeMap<Severity, u64>,
    pub dead_letters: u64,
    pub elapsed: Duration,
}

impl RunStats {
    pub fn alerts(&self) -> u64 {
        self.alerts_by_severity.values().sum()
    }

    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.process.records as f64 / secs
        } else {
            0.0
        }
    }
}

/// The writer's alert side: suppression, then every sink, counted.
struct AlertOutput {
    sinks: Vec<AlertSink>,
    suppressor: crate::alert::suppress::Suppressor,
    by_severity: BTreeMap<Severity, u64>,
    metrics: Option<Arc<Metrics>>,
    /// Kafka deliveries since the last checkpoint.
    pending: Pending,
    /// The incident desk, when alert lifecycle tracking is on.
    incident: Option<IncidentStage>,
    clock: crate::vocab::clock::Clock,
}

impl AlertOutput {
    /// Sends an alert through suppression.
    fn send(&mut self, alert: crate::alert::Alert) -> Result<(), SinkError> {
        for a in self.suppressor.offer(alert) {
            self.write(&a)?;
        }
        Ok(())
    }

    fn write(&mut self, alert: &crate::alert::Alert) -> Result<(), SinkError> {
        for sink in &mut self.sinks {
            sink.write(alert, &mut self.pending)?;
        }
        if let Some(incident) = &mut self.incident {
            incident.track(alert);
        }
        *self.by_severity.entry(alert.severity).or_default() += 1;
        if let Some(m) = &self.metrics {
            m.alerts
                .with_label_values(&[alert.alert_type.as_str(), alert.severity.key()])
                .inc();
        }
        Ok(())
    }

    /// Turns correlation firings into alerts and sends them.
    fn send_firings(
        &mut self,
        firings: Vec<crate::correlate::Firing>,
        builder: &AlertBuilder,
        set: &crate::correlate::CorrelationSet,
    ) -> Result<(), SinkError> {
        for firing in firings {
            let Some(corr) = set.get(firing.correlation) else {
                continue;
            };
            if let Some(m) = &self.metrics {
                m.correlation_firings
                    .with_label_values(&[corr.rule.meta.id.as_str()])
                    .inc();
            }
            let detected_at = self.clock.detected_at(firing.last);
            if let Some(alert) = alerts::correlation(builder, corr, &firing, detected_at) {
                self.send(alert)?;
            }
        }
        Ok(())
    }

    /// Turns anomalies its job's rule let through into alerts and sends them.
    fn send_anomalies(
        &mut self,
        anomalies: Vec<crate::anomaly::Anomaly>,
        builder: &AlertBuilder,
        set: &crate::anomaly::AnomalySet,
    ) -> Result<(), SinkError> {
        for anomaly in anomalies {
            if let Some(job) = set.get(anomaly.job) {
                let detected_at = self.clock.detected_at(anomaly.bucket_end);
                self.send(alerts::anomaly(builder, job, &anomaly, detected_at))?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        for sink in &mut self.sinks {
            sink.flush()?;
        }
        if let Some(incident) = &mut self.incident {
            incident.sync()?;
        }
        Ok(())
    }

    /// Deadlines and silences: emits what is due and persists the desk's changes.
    fn tick_incidents(&mut self, builder: &AlertBuilder) -> Result<(), SinkError> {
        let Some(incident) = &mut self.incident else {
            return Ok(());
        };
        let tick = incident.tick(builder);
        for alert in tick.alerts {
            self.write(&alert)?;
        }
        for (escalation, destination) in tick.escalations {
            self.route(&escalation, &destination)?;
        }
        self.persist_incidents()
    }

    fn persist_incidents(&mut self) -> Result<(), SinkError> {
        match &mut self.incident {
            Some(incident) => incident.persist(&mut self.pending),
            None => Ok(()),
        }
    }

    /// Alerts a silence watch raised as events came back.
    fn silence_seen(
        &mut self,
        seen: &[(usize, chrono::DateTime<chrono::Utc>)],
        builder: &AlertBuilder,
    ) -> Result<(), SinkError> {
        let Some(incident) = &mut self.incident else {
            return Ok(());
        };
        for alert in incident.seen(seen, builder) {
            self.write(&alert)?;
        }
        Ok(())
    }

    /// Sends an escalation to its level's destination.
    fn route(
        &mut self,
        escalation: &crate::incident::escalation::Escalation,
        destination: &crate::incident::escalation::Destination,
    ) -> Result<(), SinkError> {
        use crate::incident::escalation::Destination;
        let dedicated = self
            .incident
            .as_mut()
            .and_then(|i| i.escalation_sink.as_mut());
        match (destination, dedicated) {
            (Destination::Escalations, Some(sink)) => {
                return sink.write_escalation(escalation, &mut self.pending)
            }
            (Destination::Webhook(name), Some(sink)) if sink.webhook_name() == Some(name) => {
                return sink.write_escalation(escalation, &mut self.pending)
            }
            _ => {}
        }
        for sink in &mut self.sinks {
            let wanted = match destination {
                // Without an escalation sink, escalations go with the alerts.
                Destination::Alerts | Destination::Escalations => sink.webhook_name().is_none(),
                Destination::Webhook(name) => sink.webhook_name() == Some(name.as_str()),
            };
            if wanted {
                sink.write_escalation(escalation, &mut self.pending)?;
            }
        }
        Ok(())
    }

    /// End of input: the updates of every open suppression window, then flush.
    fn finish(&mut self) -> Result<(), SinkError> {
        for a in self.suppressor.finish() {
            self.write(&a)?;
        }
        self.flush()
    }
}

/// What a worker hands the writer for one batch.
struct Processed {
    outputs: Vec<Output>,
    /// Kafka positions the batch covered.
    progress: Progress,
    records: usize,
    barrier: Option<source::Barrier>,
    /// The latest event time per silence watch the batch had events for.
    seen: Vec<(usize, chrono::DateTime<chrono::Utc>)>,
    /// The latest event time in the batch (moves an event-time clock).
    latest: Option<chrono::DateTime<chrono::Utc>>,
}

/// The writer stage: restores input order, feeds correlation and
/// suppression, writes to the sinks and checkpoints.
struct Writer {
    alert_out: AlertOutput,
    dead_sink: DeadLetterSink,
    correlator: crate::correlate::Correlator,
    correlations: Arc<crate::correlate::CorrelationSet>,
    anomaly: anomaly_stage::AnomalyStage,
    builder: AlertBuilder,
    checkpointer: Checkpointer,
    commit_interval: Duration,
    metrics: Option<Arc<Metrics>>,
    /// Input handled so far.
    progress: Progress,
    dead_letters: u64,
    /// Where correlation state is snapshotted, if anywhere.
    state: StateStore,
    /// Positions a restored snapshot already reflects: observations from
    /// records before them are not counted again.
    restored: Progress,
    /// Correlation state changed since the last snapshot.
    state_changed: bool,
    /// Test builds only: an alert whose line contains this text panics the
    /// writer, so tests can check that a failed stage is loud
    /// (`TOCSIN_TEST_WRITER_PANIC_ON`).
    #[cfg(debug_assertions)]
    panic_marker: Option<String>,
}

impl Writer {
    /// Runs on a blocking thread until the workers are done.
    fn run(
        mut self,
        mut input: mpsc::Receiver<(u64, Processed)>,
        mut requests: Option<mpsc::Receiver<TriageRequest>>,
        runtime: tokio::runtime::Handle,
    ) -> Result<(BTreeMap<Severity, u64>, u64), PipelineError> {
        let mut waiting: BTreeMap<u64, Processed> = BTreeMap::new();
        let mut next_seq = 0u64;
        let mut last_checkpoint = Instant::now();
        let mut unsaved = false;
        // Deadlines pass while input is quiet: wake up to check them.
        let check = self
            .alert_out
            .incident
            .as_ref()
            .map_or(Duration::MAX, |i| i.check_interval());
        loop {
            let wait = self
                .commit_interval
                .saturating_sub(last_checkpoint.elapsed())
                .min(check);
            let received = runtime.block_on(async {
                tokio::select! {
                    r = tokio::time::timeout(wait, input.recv()) => Ok(r),
                    Some(request) = next_request(&mut requests) => Err(request),
                }
            });
            let received = match received {
                Ok(r) => r,
                Err(request) => {
                    self.handle_request(request)?;
                    unsaved = true;
                    continue;
                }
            };
            match received {
                Ok(Some((seq, processed))) => {
                    waiting.insert(seq, processed);
                    while let Some(batch) = waiting.remove(&next_seq) {
                        next_seq += 1;
                        unsaved = true;
                        self.handle(batch)?;
                    }
                    self.update_metrics();
                    // Flush whenever the queue runs dry, so alerts are not
                    // held back in quiet periods.
                    if input.is_empty() {
                        self.alert_out.flush()?;
                        self.dead_sink.flush()?;
                    }
                }
                Ok(None) => break,
                Err(_elapsed) => {
                    if self.alert_out.incident.is_some() {
                        self.alert_out.tick_incidents(&self.builder)?;
                        unsaved = true;
                    }
                }
            }
            if last_checkpoint.elapsed() >= self.commit_interval {
                if unsaved {
                    self.checkpoint(None)?;
                    unsaved = false;
                }
                last_checkpoint = Instant::now();
            }
        }
        if !waiting.is_empty() {
            // A worker failed with a batch: what follows it cannot be
            // handled in order, and nothing past the gap is committed.
            return Err(PipelineError::Stage(format!(
                "{} batches could not be handled in input order: a detection worker failed",
                waiting.len()
            )));
        }
        // End of input: windows waiting for their end are decided now.
        let firings = self.correlator.finish();
        self.alert_out
            .send_firings(firings, &self.builder, &self.correlations)?;
        let anomalies = self.anomaly.finish();
        self.alert_out
            .send_anomalies(anomalies, &self.builder, self.anomaly.set())?;
        self.alert_out.finish()?;
        self.alert_out.tick_incidents(&self.builder)?;
        self.checkpoint(None)?;
        Ok((
            std::mem::take(&mut self.alert_out.by_severity),
            self.dead_letters,
        ))
    }

    fn handle(&mut self, batch: Processed) -> Result<(), PipelineError> {
        for output in batch.outputs {
            match output {
                Output::Alert(alert) => {
                    #[cfg(debug_assertions)]
                    if let Some(marker) = &self.panic_marker {
                        if alert.message.contains(marker.as_str()) {
                            panic!("test hook: the alert line contains {marker:?}");
                        }
                    }
                    self.alert_out.send(*alert)?
                }
                Output::Observation(obs) => {
                    if self.restored.covers(&obs.origin) {
                        continue;
                    }
                    self.state_changed = true;
                    let firings = self.correlator.observe(*obs);
                    self.alert_out
                        .send_firings(firings, &self.builder, &self.correlations)?;
                }
                Output::Sample(sample) => {
                    let anomalies = self.anomaly.observe(*sample);
                    self.alert_out
                        .send_anomalies(anomalies, &self.builder, self.anomaly.set())?;
                }
                Output::DeadLetter(letter) => self.dead_letter(&letter)?,
                Output::Triage(input) => {
                    // What fell due before the update happened is emitted
                    // first, so an event-time replay escalates exactly as live.
                    self.alert_out.clock.observe(input.update.at);
                    self.alert_out.tick_incidents(&self.builder)?;
                    let rejected = match &mut self.alert_out.incident {
                        Some(incident) => incident.apply_input(*input),
                        None => Some(dead_letter::DeadLetter::new(
                            "triage update: alert lifecycle tracking is off (set incident.enabled)"
                                .into(),
                            input.origin,
                            input.received_at,
                            &input.payload,
                        )),
                    };
                    if let Some(letter) = rejected {
                        self.dead_letter(&letter)?;
                    }
                }
                Output::Track(alert) => {
                    self.alert_out.clock.observe(alert.detected_at);
                    self.alert_out.tick_incidents(&self.builder)?;
                    if let Some(incident) = &mut self.alert_out.incident {
                        incident.track(&alert);
                    }
                }
            }
        }
        if let Some(t) = batch.latest {
            self.alert_out.clock.observe(t);
        }
        if !batch.seen.is_empty() {
            self.alert_out.silence_seen(&batch.seen, &self.builder)?;
        }
        self.alert_out.tick_incidents(&self.builder)?;
        self.progress.merge(&batch.progress);
        if let Some(m) = &self.metrics {
            if !batch.progress.is_empty() {
                m.in_flight_events.sub(batch.records as i64);
            }
        }
        if let Some(barrier) = batch.barrier {
            self.checkpoint(Some(barrier))?;
        }
        Ok(())
    }

    fn dead_letter(&mut self, letter: &dead_letter::DeadLetter) -> Result<(), PipelineError> {
        self.dead_sink.write(letter, &mut self.alert_out.pending)?;
        self.dead_letters += 1;
        if let Some(m) = &self.metrics {
            m.dead_letters
                .with_label_values(&[self.dead_sink.name()])
                .inc();
        }
        Ok(())
    }

    /// A triage update posted over HTTP.
    fn handle_request(&mut self, request: TriageRequest) -> Result<(), PipelineError> {
        let Some(incident) = &mut self.alert_out.incident else {
            let _ = request
                .1
                .send(Err("alert lifecycle tracking is off".into()));
            return Ok(());
        };
        if let Some(letter) = incident.apply_request(request) {
            self.dead_letter(&letter)?;
        }
        self.alert_out.tick_incidents(&self.builder)?;
        Ok(())
    }

    /// Flushes every sink and makes the input handled so far durable.
    fn checkpoint(&mut self, barrier: Option<source::Barrier>) -> Result<(), PipelineError> {
        self.anomaly.save_if_due();
        self.alert_out.flush()?;
        self.dead_sink.flush()?;
        let mut snapshot = None;
        if self.state_changed && !matches!(self.state, StateStore::None) {
            self.state_changed = false;
            let mut positions = self.restored.clone();
            positions.merge(&self.progress);
            let snap = crate::correlate::snapshot::Snapshot {
                version: crate::correlate::snapshot::SNAPSHOT_VERSION,
                positions: positions.to_vec(),
                correlation: self.correlator.state(),
            };
            match serde_json::to_vec(&snap) {
                Err(e) => tracing::error!(error = %e, "serialising the correlation snapshot"),
                Ok(bytes) => match &self.state {
                    StateStore::None => {}
                    StateStore::File(path) => snapshot = Some((path.clone(), bytes)),
                    StateStore::Topic(topic, _) if bytes.len() > MAX_STATE_RECORD => {
                        tracing::error!(
                            bytes = bytes.len(),
                            topic = %topic.topic,
                            "correlation snapshot too large for a Kafka record; not saved (use correlation.state_file)"
                        );
                    }
                    StateStore::Topic(topic, producer) => kafka::producer::send_keyed(
                        producer,
                        &topic.topic,
                        &topic.key,
                        Some(&bytes),
                        &mut self.alert_out.pending,
                    )?,
                },
            }
        }
        self.checkpointer.checkpoint(Checkpoint {
            deliveries: std::mem::take(&mut self.alert_out.pending),
            progress: self.progress.clone(),
            barrier,
            snapshot,
        })?;
        Ok(())
    }

    fn update_metrics(&self) {
        let Some(m) = &self.metrics else { return };
        let correlator = &self.correlator;
        m.correlation_groups.set(correlator.active_groups() as i64);
        let late = m.correlation_late_events.get();
        if correlator.late_events() > late {
            m.correlation_late_events
                .inc_by(correlator.late_events() - late);
        }
        let counted = m.correlation_evictions.get();
        if correlator.evictions() > counted {
            m.correlation_evictions
                .inc_by(correlator.evictions() - counted);
        }
    }
}

/// The next HTTP triage request, or never when there is no endpoint.
async fn next_request(
    requests: &mut Option<mpsc::Receiver<TriageRequest>>,
) -> Option<TriageRequest> {
    match requests {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Where correlation snapshots go.
enum StateStore {
    None,
    File(std::path::PathBuf),
    /// A compacted topic, written through the pipeline's producer.
    Topic(
        kafka::state::StateTopic,
        Arc<kafka::producer::KafkaProducer>,
    ),
}

/// How long shutdown waits for webhooks to deliver queued lines.
const WEBHOOK_DRAIN: Duration = Duration::from_secs(15);

/// Largest snapshot written to a Kafka record (brokers' default message
/// limit is 1 MB); larger states need the file.
const MAX_STATE_RECORD: usize = 900_000;

/// Loads the latest snapshot from the state topic into `correlator`.
/// A missing topic is a configuration error; an unreadable snapshot is
/// logged and the engine starts with empty windows.
fn restore_from_topic(
    topic: &kafka::state::StateTopic,
    properties: &[(String, String)],
    correlator: &mut crate::correlate::Correlator,
) -> Result<Progress, kafka::KafkaError> {
    let origin = std::path::PathBuf::from(format!("{}[{}]", topic.topic, topic.key));
    let decoded = match topic.load_latest(properties)? {
        None => Ok(None),
        Some(bytes) => crate::correlate::snapshot::decode(&bytes, &origin).map(Some),
    };
    Ok(restore_snapshot(decoded, &origin, correlator, || false))
}

/// Loads a correlation snapshot into `correlator`; returns the positions it
/// reflects. A missing file is a first start; an unreadable one is moved
/// aside with an error logged, and the engine starts with empty windows
/// rather than not at all.
fn restore_correlation(
    path: &std::path::Path,
    correlator: &mut crate::correlate::Correlator,
) -> Progress {
    let move_aside = || {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".unreadable");
        std::fs::rename(path, &aside).is_ok()
    };
    restore_snapshot(
        crate::correlate::snapshot::load(path),
        path,
        correlator,
        move_aside,
    )
}

fn restore_snapshot(
    loaded: Result<
        Option<crate::correlate::snapshot::Snapshot>,
        crate::correlate::snapshot::SnapshotError,
    >,
    path: &std::path::Path,
    correlator: &mut crate::correlate::Correlator,
    move_aside: impl FnOnce() -> bool,
) -> Progress {
    match loaded {
        Ok(Some(snap)) => {
            let groups = correlator.restore(snap.correlation);
            tracing::info!(
                groups,
                file = %path.display(),
                "correlation windows restored from the snapshot"
            );
            Progress::from_vec(snap.positions)
        }
        Ok(None) => Progress::default(),
        Err(e) => {
            let moved = move_aside();
            tracing::error!(
                error = %e,
                moved_aside = moved,
                "correlation snapshot unusable: starting with empty windows"
            );
            Progress::default()
        }
    }
}

/// The work queue detection workers share: the feed and the sequence
/// number the next batch gets.
type WorkQueue = std::sync::Mutex<(mpsc::Receiver<Feed>, u64)>;

/// A detection worker: takes batches in turn until the feed ends or the
/// writer stops taking results. Per-record panics are contained by
/// [`Processor::process`]; one escaping here fails the stage.
fn detect(queue: &WorkQueue, output: &mpsc::Sender<(u64, Processed)>, processor: &mut Processor) {
    loop {
        let next = match queue.lock() {
            Ok(mut q) => q.0.blocking_recv().map(|feed| {
                let seq = q.1;
                q.1 += 1;
                (seq, feed)
            }),
            Err(_) => None,
        };
        let Some((seq, feed)) = next else { break };
        let processed = match feed {
            Feed::Records(batch) => {
                let mut progress = Progress::default();
                let records = batch.len();
                let mut outputs = Vec::new();
                for record in &batch {
                    progress.advance(&record.origin);
                    processor.process(record, &mut outputs);
                }
                let (seen, latest) = processor.take_notes();
                Processed {
                    outputs,
                    progress,
                    records,
                    barrier: None,
                    seen,
                    latest,
                }
            }
            Feed::Barrier(b) => Processed {
                outputs: Vec::new(),
                progress: Progress::default(),
                records: 0,
                barrier: Some(b),
                seen: Vec::new(),
                latest: None,
            },
        };
        if output.blocking_send((seq, processed)).is_err() {
            break;
        }
    }
}

/// A configured pipeline, ready to run.
pub struct Pipeline {
    pub engine: Arc<Engine>,
    pub alerts: AlertBuilder,
    /// Correlation rules over the engine's matches (may be empty).
    pub correlations: Arc<crate::correlate::CorrelationSet>,
    /// Anomaly jobs over the engine's matches (may be empty).
    pub anomalies: Arc<crate::anomaly::AnomalySet>,
    /// Where anomaly models are loaded from at start (none: learn from scratch).
    pub anomaly_load_from: Option<std::path::PathBuf>,
    /// Where anomaly models are saved (none: not saved).
    pub anomaly_save_to: Option<std::path::PathBuf>,
    /// How often changed anomaly models are saved while running.
    pub anomaly_save_interval: Duration,
    /// Cap on correlation groups tracked at once.
    pub correlation_max_groups: usize,
    /// How late an event may arrive for correlation windows.
    pub correlation_lateness: std::time::Duration,
    /// How long a silent source holds correlation windows open.
    pub correlation_idle_timeout: std::time::Duration,
    /// Snapshot file for correlation state (Kafka positions included).
    pub correlation_state_file: Option<std::path::PathBuf>,
    /// Or a compacted topic for it, with this instance's key.
    pub correlation_state_topic: Option<kafka::state::StateTopic>,
    /// Suppression of repeated alerts (off by default).
    pub suppression: Arc<crate::alert::suppress::SuppressionPolicy>,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
    pub dead_letter: DeadLetterConfig,
    pub channel_capacity: usize,
    /// Detection threads (at least 1).
    pub workers: usize,
    pub metrics: Option<Arc<Metrics>>,
    /// Kafka client properties and the delivery guarantee.
    pub kafka: KafkaSettings,
    /// The engine's now: detection times, deadlines, silences.
    pub clock: crate::vocab::clock::Clock,
    /// Alert lifecycle tracking (off: `None`).
    pub incident: Option<IncidentSettings>,
    /// Triage updates posted to the HTTP endpoint.
    pub triage_requests: Option<mpsc::Receiver<TriageRequest>>,
    /// Longest record read; longer ones are dead-lettered unparsed.
    pub max_record_bytes: usize,
    /// Where stages report that they run, end or fail (`/healthz`, `/readyz`).
    pub health: crate::health::Health,
}

impl Pipeline {
    /// Every topic the pipeline writes to.
    fn output_topics(&self) -> Vec<String> {
        let sinks = self.sinks.iter().chain(
            self.incident
                .as_ref()
                .and_then(|i| i.escalation_sink.as_ref()),
        );
        let mut topics: Vec<String> = sinks
            .filter_map(|s| match s {
                SinkConfig::Kafka { topic, .. } => Some(topic.clone()),
                _ => None,
            })
            .collect();
        if let DeadLetterConfig::Kafka { topic } = &self.dead_letter {
            topics.push(topic.clone());
        }
        topics.extend(
            self.correlation_state_topic
                .as_ref()
                .map(|t| t.topic.clone()),
        );
        topics.extend(self.incident.as_ref().and_then(|i| i.state_topic.clone()));
        topics.sort();
        topics.dedup();
        topics
    }

    /// Runs until every source ends or shutdown is triggered, then drains,
    /// flushes and commits.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<RunStats, PipelineError> {
        let started = Instant::now();
        // Capacity is counted in records; the channels carry batches.
        let batches = (self.channel_capacity / source::BATCH_SIZE).max(2);
        let (feed_tx, feed_rx) = mpsc::channel::<Feed>(batches);

        // Check inputs and open sinks before reading anything. An input that
        // does not exist is reported now; the others are still read.
        let mut contexts = Vec::with_capacity(self.sources.len());
        let mut file_lists = Vec::new();
        let mut kafka_topics = HashMap::new();
        let mut input_errors = Vec::new();
        for (i, src) in self.sources.iter().enumerate() {
            let name = match src {
                SourceConfig::File { name, paths, .. } => {
                    let (files, errors) = source::expand_paths(paths);
                    for e in errors {
                        tracing::error!(error = %error_chain(&e), "input cannot be read");
                        input_errors.push(e);
                    }
                    file_lists.push((i, Some(files)));
                    name.clone().unwrap_or_else(|| paths.join(","))
                }
                SourceConfig::Stdin { .. } => {
                    file_lists.push((i, None));
                    "stdin".to_string()
                }
                SourceConfig::Kafka { topic, .. } => {
                    kafka_topics.insert(topic.clone(), i);
                    topic.clone()
                }
            };
            let tags = src.logsource().pairs();
            let watches = match &self.incident {
                Some(i) => crate::incident::silence::SourceWatches::new(&i.watches, &name, &tags),
                None => Default::default(),
            };
            contexts.push(SourceContext {
                name,
                parser: Parser::new(src.format(), src.time_options()),
                tags,
                records: src.records(),
                watches,
            });
        }
        let kafka = &self.kafka;
        let kafka_sinks = self
            .sinks
            .iter()
            .any(|s| matches!(s, SinkConfig::Kafka { .. }))
            || matches!(self.dead_letter, DeadLetterConfig::Kafka { .. });
        let incident_kafka = self.incident.as_ref().is_some_and(|i| {
            i.state_topic.is_some() && !kafka_topics.is_empty()
                || matches!(i.escalation_sink, Some(SinkConfig::Kafka { .. }))
        });
        if kafka.exactly_once {
            // A broker without transactions must be found now, not at the
            // first commit with records already read.
            let properties = kafka.properties.clone();
            tokio::task::spawn_blocking(move || {
                kafka::capabilities::check_transactions(&properties)
            })
            .await
            .map_err(|e| PipelineError::Stage(format!("checking the brokers: {e}")))??;
        }
        let producer = if kafka_sinks
            || kafka.exactly_once
            || self.correlation_state_topic.is_some()
            || incident_kafka
        {
            let topics = self.output_topics();
            let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
            let limits = kafka::producer::record_limits(&kafka.properties, &topics).await;
            Some(kafka::producer::create(
                &kafka.properties,
                kafka
                    .transactional_id
                    .as_deref()
                    .filter(|_| kafka.exactly_once),
                limits,
                self.metrics.clone(),
            )?)
        } else {
            None
        };
        let mut webhooks = WebhookTasks {
            runtime: tokio::runtime::Handle::current(),
            metrics: self.metrics.clone(),
            tasks: Vec::new(),
        };
        let alert_sinks = self
            .sinks
            .iter()
            .map(|s| AlertSink::open(s, producer.as_ref(), &mut webhooks))
            .collect::<Result<Vec<_>, _>>()?;
        // Alert state on a topic is for runs on Kafka; file runs use the journal.
        let incident_kafka = producer
            .as_ref()
            .filter(|_| !kafka_topics.is_empty())
            .map(|p| (p, kafka.properties.as_slice()));
        let incident = match &self.incident {
            Some(settings) => Some(IncidentStage::open(
                settings,
                self.clock.clone(),
                incident_kafka,
                &mut webhooks,
                self.metrics.clone(),
            )?),
            None => None,
        };
        let dead_sink = DeadLetterSink::open(&self.dead_letter, producer.as_ref())?;
        let consumer = if kafka_topics.is_empty() {
            None
        } else {
            let topics: Vec<&str> = kafka_topics.keys().map(String::as_str).collect();
            Some(kafka::consumer::subscribe(
                &kafka.properties,
                &topics,
                kafka.exactly_once,
                feed_tx.clone(),
                self.metrics.clone(),
            )?)
        };

        let health = self.health.clone();
        let mut source_tasks = Vec::new();
        if let Some(consumer) = &consumer {
            let (consumer, tx, sd, m) = (
                consumer.clone(),
                feed_tx.clone(),
                shutdown.clone(),
                self.metrics.clone(),
            );
            let max = self.max_record_bytes;
            health.running("source:kafka");
            source_tasks.push((
                "source:kafka".to_string(),
                tokio::task::spawn_blocking(move || {
                    kafka::consumer::consume(consumer, kafka_topics, tx, sd, m, max)
                        .map(|()| Vec::new())
                        .map_err(SourceError::from)
                }),
            ));
        }
        for (i, files) in file_lists {
            let tx = feed_tx.clone();
            let sd = shutdown.clone();
            let max = self.max_record_bytes;
            let stage = format!("source:{}", contexts[i].name);
            health.running(&stage);
            source_tasks.push((
                stage,
                match files {
                    Some(files) => tokio::task::spawn_blocking(move || {
                        Ok(source::read_files(i, files, tx, sd, max))
                    }),
                    None => {
                        tokio::spawn(async move { Ok(source::read_stdin(i, tx, sd, max).await) })
                    }
                },
            ));
        }
        drop(feed_tx);

        let workers = self.workers.max(1);
        let (output_tx, output_rx) = mpsc::channel::<(u64, Processed)>(workers * 2);
        // Workers take batches in turn; the sequence number taken with each
        // batch lets the writer restore input order, so alerts leave in the
        // order their events arrived whatever the number of workers.
        let queue: Arc<WorkQueue> = Arc::new(std::sync::Mutex::new((feed_rx, 0u64)));
        let mut detectors = Vec::with_capacity(workers);
        self.health.running("detect");
        for _ in 0..workers {
            let queue = queue.clone();
            let output_tx = output_tx.clone();
            let mut processor = Processor::new(
                self.engine.clone(),
                self.alerts.clone(),
                (self.correlations.clone(), self.anomalies.clone()),
                contexts.clone(),
                self.metrics.clone(),
                self.clock.clone(),
            );
            let (stop, health) = (shutdown.clone(), self.health.clone());
            detectors.push(tokio::task::spawn_blocking(move || {
                let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    detect(&queue, &output_tx, &mut processor);
                }));
                match worked {
                    Ok(()) => Ok((processor.stats, processor.by_input)),
                    Err(panic) => {
                        let what = process::panic_message(panic.as_ref());
                        health.failed("detect", what.clone());
                        stop.trigger();
                        Err(PipelineError::Stage(format!(
                            "a detection worker failed: {what}"
                        )))
                    }
                }
            }));
        }
        drop(output_tx);

        let (checkpointer, committer) = match (&producer, &consumer) {
            (Some(p), Some(c)) if kafka.exactly_once => (
                Checkpointer::ExactlyOnce {
                    producer: p.clone(),
                    consumer: c.clone(),
                    metrics: self.metrics.clone(),
                },
                None,
            ),
            (None, None) => (Checkpointer::Untracked, None),
            _ => {
                let (tx, rx) = mpsc::channel(4);
                let committer = Committer {
                    consumer: consumer.clone(),
                    runtime: tokio::runtime::Handle::current(),
                    metrics: self.metrics.clone(),
                };
                let stop = shutdown.clone();
                (
                    Checkpointer::AtLeastOnce(tx),
                    Some(tokio::task::spawn_blocking(move || {
                        let result = committer.run(rx);
                        if result.is_err() {
                            stop.trigger();
                        }
                        result
                    })),
                )
            }
        };
        let mut correlator = crate::correlate::Correlator::with_max_groups(
            self.correlations.clone(),
            self.correlation_max_groups,
        )
        .with_lateness(self.correlation_lateness)
        .with_idle_timeout(self.correlation_idle_timeout);
        // Snapshots carry Kafka positions; files are read again from the
        // start, so their windows would count twice after a restore.
        let state = match (
            &self.correlation_state_topic,
            &self.correlation_state_file,
            &consumer,
            &producer,
        ) {
            (Some(topic), _, Some(_), Some(p)) => StateStore::Topic(topic.clone(), p.clone()),
            (None, Some(path), Some(_), _) => StateStore::File(path.clone()),
            (None, None, Some(_), _) if !self.correlations.is_empty() => {
                tracing::warn!(
                    "neither correlation.state_file nor correlation.state_topic is set: open correlation windows will not survive a restart"
                );
                StateStore::None
            }
            (Some(_), _, None, _) | (None, Some(_), None, _) => {
                tracing::warn!("correlation state snapshots apply to Kafka sources only; not used");
                StateStore::None
            }
            _ => StateStore::None,
        };
        let restored = match &state {
            StateStore::File(path) => restore_correlation(path, &mut correlator),
            StateStore::Topic(topic, _) => {
                match restore_from_topic(topic, &kafka.properties, &mut correlator) {
                    Ok(restored) => restored,
                    Err(e) => {
                        // The sources are running already: stop them before giving up.
                        shutdown.trigger();
                        return Err(e.into());
                    }
                }
            }
            StateStore::None => Progress::default(),
        };
        let writer = Writer {
            alert_out: AlertOutput {
                sinks: alert_sinks,
                suppressor: crate::alert::suppress::Suppressor::new((*self.suppression).clone()),
                by_severity: BTreeMap::new(),
                metrics: self.metrics.clone(),
                pending: Pending::new(),
                incident,
                clock: self.clock.clone(),
            },
            dead_sink,
            correlator,
            correlations: self.correlations.clone(),
            anomaly: anomaly_stage::AnomalyStage::new(
                self.anomalies.clone(),
                (self.anomaly_load_from.clone(), self.anomaly_save_to.clone()),
                self.anomaly_save_interval,
                self.metrics.clone(),
            ),
            builder: self.alerts.clone(),
            checkpointer,
            commit_interval: kafka.commit_interval,
            metrics: self.metrics.clone(),
            progress: Progress::default(),
            dead_letters: 0,
            state,
            restored,
            state_changed: false,
            #[cfg(debug_assertions)]
            panic_marker: std::env::var("TOCSIN_TEST_WRITER_PANIC_ON")
                .ok()
                .filter(|m| !m.is_empty()),
        };
        let runtime = tokio::runtime::Handle::current();
        let stop = shutdown.clone();
        let requests = self.triage_requests.take();
        let writer_health = self.health.clone();
        writer_health.running("writer");
        let writer = tokio::task::spawn_blocking(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                writer.run(output_rx, requests, runtime)
            }))
            .unwrap_or_else(|panic| {
                Err(PipelineError::Stage(format!(
                    "the writer failed: {}",
                    process::panic_message(panic.as_ref())
                )))
            });
            match &result {
                Ok(_) => writer_health.finished("writer"),
                Err(e) => {
                    writer_health.failed("writer", e.to_string());
                    // Nothing more can be delivered: stop reading.
                    stop.trigger();
                }
            }
            result
        });

        let mut first_error = None;
        for (stage, task) in source_tasks {
            let failure = match task.await {
                Ok(Ok(errors)) => {
                    health.finished(&stage);
                    input_errors.extend(errors);
                    continue;
                }
                Ok(Err(e)) => PipelineError::Source(e),
                Err(e) => PipelineError::Stage(format!("{stage}: {e}")),
            };
            health.failed(&stage, failure.to_string());
            // Stop the other sources too; what was read is still processed.
            shutdown.trigger();
            first_error.get_or_insert(failure);
        }
        let mut process = ProcessStats::default();
        let mut inputs: BTreeMap<String, ProcessStats> = BTreeMap::new();
        for detector in detectors {
            let worked = detector
                .await
                .map_err(|e| PipelineError::Stage(format!("detector: {e}")))
                .and_then(|r| r);
            match worked {
                Ok((stats, by_input)) => {
                    process += stats;
                    for (name, stats) in by_input {
                        *inputs.entry(name).or_default() += stats;
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_none() {
            health.finished("detect");
        }
        let written = writer
            .await
            .map_err(|e| PipelineError::Stage(format!("writer: {e}")))
            .and_then(|r| r);
        if let Some(committer) = committer {
            // The writer dropped its sender: the committer finishes the last checkpoint.
            let committed = committer
                .await
                .map_err(|e| PipelineError::Stage(format!("committer: {e}")))?;
            if let Err(e) = committed {
                // The root cause: the writer only saw the committer go away.
                health.failed("commit", e.to_string());
                first_error = Some(PipelineError::Kafka(e));
            }
        }
        // Closing the consumer leaves the group; it may call the rebalance
        // hooks, which must not run on the async runtime's threads.
        if let Some(consumer) = consumer {
            let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        }
        // After a failed stage the process exits at once: what was not
        // committed is read again after the restart.
        if !health.has_failed() {
            // The writer dropped the webhook senders: let them deliver what is queued.
            for task in webhooks.tasks {
                if tokio::time::timeout(WEBHOOK_DRAIN, task).await.is_err() {
                    tracing::warn!("a webhook did not finish delivering in {WEBHOOK_DRAIN:?}; lines left undelivered");
                }
            }
            if let Some(producer) = producer {
                let _ = tokio::task::spawn_blocking(move || {
                    let _ =
                        rdkafka::producer::Producer::flush(&**producer, Duration::from_secs(10));
                })
                .await;
            }
        }
        let (alerts_by_severity, dead_letters) = match (first_error, written) {
            (Some(e), _) | (None, Err(e)) => return Err(e),
            (None, Ok(written)) => written,
        };
        for e in &input_errors {
            if let Some(m) = &self.metrics {
                m.input_errors.with_label_values(&[input_name(e)]).inc();
            }
        }
        Ok(RunStats {
            process,
            inputs,
            input_errors: input_errors.iter().map(|e| error_chain(e)).collect(),
            alerts_by_severity,
            dead_letters,
            elapsed: started.elapsed(),
        })
    }
}

/// An error with its causes: `truncated.gz: unexpected end of file`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The input an input error is about, for its metric label.
fn input_name(e: &SourceError) -> &str {
    match e {
        SourceError::Io { path, .. } => path,
        SourceError::NoMatch(pattern) | SourceError::Glob { pattern, .. } => pattern,
        SourceError::Kafka(_) => "kafka",
    }
}
