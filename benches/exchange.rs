//! Scale-out costs, in process (no broker): what repartitioning adds per
//! correlated match, the changelog's bytes per active key, and how long a
//! partition takes to restore from it, with 100k and 1M active keys.
//! `cargo bench --bench exchange`.
//!
//! The rule is the correlation benchmark's: one `event_count` grouped by
//! user with a one-hour window and a threshold never reached, one new user
//! per event, so every key stays open. "direct" feeds a correlator as a
//! single instance does; "exchanged" does what scale-out adds per match:
//! the repartition key and record encoded (the detecting instance), decoded
//! (the owner's worker), held for the watermark and released in event-time
//! order (a progress record every 1,000 matches).

mod common;

use std::time::{Duration, Instant};
use tocsin::correlate::exchange::{Match, PartitionOwner};
use tocsin::correlate::{CorrelationSet, Correlator, Observation};
use tocsin::vocab::watermark::Progress;
use tocsin::vocab::Span;

fn observations(set: &CorrelationSet, n: usize) -> Vec<Observation> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        set.observations(0, &common::login_event(i), &format!("{i:032x}"), &mut out);
    }
    out
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if smoke {
        &[1_000]
    } else {
        &[100_000, 1_000_000]
    };
    let set = common::correlation_set(common::LOGIN_RULES);
    println!(
        "{:>9} {:>11} {:>13} {:>13} {:>15} {:>12} {:>12}",
        "keys",
        "direct/s",
        "exchanged/s",
        "added ns/match",
        "changelog B/key",
        "records",
        "restore s"
    );
    for &n in sizes {
        let obs = observations(&set, n);

        let mut direct = Correlator::with_max_groups(set.clone(), n);
        let t = Instant::now();
        for o in obs.iter().cloned() {
            direct.observe(o);
        }
        let direct_secs = t.elapsed().as_secs_f64();
        assert_eq!(direct.active_groups(), n);
        drop(direct);

        let owner_of = || {
            PartitionOwner::new(
                Correlator::with_max_groups(set.clone(), n),
                Span::from_secs(0),
                Duration::from_secs(300),
            )
        };
        let mut owner = owner_of();
        let now = Instant::now();
        let t = Instant::now();
        for (i, o) in obs.iter().cloned().enumerate() {
            let time = o.entry.time;
            let key = Match::route_key(&set, &o).expect("routed");
            let m = Match::of(&set, o).expect("known correlation");
            let bytes = serde_json::to_vec(&m).expect("encoded");
            std::hint::black_box(key);
            let record: Match = serde_json::from_slice(&bytes).expect("decoded");
            owner.offer_match(record, now);
            if (i + 1) % 1000 == 0 || i + 1 == n {
                owner.offer_progress(
                    &Progress {
                        input: "bench[0]".into(),
                        time,
                        inputs: 1,
                    },
                    now,
                );
            }
        }
        // The input falls idle: the matches of its last second go too (the
        // watermark releases only what is strictly before an input's time).
        owner.release(now + Duration::from_secs(301));
        let exchanged_secs = t.elapsed().as_secs_f64();
        assert_eq!(owner.pending(), 0, "every match released");
        assert_eq!(owner.correlator().active_groups(), n);

        let changelog = owner.changelog();
        let bytes = common::changelog_bytes(&changelog);
        drop(owner);
        let mut restored = owner_of();
        let t = Instant::now();
        restored.restore(common::changelog_records(&changelog), Instant::now());
        let restore_secs = t.elapsed().as_secs_f64();
        assert_eq!(restored.correlator().active_groups(), n);
        println!(
            "{n:>9} {:>11.0} {:>13.0} {:>13.0} {:>15.0} {:>12} {:>12.2}",
            n as f64 / direct_secs,
            n as f64 / exchanged_secs,
            (exchanged_secs - direct_secs) * 1e9 / n as f64,
            bytes as f64 / n as f64,
            changelog.len(),
            restore_secs
        );
    }
}
