//! From a model's surprise to a 0-100 score, against the job's own history.
//!
//! A model's raw output (`-log10` of a tail probability) means different
//! things in different jobs: a job over thousands of noisy web clients sees
//! one-in-a-thousand values every hour, a job over ten quiet admins never
//! does. As SIEM anomaly scoring does, each job keeps the distribution of
//! every raw value it has produced and scores a new one by where it falls:
//!
//! * up to the job's 95th percentile: 0-20 (Low), so that ordinary buckets
//!   stay Low by construction;
//! * up to the 99.9th percentile: 20-50 (Medium); estimated from the 95th
//!   and 99th, so that the anomalies in the history do not raise it;
//! * beyond it, on an absolute scale: every 100-fold drop in probability
//!   past the 99.9th percentile adds most of the remaining distance to
//!   100, so 80 (Critical) needs a value about a hundred times rarer than
//!   the rarest thousandth of the job's history.
//!
//! Until a job has [`PRIOR_WEIGHT`] raw values, the percentiles lean on
//! those of a perfectly calibrated model (where P(raw > t) = 10^-t), and the
//! anchors never drop below them: a job whose history is unusually calm does
//! not get to call ordinary values rare.

use serde::{Deserialize, Serialize};

/// Histogram resolution on the raw scale.
const BIN_WIDTH: f64 = 0.05;
/// Bins cover raw values 0..50; larger ones go to the last bin.
const BINS: usize = 1000;
/// Raw values after which the job's own percentiles count fully.
pub(crate) const PRIOR_WEIGHT: f64 = 50.0;
/// Percentiles of a calibrated model: P(raw > 1.3) = 5%, P(raw > 3) = 0.1%.
const PRIOR_P95: f64 = 1.3;
const PRIOR_P999: f64 = 3.0;
/// Raw units past the 99.9th percentile per e-fold towards 100.
const TAIL_SCALE: f64 = 2.18;

/// The job's history of raw scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Counts per bin, kept sparse in files: most bins of a job stay empty.
    bins: Vec<u64>,
    count: u64,
}

impl Default for Normalizer {
    fn default() -> Self {
        Normalizer {
            bins: vec![0; BINS],
            count: 0,
        }
    }
}

impl Normalizer {
    /// Records a raw value. Values past the current 99.9th percentile are
    /// recorded at it: a few anomalies must not raise the bar for the next
    /// ones, while a job that is noisier than thought still raises it,
    /// one percentile step at a time.
    pub fn record(&mut self, raw: f64) {
        let raw = raw.min(self.anchors().1);
        if self.bins.len() != BINS {
            self.bins.resize(BINS, 0);
        }
        let bin = ((raw.max(0.0) / BIN_WIDTH) as usize).min(BINS - 1);
        self.bins[bin] += 1;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The raw value below which a share `q` of the history lies.
    fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let target = (q * self.count as f64).ceil() as u64;
        let mut seen = 0;
        for (i, &c) in self.bins.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some((i + 1) as f64 * BIN_WIDTH);
            }
        }
        Some(BINS as f64 * BIN_WIDTH)
    }

    /// The two anchors: the 95th and 99.9th percentiles, blended with the
    /// calibrated prior while the history is short and never below it.
    fn anchors(&self) -> (f64, f64) {
        let w = self.count as f64 / (self.count as f64 + PRIOR_WEIGHT);
        let blend = |q: f64, prior: f64| match self.quantile(q) {
            Some(v) => (w * v + (1.0 - w) * prior).max(prior),
            None => prior,
        };
        let p95 = blend(0.95, PRIOR_P95);
        // The 99.9th percentile of a short history is its one or two largest
        // values, which are often the anomalies themselves: extrapolate it
        // from the 95th and 99th, which a handful of anomalies do not move.
        let tail = match (self.quantile(0.95), self.quantile(0.99)) {
            (Some(q95), Some(q99)) => {
                let extrapolated = q99 + 1.5 * (q99 - q95);
                (w * extrapolated + (1.0 - w) * PRIOR_P999).max(PRIOR_P999)
            }
            _ => PRIOR_P999,
        };
        let p999 = tail.max(p95 + 1.0);
        (p95, p999)
    }

    /// The 0-100 score of a raw value.
    pub fn score(&self, raw: f64) -> f64 {
        let (p95, p999) = self.anchors();
        let raw = raw.max(0.0);
        let score = if raw <= p95 {
            20.0 * raw / p95
        } else if raw <= p999 {
            20.0 + 30.0 * (raw - p95) / (p999 - p95)
        } else {
            50.0 + 50.0 * (1.0 - (-(raw - p999) / TAIL_SCALE).exp())
        };
        // One decimal: scores are compared and displayed, not computed with.
        (score.clamp(0.0, 100.0) * 10.0).round() / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_the_calibrated_prior_before_any_history() {
        let n = Normalizer::default();
        assert_eq!(n.score(0.0), 0.0);
        assert!(n.score(1.0) < 20.0);
        assert!(n.score(2.0) >= 20.0 && n.score(2.0) < 50.0);
        assert!(n.score(5.0) >= 80.0, "{}", n.score(5.0));
        assert_eq!(n.score(1000.0), 100.0);
    }

    #[test]
    fn ninety_five_percent_of_the_history_scores_low() {
        let mut n = Normalizer::default();
        // A noisy job: raw values spread up to 4.
        let raws: Vec<f64> = (0..5000).map(|i| (i % 400) as f64 / 100.0).collect();
        for &r in &raws {
            n.record(r);
        }
        let low = raws.iter().filter(|&&r| n.score(r) < 20.0).count();
        assert!(low as f64 >= 0.94 * raws.len() as f64, "{low}");
        // In this job a raw 3.5 is common; it must not be Critical.
        assert!(n.score(3.5) < 50.0);
        assert!(n.score(12.0) >= 80.0);
    }

    #[test]
    fn scores_are_monotonic_in_the_raw_value() {
        let mut n = Normalizer::default();
        for i in 0..300 {
            n.record((i % 30) as f64 / 10.0);
        }
        let mut last = -1.0;
        for i in 0..400 {
            let s = n.score(i as f64 / 10.0);
            assert!(s >= last, "{i}: {s} < {last}");
            last = s;
        }
    }
}
