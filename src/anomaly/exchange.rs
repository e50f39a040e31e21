//! Anomaly jobs across instances: samples travel over the repartition
//! topic as correlation matches do (`correlate::exchange`), are held until
//! every upstream input has passed them ([`Watermark`]), then run in
//! event-time order by the owner of their partition, whose detector state
//! is kept per key in the changelog ([`super::detector::changes`]).
//!
//! Why a whole job goes to one partition, not each (job, entity): a job's
//! scores are judged against the job's population and normalised against
//! the job's own history of scores, both across all its entities. Split
//! by entity, each owner would see a different population, and scores
//! would depend on the partitioning; one owner per job gives what a scan
//! gives. Samples are small and cheap to count (the work is at bucket
//! close), so one owner keeps up with a job's stream; jobs spread over the
//! partitions.
//!
//! Why event-time order: a bucket closes when the job's newest sample
//! passes its end plus the job's latency. Samples of one job arrive from
//! many inputs interleaved by chance; in event-time order they close the
//! same buckets with the same contents as a scan of the same events.
//!
//! Replays: a sample already held is recognised by its key (event time,
//! where its event was read, job, ratio side); one at or behind the
//! released watermark, or behind what its open bucket's saved accumulator
//! holds, was applied already and is dropped.

use super::detector::changes::{Restored, StateKey};
use super::{Anomaly, AnomalySet, Detector, Sample};
use crate::event::Origin;
use crate::vocab::held::{compacted, Held};
use crate::vocab::watermark::{Progress, ReleaseCounts, Watermark, WatermarkRecord};
use crate::vocab::Span;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A job sample, as it travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// The job's name (jobs are numbered per rule set: names survive reloads).
    pub job: String,
    /// The event also matched the ratio numerator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub numerator: bool,
    /// Entity field values joined by U+001F.
    pub entity: String,
    /// The job's `field` as text, for functions that read one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The event's time.
    pub time: DateTime<Utc>,
    /// Where the event was read.
    pub origin: Origin,
}

impl SampleRecord {
    /// The record of a sample of `set`; `None` if its job is not in the set.
    pub fn of(set: &AnomalySet, sample: Sample) -> Option<SampleRecord> {
        Some(SampleRecord {
            job: set.get(sample.job)?.name().to_string(),
            numerator: sample.numerator,
            entity: sample.entity.into(),
            value: sample.value,
            time: sample.time,
            origin: sample.origin,
        })
    }

    /// The repartition key: the job, so that a job's samples meet in one
    /// partition (why: the module's docs).
    pub fn route_key(set: &AnomalySet, sample: &Sample) -> Option<String> {
        serde_json::to_string(&("a", set.get(sample.job)?.name())).ok()
    }
}

/// The order samples are released in, which is also their identity.
type SampleKey = (DateTime<Utc>, String, String, bool);

fn key_of(s: &SampleRecord) -> SampleKey {
    (s.time, s.origin.to_string(), s.job.clone(), s.numerator)
}

/// Samples held for the watermark unless the pipeline says otherwise
/// (it passes `correlation.max_groups`).
const DEFAULT_MAX_PENDING: usize = 1_000_000;

/// Keys of the owner's own records (the detector's start with `a` too).
const PENDING: &str = "as";
const META: &str = "am";

/// The anomaly state of one repartition partition.
#[derive(Debug)]
pub struct SampleOwner {
    detector: Detector,
    pending: Held<SampleKey, SampleRecord>,
    watermark: Watermark,
    /// Per open bucket restored from the changelog: (job, start, entity)
    /// holds every sample up to this time.
    applied: HashMap<(String, i64, String), DateTime<Utc>>,
    max_pending: usize,
    /// What was dropped and why.
    pub counts: ReleaseCounts,
}

impl SampleOwner {
    /// An owner with no state running the jobs of `set`.
    pub fn new(set: Arc<AnomalySet>, lateness: Span, idle_timeout: Duration) -> Self {
        SampleOwner {
            detector: Detector::new(set).tracking_changes(),
            pending: Held::default(),
            watermark: Watermark::new(lateness, idle_timeout),
            applied: HashMap::new(),
            max_pending: DEFAULT_MAX_PENDING,
            counts: ReleaseCounts::default(),
        }
    }

    /// Holds at most `max` samples (at least 1) for the watermark.
    pub fn with_max_pending(mut self, max: usize) -> Self {
        self.max_pending = max.max(1);
        self
    }

    /// The detector (to load saved models into, for its jobs and entities).
    pub fn detector_mut(&mut self) -> &mut Detector {
        &mut self.detector
    }

    /// Samples waiting for the watermark.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Runs the jobs of `set` from now on (a rule reload).
    pub fn replace_jobs(&mut self, set: Arc<AnomalySet>) {
        self.detector.replace_jobs(set);
    }

    /// Takes one sample; returns the anomalies of buckets that closed.
    pub fn offer_sample(&mut self, sample: SampleRecord, now: Instant) -> Vec<Anomaly> {
        self.watermark.record_arrived(now);
        self.add(sample);
        self.release(now)
    }

    /// Takes an input's progress; returns the anomalies of buckets that closed.
    pub fn offer_progress(&mut self, progress: &Progress, now: Instant) -> Vec<Anomaly> {
        self.watermark.note(progress, now);
        self.release(now)
    }

    fn is_applied(&self, s: &SampleRecord) -> bool {
        if self.watermark.is_released(s.time) {
            return true;
        }
        if self.applied.is_empty() {
            return false;
        }
        let Some(job) = self.detector.set().find(&s.job) else {
            return false;
        };
        let Some(start) = self.detector.bucket_of(job, s.time) else {
            return false;
        };
        self.applied
            .get(&(s.job.clone(), start, s.entity.clone()))
            .is_some_and(|a| s.time <= *a)
    }

    fn add(&mut self, s: SampleRecord) {
        if self.is_applied(&s) {
            self.counts.behind += 1;
            return;
        }
        if !self.pending.hold(key_of(&s), s) {
            self.counts.duplicates += 1;
        }
    }

    /// Releases what the watermark allows into the detector; returns the
    /// anomalies of buckets that closed. Called on every record and
    /// periodically while the input is quiet.
    pub fn release(&mut self, now: Instant) -> Vec<Anomaly> {
        let point = self.watermark.release_point(
            now,
            self.pending.records(),
            self.max_pending,
            &mut self.counts,
        );
        let Some(upto) = point else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some((_, s)) = self.pending.release_next(upto) {
            let Some(job) = self.detector.set().find(&s.job) else {
                continue;
            };
            out.extend(self.detector.observe(Sample {
                job,
                numerator: s.numerator,
                entity: s.entity.into(),
                value: s.value,
                time: s.time,
                origin: s.origin,
            }));
        }
        if self.watermark.advance(upto) {
            self.applied.retain(|_, a| *a > upto);
        }
        out
    }

    /// The changelog records since the last call, in the order they must
    /// be written: the detector's state, then held samples, then the
    /// watermark. `None` is a tombstone.
    pub fn changelog(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let applied_until = self
            .watermark
            .released()
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut out: Vec<(String, Option<Vec<u8>>)> = self
            .detector
            .take_changes(applied_until)
            .into_iter()
            .filter_map(|(key, value)| Some((key.encode()?, value)))
            .collect();
        self.pending.changelog(PENDING, &mut out);
        self.watermark.changelog(META, &mut out);
        out
    }

    /// Restores the state a changelog holds: `records` in the order they
    /// were written (key, payload; `None` a tombstone), the anomaly
    /// owner's only ([`is_anomaly_key`]). Unreadable records are counted
    /// and skipped.
    pub fn restore<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
        now: Instant,
    ) {
        for (key, payload) in compacted(records) {
            let Some(payload) = payload else { continue };
            if !self.restore_one(key, payload, now) {
                self.counts.unreadable += 1;
            }
        }
        self.detector.restored();
        self.watermark.restarted();
        // A flush cut short may have saved an accumulator with a sample
        // applied but not yet the tombstone of that sample's record.
        let applied: Vec<SampleKey> = self
            .pending
            .records()
            .iter()
            .filter(|(_, s)| self.is_applied(s))
            .map(|(key, _)| key.clone())
            .collect();
        self.pending.restored(applied);
    }

    fn restore_one(&mut self, key: &[u8], payload: &[u8], now: Instant) -> bool {
        if let Some(state) = StateKey::decode(key) {
            return match self.detector.restore_record(&state, payload) {
                None => false,
                Some(Restored::State) => true,
                Some(Restored::Bucket(until)) => {
                    if let StateKey::Bucket(job, start, entity) = state {
                        self.applied.insert((job, start, entity), until);
                    }
                    true
                }
            };
        }
        let Ok(name) = serde_json::from_slice::<serde_json::Value>(key) else {
            return false;
        };
        match name.get(0).and_then(|k| k.as_str()) {
            Some(PENDING) => self.pending.restore(name, payload),
            Some(META) => {
                let Ok(meta) = serde_json::from_slice::<WatermarkRecord>(payload) else {
                    return false;
                };
                self.watermark.restore(meta, now);
                true
            }
            _ => false,
        }
    }
}

/// Whether a changelog key is the anomaly owner's: the correlation owner
/// of the same partition takes the others.
pub fn is_anomaly_key(key: &[u8]) -> bool {
    StateKey::is_anomaly_key(key)
}

#[cfg(test)]
mod tests;
