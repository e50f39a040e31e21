//! The detector's state as changelog records (scale-out): what changed
//! since the last write, and how to put it back on another instance.
//!
//! Per-key records keep each one small and each write proportional to what
//! changed: a job's clock, population and score history ([`StateKey::Job`]),
//! an entity's baseline and recent anomalies ([`StateKey::Entity`]), an
//! open bucket's accumulator of one entity ([`StateKey::Bucket`]). A bucket
//! that closes deletes its accumulators.
//!
//! Records are written jobs first, then entities, then buckets. A write cut
//! short (kill -9 in the few milliseconds of a flush) restores a job that
//! closed a bucket some of whose entities had not learned it yet: they miss
//! one bucket of history. Exactly-once mode writes the changelog in the
//! checkpoint's transaction and has no such window.

use super::{Acc, Detector, EntityModel, JobState, Population};
use crate::anomaly::normalize::Normalizer;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};

/// Changelog key prefixes, shared with the correlation owner's keys on the
/// same partition: an anomaly key starts with `a`.
const JOB: &str = "aj";
const ENTITY: &str = "ae";
const BUCKET: &str = "ab";

/// A piece of a detector's state, as the changelog keys it. Jobs are named,
/// not numbered: a reload may number them differently.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StateKey {
    /// A job's clock, population and score normalizer.
    Job(String),
    /// An entity's baseline and recent anomalies: job, entity key.
    Entity(String, String),
    /// An open bucket's accumulator: job, bucket start (epoch seconds), entity key.
    Bucket(String, i64, String),
}

impl StateKey {
    /// The key as written: a JSON array whose first element says the kind.
    pub fn encode(&self) -> Option<String> {
        match self {
            StateKey::Job(job) => serde_json::to_string(&(JOB, job)),
            StateKey::Entity(job, entity) => serde_json::to_string(&(ENTITY, job, entity)),
            StateKey::Bucket(job, start, entity) => {
                serde_json::to_string(&(BUCKET, job, start, entity))
            }
        }
        .ok()
    }

    /// A key as written; `None` if it is not a detector's.
    pub fn decode(key: &[u8]) -> Option<StateKey> {
        let value: serde_json::Value = serde_json::from_slice(key).ok()?;
        match value.get(0)?.as_str()? {
            JOB => {
                let (_, job) = serde_json::from_value::<(String, String)>(value).ok()?;
                Some(StateKey::Job(job))
            }
            ENTITY => {
                let (_, job, entity) =
                    serde_json::from_value::<(String, String, String)>(value).ok()?;
                Some(StateKey::Entity(job, entity))
            }
            BUCKET => {
                let (_, job, start, entity) =
                    serde_json::from_value::<(String, String, i64, String)>(value).ok()?;
                Some(StateKey::Bucket(job, start, entity))
            }
            _ => None,
        }
    }

    /// Whether a written key is an anomaly owner's (any kind, known or not).
    pub fn is_anomaly_key(key: &[u8]) -> bool {
        key.starts_with(b"[\"a")
    }
}

/// What a restored record was.
#[derive(Debug, Clone, PartialEq)]
pub enum Restored {
    /// Job or entity state (or a job no longer loaded: ignored).
    State,
    /// An open bucket's accumulator that holds every sample of its job,
    /// bucket and entity up to this time.
    Bucket(DateTime<Utc>),
}

/// What changed in one job since the last write.
#[derive(Debug, Default)]
pub(super) struct JobChanges {
    pub(super) job: bool,
    buckets: HashSet<(i64, Box<str>)>,
    entities: HashSet<Box<str>>,
    closed: Vec<(i64, Box<str>)>,
}

impl JobChanges {
    pub(super) fn bucket_touched(&mut self, start: i64, entity: &str) {
        self.buckets.insert((start, entity.into()));
    }

    pub(super) fn bucket_closed<'a>(
        &mut self,
        start: i64,
        entities: impl Iterator<Item = &'a Box<str>>,
    ) {
        self.job = true;
        for key in entities {
            let bucket = (start, key.clone());
            self.buckets.remove(&bucket);
            self.closed.push(bucket);
            self.entities.insert(key.clone());
        }
    }
}

#[derive(Serialize, Deserialize)]
struct JobRecord {
    closed_before: i64,
    newest: Option<i64>,
    buckets_closed: u64,
    population: Population,
    normalizer: Normalizer,
}

#[derive(Serialize, Deserialize)]
struct EntityRecord {
    model: Option<EntityModel>,
    recent: VecDeque<(i64, f64)>,
}

#[derive(Serialize, Deserialize)]
struct BucketRecord {
    acc: Acc,
    applied_until: DateTime<Utc>,
}

/// Largest record written: brokers refuse messages over 1 MB by default.
/// A job's population past it (a `rare` job with tens of thousands of
/// values) is not saved, and said so; the job restores without it.
const MAX_RECORD: usize = 900_000;

impl Detector {
    /// A detector that records what changes, for [`Detector::take_changes`].
    pub fn tracking_changes(mut self) -> Self {
        self.tracking = true;
        for job in &mut self.jobs {
            job.changes.get_or_insert_with(Default::default);
        }
        self
    }

    /// The records of what changed since the last call, in the order they
    /// must be written; `None` is a tombstone. Bucket records say that
    /// every sample up to `applied_until` is in them.
    pub fn take_changes(
        &mut self,
        applied_until: DateTime<Utc>,
    ) -> Vec<(StateKey, Option<Vec<u8>>)> {
        let mut jobs = Vec::new();
        let mut entities = Vec::new();
        let mut closed = Vec::new();
        let mut open = Vec::new();
        for state in &mut self.jobs {
            let Some(changes) = state.changes.as_mut().map(std::mem::take) else {
                continue;
            };
            let name = state.job.name().to_string();
            if changes.job {
                let record = JobRecord {
                    closed_before: state.closed_before,
                    newest: state.newest,
                    buckets_closed: state.model.buckets_closed,
                    population: state.model.population.clone(),
                    normalizer: state.model.normalizer.clone(),
                };
                match serde_json::to_vec(&record) {
                    Ok(bytes) if bytes.len() <= MAX_RECORD => {
                        jobs.push((StateKey::Job(name.clone()), Some(bytes)))
                    }
                    Ok(bytes) => tracing::error!(
                        job = %name,
                        bytes = bytes.len(),
                        "the anomaly job's population is too large for a changelog record; not saved (a new owner of its partition starts it without)"
                    ),
                    Err(e) => {
                        tracing::error!(job = %name, error = %e, "serialising an anomaly job's state")
                    }
                }
            }
            let mut changed: Vec<Box<str>> = changes.entities.into_iter().collect();
            changed.sort();
            for entity in changed {
                let record = EntityRecord {
                    model: state.model.entities.get(&*entity).cloned(),
                    recent: state.recent.get(&entity).cloned().unwrap_or_default(),
                };
                let key = StateKey::Entity(name.clone(), entity.into());
                let bytes = match record {
                    EntityRecord {
                        model: None,
                        recent,
                    } if recent.is_empty() => None,
                    record => serde_json::to_vec(&record).ok(),
                };
                entities.push((key, bytes));
            }
            for (start, entity) in changes.closed {
                closed.push((StateKey::Bucket(name.clone(), start, entity.into()), None));
            }
            let mut touched: Vec<(i64, Box<str>)> = changes.buckets.into_iter().collect();
            touched.sort();
            for (start, entity) in touched {
                let Some(acc) = state.open.get(&start).and_then(|b| b.get(&entity)) else {
                    continue;
                };
                let record = BucketRecord {
                    acc: acc.clone(),
                    applied_until,
                };
                if let Ok(bytes) = serde_json::to_vec(&record) {
                    open.push((
                        StateKey::Bucket(name.clone(), start, entity.into()),
                        Some(bytes),
                    ));
                }
            }
        }
        jobs.extend(entities);
        jobs.extend(closed);
        jobs.extend(open);
        jobs
    }

    /// Puts one record back; `None` when the payload does not read.
    /// Call [`Detector::restored`] after the last one.
    pub fn restore_record(&mut self, key: &StateKey, payload: &[u8]) -> Option<Restored> {
        let name = match key {
            StateKey::Job(job) | StateKey::Entity(job, _) | StateKey::Bucket(job, ..) => job,
        };
        let found = self.jobs.iter_mut().find(|j| j.job.name() == name.as_str());
        match key {
            StateKey::Job(_) => {
                let record: JobRecord = serde_json::from_slice(payload).ok()?;
                if let Some(state) = found {
                    state.closed_before = record.closed_before;
                    state.newest = record.newest;
                    state.model.buckets_closed = record.buckets_closed;
                    state.model.population = record.population;
                    state.model.normalizer = record.normalizer;
                }
                Some(Restored::State)
            }
            StateKey::Entity(_, entity) => {
                let record: EntityRecord = serde_json::from_slice(payload).ok()?;
                if let Some(state) = found {
                    if let Some(model) = record.model {
                        state.model.entities.insert(entity.clone(), model);
                    }
                    if !record.recent.is_empty() {
                        state.recent.insert(entity.as_str().into(), record.recent);
                    }
                }
                Some(Restored::State)
            }
            StateKey::Bucket(_, start, entity) => {
                let record: BucketRecord = serde_json::from_slice(payload).ok()?;
                if let Some(state) = found {
                    state
                        .open
                        .entry(*start)
                        .or_default()
                        .insert(entity.as_str().into(), record.acc);
                }
                Some(Restored::Bucket(record.applied_until))
            }
        }
    }

    /// After a restore: accumulators of buckets the restored clock has
    /// closed are dropped (a write cut short may have left them), and what
    /// was restored is not written again.
    pub fn restored(&mut self) {
        for state in &mut self.jobs {
            let closed_before = state.closed_before;
            state.open.retain(|start, _| *start >= closed_before);
            if let Some(changes) = &mut state.changes {
                *changes = JobChanges::default();
            }
        }
    }

    /// The bucket a sample of `job` at `time` falls in (epoch seconds).
    pub fn bucket_of(&self, job: usize, time: DateTime<Utc>) -> Option<i64> {
        let state: &JobState = self.jobs.get(job)?;
        Some(state.bucket_start(time))
    }
}
