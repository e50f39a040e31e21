//! The Sigma rule AST, built from a marked YAML document.
//!
//! The AST keeps values as written (escapes and wildcards unresolved) and the
//! position of every search item, so that the compiler in `detect` can report
//! `file:line:col` for problems it finds later.

use super::condition::{self, Condition};
use super::limits::{RuleLimit, RuleLimits};
use super::modifier::Modifier;
use super::yaml::{Node, Pos, Value};
use crate::vocab::text::shorten;
use crate::vocab::Severity;

/// A problem in one rule document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    /// Where in the file the problem is.
    pub pos: Pos,
    /// What is wrong, for the rule author.
    pub message: String,
    /// The limit broken, when that is the problem.
    pub limit: Option<RuleLimit>,
}

impl Diagnostic {
    /// A problem that is not a broken limit.
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            pos,
            message: message.into(),
            limit: None,
        }
    }

    /// A broken limit.
    pub fn over_limit(pos: Pos, limit: RuleLimit, message: impl Into<String>) -> Self {
        Diagnostic {
            pos,
            message: message.into(),
            limit: Some(limit),
        }
    }
}

/// A Sigma detection rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SigmaRule {
    /// Title, id, level, tags and the rest every rule kind shares.
    pub meta: SigmaRuleMeta,
    /// Which events the rule applies to.
    pub logsource: Logsource,
    /// What the rule looks for.
    pub detection: Detection,
    /// Where the rule document starts.
    pub pos: Pos,
    /// Where its `logsource` section is, for warnings about its values.
    pub logsource_pos: Pos,
}

/// The rule's `logsource`, lowercased.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Logsource {
    /// `logsource.product`, e.g. `windows`.
    pub product: Option<String>,
    /// `logsource.category`, e.g. `process_creation`.
    pub category: Option<String>,
    /// `logsource.service`, e.g. `sshd`.
    pub service: Option<String>,
}

impl Logsource {
    /// Reads a `logsource` mapping, lowercasing its values. An error when it is
    /// not a mapping or a value is a list or mapping; other keys are ignored.
    pub fn from_node(node: &Node) -> Result<Logsource, Diagnostic> {
        if node.as_map().is_none() {
            return Err(Diagnostic::new(
                node.pos,
                format!("`logsource` must be a mapping, found a {}", node.kind()),
            ));
        }
        let attr = |key: &str| -> Result<Option<String>, Diagnostic> {
            match node.get(key) {
                None => Ok(None),
                Some(n) => match n.scalar_text() {
                    Some(text) => Ok(Some(text.to_ascii_lowercase())),
                    None if n.value == Value::Null => Ok(None),
                    None => Err(Diagnostic::new(
                        n.pos,
                        format!("`logsource.{key}` must be a string, found a {}", n.kind()),
                    )),
                },
            }
        };
        Ok(Logsource {
            product: attr("product")?,
            category: attr("category")?,
            service: attr("service")?,
        })
    }

    /// The `(key, value)` pairs this logsource requires.
    pub fn requirements(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("product", self.product.as_deref()),
            ("category", self.category.as_deref()),
            ("service", self.service.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }
}

/// The `detection` section.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detection {
    /// Search identifiers in document order.
    pub searches: Vec<Search>,
    /// The condition; a list of conditions is their `or`.
    pub conditions: Vec<(Pos, Condition)>,
}

impl Detection {
    /// Whether two detections select the same events: equal but for where
    /// they are written (a rule moved within its file is the same rule).
    pub fn same_logic(&self, other: &Detection) -> bool {
        fn same_item(a: &SearchItem, b: &SearchItem) -> bool {
            a.field == b.field && a.modifiers == b.modifiers && a.values == b.values
        }
        fn same_group(a: &[SearchItem], b: &[SearchItem]) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_item(a, b))
        }
        fn same_search(a: &Search, b: &Search) -> bool {
            a.name == b.name
                && a.any_of.len() == b.any_of.len()
                && a.any_of
                    .iter()
                    .zip(&b.any_of)
                    .all(|(a, b)| same_group(a, b))
        }
        self.searches.len() == other.searches.len()
            && self
                .searches
                .iter()
                .zip(&other.searches)
                .all(|(a, b)| same_search(a, b))
            && self.conditions.len() == other.conditions.len()
            && self
                .conditions
                .iter()
                .zip(&other.conditions)
                .all(|((_, a), (_, b))| a == b)
    }

    /// Every item of every search, in document order.
    pub fn items(&self) -> impl Iterator<Item = &SearchItem> {
        self.searches.iter().flat_map(|s| &s.any_of).flatten()
    }

    /// How many values the searches hold in all.
    pub fn value_count(&self) -> usize {
        self.items().map(|item| item.values.len()).sum()
    }
}

/// A named search identifier: an `or` of `and`-groups of items.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Search {
    /// The search identifier the condition names it by.
    pub name: String,
    /// Where the identifier is written.
    pub pos: Pos,
    /// The `and`-groups, any one of which matches: one for a mapping, one per
    /// mapping of a list, and one for a list's keywords.
    pub any_of: Vec<Vec<SearchItem>>,
}

/// `field|modifiers: values`, or a keyword item when `field` is `None`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchItem {
    /// The field name before any `|`; None for a keyword.
    pub field: Option<String>,
    /// The modifiers after the field name, in the order written.
    pub modifiers: Vec<Modifier>,
    /// The values; any one matches, or every one with `all`.
    pub values: Vec<RuleValue>,
    /// Where the item's key (or keyword) is written.
    pub pos: Pos,
}

/// A value as written in the rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RuleValue {
    /// A string, with Sigma escapes and wildcards still unresolved.
    Str(String),
    /// A plain integer.
    Int(i64),
    /// A plain floating-point number.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`: matches when the field is null or missing.
    Null,
}

impl RuleValue {
    fn from_node(node: &Node) -> Result<RuleValue, Diagnostic> {
        Ok(match &node.value {
            Value::Str(s) => RuleValue::Str(s.clone()),
            Value::Int(i) => RuleValue::Int(*i),
            Value::Float(f) => RuleValue::Float(*f),
            Value::Bool(b) => RuleValue::Bool(*b),
            Value::Null => RuleValue::Null,
            Value::Seq(_) | Value::Map(_) => {
                return Err(Diagnostic::new(
                    node.pos,
                    format!("a search value must be a scalar, found a {}", node.kind()),
                ))
            }
        })
    }

    /// The value's text as Sigma compares it: numbers and booleans in their plain form.
    pub fn text(&self) -> Option<String> {
        match self {
            RuleValue::Str(s) => Some(s.clone()),
            RuleValue::Int(i) => Some(i.to_string()),
            RuleValue::Float(f) => Some(f.to_string()),
            RuleValue::Bool(b) => Some(b.to_string()),
            RuleValue::Null => None,
        }
    }
}

/// A Sigma filter: exclusions added to other rules without editing them
/// (sigma-filters-specification). A rule it names matches only when the
/// filter's condition does not.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SigmaFilter {
    /// The filter's `id`, if it has one.
    pub id: Option<String>,
    /// The filter's `title`.
    pub title: String,
    /// The logsource the filter applies to.
    pub logsource: Logsource,
    /// The rules it applies to, by id or name.
    pub rules: Vec<String>,
    /// The exclusion itself: a rule named in `rules` stops matching where it matches.
    pub detection: Detection,
    /// Where the filter document starts.
    pub pos: Pos,
}

/// What one YAML document of a rule file holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Document {
    /// A detection rule.
    Rule(Box<SigmaRule>),
    /// A filter on other rules.
    Filter(Box<SigmaFilter>),
    /// A correlation rule over other rules' matches.
    Correlation(Box<super::correlation::SigmaCorrelation>),
    /// A rule with an `anomaly:` section: an ML job (see `crate::anomaly`).
    AnomalyJob(Box<super::anomaly::AnomalyJob>),
}

/// Parses one YAML document into a rule. All problems found are returned, not just the first.
pub(crate) fn parse_document(doc: &Node, limits: &RuleLimits) -> Result<Document, Vec<Diagnostic>> {
    if doc.as_map().is_none() {
        return Err(vec![Diagnostic::new(
            doc.pos,
            format!("a Sigma document must be a mapping, found a {}", doc.kind()),
        )]);
    }
    if let (Some(filter), None) = (doc.get("filter"), doc.get("detection")) {
        return parse_filter(doc, filter, limits).map(|f| Document::Filter(Box::new(f)));
    }
    let mut diags = Vec::new();
    if doc.get("correlation").is_some() {
        let meta = parse_meta(doc, &mut diags);
        return match super::correlation::parse_correlation(doc, meta, &mut diags) {
            Some(c) if diags.is_empty() => Ok(Document::Correlation(Box::new(c))),
            _ => Err(diags),
        };
    }
    let meta = parse_meta(doc, &mut diags);
    let logsource = required_logsource(doc, &mut diags);

    let detection = match doc.get("detection") {
        Some(n) => parse_detection(n, &[], &mut diags, limits),
        None => {
            diags.push(Diagnostic::new(
                doc.pos,
                super::lint::missing_key(doc, "detection"),
            ));
            None
        }
    };

    if let (Some(d), Some(node)) = (&detection, doc.get("detection")) {
        let values = d.value_count();
        if values > limits.max_values_per_rule {
            diags.push(Diagnostic::over_limit(
                node.pos,
                RuleLimit::ValuesPerRule,
                format!(
                    "{values} values in the detection, more than rule_limits.max_values_per_rule ({})",
                    limits.max_values_per_rule
                ),
            ));
        }
    }
    let rule = match detection {
        Some(detection) if diags.is_empty() => SigmaRule {
            meta,
            logsource,
            detection,
            pos: doc.pos,
            logsource_pos: doc.get("logsource").map_or(doc.pos, |n| n.pos),
        },
        _ => return Err(diags),
    };
    match doc.get("anomaly") {
        None => Ok(Document::Rule(Box::new(rule))),
        Some(node) => match super::anomaly::parse_job(rule, node, &mut diags) {
            Some(job) if diags.is_empty() => Ok(Document::AnomalyJob(Box::new(job))),
            _ => Err(diags),
        },
    }
}

/// The metadata every rule kind shares.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct SigmaRuleMeta {
    /// The `id`; when absent, a stable id derived from the title.
    pub id: String,
    /// The `name`, by which correlation rules and filters may refer to the rule.
    pub name: Option<String>,
    /// The `title`, which alerts show.
    pub title: String,
    /// The `status` (`stable`, `test`, `experimental`, ...), as written.
    pub status: Option<String>,
    /// The `description`, as written.
    pub description: Option<String>,
    /// The `author`, as written.
    pub author: Option<String>,
    /// The `date`, as written.
    pub date: Option<String>,
    /// The `level`; None when absent, and alerts are then `medium`.
    pub level: Option<Severity>,
    /// The `tags` (ATT&CK techniques, CVEs, ...); alerts carry them.
    pub tags: Vec<String>,
    /// The `references` (URLs); alerts carry them.
    pub references: Vec<String>,
    /// The `falsepositives`: known benign causes of a match.
    pub falsepositives: Vec<String>,
    /// The `fields` worth showing; alert summaries list them after the entity fields.
    pub fields: Vec<String>,
}

fn parse_meta(doc: &Node, diags: &mut Vec<Diagnostic>) -> SigmaRuleMeta {
    let title = match doc.get("title").map(|n| (n, n.scalar_text())) {
        Some((_, Some(t))) if !t.trim().is_empty() => t,
        Some((n, _)) => {
            diags.push(Diagnostic::new(n.pos, "`title` must be a non-empty string"));
            String::new()
        }
        None => {
            diags.push(Diagnostic::new(
                doc.pos,
                super::lint::missing_key(doc, "title"),
            ));
            String::new()
        }
    };
    let text = |key: &str| doc.get(key).and_then(Node::scalar_text);
    let list = |key: &str, diags: &mut Vec<Diagnostic>| -> Vec<String> {
        match doc.get(key) {
            None => Vec::new(),
            Some(n) => match &n.value {
                Value::Seq(items) => items.iter().filter_map(Node::scalar_text).collect(),
                Value::Null => Vec::new(),
                _ => match n.scalar_text() {
                    Some(s) => vec![s],
                    None => {
                        diags.push(Diagnostic::new(n.pos, format!("`{key}` must be a list")));
                        Vec::new()
                    }
                },
            },
        }
    };
    let tags = list("tags", diags);
    let references = list("references", diags);
    let falsepositives = list("falsepositives", diags);
    let fields = list("fields", diags);

    let level = match doc.get("level") {
        None => None,
        Some(n) => match n
            .scalar_text()
            .as_deref()
            .and_then(Severity::from_sigma_level)
        {
            Some(level) => Some(level),
            None => {
                diags.push(Diagnostic::new(
                    n.pos,
                    "`level` must be one of informational, low, medium, high, critical",
                ));
                None
            }
        },
    };

    let id = match doc.get("id") {
        Some(n) => match n.scalar_text() {
            Some(id) if !id.trim().is_empty() => id,
            _ => {
                diags.push(Diagnostic::new(n.pos, "`id` must be a non-empty string"));
                String::new()
            }
        },
        None => derived_id(&title),
    };

    SigmaRuleMeta {
        id,
        name: text("name"),
        title,
        status: text("status"),
        description: text("description"),
        author: text("author"),
        date: text("date"),
        level,
        tags,
        references,
        falsepositives,
        fields,
    }
}

/// A stable id for rules without one, so alert ids stay stable across replays.
fn derived_id(title: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, title.as_bytes()).to_string()
}

/// The mandatory `logsource` of a rule or filter document.
fn required_logsource(doc: &Node, diags: &mut Vec<Diagnostic>) -> Logsource {
    match doc.get("logsource") {
        Some(n) => Logsource::from_node(n).unwrap_or_else(|d| {
            diags.push(d);
            Logsource::default()
        }),
        None => {
            diags.push(Diagnostic::new(
                doc.pos,
                super::lint::missing_key(doc, "logsource"),
            ));
            Logsource::default()
        }
    }
}

fn parse_filter(
    doc: &Node,
    filter: &Node,
    limits: &RuleLimits,
) -> Result<SigmaFilter, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let title = doc
        .get("title")
        .and_then(Node::scalar_text)
        .unwrap_or_default();
    if title.trim().is_empty() {
        diags.push(Diagnostic::new(
            doc.pos,
            super::lint::missing_key(doc, "title"),
        ));
    }
    let logsource = required_logsource(doc, &mut diags);
    let rules: Vec<String> = match filter.get("rules").map(|r| &r.value) {
        Some(Value::Seq(items)) => items.iter().filter_map(Node::scalar_text).collect(),
        Some(_) => match filter.get("rules").and_then(Node::scalar_text) {
            Some(one) => vec![one],
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    if rules.is_empty() {
        diags.push(Diagnostic::new(
            filter.pos,
            "`filter.rules` must list at least one rule id or name",
        ));
    }
    let detection = parse_detection(filter, &["rules"], &mut diags, limits);
    match detection {
        Some(detection) if diags.is_empty() => Ok(SigmaFilter {
            id: doc.get("id").and_then(Node::scalar_text),
            title,
            logsource,
            rules,
            detection,
            pos: doc.pos,
        }),
        _ => Err(diags),
    }
}

/// Parses a detection map; keys in `skip` are not search identifiers.
fn parse_detection(
    node: &Node,
    skip: &[&str],
    diags: &mut Vec<Diagnostic>,
    limits: &RuleLimits,
) -> Option<Detection> {
    let Some(entries) = node.as_map() else {
        diags.push(Diagnostic::new(node.pos, "`detection` must be a mapping"));
        return None;
    };
    let before = diags.len();
    let mut searches = Vec::new();
    let mut conditions = Vec::new();
    let mut saw_condition = false;
    for (key, value) in entries {
        let Some(name) = key.scalar_text() else {
            diags.push(Diagnostic::new(
                key.pos,
                "search identifiers must be strings",
            ));
            continue;
        };
        if skip.contains(&name.as_str()) {
            continue;
        }
        if name == "condition" {
            saw_condition = true;
            parse_conditions(value, &mut conditions, diags, limits.max_condition_depth);
            continue;
        }
        if name == "timeframe" {
            diags.push(Diagnostic::new(
                key.pos,
                "`timeframe` belongs to removed aggregation syntax; use a correlation rule",
            ));
            continue;
        }
        if searches.iter().any(|s: &Search| s.name == name) {
            diags.push(Diagnostic::new(
                key.pos,
                format!("duplicate search identifier `{name}`"),
            ));
            continue;
        }
        // A search that fails still defines its name, so the condition
        // check does not report a second, misleading problem.
        let any_of = parse_search(value, diags).unwrap_or_default();
        searches.push(Search {
            name,
            pos: key.pos,
            any_of,
        });
    }
    if !saw_condition {
        diags.push(Diagnostic::new(node.pos, "`detection` has no `condition`"));
    }
    // Every identifier named in a condition must exist; patterns must select something.
    for (pos, cond) in &conditions {
        check_references(cond, &searches, *pos, diags);
    }
    (diags.len() == before).then_some(Detection {
        searches,
        conditions,
    })
}

fn parse_conditions(
    node: &Node,
    out: &mut Vec<(Pos, Condition)>,
    diags: &mut Vec<Diagnostic>,
    max_depth: usize,
) {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    if items.is_empty() {
        diags.push(Diagnostic::new(node.pos, "`condition` is empty"));
    }
    for item in items {
        let Some(text) = item.as_str() else {
            diags.push(Diagnostic::new(item.pos, "`condition` must be a string"));
            continue;
        };
        match condition::parse(text, max_depth) {
            Ok(cond) => out.push((item.pos, cond)),
            Err(e) => {
                let message = format!("condition `{}`: {e}", shorten(text, 80));
                diags.push(if e.message.contains("max_condition_depth") {
                    Diagnostic::over_limit(item.pos, RuleLimit::ConditionDepth, message)
                } else {
                    Diagnostic::new(item.pos, message)
                });
            }
        }
    }
}

fn check_references(cond: &Condition, searches: &[Search], pos: Pos, diags: &mut Vec<Diagnostic>) {
    match cond {
        Condition::Search(name) => {
            if !searches.iter().any(|s| &s.name == name) {
                diags.push(Diagnostic::new(
                    pos,
                    format!(
                        "condition names `{name}`, which is not a search identifier of this rule"
                    ),
                ));
            }
        }
        Condition::Not(inner) => check_references(inner, searches, pos, diags),
        Condition::And(terms) | Condition::Or(terms) => {
            for t in terms {
                check_references(t, searches, pos, diags);
            }
        }
        Condition::Of(_, selector) => {
            if !searches.iter().any(|s| selector.selects(&s.name)) {
                let what = match selector {
                    condition::Selector::Them => "them".to_string(),
                    condition::Selector::Pattern(p) => format!("`{p}`"),
                };
                diags.push(Diagnostic::new(
                    pos,
                    format!("{what} selects no search identifier of this rule"),
                ));
            }
        }
    }
}

/// A search body: a map (AND), a list of maps (OR of ANDs), or a keyword list.
fn parse_search(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Vec<Vec<SearchItem>>> {
    match &node.value {
        Value::Map(entries) => Some(vec![parse_map(entries, diags)?]),
        Value::Seq(items) => {
            let mut any_of = Vec::new();
            let mut keywords = Vec::new();
            for item in items {
                match &item.value {
                    Value::Map(entries) => any_of.push(parse_map(entries, diags)?),
                    Value::Seq(_) => {
                        diags.push(Diagnostic::new(
                            item.pos,
                            "nested lists are not valid in a search",
                        ));
                        return None;
                    }
                    _ => keywords.push(RuleValue::from_node(item).map_err(|d| diags.push(d)).ok()?),
                }
            }
            if !keywords.is_empty() {
                any_of.push(vec![SearchItem {
                    field: None,
                    modifiers: Vec::new(),
                    values: keywords,
                    pos: node.pos,
                }]);
            }
            if any_of.is_empty() {
                diags.push(Diagnostic::new(node.pos, "empty search list"));
                return None;
            }
            Some(any_of)
        }
        _ => Some(vec![vec![SearchItem {
            field: None,
            modifiers: Vec::new(),
            values: vec![RuleValue::from_node(node).map_err(|d| diags.push(d)).ok()?],
            pos: node.pos,
        }]]),
    }
}

/// A single selection map (`field|mods: values`, AND), as used outside rules
/// (logsource mapping conditions).
pub(crate) fn parse_selection(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Vec<SearchItem>> {
    match node.as_map() {
        Some(entries) => parse_map(entries, diags),
        None => {
            diags.push(Diagnostic::new(
                node.pos,
                format!("a selection must be a mapping, found a {}", node.kind()),
            ));
            None
        }
    }
}

fn parse_map(entries: &[(Node, Node)], diags: &mut Vec<Diagnostic>) -> Option<Vec<SearchItem>> {
    let before = diags.len();
    let mut items = Vec::new();
    for (key, value) in entries {
        let Some(key_text) = key.scalar_text() else {
            diags.push(Diagnostic::new(key.pos, "field names must be strings"));
            continue;
        };
        let mut parts = key_text.split('|');
        let field = parts.next().unwrap_or("");
        let mut modifiers = Vec::new();
        for part in parts {
            match part.parse::<Modifier>() {
                Ok(m) => modifiers.push(m),
                Err(e) => diags.push(Diagnostic::new(key.pos, format!("`{key_text}`: {e}"))),
            }
        }
        let values = match &value.value {
            Value::Seq(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    match RuleValue::from_node(item) {
                        Ok(v) => values.push(v),
                        Err(d) => diags.push(d),
                    }
                }
                if values.is_empty() {
                    diags.push(Diagnostic::new(
                        value.pos,
                        format!("`{key_text}` has an empty list of values"),
                    ));
                }
                values
            }
            _ => match RuleValue::from_node(value) {
                Ok(v) => vec![v],
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            },
        };
        items.push(SearchItem {
            field: (!field.is_empty()).then(|| field.to_string()),
            modifiers,
            values,
            pos: key.pos,
        });
    }
    (diags.len() == before).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigma::yaml::parse_documents;

    fn parse(text: &str) -> Result<SigmaRule, Vec<Diagnostic>> {
        let docs = parse_documents(text, &Default::default()).unwrap();
        match parse_document(&docs[0], &Default::default())? {
            Document::Rule(r) => Ok(*r),
            other => panic!("not a rule: {other:?}"),
        }
    }

    const RULE: &str = "title: Test\nid: 1234\nlevel: high\ntags: [attack.t1110]\nlogsource:\n  product: Linux\n  service: sshd\ndetection:\n  selection:\n    message|startswith: 'Invalid user'\n    pid: [1, 2]\n  keywords:\n    - evil\n    - bad\n  condition: selection or keywords\n";

    #[test]
    fn a_complete_rule_parses() {
        let rule = parse(RULE).unwrap();
        assert_eq!(rule.meta.id, "1234");
        assert_eq!(rule.meta.level, Some(Severity::High));
        assert_eq!(rule.logsource.product.as_deref(), Some("linux"));
        assert_eq!(rule.detection.searches.len(), 2);
        let sel = &rule.detection.searches[0].any_of[0];
        assert_eq!(sel[0].field.as_deref(), Some("message"));
        assert_eq!(sel[0].modifiers, vec![Modifier::StartsWith]);
        assert_eq!(sel[1].values, vec![RuleValue::Int(1), RuleValue::Int(2)]);
        let kw = &rule.detection.searches[1].any_of[0][0];
        assert_eq!(kw.field, None);
        assert_eq!(kw.values.len(), 2);
    }

    #[test]
    fn unknown_modifiers_are_reported_at_their_line() {
        let text = RULE.replace("message|startswith", "message|startwith");
        let diags = parse(&text).unwrap_err();
        assert_eq!(diags[0].pos.line, 10, "{diags:?}");
        assert!(diags[0].message.contains("startwith"));
    }

    #[test]
    fn conditions_naming_missing_searches_are_rejected() {
        let text = RULE.replace("selection or keywords", "selection or keyword");
        let diags = parse(&text).unwrap_err();
        assert!(diags[0].message.contains("`keyword`"), "{diags:?}");
        assert_eq!(diags[0].pos.line, 15);
    }

    #[test]
    fn missing_sections_are_all_reported() {
        let diags = parse("title: x\n").unwrap_err();
        let text: Vec<_> = diags.iter().map(|d| d.message.as_str()).collect();
        assert!(text.contains(&"missing `logsource`"), "{text:?}");
        assert!(text.contains(&"missing `detection`"), "{text:?}");
    }

    #[test]
    fn a_list_of_maps_is_an_or_of_ands() {
        let rule = parse("title: t\nlogsource: {product: windows}\ndetection:\n  sel:\n    - {a: 1, b: 2}\n    - {c: 3}\n  condition: sel\n").unwrap();
        let any_of = &rule.detection.searches[0].any_of;
        assert_eq!(any_of.len(), 2);
        assert_eq!(any_of[0].len(), 2);
    }

    #[test]
    fn rules_without_id_get_a_stable_derived_one() {
        let text = RULE.replace("id: 1234\n", "");
        assert_eq!(parse(&text).unwrap().meta.id, parse(&text).unwrap().meta.id);
        assert_ne!(parse(&text).unwrap().meta.id, "");
    }

    #[test]
    fn filter_documents_parse_with_their_rules_and_condition() {
        let docs = parse_documents("title: f\nlogsource: {product: windows, category: process_creation}\nfilter:\n  rules: [abc, my_rule]\n  selection:\n    User|startswith: adm_\n  condition: selection\n", &Default::default()).unwrap();
        let Ok(Document::Filter(f)) = parse_document(&docs[0], &Default::default()) else {
            panic!("not a filter")
        };
        assert_eq!(f.rules, vec!["abc", "my_rule"]);
        assert_eq!(f.detection.searches.len(), 1);
        assert_eq!(f.detection.searches[0].name, "selection");
        let docs = parse_documents("title: f\nlogsource: {product: windows}\nfilter:\n  selection: {a: 1}\n  condition: selection\n", &Default::default()).unwrap();
        let diags = parse_document(&docs[0], &Default::default()).unwrap_err();
        assert!(diags[0].message.contains("filter.rules"), "{diags:?}");
    }
}
