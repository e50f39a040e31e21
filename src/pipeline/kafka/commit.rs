//! Checkpoints: when the writer has handed everything up to some input
//! position to the sinks, that position becomes committable.
//!
//! - At-least-once: the [`Committer`] thread waits for every delivery made
//!   before the checkpoint to be acknowledged by the broker, then commits
//!   the offsets. A failed delivery stops the pipeline before its offset is
//!   committed, so a restart handles those records again.
//! - Exactly-once: the writer sends the offsets to the open transaction and
//!   commits it; the alerts become visible to `read_committed` consumers
//!   together with the offsets moving, or not at all.

use super::consumer::KafkaConsumer;
use super::producer::{KafkaProducer, Pending, TRANSACTION_TIMEOUT};
use super::progress::Progress;
use super::KafkaError;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::sources::Barrier;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::Producer;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Work up to a point in the input, ready to be made durable.
pub(crate) struct Checkpoint {
    pub deliveries: Pending,
    /// Input handled so far (cumulative).
    pub progress: Progress,
    /// Released once this checkpoint is committed.
    pub barrier: Option<Barrier>,
    /// State files reflecting `progress` (the correlation snapshot, the
    /// followed files' positions), saved once the deliveries are
    /// acknowledged and before the offsets are committed.
    pub saves: Vec<StateFile>,
}

/// A state file to replace once its checkpoint's output is durable.
pub(crate) struct StateFile {
    /// What it holds, for the log.
    pub what: &'static str,
    pub path: std::path::PathBuf,
    pub bytes: Vec<u8>,
}

/// Saves state files; a failure is logged, not fatal (detection goes on, a
/// restart resumes from the previous save: correlation windows miss the
/// last interval, followed files repeat lines).
fn save_state(saves: Vec<StateFile>) {
    for save in saves {
        if let Err(e) = crate::vocab::atomic::write_atomic(&save.path, &save.bytes) {
            tracing::error!(file = %save.path.display(), error = %e, "saving the {} failed", save.what);
        }
    }
}

/// The writer's side: decides when to checkpoint and hands checkpoints on.
pub(crate) enum Checkpointer {
    /// Files and stdin only: nothing to commit.
    Untracked,
    /// At-least-once: checkpoints go to the committer thread.
    AtLeastOnce(mpsc::Sender<Checkpoint>),
    /// Exactly-once: the writer commits the transaction itself.
    ExactlyOnce {
        producer: Arc<KafkaProducer>,
        consumer: Arc<KafkaConsumer>,
        metrics: Option<Arc<Metrics>>,
    },
}

impl Checkpointer {
    /// Makes everything up to `progress` durable (or hands it to the thread that will).
    pub(crate) fn checkpoint(&self, cp: Checkpoint) -> Result<(), KafkaError> {
        match self {
            Checkpointer::Untracked => {
                save_state(cp.saves);
                if let Some(b) = cp.barrier {
                    b.release();
                }
                Ok(())
            }
            Checkpointer::AtLeastOnce(tx) => tx
                .blocking_send(cp)
                .map_err(|_| KafkaError::Other("the committer stopped".into())),
            Checkpointer::ExactlyOnce {
                producer,
                consumer,
                metrics,
            } => {
                let started = Instant::now();
                let result = commit_transaction(producer, consumer, &cp.progress);
                observe_commit(metrics.as_deref(), started, result.is_ok());
                if let Err(e) = result {
                    // Abort so the transaction's alerts are never visible;
                    // a restart handles its records again from the last commit.
                    if let Err(abort) = producer.abort_transaction(TRANSACTION_TIMEOUT) {
                        tracing::error!(error = %abort, "aborting the transaction failed");
                    }
                    return Err(e);
                }
                // After the commit: a crash just before this save loses the
                // windows' last interval (documented); see docs/correlation.md.
                save_state(cp.saves);
                if let Some(b) = cp.barrier {
                    b.release();
                }
                Ok(())
            }
        }
    }
}

fn commit_transaction(
    producer: &KafkaProducer,
    consumer: &KafkaConsumer,
    progress: &Progress,
) -> Result<(), KafkaError> {
    if !progress.is_empty() {
        // Only partitions this member owns: offsets of partitions handed to
        // another member would overwrite its progress.
        let owned = consumer
            .assignment()
            .map_err(KafkaError::client("reading the assignment"))?;
        let offsets =
            progress.to_list(|topic, partition| owned.find_partition(topic, partition).is_some());
        if offsets.count() > 0 {
            let group = consumer
                .group_metadata()
                .ok_or_else(|| KafkaError::Other("the consumer has no group metadata".into()))?;
            producer
                .send_offsets_to_transaction(&offsets, &group, TRANSACTION_TIMEOUT)
                .map_err(KafkaError::client("sending offsets to the transaction"))?;
        }
    }
    producer
        .commit_transaction(TRANSACTION_TIMEOUT)
        .map_err(KafkaError::client("committing the transaction"))?;
    producer
        .begin_transaction()
        .map_err(KafkaError::client("beginning a transaction"))
}

fn observe_commit(metrics: Option<&Metrics>, started: Instant, ok: bool) {
    if let Some(m) = metrics {
        m.kafka_commit_latency
            .observe(started.elapsed().as_secs_f64());
        m.kafka_commits
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }
}

/// Waits until every delivery is acknowledged; the first failure is the
/// error (counted per topic).
pub(crate) fn await_deliveries(
    runtime: &tokio::runtime::Handle,
    deliveries: Pending,
    metrics: Option<&Metrics>,
) -> Result<(), KafkaError> {
    for delivery in deliveries {
        let failure = match runtime.block_on(delivery) {
            Ok(Ok(_)) => None,
            Ok(Err((source, msg))) => Some(KafkaError::Delivery {
                topic: rdkafka::message::Message::topic(&msg).to_string(),
                source,
            }),
            Err(_) => Some(KafkaError::Other("the producer dropped a delivery".into())),
        };
        if let Some(e) = failure {
            if let (Some(m), KafkaError::Delivery { topic, .. }) = (metrics, &e) {
                m.kafka_produce_errors.with_label_values(&[topic]).inc();
            }
            return Err(e);
        }
    }
    Ok(())
}

/// The at-least-once commit thread: acknowledgements first, offsets after.
pub(crate) struct Committer {
    pub consumer: Option<Arc<KafkaConsumer>>,
    pub runtime: tokio::runtime::Handle,
    pub metrics: Option<Arc<Metrics>>,
}

impl Committer {
    /// Runs until the writer drops its sender. Blocking: run it on its own thread.
    pub(crate) fn run(self, mut checkpoints: mpsc::Receiver<Checkpoint>) -> Result<(), KafkaError> {
        let mut committed = Progress::default();
        while let Some(cp) = checkpoints.blocking_recv() {
            await_deliveries(&self.runtime, cp.deliveries, self.metrics.as_deref())?;
            save_state(cp.saves);
            if let Some(consumer) = &self.consumer {
                let moved = cp.progress.ahead_of(&committed);
                if !moved.is_empty() && self.commit(consumer, &moved) {
                    committed.merge(&moved);
                }
            }
            if let Some(b) = cp.barrier {
                b.release();
            }
        }
        Ok(())
    }

    /// Commits the offsets of partitions this consumer still owns. A failed
    /// commit is not fatal: the next one covers it, and at worst a restart
    /// repeats some alerts.
    fn commit(&self, consumer: &KafkaConsumer, moved: &Progress) -> bool {
        let owned = match consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "reading the assignment failed; commit skipped");
                return false;
            }
        };
        let offsets =
            moved.to_list(|topic, partition| owned.find_partition(topic, partition).is_some());
        if offsets.count() == 0 {
            return false;
        }
        let started = Instant::now();
        let result = consumer.commit(&offsets, CommitMode::Sync);
        observe_commit(self.metrics.as_deref(), started, result.is_ok());
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed; the next commit retries");
                false
            }
        }
    }
}
