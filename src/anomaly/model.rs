//! Baseline models: how likely a bucket's value is, given its history.
//!
//! Numeric functions (counts, distinct counts, sums, means, ratios) are
//! modelled by a one-dimensional Gaussian mixture fitted with linfa's EM
//! (`linfa-clustering`). Activity is skewed and often multi-modal (a user
//! who logs in from the office and from a batch job), which a mixture
//! represents and a single mean/deviation does not; on one dimension EM is
//! cheap enough to refit per entity as buckets close. Values are modelled
//! on a log scale (`ln(1 + v)`), where "ten times the usual" is the same
//! distance for a quiet user and a busy server; ratios stay on their own
//! 0..1 scale.
//!
//! A fitted mixture alone is over-confident on short or flat histories: a
//! user who failed exactly once in each of ten buckets has zero variance,
//! and two failures would look impossible. Every component's variance is
//! therefore widened by the noise the value itself must have (Poisson
//! counting noise for counts, binomial noise for ratios, a relative floor
//! for sums and means) and by the uncertainty of estimating from few
//! buckets.
//!
//! `rare` has no numeric value to model; it uses value frequencies
//! ([`ValueCounts`]), smoothed towards the frequency of the value across
//! all entities, so a process new to one host but common on all others is
//! less surprising than one nobody has run.

use super::poisson;
use crate::sigma::anomaly::{Function, Side};
use linfa::prelude::*;
use linfa_clustering::{GaussianMixtureModel, GmmInitMethod};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How a function's values are transformed and how noisy they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Scale {
    /// Event counts: log scale, Poisson counting noise.
    Count,
    /// Sums and means of a field: signed log scale, 10% relative noise.
    Magnitude,
    /// A share 0..1: linear, binomial noise from the bucket's event count.
    Ratio,
}

impl Scale {
    /// The scale a function's values live on.
    pub(crate) fn of(function: Function) -> Scale {
        match function {
            Function::Count | Function::DistinctCount | Function::Rare => Scale::Count,
            Function::Sum | Function::Mean => Scale::Magnitude,
            Function::Ratio => Scale::Ratio,
        }
    }

    /// The value on the modelled scale.
    pub(crate) fn transform(self, v: f64) -> f64 {
        match self {
            Scale::Count | Scale::Magnitude => v.signum() * v.abs().ln_1p(),
            Scale::Ratio => v.clamp(0.0, 1.0),
        }
    }

    /// The value back from the modelled scale.
    pub(crate) fn inverse(self, x: f64) -> f64 {
        match self {
            Scale::Count | Scale::Magnitude => x.signum() * x.abs().exp_m1(),
            Scale::Ratio => x,
        }
    }

    /// A seasonal expectation on the modelled scale, no lower than the
    /// smallest value a bucket can have: a bucket is scored only when its
    /// entity was active, so a count is at least one.
    pub(crate) fn at_least_one(self, level: f64) -> f64 {
        match self {
            Scale::Count => level.max(std::f64::consts::LN_2),
            Scale::Magnitude | Scale::Ratio => level,
        }
    }

    /// The variance a value near `mean` has on its own, however steady
    /// its history. `events` is the bucket's event count (for ratios).
    pub(crate) fn noise(self, mean: f64, events: u64) -> f64 {
        match self {
            Scale::Count => {
                // Delta method: Var[ln(1+X)] ~ lambda / (1+lambda)^2 for Poisson X,
                // plus 5% relative variation that real activity always has.
                // An active bucket holds at least one event.
                let lambda = mean.exp_m1().max(1.0);
                lambda / ((1.0 + lambda) * (1.0 + lambda)) + 0.0025
            }
            Scale::Magnitude => 0.01,
            Scale::Ratio => {
                // Binomial noise around the baseline share, smoothed by one
                // success and one failure: a normal approximation under-
                // states the tail of a small share over few events.
                let n = events.max(1) as f64;
                let p = ((mean.clamp(0.0, 1.0) * n + 1.0) / (n + 2.0)).clamp(0.01, 0.99);
                p * (1.0 - p) / n + 1e-4
            }
        }
    }
}

/// One mixture component on the modelled scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Component {
    pub weight: f64,
    pub mean: f64,
    pub variance: f64,
}

/// A fitted baseline: a Gaussian mixture and how many buckets it saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Mixture {
    pub components: Vec<Component>,
    pub samples: usize,
}

/// Components per history length: one Gaussian for short histories, up to
/// three once there is enough data to tell modes apart.
fn components_for(samples: usize) -> usize {
    match samples {
        0..100 => 1,
        100..1000 => 2,
        _ => 3,
    }
}

impl Mixture {
    /// Fits a mixture to values on the modelled scale. `None` for no values.
    pub(crate) fn fit(values: &[f64]) -> Option<Mixture> {
        if values.is_empty() {
            return None;
        }
        let k = components_for(values.len());
        if k > 1 {
            if let Some(m) = fit_linfa(values, k) {
                return Some(m);
            }
        }
        // One component (or a failed EM): the maximum-likelihood Gaussian,
        // which is what EM with one component converges to.
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        Some(Mixture {
            components: vec![Component {
                weight: 1.0,
                mean,
                variance,
            }],
            samples: values.len(),
        })
    }

    /// The mixture with the counting noise of its own values taken out of
    /// each component's variance. A fitted variance already holds the
    /// Poisson noise of the counts it was fitted to, and [`Mixture::surprise`]
    /// adds the noise of the value being judged: without this a quiet
    /// entity's noise counts twice, and ten times its usual rate for the
    /// hour looks ordinary. `levels` are the history's values on the
    /// modelled scale (before any seasonal offset). Counts only: the
    /// other scales' noise terms are floors, not noise the data holds.
    pub(crate) fn without_counting_noise(mut self, scale: Scale, levels: &[f64]) -> Mixture {
        if scale != Scale::Count || levels.is_empty() {
            return self;
        }
        let noise = levels.iter().map(|x| scale.noise(*x, 0)).sum::<f64>() / levels.len() as f64;
        for c in &mut self.components {
            c.variance = (c.variance - noise).max(0.0);
        }
        self
    }

    /// The heaviest component.
    pub(crate) fn dominant(&self) -> Component {
        self.components
            .iter()
            .copied()
            .max_by(|a, b| a.weight.total_cmp(&b.weight))
            .unwrap_or(Component {
                weight: 1.0,
                mean: 0.0,
                variance: 0.0,
            })
    }

    /// The expected value on the modelled scale: the mean of the heaviest component.
    pub(crate) fn typical(&self) -> f64 {
        self.dominant().mean
    }

    /// `-log10` of the tail probability of `x` (on the modelled scale) on
    /// `side`: 0 for an ordinary value, 3 for one-in-a-thousand. `level` is
    /// what was taken off the value before the mixture sees it (a seasonal
    /// offset): the value's own noise depends on its real size, not on the
    /// residual. `extra` is variance the baseline cannot know about (an
    /// hour of the day the job has not seen yet).
    pub(crate) fn surprise(
        &self,
        x: f64,
        level: f64,
        extra: f64,
        side: Side,
        scale: Scale,
        events: u64,
    ) -> f64 {
        // Estimating from n buckets leaves the variance uncertain; widen it.
        let inflation = 1.0 + 2.0 / self.samples.max(1) as f64;
        if let Some(count) = exact_count(scale, x + level) {
            return self.count_surprise(count, level, extra, inflation, side);
        }
        // Per component: the one-sided tail, or for both sides the two-sided
        // tail (a value between two modes is far from both, which the tails
        // of the whole mixture would not show).
        let terms: Vec<f64> = self
            .components
            .iter()
            .map(|c| {
                // Counting noise at the geometric midpoint of the expected
                // and the observed count: on the log scale, the noise at the
                // expected count alone overstates how far a quiet entity's
                // count can stray upwards (3 -> 30 is far rarer than a
                // normal tail at 3 says), and at the observed count alone
                // understates it.
                let at = match scale {
                    Scale::Count => (c.mean + x) / 2.0 + level,
                    Scale::Magnitude | Scale::Ratio => c.mean + level,
                };
                let var = (c.variance + scale.noise(at, events)) * inflation + extra;
                let z = (x - c.mean) / var.sqrt();
                let tail = match side {
                    Side::High => log_upper_tail(z),
                    Side::Low => log_upper_tail(-z),
                    Side::Both => (std::f64::consts::LN_2 + log_upper_tail(z.abs())).min(0.0),
                };
                c.weight.max(1e-12).ln() + tail
            })
            .collect();
        let ln_p = log_sum_exp(&terms);
        (-ln_p / std::f64::consts::LN_10).clamp(0.0, MAX_SURPRISE)
    }
}

impl Mixture {
    /// [`Mixture::surprise`] of a count, as a Poisson draw whose rate varies
    /// around each component's level (see [`poisson`]): the component's
    /// variance is the rate's, its counting noise already taken out when the
    /// baseline was fitted.
    fn count_surprise(
        &self,
        count: u64,
        level: f64,
        extra: f64,
        inflation: f64,
        side: Side,
    ) -> f64 {
        let terms: Vec<f64> = self
            .components
            .iter()
            .map(|c| {
                // The level is ln(1 + rate); an active bucket's rate is at least one.
                let rate = (c.mean + level).exp_m1().max(1.0);
                let variance = (c.variance + RATE_VARIATION) * inflation + extra;
                let upper = || poisson::ln_upper(count, rate, variance);
                let lower = || poisson::ln_lower(count, rate, variance);
                let tail = match side {
                    Side::High => upper(),
                    Side::Low => lower(),
                    Side::Both => (std::f64::consts::LN_2 + upper().min(lower())).min(0.0),
                };
                c.weight.max(1e-12).ln() + tail
            })
            .collect();
        let ln_p = log_sum_exp(&terms);
        (-ln_p / std::f64::consts::LN_10).clamp(0.0, MAX_SURPRISE)
    }
}

/// The variance of the log rate that real activity always has (5%
/// relative), as [`Scale::noise`] adds for counts.
const RATE_VARIATION: f64 = 0.02;

/// The count a value on the modelled scale stands for, when it is judged
/// as a count: counts and distinct counts up to [`poisson::MAX_EXACT`].
fn exact_count(scale: Scale, x: f64) -> Option<u64> {
    let count = scale.inverse(x).round();
    (scale == Scale::Count && (0.0..=poisson::MAX_EXACT as f64).contains(&count))
        .then_some(count as u64)
}

/// Surprise is capped: past this the tail probability is numerically zero.
pub(crate) const MAX_SURPRISE: f64 = 300.0;

fn fit_linfa(values: &[f64], k: usize) -> Option<Mixture> {
    let data = Array2::from_shape_vec((values.len(), 1), values.to_vec()).ok()?;
    let dataset = DatasetBase::from(data);
    // k-means initialisation with linfa's fixed seed: deterministic. Random
    // initialisation is ten times faster but on one dimension tends to
    // converge to identical components.
    let gmm = GaussianMixtureModel::params(k)
        .init_method(GmmInitMethod::KMeans)
        .reg_covariance(1e-6)
        .tolerance(1e-4)
        .max_n_iterations(100)
        .fit(&dataset)
        .ok()?;
    let weights = gmm.weights();
    let means = gmm.means();
    let covariances = gmm.covariances();
    let components: Vec<Component> = (0..k)
        .map(|i| Component {
            weight: weights[i],
            mean: means[[i, 0]],
            variance: covariances[[i, 0, 0]],
        })
        .collect();
    components
        .iter()
        .all(|c| c.weight.is_finite() && c.mean.is_finite() && c.variance.is_finite())
        .then_some(Mixture {
            components,
            samples: values.len(),
        })
}

fn log_sum_exp(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + xs.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// `ln P(Z > z)` for a standard normal Z, accurate far into the tail (where
/// the probability itself underflows), from the Chebyshev form of `erfc`
/// (Numerical Recipes' `erfcc`, relative error below 1.2e-7).
pub(crate) fn log_upper_tail(z: f64) -> f64 {
    let u = z / std::f64::consts::SQRT_2;
    let a = u.abs();
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -a * a - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    // ln erfc(|u|)
    let ln_erfc_abs = t.ln() + poly;
    if u >= 0.0 {
        ln_erfc_abs - std::f64::consts::LN_2
    } else {
        // erfc(-a) = 2 - erfc(a)
        (1.0 - 0.5 * ln_erfc_abs.exp()).ln()
    }
}

/// How often each value was seen, by hash, with the most frequent one's text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ValueCounts {
    counts: HashMap<u64, u32>,
    total: u64,
    top: Option<(String, u32)>,
}

/// Values remembered per entity; past it new values only count in `total`,
/// which keeps memory bounded for an entity with unbounded distinct values.
pub(crate) const MAX_VALUES_PER_ENTITY: usize = 4096;

impl ValueCounts {
    pub(crate) fn add(&mut self, hash: u64, text: &str, n: u32) {
        self.total += u64::from(n);
        let known = self.counts.len();
        let count = match self.counts.entry(hash) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let c = e.get_mut();
                *c = c.saturating_add(n);
                *c
            }
            std::collections::hash_map::Entry::Vacant(e) if known < MAX_VALUES_PER_ENTITY => {
                *e.insert(n)
            }
            std::collections::hash_map::Entry::Vacant(_) => return,
        };
        if self.top.as_ref().is_none_or(|(_, c)| count > *c) {
            self.top = Some((text.to_string(), count));
        }
    }

    /// True before any value was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub(crate) fn count(&self, hash: u64) -> u32 {
        self.counts.get(&hash).copied().unwrap_or(0)
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The most frequent value.
    pub(crate) fn top(&self) -> Option<&str> {
        self.top.as_ref().map(|(t, _)| t.as_str())
    }

    /// Smoothed probability of a value: Laplace over the known values.
    pub(crate) fn probability(&self, hash: u64) -> f64 {
        (f64::from(self.count(hash)) + 1.0) / (self.total as f64 + self.counts.len() as f64 + 1.0)
    }

    /// Probability of `hash` for this entity, smoothed towards `prior` (the
    /// value's probability across all entities) with the weight of one event.
    pub(crate) fn probability_given(&self, hash: u64, prior: f64) -> f64 {
        (f64::from(self.count(hash)) + prior) / (self.total as f64 + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The surprise of a count, with no seasonal level and no allowance.
    fn count_surprise(m: &Mixture, count: f64, side: Side) -> f64 {
        m.surprise(
            Scale::Count.transform(count),
            0.0,
            0.0,
            side,
            Scale::Count,
            0,
        )
    }

    #[test]
    fn upper_tail_matches_known_normal_quantiles() {
        let p = |z: f64| log_upper_tail(z).exp();
        assert!((p(0.0) - 0.5).abs() < 1e-6);
        assert!((p(1.959_964) - 0.025).abs() < 1e-6);
        assert!((p(-1.959_964) - 0.975).abs() < 1e-6);
        // Far tail: P(Z > 10) = 7.62e-24, ln = -53.23.
        assert!((log_upper_tail(10.0) - (-53.231)).abs() < 0.01);
        assert!(log_upper_tail(40.0).is_finite());
    }

    #[test]
    fn a_tenfold_burst_is_far_more_surprising_than_ordinary_variation() {
        let history: Vec<f64> = [10.0, 12.0, 9.0, 11.0, 10.0, 13.0, 8.0, 10.0, 11.0, 12.0]
            .iter()
            .map(|v| Scale::Count.transform(*v))
            .collect();
        let m = Mixture::fit(&history).unwrap();
        let s = |v: f64| count_surprise(&m, v, Side::High);
        assert!(s(12.0) < 1.5, "ordinary: {}", s(12.0));
        assert!(s(100.0) > 8.0, "burst: {}", s(100.0));
        assert!(s(5.0) < 0.5, "a drop is not a high-side anomaly");
        assert!((Scale::Count.inverse(m.typical()) - 10.3).abs() < 1.0);
    }

    #[test]
    fn a_flat_history_of_small_counts_tolerates_counting_noise() {
        let history = vec![Scale::Count.transform(1.0); 20];
        let m = Mixture::fit(&history).unwrap();
        let s = count_surprise(&m, 3.0, Side::High);
        assert!(s < 2.0, "two more failures than usual is not rare: {s}");
    }

    #[test]
    fn multimodal_histories_get_a_mixture_from_linfa() {
        let mut history = Vec::new();
        for i in 0..120 {
            let v = if i % 2 == 0 { 5.0 } else { 500.0 } + (i % 5) as f64;
            history.push(Scale::Count.transform(v));
        }
        let m = Mixture::fit(&history).unwrap();
        assert_eq!(m.components.len(), 2, "{m:?}");
        // Both modes are ordinary; the gap between them is not.
        let s = |v: f64| count_surprise(&m, v, Side::Both);
        assert!(s(6.0) < 1.5 && s(502.0) < 1.5, "{} {}", s(6.0), s(502.0));
        assert!(s(50.0) > 3.0, "{}", s(50.0));
    }

    #[test]
    fn ratios_with_few_events_are_not_trusted_like_ratios_with_many() {
        let history = vec![0.05; 30];
        let m = Mixture::fit(&history).unwrap();
        let few = m.surprise(0.5, 0.0, 0.0, Side::High, Scale::Ratio, 2);
        let many = m.surprise(0.5, 0.0, 0.0, Side::High, Scale::Ratio, 200);
        assert!(few < 3.0, "{few}");
        assert!(many > 10.0, "{many}");
    }

    #[test]
    fn value_counts_keep_the_top_value_and_smooth_unseen_ones() {
        let mut v = ValueCounts::default();
        v.add(1, "cmd.exe", 10);
        v.add(2, "explorer.exe", 3);
        assert_eq!(v.top(), Some("cmd.exe"));
        assert_eq!(v.total(), 13);
        assert!(v.probability_given(3, 0.001) < 0.001);
        assert!(v.probability_given(1, 0.001) > 0.7);
    }
}
