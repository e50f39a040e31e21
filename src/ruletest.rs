//! Rule test cases: events each rule must and must not match (`tocsin rules test`).
//!
//! A test file names a rule by id and lists cases:
//!
//! ```yaml
//! rule: 0b0c1e7a-...
//! cases:
//!   - name: invalid user
//!     format: syslog          # syslog | access-log | json | evtx-json
//!     event: 'Dec 10 06:55:46 host sshd[1]: Invalid user x from 192.0.2.1'
//!     match: true
//! ```
//!
//! Raw formats take the line as a string; JSON formats take a mapping.
//! Each case runs through the same parser, logsource routing and matcher as
//! the pipeline, so a passing case is what production does.

use crate::detect::{Engine, EventView, Scratch};
use crate::event::time::TimeOptions;
use crate::event::{InputFormat, Origin, Parser, Position};
use crate::sigma::yaml::{parse_documents, Node, Value};
use std::fmt;
use std::path::{Path, PathBuf};

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The test file.
    pub file: PathBuf,
    /// 1-based line of the case, or of a problem with the file (0 when the
    /// file cannot be read).
    pub line: usize,
    /// The id of the rule under test; empty when none could be read.
    pub rule: String,
    /// The case's `name` (`case at line N` without one), or `<file>` for a
    /// problem with the whole file or document.
    pub name: String,
    /// `None` when the case passed, else what went wrong.
    pub failure: Option<String>,
}

impl fmt::Display for CaseResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            None => write!(
                f,
                "ok   {}:{} {}",
                self.file.display(),
                self.line,
                self.name
            ),
            Some(why) => write!(
                f,
                "FAIL {}:{} {}: {why}",
                self.file.display(),
                self.line,
                self.name
            ),
        }
    }
}

/// Runs every test file under `paths` against the engine's rules.
pub fn run_paths<P: AsRef<Path>>(engine: &Engine, paths: &[P]) -> Vec<CaseResult> {
    let mut results = Vec::new();
    let mut files = Vec::new();
    for p in paths {
        collect(p.as_ref(), &mut files);
    }
    files.sort();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                results.push(failure(&file, 0, "", "<file>", format!("cannot read: {e}")));
                continue;
            }
        };
        run_text(engine, &file, &text, &mut results);
    }
    results
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
    } else if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect(&p, out);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
                out.push(p);
            }
        }
    }
}

fn failure(file: &Path, line: usize, rule: &str, name: &str, why: String) -> CaseResult {
    CaseResult {
        file: file.to_path_buf(),
        line,
        rule: rule.to_string(),
        name: name.to_string(),
        failure: Some(why),
    }
}

/// Runs the cases of one test file.
pub fn run_text(engine: &Engine, file: &Path, text: &str, results: &mut Vec<CaseResult>) {
    let docs = match parse_documents(text, &crate::sigma::RuleLimits::default()) {
        Ok(d) => d,
        Err(e) => {
            results.push(failure(
                file,
                e.pos.line,
                "",
                "<file>",
                format!("YAML syntax error: {}", e.message),
            ));
            return;
        }
    };
    for doc in &docs {
        let Some(rule_id) = doc.get("rule").and_then(Node::scalar_text) else {
            results.push(failure(
                file,
                doc.pos.line,
                "",
                "<file>",
                "missing `rule: <rule id>`".into(),
            ));
            continue;
        };
        let Some(rule_index) = engine
            .rules()
            .iter()
            .position(|r| r.rule.meta.id == rule_id)
        else {
            results.push(failure(
                file,
                doc.pos.line,
                &rule_id,
                "<file>",
                format!("no loaded rule has id `{rule_id}`"),
            ));
            continue;
        };
        let cases = match doc.get("cases").map(|c| &c.value) {
            Some(Value::Seq(cases)) if !cases.is_empty() => cases,
            _ => {
                results.push(failure(
                    file,
                    doc.pos.line,
                    &rule_id,
                    "<file>",
                    "`cases` must be a non-empty list".into(),
                ));
                continue;
            }
        };
        for case in cases {
            results.push(run_case(engine, rule_index, &rule_id, file, case));
        }
    }
}

fn run_case(
    engine: &Engine,
    rule_index: usize,
    rule_id: &str,
    file: &Path,
    case: &Node,
) -> CaseResult {
    let name = case
        .get("name")
        .and_then(Node::scalar_text)
        .unwrap_or_else(|| format!("case at line {}", case.pos.line));
    let line = case.pos.line;
    let fail = |why: String| failure(file, line, rule_id, &name, why);
    let format = match case.get("format").and_then(Node::scalar_text).as_deref() {
        Some("syslog") => InputFormat::Syslog,
        Some("access-log") => InputFormat::AccessLog,
        Some("json") => InputFormat::Json,
        Some("evtx-json") => InputFormat::EvtxJson,
        Some("auto") | None => InputFormat::Auto,
        Some(other) => return fail(format!("unknown format `{other}`")),
    };
    let Some(expected) = case.get("match").and_then(|m| match m.value {
        Value::Bool(b) => Some(b),
        _ => None,
    }) else {
        return fail("`match` must be true or false".into());
    };
    let Some(event_node) = case.get("event") else {
        return fail("missing `event`".into());
    };
    let text = match &event_node.value {
        Value::Str(s) => s.clone(),
        Value::Map(_) => event_node.to_json().to_string(),
        _ => return fail("`event` must be a line of text or a mapping".into()),
    };
    let origin = Origin {
        source: file.display().to_string(),
        position: Position::Line { line: line as u64 },
    };
    let parser = Parser::new(format, TimeOptions::default());
    let event = match parser.parse(&text, origin, chrono::Utc::now()) {
        Ok(e) => e,
        Err(e) => return fail(format!("event does not parse: {e}")),
    };
    let mut matched = Vec::new();
    engine.evaluate(&event, &[], &mut Scratch::default(), &mut matched);
    let fired = matched.contains(&rule_index);
    if fired == expected {
        return CaseResult {
            file: file.to_path_buf(),
            line,
            rule: rule_id.to_string(),
            name,
            failure: None,
        };
    }
    // Explain a miss: was it the logsource or the detection?
    let rule = &engine.rules()[rule_index];
    let detection_alone = rule.matches(&EventView::new(&event, &[]));
    let why = if expected && detection_alone {
        "expected a match: the detection matches but the event is not in the rule's logsource"
            .to_string()
    } else if expected {
        "expected a match, the rule did not fire".to_string()
    } else {
        "expected no match, the rule fired".to_string()
    };
    fail(why)
}
