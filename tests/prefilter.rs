//! The prefilter index must never drop a match: indexed evaluation and the
//! exhaustive reference evaluation agree on real events with the whole
//! SigmaHQ corpus, and on the bundled samples with the rule pack.

mod common;

use common::{lines, project_path, shared_dir};
use tocsin::detect::{load_engine, CompileOptions, Engine, Scratch};
use tocsin::event::TimeOptions;
use tocsin::event::{InputFormat, Origin, Parser, Position};

fn assert_same(engine: &Engine, lines: &[String], what: &str) -> usize {
    let parser = Parser::new(InputFormat::Auto, TimeOptions::default());
    let now = chrono::Utc::now();
    let (mut scratch, mut fast, mut slow) = (Scratch::default(), Vec::new(), Vec::new());
    let mut total = 0;
    for (i, line) in lines.iter().enumerate() {
        let origin = Origin {
            source: what.into(),
            position: Position::Line { line: i as u64 + 1 },
        };
        let Ok(event) = parser.parse(line, origin, now) else {
            continue;
        };
        engine.evaluate(&event, &[], &mut scratch, &mut fast);
        engine.evaluate_exhaustive(&event, &[], &mut slow);
        assert_eq!(
            fast,
            slow,
            "{what} line {}: indexed and exhaustive evaluation differ",
            i + 1
        );
        total += fast.len();
    }
    total
}

#[test]
fn index_agrees_with_exhaustive_evaluation_on_the_samples() {
    let (engine, _) =
        load_engine(&[project_path("rules")], None, &CompileOptions::default()).unwrap();
    let mut matches = 0;
    for f in [
        "auth.log",
        "syslog-rfc5424.log",
        "access.log",
        "windows.jsonl",
    ] {
        matches += assert_same(&engine, &lines(&project_path("samples").join(f)), f);
    }
    assert!(matches > 40, "{matches}");
}

#[test]
fn index_agrees_with_exhaustive_evaluation_on_real_windows_events_with_the_sigmahq_corpus() {
    let Some(shared) = shared_dir() else { return };
    let dirs = common::sigma_corpus(&shared);
    let (engine, summary) = load_engine(&dirs, None, &CompileOptions::default()).unwrap();
    eprintln!(
        "{} rules, {} not indexable (always evaluated)",
        summary.loaded,
        engine.unindexed_rules()
    );
    let regression = lines(&shared.join("sigma/regression_events.jsonl"));
    let flat = lines(&shared.join("sigma/regression_events.flat.jsonl"));
    assert!(assert_same(&engine, &regression, "regression_events") > 200);
    assert!(assert_same(&engine, &flat, "regression_events.flat") > 200);
    // Every 40th Mordor event: all its runs and channels, in bounded test time.
    let mordor: Vec<String> = lines(&shared.join("datasets/mordor_windows.jsonl.gz"))
        .into_iter()
        .step_by(40)
        .collect();
    let n = assert_same(&engine, &mordor, "mordor");
    eprintln!("{} Mordor events, {n} matches, identical", mordor.len());
}
