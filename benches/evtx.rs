//! `.evtx` harness: what tocsin spends on native Windows event logs next to
//! the floor of the `evtx` crate, which chainsaw and hayabusa are built on
//! too (neither installs here; see BENCHMARKS.md). Single thread, files in
//! memory, records/s and us/record:
//! - `evtx crate floor`: the crate's records as `serde_json` values, as the
//!   tools built on it read them;
//! - `tocsin decode`: tocsin's reader (the same, written as JSON text);
//! - `decode + detect (bundled)`, `decode + detect (SigmaHQ)`: each record
//!   parsed into an event and matched against the bundled rules and against
//!   the SigmaHQ corpus, as `tocsin scan` does.
//!
//! `cargo bench --bench evtx` (needs ../shared: the 202 `.evtx` originals of
//! SigmaHQ's regression data). `TOCSIN_BENCH_ROUNDS=N` sets the passes over
//! the files (20).

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tocsin::detect::Scratch;

fn evtx_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            evtx_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "evtx") {
            out.push(path);
        }
    }
}

/// The crate's own decoding, as the tools built on it use it.
fn floor(files: &[Vec<u8>]) -> usize {
    let mut records = 0;
    for bytes in files {
        let Ok(parser) = evtx::EvtxParser::from_read_seek(Cursor::new(bytes)) else {
            continue;
        };
        let settings = evtx::ParserSettings::new()
            .separate_json_attributes(false)
            .indent(false);
        let mut parser = parser.with_configuration(settings);
        records += parser.records_json_value().filter(Result::is_ok).count();
    }
    records
}

/// tocsin's reader; `each` gets every record's JSON text.
fn decode(files: &[Vec<u8>], mut each: impl FnMut(&[u8])) -> usize {
    let mut records = 0;
    for bytes in files {
        let _ = tocsin::event::evtx::for_each_record(Cursor::new(bytes), |r| {
            if let Ok(r) = r {
                records += 1;
                each(&r.json);
            }
            true
        });
    }
    records
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let Some(shared) = common::shared() else {
        eprintln!(
            "SKIPPED: ../shared is absent; the evtx benchmark needs SigmaHQ's .evtx originals"
        );
        return;
    };
    let mut paths = Vec::new();
    evtx_files(&shared.join("sigma/regression_data"), &mut paths);
    paths.sort();
    let files: Vec<Vec<u8>> = paths.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    let rounds = if smoke {
        1
    } else {
        std::env::var("TOCSIN_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20)
    };
    let bundled = tocsin::detect::load_engine(
        &[Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")],
        None,
        &Default::default(),
    )
    .map(|(engine, _)| engine);
    let sigma = (!smoke).then(|| common::compile(common::corpus(&shared)));
    let parser = common::parser();
    let bytes: usize = files.iter().map(Vec::len).sum();
    println!(
        "{} .evtx files, {:.1} MiB, {rounds} passes{}",
        files.len(),
        bytes as f64 / 1048576.0,
        if smoke {
            " (smoke run: `cargo bench --bench evtx` for numbers)"
        } else {
            ""
        }
    );
    let detect = |engine: &tocsin::detect::Engine| {
        let mut scratch = Scratch::default();
        let mut matched = Vec::new();
        let now = chrono::Utc::now();
        let mut hits = 0;
        let records = decode(&files, |json| {
            if let Ok(line) = std::str::from_utf8(json) {
                if let Ok(event) = parser.parse(line, common::origin(), now) {
                    engine.evaluate(&event, &[], &mut scratch, &mut matched);
                    hits += matched.len();
                }
            }
        });
        (records, hits)
    };
    /// A measured run: (records, matches).
    type Run<'a> = Box<dyn Fn() -> (usize, usize) + 'a>;
    let mut runs: Vec<(&str, Run<'_>)> = vec![
        ("evtx crate floor", Box::new(|| (floor(&files), 0))),
        ("tocsin decode", Box::new(|| (decode(&files, |_| {}), 0))),
    ];
    if let Ok(engine) = &bundled {
        runs.push((
            "decode + detect (bundled)",
            Box::new(move || detect(engine)),
        ));
    }
    if let Some(engine) = &sigma {
        runs.push((
            "decode + detect (SigmaHQ)",
            Box::new(move || detect(engine)),
        ));
    }
    for (name, run) in &runs {
        let mut times = Vec::new();
        let mut out = (0, 0);
        for _ in 0..rounds {
            let t = Instant::now();
            out = run();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let (records, hits) = out;
        assert!(records > 0, "{name}: no record decoded");
        println!(
            "{name:<28} {records:>5} records  {:>9.0} records/s  {:>7.1} us/record  {hits} matches",
            records as f64 / median,
            median * 1e6 / records as f64
        );
    }
}
