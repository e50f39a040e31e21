//! Reading rule files: one or many YAML documents per file, directories recursively.

use super::rule::{parse_document, Document, SigmaFilter, SigmaRule};
use super::yaml::{parse_documents, Pos};
use std::fmt;
use std::path::{Path, PathBuf};

/// A rule with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedRule {
    pub rule: SigmaRule,
    pub file: PathBuf,
}

/// A filter with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedFilter {
    pub filter: SigmaFilter,
    pub file: PathBuf,
}

/// A correlation rule with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedCorrelation {
    pub correlation: super::correlation::SigmaCorrelation,
    pub file: PathBuf,
}

/// An anomaly job with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedAnomalyJob {
    pub job: crate::anomaly::job::AnomalyJob,
    pub file: PathBuf,
}

/// A problem with a rule file, printed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
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
    pub rules: Vec<LoadedRule>,
    pub filters: Vec<LoadedFilter>,
    /// One entry per rejected document (its first problem carries the position).
    pub problems: Vec<RuleProblem>,
    pub correlations: Vec<LoadedCorrelation>,
    pub anomaly_jobs: Vec<LoadedAnomalyJob>,
    pub files: usize,
    /// Documents rejected (a document may have several problems).
    pub rejected_documents: usize,
}

/// Loads every `.yml`/`.yaml` file under the given paths.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> LoadReport {
    let mut report = LoadReport::default();
    for path in paths {
        let path = path.as_ref();
        let mut files = Vec::new();
        if let Err(e) = collect_files(path, &mut files) {
            report.problems.push(RuleProblem {
                file: path.to_path_buf(),
                pos: Pos { line: 0, col: 0 },
                message: format!("cannot read: {e}"),
            });
            report.rejected_documents += 1;
            continue;
        }
        files.sort();
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => load_text(&text, &file, &mut report),
                Err(e) => {
                    report.problems.push(RuleProblem {
                        file: file.clone(),
                        pos: Pos { line: 0, col: 0 },
                        message: format!("cannot read: {e}"),
                    });
                    report.rejected_documents += 1;
                }
            }
            report.files += 1;
        }
    }
    report
}

/// Parses the documents of one file's text into the report.
pub fn load_text(text: &str, file: &Path, report: &mut LoadReport) {
    let docs = match parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            report.problems.push(RuleProblem {
                file: file.to_path_buf(),
                pos: e.pos,
                message: format!("YAML syntax error: {}", e.message),
            });
            report.rejected_documents += 1;
            return;
        }
    };
    for doc in &docs {
        match parse_document(doc) {
            Ok(Document::Rule(rule)) => report.rules.push(LoadedRule {
                rule: *rule,
                file: file.to_path_buf(),
            }),
            Ok(Document::Filter(filter)) => report.filters.push(LoadedFilter {
                filter: *filter,
                file: file.to_path_buf(),
            }),
            Ok(Document::Correlation(correlation)) => report.correlations.push(LoadedCorrelation {
                correlation: *correlation,
                file: file.to_path_buf(),
            }),
            Ok(Document::AnomalyJob(job)) => report.anomaly_jobs.push(LoadedAnomalyJob {
                job: *job,
                file: file.to_path_buf(),
            }),
            Err(diags) => {
                report.rejected_documents += 1;
                report
                    .problems
                    .extend(diags.into_iter().map(|d| RuleProblem {
                        file: file.to_path_buf(),
                        pos: d.pos,
                        message: d.message,
                    }))
            }
        }
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let p = entry.path();
        let name = entry.file_name();
        // Hidden files and folders (.git, editor swap files) are not rules.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect_files(&p, out)?;
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_file_is_reported_with_file_line_and_column() {
        let mut report = LoadReport::default();
        load_text(
            "title: t\nlogsource: {product: linux}\ndetection:\n  sel:\n    a|bogus: 1\n  condition: sel\n",
            Path::new("rules/x.yml"),
            &mut report,
        );
        assert_eq!(report.problems.len(), 1);
        let text = report.problems[0].to_string();
        assert!(text.starts_with("rules/x.yml:5:5: "), "{text}");
        assert!(text.contains("bogus"));
    }

    #[test]
    fn yaml_syntax_errors_name_the_line() {
        let mut report = LoadReport::default();
        load_text(
            "title: t\ndetection: [\n",
            Path::new("bad.yml"),
            &mut report,
        );
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
        std::fs::write(dir.path().join("a/r2.yaml"), format!("{rule}---\n{rule}")).unwrap();
        std::fs::write(dir.path().join(".git/r.yml"), rule).unwrap();
        std::fs::write(dir.path().join("a/notes.txt"), "x").unwrap();
        let report = load_paths(&[dir.path()]);
        assert_eq!(report.rules.len(), 3);
        assert_eq!(report.files, 2);
        assert!(report.problems.is_empty());
    }

    #[test]
    fn missing_paths_are_problems_not_panics() {
        let report = load_paths(&["/nonexistent/rules"]);
        assert_eq!(report.problems.len(), 1);
        assert!(report.problems[0].message.contains("cannot read"));
    }
}
