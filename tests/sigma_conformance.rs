//! Conformance on the public SigmaHQ regression data (../shared/sigma/regression_data):
//! for each of its tests, the expected rule must fire on the test's events,
//! `match_count` times where given. Skips with a message when ../shared is absent.
//!
//! The test prints every failure with its cause and fails on any failure that
//! is not listed in tests/snapshots/sigma_regression_known_failures.txt, and
//! on any listed failure that now passes (so the list stays true).

mod common;

use common::shared_dir;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tocsin::detect::{load_engine, CompileOptions, Engine, EventView, Scratch};
use tocsin::event::TimeOptions;
use tocsin::event::{InputFormat, Origin, Parser, Position};
use tocsin::sigma::parse_documents;

struct Case {
    dir: PathBuf,
    rule_id: String,
    match_count: Option<usize>,
    events: Vec<String>,
}

/// Where a case's events come from.
#[derive(Clone, Copy, PartialEq)]
enum Events {
    /// The JSON exports (`evtx_dump -o json`).
    Json,
    /// The original `.evtx` files, decoded by tocsin.
    Evtx,
}

fn cases(root: &Path, from: Events) -> Vec<Case> {
    let mut infos = Vec::new();
    collect_infos(root, &mut infos);
    infos.sort();
    let mut out = Vec::new();
    for info in infos {
        let dir = info.parent().unwrap().to_path_buf();
        let doc = &parse_documents(
            &std::fs::read_to_string(&info).unwrap(),
            &Default::default(),
        )
        .unwrap()[0];
        let rule_id = doc.get("rule_metadata").and_then(|m| match &m.value {
            tocsin::sigma::yaml::Value::Seq(items) => items.first()?.get("id")?.scalar_text(),
            _ => None,
        });
        let match_count = doc
            .get("regression_tests_info")
            .and_then(|t| match &t.value {
                tocsin::sigma::yaml::Value::Seq(items) => items
                    .first()?
                    .get("match_count")?
                    .scalar_text()?
                    .parse()
                    .ok(),
                _ => None,
            });
        let mut events = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if from == Events::Evtx && entry.path().extension().is_some_and(|e| e == "evtx") {
                let file = std::fs::File::open(entry.path()).unwrap();
                tocsin::event::evtx::for_each_record(file, |record| {
                    let record =
                        record.unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
                    events.push(String::from_utf8(record.json).unwrap());
                    true
                })
                .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
            }
            if from == Events::Json && entry.path().extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                // Concatenated pretty-printed JSON objects.
                for v in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>()
                {
                    events.push(v.unwrap().to_string());
                }
            }
        }
        if events.is_empty() {
            continue; // a test whose .evtx had no JSON export: not a test here
        }
        out.push(Case {
            dir,
            rule_id: rule_id.expect("rule id in info.yml"),
            match_count,
            events,
        });
    }
    out
}

fn collect_infos(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_infos(&p, out);
        } else if p.file_name().is_some_and(|n| n == "info.yml") {
            out.push(p);
        }
    }
}

/// `None` if the case passes, else why not.
fn run(engine: &Engine, case: &Case) -> Option<String> {
    let Some(rule) = engine
        .rules()
        .iter()
        .position(|r| r.rule.meta.id == case.rule_id)
    else {
        return Some(format!("rule {} is not loaded", case.rule_id));
    };
    let parser = Parser::new(InputFormat::Auto, TimeOptions::default());
    let (mut scratch, mut matched) = (Scratch::default(), Vec::new());
    let (mut fired, mut detection_only) = (0, 0);
    for (i, line) in case.events.iter().enumerate() {
        let origin = Origin {
            source: case.dir.display().to_string(),
            position: Position::Line { line: i as u64 + 1 },
        };
        let event = match parser.parse(line, origin, chrono::Utc::now()) {
            Ok(e) => e,
            Err(e) => return Some(format!("event {} does not parse: {e}", i + 1)),
        };
        engine.evaluate(&event, &[], &mut scratch, &mut matched);
        if matched.contains(&rule) {
            fired += 1;
        } else if engine.rules()[rule].matches(&EventView::new(&event, &[])) {
            detection_only += 1;
        }
    }
    let expected = case.match_count.unwrap_or(1);
    match (case.match_count, fired) {
        (Some(n), f) if f == n => None,
        (None, f) if f >= 1 => None,
        _ => Some(format!(
            "fired on {fired} of {} events, expected {}{expected}{}",
            case.events.len(),
            if case.match_count.is_some() {
                ""
            } else {
                "at least "
            },
            if detection_only > 0 {
                format!(" ({detection_only} more match the detection but are not routed to the rule's logsource)")
            } else {
                String::new()
            }
        )),
    }
}

#[test]
fn sigmahq_regression_tests_fire_their_rules() {
    regression_tests_fire_their_rules(Events::Json);
}

#[test]
fn sigmahq_regression_tests_fire_their_rules_on_the_evtx_originals() {
    regression_tests_fire_their_rules(Events::Evtx);
}

fn regression_tests_fire_their_rules(from: Events) {
    let Some(shared) = shared_dir() else { return };
    let sigma = shared.join("sigma");
    let dirs = common::sigma_corpus(&shared);
    let (engine, _) = load_engine(&dirs, None, &CompileOptions::default()).unwrap();
    let cases = cases(&sigma.join("regression_data"), from);
    let mut failures = BTreeSet::new();
    for case in &cases {
        if let Some(why) = run(&engine, case) {
            let name = case.dir.strip_prefix(&sigma).unwrap().display().to_string();
            eprintln!("FAIL {name}: {why}");
            failures.insert(name);
        }
    }
    eprintln!(
        "SigmaHQ regression tests ({}): {} of {} pass",
        if from == Events::Json {
            "JSON exports"
        } else {
            ".evtx originals"
        },
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(cases.len() >= 200, "{}", cases.len());
    let known_path = common::project_path("tests/snapshots/sigma_regression_known_failures.txt");
    let known: BTreeSet<String> = std::fs::read_to_string(&known_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    let new: Vec<_> = failures.difference(&known).collect();
    let fixed: Vec<_> = known.difference(&failures).collect();
    assert!(new.is_empty(), "new regression failures: {new:#?}");
    assert!(
        fixed.is_empty(),
        "now passing, remove from {}: {fixed:#?}",
        known_path.display()
    );
}
