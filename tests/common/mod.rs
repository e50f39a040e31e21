//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use tocsin::detect::{load_engine, CompileOptions, Engine, Scratch};
use tocsin::event::TimeOptions;
use tocsin::event::{InputFormat, Origin, Parser, Position};

/// The `tocsin` binary, run from the project root, with no `TOCSIN_*`
/// variable from the environment changing what the test sees.
pub fn tocsin() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TOCSIN_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `cmd` to its end; fails the test with its stderr unless it succeeded.
pub fn run_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `../shared` beside the project, if present. Tests that need it print why
/// they skip; CI always has it.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: ../shared is absent (reference data: SigmaHQ rules, datasets)");
        None
    }
}

/// The SigmaHQ rule folders the corpus tests load.
pub fn sigma_corpus(shared: &Path) -> Vec<PathBuf> {
    ["rules", "rules-emerging-threats", "rules-threat-hunting"]
        .iter()
        .map(|d| shared.join("sigma").join(d))
        .collect()
}

pub fn project_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The shipped detection rules: rules/ without the anomaly jobs, whose
/// detections would otherwise count as rule matches here.
pub fn detection_rules() -> Vec<PathBuf> {
    ["rules/linux", "rules/web", "rules/windows"]
        .iter()
        .map(|p| project_path(p))
        .collect()
}

pub fn engine(paths: &[PathBuf]) -> Engine {
    let (engine, summary) =
        load_engine(paths, None, &CompileOptions::default()).expect("logsource mapping loads");
    assert_eq!(summary.rejected, 0, "{:#?}", summary.problems);
    engine
}

/// Lines of a text file, gzip or not.
pub fn lines(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    BufReader::new(reader).lines().map(|l| l.unwrap()).collect()
}

/// What scanning a set of lines gave.
#[derive(Debug, Default)]
pub struct ScanCounts {
    pub events: usize,
    pub parse_failures: usize,
    /// Matches per rule title.
    pub by_rule: BTreeMap<String, usize>,
    /// Line numbers (1-based) per rule title.
    pub lines_by_rule: BTreeMap<String, Vec<usize>>,
}

/// Parses and evaluates every line; `reference` fixes "now" (syslog's missing year).
pub fn scan(engine: &Engine, lines: &[String], format: InputFormat, reference: &str) -> ScanCounts {
    let now = chrono::DateTime::parse_from_rfc3339(reference)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let parser = Parser::new(format, TimeOptions::default());
    let mut counts = ScanCounts::default();
    let mut scratch = Scratch::default();
    let mut matched = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = Origin {
            source: "test".into(),
            position: Position::Line { line: i as u64 + 1 },
        };
        let Ok(event) = parser.parse(line, origin, now) else {
            counts.parse_failures += 1;
            continue;
        };
        counts.events += 1;
        engine.evaluate(&event, &[], &mut scratch, &mut matched);
        for &r in &matched {
            let title = engine.rules()[r].rule.meta.title.clone();
            *counts.by_rule.entry(title.clone()).or_default() += 1;
            counts.lines_by_rule.entry(title).or_default().push(i + 1);
        }
    }
    counts
}

/// Compares `actual` with the snapshot file under tests/snapshots/, or
/// rewrites it when TOCSIN_UPDATE_SNAPSHOTS=1. A change in behaviour shows as a diff.
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = project_path("tests/snapshots").join(name);
    if std::env::var("TOCSIN_UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with TOCSIN_UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .take(30)
            .collect();
        panic!(
            "snapshot {name} differs ({} vs {} lines); first differences:\n{}\nIf the change is intended, rerun with TOCSIN_UPDATE_SNAPSHOTS=1 and commit the file.",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// Runs lines through the project's rules, filters and correlation rules (as
/// the pipeline does, with "now" fixed at `reference`); returns the
/// correlation set and everything that fired.
pub fn correlate_lines(
    lines: &[String],
    format: InputFormat,
    reference: &str,
) -> (
    std::sync::Arc<tocsin::correlate::CorrelationSet>,
    Vec<tocsin::correlate::Firing>,
) {
    use tocsin::correlate::{CorrelationSet, Correlator};
    let (engine, mut summary) =
        load_engine(&[project_path("rules")], None, &CompileOptions::default())
            .expect("rules load");
    let (set, problems) = CorrelationSet::build(std::mem::take(&mut summary.correlations), &engine);
    assert!(problems.is_empty(), "{problems:?}");
    let set = std::sync::Arc::new(set);
    let mut correlator = Correlator::new(set.clone());
    let parser = Parser::new(format, TimeOptions::default());
    let now = chrono::DateTime::parse_from_rfc3339(reference)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let (mut scratch, mut matched, mut obs, mut fired) =
        (Scratch::default(), Vec::new(), Vec::new(), Vec::new());
    for (i, line) in lines.iter().enumerate() {
        let origin = Origin {
            source: "stream".into(),
            position: Position::Line { line: i as u64 + 1 },
        };
        let event = parser
            .parse(line, origin, now)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        engine.evaluate(&event, &[], &mut scratch, &mut matched);
        for &r in &matched {
            set.observations(r, &event, &format!("e{i}"), &mut obs);
            for o in obs.drain(..) {
                fired.extend(correlator.observe(o));
            }
        }
    }
    fired.extend(correlator.finish());
    (set, fired)
}

/// A small deterministic generator (SplitMix64), so generated streams are
/// reproducible from their seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson draw with mean `lambda` (Knuth's method below 30, a
    /// rounded normal above: exact enough for traffic).
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            let (u1, u2) = (self.unit().max(1e-12), self.unit());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            return (lambda + z * lambda.sqrt()).round().max(0.0) as u64;
        }
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.unit();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}
