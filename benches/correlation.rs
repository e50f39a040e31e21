//! Correlation state benchmark: throughput and memory with 100k and 1M
//! active groups (keys). `cargo bench --bench correlation`.
//!
//! One `event_count` rule grouped by user with a one-hour window and a
//! threshold that is never reached, so every key stays active; each event
//! has a new user. Reports observations/s and resident memory per key.

mod common;

use std::time::Instant;
use tocsin::correlate::Correlator;
use tocsin::event::{Event, InputFormat, Origin, Original, Position};

const RULES: &str = "title: login\nid: login\nname: login\nlogsource: {product: test}\ndetection:\n  s: {action: login}\n  condition: s\n---\ntitle: many logins\ncorrelation:\n  type: event_count\n  rules: [login]\n  group-by: [user]\n  timespan: 1h\n  condition: {gte: 1000000}\n";

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if smoke {
        &[1_000]
    } else {
        &[100_000, 1_000_000]
    };
    let set = common::correlation_set(RULES);
    let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");
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
            let mut fields = serde_json::Map::new();
            fields.insert("action".into(), "login".into());
            fields.insert("user".into(), format!("user{i:07}").into());
            let event = Event {
                fields,
                format: InputFormat::Json,
                // 1 ms apart: a million events span 17 minutes, inside the window.
                time: start + chrono::Duration::milliseconds(i as i64),
                time_from_event: true,
                original: Original::SameAsFields,
                origin: Origin {
                    source: "bench".into(),
                    position: Position::Line { line: i as u64 },
                },
            };
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
