//! The streaming pipeline: sources -> parse/detect workers -> writer ->
//! sinks, with the commit stage behind the writer.
//!
//! Stages are connected by bounded channels (backpressure, no unbounded
//! buffering). Shutdown stops the sources; everything already read is still
//! processed and flushed before [`Pipeline::run`] returns. Every stage
//! reports to [`health::Health`]; a stage that fails stops the others and
//! the run ends with [`PipelineError::Stage`].
//!
//! | file | what |
//! |---|---|
//! | `sources/` | files read once or followed (rotation, positions), stdin; the records they read |
//! | `process.rs` | a worker: record -> event -> matches -> alerts, observations, samples |
//! | `writer.rs` | the ordered stage: correlation, anomalies, incident desk, checkpoints |
//! | `output.rs` | the writer's fan-out: suppression, sinks, escalation routing |
//! | `sinks/` | stdout, file, Kafka, webhook |
//! | `dead_letter.rs` | records that cannot be events, and where they go |
//! | `kafka/` | the consumer group, the producer, commits and transactions |
//! | `reload.rs`, `reload_http.rs` | rules swapped while running: SIGHUP, `POST /reload`, rule folders watched |
//! | `http.rs`, `bearer.rs`, `health.rs`, `metrics.rs` | the listener and its token, liveness and readiness, Prometheus |

mod alerts;
pub(crate) mod anomaly_stage;
mod bearer;
pub mod config;
pub mod dead_letter;
mod exchange;
pub mod health;
pub mod http;
pub(crate) mod incident_stage;
pub mod kafka;
pub mod metrics;
mod output;
pub(crate) mod process;
pub mod reload;
pub mod reload_http;
mod restore;
mod shutdown;
pub mod sinks;
pub mod sources;
pub mod triage_http;
mod writer;

pub use anomaly_stage::{load_models, save_models, ModelFiles};
pub use incident_stage::{IncidentConfig, IncidentConfigError};
pub use incident_stage::{IncidentSettings, TriageInput, TriageRequest};
pub use process::{panic_message, Output, ProcessStats, Processor, SourceContext};
pub use shutdown::Shutdown;

use crate::alert::AlertBuilder;
use crate::anomaly::AnomalySet;
use crate::correlate::config::CorrelationConfig;
use crate::correlate::{CorrelationSet, Correlator};
use crate::detect::Engine;
use crate::event::Parser;
use crate::vocab::clock::Clock;
use crate::vocab::Severity;
use config::EngineConfig;
use dead_letter::{DeadLetterConfig, DeadLetterSink};
use health::Health;
use incident_stage::IncidentStage;
use kafka::commit::{Checkpointer, Committer};
use kafka::consumer::KafkaConsumer;
use kafka::producer::{KafkaProducer, Pending};
use kafka::progress::Progress;
use kafka::state::StateTopic;
use kafka::KafkaSettings;
use metrics::Metrics;
use output::AlertOutput;
use sinks::{SinkConfig, SinkContext, SinkError, WebhookTasks};
use sources::{Feed, FileProgress, Input, SourceConfig, SourceError};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use writer::{FilePositions, Processed, StateStore, Writer, Written, WEBHOOK_DRAIN};

/// Errors that stop the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An input could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A sink could not be opened or written.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The Kafka consumer, producer or commit failed.
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaError),
    /// The followed files' saved positions cannot be read.
    #[error(transparent)]
    Positions(#[from] sources::PositionsError),
    /// Any other stage failure, such as a panic or a stopped detection worker;
    /// the text says which stage and why.
    #[error("pipeline stage failed: {0}")]
    Stage(String),
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// The counts over all inputs.
    pub process: ProcessStats,
    /// The same counts per input (file path, `stdin`, topic), by name.
    pub inputs: BTreeMap<String, ProcessStats>,
    /// Inputs that could not be opened or read to their end; the others
    /// were read, and so were the lines of these before the failure.
    pub input_errors: Vec<String>,
    /// Alerts written to the sinks after suppression, per severity: rule matches,
    /// correlations and anomalies.
    pub alerts_by_severity: BTreeMap<Severity, u64>,
    /// Records sent to the dead-letter destination.
    pub dead_letters: u64,
    /// Rule matches correlation left out for arriving late, per rule.
    pub late: crate::correlate::LateReport,
    /// Anomaly samples that arrived after their bucket had closed, per job,
    /// and whether a scan ran them again in event-time order.
    pub anomaly_late: crate::anomaly::SampleLateReport,
    /// Wall-clock time of the whole run, draining and flushing included.
    pub elapsed: Duration,
}

impl RunStats {
    /// All alerts written, over every severity.
    pub fn alerts(&self) -> u64 {
        self.alerts_by_severity.values().sum()
    }

    /// Records processed per second of the run; 0 when no time elapsed.
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.process.records as f64 / secs
        } else {
            0.0
        }
    }
}

/// The compiled rules a pipeline runs: detection rules and filters,
/// correlation rules and anomaly jobs over their matches.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The compiled detection rules and filters, with the logsource router.
    pub engine: Arc<Engine>,
    /// The correlation rules over the detection rules' matches.
    pub correlations: Arc<CorrelationSet>,
    /// The anomaly jobs over the detection rules' matches.
    pub anomalies: Arc<AnomalySet>,
}

/// How many rules of each kind run: the one way rules are counted, in
/// `rules check`, `scan`'s summary, the logs and `/healthz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleCounts {
    /// Detection rules that alert on their own matches (the detections of
    /// anomaly jobs are counted as jobs).
    pub detection: usize,
    /// Correlation rules.
    pub correlation: usize,
    /// Anomaly jobs.
    pub anomaly_jobs: usize,
    /// Sigma filters applied to at least one rule.
    pub filters: usize,
}

impl RuleCounts {
    /// The counts of a compiled set.
    pub fn of(
        engine: &Engine,
        correlations: &CorrelationSet,
        anomalies: &AnomalySet,
    ) -> RuleCounts {
        let filters: std::collections::HashSet<&str> = engine
            .rules()
            .iter()
            .flat_map(|r| r.filter_titles.iter().map(String::as_str))
            .collect();
        RuleCounts {
            detection: engine
                .rules()
                .len()
                .saturating_sub(anomalies.detection_rules()),
            correlation: correlations.len(),
            anomaly_jobs: anomalies.len(),
            filters: filters.len(),
        }
    }

    /// Rules that raise alerts: detection and correlation rules and anomaly jobs.
    pub fn total(&self) -> usize {
        self.detection + self.correlation + self.anomaly_jobs
    }
}

impl std::fmt::Display for RuleCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rules ({} detection, {} correlation, {} anomaly jobs), {} filters",
            self.total(),
            self.detection,
            self.correlation,
            self.anomaly_jobs,
            self.filters
        )
    }
}

impl Rules {
    /// How many rules of each kind the set runs.
    pub fn counts(&self) -> RuleCounts {
        RuleCounts::of(&self.engine, &self.correlations, &self.anomalies)
    }
}

/// A configured pipeline, ready to run. Built by
/// [`Pipeline::from_config`](crate::config::assemble).
pub struct Pipeline {
    /// What to detect: the running set, which a [`reload::Reloader`] replaces.
    pub rules: Arc<reload::LiveRules>,
    /// Alert links, SLA and suppression.
    pub alerts: AlertBuilder,
    /// Where records come from (`[[sources]]`).
    pub sources: Vec<SourceConfig>,
    /// Where alerts go (`[[sinks]]`).
    pub sinks: Vec<SinkConfig>,
    /// Where records that cannot be events go (`[dead_letter]`).
    pub dead_letter: DeadLetterConfig,
    /// Worker threads, channel capacity, record size limit.
    pub engine: EngineConfig,
    /// Correlation bounds and where open windows are kept (its `state_key`
    /// resolved).
    pub correlation: CorrelationConfig,
    /// Where anomaly models are loaded from and saved to.
    pub models: ModelFiles,
    /// Kafka client properties and the delivery guarantee.
    pub kafka: KafkaSettings,
    /// The engine's now: detection times, deadlines, silences.
    pub clock: Clock,
    /// Alert lifecycle tracking (off: `None`).
    pub incident: Option<IncidentSettings>,
    /// Where stages export Prometheus metrics; `None` exports nothing.
    pub metrics: Option<Arc<Metrics>>,
    /// Where stages report that they run, end or fail (`/healthz`, `/readyz`).
    pub health: Health,
    /// Triage updates posted to the HTTP endpoint.
    pub triage_requests: Option<mpsc::Receiver<TriageRequest>>,
    /// When the whole input is at hand (`scan`): keep up to this many
    /// correlation matches, so that matches dropped as late are run again
    /// in event-time order at the end (see `correlate::Reorder`). `None`
    /// for a stream.
    pub reorder_limit: Option<usize>,
}

/// What the sources need to be read: a parser context per source, what
/// each file or stdin source reads, the Kafka topics.
struct Inputs {
    contexts: Vec<SourceContext>,
    streams: Vec<(usize, Stream)>,
    topics: HashMap<String, usize>,
    errors: Vec<SourceError>,
    /// The followed files' positions: loaded at start, saved at checkpoints.
    positions: FilePositions,
}

/// What a file or stdin source reads.
enum Stream {
    /// Files read once, to their end.
    Files(Vec<PathBuf>),
    /// Files followed until shutdown.
    Follow(Box<sources::FollowedFiles>),
    Stdin,
}

/// A running source and the stage name it reports under.
type SourceTask = (String, JoinHandle<Result<Vec<SourceError>, SourceError>>);

/// A running detection worker.
type WorkerTask = JoinHandle<Result<(ProcessStats, process::StatsByInput), PipelineError>>;

impl Pipeline {
    /// Runs until every source ends or shutdown is triggered, then drains,
    /// flushes and commits.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<RunStats, PipelineError> {
        let started = Instant::now();
        // Capacity is counted in records; the channels carry batches.
        let batches = (self.engine.channel_capacity / sources::BATCH_SIZE).max(2);
        let (feed_tx, feed_rx) = mpsc::channel::<Feed>(batches);

        // Check inputs and open sinks before reading anything. An input that
        // does not exist is reported now; the others are still read.
        let mut inputs = self.inputs()?;
        let producer = self.producer(!inputs.topics.is_empty()).await?;
        let mut webhooks = WebhookTasks {
            runtime: tokio::runtime::Handle::current(),
            metrics: self.metrics.clone(),
            tasks: Vec::new(),
        };
        let alert_out = self.alert_output(producer.as_ref(), &inputs, &mut webhooks)?;
        let dead_sink = DeadLetterSink::open(&self.dead_letter, producer.as_ref())?;
        let consumer = match inputs.topics.is_empty() {
            true => None,
            false => {
                let topics: Vec<&str> = inputs.topics.keys().map(String::as_str).collect();
                Some(kafka::consumer::subscribe(
                    &self.kafka.properties,
                    &topics,
                    self.kafka.exactly_once,
                    feed_tx.clone(),
                    self.metrics.clone(),
                    self.health.clone(),
                )?)
            }
        };
        let exchange = match self.exchange_stage(&inputs, &producer, &consumer).await {
            Ok(exchange) => exchange,
            Err(e) => {
                if let Some(consumer) = consumer {
                    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
                }
                return Err(e);
            }
        };
        let source_tasks = self.start_sources(&mut inputs, consumer.as_ref(), &feed_tx, &shutdown);
        drop(feed_tx);
        let rules = self.rules.load();
        let (workers, output_rx) = self.start_workers(feed_rx, &inputs.contexts, &shutdown);
        let (checkpointer, committer) = self.checkpointer(&producer, &consumer, &shutdown);
        let (state, correlator, restored) = match self.correlator(&producer, &consumer) {
            Ok(restored) => restored,
            Err(e) => {
                // The sources are running already: stop them before giving up.
                shutdown.trigger();
                return Err(e);
            }
        };
        let writer = Writer {
            alert_out,
            dead_sink,
            correlator,
            correlations: rules.correlations.clone(),
            rules: rules.clone(),
            anomaly: anomaly_stage::AnomalyStage::new(
                rules.anomalies.clone(),
                &self.models,
                self.metrics.clone(),
                self.reorder_limit,
            ),
            builder: self.alerts.clone(),
            checkpointer,
            commit_interval: self.kafka.commit_interval,
            metrics: self.metrics.clone(),
            progress: Progress::default(),
            files: std::mem::replace(
                &mut inputs.positions,
                FilePositions {
                    path: None,
                    handled: FileProgress::default(),
                    changed: false,
                },
            ),
            dead_letters: 0,
            state,
            restored,
            state_changed: false,
            reorder: self.reorder_limit.map(|limit| {
                crate::correlate::Reorder::new(limit, self.correlation.allowed_lateness.as_std())
            }),
            late_logged: (0, None),
            exchange,
            #[cfg(debug_assertions)]
            panic_marker: std::env::var("TOCSIN_TEST_WRITER_PANIC_ON")
                .ok()
                .filter(|m| !m.is_empty()),
        };
        let writer = self.start_writer(writer, output_rx, &shutdown);

        // Wait for every stage, sources first: their end drains the rest.
        let health = self.health.clone();
        let mut first_error = None;
        for (stage, task) in source_tasks {
            let failure = match task.await {
                Ok(Ok(errors)) => {
                    health.finished(&stage);
                    inputs.errors.extend(errors);
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
        let mut by_input: BTreeMap<String, ProcessStats> = BTreeMap::new();
        for worker in workers {
            let worked = worker
                .await
                .map_err(|e| PipelineError::Stage(format!("detector: {e}")))
                .and_then(|r| r);
            match worked {
                Ok((stats, inputs)) => {
                    process += stats;
                    for (name, stats) in inputs {
                        *by_input.entry(name).or_default() += stats;
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
            drain(webhooks, producer).await;
        }
        let written = match (first_error, written) {
            (Some(e), _) | (None, Err(e)) => return Err(e),
            (None, Ok(written)) => written,
        };
        for e in &inputs.errors {
            if let Some(m) = &self.metrics {
                m.input_errors.with_label_values(&[input_name(e)]).inc();
            }
        }
        Ok(RunStats {
            process,
            inputs: by_input,
            input_errors: inputs.errors.iter().map(|e| error_chain(e)).collect(),
            alerts_by_severity: written.by_severity,
            dead_letters: written.dead_letters,
            late: written.late,
            anomaly_late: written.anomaly_late,
            elapsed: started.elapsed(),
        })
    }

    /// Each source's parser context; what file and stdin sources read (a
    /// path read once that does not exist is an input error, logged now);
    /// the topics; the followed files' saved positions.
    fn inputs(&self) -> Result<Inputs, PipelineError> {
        let checkpoints = self
            .sources
            .iter()
            .any(|s| matches!(&s.input, Input::File { follow: Some(f), .. } if f.checkpoint));
        let positions_path =
            checkpoints.then(|| self.engine.data_dir.join(sources::POSITIONS_FILE));
        let saved = match &positions_path {
            Some(path) => FileProgress::load(path)?,
            None => FileProgress::default(),
        };
        let mut inputs = Inputs {
            contexts: Vec::with_capacity(self.sources.len()),
            streams: Vec::new(),
            topics: HashMap::new(),
            errors: Vec::new(),
            positions: FilePositions {
                path: positions_path,
                handled: saved.clone(),
                changed: false,
            },
        };
        for (i, src) in self.sources.iter().enumerate() {
            let name = src.name();
            match &src.input {
                Input::File {
                    paths,
                    follow: Some(follow),
                    ..
                } => inputs.streams.push((
                    i,
                    Stream::Follow(Box::new(sources::FollowedFiles {
                        source: i,
                        name: name.clone(),
                        patterns: paths.clone(),
                        follow: *follow,
                        saved: saved.of_source(&name),
                        max_record_bytes: self.engine.max_record_bytes,
                    })),
                )),
                Input::File {
                    paths,
                    follow: None,
                    ..
                } => {
                    let (files, errors) = sources::expand_paths(paths);
                    for e in errors {
                        tracing::error!(error = %error_chain(&e), "input cannot be read");
                        inputs.errors.push(e);
                    }
                    inputs.streams.push((i, Stream::Files(files)));
                }
                Input::Stdin => inputs.streams.push((i, Stream::Stdin)),
                Input::Kafka { topic } => {
                    inputs.topics.insert(topic.clone(), i);
                }
            }
            let tags = src.logsource.pairs();
            let watches = match &self.incident {
                Some(i) => crate::incident::silence::SourceWatches::new(&i.watches, &name, &tags),
                None => Default::default(),
            };
            inputs.contexts.push(SourceContext {
                name,
                parser: Parser::new(src.format, src.time.clone()),
                tags,
                records: src.records,
                watches,
            });
        }
        // Scale-out: the repartition topic is read like an input, in the
        // same group, so its offsets move with the same checkpoints.
        if let Some(topic) = self.exchange_topic(&inputs) {
            inputs.topics.insert(topic.clone(), inputs.contexts.len());
            inputs.contexts.push(SourceContext {
                name: topic,
                parser: Parser::new(
                    crate::event::InputFormat::Json,
                    crate::event::TimeOptions::default(),
                ),
                tags: Vec::new(),
                records: sources::RecordKind::Matches,
                watches: Default::default(),
            });
        } else if self.correlation.repartition_topic.is_some() {
            // Files and stdin are read whole by one instance: correlated
            // here, with the same firings.
            tracing::warn!(
                "correlation.repartition_topic applies to Kafka sources only; correlating in this instance"
            );
        }
        Ok(inputs)
    }

    /// The repartition topic, when scale-out is configured and the
    /// pipeline reads Kafka topics.
    fn exchange_topic(&self, inputs: &Inputs) -> Option<String> {
        let c = &self.correlation;
        c.changelog_topic.as_ref()?;
        c.repartition_topic
            .clone()
            .filter(|_| !inputs.topics.is_empty())
    }

    /// Scale-out's writer side, after checking its topics.
    async fn exchange_stage(
        &self,
        inputs: &Inputs,
        producer: &Option<Arc<KafkaProducer>>,
        consumer: &Option<Arc<KafkaConsumer>>,
    ) -> Result<Option<exchange::ExchangeStage>, PipelineError> {
        let (Some(repartition), Some(changelog), Some(producer), Some(consumer)) = (
            self.exchange_topic(inputs),
            self.correlation.changelog_topic.clone(),
            producer,
            consumer,
        ) else {
            return Ok(None);
        };
        let input_topics: Vec<String> = inputs
            .topics
            .keys()
            .filter(|t| **t != repartition)
            .cloned()
            .collect();
        let properties = self.kafka.properties.clone();
        let topics = tokio::task::spawn_blocking(move || {
            exchange::check_topics(&properties, &repartition, &changelog, &input_topics)
        })
        .await
        .map_err(|e| PipelineError::Stage(format!("checking the scale-out topics: {e}")))??;
        tracing::info!(
            repartition = %topics.repartition,
            changelog = %topics.changelog,
            partitions = topics.partitions,
            inputs = topics.inputs,
            "correlation scales out over the repartition topic"
        );
        let c = &self.correlation;
        Ok(Some(exchange::ExchangeStage {
            topics,
            producer: producer.clone(),
            consumer: consumer.clone(),
            properties: self.kafka.properties.clone(),
            runtime: tokio::runtime::Handle::current(),
            metrics: self.metrics.clone(),
            template: Correlator::with_max_groups(
                self.rules.load().correlations.clone(),
                c.max_groups,
            )
            .with_lateness(c.allowed_lateness.as_std())
            .with_idle_timeout(c.idle_source_timeout.as_std()),
            anomalies: self.rules.load().anomalies.clone(),
            models: self.models.load_from.clone(),
            lateness: c.allowed_lateness,
            idle_timeout: c.idle_source_timeout.as_std(),
            max_pending: c.max_groups,
            owners: HashMap::new(),
            input_times: HashMap::new(),
            dropped_behind: 0,
            forced: 0,
            warned_at: None,
        }))
    }

    /// Every Kafka topic the pipeline reads or writes, sorted.
    pub fn kafka_topics(&self) -> Vec<String> {
        let mut topics = self.output_topics();
        for s in &self.sources {
            if let Input::Kafka { topic } = &s.input {
                topics.push(topic.clone());
            }
        }
        topics.sort();
        topics.dedup();
        topics
    }

    /// Every topic the pipeline writes to.
    fn output_topics(&self) -> Vec<String> {
        let sinks = self.sinks.iter().chain(
            self.incident
                .as_ref()
                .and_then(|i| i.escalation_sink.as_ref()),
        );
        let mut topics: Vec<String> = sinks
            .filter_map(|s| s.kafka_topic().map(str::to_string))
            .collect();
        if let DeadLetterConfig::Kafka { topic } = &self.dead_letter {
            topics.push(topic.clone());
        }
        topics.extend(self.correlation.state_topic.clone());
        topics.extend(self.correlation.repartition_topic.clone());
        topics.extend(self.correlation.changelog_topic.clone());
        topics.extend(self.incident.as_ref().and_then(|i| i.state_topic.clone()));
        topics.sort();
        topics.dedup();
        topics
    }

    /// The producer behind every Kafka sink, when anything writes to Kafka;
    /// in exactly-once mode, after checking that the brokers have transactions.
    async fn producer(
        &self,
        reads_kafka: bool,
    ) -> Result<Option<Arc<KafkaProducer>>, PipelineError> {
        let kafka = &self.kafka;
        let incident_kafka = self.incident.as_ref().is_some_and(|i| {
            i.state_topic.is_some() && reads_kafka
                || i.escalation_sink
                    .as_ref()
                    .is_some_and(|s| s.kafka_topic().is_some())
        });
        let topics = self.output_topics();
        let needed = kafka.exactly_once
            || incident_kafka
            || self.correlation.state_topic.is_some()
            || self.correlation.repartition_topic.is_some() && reads_kafka
            || self.sinks.iter().any(|s| s.kafka_topic().is_some())
            || matches!(self.dead_letter, DeadLetterConfig::Kafka { .. });
        if !needed {
            return Ok(None);
        }
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
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let limits = kafka::producer::record_limits(&kafka.properties, &topics).await;
        Ok(Some(kafka::producer::create(
            &kafka.properties,
            kafka
                .transactional_id
                .as_deref()
                .filter(|_| kafka.exactly_once),
            limits,
            self.metrics.clone(),
            self.health.clone(),
        )?))
    }

    /// The sinks and the incident desk, opened.
    fn alert_output(
        &self,
        producer: Option<&Arc<KafkaProducer>>,
        inputs: &Inputs,
        webhooks: &mut WebhookTasks,
    ) -> Result<AlertOutput, PipelineError> {
        let sinks = self
            .sinks
            .iter()
            .map(|s| s.open(&mut SinkContext { producer, webhooks }))
            .collect::<Result<Vec<_>, _>>()?;
        // Alert state on a topic is for runs on Kafka; file runs use the journal.
        let incident_kafka = producer
            .filter(|_| !inputs.topics.is_empty())
            .map(|p| (p, self.kafka.properties.as_slice()));
        let incident = match &self.incident {
            Some(settings) => Some(IncidentStage::open(
                settings,
                self.clock.clone(),
                incident_kafka,
                webhooks,
                self.metrics.clone(),
            )?),
            None => None,
        };
        Ok(AlertOutput {
            sinks,
            suppressor: crate::alert::suppress::Suppressor::new(self.alerts.suppression().clone()),
            by_severity: BTreeMap::new(),
            metrics: self.metrics.clone(),
            pending: Pending::new(),
            incident,
            clock: self.clock.clone(),
        })
    }

    /// Starts every source: the Kafka consumer's poll loop, file readers, stdin.
    fn start_sources(
        &self,
        inputs: &mut Inputs,
        consumer: Option<&Arc<KafkaConsumer>>,
        feed: &mpsc::Sender<Feed>,
        shutdown: &Shutdown,
    ) -> Vec<SourceTask> {
        let max = self.engine.max_record_bytes;
        let mut tasks: Vec<SourceTask> = Vec::new();
        if let Some(consumer) = consumer {
            let (consumer, tx, sd, m) = (
                consumer.clone(),
                feed.clone(),
                shutdown.clone(),
                self.metrics.clone(),
            );
            let topics = std::mem::take(&mut inputs.topics);
            let watch = kafka::orphans::OrphanWatch::new(
                &self.kafka.properties,
                topics.keys().cloned().collect(),
            );
            self.health.running("source:kafka");
            tasks.push((
                "source:kafka".to_string(),
                tokio::task::spawn_blocking(move || {
                    kafka::consumer::consume(consumer, topics, tx, sd, m, max, watch)
                        .map(|()| Vec::new())
                        .map_err(SourceError::from)
                }),
            ));
        }
        for (i, stream) in std::mem::take(&mut inputs.streams) {
            let (tx, sd) = (feed.clone(), shutdown.clone());
            let stage = format!("source:{}", inputs.contexts[i].name);
            self.health.running(&stage);
            let task = match stream {
                Stream::Files(files) => tokio::task::spawn_blocking(move || {
                    Ok(sources::read_files(i, files, tx, sd, max))
                }),
                Stream::Follow(files) => {
                    tokio::task::spawn_blocking(move || Ok(sources::follow_files(*files, tx, sd)))
                }
                Stream::Stdin => {
                    tokio::spawn(async move { Ok(sources::read_stdin(i, tx, sd, max).await) })
                }
            };
            tasks.push((stage, task));
        }
        tasks
    }

    /// Starts the detection workers. They take batches in turn; the
    /// sequence number taken with each batch lets the writer restore input
    /// order, so alerts leave in the order their events arrived whatever
    /// the number of workers.
    fn start_workers(
        &self,
        feed: mpsc::Receiver<Feed>,
        contexts: &[SourceContext],
        shutdown: &Shutdown,
    ) -> (Vec<WorkerTask>, mpsc::Receiver<(u64, Processed)>) {
        let workers = self.engine.worker_threads().max(1);
        let (output_tx, output_rx) = mpsc::channel::<(u64, Processed)>(workers * 2);
        let queue = Arc::new(std::sync::Mutex::new((feed, 0u64)));
        self.health.running("detect");
        let rules = self.rules.load();
        let tasks = (0..workers)
            .map(|_| {
                let (queue, output_tx) = (queue.clone(), output_tx.clone());
                let live = self.rules.clone();
                let mut processor = Processor::new(
                    rules.engine.clone(),
                    self.alerts.clone(),
                    (rules.correlations.clone(), rules.anomalies.clone()),
                    contexts.to_vec(),
                    self.metrics.clone(),
                    self.clock.clone(),
                );
                let (stop, health) = (shutdown.clone(), self.health.clone());
                tokio::task::spawn_blocking(move || {
                    let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        process::detect(&queue, &output_tx, &mut processor, &live);
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
                })
            })
            .collect();
        (tasks, output_rx)
    }

    /// How input handled so far is made durable: offsets committed after
    /// the broker acknowledged the output (at-least-once, on the committer
    /// task), in one transaction with it (exactly-once), or not at all.
    fn checkpointer(
        &self,
        producer: &Option<Arc<KafkaProducer>>,
        consumer: &Option<Arc<KafkaConsumer>>,
        shutdown: &Shutdown,
    ) -> (
        Checkpointer,
        Option<JoinHandle<Result<(), kafka::KafkaError>>>,
    ) {
        match (producer, consumer) {
            (Some(p), Some(c)) if self.kafka.exactly_once => (
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
        }
    }

    /// The correlator, with the windows a snapshot kept, and where its
    /// snapshots go. Snapshots carry Kafka positions; files are read again
    /// from the start, so their windows would count twice after a restore.
    fn correlator(
        &self,
        producer: &Option<Arc<KafkaProducer>>,
        consumer: &Option<Arc<KafkaConsumer>>,
    ) -> Result<(StateStore, Correlator, Progress), PipelineError> {
        let c = &self.correlation;
        let correlations = self.rules.load().correlations.clone();
        let mut correlator = Correlator::with_max_groups(correlations.clone(), c.max_groups)
            .with_lateness(c.allowed_lateness.as_std())
            .with_idle_timeout(c.idle_source_timeout.as_std());
        let topic = c.state_topic.clone().map(|topic| StateTopic {
            topic,
            key: c.state_key.clone().unwrap_or_default(),
        });
        let state = match (topic, &c.state_file, consumer, producer) {
            // Scale-out keeps correlation state in the changelog instead.
            _ if c.repartition_topic.is_some() && consumer.is_some() => StateStore::None,
            (Some(topic), _, Some(_), Some(p)) => StateStore::Topic(topic, p.clone()),
            (None, Some(path), Some(_), _) => StateStore::File(path.clone()),
            (None, None, Some(_), _) if !correlations.is_empty() => {
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
            StateStore::File(path) => restore::restore_correlation(path, &mut correlator),
            StateStore::Topic(topic, _) => {
                restore::restore_from_topic(topic, &self.kafka.properties, &mut correlator)?
            }
            StateStore::None => Progress::default(),
        };
        Ok((state, correlator, restored))
    }

    /// Starts the writer on a blocking thread, under supervision: a panic
    /// or an error fails the stage and stops the sources.
    fn start_writer(
        &mut self,
        writer: Writer,
        input: mpsc::Receiver<(u64, Processed)>,
        shutdown: &Shutdown,
    ) -> JoinHandle<Result<Written, PipelineError>> {
        let runtime = tokio::runtime::Handle::current();
        let stop = shutdown.clone();
        let requests = self.triage_requests.take();
        let health = self.health.clone();
        health.running("writer");
        tokio::task::spawn_blocking(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                writer.run(input, requests, runtime)
            }))
            .unwrap_or_else(|panic| {
                Err(PipelineError::Stage(format!(
                    "the writer failed: {}",
                    process::panic_message(panic.as_ref())
                )))
            });
            match &result {
                Ok(_) => health.finished("writer"),
                Err(e) => {
                    health.failed("writer", e.to_string());
                    // Nothing more can be delivered: stop reading.
                    stop.trigger();
                }
            }
            result
        })
    }
}

/// Lets webhooks deliver what is queued and the producer flush.
async fn drain(webhooks: WebhookTasks, producer: Option<Arc<KafkaProducer>>) {
    for task in webhooks.tasks {
        if tokio::time::timeout(WEBHOOK_DRAIN, task).await.is_err() {
            tracing::warn!(
                "a webhook did not finish delivering in {WEBHOOK_DRAIN:?}; lines left undelivered"
            );
        }
    }
    if let Some(producer) = producer {
        let _ = tokio::task::spawn_blocking(move || {
            let _ = rdkafka::producer::Producer::flush(&**producer, Duration::from_secs(10));
        })
        .await;
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
