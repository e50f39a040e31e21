//! Correlation state benchmark: throughput and memory with 100k and 1M
//! active groups (keys). `cargo bench --bench correlation`.
//!
//! One `event_count` rule grouped by user with a one-hour window and a
//! threshold that is never reached, so every key stays active; each event
//! has a new user. Reports observations/s and resident memory per key.

mod common;

use std::time::Instant;
use tocsin::correlate::Correlator;

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if smoke {
        &[1_000]
    } else {
        &[100_000, 1_000_000]
    };
    let set = common::correlation_set(common::LOGIN_RULES);
    println!(
        "{:>10} {:>14} {:>14} {:>14}",
        "keys", "observations/s", "RSS delta MiB", "bytes/key"
    );
    for &n in sizes {
        let mut correlator = Correlator::with_max_groups(set.clone(), n);
        let mut obs = Vec::new();
        let rss_before = common::rss_mib().unwrap_or(0.0);
        let t = Instant::now();
        for i in 0..n {
            let event = common::login_event(i);
            set.observations(0, &event, "evidence-id", &mut obs);
            for o in obs.drain(..) {
                correlator.observe(o);
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let rss_delta = common::rss_mib().unwrap_or(0.0) - rss_before;
        assert_eq!(correlator.active_groups(), n);
        println!(
            "{n:>10} {:>14.0} {rss_delta:>14.1} {:>14.0}",
            n as f64 / secs,
            rss_delta * 1048576.0 / n as f64
        );
    }
}
