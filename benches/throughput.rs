//! Throughput harness: events/s and ns/event on the Mordor Windows events,
//! single thread, for parse-only and for 10, 500 and all SigmaHQ rules.
//!
//! `cargo bench --bench throughput` (needs ../shared). `TOCSIN_BENCH_EVENTS=N`
//! limits the events; `TOCSIN_BENCH_ROUNDS=N` sets the rounds (median reported);
//! `TOCSIN_BENCH_ONLY=parse,10,500,full` measures only those, for profiling.

mod common;

use std::time::Instant;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it: then a small smoke run checks that the harness works.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let Some(shared) = common::shared() else {
        eprintln!("SKIPPED: ../shared is absent; the throughput benchmark needs the Mordor events");
        return;
    };
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let limit = if smoke {
        200
    } else {
        env("TOCSIN_BENCH_EVENTS").unwrap_or(usize::MAX)
    };
    let rounds = if smoke {
        1
    } else {
        env("TOCSIN_BENCH_ROUNDS").unwrap_or(3)
    };
    if smoke {
        println!(
            "smoke run (200 events, 1 round): run `cargo bench --bench throughput` for numbers"
        );
    }

    let rss_start = common::rss_mib().unwrap_or(0.0);
    let t = Instant::now();
    let corpus = common::corpus(&shared);
    let full = common::compile(corpus.clone());
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let rss_full = common::rss_mib().unwrap_or(0.0);
    let engines = [
        ("10 rules", common::compile(common::spread(&corpus, 10))),
        ("500 rules", common::compile(common::spread(&corpus, 500))),
    ];
    drop(corpus);

    let lines = common::mordor_lines(&shared, limit);
    let bytes: usize = lines.iter().map(String::len).sum();
    println!(
        "events: {} ({:.0} MiB of JSON), rounds: {rounds} (median)",
        lines.len(),
        bytes as f64 / 1048576.0
    );
    println!(
        "full corpus: {} rules, load+compile {load_ms:.0} ms, RSS {rss_start:.0} MiB before, {rss_full:.0} MiB with the engine loaded",
        full.rules().len()
    );

    let parser = common::parser();
    let mut results: Vec<(&str, f64, usize)> = Vec::new();
    let measure = |f: &dyn Fn() -> usize| {
        let mut times = Vec::new();
        let mut out = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            out = f();
            times.push(t.elapsed().as_secs_f64());
        }
        (median(times), out)
    };
    // `TOCSIN_BENCH_ONLY=parse,10,500,full` picks configurations (for profilers).
    let only = std::env::var("TOCSIN_BENCH_ONLY").ok();
    let wanted = |key: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|k| k == key))
    };
    if wanted("parse") {
        let (t, n) = measure(&|| common::parse_only(&lines));
        results.push(("parse-only (serde_json::Value)", t, n));
    }
    for (key, (name, engine)) in ["10", "500"].into_iter().zip(&engines) {
        if wanted(key) {
            let (t, n) = measure(&|| common::detect_all(engine, &parser, &lines));
            results.push((name, t, n));
        }
    }
    if wanted("full") {
        let (t, n) = measure(&|| common::detect_all(&full, &parser, &lines));
        results.push(("full corpus", t, n));
    }

    println!(
        "{:<32} {:>12} {:>12} {:>10}",
        "configuration", "events/s", "ns/event", "matches"
    );
    for (name, secs, n) in &results {
        println!(
            "{name:<32} {:>12.0} {:>12.0} {n:>10}",
            lines.len() as f64 / secs,
            secs * 1e9 / lines.len() as f64
        );
    }
    let time = |name: &str| {
        results
            .iter()
            .find(|r| r.0 == name)
            .map_or(f64::NAN, |r| r.1)
    };
    println!(
        "ratios: full/parse-only time = {:.2} (target <= 2.0); full/10-rule throughput = {:.2} (target >= 0.6); RSS with full corpus {rss_full:.0} MiB (target <= 150)",
        time("full corpus") / time("parse-only (serde_json::Value)"),
        time("10 rules") / time("full corpus"),
    );
}
