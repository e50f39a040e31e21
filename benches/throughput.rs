//! Throughput harness: events/s and ns/event on the Mordor Windows events,
//! single thread, for parse-only and for 10, 500 and all SigmaHQ rules.
//!
//! `cargo bench --bench throughput` (needs ../shared). `TOCSIN_BENCH_EVENTS=N`
//! limits the events; `TOCSIN_BENCH_ROUNDS=N` sets the rounds (median reported);
//! `TOCSIN_BENCH_ONLY=parse,10,500,full` measures only those, for profiling;
//! `TOCSIN_BENCH_CHUNK=N` sets how many events each configuration takes in
//! its turn (5,000).

mod common;

use std::cell::RefCell;
use std::time::Instant;
use tocsin::detect::Scratch;

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

    let parser = &common::parser();
    // `TOCSIN_BENCH_ONLY=parse,10,500,full` picks configurations (for profilers).
    let only = std::env::var("TOCSIN_BENCH_ONLY").ok();
    let wanted = |key: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|k| k == key))
    };
    type Run<'a> = Box<dyn Fn(&[String]) -> usize + 'a>;
    let mut configs: Vec<(&str, Run<'_>)> = Vec::new();
    if wanted("parse") {
        configs.push((PARSE_ONLY, Box::new(common::parse_only)));
    }
    for (key, (name, engine)) in ["10", "500"].into_iter().zip(&engines) {
        if wanted(key) {
            let scratch = RefCell::new(Scratch::default());
            configs.push((
                name,
                Box::new(move |l| common::detect_all(engine, parser, l, &mut scratch.borrow_mut())),
            ));
        }
    }
    if wanted("full") {
        configs.push((
            "full corpus",
            Box::new({
                let scratch = RefCell::new(Scratch::default());
                move |l| common::detect_all(&full, parser, l, &mut scratch.borrow_mut())
            }),
        ));
    }
    // The configurations take turns on each chunk of events, so a slow
    // spell of this shared VM (seconds long; the baseline alone has moved
    // by 40% between runs) slows them all alike and the ratios hold.
    let chunk = env("TOCSIN_BENCH_CHUNK").unwrap_or(5000).max(1);
    let mut times = vec![Vec::new(); configs.len()];
    let mut outs = vec![0; configs.len()];
    for _ in 0..rounds {
        let mut round = vec![0.0; configs.len()];
        outs.iter_mut().for_each(|o| *o = 0);
        for part in lines.chunks(chunk) {
            for (i, (_, run)) in configs.iter().enumerate() {
                let t = Instant::now();
                outs[i] += run(part);
                round[i] += t.elapsed().as_secs_f64();
            }
        }
        for (i, t) in round.into_iter().enumerate() {
            times[i].push(t);
        }
    }
    let ratio_per_round = |a: &str, b: &str| -> Vec<f64> {
        let pos = |n: &str| configs.iter().position(|c| c.0 == n);
        match (pos(a), pos(b)) {
            (Some(a), Some(b)) => (0..rounds).map(|r| times[a][r] / times[b][r]).collect(),
            _ => Vec::new(),
        }
    };
    let full_vs_parse = ratio_per_round("full corpus", PARSE_ONLY);
    let ten_vs_full = ratio_per_round("10 rules", "full corpus");
    let results: Vec<(&str, f64, usize)> = configs
        .iter()
        .zip(times)
        .zip(outs)
        .map(|(((name, _), t), n)| (*name, median(t), n))
        .collect();

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
    let show = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let med = |xs: &[f64]| match xs.is_empty() {
        true => f64::NAN,
        false => median(xs.to_vec()),
    };
    println!(
        "ratios (median of rounds): full/parse-only time = {:.2} (target <= 2.0; rounds: {}); full/10-rule throughput = {:.2} (target >= 0.6; rounds: {}); RSS with full corpus {rss_full:.0} MiB (target <= 150)",
        med(&full_vs_parse),
        show(&full_vs_parse),
        med(&ten_vs_full),
        show(&ten_vs_full),
    );
}

const PARSE_ONLY: &str = "parse-only (serde_json::Value)";
