//! Routing events to rules by logsource.
//!
//! A mapping file (`src/event/logsources.yml` is built in) says which events
//! belong to which Sigma logsource: each entry has tags (`product`,
//! `category`, `service`), an optional parser format and an optional Sigma
//! selection. An event carries every tag of every entry it matches, and a rule
//! sees it only if the event carries each of the rule's logsource values. That
//! is what keeps Windows rules off Linux events.

use super::value::{ItemMatcher, Placeholders};
use super::EventView;
use crate::event::{Event, InputFormat};
use crate::sigma::rule::{Diagnostic, Logsource};
use crate::sigma::yaml::{parse_documents, Node, Pos};
use crate::sigma::{LoadedRule, RuleProblem};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

/// The built-in mapping.
pub(crate) const BUILTIN_MAPPING: &str = include_str!("../event/logsources.yml");

/// A problem in a mapping file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct MappingError {
    /// The mapping file's path, or `<built-in logsources.yml>`.
    pub file: String,
    /// Where in the file; `0:0` when the problem is the whole file.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.pos, self.message)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    tags: Vec<(&'static str, String)>,
    format: Option<InputFormat>,
    when: Vec<ItemMatcher>,
    fieldmappings: Vec<(String, String)>,
}

/// The compiled logsource mapping.
///
/// Most entries test one field for exact values (`Channel: Security`); they
/// are keyed by that value so an event only checks the entries of its own
/// channel instead of all of them.
#[derive(Debug, Clone)]
pub struct LogsourceRouter {
    entries: Vec<Entry>,
    /// Per discriminating field: lowercased value -> entries that require it.
    keyed: Vec<(String, HashMap<String, Vec<usize>>)>,
    /// Entries without an exact-value condition: checked for every event.
    unkeyed: Vec<usize>,
    /// Per parser format (indexed by `Format as usize`): every field a `when`
    /// condition of an entry open to that format reads, so routing is a
    /// function of their values and the format; `None` when such a condition
    /// is a keyword search (it reads every value). Per format because a
    /// syslog-only entry reading `message` must not put a JSON event's
    /// 5 KB `message` into its routing key.
    inputs: [Option<Vec<String>>; InputFormat::ALL.len()],
}

/// A set of mapping entries, as a bitset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntrySet(Vec<u64>);

impl EntrySet {
    fn insert(&mut self, i: usize) {
        let (word, bit) = (i / 64, i % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn intersects(&self, other: &EntrySet) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }

    fn clear(&mut self) {
        self.0.iter_mut().for_each(|w| *w = 0);
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

/// What the router found for one event: the entries it matched.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    matched: EntrySet,
    /// Reused buffer for the lowercased discriminator value.
    key: String,
}

impl Routing {
    /// The entries matched.
    pub fn matched(&self) -> &EntrySet {
        &self.matched
    }

    /// Takes a remembered outcome (see `Engine`'s routing cache).
    pub fn set_matched(&mut self, matched: &EntrySet) {
        self.matched.clone_from(matched);
    }
}

/// A rule logsource, resolved against the mapping: for each required value,
/// the entries that provide it, plus the value itself for source-level tags.
#[derive(Debug, Clone)]
pub struct LogsourceFilter {
    requirements: Vec<(&'static str, String, EntrySet)>,
}

impl LogsourceRouter {
    /// The built-in mapping.
    pub fn builtin() -> Result<LogsourceRouter, MappingError> {
        LogsourceRouter::from_yaml(BUILTIN_MAPPING, "<built-in logsources.yml>")
    }

    /// Reads a mapping file.
    pub fn from_file(path: &Path) -> Result<LogsourceRouter, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|e| MappingError {
            file: path.display().to_string(),
            pos: Pos::default(),
            message: format!("cannot read: {e}"),
        })?;
        LogsourceRouter::from_yaml(&text, &path.display().to_string())
    }

    /// Reads a mapping from YAML text; `file` names it in errors. The first
    /// document must hold a `logsources` list.
    pub fn from_yaml(text: &str, file: &str) -> Result<LogsourceRouter, MappingError> {
        let err = |pos: Pos, message: String| MappingError {
            file: file.to_string(),
            pos,
            message,
        };
        let docs = parse_documents(text, &crate::sigma::RuleLimits::default())
            .map_err(|e| err(e.pos, e.message))?;
        let doc = docs
            .first()
            .ok_or_else(|| err(Pos::default(), "empty mapping file".into()))?;
        let list = doc
            .get("logsources")
            .ok_or_else(|| err(doc.pos, "missing `logsources` list".into()))?;
        let crate::sigma::yaml::Value::Seq(items) = &list.value else {
            return Err(err(list.pos, "`logsources` must be a list".into()));
        };
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            entries.push(parse_entry(item).map_err(|d| err(d.pos, d.message))?);
        }
        Ok(LogsourceRouter::index(entries))
    }

    fn index(entries: Vec<Entry>) -> LogsourceRouter {
        let mut keyed: Vec<(String, HashMap<String, Vec<usize>>)> = Vec::new();
        let mut unkeyed = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let Some((field, values)) = entry.when.iter().find_map(ItemMatcher::exact_values)
            else {
                unkeyed.push(i);
                continue;
            };
            let slot = match keyed.iter().position(|(f, _)| f == field) {
                Some(slot) => slot,
                None => {
                    keyed.push((field.to_string(), HashMap::new()));
                    keyed.len() - 1
                }
            };
            for v in values {
                keyed[slot].1.entry(v.to_string()).or_default().push(i);
            }
        }
        let inputs = InputFormat::ALL.map(|format| {
            let mut all = Vec::new();
            let open = entries
                .iter()
                .filter(|e| e.format.is_none_or(|f| f == format));
            for m in open.flat_map(|e| &e.when) {
                for f in m.reads()? {
                    if !all.iter().any(|a| a == f) {
                        all.push(f.to_string());
                    }
                }
            }
            Some(all)
        });
        LogsourceRouter {
            entries,
            keyed,
            unkeyed,
            inputs,
        }
    }

    /// Writes everything routing an event depends on (its format and the
    /// values of the fields the `when` conditions read) into `key`, so equal
    /// keys route alike. Returns false when routing reads the whole event.
    pub fn write_key(&self, event: &Event, key: &mut Vec<u8>) -> bool {
        let Some(inputs) = &self.inputs[event.format as usize] else {
            return false;
        };
        key.clear();
        key.push(event.format as u8);
        for field in inputs {
            // The value's JSON text, then 0xFF, which UTF-8 never contains:
            // numbers are not self-delimiting, so the separator keeps keys apart.
            if let Some(value) = event.get(field) {
                if serde_json::to_writer(&mut *key, value).is_err() {
                    return false;
                }
            }
            key.push(0xFF);
        }
        true
    }

    /// How many entries the mapping has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for a mapping without entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Finds the entries an event matches.
    pub fn route(&self, event: &Event, routing: &mut Routing) {
        routing.matched.clear();
        let view = EventView::new(event, &[]);
        let mut check = |i: usize| {
            let entry = &self.entries[i];
            if entry.format.is_some_and(|f| f != event.format) {
                return;
            }
            if entry.when.iter().all(|m| m.matches(&view)) {
                routing.matched.insert(i);
            }
        };
        for (field, by_value) in &self.keyed {
            let Some(serde_json::Value::String(value)) = event.get(field) else {
                continue;
            };
            routing.key.clear();
            routing
                .key
                .extend(value.chars().flat_map(char::to_lowercase));
            if let Some(ids) = by_value.get(routing.key.as_str()) {
                ids.iter().for_each(|&i| check(i));
            }
        }
        self.unkeyed.iter().for_each(|&i| check(i));
    }

    /// Field renames that apply to an event with this routing.
    pub fn aliases<'a>(&'a self, routing: &Routing, out: &mut Vec<(&'a str, &'a str)>) {
        out.clear();
        for i in routing.matched.iter() {
            if let Some(entry) = self.entries.get(i) {
                out.extend(
                    entry
                        .fieldmappings
                        .iter()
                        .map(|(a, b)| (a.as_str(), b.as_str())),
                );
            }
        }
    }

    /// Names of the matched entries (for `scan --explain` style output and tests).
    pub fn matched_names(&self, routing: &Routing) -> Vec<&str> {
        routing
            .matched
            .iter()
            .filter_map(|i| self.entries.get(i).map(|e| e.name.as_str()))
            .collect()
    }

    /// Warnings for logsource values of `rules` that no entry of the mapping
    /// gives events (`service: sudoo`): such a rule only sees events of a
    /// source whose config sets the value, which is rarely what a typo meant.
    pub fn unknown_values(&self, rules: &[LoadedRule], mapping: &str) -> Vec<RuleProblem> {
        let mut warnings: Vec<RuleProblem> = Vec::new();
        // Thousands of rules share a few dozen values: each is judged once.
        let mut judged: HashMap<(&str, &str), Option<String>> = HashMap::new();
        // An anomaly job's two selections share the file and the position.
        let mut warned = HashSet::new();
        for LoadedRule { rule, file } in rules {
            for (key, value) in rule.logsource.requirements() {
                let unknown = judged.entry((key, value)).or_insert_with(|| {
                    let mut known: Vec<&str> = self
                        .entries
                        .iter()
                        .flat_map(|e| &e.tags)
                        .filter(|(k, _)| *k == key)
                        .map(|(_, v)| v.as_str())
                        .collect();
                    if known.contains(&value) {
                        return None;
                    }
                    known.sort_unstable();
                    known.dedup();
                    Some(match crate::sigma::did_you_mean(value, &known) {
                        Some(v) => format!(" (did you mean `{v}`?)"),
                        None => String::new(),
                    })
                });
                let Some(hint) = unknown else { continue };
                if !warned.insert((file, rule.logsource_pos, key, value)) {
                    continue;
                }
                warnings.push(RuleProblem::new(
                    file,
                    rule.logsource_pos,
                    format!(
                        "`logsource` `{key}: {value}`: no entry of the logsource mapping ({mapping}) gives events this value{hint}, so the rule only sees sources whose config sets it"
                    ),
                ));
            }
        }
        warnings
    }

    /// Resolves a rule's logsource against this mapping.
    pub fn filter(&self, logsource: &Logsource) -> LogsourceFilter {
        let requirements = logsource
            .requirements()
            .map(|(key, value)| {
                let mut set = EntrySet::default();
                for (i, entry) in self.entries.iter().enumerate() {
                    if entry.tags.iter().any(|(k, v)| *k == key && v == value) {
                        set.insert(i);
                    }
                }
                (key, value.to_string(), set)
            })
            .collect();
        LogsourceFilter { requirements }
    }
}

impl LogsourceFilter {
    /// Whether an event with this routing and these source-level tags is in the logsource.
    pub fn admits(&self, routing: &Routing, source_tags: &[(String, String)]) -> bool {
        self.requirements.iter().all(|(key, value, set)| {
            set.intersects(&routing.matched)
                || source_tags.iter().any(|(k, v)| k == key && v == value)
        })
    }

    /// Whether some mapping entry or source tag could ever satisfy this filter.
    pub fn is_reachable(&self) -> bool {
        self.requirements
            .iter()
            .all(|(_, _, set)| set.iter().next().is_some())
    }
}

fn parse_entry(node: &Node) -> Result<Entry, Diagnostic> {
    let name = node
        .get("name")
        .and_then(Node::scalar_text)
        .ok_or_else(|| Diagnostic::new(node.pos, "mapping entry needs a `name`"))?;
    let ls_node = node
        .get("logsource")
        .ok_or_else(|| Diagnostic::new(node.pos, format!("entry `{name}` needs a `logsource`")))?;
    let logsource = Logsource::from_node(ls_node)?;
    let tags: Vec<(&'static str, String)> = logsource
        .requirements()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    if tags.is_empty() {
        return Err(Diagnostic::new(
            ls_node.pos,
            format!("entry `{name}` tags nothing"),
        ));
    }
    let format = match node.get("format") {
        None => None,
        Some(f) => Some(
            f.scalar_text()
                .as_deref()
                .and_then(InputFormat::from_name)
                .ok_or_else(|| {
                    Diagnostic::new(
                        f.pos,
                        "`format` must be json, syslog, access-log or evtx-json",
                    )
                })?,
        ),
    };
    let when = match node.get("when") {
        None => Vec::new(),
        Some(w) => {
            let mut diags = Vec::new();
            let search = crate::sigma::rule::parse_selection(w, &mut diags).ok_or_else(|| {
                diags
                    .into_iter()
                    .next()
                    .unwrap_or(Diagnostic::new(w.pos, "invalid `when`"))
            })?;
            search
                .iter()
                .map(|item| {
                    ItemMatcher::compile(item, &Placeholders::new())
                        .map_err(|m| Diagnostic::new(item.pos, m))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    if format.is_none() && when.is_empty() {
        return Err(Diagnostic::new(
            node.pos,
            format!("entry `{name}` has neither `format` nor `when` and would match every event"),
        ));
    }
    let fieldmappings = match node.get("fieldmappings").and_then(Node::as_map) {
        None => Vec::new(),
        Some(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((k.scalar_text()?, v.scalar_text()?)))
            .collect(),
    };
    Ok(Entry {
        name,
        tags,
        format,
        when,
        fieldmappings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::test_event;
    use serde_json::json;

    fn key(router: &LogsourceRouter, event: &Event) -> Vec<u8> {
        let mut key = Vec::new();
        assert!(router.write_key(event, &mut key));
        key
    }

    #[test]
    fn routing_key_reads_only_fields_that_entries_open_to_the_format_read() {
        let router = LogsourceRouter::builtin().unwrap();
        // `message` is read by a syslog-only entry: it decides syslog routing...
        let syslog = |m: &str| {
            test_event(
                json!({"program": "sshd", "message": m}),
                InputFormat::Syslog,
            )
        };
        assert_ne!(
            key(&router, &syslog("pam_unix: failure")),
            key(&router, &syslog("Accepted password"))
        );
        // ...and is no part of a JSON event's key, however long it is.
        let json_event = |m: &str| {
            test_event(
                json!({"Channel": "Security", "EventID": 4624, "message": m}),
                InputFormat::Json,
            )
        };
        assert_eq!(
            key(&router, &json_event("short")),
            key(&router, &json_event(&"long ".repeat(1000)))
        );
        let other_id = test_event(
            json!({"Channel": "Security", "EventID": 4625}),
            InputFormat::Json,
        );
        assert_ne!(key(&router, &json_event("short")), key(&router, &other_id));
    }
}
