//! The streaming pipeline: sources -> parse/detect/alert -> sinks.
//!
//! Stages are connected by bounded channels (backpressure, no unbounded
//! buffering). Shutdown stops the sources; everything already read is still
//! processed and flushed before `run` returns.

pub mod dead_letter;
pub mod process;
pub mod sink;
pub mod source;

use crate::alert::{AlertBuilder, Severity};
use crate::config::{DeadLetterConfig, SinkConfig, SourceConfig};
use crate::detect::Engine;
use crate::event::Parser;
use crate::metrics::Metrics;
use process::{Output, ProcessStats, Processor, SourceContext};
use sink::{AlertSink, DeadLetterSink, SinkError};
use source::SourceError;
use std::collections::BTreeMap;
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
    #[error("pipeline stage failed: {0}")]
    Stage(String),
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    pub process: ProcessStats,
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
            sink.write(alert)?;
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
            if let Some(alert) = builder.correlation(corr, &firing, chrono::Utc::now()) {
                self.send(alert)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        for sink in &mut self.sinks {
            sink.flush()?;
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

/// A configured pipeline, ready to run.
pub struct Pipeline {
    pub engine: Arc<Engine>,
    pub alerts: AlertBuilder,
    /// Correlation rules over the engine's matches (may be empty).
    pub correlations: Arc<crate::correlate::CorrelationSet>,
    /// Cap on correlation groups tracked at once.
    pub correlation_max_groups: usize,
    /// How late an event may arrive for correlation windows.
    pub correlation_lateness: std::time::Duration,
    /// Suppression of repeated alerts (off by default).
    pub suppression: Arc<crate::alert::suppress::SuppressionPolicy>,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
    pub dead_letter: DeadLetterConfig,
    pub channel_capacity: usize,
    /// Detection threads (at least 1).
    pub workers: usize,
    pub metrics: Option<Arc<Metrics>>,
}

impl Pipeline {
    /// Runs until every source ends or shutdown is triggered, then drains and flushes.
    pub async fn run(self, shutdown: Shutdown) -> Result<RunStats, PipelineError> {
        let started = Instant::now();
        // Open sinks and check inputs before reading anything: fail fast on typos.
        let alert_sinks = self
            .sinks
            .iter()
            .map(AlertSink::open)
            .collect::<Result<Vec<_>, _>>()?;
        let mut dead_sink = DeadLetterSink::open(&self.dead_letter)?;
        let mut contexts = Vec::with_capacity(self.sources.len());
        let mut file_lists = Vec::with_capacity(self.sources.len());
        for (i, src) in self.sources.iter().enumerate() {
            let (name, files) = match src {
                SourceConfig::File { name, paths, .. } => {
                    let files = source::expand_paths(paths)?;
                    (name.clone().unwrap_or_else(|| paths.join(",")), Some(files))
                }
                SourceConfig::Stdin { .. } => ("stdin".to_string(), None),
            };
            contexts.push(SourceContext {
                name,
                parser: Parser::new(src.format(), src.time_options()),
                tags: src.logsource().pairs(),
            });
            file_lists.push((i, files));
        }

        // Capacity is counted in records; the channels carry batches.
        let batches = (self.channel_capacity / source::BATCH_SIZE).max(2);
        let (record_tx, record_rx) = mpsc::channel::<source::Batch>(batches);
        let workers = self.workers.max(1);
        let (output_tx, mut output_rx) = mpsc::channel::<(u64, Vec<Output>)>(workers * 2);

        let mut source_tasks = Vec::new();
        for (i, files) in file_lists {
            let tx = record_tx.clone();
            let sd = shutdown.clone();
            source_tasks.push(match files {
                Some(files) => {
                    tokio::task::spawn_blocking(move || source::read_files(i, files, tx, sd))
                }
                None => tokio::spawn(source::read_stdin(i, tx, sd)),
            });
        }
        drop(record_tx);

        // Workers take batches in turn; the sequence number taken with each
        // batch lets the writer restore input order, so alerts leave in the
        // order their events arrived whatever the number of workers.
        let queue = Arc::new(std::sync::Mutex::new((record_rx, 0u64)));
        let mut detectors = Vec::with_capacity(workers);
        for _ in 0..workers {
            let queue = queue.clone();
            let output_tx = output_tx.clone();
            let mut processor = Processor::new(
                self.engine.clone(),
                self.alerts.clone(),
                self.correlations.clone(),
                contexts.clone(),
                self.metrics.clone(),
            );
            detectors.push(tokio::task::spawn_blocking(move || {
                loop {
                    let next = match queue.lock() {
                        Ok(mut q) => q.0.blocking_recv().map(|batch| {
                            let seq = q.1;
                            q.1 += 1;
                            (seq, batch)
                        }),
                        Err(_) => None,
                    };
                    let Some((seq, batch)) = next else { break };
                    let mut outputs = Vec::new();
                    for record in batch {
                        processor.process(record, &mut outputs);
                    }
                    if output_tx.blocking_send((seq, outputs)).is_err() {
                        break;
                    }
                }
                processor.stats
            }));
        }
        drop(output_tx);

        let metrics = self.metrics.clone();
        let correlations = self.correlations.clone();
        let mut correlator = crate::correlate::Correlator::with_max_groups(
            correlations.clone(),
            self.correlation_max_groups,
        )
        .with_lateness(self.correlation_lateness);
        let builder = self.alerts.clone();
        let mut alert_out = AlertOutput {
            sinks: alert_sinks,
            suppressor: crate::alert::suppress::Suppressor::new((*self.suppression).clone()),
            by_severity: BTreeMap::new(),
            metrics: self.metrics.clone(),
        };
        let writer = tokio::spawn(async move {
            let mut dead_letters = 0u64;
            let mut pending: BTreeMap<u64, Vec<Output>> = BTreeMap::new();
            let mut next_seq = 0u64;
            while let Some((seq, outputs)) = output_rx.recv().await {
                pending.insert(seq, outputs);
                while let Some(batch) = pending.remove(&next_seq) {
                    next_seq += 1;
                    for output in batch {
                        match output {
                            Output::Alert(alert) => alert_out.send(*alert)?,
                            Output::Observation(obs) => {
                                let firings = correlator.observe(*obs);
                                alert_out.send_firings(firings, &builder, &correlations)?;
                            }
                            Output::DeadLetter(letter) => {
                                dead_sink.write(&letter)?;
                                dead_letters += 1;
                            }
                        }
                    }
                }
                if let Some(m) = &metrics {
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
                // Flush whenever the queue runs dry, so alerts are not held back in quiet periods.
                if output_rx.is_empty() {
                    alert_out.flush()?;
                    dead_sink.flush()?;
                }
            }
            // End of input: windows waiting for their end are decided now.
            let firings = correlator.finish();
            alert_out.send_firings(firings, &builder, &correlations)?;
            alert_out.finish()?;
            dead_sink.flush()?;
            Ok::<_, SinkError>((alert_out.by_severity, dead_letters))
        });

        let mut source_error = None;
        for task in source_tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // Stop the other sources too; what was read is still processed.
                    shutdown.trigger();
                    source_error.get_or_insert(PipelineError::Source(e));
                }
                Err(e) => {
                    shutdown.trigger();
                    source_error.get_or_insert(PipelineError::Stage(format!("source task: {e}")));
                }
            }
        }
        let mut process = ProcessStats::default();
        for detector in detectors {
            process += detector
                .await
                .map_err(|e| PipelineError::Stage(format!("detector: {e}")))?;
        }
        let (alerts_by_severity, dead_letters) = writer
            .await
            .map_err(|e| PipelineError::Stage(format!("sink task: {e}")))??;
        if let Some(e) = source_error {
            return Err(e);
        }
        Ok(RunStats {
            process,
            alerts_by_severity,
            dead_letters,
            elapsed: started.elapsed(),
        })
    }
}
