//! The writer stage: restores input order, feeds correlation, anomaly
//! scoring and suppression, writes to the sinks and checkpoints. It is the
//! one owner of correlation windows, baselines and alert state.

use super::dead_letter::{self, DeadLetterSink};
use super::kafka;
use super::kafka::commit::{Checkpoint, Checkpointer, StateFile};
use super::kafka::progress::Progress;
use super::metrics::Metrics;
use super::output::AlertOutput;
use super::process::Output;
use super::sources::{self, FileProgress};
use super::{anomaly_stage, PipelineError, TriageRequest};
use crate::alert::AlertBuilder;
use crate::vocab::Severity;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the writer hands back at the end.
pub(super) struct Written {
    /// Alerts written, per severity.
    pub(super) by_severity: BTreeMap<Severity, u64>,
    /// Records sent to the dead-letter destination.
    pub(super) dead_letters: u64,
    /// Matches correlation left out for arriving late.
    pub(super) late: crate::correlate::LateReport,
    /// Anomaly samples that arrived after their bucket closed, per job.
    pub(super) anomaly_late: crate::anomaly::SampleLateReport,
}

/// What a worker hands the writer for one batch.
pub(super) struct Processed {
    /// The rule set the batch was detected with: its indices name its rules.
    pub(super) rules: Arc<super::Rules>,
    pub(super) outputs: Vec<Output>,
    /// Kafka positions the batch covered.
    pub(super) progress: Progress,
    /// Followed files' positions the batch covered.
    pub(super) files: FileProgress,
    pub(super) records: usize,
    pub(super) barrier: Option<sources::Barrier>,
    /// The latest event time per silence watch the batch had events for,
    /// overall (moves an event-time clock) and per input.
    pub(super) times: super::process::TimeNotes,
}

/// The writer stage: restores input order, feeds correlation and
/// suppression, writes to the sinks and checkpoints.
pub(super) struct Writer {
    pub(super) alert_out: AlertOutput,
    pub(super) dead_sink: DeadLetterSink,
    pub(super) correlator: crate::correlate::Correlator,
    pub(super) correlations: Arc<crate::correlate::CorrelationSet>,
    /// The rule set of the batches handled last.
    pub(super) rules: Arc<super::Rules>,
    pub(super) anomaly: anomaly_stage::AnomalyStage,
    pub(super) builder: AlertBuilder,
    pub(super) checkpointer: Checkpointer,
    pub(super) commit_interval: Duration,
    pub(super) metrics: Option<Arc<Metrics>>,
    /// Input handled so far.
    pub(super) progress: Progress,
    /// Followed files handled so far, and where their positions are saved.
    pub(super) files: FilePositions,
    pub(super) dead_letters: u64,
    /// Where correlation state is snapshotted, if anywhere.
    pub(super) state: StateStore,
    /// Positions a restored snapshot already reflects: observations from
    /// records before them are not counted again.
    pub(super) restored: Progress,
    /// Correlation state changed since the last snapshot.
    pub(super) state_changed: bool,
    /// A scan: matches kept to run late ones again in event-time order.
    pub(super) reorder: Option<crate::correlate::Reorder>,
    /// Scale-out: matches go to the repartition topic, and the partitions
    /// of it this instance owns are correlated here.
    pub(super) exchange: Option<super::exchange::ExchangeStage>,
    /// Late matches last logged, and when (a warning at most once a minute).
    pub(super) late_logged: (u64, Option<Instant>),
    /// Test builds only: an alert whose line contains this text panics the
    /// writer, so tests can check that a failed stage is loud
    /// (`TOCSIN_TEST_WRITER_PANIC_ON`).
    #[cfg(debug_assertions)]
    pub(super) panic_marker: Option<String>,
}

impl Writer {
    /// Runs on a blocking thread until the workers are done.
    pub(super) fn run(
        mut self,
        mut input: mpsc::Receiver<(u64, Processed)>,
        mut requests: Option<mpsc::Receiver<TriageRequest>>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Written, PipelineError> {
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
                    if let Some(exchange) = &mut self.exchange {
                        let released = exchange.tick()?;
                        unsaved |= !released.is_empty();
                        self.send_released(released)?;
                    }
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
        let late = match self.reorder.take() {
            Some(reorder) => {
                let (firings, report) = reorder.finish(&mut self.correlator);
                self.alert_out
                    .send_firings(firings, &self.builder, &self.correlations)?;
                report
            }
            None => {
                let firings = self.correlator.finish();
                self.alert_out
                    .send_firings(firings, &self.builder, &self.correlations)?;
                self.log_late(true);
                crate::correlate::LateReport {
                    late: self.correlator.late_events(),
                    by_rule: self.correlator.late_by_rule(),
                    ..Default::default()
                }
            }
        };
        let anomalies = self.anomaly.finish();
        self.alert_out
            .send_anomalies(anomalies, &self.builder, self.anomaly.set())?;
        let anomaly_late = self.anomaly.late_report();
        if !anomaly_late.by_job.is_empty() && anomaly_late.replayed.is_none() {
            let total: u64 = anomaly_late.by_job.iter().map(|(_, n)| n).sum();
            tracing::warn!(
                samples = total,
                jobs = %crate::vocab::tally::describe(&anomaly_late.by_job),
                "anomaly samples arrived after their bucket had closed (more than the job's latency behind the newest event) and were left out"
            );
        }
        self.alert_out.finish()?;
        self.alert_out.tick_incidents(&self.builder)?;
        self.checkpoint(None)?;
        Ok(Written {
            by_severity: std::mem::take(&mut self.alert_out.by_severity),
            dead_letters: self.dead_letters,
            late,
            anomaly_late,
        })
    }

    fn handle(&mut self, batch: Processed) -> Result<(), PipelineError> {
        if !Arc::ptr_eq(&batch.rules, &self.rules) {
            self.switch_rules(batch.rules.clone());
        }
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
                    if let Some(exchange) = &mut self.exchange {
                        exchange.send_match(
                            &self.correlations,
                            *obs,
                            &mut self.alert_out.pending,
                        )?;
                        continue;
                    }
                    if self.restored.covers(&obs.origin) {
                        continue;
                    }
                    self.state_changed = true;
                    let firings = match &mut self.reorder {
                        Some(reorder) => reorder.observe(&mut self.correlator, *obs),
                        None => self.correlator.observe(*obs),
                    };
                    self.alert_out
                        .send_firings(firings, &self.builder, &self.correlations)?;
                }
                Output::Exchanged(exchanged) => {
                    let (partition, record) = *exchanged;
                    let Some(exchange) = &mut self.exchange else {
                        continue;
                    };
                    let released = exchange.receive(partition, record)?;
                    self.send_released(released)?;
                }
                Output::Sample(sample) => {
                    if let Some(exchange) = &mut self.exchange {
                        exchange.send_sample(
                            self.anomaly.set(),
                            *sample,
                            &mut self.alert_out.pending,
                        )?;
                        continue;
                    }
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
        if let Some(exchange) = &mut self.exchange {
            exchange.note_inputs(&batch.times.by_input);
        }
        if let Some(t) = batch.times.latest {
            self.alert_out.clock.observe(t);
        }
        if !batch.times.seen.is_empty() {
            self.alert_out
                .silence_seen(&batch.times.seen, &self.builder)?;
        }
        self.alert_out.tick_incidents(&self.builder)?;
        self.progress.merge(&batch.progress);
        if !batch.files.is_empty() {
            self.files.handled.merge(&batch.files);
            self.files.changed = true;
        }
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

    /// What the owners of repartition partitions released, to the sinks.
    fn send_released(&mut self, released: super::exchange::Released) -> Result<(), PipelineError> {
        self.alert_out
            .send_firings(released.firings, &self.builder, &self.correlations)?;
        self.alert_out
            .send_anomalies(released.anomalies, &self.builder, self.anomaly.set())?;
        Ok(())
    }

    /// The first batch detected with a reloaded rule set: correlation
    /// windows and anomaly baselines move over to it where the rule's id and
    /// logic did not change.
    fn switch_rules(&mut self, rules: Arc<super::Rules>) {
        if let Some(exchange) = &mut self.exchange {
            exchange.replace_rules(rules.correlations.clone(), rules.anomalies.clone());
        }
        let (kept, dropped) = self.correlator.replace_rules(rules.correlations.clone());
        let started = self.anomaly.replace_jobs(rules.anomalies.clone());
        tracing::info!(
            correlation_groups_kept = kept,
            correlation_groups_dropped = dropped,
            anomaly_jobs_started_afresh = started,
            "the reloaded rules take over"
        );
        self.correlations = rules.correlations.clone();
        self.rules = rules;
        self.state_changed = true;
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
    fn checkpoint(&mut self, barrier: Option<sources::Barrier>) -> Result<(), PipelineError> {
        self.anomaly.save_if_due();
        self.alert_out.flush()?;
        self.dead_sink.flush()?;
        let mut saves = Vec::new();
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
                    StateStore::File(path) => saves.push(StateFile {
                        what: "correlation snapshot",
                        path: path.clone(),
                        bytes,
                    }),
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
        if let Some(path) = self.files.path.as_ref().filter(|_| self.files.changed) {
            self.files.changed = false;
            saves.push(StateFile {
                what: "file positions",
                path: path.clone(),
                bytes: self.files.handled.encode(),
            });
        }
        if let Some(exchange) = &mut self.exchange {
            // Progress after the matches it covers; the owners' changelog
            // only once the alerts before it are acknowledged, so that a
            // changelog record never gets ahead of an alert it implies.
            let pending = &mut self.alert_out.pending;
            exchange.send_progress(pending)?;
            exchange.await_all(pending)?;
            exchange.write_changelog(pending)?;
            if let Some(revoke) = barrier {
                // A revoke. Local state is dropped only once this checkpoint
                // is committed (in exactly-once mode: its transaction, which
                // a read_committed restore cannot see before), so that no
                // owner, this one included, restores from a changelog
                // missing it; then the revoke may go on.
                let (own, committed) = sources::Barrier::new();
                self.checkpointer.checkpoint(Checkpoint {
                    deliveries: std::mem::take(&mut self.alert_out.pending),
                    progress: self.progress.clone(),
                    barrier: Some(own),
                    saves,
                })?;
                // Bounded like the consumer's wait: a failed commit fails
                // the pipeline through the checkpointer anyway.
                let _ = committed.recv_timeout(Duration::from_secs(30));
                exchange.let_go();
                revoke.release();
                return Ok(());
            }
        }
        self.checkpointer.checkpoint(Checkpoint {
            deliveries: std::mem::take(&mut self.alert_out.pending),
            progress: self.progress.clone(),
            barrier,
            saves,
        })?;
        Ok(())
    }

    /// A warning when matches were dropped as late since the last one: at
    /// most once a minute while running (`at_end`: now), naming the rules.
    /// A scan says it in its summary instead.
    fn log_late(&mut self, at_end: bool) {
        let late = self.correlator.late_events();
        let (logged, when) = self.late_logged;
        let recent = when.is_some_and(|w| w.elapsed() < LATE_LOG_INTERVAL);
        if late == logged || self.reorder.is_some() || (recent && !at_end) {
            return;
        }
        self.late_logged = (late, Some(Instant::now()));
        let rules = crate::vocab::tally::describe(&self.correlator.late_by_rule());
        tracing::warn!(
            late_since_last = late - logged,
            late_total = late,
            "rule matches arrived more than correlation.allowed_lateness behind their source's newest event and were left out of correlation ({rules}); raise allowed_lateness or feed the input in time order",
        );
    }

    fn update_metrics(&mut self) {
        self.log_late(false);
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

/// The followed files' positions the writer has handed to the sinks.
pub(super) struct FilePositions {
    /// Where they are saved; `None`: no source checkpoints.
    pub(super) path: Option<std::path::PathBuf>,
    /// Every file's position: those loaded at start, moved by what was handled.
    pub(super) handled: FileProgress,
    /// Moved since the last save.
    pub(super) changed: bool,
}

/// Where correlation snapshots go.
pub(super) enum StateStore {
    None,
    File(std::path::PathBuf),
    /// A compacted topic, written through the pipeline's producer.
    Topic(
        kafka::state::StateTopic,
        Arc<kafka::producer::KafkaProducer>,
    ),
}

/// Least time between two warnings about late matches.
const LATE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// How long shutdown waits for webhooks to deliver queued lines.
pub(super) const WEBHOOK_DRAIN: Duration = Duration::from_secs(15);

/// Largest snapshot written to a Kafka record (brokers' default message
/// limit is 1 MB); larger states need the file.
const MAX_STATE_RECORD: usize = 900_000;
