//! Reading rule files: one or many YAML documents per file, directories recursively.

use super::cache::{text_hash, RuleCache, TextHash};
use super::limits::{RuleLimit, RuleLimits};
use super::rule::{parse_document, Diagnostic, Document, SigmaFilter, SigmaRule};
use super::yaml::{parse_documents, Pos};
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
///
/// Files are read and parsed on every core (YAML scanning is most of the
/// load), then merged in path order, so ids are claimed and the files'
/// problems listed as a one-by-one load would (folders that cannot be read
/// are listed first).
pub fn load_paths<P: AsRef<Path>>(paths: &[P], limits: &RuleLimits) -> LoadReport {
    load_paths_cached(paths, limits, None)
}

/// [`load_paths`], with the parse results of unchanged files taken from the
/// rule cache in `cache_dir` (see `cache`), which is brought up to date.
/// The report is the same as without a cache.
pub fn load_paths_cached<P: AsRef<Path>>(
    paths: &[P],
    limits: &RuleLimits,
    cache_dir: Option<&Path>,
) -> LoadReport {
    use rayon::prelude::*;
    let roots: Vec<&Path> = paths.iter().map(AsRef::as_ref).collect();
    // Walking the folders and reading the cache are both mostly waiting on
    // the file system: side by side.
    let ((mut report, files), cache) = rayon::join(
        || {
            let mut report = LoadReport::default();
            let mut files = Vec::new();
            for root in &roots {
                let mut found = Vec::new();
                collect_files(root, &mut found, &mut report);
                found.sort();
                files.extend(found);
            }
            (report, files)
        },
        || cache_dir.and_then(|dir| RuleCache::open(dir, &roots, limits)),
    );
    let parsed: Vec<Result<(ParsedFile, Option<Cached>), RuleProblem>> = files
        .par_iter()
        .map(|file| {
            let text = read_rule_file(file, limits)?;
            Ok(match &cache {
                None => (parse_file(&text, file, limits), None),
                Some(cache) => parse_cached(cache, &text, file, limits),
            })
        })
        .collect();
    if let Some(cache) = &cache {
        update_cache(cache, &files, &parsed);
    }
    for file in parsed {
        report.files += 1;
        match file {
            Ok((parsed, _)) => report.add(parsed),
            Err(problem) => {
                report.problems.push(problem);
                report.rejected_documents += 1;
            }
        }
    }
    report
}

/// A file's entry in the rule cache: its text hash, and its encoded parse
/// result when it was parsed now (`None`: decoded from the cache as stored).
struct Cached {
    text: TextHash,
    encoded: Option<Vec<u8>>,
}

/// The file's parse result from the cache, or parsed and encoded for it.
fn parse_cached(
    cache: &RuleCache,
    text: &str,
    file: &Path,
    limits: &RuleLimits,
) -> (ParsedFile, Option<Cached>) {
    let hash = text_hash(text);
    let decoded = cache
        .entry(file, hash)
        .and_then(|entry| postcard::from_bytes::<ParsedFile>(entry).ok())
        .filter(|parsed| parsed.file == file);
    if let Some(parsed) = decoded {
        let cached = Cached {
            text: hash,
            encoded: None,
        };
        return (parsed, Some(cached));
    }
    let parsed = parse_file(text, file, limits);
    // A result that cannot be encoded (a path that is not UTF-8) is not cached.
    let encoded = postcard::to_stdvec(&parsed).ok();
    let cached = encoded.map(|e| Cached {
        text: hash,
        encoded: Some(e),
    });
    (parsed, cached)
}

/// Rewrites the cache when a file was parsed now (new, changed, or its
/// entry damaged) or is gone. A cache that cannot be written only costs the
/// next load its speed.
fn update_cache(
    cache: &RuleCache,
    files: &[PathBuf],
    parsed: &[Result<(ParsedFile, Option<Cached>), RuleProblem>],
) {
    let entries: Vec<(&Path, &Cached)> = files
        .iter()
        .zip(parsed)
        .filter_map(|(file, p)| Some((file.as_path(), p.as_ref().ok()?.1.as_ref()?)))
        .collect();
    let all_decoded = entries.iter().all(|(_, c)| c.encoded.is_none());
    if all_decoded && entries.len() == cache.len() {
        return;
    }
    let stored = entries.iter().filter_map(|(file, c)| {
        let entry = match &c.encoded {
            Some(encoded) => encoded.as_slice(),
            None => cache.entry(file, c.text)?,
        };
        Some((*file, c.text, entry))
    });
    if let Err(e) = cache.store(stored) {
        tracing::debug!(file = %cache.path().display(), error = %e, "rule cache not written");
    }
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

/// One file's documents, parsed but not yet merged into a report.
#[derive(serde::Serialize, serde::Deserialize)]
struct ParsedFile {
    file: PathBuf,
    /// The YAML did not parse: the file's only problem.
    syntax: Option<RuleProblem>,
    documents: Vec<ParsedDocument>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ParsedDocument {
    warnings: Vec<RuleProblem>,
    document: Result<Document, Vec<Diagnostic>>,
    /// Where the document's `id` is, and whether it has one, for a duplicate's message.
    id_site: (Pos, bool),
}

/// Parses the documents of one file's text into the report.
pub fn load_text(text: &str, file: &Path, report: &mut LoadReport, limits: &RuleLimits) {
    report.add(parse_file(text, file, limits));
}

fn parse_file(text: &str, file: &Path, limits: &RuleLimits) -> ParsedFile {
    let mut parsed = ParsedFile {
        file: file.to_path_buf(),
        syntax: None,
        documents: Vec::new(),
    };
    let docs = match parse_documents(text, limits) {
        Ok(docs) => docs,
        Err(e) => {
            parsed.syntax = Some(RuleProblem {
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
            return parsed;
        }
    };
    parsed.documents = docs
        .iter()
        .map(|doc| ParsedDocument {
            warnings: super::lint::lint(doc)
                .into_iter()
                .map(|d| RuleProblem::from_diagnostic(file, d))
                .collect(),
            document: parse_document(doc, limits),
            id_site: doc.get("id").map_or((doc.pos, false), |n| (n.pos, true)),
        })
        .collect();
    parsed
}

impl LoadReport {
    /// Merges a parsed file: claims its ids and files its documents.
    fn add(&mut self, parsed: ParsedFile) {
        let ParsedFile {
            file,
            syntax,
            documents,
        } = parsed;
        if let Some(problem) = syntax {
            self.problems.push(problem);
            self.rejected_documents += 1;
            return;
        }
        for ParsedDocument {
            warnings,
            document,
            id_site,
        } in documents
        {
            self.warnings.extend(warnings);
            let document = document.and_then(|d| {
                let id = match &d {
                    Document::Rule(r) => Some(&r.meta.id),
                    Document::Correlation(c) => Some(&c.meta.id),
                    Document::AnomalyJob(j) => Some(&j.rule.meta.id),
                    Document::Filter(_) => None,
                };
                match id {
                    Some(id) => self.claim_id(id, id_site, &file).map(|()| d),
                    None => Ok(d),
                }
            });
            let file = file.clone();
            match document {
                Ok(Document::Rule(rule)) => self.rules.push(LoadedRule { rule: *rule, file }),
                Ok(Document::Filter(filter)) => self.filters.push(LoadedFilter {
                    filter: *filter,
                    file,
                }),
                Ok(Document::Correlation(correlation)) => {
                    self.correlations.push(LoadedCorrelation {
                        correlation: *correlation,
                        file,
                    })
                }
                Ok(Document::AnomalyJob(job)) => {
                    self.anomaly_jobs.push(LoadedAnomalyJob { job: *job, file })
                }
                Err(diags) => {
                    self.rejected_documents += 1;
                    self.problems.extend(
                        diags
                            .into_iter()
                            .map(|d| RuleProblem::from_diagnostic(&file, d)),
                    )
                }
            }
        }
    }

    /// Records where `id` is defined, or says where it already was.
    fn claim_id(
        &mut self,
        id: &str,
        (pos, explicit): (Pos, bool),
        file: &Path,
    ) -> Result<(), Vec<Diagnostic>> {
        match self.ids.get(id) {
            Some((first_file, first_pos)) => Err(vec![Diagnostic::new(
                pos,
                format!(
                    "duplicate rule id `{id}`, first defined at {}:{first_pos}; alert ids derive from it, so this rule is not loaded{}",
                    first_file.display(),
                    if explicit {
                        ""
                    } else {
                        " (a rule without `id` gets one from its title: give it an id)"
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

    /// Everything a load reports, in order, as text.
    fn summary(report: &LoadReport) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{} files, {} rejected",
            report.rules,
            report.filters,
            report.correlations,
            report.anomaly_jobs,
            report.problems,
            report.warnings,
            report.files,
            report.rejected_documents
        )
    }

    #[test]
    fn a_cached_load_reports_what_a_parse_does_and_follows_edits() {
        let rules = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(rules.path().join(name), text).unwrap();
        write("a.yml", RULE);
        // A duplicate id, a broken file and a rule with a lint warning.
        write("b.yml", &RULE.replace("title: t", "title: other"));
        write("broken.yml", "title: [unclosed\n");
        write(
            "c.yml",
            &RULE
                .replace("0001", "0002")
                .replace("title: t", "title: c\nunknownkey: 1"),
        );
        let limits = RuleLimits::default();
        let check = |what: &str| {
            let parsed = load_paths(&[rules.path()], &limits);
            let first = load_paths_cached(&[rules.path()], &limits, Some(cache.path()));
            let cached = load_paths_cached(&[rules.path()], &limits, Some(cache.path()));
            assert_eq!(
                summary(&first),
                summary(&parsed),
                "{what}: filling the cache"
            );
            assert_eq!(summary(&cached), summary(&parsed), "{what}: from the cache");
            parsed
        };
        let before = check("first load");
        assert_eq!(before.rules.len(), 2);
        assert_eq!(before.problems.len(), 2, "{:?}", before.problems);
        assert!(!before.warnings.is_empty());
        // An edit, a new file and a removed one are seen on the next load.
        write(
            "c.yml",
            &RULE
                .replace("0001", "0002")
                .replace("title: t", "title: edited"),
        );
        write("d.yml", &RULE.replace("0001", "0004"));
        std::fs::remove_file(rules.path().join("broken.yml")).unwrap();
        let after = check("after edits");
        assert_eq!(after.rules.len(), 3);
        assert!(after.rules.iter().any(|r| r.rule.meta.title == "edited"));
        assert_eq!(after.problems.len(), 1);
    }

    #[test]
    fn a_damaged_or_foreign_cache_falls_back_to_parsing() {
        let rules = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(rules.path().join("a.yml"), RULE).unwrap();
        let limits = RuleLimits::default();
        let parsed = summary(&load_paths(&[rules.path()], &limits));
        load_paths_cached(&[rules.path()], &limits, Some(cache.path()));
        let files: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let stored = std::fs::read(&files[0]).unwrap();
        // Flip bytes through the whole file: the entry's content included.
        for at in (0..stored.len()).step_by(7) {
            let mut damaged = stored.clone();
            damaged[at] ^= 0x20;
            std::fs::write(&files[0], &damaged).unwrap();
            let report = load_paths_cached(&[rules.path()], &limits, Some(cache.path()));
            assert_eq!(summary(&report), parsed, "byte {at} flipped");
            let repaired = std::fs::read(&files[0]).unwrap();
            assert!(
                repaired == stored,
                "byte {at} flipped: the cache is not repaired"
            );
        }
        std::fs::write(&files[0], b"not a cache").unwrap();
        let report = load_paths_cached(&[rules.path()], &limits, Some(cache.path()));
        assert_eq!(summary(&report), parsed);
    }
}
