//! Reading rule files: one or many YAML documents per file, directories recursively.

use super::limits::{RuleLimit, RuleLimits};
use super::rule::{parse_document, Diagnostic, Document, SigmaFilter, SigmaRule};
use super::yaml::{parse_documents, Node, Pos};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A rule with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedRule {
    /// The rule.
    pub rule: SigmaRule,
    /// The file the rule was read from.
    pub file: PathBuf,
}

/// A filter with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedFilter {
    /// The filter.
    pub filter: SigmaFilter,
    /// The file the filter was read from.
    pub file: PathBuf,
}

/// A correlation rule with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedCorrelation {
    /// The correlation rule.
    pub correlation: super::correlation::SigmaCorrelation,
    /// The file the correlation rule was read from.
    pub file: PathBuf,
}

/// An anomaly job with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedAnomalyJob {
    /// The anomaly job.
    pub job: super::anomaly::AnomalyJob,
    /// The file the job was read from.
    pub file: PathBuf,
}

/// A problem with a rule file, printed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// The file, or the folder that could not be read.
    pub file: PathBuf,
    /// Where in the file; `0:0` when the problem is the whole file or folder
    /// (unreadable, too large).
    pub pos: Pos,
    /// What is wrong, for the rule author.
    pub message: String,
    /// The limit the rule broke, when that is the problem.
    pub limit: Option<RuleLimit>,
}

impl RuleProblem {
    /// A problem that is not a broken limit.
    pub fn new(file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        RuleProblem {
            file: file.to_path_buf(),
            pos,
            message: message.into(),
            limit: None,
        }
    }

    fn from_diagnostic(file: &Path, d: Diagnostic) -> Self {
        RuleProblem {
            file: file.to_path_buf(),
            pos: d.pos,
            message: d.message,
            limit: d.limit,
        }
    }
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.pos, self.message)
    }
}

impl std::error::Error for RuleProblem {}

/// What loading a set of paths produced.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Detection rules loaded.
    pub rules: Vec<LoadedRule>,
    /// Sigma filters loaded, not yet applied to the rules they name.
    pub filters: Vec<LoadedFilter>,
    /// One entry per rejected document (its first problem carries the position).
    pub problems: Vec<RuleProblem>,
    /// What loads but is probably a mistake (see `lint`): unknown keys,
    /// ids that are not UUIDs, ...
    pub warnings: Vec<RuleProblem>,
    /// Correlation rules loaded.
    pub correlations: Vec<LoadedCorrelation>,
    /// Anomaly jobs loaded.
    pub anomaly_jobs: Vec<LoadedAnomalyJob>,
    /// Rule files read or tried, rejected ones included.
    pub files: usize,
    /// Documents rejected (a document may have several problems).
    pub rejected_documents: usize,
    /// Where each alerting id (rule, correlation, anomaly job) was first
    /// defined: alert ids derive from it, so it must be unique.
    ids: HashMap<String, (PathBuf, Pos)>,
}

/// Loads every `.yml`/`.yaml` file under the given paths. A folder or file
/// that cannot be read is a problem named by its own path; the rest loads.
pub fn load_paths<P: AsRef<Path>>(paths: &[P], limits: &RuleLimits) -> LoadReport {
    let mut report = LoadReport::default();
    for path in paths {
        let mut files = Vec::new();
        collect_files(path.as_ref(), &mut files, &mut report);
        files.sort();
        for file in files {
            report.files += 1;
            match read_rule_file(&file, limits) {
                Ok(text) => load_text(&text, &file, &mut report, limits),
                Err(problem) => {
                    report.problems.push(problem);
                    report.rejected_documents += 1;
                }
            }
        }
    }
    report
}

/// A rule file's text, within the size limit.
fn read_rule_file(file: &Path, limits: &RuleLimits) -> Result<String, RuleProblem> {
    let start = Pos { line: 0, col: 0 };
    let cannot_read =
        |e: std::io::Error| RuleProblem::new(file, start, format!("cannot read: {e}"));
    let size = std::fs::metadata(file).map_err(cannot_read)?.len();
    if size > limits.max_rule_file_bytes {
        return Err(RuleProblem {
            limit: Some(RuleLimit::FileBytes),
            ..RuleProblem::new(
                file,
                start,
                format!(
                    "{size} bytes, larger than rule_limits.max_rule_file_bytes ({})",
                    limits.max_rule_file_bytes
                ),
            )
        });
    }
    std::fs::read_to_string(file).map_err(cannot_read)
}

/// Parses the documents of one file's text into the report.
pub fn load_text(text: &str, file: &Path, report: &mut LoadReport, limits: &RuleLimits) {
    let docs = match parse_documents(text, limits) {
        Ok(docs) => docs,
        Err(e) => {
            report.problems.push(RuleProblem {
                limit: e.limit,
                ..RuleProblem::new(
                    file,
                    e.pos,
                    match e.limit {
                        Some(_) => e.message,
                        None => format!("YAML syntax error: {}", e.message),
                    },
                )
            });
            report.rejected_documents += 1;
            return;
        }
    };
    for doc in &docs {
        report.warnings.extend(
            super::lint::lint(doc)
                .into_iter()
                .map(|d| RuleProblem::from_diagnostic(file, d)),
        );
        let document = parse_document(doc, limits).and_then(|d| {
            let id = match &d {
                Document::Rule(r) => Some(&r.meta.id),
                Document::Correlation(c) => Some(&c.meta.id),
                Document::AnomalyJob(j) => Some(&j.rule.meta.id),
                Document::Filter(_) => None,
            };
            match id {
                Some(id) => report.claim_id(id, doc, file).map(|()| d),
                None => Ok(d),
            }
        });
        let file = file.to_path_buf();
        match document {
            Ok(Document::Rule(rule)) => report.rules.push(LoadedRule { rule: *rule, file }),
            Ok(Document::Filter(filter)) => report.filters.push(LoadedFilter {
                filter: *filter,
                file,
            }),
            Ok(Document::Correlation(correlation)) => report.correlations.push(LoadedCorrelation {
                correlation: *correlation,
                file,
            }),
            Ok(Document::AnomalyJob(job)) => report
                .anomaly_jobs
                .push(LoadedAnomalyJob { job: *job, file }),
            Err(diags) => {
                report.rejected_documents += 1;
                report.problems.extend(
                    diags
                        .into_iter()
                        .map(|d| RuleProblem::from_diagnostic(&file, d)),
                )
            }
        }
    }
}

impl LoadReport {
    /// Records where `id` is defined, or says where it already was.
    fn claim_id(&mut self, id: &str, doc: &Node, file: &Path) -> Result<(), Vec<Diagnostic>> {
        let pos = doc.get("id").map_or(doc.pos, |n| n.pos);
        match self.ids.get(id) {
            Some((first_file, first_pos)) => Err(vec![Diagnostic::new(
                pos,
                format!(
                    "duplicate rule id `{id}`, first defined at {}:{first_pos}; alert ids derive from it, so this rule is not loaded{}",
                    first_file.display(),
                    if doc.get("id").is_none() {
                        " (a rule without `id` gets one from its title: give it an id)"
                    } else {
                        ""
                    }
                ),
            )]),
            None => {
                self.ids.insert(id.to_string(), (file.to_path_buf(), pos));
                Ok(())
            }
        }
    }
}

/// Collects rule files under `path`; each unreadable folder or entry is a
/// problem of its own, and the others are still collected.
fn collect_files(path: &Path, out: &mut Vec<PathBuf>, report: &mut LoadReport) {
    let mut unreadable = |p: &Path, e: std::io::Error| {
        report.problems.push(RuleProblem::new(
            p,
            Pos { line: 0, col: 0 },
            format!("cannot read: {e}"),
        ));
        report.rejected_documents += 1;
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return unreadable(path, e),
    };
    if meta.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let mut folders = vec![path.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) => {
                unreadable(&folder, e);
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    unreadable(&folder, e);
                    continue;
                }
            };
            let p = entry.path();
            // Hidden files and folders (.git, editor swap files) are not rules.
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => folders.push(p),
                Ok(_) if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) => {
                    out.push(p)
                }
                Ok(_) => {}
                Err(e) => unreadable(&p, e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What loading `text` as the file `path` with default limits reports.
    fn load_one(text: &str, path: &str) -> LoadReport {
        let mut report = LoadReport::default();
        load_text(text, Path::new(path), &mut report, &RuleLimits::default());
        report
    }

    #[test]
    fn a_broken_file_is_reported_with_file_line_and_column() {
        let report = load_one(
            "title: t\nlogsource: {product: linux}\ndetection:\n  sel:\n    a|bogus: 1\n  condition: sel\n",
            "rules/x.yml",
        );
        assert_eq!(report.problems.len(), 1);
        let text = report.problems[0].to_string();
        assert!(text.starts_with("rules/x.yml:5:5: "), "{text}");
        assert!(text.contains("bogus"));
    }

    #[test]
    fn yaml_syntax_errors_name_the_line() {
        let report = load_one("title: t\ndetection: [\n", "bad.yml");
        assert_eq!(report.problems.len(), 1);
        assert!(report.problems[0].message.starts_with("YAML syntax error"));
        assert!(report.problems[0].pos.line >= 2);
    }

    #[test]
    fn directories_load_recursively_and_skip_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        let rule =
            "title: t\nlogsource: {product: linux}\ndetection:\n  sel: {a: 1}\n  condition: sel\n";
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join("a/b/r.yml"), rule).unwrap();
        let (two, three) = (rule.replace("t\n", "two\n"), rule.replace("t\n", "three\n"));
        std::fs::write(dir.path().join("a/r2.yaml"), format!("{two}---\n{three}")).unwrap();
        std::fs::write(dir.path().join(".git/r.yml"), rule).unwrap();
        std::fs::write(dir.path().join("a/notes.txt"), "x").unwrap();
        let report = load_paths(&[dir.path()], &RuleLimits::default());
        assert_eq!(report.rules.len(), 3);
        assert_eq!(report.files, 2);
        assert!(report.problems.is_empty());
    }

    #[test]
    fn missing_paths_are_problems_not_panics() {
        let report = load_paths(&["/nonexistent/rules"], &RuleLimits::default());
        assert_eq!(report.problems.len(), 1);
        assert!(report.problems[0].message.contains("cannot read"));
    }

    const RULE: &str =
        "title: t\nid: 5d3f1a4e-0000-4000-8000-000000000001\nlogsource: {product: linux}\ndetection:\n  sel: {a: 1}\n  condition: sel\n";

    #[test]
    fn a_duplicate_rule_id_is_rejected_where_it_repeats_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yml"), RULE).unwrap();
        std::fs::write(
            dir.path().join("b.yml"),
            RULE.replace("title: t", "title: other"),
        )
        .unwrap();
        let report = load_paths(&[dir.path()], &RuleLimits::default());
        assert_eq!(report.rules.len(), 1);
        assert_eq!(report.rules[0].rule.meta.title, "t");
        assert_eq!(report.problems.len(), 1);
        let text = report.problems[0].to_string();
        assert!(text.contains("b.yml:2:5: duplicate rule id"), "{text}");
        assert!(text.contains("a.yml:2:5"), "{text}");
        assert_eq!(report.rejected_documents, 1);
    }

    #[test]
    fn rules_without_ids_and_the_same_title_are_duplicates_too() {
        let rule = RULE.replace("id: 5d3f1a4e-0000-4000-8000-000000000001\n", "");
        let report = load_one(&format!("{rule}---\n{rule}"), "r.yml");
        assert_eq!(report.rules.len(), 1);
        assert!(
            report.problems[0].message.contains("give it an id"),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn an_unreadable_subfolder_is_named_and_the_rest_loads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("r.yml"), RULE).unwrap();
        std::fs::write(dir.path().join("ok.yml"), RULE).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        let readable_anyway = std::fs::read_dir(&locked).is_ok(); // root reads everything
        let report = load_paths(&[dir.path()], &RuleLimits::default());
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        if readable_anyway {
            eprintln!("running as root: permissions do not lock the folder; checked by the dangling link below");
        } else {
            assert_eq!(report.rules.len(), 1);
            assert!(report.problems[0]
                .to_string()
                .starts_with(&format!("{}:0:0: cannot read", locked.display())));
        }
        // A dangling symlink to a folder fails the same way for everyone.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok.yml"), RULE).unwrap();
        std::os::unix::fs::symlink("/nonexistent/tocsin-rules", dir.path().join("gone.yml"))
            .unwrap();
        let report = load_paths(&[dir.path()], &RuleLimits::default());
        assert_eq!(report.rules.len(), 1);
        assert_eq!(report.problems.len(), 1);
        assert!(
            report.problems[0]
                .to_string()
                .contains("gone.yml:0:0: cannot read"),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn files_larger_than_the_limit_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("big.yml"),
            format!("{RULE}# {}\n", "x".repeat(2000)),
        )
        .unwrap();
        let limits = RuleLimits {
            max_rule_file_bytes: 1000,
            ..RuleLimits::default()
        };
        let report = load_paths(&[dir.path()], &limits);
        assert!(report.rules.is_empty());
        assert_eq!(report.problems[0].limit, Some(RuleLimit::FileBytes));
        assert!(report.problems[0].message.contains("max_rule_file_bytes"));
    }

    #[test]
    fn a_condition_nested_too_deep_or_too_many_values_is_a_limit_problem() {
        let deep = RULE.replace(
            "condition: sel",
            &format!("condition: {}sel", "not ".repeat(100)),
        );
        let many = RULE.replace(
            "sel: {a: 1}",
            &format!("sel: {{a: [{}]}}", vec!["x"; 50].join(", ")),
        );
        let limits = RuleLimits {
            max_values_per_rule: 10,
            ..RuleLimits::default()
        };
        for (text, limit) in [
            (deep, RuleLimit::ConditionDepth),
            (many, RuleLimit::ValuesPerRule),
        ] {
            let mut report = LoadReport::default();
            load_text(&text, Path::new("r.yml"), &mut report, &limits);
            assert!(report.rules.is_empty());
            assert_eq!(
                report.problems[0].limit,
                Some(limit),
                "{:?}",
                report.problems
            );
        }
    }
}
