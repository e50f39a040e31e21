//! Event-time order for the anomaly samples of a whole input (`tocsin scan`).
//!
//! A detector learns as a stream: a bucket is scored once the job's clock
//! has passed its end plus the job's `latency`, and a sample for a bucket
//! already scored is dropped. A scan has the whole input, so, as for
//! correlation matches, it keeps every sample (up to a limit) and, from the
//! first sample whose bucket was already scored, runs them again in
//! event-time order at the end through the jobs in their starting state
//! ([`crate::vocab::replay`]).

use super::{Anomaly, AnomalySet, Detector, Sample};
use crate::vocab::replay::{Replay, Replayable, Replayed};
use crate::vocab::tally;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

impl Replayable for Detector {
    type Item = Sample;
    type Output = Anomaly;
    /// An anomaly is known by its job, entity and bucket.
    type Key = (usize, Vec<(String, String)>, DateTime<Utc>);

    fn observe(&mut self, sample: Sample) -> Vec<Anomaly> {
        Detector::observe(self, sample)
    }

    fn finish(&mut self) -> Vec<Anomaly> {
        Detector::finish(self)
    }

    fn key(a: &Anomaly) -> Self::Key {
        (a.job, a.entity.clone(), a.bucket_start)
    }

    /// Ties (logs often have whole seconds) are broken by what the sample
    /// holds.
    fn order(a: &Sample, b: &Sample) -> std::cmp::Ordering {
        (a.time, a.job, &a.entity, &a.value, a.numerator).cmp(&(
            b.time,
            b.job,
            &b.entity,
            &b.value,
            b.numerator,
        ))
    }
}

/// The samples of a whole input, and what the streaming part handed out.
#[derive(Debug)]
pub struct SampleReorder {
    replay: Replay<Detector>,
    late_by_job: BTreeMap<String, u64>,
}

/// Samples that arrived after their bucket was scored, and what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleLateReport {
    /// Samples whose bucket had closed when they came, per job, most first.
    pub by_job: Vec<(String, u64)>,
    /// Anomalies the ordered run added, when it ran; `None` when the late
    /// samples were left out (a stream, or past the limit).
    pub replayed: Option<usize>,
}

impl SampleReorder {
    /// Keeps up to `limit` samples.
    pub fn new(limit: usize) -> SampleReorder {
        SampleReorder {
            replay: Replay::new(limit),
            late_by_job: BTreeMap::new(),
        }
    }

    /// Takes one sample; returns the anomalies to hand out now. `fresh`
    /// makes a detector of a set in its starting state, for an ordered run.
    pub fn observe(
        &mut self,
        detector: &mut Detector,
        sample: Sample,
        fresh: impl FnOnce(Arc<AnomalySet>) -> Detector,
    ) -> Vec<Anomaly> {
        let late = detector.is_late(&sample);
        if late {
            if let Some(job) = detector.set().get(sample.job) {
                *self.late_by_job.entry(job.name().to_string()).or_default() += 1;
            }
        }
        self.replay
            .observe(detector, sample, late, |d| fresh(d.set().clone()))
    }

    /// At the end of input: the anomalies still to hand out (buckets closed
    /// now, and what the ordered run adds), and the report.
    pub fn finish(
        self,
        detector: &mut Detector,
        fresh: impl FnOnce(Arc<AnomalySet>) -> Detector,
    ) -> (Vec<Anomaly>, SampleLateReport) {
        let (out, how) = self.replay.finish(detector, |d| fresh(d.set().clone()));
        let replayed = match how {
            Replayed::Ordered { added } => Some(added),
            Replayed::Streamed | Replayed::Overflowed => None,
        };
        let report = SampleLateReport {
            by_job: tally::most_first(&self.late_by_job),
            replayed,
        };
        (out, report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twenty buckets of three users' events, `bob` bursting in bucket 16.
    fn samples() -> Vec<Sample> {
        let mut out = Vec::new();
        for b in 0..20i64 {
            for (u, user) in ["alice", "bob", "carol"].into_iter().enumerate() {
                let n = if b == 16 && user == "bob" {
                    80
                } else {
                    2 + (b + u as i64) % 3
                };
                for k in 0..n {
                    out.push(Sample {
                        job: 0,
                        numerator: false,
                        entity: user.into(),
                        value: None,
                        time: DateTime::from_timestamp(1_794_787_200 + b * 600 + k * 7, 0).unwrap(),
                        origin: crate::event::Origin {
                            source: "test".into(),
                            position: crate::event::Position::Line { line: 1 },
                        },
                    });
                }
            }
        }
        out
    }

    fn run(
        samples: Vec<Sample>,
        limit: usize,
    ) -> (Vec<<Detector as Replayable>::Key>, SampleLateReport) {
        let set = crate::anomaly::test_job(|_| {});
        let mut detector = Detector::new(set.clone());
        let mut reorder = SampleReorder::new(limit);
        let mut keys = Vec::new();
        for s in samples {
            let out = reorder.observe(&mut detector, s, Detector::new);
            keys.extend(out.iter().map(<Detector as Replayable>::key));
        }
        let (rest, report) = reorder.finish(&mut detector, Detector::new);
        keys.extend(rest.iter().map(<Detector as Replayable>::key));
        keys.sort();
        (keys, report)
    }

    #[test]
    fn any_order_of_a_whole_input_gives_the_anomalies_of_the_ordered_stream() {
        let in_order = samples();
        let (expected, report) = run(in_order.clone(), 100_000);
        assert!(!expected.is_empty());
        assert_eq!(report, SampleLateReport::default());
        let reversed: Vec<Sample> = in_order.iter().rev().cloned().collect();
        let n = in_order.len();
        let shuffled: Vec<Sample> = (0..n).map(|i| in_order[i * 7919 % n].clone()).collect();
        for other in [reversed, shuffled] {
            let (keys, report) = run(other, 100_000);
            assert_eq!(keys, expected);
            assert!(report.by_job[0].1 > 0, "{report:?}");
            assert_eq!(report.replayed, Some(expected.len()));
        }
    }

    #[test]
    fn past_the_limit_late_samples_are_left_out_and_the_report_says_so() {
        let reversed: Vec<Sample> = samples().into_iter().rev().collect();
        let (_, report) = run(reversed, 50);
        assert_eq!(report.replayed, None);
        assert_eq!(report.by_job[0].0, "j");
    }
}
