//! Scale-out on the writer stage: correlation matches and anomaly samples
//! leave through the repartition topic, and the partitions of it this
//! instance is assigned are run here, each by a [`PartitionOwner`] and a
//! [`SampleOwner`] restored from its changelog partition (design and
//! guarantees: `correlate::exchange`, `anomaly::exchange`,
//! docs/correlation.md "Scaling out").
//!
//! The repartition topic is read by the same consumer, in the same group,
//! as the input topics (as Kafka Streams does): its offsets are committed
//! by the same checkpoints, after the alerts and the changelog records
//! before them are acknowledged, and a revoke drains it like any input.

use super::kafka::consumer::KafkaConsumer;
use super::kafka::producer::{KafkaProducer, Pending};
use super::kafka::{self, KafkaError};
use crate::anomaly::exchange::{is_anomaly_key, SampleOwner, SampleRecord};
use crate::anomaly::{Anomaly, AnomalySet, Sample};
use crate::correlate::exchange::{Match, PartitionOwner};
use crate::correlate::{CorrelationSet, Correlator, Firing, Observation};
use crate::vocab::watermark::{Progress, ReleaseCounts};
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedHeaders;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A record on the repartition topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Exchanged {
    /// A rule match offered to a correlation.
    Match(Match),
    /// A match of an anomaly job's detection.
    Sample(SampleRecord),
    /// An upstream input has been processed up to this event time.
    Progress(Progress),
}

/// What the owners of a partition released: correlation firings and the
/// anomalies of closed buckets.
#[derive(Debug, Default)]
pub(super) struct Released {
    pub(super) firings: Vec<Firing>,
    pub(super) anomalies: Vec<Anomaly>,
}

impl Released {
    fn extend(&mut self, other: Released) {
        self.firings.extend(other.firings);
        self.anomalies.extend(other.anomalies);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.firings.is_empty() && self.anomalies.is_empty()
    }
}

/// The state of one repartition partition: its correlation windows and
/// its anomaly jobs, each with its own watermark over the same progress.
#[derive(Debug)]
pub(super) struct Owners {
    correlation: PartitionOwner,
    anomaly: SampleOwner,
}

impl Owners {
    fn offer(&mut self, record: Exchanged, now: Instant) -> Released {
        match record {
            Exchanged::Match(m) => Released {
                firings: self.correlation.offer_match(m, now),
                anomalies: Vec::new(),
            },
            Exchanged::Sample(s) => Released {
                firings: Vec::new(),
                anomalies: self.anomaly.offer_sample(s, now),
            },
            Exchanged::Progress(p) => Released {
                firings: self.correlation.offer_progress(&p, now),
                anomalies: self.anomaly.offer_progress(&p, now),
            },
        }
    }

    /// What the anomaly jobs did, into the metrics; true when buckets closed.
    fn record(&mut self, metrics: Option<&super::metrics::Metrics>) -> bool {
        super::anomaly_stage::record_stats(metrics, self.anomaly.detector_mut())
    }

    fn release(&mut self, now: Instant) -> Released {
        Released {
            firings: self.correlation.release(now),
            anomalies: self.anomaly.release(now),
        }
    }

    fn counts(&self) -> ReleaseCounts {
        let (c, a) = (self.correlation.counts, self.anomaly.counts);
        ReleaseCounts {
            behind: c.behind + a.behind,
            duplicates: c.duplicates + a.duplicates,
            unreadable: c.unreadable + a.unreadable,
            forced: c.forced + a.forced,
        }
    }
}

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
    /// The anomaly jobs a newly owned partition runs.
    pub(super) anomalies: Arc<AnomalySet>,
    /// Saved models a job starts from when its partition's changelog has
    /// nothing of it yet (`anomaly.model_dir`).
    pub(super) models: Option<PathBuf>,
    pub(super) lateness: Span,
    pub(super) idle_timeout: Duration,
    /// Most matches an owner holds for the watermark (`correlation.max_groups`).
    pub(super) max_pending: usize,
    pub(super) owners: HashMap<i32, Owners>,
    /// Newest event time per input this instance read, and whether it moved
    /// since progress was last sent.
    pub(super) input_times: HashMap<String, (DateTime<Utc>, bool)>,
    /// Records left out as behind the watermark, and when that was last said.
    pub(super) dropped_behind: u64,
    /// Records released early because a pending set was full.
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
        self.send(&key, &Exchanged::Match(m), pending)
    }

    /// Sends an anomaly job's sample to the owner of its job.
    pub(super) fn send_sample(
        &mut self,
        set: &AnomalySet,
        sample: Sample,
        pending: &mut Pending,
    ) -> Result<(), KafkaError> {
        let Some(key) = SampleRecord::route_key(set, &sample) else {
            return Ok(());
        };
        let Some(s) = SampleRecord::of(set, sample) else {
            return Ok(());
        };
        self.send(&key, &Exchanged::Sample(s), pending)
    }

    fn send(&self, key: &str, record: &Exchanged, pending: &mut Pending) -> Result<(), KafkaError> {
        let value = serde_json::to_vec(record)
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
            let record = Exchanged::Progress(Progress {
                input: input.clone(),
                time: *time,
                inputs: self.topics.inputs,
            });
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
    ) -> Result<Released, KafkaError> {
        let metrics = self.metrics.clone();
        let owner = self.owner(partition)?;
        let before = owner.counts();
        let fired = owner.offer(record, Instant::now());
        let after = owner.counts();
        if owner.record(metrics.as_deref()) {
            self.count_entities();
        }
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
                "correlation and anomaly jobs are not seeing every match in event-time order: matches behind the released watermark were left out (replays of what was applied, or an input more than correlation.idle_source_timeout late), or the pending set was full and its oldest were released before every input passed them (an input holds the watermark back)"
            );
        }
        Ok(fired)
    }

    /// The owner of `partition`, restored from its changelog partition the
    /// first time it is needed.
    fn owner(&mut self, partition: i32) -> Result<&mut Owners, KafkaError> {
        if !self.owners.contains_key(&partition) {
            let started = Instant::now();
            let mut owner =
                PartitionOwner::new(self.template.fresh(), self.lateness, self.idle_timeout)
                    .with_max_pending(self.max_pending);
            let mut anomaly =
                SampleOwner::new(self.anomalies.clone(), self.lateness, self.idle_timeout)
                    .with_max_pending(self.max_pending);
            if let Some(dir) = &self.models {
                super::anomaly_stage::load_models(anomaly.detector_mut(), dir);
            }
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
            let now = Instant::now();
            let (samples, matches): (Vec<_>, Vec<_>) = records
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .partition(|(k, _)| is_anomaly_key(k));
            owner.restore(matches, now);
            anomaly.restore(samples, now);
            let entities = anomaly.detector_mut().entities();
            tracing::info!(
                partition,
                records = records.len(),
                groups = owner.correlator().active_groups(),
                anomaly_entities = entities,
                pending = owner.pending() + anomaly.pending(),
                unreadable = owner.counts.unreadable + anomaly.counts.unreadable,
                took_ms = started.elapsed().as_millis() as u64,
                "correlation partition restored from its changelog"
            );
            if let Some(m) = &self.metrics {
                m.correlation_restore_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
            self.owners.insert(
                partition,
                Owners {
                    correlation: owner,
                    anomaly,
                },
            );
        }
        self.owners
            .get_mut(&partition)
            .ok_or_else(|| KafkaError::Other(format!("no owner for partition {partition}")))
    }

    /// While the input is quiet: takes up newly assigned partitions (their
    /// pending matches must not wait for a new record), and releases what
    /// idle inputs no longer hold back.
    pub(super) fn tick(&mut self) -> Result<Released, KafkaError> {
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
        let mut fired = Released::default();
        // Only owners of what is assigned now: one restored in the moment a
        // revoke went through belongs to another instance until the next
        // revoke clears it (every rebalance revokes everything first).
        let metrics = self.metrics.clone();
        for partition in assigned {
            let owner = self.owner(partition)?;
            fired.extend(owner.release(now));
            if owner.record(metrics.as_deref()) {
                self.count_entities();
            }
        }
        Ok(fired)
    }

    /// `tocsin_anomaly_entities`: entities with a baseline over every owner here.
    fn count_entities(&mut self) {
        let Some(m) = &self.metrics else { return };
        let entities: usize = self
            .owners
            .values_mut()
            .map(|o| o.anomaly.detector_mut().entities())
            .sum();
        m.anomaly_entities.set(entities as i64);
    }

    /// The changelog records of every owner, each to its partition.
    pub(super) fn write_changelog(&mut self, pending: &mut Pending) -> Result<(), KafkaError> {
        for (&partition, owner) in &mut self.owners {
            let mut records = owner.correlation.changelog();
            records.extend(owner.anomaly.changelog());
            for (key, value) in records {
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

    /// Runs the correlations of `set` and the jobs of `anomalies` from now on.
    pub(super) fn replace_rules(&mut self, set: Arc<CorrelationSet>, anomalies: Arc<AnomalySet>) {
        self.template.replace_rules(set.clone());
        self.anomalies = anomalies.clone();
        for owner in self.owners.values_mut() {
            owner.correlation.replace_rules(set.clone());
            owner.anomaly.replace_jobs(anomalies.clone());
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
