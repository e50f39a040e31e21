//! Rules compiled into something that runs: the detection engine.
//!
//! `Engine::compile` turns loaded Sigma rules into matchers once;
//! `Engine::evaluate` routes an event by logsource and runs the condition
//! program of every rule that can see it.

pub(crate) mod describe;
pub(crate) mod index;
mod literals;
pub(crate) mod logsource;
pub(crate) mod pattern;
mod prefilter;
pub(crate) mod regex_literals;
pub(crate) mod value;
mod windowed;

use crate::event::Event;
use crate::sigma::{Condition, Detection, LoadedFilter, LoadedRule, Quantifier, RuleProblem};
use logsource::{EntrySet, LogsourceFilter, Routing};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use value::ItemMatcher;

pub use logsource::LogsourceRouter;
pub use logsource::MappingError;
pub use value::Placeholders;

/// An event seen through a logsource's field mappings.
pub struct EventView<'a> {
    event: &'a Event,
    aliases: &'a [(&'a str, &'a str)],
}

impl<'a> EventView<'a> {
    /// Views `event` with `aliases`: `(Sigma name, field in the event)` pairs.
    pub fn new(event: &'a Event, aliases: &'a [(&'a str, &'a str)]) -> Self {
        EventView { event, aliases }
    }

    /// A field by its Sigma name: a mapped name first, then the name itself.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        for (sigma, actual) in self.aliases {
            if *sigma == name {
                if let Some(v) = self.event.get(actual) {
                    return Some(v);
                }
            }
        }
        self.event.get(name)
    }

    /// Whether any text of the event satisfies `f`: every string, number and
    /// boolean value at any depth, and the raw line of text events.
    /// This is what Sigma keyword searches run against.
    pub fn any_text(&self, f: impl Fn(&str) -> bool) -> bool {
        fn walk(v: &Value, f: &dyn Fn(&str) -> bool) -> bool {
            match v {
                Value::String(s) => f(s),
                Value::Array(items) => items.iter().any(|i| walk(i, f)),
                Value::Object(map) => map.values().any(|i| walk(i, f)),
                Value::Number(n) => f(&n.to_string()),
                Value::Bool(_) | Value::Null => false,
            }
        }
        if let Some(raw) = self.event.raw_text() {
            if f(raw) {
                return true;
            }
        }
        self.event.fields.values().any(|v| walk(v, &f))
    }
}

/// A condition compiled against the rule's search identifiers.
#[derive(Debug, Clone)]
enum Program {
    Search(usize),
    Not(Box<Program>),
    And(Vec<Program>),
    Or(Vec<Program>),
}

#[derive(Debug, Clone)]
struct CompiledSearch {
    any_of: Vec<Vec<ItemMatcher>>,
}

impl CompiledSearch {
    fn matches(&self, view: &EventView<'_>) -> bool {
        self.any_of
            .iter()
            .any(|group| group.iter().all(|item| item.matches(view)))
    }
}

/// A compiled `detection`: searches and the condition program over them.
#[derive(Debug, Clone)]
struct CompiledDetection {
    searches: Vec<CompiledSearch>,
    program: Program,
}

impl CompiledDetection {
    fn run(&self, p: &Program, view: &EventView<'_>) -> bool {
        match p {
            Program::Search(i) => self.searches.get(*i).is_some_and(|s| s.matches(view)),
            Program::Not(inner) => !self.run(inner, view),
            Program::And(terms) => terms.iter().all(|t| self.run(t, view)),
            Program::Or(terms) => terms.iter().any(|t| self.run(t, view)),
        }
    }

    fn matches(&self, view: &EventView<'_>) -> bool {
        self.run(&self.program, view)
    }
}

/// One rule ready to run.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// The rule as parsed.
    pub rule: Arc<crate::sigma::SigmaRule>,
    /// The file the rule was read from.
    pub file: std::path::PathBuf,
    detection: CompiledDetection,
    /// Sigma filters naming this rule: a match of any of them vetoes the rule.
    filters: Vec<Arc<CompiledDetection>>,
    /// Titles of those filters, for `rules check` and explanations.
    pub filter_titles: Vec<String>,
}

impl CompiledRule {
    /// Evaluates the rule's detection, with its filters, on an event (ignoring logsource).
    pub fn matches(&self, view: &EventView<'_>) -> bool {
        self.detection.matches(view) && !self.filters.iter().any(|f| f.matches(view))
    }

    /// Fields the detection reads, in rule order: once per item that reads
    /// one, so a field read by several items comes several times.
    pub fn detection_fields(&self) -> impl Iterator<Item = &str> {
        self.rule
            .detection
            .items()
            .filter_map(|item| item.field.as_deref())
    }
}

/// Rules that share one logsource.
#[derive(Debug, Clone)]
struct RuleGroup {
    filter: LogsourceFilter,
    rules: Vec<usize>,
}

/// Options for compiling rules.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Values of the `%name%` placeholders that `expand` replaces, by name.
    pub placeholders: Placeholders,
    /// Limits on rule files (size, nesting, values).
    pub limits: crate::sigma::RuleLimits,
    /// Where parsed rule files are cached between loads (see
    /// `sigma::cache`); `None` parses every file.
    pub rule_cache: Option<std::path::PathBuf>,
}

/// All loaded rules, compiled, with the logsource router.
#[derive(Debug, Clone)]
pub struct Engine {
    rules: Vec<CompiledRule>,
    groups: Vec<RuleGroup>,
    router: LogsourceRouter,
    index: index::RuleIndex,
}

/// Scratch space reused across evaluations so the hot path does not allocate.
#[derive(Debug, Default)]
pub struct Scratch {
    routing: Routing,
    index: index::IndexScratch,
    admitted: index::GroupSet,
    routes: RouteCache,
}

/// Routing outcomes by routing key.
///
/// Routing evaluates the mapping's `when` conditions (a Sysmon event checks
/// tens of entries) and then every rule group's logsource filter. Both depend
/// only on the format, a few field values (Channel, EventID, ...) and the
/// source's tags, which repeat from event to event, so each distinct
/// combination is routed once.
#[derive(Debug, Default)]
struct RouteCache {
    engine: u64,
    key: Vec<u8>,
    outcomes: HashMap<Vec<u8>, (EntrySet, index::GroupSet), foldhash::fast::RandomState>,
}

/// Distinct routing keys remembered; beyond it the cache starts over, which
/// bounds memory when a routing field has unbounded values.
const ROUTE_CACHE_MAX: usize = 4096;

impl Engine {
    /// Compiles rules. Rules that fail are left out and reported.
    pub fn compile(
        loaded: Vec<LoadedRule>,
        filters: Vec<LoadedFilter>,
        router: LogsourceRouter,
        options: &CompileOptions,
    ) -> (Engine, Vec<RuleProblem>) {
        use rayon::prelude::*;
        let mut rules = Vec::with_capacity(loaded.len());
        let mut problems = Vec::new();
        // Each rule compiles on its own (regexes, glob and value programs):
        // on every core, then kept in load order.
        let compiled: Vec<_> = loaded
            .into_par_iter()
            .map(|LoadedRule { rule, file }| {
                let detection = compile_detection(&rule.meta.title, &rule.detection, options);
                (rule, file, detection)
            })
            .collect();
        for (rule, file, detection) in compiled {
            match detection {
                Ok(detection) => rules.push(CompiledRule {
                    rule: Arc::new(rule),
                    file,
                    detection,
                    filters: Vec::new(),
                    filter_titles: Vec::new(),
                }),
                Err(d) => problems.push(RuleProblem {
                    file,
                    pos: d.pos,
                    message: d.message,
                    limit: d.limit,
                }),
            }
        }
        apply_filters(&mut rules, filters, options, &mut problems);
        let mut by_logsource: Vec<(crate::sigma::Logsource, Vec<usize>)> = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match by_logsource
                .iter_mut()
                .find(|(ls, _)| *ls == r.rule.logsource)
            {
                Some((_, members)) => members.push(i),
                None => by_logsource.push((r.rule.logsource.clone(), vec![i])),
            }
        }
        let mut group_of = vec![0u32; rules.len()];
        let groups: Vec<RuleGroup> = by_logsource
            .into_iter()
            .enumerate()
            .map(|(g, (logsource, members))| {
                for &r in &members {
                    group_of[r] = g as u32;
                }
                RuleGroup {
                    filter: router.filter(&logsource),
                    rules: members,
                }
            })
            .collect();
        let index = index::RuleIndex::build(&rules, group_of);
        let engine = Engine {
            rules,
            groups,
            router,
            index,
        };
        (engine, problems)
    }

    /// The compiled rules, in load order; [`Engine::evaluate`] returns indices into it.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The logsource mapping events are routed with.
    pub fn router(&self) -> &LogsourceRouter {
        &self.router
    }

    /// Indices of the rules that match the event, in load order.
    pub fn evaluate(
        &self,
        event: &Event,
        source_tags: &[(String, String)],
        scratch: &mut Scratch,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        self.route(event, source_tags, scratch);
        let mut aliases = Vec::new();
        self.router.aliases(&scratch.routing, &mut aliases);
        let view = EventView::new(event, &aliases);
        for &r in self
            .index
            .candidates(&view, &aliases, &scratch.admitted, &mut scratch.index)
        {
            let r = r as usize;
            if self.rules[r].matches(&view) {
                out.push(r);
            }
        }
    }

    /// Routes the event (`scratch.routing`) and finds the rule groups whose
    /// logsource admits it (`scratch.admitted`), through the routing cache.
    fn route(&self, event: &Event, source_tags: &[(String, String)], scratch: &mut Scratch) {
        let cache = &mut scratch.routes;
        if cache.engine != self.index.id() {
            cache.outcomes.clear();
            cache.engine = self.index.id();
        }
        let cacheable = self.router.write_key(event, &mut cache.key);
        if cacheable {
            for (k, v) in source_tags {
                for part in [k, v] {
                    cache.key.extend_from_slice(part.as_bytes());
                    cache.key.push(0xFF);
                }
            }
            if let Some((matched, admitted)) = cache.outcomes.get(cache.key.as_slice()) {
                scratch.routing.set_matched(matched);
                scratch.admitted.clone_from(admitted);
                return;
            }
        }
        self.router.route(event, &mut scratch.routing);
        scratch.admitted.clear();
        for (g, group) in self.groups.iter().enumerate() {
            if group.filter.admits(&scratch.routing, source_tags) {
                scratch.admitted.insert(g);
            }
        }
        if cacheable {
            if cache.outcomes.len() >= ROUTE_CACHE_MAX {
                cache.outcomes.clear();
            }
            let outcome = (scratch.routing.matched().clone(), scratch.admitted.clone());
            cache.outcomes.insert(cache.key.clone(), outcome);
        }
    }

    /// The reference evaluation: every rule of every admitted logsource
    /// group, without the prefilter. Slow; tests use it to check that the
    /// index never drops a match.
    pub fn evaluate_exhaustive(
        &self,
        event: &Event,
        source_tags: &[(String, String)],
        out: &mut Vec<usize>,
    ) {
        out.clear();
        let mut routing = Routing::default();
        self.router.route(event, &mut routing);
        let mut aliases = Vec::new();
        self.router.aliases(&routing, &mut aliases);
        let view = EventView::new(event, &aliases);
        for group in &self.groups {
            if group.filter.admits(&routing, source_tags) {
                out.extend(
                    group
                        .rules
                        .iter()
                        .copied()
                        .filter(|&r| self.rules[r].matches(&view)),
                );
            }
        }
        out.sort_unstable();
    }

    /// Rules the prefilter cannot index, evaluated for every event of their logsource.
    pub fn unindexed_rules(&self) -> usize {
        self.index.unindexed()
    }

    /// Rules whose logsource no mapping entry provides: they can only fire
    /// on sources that declare that logsource in their configuration.
    pub fn unrouted_rules(&self) -> impl Iterator<Item = &CompiledRule> {
        self.groups
            .iter()
            .filter(|g| !g.filter.is_reachable())
            .flat_map(|g| g.rules.iter().map(|&i| &self.rules[i]))
    }
}

/// What loading rules for an engine found.
#[derive(Debug, Default)]
pub struct RuleLoadSummary {
    /// Rule files read or tried.
    pub files: usize,
    /// Rules compiled, the detections of anomaly jobs included.
    pub loaded: usize,
    /// Rule documents rejected by the parser or the compiler.
    pub rejected: usize,
    /// Every problem, as `file:line:col: message`.
    pub problems: Vec<RuleProblem>,
    /// What loaded but is probably a mistake (`sigma::lint`, logsource values
    /// the mapping does not know), as `file:line:col: message`.
    pub warnings: Vec<RuleProblem>,
    /// Sigma filters loaded (applied to the rules they name).
    pub filters: usize,
    /// Correlation rules, checked but not compiled here (see `correlate`).
    pub correlations: Vec<crate::sigma::LoadedCorrelation>,
    /// Anomaly jobs; their detections are among the compiled rules.
    pub anomaly_jobs: Vec<crate::sigma::LoadedAnomalyJob>,
}

/// Loads and compiles rules from files and folders with a logsource mapping
/// (the built-in one when `mapping` is `None`).
pub fn load_engine<P: AsRef<std::path::Path>>(
    paths: &[P],
    mapping: Option<&std::path::Path>,
    options: &CompileOptions,
) -> Result<(Engine, RuleLoadSummary), MappingError> {
    let router = match mapping {
        Some(path) => LogsourceRouter::from_file(path)?,
        None => LogsourceRouter::builtin()?,
    };
    let mut report =
        crate::sigma::load_paths_cached(paths, &options.limits, options.rule_cache.as_deref());
    let mapping_name = mapping.map_or("built-in".to_string(), |p| p.display().to_string());
    let filters = report.filters.len();
    // Anomaly jobs select their events with ordinary detections, compiled
    // and indexed with the rules; `crate::anomaly::AnomalySet` claims them.
    for j in &report.anomaly_jobs {
        for rule in std::iter::once(&j.job.rule).chain(&j.job.numerator_rule) {
            report.rules.push(LoadedRule {
                rule: rule.clone(),
                file: j.file.clone(),
            });
        }
    }
    let mut warnings = report.warnings;
    warnings.extend(router.unknown_values(&report.rules, &mapping_name));
    let (engine, compile_problems) = Engine::compile(report.rules, report.filters, router, options);
    let mut problems = report.problems;
    let rejected = report.rejected_documents + compile_problems.len();
    problems.extend(compile_problems);
    let summary = RuleLoadSummary {
        files: report.files,
        loaded: engine.rules().len(),
        filters,
        rejected,
        problems,
        warnings,
        correlations: report.correlations,
        anomaly_jobs: report.anomaly_jobs,
    };
    Ok((engine, summary))
}

/// Attaches each filter to the rules it names (by id or name) whose logsource
/// it covers. Unknown names and logsource mismatches are reported; a filter
/// that fails to compile is rejected and changes nothing.
fn apply_filters(
    rules: &mut [CompiledRule],
    filters: Vec<LoadedFilter>,
    options: &CompileOptions,
    problems: &mut Vec<RuleProblem>,
) {
    for LoadedFilter { filter, file } in filters {
        let compiled = match compile_detection(&filter.title, &filter.detection, options) {
            Ok(c) => Arc::new(c),
            Err(d) => {
                problems.push(RuleProblem {
                    file: file.clone(),
                    pos: d.pos,
                    message: d.message,
                    limit: d.limit,
                });
                continue;
            }
        };
        let problem = |message: String| RuleProblem {
            file: file.clone(),
            pos: filter.pos,
            message,
            limit: None,
        };
        for reference in &filter.rules {
            let targets: Vec<usize> = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.rule.meta.id == *reference
                        || r.rule.meta.name.as_deref() == Some(reference.as_str())
                })
                .map(|(i, _)| i)
                .collect();
            if targets.is_empty() {
                problems.push(problem(format!(
                    "filter `{}` names rule `{reference}`, which is not loaded",
                    filter.title
                )));
            }
            for i in targets {
                let rule = &mut rules[i];
                let covered = filter.logsource.requirements().all(|(k, v)| {
                    rule.rule
                        .logsource
                        .requirements()
                        .any(|(rk, rv)| rk == k && rv == v)
                });
                if !covered {
                    problems.push(problem(format!(
                        "filter `{}` does not apply to rule `{}`: its logsource {:?} is not the rule's {:?}",
                        filter.title, rule.rule.meta.title, filter.logsource, rule.rule.logsource
                    )));
                    continue;
                }
                rule.filters.push(compiled.clone());
                rule.filter_titles.push(filter.title.clone());
            }
        }
    }
}

fn compile_detection(
    title: &str,
    detection: &Detection,
    options: &CompileOptions,
) -> Result<CompiledDetection, crate::sigma::rule::Diagnostic> {
    use crate::sigma::rule::Diagnostic;
    let mut searches = Vec::with_capacity(detection.searches.len());
    for search in &detection.searches {
        let mut any_of = Vec::with_capacity(search.any_of.len());
        for group in &search.any_of {
            let mut items = Vec::with_capacity(group.len());
            for item in group {
                let m = ItemMatcher::compile(item, &options.placeholders).map_err(|message| {
                    let field = item.field.as_deref().unwrap_or("<keywords>");
                    Diagnostic::new(item.pos, format!("rule `{title}`, `{field}`: {message}"))
                })?;
                items.push(m);
            }
            any_of.push(items);
        }
        searches.push(CompiledSearch { any_of });
    }
    let names: Vec<&str> = detection.searches.iter().map(|s| s.name.as_str()).collect();
    let programs: Vec<Program> = detection
        .conditions
        .iter()
        .map(|(_, c)| compile_condition(c, &names))
        .collect();
    let program = if programs.len() == 1 {
        programs
            .into_iter()
            .next()
            .unwrap_or(Program::Or(Vec::new()))
    } else {
        Program::Or(programs)
    };
    Ok(CompiledDetection { searches, program })
}

fn compile_condition(cond: &Condition, names: &[&str]) -> Program {
    match cond {
        Condition::Search(name) => match names.iter().position(|n| n == name) {
            Some(i) => Program::Search(i),
            // The parser checked references; an unknown name can only be false.
            None => Program::Or(Vec::new()),
        },
        Condition::Not(inner) => Program::Not(Box::new(compile_condition(inner, names))),
        Condition::And(terms) => {
            Program::And(terms.iter().map(|t| compile_condition(t, names)).collect())
        }
        Condition::Or(terms) => {
            Program::Or(terms.iter().map(|t| compile_condition(t, names)).collect())
        }
        Condition::Of(q, selector) => {
            let selected: Vec<Program> = names
                .iter()
                .enumerate()
                .filter(|(_, n)| selector.selects(n))
                .map(|(i, _)| Program::Search(i))
                .collect();
            match q {
                Quantifier::Any => Program::Or(selected),
                Quantifier::All => Program::And(selected),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
