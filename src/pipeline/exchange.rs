//! Scale-out on the writer stage: correlation matches leave through the
//! repartition topic, and the partitions of it this instance is assigned
//! are run here, each by a [`PartitionOwner`] restored from its changelog
//! partition (design and guarantees: `correlate::exchange`,
//! docs/correlation.md "Scaling out").
//!
//! The repartition topic is read by the same consumer, in the same group,
//! as the input topics (as Kafka Streams does): its offsets are committed
//! by the same checkpoints, after the alerts and the changelog records
//! before them are acknowledged, and a revoke drains it like any input.

use super::kafka::consumer::KafkaConsumer;
use super::kafka::producer::{KafkaProducer, Pending};
use super::kafka::{self, KafkaError};
use crate::correlate::exchange::{Exchanged, Match, PartitionOwner};
use crate::correlate::{CorrelationSet, Correlator, Firing, Observation};
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedHeaders;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the exchange goes and how its owners are bounded.
#[derive(Debug, Clone)]
pub(super) struct ExchangeTopics {
    pub(super) repartition: String,
    pub(super) changelog: String,
    /// Partitions of each (checked equal at start).
    pub(super) partitions: i32,
    /// Partitions of all input topics together: how many inputs an owner
    /// waits to hear from.
    pub(super) inputs: u32,
}

/// Checks the two topics at start: both exist, with the same partition
/// count. Returns the topics with their partition count.
pub(super) fn check_topics(
    properties: &[(String, String)],
    repartition: &str,
    changelog: &str,
    input_topics: &[String],
) -> Result<ExchangeTopics, KafkaError> {
    let count = |topic: &str| kafka::state::partition_count(properties, topic);
    let (r, c) = (count(repartition)?, count(changelog)?);
    for (topic, n, key) in [
        (repartition, r, "correlation.repartition_topic"),
        (changelog, c, "correlation.changelog_topic"),
    ] {
        if n == 0 {
            return Err(KafkaError::Other(format!(
                "{key} `{topic}` does not exist: create it before starting (deploy/ and docs/correlation.md say how)"
            )));
        }
    }
    if r != c {
        return Err(KafkaError::Other(format!(
            "correlation.changelog_topic `{changelog}` has {c} partitions, correlation.repartition_topic `{repartition}` {r}: they must have the same number"
        )));
    }
    let mut inputs = 0u32;
    for topic in input_topics {
        inputs = inputs.saturating_add(count(topic)?.max(0) as u32);
    }
    Ok(ExchangeTopics {
        repartition: repartition.to_string(),
        changelog: changelog.to_string(),
        partitions: r,
        inputs,
    })
}

/// The writer's side of scale-out.
pub(super) struct ExchangeStage {
    pub(super) topics: ExchangeTopics,
    pub(super) producer: Arc<KafkaProducer>,
    pub(super) consumer: Arc<KafkaConsumer>,
    pub(super) properties: Vec<(String, String)>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) metrics: Option<Arc<super::metrics::Metrics>>,
    /// Builds the correlator of a newly owned partition.
    pub(super) template: Correlator,
    pub(super) lateness: Span,
    pub(super) idle_timeout: Duration,
    /// Most matches an owner holds for the watermark (`correlation.max_groups`).
    pub(super) max_pending: usize,
    pub(super) owners: HashMap<i32, PartitionOwner>,
    /// Newest event time per input this instance read, and whether it moved
    /// since progress was last sent.
    pub(super) input_times: HashMap<String, (DateTime<Utc>, bool)>,
    /// Matches left out as behind the watermark, and when that was last said.
    pub(super) dropped_behind: u64,
    /// Matches released early because a pending set was full.
    pub(super) forced: u64,
    pub(super) warned_at: Option<Instant>,
}

impl ExchangeStage {
    /// Sends a match to the owner of its group.
    pub(super) fn send_match(
        &mut self,
        set: &CorrelationSet,
        obs: Observation,
        pending: &mut Pending,
    ) -> Result<(), KafkaError> {
        let Some(key) = Match::route_key(set, &obs) else {
            return Ok(());
        };
        let Some(m) = Match::of(set, obs) else {
            return Ok(());
        };
        let value = serde_json::to_vec(&Exchanged::Match(m))
            .map_err(|e| KafkaError::Other(format!("encoding a repartition record: {e}")))?;
        kafka::producer::send(
            &self.producer,
            &self.topics.repartition,
            Some(key.as_bytes()),
            &value,
            OwnedHeaders::new(),
            pending,
        )
    }

    /// Notes how far each input has been read (event time).
    pub(super) fn note_inputs(&mut self, by_input: &[(String, i32, DateTime<Utc>)]) {
        for (source, partition, time) in by_input {
            if *source == self.topics.repartition {
                continue;
            }
            let input = format!("{source}[{partition}]");
            let entry = self.input_times.entry(input).or_insert((*time, true));
            if *time > entry.0 {
                *entry = (*time, true);
            }
        }
    }

    /// Tells every owner how far the inputs read here have come: sent after
    /// the matches they cover (one producer keeps the order per partition).
    pub(super) fn send_progress(&mut self, pending: &mut Pending) -> Result<(), KafkaError> {
        for (input, (time, moved)) in &mut self.input_times {
            if !std::mem::take(moved) {
                continue;
            }
            let record = Exchanged::Progress {
                input: input.clone(),
                time: *time,
                inputs: self.topics.inputs,
            };
            let value = serde_json::to_vec(&record)
                .map_err(|e| KafkaError::Other(format!("encoding a progress record: {e}")))?;
            for partition in 0..self.topics.partitions {
                kafka::producer::send_to_partition(
                    &self.producer,
                    &self.topics.repartition,
                    partition,
                    input.as_bytes(),
                    Some(&value),
                    pending,
                )?;
            }
        }
        Ok(())
    }

    /// Takes a record of a repartition partition this instance owns.
    pub(super) fn receive(
        &mut self,
        partition: i32,
        record: Exchanged,
    ) -> Result<Vec<Firing>, KafkaError> {
        let owner = self.owner(partition)?;
        let before = owner.counts;
        let fired = owner.offer(record, Instant::now());
        let after = owner.counts;
        self.dropped_behind += after.behind - before.behind;
        self.forced += after.forced - before.forced;
        if (after.behind > before.behind || after.forced > before.forced)
            && self
                .warned_at
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            self.warned_at = Some(Instant::now());
            tracing::warn!(
                partition,
                behind_the_watermark = self.dropped_behind,
                released_early = self.forced,
                "correlation is not seeing every match in event-time order: matches behind the released watermark were left out (replays of what was applied, or an input more than correlation.idle_source_timeout late), or the pending set was full and its oldest were released before every input passed them (an input holds the watermark back)"
            );
        }
        Ok(fired)
    }

    /// The owner of `partition`, restored from its changelog partition the
    /// first time it is needed.
    fn owner(&mut self, partition: i32) -> Result<&mut PartitionOwner, KafkaError> {
        if !self.owners.contains_key(&partition) {
            let started = Instant::now();
            let mut owner =
                PartitionOwner::new(self.template.fresh(), self.lateness, self.idle_timeout)
                    .with_max_pending(self.max_pending);
            let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            kafka::state::read_from_start(
                &self.properties,
                &self.topics.changelog,
                Some(partition),
                |key, payload| {
                    if let Some(key) = key {
                        records.push((key.to_vec(), payload.map(<[u8]>::to_vec)));
                    }
                },
            )?;
            owner.restore(
                records.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
                Instant::now(),
            );
            tracing::info!(
                partition,
                records = records.len(),
                groups = owner.correlator().active_groups(),
                pending = owner.pending(),
                unreadable = owner.counts.unreadable,
                took_ms = started.elapsed().as_millis() as u64,
                "correlation partition restored from its changelog"
            );
            if let Some(m) = &self.metrics {
                m.correlation_restore_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
            self.owners.insert(partition, owner);
        }
        self.owners
            .get_mut(&partition)
            .ok_or_else(|| KafkaError::Other(format!("no owner for partition {partition}")))
    }

    /// While the input is quiet: takes up newly assigned partitions (their
    /// pending matches must not wait for a new record), and releases what
    /// idle inputs no longer hold back.
    pub(super) fn tick(&mut self) -> Result<Vec<Firing>, KafkaError> {
        let assigned: Vec<i32> = match self.consumer.assignment() {
            Ok(list) => list
                .elements()
                .iter()
                .filter(|e| e.topic() == self.topics.repartition)
                .map(|e| e.partition())
                .collect(),
            Err(_) => Vec::new(),
        };
        let now = Instant::now();
        let mut fired = Vec::new();
        // Only owners of what is assigned now: one restored in the moment a
        // revoke went through belongs to another instance until the next
        // revoke clears it (every rebalance revokes everything first).
        for partition in assigned {
            fired.extend(self.owner(partition)?.release(now));
        }
        Ok(fired)
    }

    /// The changelog records of every owner, each to its partition.
    pub(super) fn write_changelog(&mut self, pending: &mut Pending) -> Result<(), KafkaError> {
        for (&partition, owner) in &mut self.owners {
            for (key, value) in owner.changelog() {
                kafka::producer::send_to_partition(
                    &self.producer,
                    &self.topics.changelog,
                    partition,
                    key.as_bytes(),
                    value.as_deref(),
                    pending,
                )?;
            }
        }
        Ok(())
    }

    /// After a revoke has been drained: every owner's state is in its
    /// changelog; partitions still assigned are restored from it when next
    /// needed, the others belong to another instance now.
    pub(super) fn let_go(&mut self) {
        self.owners.clear();
    }

    /// Runs the correlations of `set` from now on.
    pub(super) fn replace_rules(&mut self, set: Arc<CorrelationSet>) {
        self.template.replace_rules(set.clone());
        for owner in self.owners.values_mut() {
            owner.replace_rules(set.clone());
        }
    }

    /// Waits until what is pending is acknowledged.
    pub(super) fn await_all(&self, pending: &mut Pending) -> Result<(), KafkaError> {
        kafka::commit::await_deliveries(
            &self.runtime,
            std::mem::take(pending),
            self.metrics.as_deref(),
        )
    }
}
