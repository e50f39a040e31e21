//! Shared set-up for the benchmarks: the Mordor events and rule subsets.
#![allow(dead_code)] // each bench target uses a subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use tocsin::detect::{CompileOptions, Engine, LogsourceRouter, Scratch};
use tocsin::event::TimeOptions;
use tocsin::event::{InputFormat, Origin, Parser, Position};
use tocsin::sigma::{load_paths, LoadedRule};

pub fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    dir.is_dir().then_some(dir)
}

/// Up to `limit` Mordor events as JSON lines.
pub fn mordor_lines(shared: &Path, limit: usize) -> Vec<String> {
    let file =
        std::fs::File::open(shared.join("datasets/mordor_windows.jsonl.gz")).expect("mordor data");
    BufReader::new(flate2::read::MultiGzDecoder::new(file))
        .lines()
        .map_while(Result::ok)
        .take(limit)
        .collect()
}

/// Every rule of the SigmaHQ corpus that compiles, in path order.
pub fn corpus(shared: &Path) -> Vec<LoadedRule> {
    let dirs: Vec<PathBuf> = ["rules", "rules-emerging-threats", "rules-threat-hunting"]
        .iter()
        .map(|d| shared.join("sigma").join(d))
        .collect();
    load_paths(&dirs, &Default::default()).rules
}

/// `n` rules spread evenly over the corpus, so subsets have the corpus's mix of products.
pub fn spread(rules: &[LoadedRule], n: usize) -> Vec<LoadedRule> {
    if n >= rules.len() {
        return rules.to_vec();
    }
    (0..n).map(|i| rules[i * rules.len() / n].clone()).collect()
}

pub fn compile(rules: Vec<LoadedRule>) -> Engine {
    let router = LogsourceRouter::builtin().expect("built-in mapping");
    Engine::compile(rules, Vec::new(), router, &CompileOptions::default()).0
}

pub fn parser() -> Parser {
    Parser::new(InputFormat::Json, TimeOptions::default())
}

pub fn origin() -> Origin {
    Origin {
        source: "bench".into(),
        position: Position::Line { line: 0 },
    }
}

/// Parse and evaluate every line; returns the number of matches (kept so the work is not optimised away).
///
/// `scratch` is the worker's: a pipeline worker keeps its own for its whole
/// life (routing cache, scan memo), so a harness that feeds events in chunks
/// passes the same one to every chunk.
pub fn detect_all(
    engine: &Engine,
    parser: &Parser,
    lines: &[String],
    scratch: &mut Scratch,
) -> usize {
    let now = chrono::Utc::now();
    let mut matched = Vec::new();
    let mut total = 0;
    for line in lines {
        if let Ok(event) = parser.parse(line, origin(), now) {
            engine.evaluate(&event, &[], scratch, &mut matched);
            total += matched.len();
        }
    }
    total
}

/// The parse-only baseline: serde_json into a value.
pub fn parse_only(lines: &[String]) -> usize {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v.as_object().map_or(0, |o| o.len()))
        .sum()
}

/// Resident memory of this process, from /proc (Linux).
pub fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The correlations of a rule text (detection rules and correlations), with
/// the built-in logsource mapping.
pub fn correlation_set(rules: &str) -> std::sync::Arc<tocsin::correlate::CorrelationSet> {
    let mut report = tocsin::sigma::LoadReport::default();
    tocsin::sigma::load_text(
        rules,
        Path::new("bench.yml"),
        &mut report,
        &Default::default(),
    );
    let router = LogsourceRouter::builtin().expect("built-in mapping");
    let (engine, _) = Engine::compile(
        report.rules,
        report.filters,
        router,
        &CompileOptions::default(),
    );
    let (set, problems) = tocsin::correlate::CorrelationSet::build(report.correlations, &engine);
    assert!(problems.is_empty(), "{problems:?}");
    std::sync::Arc::new(set)
}

/// One `event_count` rule grouped by user with a one-hour window and a
/// threshold never reached: every key stays open (correlation benches).
pub const LOGIN_RULES: &str = "title: login\nid: login\nname: login\nlogsource: {product: test}\ndetection:\n  s: {action: login}\n  condition: s\n---\ntitle: many logins\ncorrelation:\n  type: event_count\n  rules: [login]\n  group-by: [user]\n  timespan: 1h\n  condition: {gte: 1000000}\n";

/// Login `i` of the correlation benches: a new user each time, 1 ms apart
/// (a million events span 17 minutes, inside the window), read from
/// partition 0 at offset `i`.
pub fn login_event(i: usize) -> tocsin::event::Event {
    let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");
    let mut fields = serde_json::Map::new();
    fields.insert("action".into(), "login".into());
    fields.insert("user".into(), format!("user{i:07}").into());
    tocsin::event::Event {
        fields: fields.into(),
        format: InputFormat::Json,
        time: start + chrono::Duration::milliseconds(i as i64),
        time_from_event: true,
        original: tocsin::event::Original::SameAsFields,
        origin: Origin {
            source: "bench".into(),
            position: Position::Offset {
                partition: 0,
                offset: i as i64,
            },
        },
    }
}

/// A changelog as an owner writes it: key, and payload or tombstone.
pub type Changelog = Vec<(String, Option<Vec<u8>>)>;

/// Its bytes, keys and payloads.
pub fn changelog_bytes(changelog: &Changelog) -> usize {
    changelog
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum()
}

/// Its records as an owner's `restore` reads them.
pub fn changelog_records(changelog: &Changelog) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    changelog.iter().map(|(k, v)| (k.as_bytes(), v.as_deref()))
}
