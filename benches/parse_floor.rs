//! The JSON parse floor: what parsing each line into a tree costs with
//! serde_json and with sonic-rs, single thread, lines in memory, beside
//! what tocsin's parser takes to make an event of it. tocsin's
//! per-event cost is judged against it (`scripts/compare.sh` prints it
//! beside whole-process timings of tocsin and rsigma).
//!
//! `cargo bench --bench parse_floor -- FILE...` (JSON lines; median of
//! `TOCSIN_BENCH_ROUNDS`, 5). Without files: the SigmaHQ regression events
//! and the first 20,000 Mordor events from ../shared.

mod common;

use std::time::Instant;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Seconds per pass of `parse` over `lines` (median of `rounds`), and how
/// many lines parsed.
fn time(lines: &[String], rounds: usize, parse: impl Fn(&str) -> bool) -> (f64, usize) {
    let mut parsed = 0;
    let secs = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            parsed = lines.iter().filter(|l| parse(l)).count();
            t.elapsed().as_secs_f64()
        })
        .collect();
    (median(secs), parsed)
}

fn main() {
    // `cargo test --all-targets` runs this without `--bench`: a smoke run.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let rounds = match smoke {
        true => 1,
        false => std::env::var("TOCSIN_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5),
    };
    let mut files: Vec<(String, Vec<String>)> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("a readable file of JSON lines");
            (path.clone(), text.lines().map(str::to_string).collect())
        })
        .collect();
    if files.is_empty() {
        let Some(shared) = common::shared() else {
            eprintln!("SKIPPED: no files given and ../shared is absent");
            return;
        };
        let regression = std::fs::read_to_string(shared.join("sigma/regression_events.flat.jsonl"))
            .expect("the SigmaHQ regression events");
        let limit = if smoke { 200 } else { 20_000 };
        files.push((
            "SigmaHQ regression events (flat)".into(),
            regression.lines().map(str::to_string).collect(),
        ));
        files.push((
            "Mordor (first events)".into(),
            common::mordor_lines(&shared, limit),
        ));
    }
    println!("| data | lines | MiB | serde_json Value | sonic-rs Value | tocsin `Parser::parse` |");
    println!("|---|---:|---:|---:|---:|---:|");
    let parser = common::parser();
    let now = chrono::Utc::now();
    for (name, lines) in &files {
        let bytes: usize = lines.iter().map(String::len).sum();
        let (serde, ok_serde) = time(lines, rounds, |l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok()
        });
        let (sonic, ok_sonic) = time(lines, rounds, |l| {
            sonic_rs::from_str::<sonic_rs::Value>(l).is_ok()
        });
        // tocsin's own parse into an event: a flat object is validated and
        // indexed, its values decoded when read (none are, here).
        let (tocsin, ok_tocsin) = time(lines, rounds, |l| {
            parser.parse(l, common::origin(), now).is_ok()
        });
        assert!(
            ok_serde == ok_sonic && ok_serde == ok_tocsin,
            "{name}: the parsers disagree on which lines are JSON"
        );
        let per_line = |secs: f64| secs * 1e9 / lines.len().max(1) as f64;
        println!(
            "| {name} | {} | {:.1} | {:.3} s ({:.0} ns/line) | {:.3} s ({:.0} ns/line) | {:.3} s ({:.0} ns/line) |",
            lines.len(),
            bytes as f64 / 1048576.0,
            serde,
            per_line(serde),
            sonic,
            per_line(sonic),
            tocsin,
            per_line(tocsin),
        );
    }
}
