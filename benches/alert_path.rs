//! The alert path: what an alert costs beyond the detection that raised
//! it. A pipeline worker (`Processor::process`) and detection alone (parse
//! and `Engine::evaluate`) run over the same events with the same rules;
//! the difference, per alert, is the alert's id, evidence, summary, text
//! line, SLA and record. Writing the record as JSON (the writer's share,
//! on its own thread) is timed apart.
//!
//! `cargo bench --bench alert_path -- [FILE...]` (JSON lines; default: the
//! SigmaHQ regression events, flat and evtx_dump-shaped, from ../shared),
//! with the full SigmaHQ corpus. `TOCSIN_BENCH_ROUNDS` (5) sets the rounds
//! (median), `TOCSIN_BENCH_REPEAT` (20) how many times the file is fed.

mod common;

use std::sync::Arc;
use std::time::Instant;
use tocsin::alert::{AlertBuilder, AlertConfig, SlaPolicy};
use tocsin::detect::{Engine, Scratch};
use tocsin::pipeline::sources::{Record, RecordKind};
use tocsin::pipeline::{Output, Processor, SourceContext};
use tocsin::vocab::Clock;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn processor(engine: Arc<Engine>) -> Processor {
    let source = SourceContext {
        name: "bench".into(),
        parser: common::parser(),
        tags: Vec::new(),
        records: RecordKind::Events,
        watches: Default::default(),
    };
    Processor::new(
        engine,
        AlertBuilder::new(AlertConfig::default(), SlaPolicy::default()),
        (Default::default(), Default::default()),
        vec![source],
        None,
        Clock::system(),
    )
}

fn record(line: &str) -> Record {
    Record {
        source: 0,
        payload: line.as_bytes().to_vec(),
        origin: common::origin(),
        ingest_time: chrono::Utc::now(),
        read_at: Instant::now(),
        fault: None,
        mark: None,
    }
}

fn main() {
    // `cargo test --all-targets` runs this without `--bench`: a smoke run.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let (rounds, repeat) = match smoke {
        true => (1, 1),
        false => (
            env("TOCSIN_BENCH_ROUNDS", 5),
            env("TOCSIN_BENCH_REPEAT", 20),
        ),
    };
    let Some(shared) = common::shared() else {
        eprintln!("SKIPPED: ../shared is absent; the alert path needs the SigmaHQ corpus");
        return;
    };
    let mut files: Vec<std::path::PathBuf> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(Into::into)
        .collect();
    if files.is_empty() {
        let sigma = shared.join("sigma");
        files = vec![
            sigma.join("regression_events.flat.jsonl"),
            sigma.join("regression_events.jsonl"),
        ];
    }
    let mut corpus = common::corpus(&shared);
    if smoke {
        corpus = common::spread(&corpus, 200);
    }
    let engine = Arc::new(common::compile(corpus));

    println!("| data | events | alerts | worker | detection alone | per alert beyond detection | alert record as JSON |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("events file");
        let lines: Vec<String> = text
            .lines()
            .cycle()
            .take(text.lines().count() * repeat)
            .map(String::from)
            .collect();
        let records: Vec<Record> = lines.iter().map(|l| record(l)).collect();
        let parser = common::parser();
        let mut worker = processor(engine.clone());
        let mut scratch = Scratch::default();
        let (mut with_alerts, mut detect_only, mut write) = (Vec::new(), Vec::new(), Vec::new());
        let mut alerts = Vec::new();
        for _ in 0..rounds {
            // Both warm: lazily built automata and caches are built on the
            // first pass, not timed in either.
            common::detect_all(&engine, &parser, &lines, &mut scratch);
            let t = Instant::now();
            common::detect_all(&engine, &parser, &lines, &mut scratch);
            detect_only.push(t.elapsed().as_secs_f64());

            let mut out = Vec::new();
            let t = Instant::now();
            for record in &records {
                worker.process(record, &mut out);
            }
            with_alerts.push(t.elapsed().as_secs_f64());
            alerts = out
                .into_iter()
                .filter_map(|o| match o {
                    Output::Alert(alert) => Some(alert),
                    _ => None,
                })
                .collect();

            let mut buf = Vec::with_capacity(4096);
            let t = Instant::now();
            for alert in &alerts {
                buf.clear();
                serde_json::to_writer(&mut buf, alert).expect("an alert serialises");
            }
            write.push(t.elapsed().as_secs_f64());
        }
        let (worker_s, detect_s, write_s) =
            (median(with_alerts), median(detect_only), median(write));
        let per_event = |s: f64| s * 1e9 / lines.len().max(1) as f64;
        let per_alert = |s: f64| s * 1e9 / alerts.len().max(1) as f64;
        println!(
            "| {} | {} | {} | {:.0} ns/event | {:.0} ns/event | {:.0} ns | {:.0} ns |",
            file.file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
            lines.len(),
            alerts.len(),
            per_event(worker_s),
            per_event(detect_s),
            per_alert(worker_s - detect_s),
            per_alert(write_s),
        );
    }
}
