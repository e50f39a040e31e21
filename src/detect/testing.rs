//! Engines compiled from rule text, for unit tests across the crate.

use super::logsource::LogsourceRouter;
use super::{CompileOptions, Engine};
use crate::sigma::load::{load_text, LoadReport};
use crate::sigma::RuleProblem;
use std::path::Path;

/// The documents of `text` loaded as one rule file and compiled with the
/// built-in logsource mapping: the engine, its compile problems, and the
/// rest of the load (correlations, anomaly jobs). A document that does not
/// load fails the test.
pub(crate) fn compile_text(text: &str) -> (Engine, Vec<RuleProblem>, LoadReport) {
    let mut report = LoadReport::default();
    load_text(
        text,
        Path::new("test.yml"),
        &mut report,
        &Default::default(),
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let (engine, problems) = Engine::compile(
        std::mem::take(&mut report.rules),
        std::mem::take(&mut report.filters),
        LogsourceRouter::builtin().expect("the built-in mapping loads"),
        &CompileOptions::default(),
    );
    (engine, problems, report)
}
