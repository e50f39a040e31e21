//! How rare a count is, counted as counts: a Poisson whose rate itself
//! varies (Poisson-lognormal).
//!
//! A baseline on the log scale with a normal tail is right for busy
//! entities, whose counts are many and whose noise is mostly the rate's
//! own day-to-day variation. It is wrong for quiet ones: a user whose
//! active buckets hold one or two failed logins has a noisy history on the
//! log scale (ln 2, ln 3), and a normal tail over that noise calls fourteen
//! failures a one-in-a-few-thousand event, where a Poisson with a rate of
//! about one puts it below one in ten billion. Counting noise is discrete
//! and its tail is far thinner than a normal's on the log scale.
//!
//! So a count is judged as a Poisson draw whose rate is log-normal: the
//! rate's median is the baseline's expectation and its log-variance is the
//! variance the baseline found beyond counting noise (plus any allowance:
//! an unknown hour, a borrowed expectation). The tail is integrated over
//! the rate on a fixed grid of standard normal points. A burst is then as
//! rare as it is under both sources of variation, and neither is counted
//! twice. statrs has the Poisson distribution, but not this mixture nor a
//! tail in logarithms that survives 1e-300; the two series below are short.

/// Counts above this are judged on the log scale by the caller: there the
/// normal approximation is good and the series would be long.
pub(crate) const MAX_EXACT: u64 = 5_000;

/// Grid of standard normal points the rate is integrated over, and its
/// step. The trapezoid rule on a smooth integrand that decays at both ends
/// converges exponentially in 1/step (its error is about e^(-2 pi^2 /
/// step^2), 1e-34 at 0.5), so 33 points give what a finer grid would, at
/// half the cost of 65: a bucket close scores every active entity.
const GRID_HALF_WIDTH: f64 = 8.0;
const GRID_STEP: f64 = 0.5;
const GRID_POINTS: usize = 33;

/// `ln P(X >= k)` for X Poisson with a rate whose logarithm is normal with
/// median `rate` and variance `log_variance`.
pub(crate) fn ln_upper(k: u64, rate: f64, log_variance: f64) -> f64 {
    integrate(rate, log_variance, |lambda| ln_poisson_upper(k, lambda))
}

/// `ln P(X <= k)` for the same X.
pub(crate) fn ln_lower(k: u64, rate: f64, log_variance: f64) -> f64 {
    integrate(rate, log_variance, |lambda| ln_poisson_lower(k, lambda))
}

/// `ln E[f(rate * e^(sigma Z))]` over a standard normal Z, for `f` giving
/// logarithms: a log-sum-exp over the grid weighted by the normal density.
fn integrate(rate: f64, log_variance: f64, ln_f: impl Fn(f64) -> f64) -> f64 {
    let rate = rate.max(1e-9);
    let sigma = log_variance.max(0.0).sqrt();
    if sigma < 1e-6 {
        return ln_f(rate);
    }
    let ln_norm = (GRID_STEP / (2.0 * std::f64::consts::PI).sqrt()).ln();
    let mut max = f64::NEG_INFINITY;
    let mut terms = [f64::NEG_INFINITY; GRID_POINTS];
    for (i, term) in terms.iter_mut().enumerate() {
        let z = -GRID_HALF_WIDTH + i as f64 * GRID_STEP;
        *term = ln_norm - 0.5 * z * z + ln_f(rate * (sigma * z).exp());
        max = max.max(*term);
    }
    if max == f64::NEG_INFINITY {
        return max;
    }
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    // The grid's weights sum to one up to the step's rounding.
    (max + sum.ln()).min(0.0)
}

/// `ln k!` for k below 16 (the counts of quiet entities, the common case).
const LN_FACTORIALS: [f64; 16] = [
    0.0,
    0.0,
    std::f64::consts::LN_2,
    1.7917594692280554,
    3.178053830347945,
    4.787491742782047,
    6.579251212010102,
    8.525161361065415,
    10.604602902745249,
    12.801827480081467,
    15.104412573075514,
    17.502307845873887,
    19.987214495661885,
    22.55216385312342,
    25.191221182738683,
    27.89927138384089,
];

/// `ln k!`: a table for small k, Stirling's series past it.
fn ln_factorial(k: u64) -> f64 {
    if let Some(v) = usize::try_from(k).ok().and_then(|k| LN_FACTORIALS.get(k)) {
        return *v;
    }
    let n = k as f64 + 1.0;
    (n - 0.5) * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * n)
        - 1.0 / (360.0 * n * n * n)
        + 1.0 / (1260.0 * n.powi(5))
}

/// `ln P(X = k)` for X Poisson(lambda).
fn ln_pmf(k: u64, lambda: f64) -> f64 {
    -lambda + k as f64 * lambda.ln() - ln_factorial(k)
}

/// `ln P(X >= k)` for X Poisson(lambda).
fn ln_poisson_upper(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    if (k as f64) <= lambda {
        // The tail holds most of the mass: one minus the (small) rest.
        return ln_one_minus_exp(ln_poisson_lower(k - 1, lambda));
    }
    // P(X >= k) = P(X = k) * (1 + lambda/(k+1) + lambda^2/((k+1)(k+2)) + ...),
    // a series whose ratios fall below lambda/k < 1.
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    let mut n = k;
    while term > 1e-17 * sum && n < k + 100_000 {
        n += 1;
        term *= lambda / n as f64;
        sum += term;
    }
    (ln_pmf(k, lambda) + sum.ln()).min(0.0)
}

/// `ln P(X <= k)` for X Poisson(lambda).
fn ln_poisson_lower(k: u64, lambda: f64) -> f64 {
    if (k as f64) >= lambda {
        return ln_one_minus_exp(ln_poisson_upper(k + 1, lambda));
    }
    // P(X <= k) = P(X = k) * (1 + k/lambda + k(k-1)/lambda^2 + ...), ratios
    // below k/lambda < 1.
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    let mut j = k;
    while j > 0 && term > 1e-17 * sum {
        term *= j as f64 / lambda;
        sum += term;
        j -= 1;
    }
    (ln_pmf(k, lambda) + sum.ln()).min(0.0)
}

/// `ln(1 - e^x)` for x <= 0, accurate on both ends.
fn ln_one_minus_exp(x: f64) -> f64 {
    if x > -std::f64::consts::LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-300)
    }

    #[test]
    fn poisson_tails_match_known_values() {
        // P(X >= 2 | 1) = 1 - 2/e; P(X <= 0 | 3) = e^-3; P(X >= 14 | 1.3) by summation.
        assert!(close(
            ln_poisson_upper(2, 1.0).exp(),
            1.0 - 2.0 / std::f64::consts::E,
            1e-12
        ));
        assert!(close(ln_poisson_lower(0, 3.0), -3.0, 1e-12));
        let direct: f64 = (14..60)
            .map(|k| (-1.3f64).exp() * 1.3f64.powi(k) / (1..=k).map(f64::from).product::<f64>())
            .sum();
        assert!(close(ln_poisson_upper(14, 1.3), direct.ln(), 1e-9));
        // Both sides add up to one, whichever series computes them.
        for (k, lambda) in [(3, 10.0), (10, 3.0), (40, 40.0), (100, 160.0)] {
            let total = ln_poisson_lower(k, lambda).exp() + ln_poisson_upper(k + 1, lambda).exp();
            assert!(close(total, 1.0, 1e-9), "{k} {lambda}: {total}");
        }
        // Far tails stay finite where the probability underflows.
        assert!(ln_poisson_upper(4_000, 1.0) < -20_000.0);
    }

    #[test]
    fn factorials_from_stirling_join_the_exact_ones() {
        for k in 0..16u64 {
            let exact: f64 = (2..=k).map(|i| (i as f64).ln()).sum();
            assert!((ln_factorial(k) - exact).abs() < 1e-12, "{k}");
        }
        let exact: f64 = (2..=20u64).map(|i| (i as f64).ln()).sum();
        assert!(
            close(ln_factorial(20), exact, 1e-12),
            "{}",
            ln_factorial(20) - exact
        );
    }

    #[test]
    fn a_varying_rate_thickens_the_tail_and_keeps_the_mass() {
        let fixed = ln_upper(14, 1.3, 0.0);
        let varying = ln_upper(14, 1.3, 0.25);
        assert!(varying > fixed + 2.0, "{fixed} {varying}");
        // Ten times a rate of 1.3 stays rarer than one in ten thousand even
        // when the rate wanders by half a factor of e.
        assert!(varying < -4.0 * std::f64::consts::LN_10, "{varying}");
        let total = ln_lower(5, 4.0, 0.3).exp() + ln_upper(6, 4.0, 0.3).exp();
        assert!(close(total, 1.0, 1e-3), "{total}");
    }
}
